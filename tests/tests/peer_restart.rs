//! A peer gateway killed with SIGKILL and restarted on the same port: the other side's status
//! subscribers see the peering lost and added again, subscriptions work across the link
//! again, and a store clone relayed through the peered gateway resyncs to the master's state,
//! including writes made while the link was down. Peer links run with short keepalive values
//! and must not be closed by them.

use std::time::{Duration, Instant};

use broker_client::{Client, CloneStore, StatusEvent, StatusSubscriber};
use broker_wasm::client::CloneOptions;
use broker_wasm::{Data, StatusCode};
use e2e::Gateway;

const T: Duration = Duration::from_secs(15);
const KEEPALIVE: [&str; 4] = ["--ping-interval", "0.2", "--idle-timeout", "2"];

fn url(gw: &Gateway) -> String {
    format!("ws://{}", gw.addr)
}

async fn expect_status(sub: &mut StatusSubscriber, code: StatusCode) {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.get_timeout(left).await.unwrap() {
            Some(StatusEvent::Status(s)) if s.code == code => return,
            Some(_) => continue,
            None => panic!("no {code:?} status within {T:?}"),
        }
    }
}

/// Polls until `client`'s gateway has `n` peers.
/// Waits until the gateway of `client` has `n` established peerings (a peering still
/// connecting is listed too, with another status).
async fn await_peers(client: &Client, n: usize) {
    let deadline = Instant::now() + T;
    let peered = |peers: Vec<broker_wasm::protocol::PeerInfo>| {
        peers
            .iter()
            .filter(|p| p.status == broker_wasm::protocol::PeerStatus::Peered)
            .count()
    };
    while peered(client.peers().await.unwrap()) != n {
        assert!(Instant::now() < deadline, "never {n} peers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message published on `from` reaches a subscriber on `to` (across the peering).
async fn crosses(from: &Client, to: &Client, topic: &str) {
    let mut sub = to.make_subscriber([topic]);
    to.flush().await.unwrap();
    // No event tells when the subscription reached the other gateway: poll its view.
    let deadline = Instant::now() + T;
    while !from
        .peer_subscriptions()
        .await
        .unwrap()
        .iter()
        .any(|t| t == topic)
    {
        assert!(Instant::now() < deadline, "{topic} never reached the peer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    from.publish(format!("{topic}/x"), 42u64).await.unwrap();
    let (t, d) = sub.get_timeout(T).await.unwrap().expect("delivered");
    assert_eq!((t, d), (format!("{topic}/x"), Data::Count(42)));
}

/// Polls the clone until it holds exactly `want` (key -> count).
async fn clone_holds(clone: &CloneStore, want: &[(&str, u64)]) {
    let deadline = Instant::now() + T;
    loop {
        let ok = want.iter().all(
            |(k, v)| matches!(clone.get(&Data::string(*k)), Ok(Some(Data::Count(c))) if c == *v),
        ) && clone.len() == want.len();
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "clone holds {:?}, want {want:?}",
            clone.keys()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("broker-peer-restart-{}", uuid::Uuid::new_v4()))
}

/// The relaying gateway (the one that peers with `--peer`) is killed and restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_gateway_restarts_re_peers_and_its_clones_resync() {
    let dir = temp_dir();
    let mut m_args = vec!["--data-dir", dir.to_str().unwrap(), "--store", "kv"];
    m_args.extend(KEEPALIVE);
    let m = Gateway::start(&m_args);
    let peer_m = format!("127.0.0.1:{}", m.addr.port());
    let mut r_args = vec!["--peer", &peer_m, "--peer-retry", "0.2"];
    r_args.extend(KEEPALIVE);
    let r = Gateway::start(&r_args);

    let on_m = Client::connect(&url(&m)).await.unwrap();
    let mut statuses = on_m.make_status_subscriber();
    on_m.flush().await.unwrap();
    await_peers(&on_m, 1).await;
    let kv = on_m.store("kv");
    kv.put("before", 1u64, None).await.unwrap();

    let on_r = Client::connect(&url(&r)).await.unwrap();
    let mut clone = on_r.attach_clone("kv", CloneOptions::default());
    clone.synced(T).await.unwrap();
    clone_holds(&clone, &[("before", 1)]).await;
    crosses(&on_m, &on_r, "/to-r").await;

    // SIGKILL: M's status subscribers see the peering lost.
    let r_addr = r.addr.to_string();
    r.kill();
    expect_status(&mut statuses, StatusCode::PeerLost).await;
    expect_status(&mut statuses, StatusCode::EndpointUnreachable).await;
    // Writes while R is down.
    kv.put("during", 2u64, None).await.unwrap();
    kv.put("before", 10u64, None).await.unwrap();

    // Restarted on the same port, R peers again (its --peer).
    let r = Gateway::start_on(&r_addr, &r_args);
    expect_status(&mut statuses, StatusCode::PeerAdded).await;
    await_peers(&on_m, 1).await;
    let on_r = Client::connect(&url(&r)).await.unwrap();
    let mut clone = on_r.attach_clone("kv", CloneOptions::default());
    clone.synced(T).await.unwrap();
    clone_holds(&clone, &[("before", 10), ("during", 2)]).await;
    kv.put("after", 3u64, None).await.unwrap();
    clone_holds(&clone, &[("before", 10), ("during", 2), ("after", 3)]).await;
    crosses(&on_m, &on_r, "/to-r").await;
    crosses(&on_r, &on_m, "/to-m").await;

    assert_eq!(m.metric("idle_disconnects_total"), 0);
    assert_eq!(r.metric("idle_disconnects_total"), 0);
    on_m.shutdown().await;
    on_r.shutdown().await;
    assert!(r.terminate());
    assert!(m.terminate());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The gateway with the master (SQLite) is killed and restarted on the same port and data:
/// the relaying gateway reconnects, and the clone of a client that stayed connected to it
/// resyncs, including writes made while the master's gateway was down or restarting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_gateway_restarts_and_a_relayed_clone_resyncs() {
    let dir = temp_dir();
    let mut m_args = vec!["--data-dir", dir.to_str().unwrap(), "--store", "kv"];
    m_args.extend(KEEPALIVE);
    let m = Gateway::start(&m_args);
    let peer_m = format!("127.0.0.1:{}", m.addr.port());
    let mut r_args = vec!["--peer", &peer_m, "--peer-retry", "0.2"];
    r_args.extend(KEEPALIVE);
    let r = Gateway::start(&r_args);

    let on_r = Client::connect(&url(&r)).await.unwrap();
    let mut statuses = on_r.make_status_subscriber();
    on_r.flush().await.unwrap();
    await_peers(&on_r, 1).await;
    let mut clone = on_r.attach_clone("kv", CloneOptions::default());
    clone.synced(T).await.unwrap();
    let on_m = Client::connect(&url(&m)).await.unwrap();
    on_m.store("kv").put("before", 1u64, None).await.unwrap();
    clone_holds(&clone, &[("before", 1)]).await;
    crosses(&on_r, &on_m, "/to-m").await;

    let m_addr = m.addr.to_string();
    drop(on_m);
    m.kill();
    expect_status(&mut statuses, StatusCode::PeerLost).await;
    // The clone keeps answering from its replica meanwhile.
    assert_eq!(
        clone.get(&Data::string("before")).unwrap(),
        Some(Data::Count(1))
    );
    // A write through the relay while the master is unreachable: it waits for the master
    // (or fails); if it is acknowledged, it must be there.
    let through_relay = {
        let master = clone.master();
        tokio::spawn(async move { master.put("queued", 5u64, None).await.is_ok() })
    };

    let m = Gateway::start_on(&m_addr, &m_args);
    let on_m = Client::connect(&url(&m)).await.unwrap();
    on_m.store("kv").put("restarted", 4u64, None).await.unwrap();
    expect_status(&mut statuses, StatusCode::PeerAdded).await;
    let mut want = vec![("before", 1), ("restarted", 4)];
    if through_relay.await.unwrap() {
        want.push(("queued", 5));
    }
    clone_holds(&clone, &want).await;
    crosses(&on_r, &on_m, "/to-m").await;
    crosses(&on_m, &on_r, "/to-r").await;

    assert_eq!(m.metric("idle_disconnects_total"), 0);
    assert_eq!(r.metric("idle_disconnects_total"), 0);
    on_m.shutdown().await;
    on_r.shutdown().await;
    assert!(r.terminate());
    assert!(m.terminate());
    let _ = std::fs::remove_dir_all(&dir);
}
