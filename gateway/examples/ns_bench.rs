//! Namespace benchmark (DB-10, DB-12, DB-15): starts a gateway (its own runtime, 2 worker
//! threads) and native clients, then measures
//! - put+get pairs per second from 1 client and from 10 clients (each client runs 64
//!   pipelined put-then-get loops on its own tuple names; every value is checked), for an
//!   in-memory namespace and for a persistent (SQLite) one;
//! - the handoff latency from a `put` on one client to the `get` waiting for it on another
//!   client (p50/p99).
//!
//! Run with: `cargo run --release -p gateway --example ns_bench [pairs-per-client]`

use std::time::{Duration, Instant};

use broker_client::namespace::{GetOptions, Namespace};
use broker_client::Client;
use broker_wasm::Data;
use futures_util::stream::{FuturesUnordered, StreamExt};
use gateway::{Config, Endpoint};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent put+get loops per client.
const LOOPS: u64 = 64;

fn start_gateway(data_dir: std::path::PathBuf) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut config = Config::embedded();
            config.data_dir = data_dir;
            config.queue_size = 1 << 16;
            let ep = Endpoint::new(config);
            let addr = ep.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

async fn pairs(url: &str, ns: &str, clients: usize, per_client: u64) -> f64 {
    let mut handles = Vec::new();
    for _ in 0..clients {
        let c = Client::connect(url).await.unwrap();
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

async fn handoff(url: &str, rounds: usize) -> (Duration, Duration, Duration) {
    let a = Client::connect(url).await.unwrap();
    let b = Client::connect(url).await.unwrap();
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
        // are handled in order).
        a.flush().await.unwrap();
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
    let per_client: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("ns-bench-{}", std::process::id()));
    let addr = start_gateway(dir.clone());
    let url = format!("ws://{addr}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let owner = Client::connect(&url).await.unwrap();
        let mem = owner.create_namespace("bench", 0, vec![]).await.unwrap();
        let disk = owner
            .create_namespace("bench-sqlite", broker_wasm::dbr::PERST_PERMANENT_SIMPLE, vec![])
            .await
            .unwrap();
        println!("namespace benchmark ({per_client} pairs per client, {LOOPS} pipelined loops per client)");
        let r1 = pairs(&url, "bench", 1, per_client).await;
        println!("memory  put+get pairs/s,  1 client : {r1:>10.0}");
        let r10 = pairs(&url, "bench", 10, per_client / 10).await;
        println!("memory  put+get pairs/s, 10 clients: {r10:>10.0}");
        let s1 = pairs(&url, "bench-sqlite", 1, per_client / 4).await;
        println!("sqlite  put+get pairs/s,  1 client : {s1:>10.0}");
        let s10 = pairs(&url, "bench-sqlite", 10, per_client / 40).await;
        println!("sqlite  put+get pairs/s, 10 clients: {s10:>10.0}");
        let (p50, p99, max) = handoff(&url, 5_000).await;
        println!(
            "handoff put -> waiting get (other client): p50 {:.1} us, p99 {:.1} us, max {:.1} us",
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6
        );
        mem.delete().await.unwrap();
        disk.delete().await.unwrap();
        owner.shutdown().await;
    });
    let _ = std::fs::remove_dir_all(dir);
}
