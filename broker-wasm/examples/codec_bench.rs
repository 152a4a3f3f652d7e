//! Codec benchmark: encode and decode rates for a small message (`["ping", i]` on a topic)
//! and a 1,000-entry table, in the binary frame encoding, the JSON frame form and Zeek's
//! WebSocket JSON.
//!
//! Run with: `cargo run --release -p broker-wasm --example codec_bench [seconds-per-case]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use broker_wasm::protocol::{self, ClientMsg, Publish, DEFAULT_MAX_FRAME};
use broker_wasm::{zeek_json, Data, Table};

struct Case {
    name: &'static str,
    messages_per_op: u64,
    bytes_per_op: usize,
    encode: Box<dyn FnMut(u64) -> usize>,
    decode: Box<dyn FnMut() -> usize>,
}

fn ping(i: u64) -> Data {
    Data::Vector(vec![Data::string("ping"), Data::Count(i)])
}

fn table() -> Data {
    let t: Table = (0..1000u64)
        .map(|i| (Data::Count(i), Data::string(format!("value-{i}"))))
        .collect();
    Data::Table(t)
}

fn publish(data: Data) -> ClientMsg {
    ClientMsg::Publish(Publish {
        topic: "/bench/ping".into(),
        data,
    })
}

/// Runs `f` repeatedly for `budget`; returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut(u64) -> usize) -> f64 {
    let mut ops = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..64 {
            black_box(f(ops));
            ops += 1;
        }
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (label, batch) in [("ping", 1usize), ("ping x100", 100)] {
        let msgs: Vec<ClientMsg> = (0..batch as u64).map(|i| publish(ping(i))).collect();
        let bin = protocol::to_binary(&msgs).unwrap();
        let json = protocol::to_json(&msgs).unwrap();
        let mut buf = Vec::with_capacity(bin.len() * 2);
        let mut m = msgs.clone();
        out.push(Case {
            name: if batch == 1 {
                "binary frame / ping"
            } else {
                "binary frame / ping x100 batch"
            },
            messages_per_op: batch as u64,
            bytes_per_op: bin.len(),
            encode: Box::new(move |i| {
                if let ClientMsg::Publish(p) = &mut m[0] {
                    p.data = ping(i);
                }
                buf.clear();
                protocol::encode_binary(&m, &mut buf).unwrap();
                buf.len()
            }),
            decode: Box::new(move || {
                protocol::decode_binary::<ClientMsg>(&bin, DEFAULT_MAX_FRAME)
                    .unwrap()
                    .0
                    .len()
            }),
        });
        let m = msgs.clone();
        out.push(Case {
            name: if batch == 1 {
                "JSON frame / ping"
            } else {
                "JSON frame / ping x100 batch"
            },
            messages_per_op: batch as u64,
            bytes_per_op: json.len(),
            encode: Box::new(move |_| protocol::to_json(&m).unwrap().len()),
            decode: Box::new(move || {
                protocol::from_json::<ClientMsg>(&json, DEFAULT_MAX_FRAME)
                    .unwrap()
                    .len()
            }),
        });
        let _ = label;
    }
    let zeek = zeek_json::data_message("/bench/ping", &ping(7))
        .unwrap()
        .into_bytes();
    let mut zbuf = Vec::new();
    out.push(Case {
        name: "Zeek JSON / ping",
        messages_per_op: 1,
        bytes_per_op: zeek.len(),
        encode: Box::new(move |i| {
            zbuf.clear();
            zeek_json::encode_data_message("/bench/ping", &ping(i), &mut zbuf).unwrap();
            zbuf.len()
        }),
        decode: Box::new(move || {
            zeek_json::decode_data_message(&zeek, 1)
                .unwrap()
                .topic
                .len()
        }),
    });

    let t = table();
    let tmsg = vec![publish(t.clone())];
    let bin = protocol::to_binary(&tmsg).unwrap();
    let json = protocol::to_json(&tmsg).unwrap();
    let zeek = zeek_json::data_message("/bench/table", &t)
        .unwrap()
        .into_bytes();
    let mut buf = Vec::new();
    let m = tmsg.clone();
    out.push(Case {
        name: "binary frame / 1000-entry table",
        messages_per_op: 1,
        bytes_per_op: bin.len(),
        encode: Box::new(move |_| {
            buf.clear();
            protocol::encode_binary(&m, &mut buf).unwrap();
            buf.len()
        }),
        decode: Box::new(move || {
            protocol::decode_binary::<ClientMsg>(&bin, DEFAULT_MAX_FRAME)
                .unwrap()
                .1
        }),
    });
    let m = tmsg.clone();
    out.push(Case {
        name: "JSON frame / 1000-entry table",
        messages_per_op: 1,
        bytes_per_op: json.len(),
        encode: Box::new(move |_| protocol::to_json(&m).unwrap().len()),
        decode: Box::new(move || {
            protocol::from_json::<ClientMsg>(&json, DEFAULT_MAX_FRAME)
                .unwrap()
                .len()
        }),
    });
    let mut zbuf = Vec::new();
    out.push(Case {
        name: "Zeek JSON / 1000-entry table",
        messages_per_op: 1,
        bytes_per_op: zeek.len(),
        encode: Box::new(move |_| {
            zbuf.clear();
            zeek_json::encode_data_message("/bench/table", &t, &mut zbuf).unwrap();
            zbuf.len()
        }),
        decode: Box::new(move || {
            zeek_json::decode_data_message(&zeek, 1)
                .unwrap()
                .topic
                .len()
        }),
    });
    out
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
    }
    println!(
        "{:<34} {:>9} {:>14} {:>10} {:>14} {:>10}",
        "case", "bytes/msg", "encode msg/s", "enc MB/s", "decode msg/s", "dec MB/s"
    );
    for mut case in cases() {
        let enc = rate(budget, &mut case.encode);
        let dec = rate(budget, |_| (case.decode)());
        let per_msg = case.bytes_per_op as f64 / case.messages_per_op as f64;
        let mb = |ops: f64| ops * case.bytes_per_op as f64 / 1e6;
        println!(
            "{:<34} {:>9.1} {:>14.0} {:>10.1} {:>14.0} {:>10.1}",
            case.name,
            per_msg,
            enc * case.messages_per_op as f64,
            mb(enc),
            dec * case.messages_per_op as f64,
            mb(dec)
        );
    }
}
