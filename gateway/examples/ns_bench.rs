//! Namespace benchmark (DB-10, DB-12, DB-15): starts a gateway (its own runtime, 2 worker
//! threads) and native clients, then measures
//! - put+get pairs per second from 1 client and from 10 clients (each client runs 64
//!   pipelined put-then-get loops on its own tuple names; every value is checked), for an
//!   in-memory namespace and for a persistent (SQLite) one;
//! - the handoff latency from a `put` on one client to the `get` waiting for it on another
//!   client (p50/p99).
//!
//! With `--redis URL` (RB-10): two gateways sharing the Redis at URL; the 10 clients are
//! spread over both, and the handoff goes from a put on one gateway to a get waiting on the
//! other. (`scripts/bench-ns-redis.sh` starts a Redis and runs `redis-benchmark` beside it.)
//!
//! Run with: `cargo run --release -p gateway --example ns_bench [pairs-per-client] [--redis URL]`
//! With `BENCH_JSON=<file>`, every figure is also appended there as a JSON line
//! (`common/rows.rs`).

#[path = "common/rows.rs"]
mod rows;

use std::time::{Duration, Instant};

use broker_client::namespace::{GetOptions, Namespace};
use broker_client::Client;
use broker_wasm::Data;
use futures_util::stream::{FuturesUnordered, StreamExt};

#[path = "common/gateway.rs"]
mod gateway_thread;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent put+get loops per client.
const LOOPS: u64 = 64;

fn start_gateway(
    data_dir: std::path::PathBuf,
    redis: Option<String>,
) -> (std::net::SocketAddr, gateway::endpoint::Probe) {
    let (addr, ep) = gateway_thread::start(move |config| {
        config.data_dir = data_dir;
        config.queue_size = 1 << 16;
        config.ns_backend = redis;
    });
    (addr, ep.probe())
}

async fn pairs(urls: &[String], ns: &str, clients: usize, per_client: u64) -> f64 {
    let mut handles = Vec::new();
    for i in 0..clients {
        let c = Client::connect(&urls[i % urls.len()]).await.unwrap();
        handles.push(c.attach_namespace(ns).await.unwrap());
    }
    let start = Instant::now();
    let mut all = FuturesUnordered::new();
    for (ci, h) in handles.iter().enumerate() {
        for l in 0..LOOPS {
            let h: Namespace = h.clone();
            let key = format!("c{ci}-l{l}");
            let n = per_client / LOOPS;
            all.push(async move {
                for i in 0..n {
                    h.put(key.as_str(), Data::Count(i)).await.unwrap();
                    let v = h
                        .get_with(key.as_str(), GetOptions::nowait())
                        .await
                        .unwrap();
                    assert_eq!(v.value, Data::Count(i));
                }
                n
            });
        }
    }
    let mut done = 0u64;
    while let Some(n) = all.next().await {
        done += n;
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    for h in handles {
        h.detach().await.unwrap();
        h.client().shutdown().await;
    }
    rate
}

async fn handoff(
    urls: &[String],
    probes: &[gateway::endpoint::Probe],
    rounds: usize,
) -> (Duration, Duration, Duration) {
    let a = Client::connect(&urls[0]).await.unwrap();
    let b = Client::connect(&urls[urls.len() - 1]).await.unwrap();
    let na = a.attach_namespace("bench").await.unwrap();
    let nb = b.attach_namespace("bench").await.unwrap();
    let mut lat = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let (queued_tx, queued_rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let na = na.clone();
            tokio::spawn(async move {
                let get = na.get_with("handoff", GetOptions::forever());
                tokio::pin!(get);
                // Poll once: the request is queued in the client core on the first poll.
                tokio::select! {
                    biased;
                    r = &mut get => panic!("nothing to get yet: {r:?}"),
                    _ = std::future::ready(()) => {}
                }
                let _ = queued_tx.send(());
                let r = get.await;
                (r, Instant::now())
            })
        };
        queued_rx.await.unwrap();
        // The get is registered once a ping sent after it returns (one connection's messages
        // are handled in order); with Redis, once the gateway counts it.
        a.flush().await.unwrap();
        while probes
            .iter()
            .map(|p| p.namespace_waiters("bench", "handoff"))
            .sum::<usize>()
            == 0
        {
            tokio::task::yield_now().await;
        }
        let t0 = Instant::now();
        nb.put("handoff", Data::Count(i as u64)).await.unwrap();
        let (r, t1) = waiter.await.unwrap();
        assert_eq!(r.unwrap().value, Data::Count(i as u64));
        lat.push(t1 - t0);
    }
    na.detach().await.unwrap();
    nb.detach().await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    (p(0.5), p(0.99), lat[lat.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let redis = args
        .iter()
        .position(|a| a == "--redis")
        .map(|i| args.get(i + 1).expect("--redis URL").clone());
    let per_client: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("ns-bench-{}", std::process::id()));
    let gateways = if redis.is_some() { 2 } else { 1 };
    let (urls, probes): (Vec<String>, Vec<gateway::endpoint::Probe>) = (0..gateways)
        .map(|i| {
            let (addr, probe) = start_gateway(dir.join(i.to_string()), redis.clone());
            (format!("ws://{addr}"), probe)
        })
        .unzip();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let owner = Client::connect(&urls[0]).await.unwrap();
        let mem = owner.create_namespace("bench", 0, vec![]).await.unwrap();
        let disk = owner
            .create_namespace("bench-sqlite", broker_wasm::dbr::PERST_PERMANENT_SIMPLE, vec![])
            .await
            .unwrap();
        let label = if redis.is_some() { "redis " } else { "memory" };
        let key = label.trim();
        let pairs_row = |name: String, rate: f64, backend: &str, clients: usize| {
            rows::row(
                &name,
                rate.round(),
                "pairs/s",
                &format!("namespace put+get pairs, {backend}, from {clients} Rust client(s)"),
                &format!("{LOOPS} pipelined put-then-get loops per client"),
                "",
            );
        };
        println!(
            "namespace benchmark ({per_client} pairs per client, {LOOPS} pipelined loops per client, {gateways} gateway(s){})",
            redis.as_deref().map(|r| format!(" on {r}")).unwrap_or_default()
        );
        let r1 = pairs(&urls, "bench", 1, per_client).await;
        println!("{label}  put+get pairs/s,  1 client : {r1:>10.0}");
        pairs_row(format!("ns.{key}_pairs_1client"), r1, key, 1);
        let r10 = pairs(&urls, "bench", 10, per_client / 10).await;
        println!("{label}  put+get pairs/s, 10 clients: {r10:>10.0}");
        pairs_row(format!("ns.{key}_pairs_10clients"), r10, key, 10);
        if redis.is_none() {
            let s1 = pairs(&urls, "bench-sqlite", 1, per_client / 4).await;
            println!("sqlite  put+get pairs/s,  1 client : {s1:>10.0}");
            pairs_row("ns.sqlite_pairs_1client".into(), s1, "sqlite", 1);
            let s10 = pairs(&urls, "bench-sqlite", 10, per_client / 40).await;
            println!("sqlite  put+get pairs/s, 10 clients: {s10:>10.0}");
            pairs_row("ns.sqlite_pairs_10clients".into(), s10, "sqlite", 10);
        }
        let (p50, p99, max) = handoff(&urls, &probes, 5_000).await;
        println!(
            "handoff put -> waiting get (other client{}): p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            if gateways > 1 { ", other gateway" } else { "" },
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6
        );
        for (q, v) in [("p50", p50), ("p99", p99)] {
            rows::row(
                &format!("ns.{key}_handoff_{q}"),
                (v.as_secs_f64() * 1e7).round() / 10.0,
                "us",
                &format!(
                    "put on one client -> the get waiting on another{}, {key} namespace, {q} of 5,000",
                    if gateways > 1 { " (other gateway)" } else { "" }
                ),
                "one handoff at a time",
                "",
            );
        }
        mem.delete().await.unwrap();
        disk.delete().await.unwrap();
        owner.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(dir);
}
