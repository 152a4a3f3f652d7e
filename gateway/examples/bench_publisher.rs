//! A Rust publisher for the benchmarks that measure a receiver in another process (headless
//! Chromium in `bench/js-bench.mjs`): publishes `["ping", i]` for i in 0..N to TOPIC with the
//! native client (batched publishes), so that the publisher is not what limits the rate.
//!
//! With `--credit CREDIT_TOPIC`, it is paced like the JS publisher: the receiver publishes the
//! count it has taken to CREDIT_TOPIC, and this program stays at most `--window` messages
//! (default 4096) ahead of it, giving up (exit 2) if the count stops growing for 10 s.
//!
//! Prints `start <ms>` (wall clock, milliseconds since the Unix epoch, as
//! `performance.timeOrigin + performance.now()` in a page) when it begins publishing, and
//! `sent <n>` when done.
//!
//! Run with: `cargo run --release -p gateway --example bench_publisher -- URL TOPIC N
//! [--credit TOPIC] [--window W]`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_client::Client;
use broker_wasm::Data;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A receiver whose count does not grow for this long has stopped.
const SILENCE: Duration = Duration::from_secs(10);

fn usage() -> ! {
    eprintln!("usage: bench_publisher URL TOPIC N [--credit TOPIC] [--window W]");
    std::process::exit(64)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(topic), Some(n)) = (args.next(), args.next(), args.next()) else {
        usage()
    };
    let n: u64 = n.parse().unwrap_or_else(|_| usage());
    let (mut credit_topic, mut window) = (None, 4096u64);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--credit" => credit_topic = Some(args.next().unwrap_or_else(|| usage())),
            "--window" => {
                window = args
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let client = Client::connect(&url).await.unwrap_or_else(|e| {
        eprintln!("cannot connect to {url}: {e}");
        std::process::exit(1)
    });
    let mut credits = credit_topic.map(|t| client.make_subscriber([t]));
    client.flush().await.expect("flush");
    let mut credit = 0u64;
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    println!("start {:.3}", start.as_secs_f64() * 1000.0);
    for i in 0..n {
        if let Some(sub) = credits.as_mut() {
            while i > credit + window {
                match tokio::time::timeout(SILENCE, sub.get()).await {
                    Ok(Ok((_, Data::Count(c)))) => credit = credit.max(c),
                    Ok(Ok(_)) => {}
                    _ => {
                        eprintln!("the receiver stopped counting at {credit} of {n}");
                        println!("sent {i}");
                        std::process::exit(2)
                    }
                }
            }
        }
        let ping = Data::Vector(vec![Data::string("ping"), Data::Count(i)]);
        client.publish(&topic, ping).await.expect("publish");
    }
    client.flush().await.expect("flush");
    println!("sent {n}");
    client.shutdown().await;
}
