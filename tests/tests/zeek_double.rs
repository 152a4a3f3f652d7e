//! The Zeek double (`zeek-double`) against a raw WebSocket client: it must behave as Zeek's
//! WebSocket API does (spec ZU-03..ZU-09), since the uplink tests take it for a Zeek.

use std::time::Duration;

use e2e::start_zeek_double;
use e2e::zeek_double::{ZeekDouble, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PING: &str = "ping(string,count)";

async fn connect(url: &str, app_name: Option<&str>) -> Ws {
    let mut req = url.into_client_request().unwrap();
    if let Some(name) = app_name {
        req.headers_mut()
            .insert("X-Application-Name", name.parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connected in time")
        .expect("WebSocket upgrade")
        .0
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// The next text message.
async fn recv(ws: &mut Ws) -> String {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("no error");
        match m {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

async fn recv_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&recv(ws).await).unwrap()
}

/// What ends the connection: the Close frame (answered: reading goes on to the end), or
/// `None` when it ends without one.
async fn end(ws: &mut Ws) -> Option<Option<(CloseCode, String)>> {
    let mut close = None;
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the end in time")
        {
            Some(Ok(Message::Close(c))) => {
                close = Some(c.map(|c| (c.code, c.reason.as_str().to_owned())));
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return close,
        }
    }
}

/// Proves the connection is open (and everything before was read): a ping gets its pong.
async fn still_open(ws: &mut Ws) {
    ws.send(Message::Ping(b"open?".to_vec().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a pong in time")
        {
            Some(Ok(Message::Pong(p))) if p.as_ref() == b"open?" => return,
            Some(Ok(Message::Pong(_))) => continue,
            other => panic!("expected the pong, got {other:?}"),
        }
    }
}

/// Connects, subscribes to `topics` and returns the socket, the client number and the ack.
async fn client(zeek: &mut ZeekDouble, topics: &[&str]) -> (Ws, u64, Value) {
    let mut ws = connect(&zeek.url(), None).await;
    send(&mut ws, &serde_json::to_string(topics).unwrap()).await;
    let ack = recv_json(&mut ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let n: u64 = ack["endpoint"]
        .as_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    zeek.client_event("subscribed", n).await;
    (ws, n, ack)
}

/// A data message of the event `name(args)` on `topic`, as Broker writes it.
fn event(topic: &str, name: &str, args: Vec<broker_wasm::Data>) -> String {
    let ev = broker_wasm::Event::new(name, args);
    broker_wasm::zeek_json::data_message(topic, &ev.to_data()).unwrap()
}

fn ping(topic: &str, text: &str, n: u64) -> String {
    use broker_wasm::Data;
    event(topic, "ping", vec![Data::string(text), Data::Count(n)])
}

fn error(context: &str) -> String {
    format!(r#"{{"type":"error","code":"deserialization_failed","context":"{context}"}}"#)
}

#[tokio::test]
async fn zu04_ack_has_an_opaque_endpoint_id() {
    let mut zeek = start_zeek_double!(&[]).await;
    assert!(uuid::Uuid::parse_str(&zeek.node).is_ok(), "{}", zeek.node);
    let mut ws = connect(&zeek.url(), None).await;
    let connected = zeek.client_event("connected", 0).await;
    assert_eq!(connected["path"], "/v1/messages/json");
    assert_eq!(connected["app_name"], Value::Null);
    assert!(connected["headers"]["sec-websocket-key"].is_string());
    send(&mut ws, r#"["/topic/a", "zeek/table/"]"#).await;
    let ack = recv(&mut ws).await;
    let endpoint = zeek.endpoint(0);
    assert_eq!(
        ack,
        format!(r#"{{"type":"ack","endpoint":"{endpoint}","version":"8.2.0-double"}}"#)
    );
    assert!(endpoint.ends_with("-websocket-0"));
    assert!(uuid::Uuid::parse_str(&endpoint).is_err(), "not a UUID");
    let sub = zeek.client_event("subscribed", 0).await;
    assert_eq!(sub["topics"], json!(["/topic/a", "zeek/table/"]));
    assert_eq!(sub["endpoint"], endpoint);
    // The next client is number 1, with a fixed --node and --version.
    let mut zeek = start_zeek_double!(&["--node", "node-a", "--version", "8.2.0"]).await;
    let (_a, _, ack) = client(&mut zeek, &[]).await;
    assert_eq!(ack["endpoint"], "node-a-websocket-0");
    assert_eq!(ack["version"], "8.2.0");
    let (_b, n, ack) = client(&mut zeek, &["/x"]).await;
    assert_eq!(
        (n, ack["endpoint"].as_str()),
        (1, Some("node-a-websocket-1"))
    );
}

#[tokio::test]
async fn zu03_other_paths_get_invalid_uri_and_a_close() {
    let mut zeek = start_zeek_double!(&[]).await;
    let url = format!("ws://127.0.0.1:{}/v0/messages/json", zeek.port);
    let mut ws = connect(&url, None).await;
    assert_eq!(
        recv(&mut ws).await,
        r#"{"type":"error","code":"invalid_uri","context":"Invalid URI - use /v1/messages/json"}"#
    );
    assert_eq!(
        end(&mut ws).await,
        Some(Some((
            CloseCode::Policy,
            "Invalid URI - use /v1/messages/json".into()
        )))
    );
    let refused = zeek.client_event("refused", 0).await;
    assert_eq!(refused["error"]["code"], "invalid_uri");
    zeek.client_event("closed", 0).await;
}

#[tokio::test]
async fn zu09_bad_application_names_are_refused_good_ones_kept() {
    let mut zeek = start_zeek_double!(&[]).await;
    let mut ws = connect(&zeek.url(), Some("my app")).await;
    assert_eq!(
        recv(&mut ws).await,
        r#"{"type":"error","code":"invalid_application_name","context":"Invalid X-Application-Name"}"#
    );
    assert_eq!(
        end(&mut ws).await,
        Some(Some((
            CloseCode::Policy,
            "Invalid X-Application-Name".into()
        )))
    );
    let name = "broker-gateway/0.1@host:x=*_.";
    let mut ws = connect(&zeek.url(), Some(name)).await;
    let connected = zeek.client_event("connected", 1).await;
    assert_eq!(connected["app_name"], name);
    assert_eq!(connected["headers"]["x-application-name"], name);
    send(&mut ws, r#"["/t"]"#).await;
    assert_eq!(recv_json(&mut ws).await["type"], "ack");
    zeek.client_event("subscribed", 1).await;
    assert_eq!(
        zeek.clients().await,
        vec![json!({"client": 1, "topics": ["/t"], "app_name": name})]
    );
}

#[tokio::test]
async fn zu04_bad_handshakes_get_zeeks_errors_and_stay_open() {
    let mut zeek = start_zeek_double!(&[]).await;
    for (first, context) in [
        (r#"{"topics":["/t"]}"#, "subscriptions not an array"),
        (r#"["broken", "brrr"#, "subscriptions not an array"),
        (r#"[1, "/t"]"#, "individual subscription not a string"),
    ] {
        let mut ws = connect(&zeek.url(), None).await;
        send(&mut ws, first).await;
        let err = recv(&mut ws).await;
        assert_eq!(
            err,
            format!(r#"{{"type":"error","code":"deserialization_failed","context":"{context}"}}"#)
        );
        let rejected = zeek.next("rejected", |e| e["event"] == "rejected").await;
        assert_eq!(rejected["message_text"], first);
        // Zeek keeps the connection but never acks it: later messages are not answered.
        send(&mut ws, r#"["/t"]"#).await;
        still_open(&mut ws).await;
        zeek.next("ignored", |e| e["event"] == "ignored").await;
    }
    assert!(zeek.clients().await.is_empty());
}

#[tokio::test]
async fn zu08_non_events_get_the_exact_error_and_the_connection_stays_open() {
    let mut zeek = start_zeek_double!(&["--event", PING]).await;
    let (mut a, na, _) = client(&mut zeek, &["/t"]).await;
    let (mut b, _, _) = client(&mut zeek, &["/t"]).await;
    let cases = [
        (
            r#"{"type":"data-message","topic":"/t","@data-type":"count","data":1}"#,
            "failed to create Zeek event",
        ),
        ("How is it going?", "failed to decode JSON object"),
        (r#"["/other"]"#, "failed to decode JSON object"),
        (
            r#"{"type":"data-message","topic":"/t","@data-type":"money","data":1}"#,
            "failed to decode JSON object",
        ),
        (
            r#"{"type":"data-message","@data-type":"count","data":1}"#,
            "no topic in top-level JSON object",
        ),
        (
            r#"{"type":"data-message","topic":"<$>","@data-type":"count","data":1}"#,
            "no topic in top-level JSON object",
        ),
    ];
    for (text, context) in cases {
        send(&mut a, text).await;
        assert_eq!(recv(&mut a).await, error(context), "{text}");
        let r = zeek.client_event("rejected", na).await;
        assert_eq!(
            r["error"],
            serde_json::from_str::<Value>(&error(context)).unwrap()
        );
        assert_eq!(r["message_text"], text);
    }
    // Still open: a declared event goes through (Zeek ignores the `type` member).
    let good = ping("/t/1", "hello", 1).replace(r#""type":"data-message","#, "");
    send(&mut a, &good).await;
    assert_eq!(recv(&mut b).await, good);
    let r = zeek.client_event("received", na).await;
    assert_eq!(
        (r["name"].as_str(), r["delivered"].as_u64()),
        (Some("ping"), Some(1))
    );
    assert_eq!(r["message"], serde_json::from_str::<Value>(&good).unwrap());
}

#[tokio::test]
async fn zu08_unknown_events_and_wrong_arguments_are_refused() {
    use broker_wasm::Data;
    let mut zeek = start_zeek_double!(&["--event", PING, "--event", "anything"]).await;
    let (mut a, _, _) = client(&mut zeek, &["/t"]).await;
    let (mut b, _, _) = client(&mut zeek, &["/t"]).await;
    for bad in [
        event("/t", "pong", vec![Data::string("x"), Data::Count(1)]),
        event("/t", "ping", vec![Data::string("x")]),
        event("/t", "ping", vec![Data::Count(1), Data::string("x")]),
        event("/t", "ping", vec![Data::string("x"), Data::Integer(1)]),
    ] {
        send(&mut a, &bad).await;
        assert_eq!(recv(&mut a).await, error("failed to create Zeek event"));
    }
    // An event declared without argument types takes any.
    let any = event("/t", "anything", vec![Data::Real(1.5), Data::None]);
    send(&mut a, &any).await;
    assert_eq!(recv(&mut b).await, any);
    // A Cluster::table_change_infos that is no such record is refused by the default
    // declaration.
    let bad = event(
        "/t",
        "Cluster::table_change_infos",
        vec![Data::string("x"), Data::Vector(vec![])],
    );
    send(&mut a, &bad).await;
    assert_eq!(recv(&mut a).await, error("failed to create Zeek event"));
    assert_eq!(
        zeek.command(json!({"cmd": "stats"}), "stats").await["rejected"],
        5
    );
}

#[tokio::test]
async fn zu07_events_reach_other_subscribers_never_the_sender() {
    let mut zeek = start_zeek_double!(&["--event", PING]).await;
    let (mut a, na, _) = client(&mut zeek, &["/topic/"]).await;
    let (mut b, _, _) = client(&mut zeek, &["/elsewhere", "/topic/x"]).await;
    let (mut c, _, _) = client(&mut zeek, &["/other"]).await;
    let msg = ping("/topic/x/1", "from a", 1);
    send(&mut a, &msg).await;
    assert_eq!(recv(&mut b).await, msg, "the exact text");
    let r = zeek.client_event("received", na).await;
    assert_eq!(
        (r["topic"].as_str(), r["delivered"].as_u64()),
        (Some("/topic/x/1"), Some(1))
    );
    // A and C got nothing: the next thing each sees is what the double publishes next.
    for (ws, topic) in [(&mut a, "/topic/y"), (&mut c, "/other/1")] {
        let marker = ping(topic, "marker", 2);
        assert_eq!(zeek.publish(Value::String(marker.clone())).await, 1);
        assert_eq!(recv(ws).await, marker);
    }
}

#[tokio::test]
async fn zu05_subscriptions_are_fixed() {
    let mut zeek = start_zeek_double!(&[]).await;
    let (mut ws, _, _) = client(&mut zeek, &["/a"]).await;
    // A second array is a data message to Zeek, not a new subscription.
    send(&mut ws, r#"["/b"]"#).await;
    assert_eq!(recv(&mut ws).await, error("failed to decode JSON object"));
    let on = |topic: &str| json!({"type": "data-message", "topic": topic, "@data-type": "real", "data": 0.5});
    assert_eq!(zeek.publish(on("/b/1")).await, 0);
    assert_eq!(zeek.publish(on("/a/1")).await, 1);
    // Objects are written in Broker's member order, reals with %f.
    assert_eq!(
        recv(&mut ws).await,
        r#"{"type":"data-message","topic":"/a/1","@data-type":"real","data":0.500000}"#
    );
}

#[tokio::test]
async fn zu15_on_connect_messages_follow_the_ack() {
    let mut zeek = start_zeek_double!(&[]).await;
    let snapshot = std::fs::read_to_string(fixture("publish-table-snapshot.json")).unwrap();
    let marker = std::fs::read_to_string(fixture("table-published-marker.json")).unwrap();
    let other = ping("/other", "not for it", 1);
    zeek.on_connect(vec![
        Value::String(snapshot.clone()),
        Value::String(other),
        Value::String(marker.clone()),
    ])
    .await;
    let mut ws = connect(&zeek.url(), None).await;
    send(&mut ws, r#"["zeek/table/Test::endpoints/"]"#).await;
    assert_eq!(recv_json(&mut ws).await["type"], "ack");
    assert_eq!(recv(&mut ws).await, snapshot);
    assert_eq!(recv(&mut ws).await, marker);
    assert_eq!(zeek.client_event("subscribed", 0).await["on_connect"], 2);
    // Clients that were acked before are not sent them.
    let (mut late, _, _) = client(&mut zeek, &["/other"]).await;
    let next = ping("/other", "next", 2);
    assert_eq!(zeek.publish(Value::String(next.clone())).await, 1);
    assert_eq!(
        recv(&mut late).await.len(),
        ping("/other", "not for it", 1).len()
    );
    assert_eq!(recv(&mut late).await, next);
}

#[tokio::test]
async fn kick_drops_every_connection_without_a_close_frame() {
    let mut zeek = start_zeek_double!(&[]).await;
    let (mut a, na, _) = client(&mut zeek, &["/t"]).await;
    let (mut b, nb, _) = client(&mut zeek, &["/t"]).await;
    assert_eq!(zeek.kick().await, 2);
    assert_eq!(end(&mut a).await, None);
    assert_eq!(end(&mut b).await, None);
    for n in [na, nb] {
        let closed = zeek.client_event("closed", n).await;
        assert_eq!(closed["code"], Value::Null);
    }
    assert!(zeek.clients().await.is_empty());
    // New clients are welcome afterwards.
    let (_c, nc, _) = client(&mut zeek, &["/t"]).await;
    assert_eq!(nc, 2);
}

#[tokio::test]
async fn close_sends_a_close_frame_like_a_terminating_zeek() {
    let mut zeek = start_zeek_double!(&[]).await;
    let (mut a, na, _) = client(&mut zeek, &["/t"]).await;
    zeek.command(json!({"cmd": "close"}), "closing").await;
    assert_eq!(
        end(&mut a).await,
        Some(Some((CloseCode::Away, "Terminating".into())))
    );
    let closed = zeek.client_event("closed", na).await;
    assert_eq!(closed["code"], 1001, "the client's answer");
}

#[tokio::test]
async fn burst_sends_numbered_events_in_order() {
    let mut zeek = start_zeek_double!(&[]).await;
    let (mut a, _, _) = client(&mut zeek, &["/bench"]).await;
    let (mut other, _, _) = client(&mut zeek, &["/else"]).await;
    zeek.send(&json!({"cmd": "burst", "topic": "/bench/x", "name": "tick", "count": 2000}));
    for i in 0..2000u64 {
        let text = recv(&mut a).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        let data: broker_wasm::Data = serde::Deserialize::deserialize(&v).unwrap();
        let ev = broker_wasm::Event::from_data(&data).unwrap();
        assert_eq!(ev.name, "tick");
        assert_eq!(ev.args[0], broker_wasm::Data::Count(i));
        assert!(matches!(ev.args[1], broker_wasm::Data::Timestamp(_)));
    }
    let done = zeek.event("burst_done").await;
    assert_eq!(
        (done["sent"].as_u64(), done["clients"].as_u64()),
        (Some(2000), Some(1))
    );
    // Paced: 300 events at 3000/s take about 0.1 s.
    zeek.send(
        &json!({"cmd": "burst", "topic": "/bench/x", "name": "tick", "count": 300, "rate": 3000}),
    );
    for _ in 0..300 {
        recv(&mut a).await;
    }
    let done = zeek.event("burst_done").await;
    assert!(done["seconds"].as_f64().unwrap() >= 0.09, "{done}");
    still_open(&mut other).await;
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_up_nobody_else() {
    let mut zeek = start_zeek_double!(&[]).await;
    let (_stuck, _, _) = client(&mut zeek, &["/bench"]).await;
    let (mut fine, _, _) = client(&mut zeek, &["/bench"]).await;
    // About 34 MB each: far more than the socket buffers of the client that never reads.
    let n = 100_000u64;
    zeek.send(&json!({"cmd": "burst", "topic": "/bench/x", "name": "tick", "count": n}));
    for _ in 0..n {
        recv(&mut fine).await;
    }
    assert_eq!(zeek.kick().await, 2);
    let done = zeek.event("burst_done").await;
    assert!(done["sent"].as_u64().unwrap() < n, "{done}");
    assert!(done["frames"].as_u64().unwrap() >= n, "{done}");
}

#[tokio::test]
async fn unknown_commands_are_answered_with_an_error() {
    let mut zeek = start_zeek_double!(&[]).await;
    let e = zeek.command(json!({"cmd": "fly"}), "error").await;
    assert!(e["text"].as_str().unwrap().contains("fly"), "{e}");
    let e = zeek
        .command(
            json!({"cmd": "publish", "message": {"no": "topic"}}),
            "error",
        )
        .await;
    assert!(e["text"].as_str().unwrap().contains("topic"), "{e}");
}

#[test]
fn eof_on_stdin_ends_the_process() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zeek-double"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with(r#"{"listening":"#), "{line}");
    drop(child.stdin.take());
    let status = e2e::wait_within(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
    }
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/zeek")
        .join(name)
}

#[tokio::test]
async fn zu13_fixtures_are_table_change_infos_events_zeek_accepts() {
    let mut zeek = start_zeek_double!(&[]).await;
    let (mut a, na, _) = client(&mut zeek, &["zeek/table/"]).await;
    let (mut b, _, _) = client(&mut zeek, &["zeek/table/"]).await;
    let mut names: Vec<_> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        let text = std::fs::read_to_string(fixture(&name)).unwrap();
        assert!(
            !text.ends_with('\n'),
            "{name}: one frame's text, no newline"
        );
        // The double forwards what its declarations accept, byte for byte.
        send(&mut a, &text).await;
        assert_eq!(recv(&mut b).await, text, "{name}");
        let r = zeek.client_event("received", na).await;
        let topic = r["topic"].as_str().unwrap();
        assert!(
            topic.starts_with("zeek/table/") && topic.ends_with('/'),
            "{name}"
        );
        // Broker's encoding: re-encoding the decoded value gives the same text, except for
        // reals (Broker: %f) which the Rust encoder writes shortest.
        let v: Value = serde_json::from_str(&text).unwrap();
        let data: broker_wasm::Data = serde::Deserialize::deserialize(&v).unwrap();
        let again = broker_wasm::zeek_json::data_message(topic, &data).unwrap();
        if !text.contains(r#""real""#) {
            assert_eq!(again, text, "{name}");
        }
    }
}
