//! Resume benchmark: a gateway (its own runtime, 2 worker threads, default queue sizes) with
//! `--history /h=100000`; a subscriber receives one message, goes away, 10,000 messages are
//! published (64-byte strings; all published before it comes back: the backlog is not paced),
//! then a new client subscribes and resumes from the saved position. Measured: the time from
//! `resume` to the last of the 10,000 replayed messages at the subscriber, over 20 rounds
//! (p50, p99, max), and the replay rate it means.
//!
//! Run with: `cargo run --release -p gateway --example resume_bench`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use broker_client::Client;
use broker_wasm::Data;

#[path = "common/gateway.rs"]
mod gateway_thread;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MISSED: usize = 10_000;
const ROUNDS: usize = 20;

fn start_gateway() -> SocketAddr {
    gateway_thread::start(|config| config.history = vec!["/h=100000".parse().unwrap()]).0
}

fn payload() -> Data {
    Data::String(vec![b'x'; 64])
}

async fn publish_backlog(p: &Client) {
    let items: Vec<(String, Data)> = (0..MISSED)
        .map(|_| ("/h/x".to_string(), payload()))
        .collect();
    for chunk in items.chunks(1000) {
        p.publish_batch(chunk.to_vec()).await.unwrap();
    }
    p.flush().await.unwrap();
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = start_gateway();
    let url = format!("ws://{addr}");
    let publisher = Client::connect(&url).await.unwrap();
    let mut resume = Vec::new();
    for _ in 0..ROUNDS {
        // Resume: receive one, go away, miss MISSED, come back.
        let a = Client::connect(&url).await.unwrap();
        let mut sub = a.make_subscriber(["/h"]);
        a.flush().await.unwrap();
        publisher.publish("/h/x", payload()).await.unwrap();
        sub.get_timeout(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        let position = a.position();
        a.shutdown().await;
        publish_backlog(&publisher).await;
        let b = Client::connect(&url).await.unwrap();
        let mut sub = b.make_subscriber(["/h"]);
        let start = Instant::now();
        b.resume(position);
        for _ in 0..MISSED {
            sub.get_timeout(Duration::from_secs(10))
                .await
                .unwrap()
                .expect("replayed");
        }
        resume.push(start.elapsed());

        b.shutdown().await;
    }
    resume.sort();
    let rate = |d: Duration| MISSED as f64 / d.as_secs_f64();
    println!(
        "resume of {MISSED} missed messages ({ROUNDS} rounds): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({:.0} msgs/s at p50)",
        pct(&resume, 0.5).as_secs_f64() * 1e3,
        pct(&resume, 0.99).as_secs_f64() * 1e3,
        resume.last().unwrap().as_secs_f64() * 1e3,
        rate(pct(&resume, 0.5)),
    );
}
