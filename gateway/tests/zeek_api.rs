//! Zeek's WebSocket JSON API over a real WebSocket (ZB-36..43).

mod common;

use broker_client::Client;
use broker_wasm::zeek_json::{self, ServerMessage};
use broker_wasm::{Data, Event};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

async fn zeek_client(addr: std::net::SocketAddr, topics: &[&str]) -> Ws {
    let mut ws = raw_ws(addr, zeek_json::PATH, None).await;
    ws.send(Message::Text(zeek_json::handshake(topics).into()))
        .await
        .unwrap();
    let ack = recv_text(&mut ws).await;
    match zeek_json::decode_server_message(ack.as_bytes()).unwrap() {
        ServerMessage::Ack { endpoint, version } => {
            assert!(!endpoint.is_empty());
            assert_eq!(version, gateway::VERSION);
        }
        other => panic!("expected an ack, got {other:?}"),
    }
    ws
}

#[tokio::test]
async fn zb37_handshake_ack_carries_endpoint_and_version() {
    let (ep, addr) = endpoint().await;
    let mut ws = raw_ws(addr, zeek_json::PATH, None).await;
    ws.send(Message::Text(r#"["/test"]"#.into())).await.unwrap();
    let ack = recv_text(&mut ws).await;
    assert_eq!(
        ack,
        zeek_json::ack(&ep.node_id().to_string(), gateway::VERSION)
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn zb37_bad_handshakes_get_an_error_and_a_close() {
    let (ep, addr) = endpoint().await;
    for (first, context) in [
        (r#"{"a":1}"#, "subscriptions not an array"),
        (r#"[1, "/x"]"#, "individual subscription not a string"),
        (r#"["/bad<$>"]"#, "reserved"),
    ] {
        let mut ws = raw_ws(addr, zeek_json::PATH, None).await;
        ws.send(Message::Text(first.into())).await.unwrap();
        let err = recv_text(&mut ws).await;
        let v: serde_json::Value = serde_json::from_str(&err).unwrap();
        assert_eq!(v["type"], "error");
        assert!(v["context"].as_str().unwrap().contains(context), "{err}");
        assert_eq!(v["message"], v["context"], "Zeek 8 clients read `message`");
        // The server closes the connection.
        let end = tokio::time::timeout(T, futures_util::StreamExt::next(&mut ws))
            .await
            .unwrap();
        assert!(
            matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
            "{end:?}"
        );
    }
    ep.shutdown().await;
}

#[tokio::test]
async fn zb36_other_paths_are_refused() {
    let (ep, addr) = endpoint().await;
    let req = format!("ws://{addr}/v1/messages/other");
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    ep.shutdown().await;
}

#[tokio::test]
async fn zb38_json_and_native_clients_exchange_identical_values() {
    let (ep, addr) = endpoint().await;
    let mut zeek = zeek_client(addr, &["/foo"]).await;
    let native = Client::connect(&url(addr)).await.unwrap();
    let mut sub = native.make_subscriber(["/foo"]);
    native.flush().await.unwrap();

    // Zeek -> native: the ZB-43 event vector.
    let event = Event::new("event_1", vec![Data::Integer(42), Data::string("test")]);
    let text = zeek_json::data_message("/foo/bar", &event.to_data()).unwrap();
    zeek.send(Message::Text(text.clone().into())).await.unwrap();
    let (topic, data) = sub.get_timeout(T).await.unwrap().unwrap();
    assert_eq!(topic, "/foo/bar");
    assert_eq!(Event::from_data(&data).unwrap(), event);

    // native -> Zeek, byte for byte the encoder's output; no echo of the Zeek client's own.
    native.publish("/foo/bar", event.to_data()).await.unwrap();
    assert_eq!(recv_text(&mut zeek).await, text);
    ep.shutdown().await;
}

#[tokio::test]
async fn zb40_zb41_zb43_errors_keep_the_connection_usable() {
    let (ep, addr) = endpoint().await;
    let mut zeek = zeek_client(addr, &["/test"]).await;
    let mut other = zeek_client(addr, &["/test"]).await;
    let cases = [
        ("How is it going?", "input #1 contained malformed JSON"),
        (
            r#"{"topic":"/test","@data-type":"phone","data":"555-0123"}"#,
            "input #2 contained invalid data",
        ),
        (r#"[1,2,3]"#, "input #3 expected a JSON object"),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"count","data":-1}"#,
            "input #4 contained invalid data",
        ),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"count","data":1.0}"#,
            "input #5 contained invalid data",
        ),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"integer","data":9223372036854775808}"#,
            "input #6",
        ),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"real","data":"1.5"}"#,
            "input #7",
        ),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"set","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1}]}"#,
            "input #8",
        ),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"port","data":"80/xyz"}"#,
            "input #9",
        ),
        (
            r#"{"type":"data-message","topic":"/test","@data-type":"address","data":"123ns"}"#,
            "input #10",
        ),
    ];
    for (input, context) in cases {
        zeek.send(Message::Text(input.into())).await.unwrap();
        let err = recv_text(&mut zeek).await;
        let v: serde_json::Value = serde_json::from_str(&err).unwrap();
        assert_eq!(v["type"], "error", "{err}");
        assert_eq!(v["code"], "deserialization_failed", "{err}");
        assert!(v["context"].as_str().unwrap().starts_with(context), "{err}");
    }
    // Reserved topics are refused with their own code.
    zeek.send(Message::Text(
        r#"{"type":"data-message","topic":"<$>/local/x","@data-type":"count","data":1}"#.into(),
    ))
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&recv_text(&mut zeek).await).unwrap();
    assert_eq!(v["code"], "invalid_topic_key");
    // Still usable: a valid message reaches the other client.
    let ok = zeek_json::data_message("/test/ok", &Data::Count(7)).unwrap();
    zeek.send(Message::Text(ok.clone().into())).await.unwrap();
    assert_eq!(recv_text(&mut other).await, ok);
    // A client that vanishes without a Close frame is handled as a normal disconnect.
    drop(zeek);
    let c = Client::connect(&url(addr)).await.unwrap();
    c.flush().await.unwrap();
    // Ten deserialization errors and one invalid topic.
    assert_eq!(metric(&ep, "errors_total"), 11);
    ep.shutdown().await;
}

#[tokio::test]
async fn zb24_json_clients_never_see_status_events() {
    let (ep, addr) = endpoint().await;
    let mut zeek = zeek_client(addr, &[""]).await;
    // Provoke gateway-level errors: a failed peering attempt.
    let _ = ep.peer("127.0.0.1", 1, None).await;
    let native = Client::connect(&url(addr)).await.unwrap();
    native.publish("/after", Data::Count(1)).await.unwrap();
    let text = recv_text(&mut zeek).await;
    assert!(
        text.starts_with(r#"{"type":"data-message","topic":"/after""#),
        "{text}"
    );
    ep.shutdown().await;
}
