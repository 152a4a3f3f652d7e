//! Peering between gateways (ZB-03..08, ZB-23, ZB-63..68): handshake and statuses,
//! subscription propagation, exactly-once delivery over line, ring and mesh topologies,
//! unpeer, failures, reconnects.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use broker_wasm::{Data, ErrorCode, StatusCode};
use common::*;
use gateway::{Endpoint, StatusEvent};

async fn peer(a: &Endpoint, b: std::net::SocketAddr) {
    a.peer_timeout("127.0.0.1", b.port(), None, T)
        .await
        .expect("peering");
}

/// Waits until `ep` would forward `topic` into the peer graph.
async fn wants(ep: &Endpoint, topic: &str) {
    let s = ep.probe();
    let t = topic.to_owned();
    eventually(&format!("route for {topic}"), move || s.routes(&t)).await;
}

#[tokio::test]
async fn zb23_peering_statuses_and_zb06_zb07_queries() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    let mut sa = a.make_status_subscriber(true);
    let mut sb = b.make_status_subscriber(true);
    let _sub = b.make_subscriber(["/b/", "/test"]);
    peer(&a, b_addr).await;
    // EndpointDiscovered, then PeerAdded, on both sides.
    let d = expect_status(&mut sa, StatusCode::EndpointDiscovered).await;
    assert_eq!(d.endpoint.unwrap().node, Some(b.node_id()));
    let added = expect_status(&mut sa, StatusCode::PeerAdded).await;
    assert_eq!(added.message, "handshake successful");
    let net = added.endpoint.unwrap().network.unwrap();
    assert_eq!(
        (net.address.as_str(), net.port),
        ("127.0.0.1", b_addr.port())
    );
    expect_status(&mut sb, StatusCode::EndpointDiscovered).await;
    expect_status(&mut sb, StatusCode::PeerAdded).await;
    let peers = a.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].endpoint.node, Some(b.node_id()));
    assert!(peers[0].outbound);
    assert!(!b.peers()[0].outbound);
    eventually("B's filter at A", || {
        a.peer_subscriptions() == ["/b/", "/test"]
    })
    .await;
    // Peering again with the same peer succeeds without a second connection (ZB-03).
    peer(&a, b_addr).await;
    assert_eq!(a.peers().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn zb65_messages_follow_subscriptions_across_a_peering() {
    let (a, a_addr) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    peer(&a, b_addr).await;
    let client_a = broker_client::Client::connect(&url(a_addr)).await.unwrap();
    let mut on_b = b.make_subscriber(["/t"]);
    wants(&a, "/t/x").await;
    client_a.publish("/t/x", Data::Count(1)).await.unwrap();
    a.publish("/t/y", Data::Count(2)).unwrap();
    // Two publishers: no order between them (ZB-09).
    let mut got = on_b.get_many_timeout(2, T).await.unwrap();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("/t/x".into(), Data::Count(1)),
            ("/t/y".into(), Data::Count(2))
        ]
    );
    // ZB-17 (our divergence): removing the topic shrinks what A forwards.
    on_b.remove_topic("/t");
    let s = a.probe();
    eventually("route withdrawn", move || !s.routes("/t/x")).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Builds gateways, peers them along `edges`, subscribes every gateway to "/m", publishes
/// `per_node` messages from each, and checks each subscriber got every other gateway's
/// messages exactly once.
async fn exactly_once(n: usize, edges: &[(usize, usize)], per_node: u64) {
    let mut eps = Vec::new();
    for _ in 0..n {
        eps.push(endpoint().await);
    }
    for &(x, y) in edges {
        peer(&eps[x].0, eps[y].1).await;
    }
    let mut subs: Vec<_> = eps.iter().map(|(e, _)| e.make_subscriber(["/m"])).collect();
    for (e, _) in &eps {
        let s = e.probe();
        eventually("all endpoints reachable", move || s.reachable() == n - 1).await;
        wants(e, "/m/x").await;
    }
    // Every remote subscription must be known before publishing.
    for (e, _) in &eps {
        let s = e.probe();
        let count = n - 1;
        eventually("every advert", move || {
            s.reachable() == count && s.routes("/m")
        })
        .await;
    }
    for (i, (e, _)) in eps.iter().enumerate() {
        for k in 0..per_node {
            e.publish(format!("/m/{i}"), Data::Count(k)).unwrap();
        }
    }
    let expected = (n as u64 - 1) * per_node;
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = sub.get_many_timeout(expected as usize, T).await.unwrap();
        assert_eq!(
            got.len() as u64,
            expected,
            "gateway {i} got {} of {expected}",
            got.len()
        );
        let mut seen: HashMap<(String, Data), u32> = HashMap::new();
        for m in got {
            *seen.entry(m).or_default() += 1;
        }
        assert!(seen.values().all(|&c| c == 1), "duplicates at gateway {i}");
        assert!(
            !seen.keys().any(|(t, _)| t == &format!("/m/{i}")),
            "own messages at {i}"
        );
    }
    // Nothing else trickles in afterwards (duplicates would arrive late).
    for (e, _) in &eps {
        e.publish("/m/end", Data::None).unwrap();
    }
    for sub in subs.iter_mut() {
        let tail = sub.get_many_timeout(n - 1, T).await.unwrap();
        assert!(
            tail.iter().all(|(t, _)| t == "/m/end"),
            "late duplicate: {tail:?}"
        );
        assert_eq!(sub.available(), 0);
    }
    for (e, _) in &eps {
        e.shutdown().await;
    }
}

#[tokio::test]
async fn zb66_line_of_three_without_intermediate_subscription() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    let (c, c_addr) = endpoint().await;
    peer(&a, b_addr).await;
    peer(&b, c_addr).await;
    let mut on_c = c.make_subscriber(["/only-c"]);
    wants(&a, "/only-c").await;
    a.publish("/only-c", Data::Count(42)).unwrap();
    assert_eq!(
        on_c.get_timeout(T).await.unwrap(),
        Some(("/only-c".into(), Data::Count(42)))
    );
    for e in [a, b, c] {
        e.shutdown().await;
    }
}

#[tokio::test]
async fn zb66_line_of_three_exactly_once() {
    exactly_once(3, &[(0, 1), (1, 2)], 200).await;
}

#[tokio::test]
async fn zb66_ring_of_three_exactly_once() {
    exactly_once(3, &[(0, 1), (1, 2), (2, 0)], 200).await;
}

#[tokio::test]
async fn zb66_full_mesh_of_four_exactly_once() {
    exactly_once(4, &[(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], 200).await;
}

#[tokio::test]
async fn zb66_ring_of_four_exactly_once() {
    exactly_once(4, &[(0, 1), (1, 2), (2, 3), (3, 0)], 200).await;
}

/// A TCP relay on 127.0.0.1:0 to `to`: reports every connection it accepts, and can sever
/// the connections it relays (no Close frame, no Bye: to both ends the link just breaks).
struct Relay {
    port: u16,
    accepted: tokio::sync::mpsc::UnboundedReceiver<()>,
    cut: std::sync::Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
}

impl Relay {
    async fn start(to: std::net::SocketAddr) -> Relay {
        use tokio_util::sync::CancellationToken;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, accepted) = tokio::sync::mpsc::unbounded_channel();
        let cut = std::sync::Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let current = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let _ = tx.send(());
                let token = current.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Relay {
            port,
            accepted,
            cut,
        }
    }

    /// Breaks every connection relayed so far; later ones are relayed as usual.
    fn sever(&self) {
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = tokio_util::sync::CancellationToken::new();
    }

    /// Waits up to `within` for the relay to accept a connection.
    async fn accepts_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.accepted.recv())
            .await
            .is_ok()
    }
}

/// ZB-05, ZB-68: an unpeer ends a peering for good, even one made with a retry, which would
/// otherwise reconnect whenever the link breaks.
#[tokio::test]
async fn zb05_zb68_unpeer_statuses_and_no_reconnect() {
    const RETRY: Duration = Duration::from_millis(50);
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    // A reaches B through a relay, which counts A's connection attempts.
    let mut relay = Relay::start(b_addr).await;
    let mut sa = a.make_status_subscriber(true);
    let mut sb = b.make_status_subscriber(true);
    a.peer_timeout("127.0.0.1", relay.port, Some(RETRY), T)
        .await
        .expect("peering");
    expect_status(&mut sa, StatusCode::PeerAdded).await;
    expect_status(&mut sb, StatusCode::PeerAdded).await;
    assert!(relay.accepts_within(T).await);
    // The retry is live: when the link breaks, A connects again by itself.
    relay.sever();
    expect_status(&mut sa, StatusCode::PeerLost).await;
    expect_status(&mut sb, StatusCode::PeerLost).await;
    assert!(relay.accepts_within(T).await, "A reconnects");
    expect_status(&mut sa, StatusCode::PeerAdded).await;
    expect_status(&mut sb, StatusCode::PeerAdded).await;
    while relay.accepted.try_recv().is_ok() {}
    // Now A unpeers.
    a.unpeer("127.0.0.1", relay.port).await.unwrap();
    expect_status(&mut sa, StatusCode::PeerRemoved).await;
    expect_status(&mut sa, StatusCode::EndpointUnreachable).await;
    expect_status(&mut sb, StatusCode::PeerLost).await;
    expect_status(&mut sb, StatusCode::EndpointUnreachable).await;
    assert!(a.peers().is_empty(), "{:?}", a.peers());
    // Unknown peer: PeerInvalid as an error event and as the result.
    let err = a.unpeer("127.0.0.1", 1).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PeerInvalid);
    match sa.get_timeout(T).await.unwrap() {
        Some(StatusEvent::Error(e)) => assert_eq!(e.code, ErrorCode::PeerInvalid),
        other => panic!("expected the PeerInvalid error, got {other:?}"),
    }
    // Nobody reconnects: for twenty retry intervals A makes no connection attempt, neither
    // side reports anything, and neither has a peer, connected or pending.
    assert!(
        !relay.accepts_within(RETRY * 20).await,
        "A connected again after the unpeer"
    );
    let at_a = sa.poll();
    assert!(at_a.is_empty(), "A after the unpeer: {at_a:?}");
    let at_b = sb.poll();
    assert!(at_b.is_empty(), "B after the unpeer: {at_b:?}");
    assert!(a.peers().is_empty(), "{:?}", a.peers());
    assert!(b.peers().is_empty(), "{:?}", b.peers());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn zb03_retry_zero_fails_fast_with_peer_unavailable() {
    let (a, _) = endpoint().await;
    let mut sa = a.make_status_subscriber(false);
    // A port nobody listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = a.peer("127.0.0.1", port, None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::PeerUnavailable);
    match sa.get_timeout(T).await.unwrap() {
        Some(StatusEvent::Error(e)) => assert_eq!(e.code, ErrorCode::PeerUnavailable),
        other => panic!("{other:?}"),
    }
    a.shutdown().await;
}

#[tokio::test]
async fn zb67_reconnects_after_the_peer_restarts() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    let mut sa = a.make_status_subscriber(true);
    a.peer_timeout(
        "127.0.0.1",
        b_addr.port(),
        Some(Duration::from_millis(200)),
        T,
    )
    .await
    .unwrap();
    expect_status(&mut sa, StatusCode::PeerAdded).await;
    b.shutdown().await;
    expect_status(&mut sa, StatusCode::PeerLost).await;
    // A new gateway on the same port: A finds it by itself.
    let b2 = Endpoint::new(gateway::Config::embedded());
    b2.listen(b_addr).await.unwrap();
    let added = expect_status(&mut sa, StatusCode::PeerAdded).await;
    assert_eq!(added.endpoint.unwrap().node, Some(b2.node_id()));
    let mut on_b2 = b2.make_subscriber(["/again"]);
    wants(&a, "/again").await;
    a.publish("/again", Data::Count(1)).unwrap();
    assert!(on_b2.get_timeout(T).await.unwrap().is_some());
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn zb08_shutdown_is_seen_as_peer_lost() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    peer(&a, b_addr).await;
    let mut sb = b.make_status_subscriber(true);
    a.shutdown().await;
    expect_status(&mut sb, StatusCode::PeerLost).await;
    expect_status(&mut sb, StatusCode::EndpointUnreachable).await;
    b.shutdown().await;
}

#[tokio::test]
async fn zb23_multi_hop_endpoints_are_discovered_and_lost() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    let (c, c_addr) = endpoint().await;
    let mut sa = a.make_status_subscriber(true);
    peer(&a, b_addr).await;
    peer(&b, c_addr).await;
    loop {
        let s = expect_status(&mut sa, StatusCode::EndpointDiscovered).await;
        if s.endpoint.unwrap().node == Some(c.node_id()) {
            break;
        }
    }
    c.shutdown().await;
    loop {
        let s = expect_status(&mut sa, StatusCode::EndpointUnreachable).await;
        if s.endpoint.unwrap().node == Some(c.node_id()) {
            break;
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// A line a - b - c - d peered in that order: the far ends know each other, whatever order
/// the adverts arrived in (an endpoint's advert may come before the one of the peer that
/// links it).
#[tokio::test]
async fn zb13_await_peer_across_a_line_of_four() {
    let mut eps = Vec::new();
    for _ in 0..4 {
        eps.push(endpoint().await);
    }
    for i in 0..3 {
        peer(&eps[i].0, eps[i + 1].1).await;
    }
    for (x, y) in [(0, 3), (3, 0), (0, 2), (3, 1), (1, 3), (2, 0)] {
        assert!(
            eps[x].0.await_peer(eps[y].0.node_id(), T).await,
            "{x} does not reach {y}"
        );
    }
    for (ep, _) in eps {
        ep.shutdown().await;
    }
}

#[tokio::test]
async fn zb13_await_peer() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    assert!(!a.await_peer(b.node_id(), Duration::from_millis(50)).await);
    let waiter = {
        let a = a.clone();
        let id = b.node_id();
        tokio::spawn(async move { a.await_peer(id, T).await })
    };
    peer(&a, b_addr).await;
    assert!(waiter.await.unwrap());
    assert!(b.await_peer(a.node_id(), T).await);
    a.shutdown().await;
    b.shutdown().await;
}

/// A fake peer that answers the handshake with a frame of protocol version 2.
#[tokio::test]
async fn zb64_version_mismatch_fails_fast_with_peer_incompatible() {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
        // The callback's signature is tungstenite's, large error type included.
        #[allow(clippy::result_large_err)]
        let pick = |_: &Request, mut resp: Response| {
            resp.headers_mut()
                .insert("sec-websocket-protocol", "broker.v1.bin".parse().unwrap());
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, pick)
            .await
            .unwrap();
        let _their_hello = ws.next().await;
        let mut frame =
            broker_wasm::protocol::to_binary(&[broker_wasm::PeerMsg::Ping { nonce: 1 }]).unwrap();
        frame[0] = 2;
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                frame.into(),
            ))
            .await;
        let _ = ws.next().await;
    });
    let (a, _) = endpoint().await;
    let mut sa = a.make_status_subscriber(false);
    let err = a
        .peer_timeout("127.0.0.1", port, None, T)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::PeerIncompatible);
    let mut codes = Vec::new();
    while let Some(StatusEvent::Error(e)) =
        sa.get_timeout(Duration::from_millis(200)).await.unwrap()
    {
        codes.push(e.code);
    }
    assert_eq!(
        codes,
        [ErrorCode::PeerIncompatible, ErrorCode::PeerUnavailable]
    );
    a.shutdown().await;
}

#[tokio::test]
async fn zb03_concurrent_peer_calls_share_one_attempt() {
    let (a, _) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    let (x, y) = tokio::join!(
        a.peer_timeout("127.0.0.1", b_addr.port(), None, T),
        a.peer_timeout("127.0.0.1", b_addr.port(), None, T)
    );
    assert_eq!(x.unwrap(), b.node_id());
    assert_eq!(y.unwrap(), b.node_id());
    assert_eq!(a.peers().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

/// ZB-03, ZB-07: once `peer()` returns, the peer's subscriptions are known and a publish
/// reaches its subscribers at once (no wait for the adverts to arrive). Repeated: the
/// adverts race the handshake.
#[tokio::test]
async fn zb03_after_peer_returns_the_peers_subscriptions_are_known() {
    for i in 0..20u64 {
        let (a, a_addr) = endpoint().await;
        let (b, _) = endpoint().await;
        let mut sub = a.make_subscriber(["/test"]);
        b.peer_timeout("127.0.0.1", a_addr.port(), None, T)
            .await
            .expect("peering");
        assert_eq!(b.peer_subscriptions(), ["/test"], "round {i}");
        b.publish("/test/x", Data::Count(i)).unwrap();
        let (_, d) = sub.get_timeout(T).await.unwrap().expect("delivered");
        assert_eq!(d, Data::Count(i));
        a.shutdown().await;
        b.shutdown().await;
    }
}
