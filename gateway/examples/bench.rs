//! Gateway benchmark: starts a gateway (its own runtime, 2 worker threads) and native clients,
//! then measures with `["ping", i]` messages:
//! - 1 publisher -> 1 subscriber, with and without publish batching (msgs/s);
//! - right after the batched case, the same traffic through a bare relay (below), and the
//!   gateway's batched figure as a share of the relay's;
//! - 1 publisher -> 100 subscribers (deliveries/s), paced against the slowest subscriber;
//! - ping-pong round trip through the gateway (p50/p99);
//! - 1 -> 1 for clients of the Zeek WebSocket JSON API.
//!
//! Every publisher is paced: it stays at most WINDOW messages ahead of its slowest subscriber.
//! Each case reports what arrived against what was sent, and the gateway's drop counter.
//!
//! The bare relay is the floor under the gateway's 1 -> 1 figure: what the same WebSocket
//! library, runtime and machine cost without a broker. It is a tokio-tungstenite server on
//! its own runtime (2 worker threads, as the gateway) that accepts a subscriber's connection,
//! then a publisher's, and forwards every binary frame of the publisher to the subscriber
//! unchanged: no handshake, no routing, no decoding, no queue of its own. Its publisher sends
//! the frames `broker_client::Client` sends with batching: it drives the client's own core
//! (`ClientCore::publish`, then `take_frame_max`, binary encoding) with the client's writer
//! loop and its limit of 16,384 unsent messages. (The real `Client` cannot be used: it waits
//! for the gateway's welcome.) How many messages the client puts in a frame depends on
//! timing (everything queued when its writer gets to it) and differs between the two
//! servers, so the relay's publisher caps its frames at the average the gateway counted
//! (`broker_frames_in_total`) from the client in the case just before: both cases carry the
//! same frames (both counts are printed). Its subscriber decodes every frame and every
//! message in it (`for_each_binary::<ClientMsg>`) and counts the publishes; unlike the
//! client it hands them to no subscriber queue. Same messages, same count, same pacing
//! (WINDOW, checked every 1,024 messages) as the gateway's batched case, run right after it.
//!
//! With `BENCH_JSON=<file>`, every figure is also appended there as a JSON line
//! (`common/rows.rs`).
//!
//! Run with: `cargo run --release -p gateway --example bench [messages]`

#[path = "common/rows.rs"]
mod rows;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_client::{Client, ClientOptions};
use broker_wasm::client::ClientCore;
use broker_wasm::protocol::{self, ClientMsg, Encoding};
use broker_wasm::{zeek_json, Data};
use futures_util::{SinkExt, StreamExt};
use gateway::Endpoint;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[path = "common/gateway.rs"]
mod gateway_thread;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ping(i: u64) -> Data {
    Data::Vector(vec![Data::string("ping"), Data::Count(i)])
}

fn start_gateway() -> (SocketAddr, Endpoint) {
    gateway_thread::start(|config| config.queue_size = 1 << 16)
}

/// The gateway's `broker_dropped_total`.
fn dropped(ep: &Endpoint) -> u64 {
    counter(ep, "dropped_total")
}

/// The gateway's counter `broker_<name>`.
fn counter(ep: &Endpoint, name: &str) -> u64 {
    ep.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("broker_{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("broker_{name} in /metrics"))
}

/// What a case delivered: received of expected, and how many the gateway dropped meanwhile.
struct Outcome {
    rate: f64,
    received: u64,
    expected: u64,
    gateway_dropped: u64,
    stalled: bool,
    /// Frames that carried the messages (0: not counted).
    frames: u64,
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

    /// "" for a clean run, else what went wrong (for the JSON rows).
    fn note(&self) -> String {
        let lost = self.expected - self.received.min(self.expected);
        let mut parts = Vec::new();
        if lost > 0 {
            parts.push(format!("{lost} of {} lost", self.expected));
        }
        if self.stalled {
            parts.push("receivers stalled".to_owned());
        }
        parts.join("; ")
    }
}

/// "K frames, M messages per frame" of what the publisher of a 1 -> 1 case sent.
fn per_frame(messages: u64, frames: u64) -> String {
    format!(
        "{frames} publisher frames, {:.0} messages per frame",
        messages as f64 / frames.max(1) as f64
    )
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
    let frames0 = counter(ep, "frames_in_total");
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
    // The publisher's frames (and nothing else: the subscriber is idle meanwhile).
    let frames = counter(ep, "frames_in_total") - frames0;
    publisher.shutdown().await;
    subscriber.shutdown().await;
    Outcome {
        rate: got as f64 / secs,
        received: got,
        expected: n,
        gateway_dropped: dropped(ep) - dropped0,
        stalled,
        frames,
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
        frames: 0,
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
        frames: 0,
    }
}

/// The bare relay (see the header): returns its address. Each pair of connections it accepts
/// is a subscriber (the first) and a publisher (the second).
fn start_relay() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let accept = || async {
                let (tcp, _) = listener.accept().await.unwrap();
                let _ = tcp.set_nodelay(true);
                tokio_tungstenite::accept_async(tcp).await.unwrap()
            };
            loop {
                let subscriber = accept().await;
                let mut publisher = accept().await;
                tokio::spawn(async move {
                    let mut subscriber = subscriber;
                    while let Some(Ok(m)) = publisher.next().await {
                        match m {
                            Message::Binary(_) if subscriber.send(m).await.is_err() => break,
                            Message::Close(_) => break,
                            _ => {}
                        }
                    }
                    let _ = subscriber.close(None).await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// A WebSocket to `addr` as the client opens one (Nagle off, default configuration).
async fn raw_connect(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    ws
}

/// Unsent messages a batching client holds before `publish` waits (`broker_client`'s
/// `MAX_QUEUED`).
const CLIENT_MAX_QUEUED: usize = 16_384;

/// The publishing half of `broker_client::Client` without the gateway: the client core
/// queues publishes, a writer task sends everything queued as one frame, `publish` waits
/// while CLIENT_MAX_QUEUED messages are unsent.
struct RawPublisher {
    core: Mutex<ClientCore>,
    wake: Notify,
    room: Notify,
}

impl RawPublisher {
    /// A publisher on `ws` whose frames carry at most `max` messages.
    fn spawn(
        ws: WebSocketStream<TcpStream>,
        max: usize,
    ) -> (Arc<RawPublisher>, tokio::task::JoinHandle<()>) {
        let mut core = ClientCore::new(Encoding::Binary, "rust-client");
        core.on_open();
        // The hello: the relay has no handshake, so it is not sent.
        let _ = core.take_frame();
        let p = Arc::new(RawPublisher {
            core: Mutex::new(core),
            wake: Notify::new(),
            room: Notify::new(),
        });
        let w = p.clone();
        let writer = tokio::spawn(async move {
            let mut ws = ws;
            loop {
                let woken = w.wake.notified();
                loop {
                    let frame = w.core.lock().unwrap().take_frame_max(max);
                    let Some(frame) = frame else { break };
                    w.room.notify_waiters();
                    if ws.send(Message::Binary(frame.into())).await.is_err() {
                        return;
                    }
                }
                if Arc::strong_count(&w) == 1 {
                    // The publisher is gone and everything is sent.
                    let _ = ws.close(None).await;
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), woken).await;
            }
        });
        (p, writer)
    }

    async fn publish(&self, topic: &str, data: Data) {
        loop {
            let room = self.room.notified();
            if self.core.lock().unwrap().queued() < CLIENT_MAX_QUEUED {
                break;
            }
            room.await;
        }
        self.core
            .lock()
            .unwrap()
            .publish(topic.to_owned(), data)
            .unwrap();
        self.wake.notify_one();
    }
}

/// The gateway's batched 1 -> 1 case through the bare relay at `relay`, with at most
/// `per_frame` messages per frame.
async fn relay_one_to_one(relay: SocketAddr, n: u64, per_frame: usize) -> Outcome {
    let mut subscriber = raw_connect(relay).await;
    let (publisher, writer) = RawPublisher::spawn(raw_connect(relay).await, per_frame);
    let progress = Arc::new(Progress::new(1));
    let p = progress.clone();
    let start = Instant::now();
    let recv = tokio::spawn(async move {
        let (mut got, mut frames) = (0u64, 0u64);
        while got < n {
            match tokio::time::timeout(SILENCE, subscriber.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    frames += 1;
                    let mut k = 0;
                    protocol::for_each_binary::<ClientMsg>(&b, usize::MAX, |m, _| {
                        if let ClientMsg::Publish(_) = m {
                            k += 1;
                        }
                    })
                    .expect("the relay forwards the client's frames");
                    got += k;
                    p.add(0, k);
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        (got, frames)
    });
    let mut stalled = false;
    for i in 0..n {
        if i % 1024 == 0 && i > WINDOW && !progress.wait_for(i - WINDOW).await {
            stalled = true;
            break;
        }
        publisher.publish("/bench/1to1", ping(i)).await;
    }
    let (got, frames) = recv.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    drop(publisher);
    let _ = writer.await;
    Outcome {
        rate: got as f64 / secs,
        received: got,
        expected: n,
        gateway_dropped: 0,
        stalled,
        frames,
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
    let relay = start_relay();
    rt.block_on(async move {
        println!("gateway at {addr} (queue 65536 per consumer); {n} messages per throughput case");
        println!("every publisher stays at most {WINDOW} messages ahead of its slowest subscriber");
        let paced_1to1 = format!("publisher at most {WINDOW} messages ahead of the subscriber");
        let r = one_to_one(addr, &ep, n, true).await;
        println!(
            "native 1 -> 1, batched publishes      {:>12.0} msgs/s ({}; {})",
            r.rate,
            r.losses(),
            per_frame(r.received, r.frames)
        );
        rows::row(
            "gateway.native_1to1_batched",
            r.rate.round(),
            "msgs/s",
            "Rust client -> gateway -> Rust client, publishes batched into frames",
            &paced_1to1,
            &r.note(),
        );
        // Back to back with the gateway's case: the same traffic through the bare relay.
        // As many messages per frame as the gateway's publisher sent on average.
        let per = (r.received / r.frames.max(1)).max(1);
        let b = relay_one_to_one(relay, n, per as usize).await;
        let lost = b.expected - b.received.min(b.expected);
        println!(
            "bare relay 1 -> 1, same frames        {:>12.0} msgs/s ({}; {}{})",
            b.rate,
            if lost == 0 {
                format!("all {} received", b.expected)
            } else {
                format!("{} of {} received, {lost} lost", b.received, b.expected)
            },
            per_frame(b.received, b.frames),
            if b.stalled {
                "; the receiver stopped progressing, publishing stopped"
            } else {
                ""
            }
        );
        let share = 100.0 * r.rate / b.rate;
        println!("  gateway 1 -> 1 batched = {share:.0}% of the bare relay");
        rows::row(
            "gateway.bare_relay_1to1",
            b.rate.round(),
            "msgs/s",
            "the batched case's frames through a bare tokio-tungstenite relay (no broker)",
            &paced_1to1,
            &b.note(),
        );
        rows::row(
            "gateway.native_1to1_batched_vs_relay",
            share.round(),
            "%",
            "gateway 1 -> 1 batched as a share of the bare relay (same run)",
            &paced_1to1,
            "",
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
        rows::row(
            "gateway.native_1to1_unbatched",
            r.rate.round(),
            "msgs/s",
            "Rust client -> gateway -> Rust client, one frame per publish",
            &paced_1to1,
            &r.note(),
        );
        let r = one_to_many(addr, &ep, n / 20, 100).await;
        println!(
            "native 1 -> 100 (window {} messages)  {:>12.0} deliveries/s ({})",
            WINDOW / 4,
            r.rate,
            r.losses()
        );
        rows::row(
            "gateway.native_1to100",
            r.rate.round(),
            "deliveries/s",
            "Rust client -> gateway -> 100 Rust clients, deliveries",
            &format!(
                "publisher at most {} messages ahead of the slowest subscriber",
                WINDOW / 4
            ),
            &r.note(),
        );
        let (p50, p99) = round_trips(addr, 20_000).await;
        println!(
            "native ping-pong round trip           p50 {:>6} us   p99 {:>6} us",
            p50.as_micros(),
            p99.as_micros()
        );
        for (name, v) in [("p50", p50), ("p99", p99)] {
            rows::row(
                &format!("gateway.native_rtt_{name}"),
                v.as_micros() as f64,
                "us",
                &format!("Rust ping -> gateway -> Rust echo -> gateway -> Rust, {name} of 20,000"),
                "one message in flight",
                "",
            );
        }
        let r = zeek_one_to_one(addr, &ep, n / 10).await;
        println!(
            "Zeek JSON API 1 -> 1                  {:>12.0} msgs/s ({})",
            r.rate,
            r.losses()
        );
        rows::row(
            "gateway.zeek_json_1to1",
            r.rate.round(),
            "msgs/s",
            "Zeek WebSocket JSON API client -> gateway -> JSON API client",
            &paced_1to1,
            &r.note(),
        );
    });
}
