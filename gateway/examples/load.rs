//! Load test: many concurrent WebSocket clients on one gateway process.
//!
//! Starts the `broker-gateway` binary (release build) on 127.0.0.1:0, or uses a running one
//! (`--url`, with `--pid` for its memory), and opens `--clients` native connections from this
//! one process. Client `i` subscribes to its own prefix `/load/c/<i>/`; every
//! `--shared-every`th client also subscribes to one of `--groups` shared prefixes
//! `/load/s/<g>/`. A publisher then sends rounds — one message to every client's own prefix
//! and one to every shared prefix — for `--seconds`, staying at most `--window` rounds ahead
//! of what the clients received (publishing is fire-and-forget and queues are bounded, so an
//! unpaced publisher would measure how fast messages can be dropped).
//!
//! Reported: the gateway's resident memory (VmRSS) before and after the clients connected,
//! hence memory per connection; the delivery rate held; per-client received vs expected
//! (losses, duplicates) and the gateway's drop counters from `/metrics`.
//!
//! Run with `scripts/load-test.sh [flags]` (raises the open-file limit, builds, runs), or
//! `cargo run --release -p gateway --example load -- --clients 10000`. With
//! `BENCH_JSON=<file>`, the summary's figures are also appended there as JSON lines
//! (`common/rows.rs`).

#[path = "common/rows.rs"]
mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_wasm::protocol::{self, ClientMsg, Encoding, Hello, ServerMsg};
use broker_wasm::Data;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone)]
struct Opts {
    clients: usize,
    groups: usize,
    shared_every: usize,
    seconds: f64,
    window: u64,
    url: Option<String>,
    pid: Option<u32>,
    gateway_args: Vec<String>,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        clients: 10_000,
        groups: 10,
        shared_every: 4,
        seconds: 10.0,
        window: 4,
        url: None,
        pid: None,
        gateway_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--clients" => o.clients = val().parse().expect("--clients N"),
            "--groups" => o.groups = val().parse().expect("--groups N"),
            "--shared-every" => o.shared_every = val().parse().expect("--shared-every N"),
            "--seconds" => o.seconds = val().parse().expect("--seconds S"),
            "--window" => o.window = val().parse().expect("--window ROUNDS"),
            "--url" => o.url = Some(val()),
            "--pid" => o.pid = Some(val().parse().expect("--pid PID")),
            "--" => o.gateway_args.extend(args.by_ref()),
            "-h" | "--help" => {
                println!(
                    "load [--clients N] [--groups N] [--shared-every N] [--seconds S] \
                     [--window ROUNDS] [--url ws://HOST:PORT [--pid PID]] [-- GATEWAY-FLAGS]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (see --help)"),
        }
    }
    assert!(o.groups > 0 && o.shared_every > 0 && o.clients > 0);
    o
}

/// The gateway binary: `$BROKER_GATEWAY_BIN`, else this workspace's release build.
fn gateway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BROKER_GATEWAY_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/broker-gateway")
}

/// Starts the gateway on 127.0.0.1:0; returns the process and its address.
fn start_gateway(o: &Opts) -> (Child, SocketAddr) {
    use std::io::BufRead;
    let bin = gateway_bin();
    assert!(
        bin.exists(),
        "{} not found: cargo build --release -p gateway",
        bin.display()
    );
    let dir = std::env::temp_dir().join(format!("broker-load-{}", std::process::id()));
    let limit = (o.clients + 100).to_string();
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(["--max-connections", &limit])
        .args(["--max-connections-per-address", "0"])
        .args(&o.gateway_args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn broker-gateway");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    (child, addr)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn open_files_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let l = s.lines().find(|l| l.starts_with("Max open files"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}

/// `broker_<name>` from the gateway's `/metrics`.
async fn metrics(addr: SocketAddr) -> std::collections::HashMap<String, u64> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .filter(|l| l.starts_with("broker_"))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.trim_start_matches("broker_").to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// What one client counted.
#[derive(Debug, Default)]
struct Counts {
    received: AtomicU64,
    /// Messages the gateway said it dropped for this client ("slow consumer: N ...").
    dropped_notes: AtomicU64,
}

fn group_of(i: usize, o: &Opts) -> Option<usize> {
    (i % o.shared_every == 0).then(|| (i / o.shared_every) % o.groups)
}

/// One subscribing client: hello + subscribe + ping in one frame, waits for the pong, then
/// counts messages until the connection ends.
async fn client(
    url: String,
    i: usize,
    o: Arc<Opts>,
    counts: Arc<Counts>,
    total: Arc<AtomicU64>,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        protocol::SUBPROTOCOL_BINARY.parse().unwrap(),
    );
    // Small buffers: 10,000 of these live in this process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut ws = None;
    for attempt in 0..20 {
        match tokio_tungstenite::connect_async_with_config(req.clone(), Some(config), true).await {
            Ok((s, _)) => {
                ws = Some(s);
                break;
            }
            Err(e) if attempt == 19 => panic!("client {i}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await,
        }
    }
    let mut ws = ws.unwrap();
    let mut topics = vec![format!("/load/c/{i}/")];
    if let Some(g) = group_of(i, &o) {
        topics.push(format!("/load/s/{g}/"));
    }
    let first = Encoding::Binary
        .encode(&[
            ClientMsg::Hello(Hello {
                client: "load".into(),
                token: None,
                statuses: false,
            }),
            ClientMsg::Subscribe { topics },
            ClientMsg::Ping { nonce: 1 },
        ])
        .unwrap();
    ws.send(Message::Binary(first.into())).await.unwrap();
    let mut ready = Some(ready);
    while let Some(Ok(m)) = ws.next().await {
        let Message::Binary(b) = m else { continue };
        let mut n = 0;
        let _ = protocol::for_each_binary::<ServerMsg>(&b, usize::MAX, |msg, _| match msg {
            ServerMsg::Message(_) => n += 1,
            ServerMsg::Pong { .. } => {
                if let Some(r) = ready.take() {
                    let _ = r.try_send(());
                }
            }
            ServerMsg::Error(e) => {
                if let Some(k) = e
                    .context
                    .strip_prefix("slow consumer: ")
                    .and_then(|r| r.split(' ').next())
                    .and_then(|k| k.parse::<u64>().ok())
                {
                    counts.dropped_notes.fetch_add(k, Relaxed);
                }
            }
            _ => {}
        });
        counts.received.fetch_add(n, Relaxed);
        total.fetch_add(n, Relaxed);
    }
}

fn main() {
    let o = Arc::new(parse_opts());
    if let Some(limit) = open_files_limit() {
        if limit < o.clients as u64 + 200 {
            eprintln!(
                "warning: the open-file limit is {limit}; {} clients need about {} open files \
                 here and in the gateway (raise it with `ulimit -n`, as scripts/load-test.sh \
                 does)",
                o.clients,
                o.clients + 200
            );
        }
    }
    let (child, addr, pid) = match &o.url {
        Some(u) => {
            let hostport = u.trim_start_matches("ws://").trim_end_matches('/');
            let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
                .expect("--url ws://HOST:PORT")
                .next()
                .unwrap();
            (None, addr, o.pid)
        }
        None => {
            let (c, a) = start_gateway(&o);
            let pid = c.id();
            (Some(c), a, Some(pid))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(run(o.clone(), addr, pid));
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("broker-load-{}", std::process::id())),
        );
    }
    if !result {
        std::process::exit(1);
    }
}

async fn run(o: Arc<Opts>, addr: SocketAddr, pid: Option<u32>) -> bool {
    let url = format!("ws://{addr}/v1/broker");
    let n = o.clients;
    // Let the gateway settle (its runtime and allocator warm up) before the baseline.
    let _ = metrics(addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = pid.and_then(rss_kib);

    println!(
        "connecting {n} clients to {addr} ({} on shared prefixes, {} groups)",
        (0..n).filter(|i| group_of(*i, &o).is_some()).count(),
        o.groups
    );
    let t0 = Instant::now();
    let counts: Arc<Vec<Arc<Counts>>> = Arc::new((0..n).map(|_| Arc::default()).collect());
    let total = Arc::new(AtomicU64::new(0));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(n.max(1));
    let connecting = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (url, o, c, t, r) = (
            url.clone(),
            o.clone(),
            counts[i].clone(),
            total.clone(),
            ready_tx.clone(),
        );
        let permit = connecting.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            // The permit is held until this client is subscribed (or failed).
            let (rtx, mut rrx) = tokio::sync::mpsc::channel(1);
            let run = tokio::spawn(client(url, i, o, c, t, rtx));
            let _ = rrx.recv().await;
            drop(permit);
            let _ = r.send(()).await;
            let _ = run.await;
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let m = metrics(addr).await;
    let connected = m.get("connections_native").copied().unwrap_or(0);
    println!("{connected} clients connected and subscribed in {connect_secs:.1} s");
    // Let freed startup memory settle before reading RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = pid.and_then(rss_kib);

    // The publisher: rounds of one message per client prefix and one per shared prefix.
    let publisher = broker_client::Client::connect(&format!("ws://{addr}"))
        .await
        .expect("publisher");
    let shared_members: Vec<u64> = (0..o.groups)
        .map(|g| (0..n).filter(|i| group_of(*i, &o) == Some(g)).count() as u64)
        .collect();
    let per_round = n as u64 + shared_members.iter().sum::<u64>();
    let client_topics: Vec<String> = (0..n).map(|i| format!("/load/c/{i}/m")).collect();
    let group_topics: Vec<String> = (0..o.groups).map(|g| format!("/load/s/{g}/m")).collect();
    println!(
        "publishing for {} s: rounds of {} messages ({per_round} deliveries), at most {} \
         rounds ahead of the clients",
        o.seconds,
        n + o.groups,
        o.window
    );
    let base = total.load(Relaxed);
    let m0 = metrics(addr).await;
    let t1 = Instant::now();
    let mut rounds = 0u64;
    let mut stalled = false;
    while t1.elapsed().as_secs_f64() < o.seconds {
        // Pace: wait until the clients received all but `window` rounds.
        let want = (rounds.saturating_sub(o.window)) * per_round;
        let wait_start = Instant::now();
        while total.load(Relaxed) - base < want {
            if wait_start.elapsed() > Duration::from_secs(10) {
                stalled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stalled {
            break;
        }
        let r = Data::Count(rounds);
        for t in &client_topics {
            publisher.publish(t.as_str(), r.clone()).await.unwrap();
        }
        for t in &group_topics {
            publisher.publish(t.as_str(), r.clone()).await.unwrap();
        }
        rounds += 1;
    }
    publisher.flush().await.unwrap();
    let publish_secs = t1.elapsed().as_secs_f64();
    // Wait for the tail (until everything arrived or nothing moved for 3 s).
    let expected_total = rounds * per_round;
    let mut last = (total.load(Relaxed), Instant::now());
    while total.load(Relaxed) - base < expected_total {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = total.load(Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let delivered = total.load(Relaxed) - base;
    let flow_secs = t1.elapsed().as_secs_f64();
    let m1 = metrics(addr).await;
    let rss2 = pid.and_then(rss_kib);

    // Per-client accounting.
    let mut lost = 0u64;
    let mut extra = 0u64;
    let mut clients_short = 0usize;
    let mut noted = 0u64;
    for (i, c) in counts.iter().enumerate() {
        let expect = rounds * (1 + u64::from(group_of(i, &o).is_some()));
        let got = c.received.load(Relaxed);
        noted += c.dropped_notes.load(Relaxed);
        if got < expect {
            lost += expect - got;
            clients_short += 1;
        } else {
            extra += got - expect;
        }
    }
    let delta = |k: &str| m1.get(k).unwrap_or(&0) - m0.get(k).unwrap_or(&0);
    let dropped = delta("dropped_total");
    let slow_disconnects = delta("slow_disconnects_total");

    println!();
    println!("== load test summary ==");
    println!("clients                 {connected} connected of {n} (connect + subscribe {connect_secs:.1} s)");
    match (rss0, rss1, rss2) {
        (Some(a), Some(b), Some(c)) => {
            let per = (b.saturating_sub(a)) as f64 / n as f64;
            println!("gateway RSS             {a} KiB idle, {b} KiB with clients, {c} KiB after the load");
            println!(
                "memory per connection   {per:.1} KiB connected and subscribed, {:.1} KiB after the load \
                 (target <= 50 KiB)",
                (c.saturating_sub(a)) as f64 / n as f64
            );
        }
        _ => println!("gateway RSS             unknown (give --pid with --url)"),
    }
    println!(
        "published               {rounds} rounds in {publish_secs:.1} s: {} messages, {:.0} msgs/s",
        rounds * (n + o.groups) as u64,
        (rounds * (n + o.groups) as u64) as f64 / publish_secs
    );
    println!(
        "delivered               {delivered} of {expected_total} in {flow_secs:.1} s: {:.0} deliveries/s held",
        delivered as f64 / flow_secs
    );
    println!(
        "losses                  {lost} messages missing at {clients_short} clients, {extra} extra"
    );
    println!(
        "gateway drop counters   broker_dropped_total +{dropped}, broker_slow_disconnects_total \
         +{slow_disconnects}, drops reported to clients {noted}"
    );
    let ok = !stalled && extra == 0 && lost <= dropped && connected as usize >= n;
    let paced = format!("publisher at most {} rounds ahead of the clients", o.window);
    let verdict = if ok { "" } else { "verdict FAILED" };
    rows::row(
        "load.clients_connected",
        connected as f64,
        "clients",
        &format!("clients connected and subscribed (of {n})"),
        "",
        verdict,
    );
    rows::row(
        "load.connect_seconds",
        (connect_secs * 10.0).round() / 10.0,
        "s",
        &format!("connect and subscribe {n} clients, 256 handshakes at a time"),
        "",
        "",
    );
    if let (Some(a), Some(b)) = (rss0, rss1) {
        rows::row(
            "load.memory_per_connection",
            ((b.saturating_sub(a)) as f64 / n as f64 * 10.0).round() / 10.0,
            "KiB",
            "gateway RSS growth per connected and subscribed client",
            "",
            "",
        );
    }
    rows::row(
        "load.deliveries_per_s",
        (delivered as f64 / flow_secs).round(),
        "deliveries/s",
        &format!(
            "one publisher -> {n} clients on own and shared prefixes, for {} s",
            o.seconds
        ),
        &paced,
        verdict,
    );
    rows::row(
        "load.lost",
        lost as f64,
        "messages",
        "messages missing at the clients (dropped by the gateway's policy or lost)",
        &paced,
        verdict,
    );
    println!(
        "verdict                 {}",
        if ok && lost == 0 {
            "OK: nothing lost"
        } else if ok {
            "OK: losses within the drop policy (every missing message was counted as dropped)"
        } else {
            "FAILED"
        }
    );
    for t in tasks {
        t.abort();
    }
    ok
}
