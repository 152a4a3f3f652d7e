//! Bad input and overload never take the gateway or other clients down: malformed frames,
//! unknown versions, invalid topics, oversized frames, floods, connection limits and slow
//! consumers each get a typed error and a counter (ZB-18, ZB-40, ZB-42).

mod common;

use broker_client::Client;
use broker_wasm::protocol::{ClientMsg, Encoding, Hello, Publish, ServerMsg};
use broker_wasm::{Data, ErrorCode, StatusCode};
use common::*;
use futures_util::{SinkExt, StreamExt};
use gateway::SlowConsumerPolicy;
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(ws: &mut Ws, encoding: Encoding, code: ErrorCode) -> String {
    loop {
        for m in recv_frame(ws, encoding).await {
            if let ServerMsg::Error(e) = m {
                assert_eq!(e.code, code, "{}", e.context);
                return e.context;
            }
        }
    }
}

async fn still_usable(ws: &mut Ws, encoding: Encoding) {
    send_frame(ws, encoding, &[ClientMsg::Ping { nonce: 77 }]).await;
    loop {
        if recv_frame(ws, encoding)
            .await
            .contains(&ServerMsg::Pong { nonce: 77 })
        {
            return;
        }
    }
}

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_the_connection_stays() {
    let (ep, addr) = endpoint().await;
    let mut ws = native_raw(addr, Encoding::Binary).await;
    // Unknown message tag, truncated body, unknown version, absurd length.
    for (bytes, code) in [
        (vec![1, 2, 0, 0, 0, 1, 99], ErrorCode::DeserializationFailed),
        (vec![1, 9, 0, 0, 0, 1, 3], ErrorCode::DeserializationFailed),
        (vec![2, 0, 0, 0, 0], ErrorCode::PeerIncompatible),
        (
            vec![1, 0xff, 0xff, 0xff, 0x7f],
            ErrorCode::DeserializationFailed,
        ),
    ] {
        ws.send(Message::Binary(bytes.into())).await.unwrap();
        expect_error(&mut ws, Encoding::Binary, code).await;
        still_usable(&mut ws, Encoding::Binary).await;
    }
    let mut json = native_raw(addr, Encoding::Json).await;
    json.send(Message::Text("{not json".into())).await.unwrap();
    expect_error(&mut json, Encoding::Json, ErrorCode::InvalidJson).await;
    json.send(Message::Text(r#"{"v":3,"messages":[]}"#.into()))
        .await
        .unwrap();
    expect_error(&mut json, Encoding::Json, ErrorCode::PeerIncompatible).await;
    still_usable(&mut json, Encoding::Json).await;
    assert!(metric(&ep, "errors_total") >= 6);
    ep.shutdown().await;
}

#[tokio::test]
async fn the_first_message_must_be_a_hello() {
    let (ep, addr) = endpoint().await;
    let mut ws = raw_ws(addr, "/v1/broker", Some(Encoding::Binary.subprotocol())).await;
    send_frame(&mut ws, Encoding::Binary, &[ClientMsg::Ping { nonce: 1 }]).await;
    expect_error(
        &mut ws,
        Encoding::Binary,
        ErrorCode::UnexpectedHandshakeMessage,
    )
    .await;
    ep.shutdown().await;
}

#[tokio::test]
async fn invalid_topics_are_refused() {
    let (ep, addr) = endpoint().await;
    let mut ws = native_raw(addr, Encoding::Binary).await;
    let bad = Publish {
        topic: "a<$>b".into(),
        data: Data::None,
    };
    send_frame(&mut ws, Encoding::Binary, &[ClientMsg::Publish(bad)]).await;
    expect_error(&mut ws, Encoding::Binary, ErrorCode::InvalidTopicKey).await;
    send_frame(
        &mut ws,
        Encoding::Binary,
        &[ClientMsg::Subscribe {
            topics: vec!["<$>/local/data/statuses".into()],
        }],
    )
    .await;
    expect_error(&mut ws, Encoding::Binary, ErrorCode::InvalidTopicKey).await;
    assert!(ep.probe().local_filter().is_empty());
    ep.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_are_refused_without_harming_others() {
    let (ep, addr) = endpoint_with(|c| c.max_frame = 1024).await;
    let other = Client::connect(&url(addr)).await.unwrap();
    let mut ws = native_raw(addr, Encoding::Binary).await;
    let big = Publish {
        topic: "/big".into(),
        data: Data::String(vec![b'x'; 4096]),
    };
    send_frame(&mut ws, Encoding::Binary, &[ClientMsg::Publish(big)]).await;
    let context = expect_error(&mut ws, Encoding::Binary, ErrorCode::DeserializationFailed).await;
    assert!(context.contains("exceeds the limit of 1024"), "{context}");
    let end = tokio::time::timeout(T, ws.next()).await.unwrap();
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
    other.flush().await.expect("other clients are unaffected");
    ep.shutdown().await;
}

#[tokio::test]
async fn floods_are_limited_per_connection() {
    let (ep, addr) = endpoint_with(|c| c.max_publish_rate = 100).await;
    let mut sub = ep.make_subscriber(["/flood"]);
    let mut ws = native_raw(addr, Encoding::Binary).await;
    let batch: Vec<ClientMsg> = (0..1000u64)
        .map(|i| {
            ClientMsg::Publish(Publish {
                topic: "/flood".into(),
                data: Data::Count(i),
            })
        })
        .collect();
    send_frame(&mut ws, Encoding::Binary, &batch).await;
    let context = expect_error(&mut ws, Encoding::Binary, ErrorCode::InvalidMessage).await;
    assert!(context.contains("publish rate"), "{context}");
    still_usable(&mut ws, Encoding::Binary).await;
    let got = sub.poll().len();
    assert!(
        (100..=200).contains(&got),
        "{got} messages passed a limit of 100/s"
    );
    assert!(metric(&ep, "dropped_total") >= 800);
    ep.shutdown().await;
}

#[tokio::test]
async fn the_connection_limit_refuses_extra_clients() {
    let (ep, addr) = endpoint_with(|c| c.max_connections = 2).await;
    let a = Client::connect(&url(addr)).await.unwrap();
    let b = Client::connect(&url(addr)).await.unwrap();
    let third = Client::connect(&url(addr)).await;
    assert!(third.is_err(), "a third connection must be refused");
    assert_eq!(metric(&ep, "connections_rejected_total"), 1);
    a.shutdown().await;
    // A slot frees up once a client leaves.
    eventually("slot released", || ep.probe().connections() < 2).await;
    let c = Client::connect(&url(addr)).await.unwrap();
    c.flush().await.unwrap();
    b.flush().await.unwrap();
    ep.shutdown().await;
}

#[tokio::test]
async fn the_per_address_limit_refuses_extra_connections_from_one_address() {
    let (ep, addr) = endpoint_with(|c| c.max_connections_per_address = 2).await;
    let a = Client::connect(&url(addr)).await.unwrap();
    let b = Client::connect(&url(addr)).await.unwrap();
    assert!(
        Client::connect(&url(addr)).await.is_err(),
        "a third connection from 127.0.0.1 must be refused"
    );
    assert_eq!(metric(&ep, "connections_rejected_total"), 1);
    a.shutdown().await;
    eventually("slot released", || ep.probe().connections() < 2).await;
    let c = Client::connect(&url(addr)).await.unwrap();
    c.flush().await.unwrap();
    b.flush().await.unwrap();
    ep.shutdown().await;
}

#[tokio::test]
async fn upgrades_abandoned_before_completion_release_their_slot() {
    use tokio::io::AsyncWriteExt;
    let (ep, addr) = endpoint_with(|c| c.max_connections = 1).await;
    // Clients that send the upgrade request and vanish without reading the answer.
    for _ in 0..5 {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            format!(
                "GET /v1/broker HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        drop(tcp);
    }
    // Every slot comes back; a real client gets in.
    eventually("slots released", || ep.probe().connections() == 0).await;
    let c = Client::connect(&url(addr)).await.unwrap();
    c.flush().await.unwrap();
    ep.shutdown().await;
}

/// A subscriber that never reads: its queue stays bounded, messages to it are dropped and
/// counted, and a fast subscriber on the same topic gets everything.
#[tokio::test]
async fn zb18_slow_subscriber_is_bounded_while_a_fast_one_keeps_up() {
    // Room for a burst of 1000 (one flush of the publisher) with some slack.
    let queue = 4096;
    let (ep, addr) = endpoint_with(|c| c.queue_size = queue).await;
    let mut slow = raw_ws(addr, "/v1/broker", Some(Encoding::Binary.subprotocol())).await;
    send_frame(
        &mut slow,
        Encoding::Binary,
        &[
            ClientMsg::Hello(Hello {
                client: "slow".into(),
                token: None,
                statuses: false,
            }),
            ClientMsg::Subscribe {
                topics: vec!["/load".into()],
            },
            ClientMsg::Ping { nonce: 5 },
        ],
    )
    .await;
    // Welcome and Pong: the subscription is in place; from now on `slow` reads nothing.
    let mut seen = Vec::new();
    while !seen.contains(&ServerMsg::Pong { nonce: 5 }) {
        seen.extend(recv_frame(&mut slow, Encoding::Binary).await);
    }
    let fast = Client::connect(&url(addr)).await.unwrap();
    let mut fast_sub = fast.make_subscriber(["/load"]);
    fast.flush().await.unwrap();
    let publisher = Client::connect(&url(addr)).await.unwrap();
    // 30 MB in all: more than the kernel's socket buffers can hide.
    let n = 30_000u64;
    let payload = Data::String(vec![b'p'; 1024]);
    let mut got = 0u64;
    let mut max_queued = 0;
    for chunk in 0..(n / 1000) {
        for i in 0..1000 {
            publisher
                .publish(
                    "/load",
                    Data::Vector(vec![Data::Count(chunk * 1000 + i), payload.clone()]),
                )
                .await
                .unwrap();
        }
        publisher.flush().await.unwrap();
        got += fast_sub.poll().len() as u64;
        max_queued = max_queued.max(metric(&ep, "queued_messages"));
    }
    while got < n {
        let m = fast_sub
            .get_many_timeout((n - got) as usize, T)
            .await
            .unwrap();
        assert!(!m.is_empty(), "fast subscriber stalled at {got} of {n}");
        got += m.len() as u64;
    }
    assert_eq!(got, n, "the fast subscriber gets every message");
    let dropped = metric(&ep, "dropped_total");
    assert!(dropped > 0, "the slow subscriber's messages are dropped");
    assert!(
        max_queued <= 2 * queue as u64 + 8,
        "queues stay bounded: {max_queued}"
    );
    // Its queue is full now. Control messages are never dropped: a ping sent now must get its
    // pong. And when the slow client reads again it learns how much it lost.
    send_frame(
        &mut slow,
        Encoding::Binary,
        &[ClientMsg::Ping { nonce: 99 }],
    )
    .await;
    let (mut note, mut pong) = (None, false);
    while note.is_none() || !pong {
        for m in recv_frame(&mut slow, Encoding::Binary).await {
            match m {
                ServerMsg::Error(e) => note = Some(e),
                ServerMsg::Pong { nonce: 99 } => pong = true,
                _ => {}
            }
        }
    }
    let note = note.unwrap();
    assert_eq!(note.code, ErrorCode::Unspecified);
    assert!(
        note.context.starts_with("slow consumer:"),
        "{}",
        note.context
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn zb18_disconnect_policy_removes_the_slow_consumer() {
    let (ep, addr) = endpoint_with(|c| {
        c.queue_size = 16;
        c.slow_consumer = SlowConsumerPolicy::Disconnect;
    })
    .await;
    let mut slow = native_raw(addr, Encoding::Binary).await;
    send_frame(
        &mut slow,
        Encoding::Binary,
        &[
            ClientMsg::Subscribe {
                topics: vec!["/d".into()],
            },
            ClientMsg::Ping { nonce: 1 },
        ],
    )
    .await;
    recv_frame(&mut slow, Encoding::Binary).await;
    let publisher = Client::connect(&url(addr)).await.unwrap();
    let mut i = 0u64;
    while metric(&ep, "slow_disconnects_total") == 0 {
        for _ in 0..1000 {
            publisher
                .publish("/d", Data::String(vec![0; 256]))
                .await
                .unwrap();
            i += 1;
        }
        publisher.flush().await.unwrap();
        assert!(i < 2_000_000, "never disconnected");
    }
    // The client learns why, then the connection closes.
    let mut removed = false;
    loop {
        match tokio::time::timeout(T, slow.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => {
                let msgs: Vec<ServerMsg> =
                    broker_wasm::protocol::from_binary(&b, usize::MAX).unwrap();
                removed |= msgs.iter().any(
                    |m| matches!(m, ServerMsg::Status(s) if s.code == StatusCode::PeerRemoved),
                );
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            _ => {}
        }
    }
    assert!(removed, "a PeerRemoved status before the close");
    publisher.flush().await.unwrap();
    ep.shutdown().await;
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    let (ep, addr) = endpoint().await;
    let c = Client::connect(&url(addr)).await.unwrap();
    let _s = c.make_subscriber(["/m"]);
    c.publish("/m", Data::Count(1)).await.unwrap();
    c.flush().await.unwrap();
    let text = ep.metrics_text();
    for name in [
        "connections_native",
        "connections_zeek",
        "messages_in_total",
        "messages_out_total",
        "bytes_in_total",
        "bytes_out_total",
        "dropped_total",
        "subscriptions",
        "queued_messages",
        "peers",
    ] {
        assert!(
            text.contains(&format!("# TYPE broker_{name} ")),
            "{name} missing"
        );
    }
    assert_eq!(metric(&ep, "connections_native"), 1);
    assert_eq!(metric(&ep, "subscriptions"), 1);
    assert!(metric(&ep, "messages_in_total") >= 1);
    ep.shutdown().await;
}
