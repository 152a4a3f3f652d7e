//! Hostile clients (hardening): a client that asks and asks but never reads what it is sent
//! is disconnected once a queue's worth of answers piles up, and its connection is freed;
//! memory does not grow without bound.

mod common;

use broker_wasm::protocol::{ClientMsg, Encoding};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

fn gauge(ep: &gateway::Endpoint, name: &str) -> u64 {
    let text = ep.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not in\n{text}"))
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_disconnected() {
    let (ep, addr) = endpoint_with(|c| c.queue_size = 16).await;
    let mut ws = native_raw(addr, Encoding::Binary).await;
    assert_eq!(gauge(&ep, "broker_connections_native"), 1);
    let pings: Vec<ClientMsg> = (0..10_000).map(|nonce| ClientMsg::Ping { nonce }).collect();
    let frame = Encoding::Binary.encode(&pings).unwrap();
    let deadline = tokio::time::Instant::now() + T * 3;
    // Ask for pongs and never read them: the socket buffers fill, then the gateway's queue,
    // then the gateway gives up on the client.
    while gauge(&ep, "broker_connections_native") > 0 {
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
                gauge(&ep, "broker_connections_native") == 0
            })
            .await;
        }
    }
    ep.shutdown().await;
}
