//! SIGKILL under mixed load: while clients publish and receive messages, write to an SQLite
//! store and put values into persistent namespaces, the gateway is killed. Restarted on the
//! same data directory, it holds every store write and every namespace put that had been
//! acknowledged, and serves all three kinds of traffic again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_client::namespace::GetOptions;
use broker_client::Client;
use broker_wasm::dbr::PERST_PERMANENT_SIMPLE;
use broker_wasm::protocol::Backend;
use broker_wasm::Data;
use e2e::Gateway;

const STORE_CLIENTS: u64 = 3;
const NS_CLIENTS: u64 = 3;
/// Kill once this many store writes and this many namespace puts were acknowledged.
const KILL_AFTER: usize = 1000;
const IN_FLIGHT: usize = 16;

type Acked = Arc<Mutex<BTreeMap<(u64, u64), u64>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_store_writes_and_namespace_puts_survive_sigkill_under_mixed_load() {
    let dir = std::env::temp_dir().join(format!("broker-mixed-{}", uuid::Uuid::new_v4()));
    let data_dir = dir.to_str().unwrap().to_owned();
    let args = ["--data-dir", &data_dir, "--store", "mixed"];
    let gw = Gateway::start(&args);
    let url = format!("ws://{}", gw.addr);

    let store_acked: Acked = Default::default();
    let ns_acked: Acked = Default::default();
    let (enough_tx, mut enough_rx) = tokio::sync::watch::channel(false);
    let check_enough = {
        let (s, n, tx) = (store_acked.clone(), ns_acked.clone(), enough_tx.clone());
        move || {
            if s.lock().unwrap().len() >= KILL_AFTER && n.lock().unwrap().len() >= KILL_AFTER {
                let _ = tx.send(true);
            }
        }
    };
    let mut tasks = Vec::new();

    // Store writers, each with writes in flight.
    for c in 0..STORE_CLIENTS {
        let store = Client::connect(&url).await.unwrap().store("mixed");
        let (acked, check) = (store_acked.clone(), check_enough.clone());
        tasks.push(tokio::spawn(async move {
            let mut inflight = tokio::task::JoinSet::new();
            for i in 0u64.. {
                let s = store.clone();
                inflight.spawn(async move {
                    let key = Data::Vector(vec![c.into(), i.into()]);
                    s.put(key, i * 7, None).await.map(|_| i)
                });
                if inflight.len() >= IN_FLIGHT {
                    match inflight.join_next().await {
                        Some(Ok(Ok(i))) => {
                            acked.lock().unwrap().insert((c, i), i * 7);
                            check();
                        }
                        _ => break, // the gateway is gone
                    }
                }
            }
            while let Some(r) = inflight.join_next().await {
                if let Ok(Ok(i)) = r {
                    acked.lock().unwrap().insert((c, i), i * 7);
                }
            }
        }));
    }

    // Namespace writers: each its own persistent namespace, one tuple name per put.
    for c in 0..NS_CLIENTS {
        let client = Client::connect(&url).await.unwrap();
        let ns = Arc::new(
            client
                .create_namespace(format!("mixed-{c}"), PERST_PERMANENT_SIMPLE, vec![])
                .await
                .unwrap(),
        );
        let (acked, check) = (ns_acked.clone(), check_enough.clone());
        tasks.push(tokio::spawn(async move {
            let mut inflight = tokio::task::JoinSet::new();
            for i in 0u64.. {
                let ns = ns.clone();
                inflight.spawn(async move { ns.put(format!("k{i}"), i * 3).await.map(|_| i) });
                if inflight.len() >= IN_FLIGHT {
                    match inflight.join_next().await {
                        Some(Ok(Ok(i))) => {
                            acked.lock().unwrap().insert((c, i), i * 3);
                            check();
                        }
                        _ => break,
                    }
                }
            }
            while let Some(r) = inflight.join_next().await {
                if let Ok(Ok(i)) = r {
                    acked.lock().unwrap().insert((c, i), i * 3);
                }
            }
        }));
    }

    // Pub/sub: a publisher and a subscriber exchange messages throughout.
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let publisher = Client::connect(&url).await.unwrap();
        let subscriber = Client::connect(&url).await.unwrap();
        let mut sub = subscriber.make_subscriber(["/mixed"]);
        subscriber.flush().await.unwrap();
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(_)) = sub.get_timeout(Duration::from_secs(30)).await {
                received.fetch_add(1, Relaxed);
            }
            drop(subscriber);
        }));
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                if stop.load(Relaxed) || publisher.publish("/mixed/x", i).await.is_err() {
                    break;
                }
                if i % 64 == 63 && publisher.flush().await.is_err() {
                    break;
                }
            }
        }));
    }

    enough_rx.wait_for(|v| *v).await.unwrap();
    assert!(
        received.load(Relaxed) > 0,
        "messages flowed during the load"
    );
    gw.kill();
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let store_acked = store_acked.lock().unwrap().clone();
    let ns_acked = ns_acked.lock().unwrap().clone();

    // Restart on the same data.
    let gw = Gateway::start(&args);
    let client = Client::connect(&format!("ws://{}", gw.addr)).await.unwrap();

    // Every acknowledged store write, with its value.
    let master = client
        .attach_master("mixed", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    let Data::Set(keys) = master.keys().await.unwrap() else {
        panic!("keys is a set")
    };
    let missing: Vec<_> = store_acked
        .keys()
        .filter(|(c, i)| !keys.contains(&Data::Vector(vec![(*c).into(), (*i).into()])))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged store writes lost, e.g. {:?}",
        missing.len(),
        store_acked.len(),
        &missing[..missing.len().min(5)]
    );
    for ((c, i), v) in store_acked.iter().step_by(53) {
        let got = master
            .get(Data::Vector(vec![(*c).into(), (*i).into()]))
            .await
            .unwrap();
        assert_eq!(got, Data::Count(*v));
    }

    // Every acknowledged namespace put, with its value.
    for c in 0..NS_CLIENTS {
        let ns = client.attach_namespace(format!("mixed-{c}")).await.unwrap();
        let names: BTreeSet<String> = ns.directory("*", 0).await.unwrap().into_iter().collect();
        let mine: Vec<u64> = ns_acked
            .range((c, 0)..(c + 1, 0))
            .map(|((_, i), _)| *i)
            .collect();
        let lost: Vec<&u64> = mine
            .iter()
            .filter(|i| !names.contains(&format!("k{i}")))
            .collect();
        assert!(
            lost.is_empty(),
            "namespace mixed-{c}: {} of {} acknowledged puts lost, e.g. {:?}",
            lost.len(),
            mine.len(),
            &lost[..lost.len().min(5)]
        );
        for i in mine.iter().step_by(41) {
            let v = ns
                .read_with(format!("k{i}"), GetOptions::nowait())
                .await
                .unwrap();
            assert_eq!(v.value, Data::Count(i * 3));
        }
        // Still writable after the restart.
        ns.put("after", 1u64).await.unwrap();
    }

    // Pub/sub works again.
    let other = Client::connect(&format!("ws://{}", gw.addr)).await.unwrap();
    let mut sub = client.make_subscriber(["/mixed"]);
    client.flush().await.unwrap();
    other.publish("/mixed/after", 1u64).await.unwrap();
    let (t, _) = sub
        .get_timeout(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("delivered after the restart");
    assert_eq!(t, "/mixed/after");

    eprintln!(
        "before SIGKILL: {} store writes, {} namespace puts acknowledged, {} messages \
         received; all there after the restart",
        store_acked.len(),
        ns_acked.len(),
        received.load(Relaxed)
    );
    client.shutdown().await;
    other.shutdown().await;
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
