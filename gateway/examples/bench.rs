//! Gateway benchmark: starts a gateway (its own runtime, 2 worker threads) and native clients,
//! then measures with `["ping", i]` messages:
//! - 1 publisher -> 1 subscriber, with and without publish batching (msgs/s);
//! - 1 publisher -> 100 subscribers (deliveries/s);
//! - ping-pong round trip through the gateway (p50/p99);
//! - 1 -> 1 for clients of the Zeek WebSocket JSON API.
//!
//! Run with: `cargo run --release -p gateway --example bench [messages]`

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_client::{Client, ClientOptions};
use broker_wasm::{zeek_json, Data};
use futures_util::{SinkExt, StreamExt};
use gateway::{Config, Endpoint};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ping(i: u64) -> Data {
    Data::Vector(vec![Data::string("ping"), Data::Count(i)])
}

fn start_gateway() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut config = Config::embedded();
            config.queue_size = 1 << 16;
            let ep = Endpoint::new(config);
            let addr = ep.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Messages a publisher may be ahead of its slowest subscriber. Publishing is
/// fire-and-forget and queues are bounded (excess is dropped), so the benchmark paces the
/// publisher end to end to measure the rate the system sustains without loss.
const WINDOW: u64 = 20_000;

/// Takes `n` messages from `sub` (or stops after 10 s of silence), reporting progress;
/// returns how many arrived. Waits for one message, then takes whatever else is queued.
async fn receive(sub: &mut broker_client::Subscriber, n: u64, progress: &Progress) -> u64 {
    let mut got = 0u64;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(10), sub.get()).await {
            Ok(Ok(_)) => {
                let k = 1 + sub.poll().len() as u64;
                got += k;
                progress.add(k);
            }
            _ => break,
        }
    }
    got
}

/// Received-count shared between subscriber tasks and the publisher.
#[derive(Default)]
struct Progress {
    received: AtomicU64,
    notify: Notify,
}

impl Progress {
    fn add(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
        self.notify.notify_waiters();
    }

    async fn wait_for(&self, at_least: u64) {
        while self.received.load(Relaxed) < at_least {
            let notified = self.notify.notified();
            if self.received.load(Relaxed) >= at_least {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), notified).await;
        }
    }
}

async fn one_to_one(addr: SocketAddr, n: u64, batching: bool) -> f64 {
    let url = format!("ws://{addr}");
    let opts = ClientOptions {
        batching,
        ..ClientOptions::default()
    };
    let publisher = Client::connect_with(&url, opts).await.unwrap();
    let subscriber = Client::connect(&url).await.unwrap();
    let mut sub = subscriber.make_subscriber(["/bench/1to1"]);
    subscriber.flush().await.unwrap();
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let p = progress.clone();
    let recv = tokio::spawn(async move { receive(&mut sub, n, &p).await });
    for i in 0..n {
        if i % 1024 == 0 && i > WINDOW {
            progress.wait_for(i - WINDOW).await;
        }
        publisher.publish("/bench/1to1", ping(i)).await.unwrap();
    }
    let got = recv.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    if got < n {
        println!("  (received {got} of {n}: the subscriber's queue dropped the rest)");
    }
    publisher.shutdown().await;
    subscriber.shutdown().await;
    got as f64 / secs
}

async fn one_to_many(addr: SocketAddr, n: u64, subscribers: usize) -> f64 {
    let url = format!("ws://{addr}");
    let publisher = Client::connect(&url).await.unwrap();
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    let progress = Arc::new(Progress::default());
    for _ in 0..subscribers {
        let c = Client::connect(&url).await.unwrap();
        let mut sub = c.make_subscriber(["/bench/fan"]);
        c.flush().await.unwrap();
        clients.push(c);
        let p = progress.clone();
        tasks.push(async move { receive(&mut sub, n, &p).await });
    }
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let start = Instant::now();
    let window = WINDOW / 4;
    for i in 0..n {
        if i % 256 == 0 && i > window {
            // Every subscriber within the window: total deliveries >= subscribers * (i - window).
            progress.wait_for((i - window) * subscribers as u64).await;
        }
        publisher.publish("/bench/fan", ping(i)).await.unwrap();
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    publisher.shutdown().await;
    for c in clients {
        c.shutdown().await;
    }
    total as f64 / secs
}

async fn round_trips(addr: SocketAddr, n: usize) -> (Duration, Duration) {
    let url = format!("ws://{addr}");
    let a = Client::connect(&url).await.unwrap();
    let b = Client::connect(&url).await.unwrap();
    let mut a_sub = a.make_subscriber(["/bench/pong"]);
    let mut b_sub = b.make_subscriber(["/bench/ping"]);
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let echo = b.clone();
    tokio::spawn(async move {
        while let Ok((_, d)) = b_sub.get().await {
            if echo.publish("/bench/pong", d).await.is_err() {
                break;
            }
        }
    });
    let mut rtts = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        a.publish("/bench/ping", ping(i)).await.unwrap();
        a_sub.get().await.unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    a.shutdown().await;
    b.shutdown().await;
    (rtts[n / 2], rtts[n * 99 / 100])
}

async fn zeek_one_to_one(addr: SocketAddr, n: u64) -> f64 {
    let url = format!("ws://{addr}{}", zeek_json::PATH);
    let (mut publisher, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut subscriber, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    publisher.send(Message::Text("[]".into())).await.unwrap();
    subscriber
        .send(Message::Text(r#"["/bench/zeek"]"#.into()))
        .await
        .unwrap();
    publisher.next().await.unwrap().unwrap(); // ack
    subscriber.next().await.unwrap().unwrap(); // ack
    let progress = Arc::new(Progress::default());
    let p = progress.clone();
    let start = Instant::now();
    let recv = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(10), subscriber.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => {
                    got += 1;
                    if got % 256 == 0 {
                        p.add(256);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        got
    });
    for i in 0..n {
        let text = zeek_json::data_message("/bench/zeek", &ping(i)).unwrap();
        publisher.feed(Message::Text(text.into())).await.unwrap();
        if i % 256 == 255 {
            publisher.flush().await.unwrap();
            if i > WINDOW {
                progress.wait_for(i - WINDOW).await;
            }
        }
    }
    publisher.flush().await.unwrap();
    let got = recv.await.unwrap();
    got as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
    }
    let addr = start_gateway();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!("gateway at {addr}; {n} messages per throughput case");
        let r = one_to_one(addr, n, true).await;
        println!("native 1 -> 1, batched publishes      {r:>12.0} msgs/s");
        if std::env::var_os("BENCH_ONLY_1TO1").is_some() {
            return;
        }
        let r = one_to_one(addr, n / 10, false).await;
        println!("native 1 -> 1, one frame per publish  {r:>12.0} msgs/s");
        let r = one_to_many(addr, n / 20, 100).await;
        println!("native 1 -> 100                       {r:>12.0} deliveries/s");
        let (p50, p99) = round_trips(addr, 20_000).await;
        println!(
            "native ping-pong round trip           p50 {:>6} us   p99 {:>6} us",
            p50.as_micros(),
            p99.as_micros()
        );
        let r = zeek_one_to_one(addr, n / 10).await;
        println!("Zeek JSON API 1 -> 1                  {r:>12.0} msgs/s");
    });
}
