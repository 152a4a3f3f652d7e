//! Helpers for in-process gateway tests: endpoints on 127.0.0.1:0, raw WebSocket clients.
#![allow(dead_code)]

pub mod cut;
pub mod ns;
pub mod redis;

use std::net::SocketAddr;
use std::time::Duration;

use broker_wasm::protocol::{self, ClientMsg, Encoding, Hello, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use gateway::{Config, Endpoint, StatusEvent, StatusSubscriber};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const T: Duration = Duration::from_secs(10);

/// An endpoint listening on 127.0.0.1:0 with `tweak` applied to its config.
pub async fn endpoint_with(tweak: impl FnOnce(&mut Config)) -> (Endpoint, SocketAddr) {
    let mut config = Config::embedded();
    tweak(&mut config);
    let ep = Endpoint::new(config);
    let addr = ep.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (ep, addr)
}

pub async fn endpoint() -> (Endpoint, SocketAddr) {
    endpoint_with(|_| {}).await
}

pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}")
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw WebSocket connection to `path`, offering `subprotocol` if given.
pub async fn raw_ws(addr: SocketAddr, path: &str, subprotocol: Option<&str>) -> Ws {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(p) = subprotocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// A raw native connection that has said hello.
pub async fn native_raw(addr: SocketAddr, encoding: Encoding) -> Ws {
    let mut ws = raw_ws(addr, "/v1/broker", Some(encoding.subprotocol())).await;
    let hello = ClientMsg::Hello(Hello {
        client: "test".into(),
        token: None,
        statuses: false,
    });
    send_frame(&mut ws, encoding, &[hello]).await;
    let msgs = recv_frame(&mut ws, encoding).await;
    assert!(matches!(msgs[0], ServerMsg::Welcome(_)), "{msgs:?}");
    ws
}

pub async fn send_frame(ws: &mut Ws, encoding: Encoding, msgs: &[ClientMsg]) {
    let bytes = encoding.encode(msgs).unwrap();
    let m = match encoding {
        Encoding::Binary => Message::Binary(bytes.into()),
        Encoding::Json => Message::Text(String::from_utf8(bytes).unwrap().into()),
    };
    ws.send(m).await.unwrap();
}

pub async fn recv_frame(ws: &mut Ws, encoding: Encoding) -> Vec<ServerMsg> {
    loop {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        match m {
            Message::Binary(b) => return protocol::from_binary(&b, usize::MAX).unwrap(),
            Message::Text(t) => {
                assert_eq!(encoding, Encoding::Json);
                return protocol::from_json(t.as_bytes(), usize::MAX).unwrap();
            }
            _ => continue,
        }
    }
}

/// Next text message of a Zeek API connection.
pub async fn recv_text(ws: &mut Ws) -> String {
    loop {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return t.as_str().to_owned();
        }
    }
}

/// Waits for a status (not error) event with `code` on `sub`, skipping others; returns it.
pub async fn expect_status(
    sub: &mut StatusSubscriber,
    code: broker_wasm::StatusCode,
) -> broker_wasm::protocol::Status {
    loop {
        match sub.get_timeout(T).await.unwrap() {
            Some(StatusEvent::Status(s)) if s.code == code => return s,
            Some(_) => continue,
            None => panic!("no {code:?} status within {T:?}"),
        }
    }
}

/// Polls `cond` every 10 ms until it holds (up to 10 s). For state that has no event to
/// await, e.g. filters propagating through several gateways.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of `broker_<name>` in an endpoint's `/metrics`.
pub fn metric(ep: &Endpoint, name: &str) -> u64 {
    let text = ep.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("broker_{name} ")))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
        .parse()
        .unwrap()
}
