//! Uplinks to a Zeek node's WebSocket API (ZU-02..19), with another gateway's own
//! `/v1/messages/json` as the far end (ZU-20 a): it speaks the same JSON and, like Zeek, never
//! echoes a client's publishes back to it. The Zeek double (ZU-20 b) is used by the
//! end-to-end tests in `tests/tests/uplink.rs`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use broker_wasm::protocol::UplinkSpec;
use broker_wasm::zeek::Event;
use broker_wasm::{Data, ErrorCode, StatusCode};
use common::*;
use gateway::{Client, Endpoint, EndpointError, StatusEvent};

fn spec(far: SocketAddr, subscribe: &[&str], publish: &[&str]) -> UplinkSpec {
    UplinkSpec {
        url: format!("ws://{far}/v1/messages/json"),
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        headers: vec![],
        app_name: Some("uplink-test".into()),
    }
}

fn event(name: &str, n: u64) -> Data {
    Event::new(name, vec![Data::Count(n)]).to_data()
}

fn count_of(d: &Data) -> u64 {
    let ev = Event::from_data(d).expect("an event");
    match ev.args[0] {
        Data::Count(n) => n,
        ref other => panic!("not a count: {other:?}"),
    }
}

/// Adds an uplink and waits for Zeek's ack (the `peer_added` status of the uplink).
async fn uplink(g: &Endpoint, spec: UplinkSpec) {
    let mut st = g.make_status_subscriber(true);
    g.add_zeek_uplink(spec).expect("uplink spec");
    loop {
        let s = expect_status(&mut st, StatusCode::PeerAdded).await;
        if s.message.contains("zeek uplink") {
            return;
        }
    }
}

/// Waits until `far` has `n` Zeek API clients (uplinks) and they subscribed.
async fn far_clients(far: &Endpoint, n: u64) {
    eventually("uplinks at the far end", || {
        metric(far, "clients_zeek") == n
    })
    .await;
}

#[tokio::test]
async fn zu06_zu18_events_go_down_and_up_and_nothing_goes_back_up() {
    let (far, far_addr) = endpoint().await;
    let mut far_sub = far.make_subscriber(["zeek/", "up/"]);
    let (g, _) = endpoint().await;
    let mut g_sub = g.make_subscriber(["zeek/"]);
    // The uplink also sends `zeek/` up: what came from Zeek must still never go back.
    uplink(&g, spec(far_addr, &["zeek/"], &["zeek/", "up/"])).await;
    far_clients(&far, 1).await;

    far.publish("zeek/a", event("Test::a", 1)).unwrap();
    let (topic, data) = g_sub.get_timeout(T).await.unwrap().expect("down");
    assert_eq!(topic, "zeek/a");
    assert_eq!(count_of(&data), 1);

    // Up: an event under a publish prefix reaches Zeek; a non-event is refused here.
    g.publish("up/b", event("Test::b", 2)).unwrap();
    match g.publish("up/c", Data::Count(3)) {
        Err(EndpointError::Refused(code, text)) => {
            assert_eq!(code, ErrorCode::ReadOnly);
            assert!(text.contains("only events"), "{text}");
        }
        other => panic!("a non-event went up: {other:?}"),
    }
    // The far end's first message is the event from the gateway: had `zeek/a` gone back up,
    // it would have come first over the same connection.
    let (topic, data) = far_sub.get_timeout(T).await.unwrap().expect("up");
    assert_eq!(topic, "up/b");
    assert_eq!(count_of(&data), 2);

    // A native client's non-event under the prefix gets a typed error.
    let c = Client::connect(&url(g.listening()[0])).await.unwrap();
    let mut cs = c.make_status_subscriber();
    c.publish("up/d", Data::Count(4)).await.unwrap();
    match cs.get_timeout(T).await.unwrap() {
        Some(StatusEvent::Error(e)) => assert_eq!(e.code, ErrorCode::ReadOnly),
        other => panic!("expected read_only, got {other:?}"),
    }

    let info = &g.zeek_uplinks()[0];
    assert_eq!(info.state, "connected");
    assert_eq!(
        info.zeek_endpoint.as_deref(),
        Some(&*far.node_id().to_string())
    );
    assert_eq!((info.messages_in, info.messages_out), (1, 1));
    assert_eq!(info.refused, 2);
    let text = g.metrics_text();
    assert!(text.contains("broker_uplink_up{url=\"ws://"), "{text}");
    assert_eq!(metric(&g, "uplink_messages_in_total"), 1);
    assert_eq!(metric(&g, "uplink_refused_total"), 2);
    c.shutdown().await;
    g.shutdown().await;
    far.shutdown().await;
}

#[tokio::test]
async fn zu08_zeek_errors_reach_status_subscribers_and_counters() {
    // The far end allows one publish per second: the second event is answered with an error
    // object, which the uplink must surface.
    let (far, far_addr) = endpoint_with(|c| c.max_publish_rate = 1).await;
    let (g, _) = endpoint().await;
    uplink(&g, spec(far_addr, &["zeek/"], &["up/"])).await;
    let mut st = g.make_status_subscriber(false);
    g.publish("up/1", event("Test::x", 1)).unwrap();
    g.publish("up/2", event("Test::x", 2)).unwrap();
    match st.get_timeout(T).await.unwrap() {
        Some(StatusEvent::Error(e)) => {
            assert_eq!(e.code, ErrorCode::InvalidMessage);
            assert!(e.context.contains("zeek uplink ws://"), "{}", e.context);
            assert!(e.context.contains("rate limit"), "{}", e.context);
        }
        other => panic!("no error event: {other:?}"),
    }
    assert_eq!(metric(&g, "uplink_errors_total"), 1);
    assert_eq!(g.zeek_uplinks()[0].errors, 1);
    g.shutdown().await;
    far.shutdown().await;
}

#[tokio::test]
async fn zu19_two_gateways_on_one_zeek_deliver_once_and_send_up_once() {
    let (far, far_addr) = endpoint().await;
    let mut far_sub = far.make_subscriber(["up/"]);
    let (g1, a1) = endpoint().await;
    let (g2, a2) = endpoint().await;
    let (g3, _) = endpoint().await;
    // A triangle: g1 and g2 are uplinked to the same Zeek; g3 is not.
    g1.peer_timeout("127.0.0.1", a2.port(), None, T)
        .await
        .unwrap();
    g3.peer_timeout("127.0.0.1", a1.port(), None, T)
        .await
        .unwrap();
    g3.peer_timeout("127.0.0.1", a2.port(), None, T)
        .await
        .unwrap();
    let subs = [&g1, &g2, &g3].map(|g| g.make_subscriber(["zeek/", "sync/"]));
    uplink(&g1, spec(far_addr, &["zeek/"], &["up/"])).await;
    uplink(&g2, spec(far_addr, &["zeek/"], &["up/"])).await;
    far_clients(&far, 2).await;
    // Every gateway must know both uplinks before the check means anything.
    for (g, n) in [(&g1, 1), (&g2, 1), (&g3, 2)] {
        let p = g.probe();
        eventually("uplink adverts", || p.uplink_adverts() >= n).await;
    }

    const N: u64 = 200;
    for i in 0..N {
        far.publish("zeek/n", event("Test::n", i)).unwrap();
    }
    // Barriers: a client of g1 and one of g2 publish on `sync/`. Links are FIFO, so a
    // subscriber that has both has also had every copy of the Zeek messages either
    // gateway forwarded before.
    let c1 = Client::connect(&url(a1)).await.unwrap();
    let c2 = Client::connect(&url(a2)).await.unwrap();
    // Each client's own publish reaches the gateway after the Zeek messages it already took.
    eventually("all Zeek messages taken", || {
        g1.zeek_uplinks()[0].messages_in == N && g2.zeek_uplinks()[0].messages_in == N
    })
    .await;
    c1.publish("sync/1", Data::Count(1)).await.unwrap();
    c2.publish("sync/2", Data::Count(2)).await.unwrap();
    for (k, mut sub) in subs.into_iter().enumerate() {
        let mut got = Vec::new();
        let mut barriers = 0;
        while barriers < 2 {
            let (topic, data) = sub.get_timeout(T).await.unwrap().expect("message");
            if topic.starts_with("sync/") {
                barriers += 1;
            } else {
                got.push(count_of(&data));
            }
        }
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "gateway {}", k + 1);
    }

    // Up: events published on g3 (no uplink) reach Zeek once, through one of the two.
    let c3 = Client::connect(&url(g3.listening()[0])).await.unwrap();
    for i in 0..50 {
        c3.publish("up/x", event("Test::up", i)).await.unwrap();
    }
    // Barrier: g1 and g2 have handled everything c3 sent once both got this.
    let mut s1 = g1.make_subscriber(["sync3/"]);
    let mut s2 = g2.make_subscriber(["sync3/"]);
    for g in [&g3] {
        let p = g.probe();
        eventually("sync3 routes", || p.routes("sync3/x")).await;
    }
    c3.publish("sync3/x", Data::Count(0)).await.unwrap();
    s1.get_timeout(T).await.unwrap().expect("barrier at g1");
    s2.get_timeout(T).await.unwrap().expect("barrier at g2");
    let sent: u64 = [&g1, &g2]
        .iter()
        .map(|g| g.zeek_uplinks()[0].messages_out)
        .sum();
    assert_eq!(sent, 50, "each event goes up exactly once");
    let got = far_sub.get_many_timeout(50, T).await.unwrap();
    assert_eq!(
        got.iter().map(|(_, d)| count_of(d)).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    for c in [c1, c2, c3] {
        c.shutdown().await;
    }
    for g in [g1, g2, g3, far] {
        g.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zu05_changing_subscriptions_moves_to_a_new_connection_losing_nothing() {
    let (far, far_addr) = endpoint().await;
    let (g, _) = endpoint().await;
    let mut sub = g.make_subscriber(["zeek/"]);
    uplink(&g, spec(far_addr, &["zeek/a/"], &[])).await;
    far_clients(&far, 1).await;
    // Paced (about 5,000/s, in steps of 50) so that no queue overflows in a debug build:
    // what this test checks is the handoff, not the slow-consumer policy.
    const N: u64 = 10_000;
    let publisher = {
        let far = far.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for i in 0..N {
                if i % 50 == 0 {
                    tick.tick().await;
                }
                far.publish("zeek/a/n", event("Test::n", i)).unwrap();
            }
        })
    };
    // Mid-stream, the uplink also takes `zeek/b/`.
    let first = sub.get_timeout(T).await.unwrap().expect("stream started");
    assert_eq!(count_of(&first.1), 0);
    g.add_zeek_uplink(spec(far_addr, &["zeek/a/", "zeek/b/"], &[]))
        .unwrap();
    let mut next = 1;
    while next < N {
        let (_, d) = sub.get_timeout(T).await.unwrap().expect("no gap");
        assert_eq!(
            count_of(&d),
            next,
            "lost or repeated around the handoff (dropped: {} at the gateway, {} at the far end)",
            metric(&g, "dropped_total"),
            metric(&far, "dropped_total")
        );
        next += 1;
    }
    publisher.await.unwrap();
    assert_eq!(
        metric(&g, "dropped_total") + metric(&far, "dropped_total"),
        0
    );
    // The new connection carries `zeek/b/` and the old one is gone.
    far_clients(&far, 1).await;
    far.publish("zeek/b/x", event("Test::b", 7)).unwrap();
    let (topic, d) = sub.get_timeout(T).await.unwrap().expect("zeek/b/");
    assert_eq!((topic.as_str(), count_of(&d)), ("zeek/b/x", 7));
    let info = &g.zeek_uplinks()[0];
    assert_eq!(info.subscribe, ["zeek/a/", "zeek/b/"]);
    assert_eq!(info.connects, 1, "a handoff, not a reconnect");
    g.shutdown().await;
    far.shutdown().await;
}

fn table_event(id: &str, infos: Vec<Data>) -> Data {
    let ts = Data::Timestamp(broker_wasm::Timestamp(1_700_000_000_000_000_000));
    Event::new(
        "Cluster::table_change_infos",
        vec![
            Data::Vector(vec![
                Data::String(id.into()),
                ts.clone(),
                Data::String("zeek".into()),
            ]),
            Data::Vector(infos),
        ],
    )
    .to_data()
}

fn change(kind: &str, key: Data, value: Data) -> Data {
    let ts = Data::Timestamp(broker_wasm::Timestamp(1_700_000_000_000_000_000));
    Data::Vector(vec![
        Data::Enum(kind.into()),
        ts,
        Data::Vector(vec![key]),
        value,
        Data::None,
    ])
}

#[tokio::test]
async fn zu17_table_changes_become_a_read_only_store_cloned_through_a_peer() {
    let (far, far_addr) = endpoint().await;
    let (g, g_addr) = endpoint().await;
    let (h, h_addr) = endpoint().await;
    h.peer_timeout("127.0.0.1", g_addr.port(), None, T)
        .await
        .unwrap();
    uplink(&g, spec(far_addr, &["zeek/"], &[])).await;
    far_clients(&far, 1).await;
    let addr = |s: &str| Data::Address(s.parse().unwrap());
    far.publish(
        "zeek/table/Test::endpoints/",
        table_event(
            "Test::endpoints",
            vec![
                change("TABLE_ELEMENT_NEW", addr("10.0.0.1"), Data::Count(1)),
                change("TABLE_ELEMENT_NEW", addr("10.0.0.2"), Data::Count(2)),
                change("TABLE_ELEMENT_CHANGED", addr("10.0.0.1"), Data::Count(3)),
                change("TABLE_ELEMENT_REMOVED", addr("10.0.0.2"), Data::None),
            ],
        ),
    )
    .unwrap();
    eventually("the zeek: store", || {
        g.probe()
            .store_names()
            .iter()
            .any(|n| n == "zeek:Test::endpoints")
    })
    .await;
    // A clone on the gateway with the uplink, and one through the peer.
    for a in [g_addr, h_addr] {
        let c = Client::connect(&url(a)).await.unwrap();
        let mut clone = c.attach_clone("zeek:Test::endpoints", Default::default());
        clone.synced(T).await.unwrap();
        let deadline = tokio::time::Instant::now() + T;
        while clone.get(&addr("10.0.0.1")).unwrap() != Some(Data::Count(3)) {
            assert!(tokio::time::Instant::now() < deadline, "batch not applied");
            let _ = tokio::time::timeout(Duration::from_millis(100), clone.next_event()).await;
        }
        assert_eq!(clone.len(), 1);
        let err = clone
            .master()
            .put(addr("10.0.0.9"), 1u64, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ReadOnly, "{err:?}");
        c.shutdown().await;
    }
    // Clients cannot create `zeek:` masters.
    let c = Client::connect(&url(h_addr)).await.unwrap();
    let err = c
        .attach_master(
            "zeek:Other",
            broker_wasm::protocol::Backend::Memory,
            Data::None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ReadOnly);
    c.shutdown().await;
    for e in [g, h, far] {
        e.shutdown().await;
    }
}

#[tokio::test]
async fn zu02_clients_with_the_admin_grant_add_and_remove_uplinks_at_run_time() {
    let (far, far_addr) = endpoint().await;
    let dir = std::env::temp_dir().join(format!("broker-uplink-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("auth.json");
    let tokens = serde_json::json!({ "tokens": [
        { "name": "admin", "token": "admin-token-0123456789", "grants": { "admin": true } },
        { "name": "user", "token": "user-token-0123456789", "grants": { "subscribe": [""] } }
    ]});
    std::fs::write(&file, tokens.to_string()).unwrap();
    let (g, g_addr) = endpoint_with(|c| {
        c.auth_file = Some(file);
        c.data_dir = dir.clone();
    })
    .await;
    let g_url = url(g_addr);
    let connect = |token: &'static str| {
        let opts = gateway::client::ClientOptions {
            token: Some(token.into()),
            ..Default::default()
        };
        Client::connect_with(&g_url, opts)
    };
    let user = connect("user-token-0123456789").await.unwrap();
    let admin = connect("admin-token-0123456789").await.unwrap();
    let s = spec(far_addr, &["zeek/"], &[]);
    let err = user.zeek_uplink(s.clone()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert!(
        user.zeek_uplinks().await.unwrap().is_empty(),
        "listing needs no grant"
    );
    // A bad spec is refused with a reason, before anything connects.
    let mut bad = s.clone();
    bad.url = "http://example.org/".into();
    let err = admin.zeek_uplink(bad).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PeerInvalid);
    admin.zeek_uplink(s.clone()).await.unwrap();
    far_clients(&far, 1).await;
    let list = user.zeek_uplinks().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].url, s.url);
    assert_eq!(
        user.zeek_unlink(&s.url).await.unwrap_err().code(),
        ErrorCode::Unauthorized
    );
    admin.zeek_unlink(&s.url).await.unwrap();
    far_clients(&far, 0).await;
    assert!(g.zeek_uplinks().is_empty());
    assert_eq!(
        admin.zeek_unlink(&s.url).await.unwrap_err().code(),
        ErrorCode::PeerInvalid
    );
    user.shutdown().await;
    admin.shutdown().await;
    g.shutdown().await;
    far.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
