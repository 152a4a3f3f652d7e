//! Gateway benchmark: starts a gateway (its own runtime, 2 worker threads) and native clients,
//! then measures with `["ping", i]` messages:
//! - 1 publisher -> 1 subscriber, with and without publish batching (msgs/s);
//! - 1 publisher -> 100 subscribers (deliveries/s), paced against the slowest subscriber;
//! - ping-pong round trip through the gateway (p50/p99);
//! - 1 -> 1 for clients of the Zeek WebSocket JSON API.
//!
//! Every publisher is paced: it stays at most WINDOW messages ahead of its slowest subscriber.
//! Each case reports what arrived against what was sent, and the gateway's drop counter.
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

fn start_gateway() -> (SocketAddr, Endpoint) {
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
            tx.send((addr, ep)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// The gateway's `broker_dropped_total`.
fn dropped(ep: &Endpoint) -> u64 {
    ep.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("broker_dropped_total "))
        .and_then(|v| v.parse().ok())
        .expect("broker_dropped_total in /metrics")
}

/// What a case delivered: received of expected, and how many the gateway dropped meanwhile.
struct Outcome {
    rate: f64,
    received: u64,
    expected: u64,
    gateway_dropped: u64,
    stalled: bool,
}

impl Outcome {
    fn losses(&self) -> String {
        let lost = self.expected - self.received.min(self.expected);
        let mut s = if lost == 0 {
            format!("all {} received", self.expected)
        } else {
            format!(
                "{} of {} received, {lost} lost",
                self.received, self.expected
            )
        };
        s += &format!(", gateway dropped {}", self.gateway_dropped);
        if self.stalled {
            s += "; the receivers stopped progressing, publishing stopped";
        }
        s
    }
}

/// Messages a publisher may be ahead of its slowest subscriber. Publishing is
/// fire-and-forget and queues are bounded (excess is dropped), so the benchmark paces the
/// publisher end to end to measure the rate the system sustains without loss.
const WINDOW: u64 = 20_000;

/// A receiver that gets nothing for this long is done; a publisher whose slowest receiver
/// does not progress for this long stops publishing.
const SILENCE: Duration = Duration::from_secs(10);

/// Takes `n` messages from `sub` (or stops after SILENCE), reporting progress as receiver
/// `idx`; returns how many arrived. Waits for one message, then takes whatever else is queued.
async fn receive(
    sub: &mut broker_client::Subscriber,
    n: u64,
    progress: &Progress,
    idx: usize,
) -> u64 {
    let mut got = 0u64;
    while got < n {
        match tokio::time::timeout(SILENCE, sub.get()).await {
            Ok(Ok(_)) => {
                let k = 1 + sub.poll().len() as u64;
                got += k;
                progress.add(idx, k);
            }
            _ => break,
        }
    }
    got
}

/// Received-counts of each receiver, shared between receiver tasks and the publisher.
struct Progress {
    received: Vec<AtomicU64>,
    notify: Notify,
}

impl Progress {
    fn new(receivers: usize) -> Progress {
        Progress {
            received: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
            notify: Notify::new(),
        }
    }

    fn add(&self, idx: usize, n: u64) {
        self.received[idx].fetch_add(n, Relaxed);
        self.notify.notify_waiters();
    }

    /// What the slowest receiver has counted.
    fn slowest(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Waits until every receiver counted at least `at_least`; false if the slowest did not
    /// progress for SILENCE (messages were lost: waiting longer would never end).
    async fn wait_for(&self, at_least: u64) -> bool {
        let mut last = (self.slowest(), Instant::now());
        loop {
            let notified = self.notify.notified();
            let slowest = self.slowest();
            if slowest >= at_least {
                return true;
            }
            if slowest != last.0 {
                last = (slowest, Instant::now());
            } else if last.1.elapsed() >= SILENCE {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), notified).await;
        }
    }
}

async fn one_to_one(addr: SocketAddr, ep: &Endpoint, n: u64, batching: bool) -> Outcome {
    let url = format!("ws://{addr}");
    let opts = ClientOptions {
        batching,
        ..ClientOptions::default()
    };
    let publisher = Client::connect_with(&url, opts).await.unwrap();
    let subscriber = Client::connect(&url).await.unwrap();
    let mut sub = subscriber.make_subscriber(["/bench/1to1"]);
    subscriber.flush().await.unwrap();
    let progress = Arc::new(Progress::new(1));
    let dropped0 = dropped(ep);
    let start = Instant::now();
    let p = progress.clone();
    let recv = tokio::spawn(async move { receive(&mut sub, n, &p, 0).await });
    let mut stalled = false;
    for i in 0..n {
        if i % 1024 == 0 && i > WINDOW && !progress.wait_for(i - WINDOW).await {
            stalled = true;
            break;
        }
        publisher.publish("/bench/1to1", ping(i)).await.unwrap();
    }
    let got = recv.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    publisher.shutdown().await;
    subscriber.shutdown().await;
    Outcome {
        rate: got as f64 / secs,
        received: got,
        expected: n,
        gateway_dropped: dropped(ep) - dropped0,
        stalled,
    }
}

async fn one_to_many(addr: SocketAddr, ep: &Endpoint, n: u64, subscribers: usize) -> Outcome {
    let url = format!("ws://{addr}");
    let publisher = Client::connect(&url).await.unwrap();
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    let progress = Arc::new(Progress::new(subscribers));
    for idx in 0..subscribers {
        let c = Client::connect(&url).await.unwrap();
        let mut sub = c.make_subscriber(["/bench/fan"]);
        c.flush().await.unwrap();
        clients.push(c);
        let p = progress.clone();
        tasks.push(async move { receive(&mut sub, n, &p, idx).await });
    }
    let dropped0 = dropped(ep);
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let start = Instant::now();
    let window = WINDOW / 4;
    let mut stalled = false;
    for i in 0..n {
        // The slowest subscriber within the window.
        if i % 256 == 0 && i > window && !progress.wait_for(i - window).await {
            stalled = true;
            break;
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
    Outcome {
        rate: total as f64 / secs,
        received: total,
        expected: n * subscribers as u64,
        gateway_dropped: dropped(ep) - dropped0,
        stalled,
    }
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
        tokio::time::timeout(SILENCE, a_sub.get())
            .await
            .unwrap_or_else(|_| panic!("round trip {i}: no pong within {SILENCE:?}"))
            .unwrap();
        rtts.push(t.elapsed());
    }
    rtts.sort();
    a.shutdown().await;
    b.shutdown().await;
    (rtts[n / 2], rtts[n * 99 / 100])
}

async fn zeek_one_to_one(addr: SocketAddr, ep: &Endpoint, n: u64) -> Outcome {
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
    let progress = Arc::new(Progress::new(1));
    let p = progress.clone();
    let dropped0 = dropped(ep);
    let start = Instant::now();
    let recv = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n {
            match tokio::time::timeout(SILENCE, subscriber.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => {
                    got += 1;
                    if got % 256 == 0 {
                        p.add(0, 256);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        got
    });
    let mut stalled = false;
    for i in 0..n {
        let text = zeek_json::data_message("/bench/zeek", &ping(i)).unwrap();
        publisher.feed(Message::Text(text.into())).await.unwrap();
        if i % 256 == 255 {
            publisher.flush().await.unwrap();
            if i > WINDOW && !progress.wait_for(i - WINDOW).await {
                stalled = true;
                break;
            }
        }
    }
    publisher.flush().await.unwrap();
    let got = recv.await.unwrap();
    Outcome {
        rate: got as f64 / start.elapsed().as_secs_f64(),
        received: got,
        expected: n,
        gateway_dropped: dropped(ep) - dropped0,
        stalled,
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
    }
    let (addr, ep) = start_gateway();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!("gateway at {addr} (queue 65536 per consumer); {n} messages per throughput case");
        println!("every publisher stays at most {WINDOW} messages ahead of its slowest subscriber");
        let r = one_to_one(addr, &ep, n, true).await;
        println!(
            "native 1 -> 1, batched publishes      {:>12.0} msgs/s ({})",
            r.rate,
            r.losses()
        );
        if std::env::var_os("BENCH_ONLY_1TO1").is_some() {
            return;
        }
        let r = one_to_one(addr, &ep, n / 10, false).await;
        println!(
            "native 1 -> 1, one frame per publish  {:>12.0} msgs/s ({})",
            r.rate,
            r.losses()
        );
        let r = one_to_many(addr, &ep, n / 20, 100).await;
        println!(
            "native 1 -> 100 (window {} messages)  {:>12.0} deliveries/s ({})",
            WINDOW / 4,
            r.rate,
            r.losses()
        );
        let (p50, p99) = round_trips(addr, 20_000).await;
        println!(
            "native ping-pong round trip           p50 {:>6} us   p99 {:>6} us",
            p50.as_micros(),
            p99.as_micros()
        );
        let r = zeek_one_to_one(addr, &ep, n / 10).await;
        println!(
            "Zeek JSON API 1 -> 1                  {:>12.0} msgs/s ({})",
            r.rate,
            r.losses()
        );
    });
}
