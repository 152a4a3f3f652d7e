//! ZB-46 / design decision 10: every write acknowledged to a client before a SIGKILL of the
//! gateway is in the SQLite store after the restart. Several clients write concurrently; the
//! gateway is killed in the middle of the load.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use broker_client::Client;
use broker_wasm::protocol::Backend;
use broker_wasm::Data;
use e2e::Gateway;

const CLIENTS: u64 = 6;
/// Kill once this many writes were acknowledged (the clients keep writing meanwhile).
const KILL_AFTER: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = std::env::temp_dir().join(format!("broker-crash-{}", uuid::Uuid::new_v4()));
    let data_dir = dir.to_str().unwrap().to_owned();
    let gw = Gateway::start(&["--data-dir", &data_dir, "--store", "crash"]);
    let url = format!("ws://{}", gw.addr);

    let acked: Arc<Mutex<BTreeMap<(u64, u64), u64>>> = Default::default();
    let (enough_tx, mut enough_rx) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let client = Client::connect(&url).await.expect("connect");
        let acked = acked.clone();
        let enough_tx = enough_tx.clone();
        writers.push(tokio::spawn(async move {
            let store = client.store("crash");
            // Each client keeps up to 32 writes in flight, like a real busy client.
            let mut inflight = tokio::task::JoinSet::new();
            for i in 0u64.. {
                let s = store.clone();
                inflight.spawn(async move {
                    let key = Data::Vector(vec![c.into(), i.into()]);
                    s.put(key, i * 7, None).await.map(|_| i)
                });
                if inflight.len() >= 32 {
                    match inflight.join_next().await {
                        Some(Ok(Ok(i))) => {
                            let mut a = acked.lock().unwrap();
                            a.insert((c, i), i * 7);
                            if a.len() >= KILL_AFTER {
                                let _ = enough_tx.send(true);
                            }
                        }
                        _ => break, // the gateway is gone
                    }
                }
            }
            // Acknowledgements that arrived before the connection died still count.
            while let Some(r) = inflight.join_next().await {
                if let Ok(Ok(i)) = r {
                    acked.lock().unwrap().insert((c, i), i * 7);
                }
            }
        }));
    }
    enough_rx.wait_for(|v| *v).await.unwrap();
    gw.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER);

    // Restart on the same data: every acknowledged write is there with its value.
    let gw = Gateway::start(&["--data-dir", &data_dir, "--store", "crash"]);
    let client = Client::connect(&format!("ws://{}", gw.addr)).await.unwrap();
    let master = client
        .attach_master("crash", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    let Data::Set(keys) = master.keys().await.unwrap() else {
        panic!("keys is a set")
    };
    let mut missing = 0;
    for (c, i) in acked.keys() {
        if !keys.contains(&Data::Vector(vec![(*c).into(), (*i).into()])) {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "acknowledged writes lost ({} acknowledged)",
        acked.len()
    );
    for ((c, i), v) in acked.iter().step_by(97) {
        let got = master
            .get(Data::Vector(vec![(*c).into(), (*i).into()]))
            .await
            .unwrap();
        assert_eq!(got, Data::Count(*v));
    }
    eprintln!(
        "{} writes acknowledged before SIGKILL, {} keys after restart, none lost",
        acked.len(),
        keys.len()
    );
    client.shutdown().await;
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
