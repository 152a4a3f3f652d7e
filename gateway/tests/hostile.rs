//! Hostile clients (hardening): a client that asks and asks but never reads what it is sent
//! is disconnected once a queue's worth of answers piles up, and its connection is freed;
//! memory does not grow without bound.

mod common;

use broker_wasm::protocol::{ClientMsg, Encoding};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_disconnected() {
    let (ep, addr) = endpoint_with(|c| c.queue_size = 16).await;
    let mut ws = native_raw(addr, Encoding::Binary).await;
    assert_eq!(metric(&ep, "connections_native"), 1);
    let pings: Vec<ClientMsg> = (0..10_000).map(|nonce| ClientMsg::Ping { nonce }).collect();
    let frame = Encoding::Binary.encode(&pings).unwrap();
    let deadline = tokio::time::Instant::now() + T * 3;
    // Ask for pongs and never read them: the socket buffers fill, then the gateway's queue,
    // then the gateway gives up on the client.
    while metric(&ep, "connections_native") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway kept a client that does not read"
        );
        let send = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            ws.send(Message::Binary(frame.clone().into())),
        );
        if !matches!(send.await, Ok(Ok(()))) {
            // The gateway stopped reading us or closed: wait for the connection to go.
            eventually("the connection to be freed", || {
                metric(&ep, "connections_native") == 0
            })
            .await;
        }
    }
    ep.shutdown().await;
}

/// A value with `n` levels of containers, alternating tables and vectors.
fn nested(n: usize) -> broker_wasm::Data {
    use broker_wasm::Data;
    let mut d = Data::Count(1);
    for i in 0..n {
        d = if i % 2 == 0 {
            Data::Table([(Data::Count(i as u64), d)].into_iter().collect())
        } else {
            Data::Vector(vec![d])
        };
    }
    d
}

#[tokio::test]
async fn values_nested_too_deep_are_refused_and_the_deepest_allowed_reach_every_encoding() {
    use broker_client::{Client, ClientOptions, StatusEvent};
    use broker_wasm::data::MAX_NESTING;
    use broker_wasm::ErrorCode;

    assert_eq!(nested(MAX_NESTING).nesting(100), MAX_NESTING);
    let (ep, addr) = endpoint().await;
    let binary = Client::connect(&url(addr)).await.unwrap();
    let json_opts = ClientOptions {
        encoding: Encoding::Json,
        ..Default::default()
    };
    let json = Client::connect_with(&url(addr), json_opts).await.unwrap();
    let mut json_sub = json.make_subscriber(["deep/"]);
    json.flush().await.unwrap();
    let mut zeek = raw_ws(addr, "/v1/messages/json", None).await;
    zeek.send(Message::Text(r#"["deep/"]"#.into()))
        .await
        .unwrap();
    assert!(recv_text(&mut zeek).await.contains("ack"));

    // One level too deep: refused, delivered to nobody.
    let mut statuses = binary.make_status_subscriber();
    binary
        .publish("deep/x", nested(MAX_NESTING + 1))
        .await
        .unwrap();
    let e = loop {
        match statuses.get_timeout(T).await.unwrap() {
            Some(StatusEvent::Error(e)) => break e,
            Some(_) => continue,
            None => panic!("no error"),
        }
    };
    assert_eq!(e.code, ErrorCode::InvalidData);
    // The deepest allowed: every encoding decodes it, and it is the first thing each sees.
    binary.publish("deep/y", nested(MAX_NESTING)).await.unwrap();
    let (topic, data) = tokio::time::timeout(T, json_sub.get())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((topic.as_str(), data), ("deep/y", nested(MAX_NESTING)));
    let text = recv_text(&mut zeek).await;
    let p = broker_wasm::zeek_json::decode_data_message(text.as_bytes(), 1).unwrap();
    assert_eq!((p.topic.as_str(), p.data), ("deep/y", nested(MAX_NESTING)));

    // Stores refuse such values too.
    binary
        .attach_master(
            "s",
            broker_wasm::protocol::Backend::Memory,
            broker_wasm::Data::None,
        )
        .await
        .unwrap();
    let e = binary
        .store("s")
        .put("k", nested(MAX_NESTING + 1), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidData);
    ep.shutdown().await;
}
