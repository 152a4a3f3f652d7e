//! Outbound peerings: one connection attempt, and the dialer that keeps a peering alive with
//! jittered backoff (ZB-03, ZB-67) until it is unpeered or the endpoint shuts down.

use std::sync::Arc;
use std::time::Duration;

use broker_wasm::protocol::{self, NetworkInfo, PeerStatus};
use broker_wasm::{ErrorCode, NodeId};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;

use super::{link::drive_link, Outbound, PeerError};
use crate::state::Shared;

/// Result of one connection attempt.
enum Attempt {
    Peered(NodeId, oneshot::Receiver<bool>),
    Failed(PeerError),
}

/// Connects to `host:port` once and drives the link in the background.
async fn attempt(shared: &Arc<Shared>, host: &str, port: u16) -> Attempt {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let label = format!("{host}:{port}");
    let scheme = if shared.peer_tls.is_some() {
        "wss"
    } else {
        "ws"
    };
    let url = format!("{scheme}://{label}{}", protocol::PEER_PATH);
    let mut req = match url.into_client_request() {
        Ok(r) => r,
        Err(_) => return Attempt::Failed(PeerError::Unavailable(label)),
    };
    req.headers_mut().insert(
        "sec-websocket-protocol",
        protocol::SUBPROTOCOL_BINARY.parse().expect("valid header"),
    );
    if let Some(token) = &shared.config.peer_token {
        match format!("Bearer {token}").parse() {
            Ok(v) => {
                req.headers_mut().insert("authorization", v);
            }
            Err(_) => return Attempt::Failed(PeerError::Unavailable(label)),
        }
    }
    // The socket comes from broker-client's connector (TCP, TLS for wss://, the WebSocket
    // handshake), as for a client. The link itself is not a `Client`: it speaks the peer
    // protocol (`PeerMsg`: adverts, forwarding with TTL and sequence numbers, store relays),
    // which the client's `ClientCore` does not, so `drive_link` stays the driver.
    let connect = broker_client::tls::connect_ws(
        req,
        Some(ws_config(shared.config.max_frame)),
        shared.peer_tls.clone(),
    );
    let ws = match tokio::time::timeout(Duration::from_secs(1), connect).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!("peering with {label} failed: {e}");
            return Attempt::Failed(PeerError::Unavailable(label));
        }
        Err(_) => return Attempt::Failed(PeerError::Unavailable(label)),
    };
    let (sink, stream) = ws.split();
    let rx_ws = stream
        .take_while(|m| std::future::ready(m.is_ok()))
        .map(|m| match m {
            Ok(Message::Binary(b)) => Some(b),
            _ => None,
        })
        .boxed();
    let tx_ws = sink.with(|b: Bytes| {
        std::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(
            Message::Binary(b),
        ))
    });
    let network = NetworkInfo {
        address: host.to_owned(),
        port,
    };
    let (hello_tx, hello_rx) = oneshot::channel();
    let (end_tx, end_rx) = oneshot::channel();
    let s = shared.clone();
    shared.tasks.spawn(async move {
        drive_link(s, rx_ws, Box::pin(tx_ws), network, true, hello_tx).await;
        let _ = end_tx.send(true);
    });
    match hello_rx.await {
        Ok(Ok(node)) => Attempt::Peered(node, end_rx),
        Ok(Err(e)) => Attempt::Failed(e),
        Err(_) => Attempt::Failed(PeerError::Unavailable(label)),
    }
}

pub(crate) fn ws_config(
    max_frame: usize,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_frame + protocol::HEADER_LEN))
        .max_frame_size(Some(max_frame + protocol::HEADER_LEN))
}

/// Jittered exponential backoff capped at `cap` (ZB-67: Broker retries at a fixed interval).
pub(crate) fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(10));
    let d = base.min(cap);
    let jitter = rand::random::<f64>() * 0.5 + 0.5;
    d.mul_f64(jitter)
}

/// Peers with `host:port` (ZB-03). Resolves once peered. With `retry` = `None` it makes one
/// attempt; otherwise it keeps trying (backing off up to `retry`) and, once peered, also
/// reconnects after the link is lost, until unpeered or shut down.
pub async fn peer(
    shared: &Arc<Shared>,
    host: &str,
    port: u16,
    retry: Option<Duration>,
) -> Result<NodeId, PeerError> {
    let key = format!("{host}:{port}");
    if shared.shutdown.is_cancelled() {
        return Err(PeerError::ShuttingDown);
    }
    // Already peered? Already trying? Then wait with the attempt in progress.
    let (first_tx, first_rx) = oneshot::channel::<Result<NodeId, PeerError>>();
    let cancel = {
        let mut st = shared.peering.lock();
        let peered = |o: &Outbound| o.node.filter(|n| st.by_node.contains_key(n));
        match st.outbound.get(&key) {
            Some(o) => {
                if let Some(node) = peered(o) {
                    return Ok(node);
                }
                if let Some(o) = st.outbound.get_mut(&key) {
                    o.waiters.push(first_tx);
                }
                None
            }
            None => {
                let cancel = shared.shutdown.child_token();
                st.outbound.insert(
                    key.clone(),
                    Outbound {
                        cancel: cancel.clone(),
                        status: PeerStatus::Connecting,
                        node: None,
                        waiters: vec![first_tx],
                    },
                );
                Some(cancel)
            }
        }
    };
    let Some(cancel) = cancel else {
        return first_rx.await.unwrap_or(Err(PeerError::Unavailable(key)));
    };
    let s = shared.clone();
    let (host, key2) = (host.to_owned(), key.clone());
    shared.tasks.spawn(async move {
        let mut tries = 0u32;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            s.peering.set_outbound(
                &key2,
                if tries == 0 {
                    PeerStatus::Connecting
                } else {
                    PeerStatus::Reconnecting
                },
                None,
            );
            let outcome = tokio::select! {
                a = attempt(&s, &host, port) => a,
                _ = cancel.cancelled() => break,
            };
            match outcome {
                Attempt::Peered(node, ended) => {
                    tries = 0;
                    s.peering
                        .set_outbound(&key2, PeerStatus::Peered, Some(node));
                    s.peering.resolve_waiters(&key2, Ok(node));
                    tokio::select! {
                        _ = ended => {}
                        _ = cancel.cancelled() => break,
                    }
                    // Our connection was redundant or replaced: the peer dialed us too and
                    // its connection carries the peering (ZB-63). Nothing to reconnect while
                    // that one stands.
                    if !s.peering.link_gone(node, &cancel).await {
                        break;
                    }
                    s.peering
                        .set_outbound(&key2, PeerStatus::Disconnected, None);
                }
                Attempt::Failed(e) => {
                    // ZB-23.5 and .7: every failed attempt reports PeerUnavailable.
                    s.emit_error(
                        ErrorCode::PeerUnavailable,
                        format!("unable to connect to remote peer {key2}: {e}"),
                    );
                    tries += 1;
                    if retry.is_none() {
                        s.peering.resolve_waiters(&key2, Err(e));
                        break;
                    }
                }
            }
            let Some(cap) = retry else { break };
            tokio::select! {
                _ = tokio::time::sleep(backoff(tries, cap)) => {}
                _ = cancel.cancelled() => break,
            }
        }
        // Whoever still waits learns the attempt is over; forget the record unless an
        // unpeer already did.
        s.peering
            .resolve_waiters(&key2, Err(PeerError::Unavailable(key2.clone())));
        let mut st = s.peering.lock();
        if st
            .outbound
            .get(&key2)
            .is_some_and(|o| o.cancel.is_cancelled() || retry.is_none())
        {
            st.outbound.remove(&key2);
        }
    });
    first_rx.await.unwrap_or(Err(PeerError::Unavailable(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let cap = Duration::from_secs(2);
        for attempt in 0..20 {
            let d = backoff(attempt, cap);
            assert!(d <= cap);
            assert!(d >= Duration::from_millis(50));
        }
        assert!(backoff(0, cap) <= Duration::from_millis(100));
    }
}
