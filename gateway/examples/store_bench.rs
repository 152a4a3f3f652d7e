//! Store benchmark: starts a gateway (its own runtime, 2 worker threads) with an SQLite master
//! store and measures, with native clients over WebSockets:
//! - acknowledged puts/s from 1 and from 10 clients (a put is acknowledged once committed);
//! - put -> change event at a Rust clone, one at a time (SQLite master; memory beside it);
//! - the time to attach a clone to a store of 1,000,000 keys (snapshot in, replica built).
//!
//! Run with: `cargo run --release -p gateway --example store_bench [DATA_DIR]`. The 1M-key
//! store stays in DATA_DIR (`bench1m.sqlite`) for `bench/store-bench.mjs` (Node clone).
//! With `BENCH_JSON=<file>`, every figure is also appended there as a JSON line
//! (`common/rows.rs`).

#[path = "common/rows.rs"]
mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use broker_client::Client;
use broker_wasm::client::CloneOptions;
use broker_wasm::protocol::Backend;
use broker_wasm::store::Change;
use broker_wasm::Data;
use futures_util::stream::{FuturesUnordered, StreamExt};

#[path = "common/gateway.rs"]
mod gateway_thread;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Puts each client keeps in flight.
const WINDOW: usize = 256;

fn start_gateway(dir: PathBuf) -> SocketAddr {
    gateway_thread::start(move |config| {
        config.data_dir = dir;
        config.queue_size = 1 << 16;
    })
    .0
}

/// `clients` clients put `total` keys (spread evenly) into `store`, each with WINDOW in
/// flight; returns acknowledged puts per second.
async fn puts(url: &str, store: &str, clients: usize, total: u64, value: &Data) -> f64 {
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(Client::connect(url).await.unwrap());
    }
    let per = total / clients as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in conns.iter().enumerate() {
        let s = client.store(store);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            // Requests in flight as plain futures (no task per put).
            let mut inflight = FuturesUnordered::new();
            for i in 0..per {
                let key = Data::Count(c as u64 * per + i);
                inflight.push(s.put(key, value.clone(), None));
                while inflight.len() >= WINDOW {
                    inflight.next().await.unwrap().unwrap();
                }
            }
            while let Some(r) = inflight.next().await {
                r.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (per * clients as u64) as f64 / start.elapsed().as_secs_f64();
    for c in conns {
        c.shutdown().await;
    }
    rate
}

/// Puts `rounds` values into `store` from one client, one at a time, each until a clone on
/// another connection reports it; returns (p50, p99).
async fn propagation(url: &str, store: &str, rounds: u64) -> (Duration, Duration) {
    let writer = Client::connect(url).await.unwrap();
    let w = writer.store(store);
    let reader = Client::connect(url).await.unwrap();
    let mut clone = reader.attach_clone(store, CloneOptions::default());
    clone.synced(Duration::from_secs(10)).await.unwrap();
    let mut lat = Vec::new();
    for i in 0..rounds {
        let t0 = Instant::now();
        let put = w.put(i % 100, i, None);
        let seen = async {
            loop {
                match clone.next_event().await {
                    Some(broker_client::CloneEvent::Changes { changes, .. }) => {
                        if changes.iter().any(|c| matches!(c, Change::Insert { value, .. } | Change::Update { value, .. } if *value == Data::Count(i))) {
                            return;
                        }
                    }
                    Some(_) => {}
                    None => panic!("the clone's client closed"),
                }
            }
        };
        let (r, seen) = tokio::join!(put, tokio::time::timeout(Duration::from_secs(10), seen));
        r.unwrap();
        seen.unwrap_or_else(|_| panic!("put {i} not seen by the clone within 10 s"));
        lat.push(t0.elapsed());
    }
    lat.sort();
    writer.shutdown().await;
    reader.shutdown().await;
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("broker-store-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let addr = start_gateway(dir.clone());
    let url = format!("ws://{addr}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let admin = Client::connect(&url).await.unwrap();
        let value = Data::Vector(vec![Data::string("ping"), Data::Count(42)]);
        println!("store benchmark (SQLite master, WAL + synchronous=NORMAL, gateway on 2 threads)");
        for (clients, total) in [(1usize, 200_000u64), (10, 500_000)] {
            let name = format!("puts{clients}");
            admin
                .attach_master(&name, Backend::Sqlite, Data::None)
                .await
                .unwrap();
            let rate = puts(&url, &name, clients, total, &value).await;
            println!(
                "acknowledged puts, {clients:>2} client(s): {:>9.0} puts/s ({total} puts, {WINDOW} in flight per client)",
                rate
            );
            rows::row(
                &format!("store.sqlite_puts_{clients}client{}", if clients > 1 { "s" } else { "" }),
                rate.round(),
                "puts/s",
                &format!("acknowledged puts to an SQLite master from {clients} Rust client(s)"),
                &format!("{WINDOW} puts in flight per client"),
                "",
            );
        }

        // Propagation to a Rust clone: a put from one client until the change event at
        // another, one at a time; for an SQLite master (the figure to quote: the put is
        // committed before it is replicated) and, for comparison, a memory master.
        for (name, backend, label) in [
            ("latency", Backend::Sqlite, "SQLite"),
            ("latency-mem", Backend::Memory, "memory"),
        ] {
            admin
                .attach_master(name, backend, Data::None)
                .await
                .unwrap();
            let (p50, p99) = propagation(&url, name, 5000).await;
            println!(
                "{label} master -> Rust clone propagation (5000 puts, one at a time): p50 {} us, p99 {} us",
                p50.as_micros(),
                p99.as_micros()
            );
            for (q, v) in [("p50", p50), ("p99", p99)] {
                rows::row(
                    &format!("store.rust_clone_{}_{q}", label.to_lowercase()),
                    v.as_micros() as f64,
                    "us",
                    &format!("put -> change event at a Rust clone, {label} master, {q} of 5,000"),
                    "one put at a time",
                    "",
                );
            }
        }

        // A store of 1,000,000 keys, then a clone of it.
        admin
            .attach_master("bench1m", Backend::Sqlite, Data::None)
            .await
            .unwrap();
        let fill = Instant::now();
        let rate = puts(&url, "bench1m", 10, 1_000_000, &value).await;
        println!(
            "filled bench1m: 1,000,000 keys in {:.1} s ({rate:.0} puts/s)",
            fill.elapsed().as_secs_f64()
        );
        rows::row(
            "store.sqlite_fill_1m",
            rate.round(),
            "puts/s",
            "acknowledged puts of 1,000,000 keys into an SQLite master from 10 Rust clients",
            &format!("{WINDOW} puts in flight per client"),
            "",
        );
        let reader = Client::connect(&url).await.unwrap();
        let start = Instant::now();
        let mut clone = reader.attach_clone("bench1m", CloneOptions::default());
        clone.synced(Duration::from_secs(120)).await.unwrap();
        let took = start.elapsed();
        assert_eq!(clone.len(), 1_000_000);
        println!(
            "attach a Rust clone to 1,000,000 keys: {:.2} s (snapshot and replica)",
            took.as_secs_f64()
        );
        rows::row(
            "store.rust_clone_attach_1m",
            (took.as_secs_f64() * 100.0).round() / 100.0,
            "s",
            "attach a Rust clone to a 1,000,000-key SQLite store (snapshot in, replica built)",
            "",
            "",
        );
        reader.shutdown().await;
        admin.shutdown().await;
    });
    println!("data left in {}", dir.display());
}
