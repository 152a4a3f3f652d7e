//! Clones that come back with a state (`AttachCloneSince`): the store sends only the updates
//! since and `CloneCurrent` while it still has them, at the master and at a gateway relaying
//! a master one hop away; a state it cannot bring up to date (another master, too old) gets a
//! snapshot. The client core's side (kept replicas, catch-up after a reconnect) is in
//! broker-wasm's unit tests and tests/node/browser.test.mjs.

mod common;

use broker_wasm::protocol::{Backend, ClientMsg, Encoding, Request, Response, ServerMsg};
use broker_wasm::{Data, NodeId};
use common::*;
use gateway::Endpoint;

const E: Encoding = Encoding::Binary;

async fn peer(a: &Endpoint, b: std::net::SocketAddr) {
    a.peer_timeout("127.0.0.1", b.port(), None, T)
        .await
        .expect("peering");
}

/// Messages from `ws` until one matches `done` (every message up to it, in order).
async fn until(ws: &mut Ws, done: impl Fn(&ServerMsg) -> bool) -> Vec<ServerMsg> {
    let mut out = Vec::new();
    loop {
        for m in recv_frame(ws, E).await {
            let stop = done(&m);
            out.push(m);
            if stop {
                return out;
            }
        }
    }
}

/// Attaches `store` on a raw connection: (master, seq) of its snapshot.
async fn attach(addr: std::net::SocketAddr, store: &str) -> (NodeId, u64) {
    let mut ws = native_raw(addr, E).await;
    let request = Request::AttachClone {
        store: store.into(),
    };
    send_frame(&mut ws, E, &[ClientMsg::Request { id: 1, request }]).await;
    let msgs = until(&mut ws, |m| {
        matches!(m, ServerMsg::Snapshot { more: false, .. })
    })
    .await;
    match msgs.last() {
        Some(ServerMsg::Snapshot { master, seq, .. }) => (*master, *seq),
        other => panic!("{other:?}"),
    }
}

/// What an `AttachCloneSince` brings: the messages up to `CloneCurrent` or the last snapshot
/// chunk.
async fn attach_since(
    addr: std::net::SocketAddr,
    store: &str,
    master: NodeId,
    seq: u64,
) -> Vec<ServerMsg> {
    let mut ws = native_raw(addr, E).await;
    let request = Request::AttachCloneSince {
        store: store.into(),
        master,
        seq,
    };
    send_frame(&mut ws, E, &[ClientMsg::Request { id: 1, request }]).await;
    until(&mut ws, |m| {
        matches!(
            m,
            ServerMsg::CloneCurrent { .. } | ServerMsg::Snapshot { more: false, .. }
        )
    })
    .await
}

fn update_seqs(msgs: &[ServerMsg]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::StoreUpdate { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn zb58_a_clone_one_hop_away_catches_up_with_the_updates_since() {
    let (a, a_addr) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    peer(&b, a_addr).await;
    let m = a
        .attach_master("s", Backend::Memory, Data::None)
        .await
        .unwrap();
    m.put("k", 1u64, None).await.unwrap();
    let bs = b.probe();
    eventually("A's master advertised", move || bs.master_elsewhere("s")).await;
    // A clone on B keeps B's relay following A and tells when B has relayed the updates.
    let watcher = broker_client::Client::connect(&url(b_addr)).await.unwrap();
    let watch = watcher.attach_clone("s", broker_wasm::client::CloneOptions::default());
    let (master, seq) = attach(b_addr, "s").await;
    for i in 0..3u64 {
        m.put(format!("n{i}").as_str(), i, None).await.unwrap();
    }
    eventually("B relayed the three updates", || watch.len() == 4).await;
    // Through the relay on B: the three updates, then CloneCurrent.
    let relay_seq = seq + 3;
    let msgs = attach_since(b_addr, "s", master, seq).await;
    assert!(
        matches!(
            msgs.first(),
            Some(ServerMsg::Response {
                result: Ok(Response::Done),
                ..
            })
        ),
        "{msgs:?}"
    );
    assert_eq!(update_seqs(&msgs), vec![seq + 1, seq + 2, seq + 3]);
    assert_eq!(
        msgs.last(),
        Some(&ServerMsg::CloneCurrent {
            store: "s".into(),
            master,
            seq: relay_seq
        })
    );
    assert!(!msgs.iter().any(|m| matches!(m, ServerMsg::Snapshot { .. })));
    assert!(metric(&b, "store_clone_catchups_total") >= 1);
    // At the master itself, too.
    let msgs = attach_since(a_addr, "s", master, seq + 1).await;
    assert_eq!(update_seqs(&msgs), vec![seq + 2, seq + 3]);
    assert_eq!(metric(&a, "store_clone_catchups_total"), 1);
    // With no clone left, B's relay lingers and keeps following A: a page reloaded a moment
    // later still catches up (never a snapshot) and gets the update made meanwhile.
    watcher.shutdown().await;
    m.put("late", 1u64, None).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let msgs = attach_since(b_addr, "s", master, seq).await;
        assert!(
            matches!(msgs.last(), Some(ServerMsg::CloneCurrent { .. })),
            "{msgs:?}"
        );
        if update_seqs(&msgs).last() == Some(&(seq + 4)) {
            break;
        }
        // B has not relayed the late update yet (no event to await from outside B).
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late update never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn zb58_a_state_the_store_cannot_bring_up_to_date_gets_a_snapshot() {
    let (a, a_addr) = endpoint().await;
    let m = a
        .attach_master("s", Backend::Memory, Data::None)
        .await
        .unwrap();
    m.put("k", 1u64, None).await.unwrap();
    let (master, _) = attach(a_addr, "s").await;
    // Another master (one that restarted).
    let msgs = attach_since(a_addr, "s", NodeId([9; 16]), 1).await;
    assert!(
        matches!(msgs.last(), Some(ServerMsg::Snapshot { .. })),
        "{msgs:?}"
    );
    // More updates than the store keeps: from seq 1 they are gone.
    for i in 0..9000u64 {
        m.put("n", i, None).await.unwrap();
    }
    let msgs = attach_since(a_addr, "s", master, 1).await;
    assert!(
        matches!(msgs.last(), Some(ServerMsg::Snapshot { .. })),
        "{msgs:?}"
    );
    // A seq from the future (not this master's) too.
    let msgs = attach_since(a_addr, "s", master, 1_000_000).await;
    assert!(
        matches!(msgs.last(), Some(ServerMsg::Snapshot { .. })),
        "{msgs:?}"
    );
    assert_eq!(metric(&a, "store_clone_catchups_total"), 0);
    a.shutdown().await;
}
