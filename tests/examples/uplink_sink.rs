//! A Rust client that counts what it receives on `zeek/bench/` from a gateway, for comparing
//! with the Node client in `bench/zeek-bench.mjs`: `uplink_sink ws://HOST:PORT N`.
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("gateway URL");
    let n: u64 = args.next().expect("count").parse().expect("a number");
    let client = broker_client::Client::connect(&url).await.expect("connect");
    let mut sub = client.make_subscriber(["zeek/bench/"]);
    client.flush().await.expect("flush");
    println!("ready");
    let mut got = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while got < n {
        match sub.get_timeout(Duration::from_secs(5)).await {
            Ok(Some(_)) => {
                got += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            _ => break,
        }
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!("{got} received, {:.0} msgs/s", got as f64 / secs.max(1e-9));
}
