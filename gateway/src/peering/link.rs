//! Driving one link between two gateways: the handshake, the writer that batches queued
//! messages into frames, and the reader that hands forwards, adverts and store messages to
//! the peering table and the stores.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use broker_wasm::protocol::{self, Encoding, NetworkInfo, PeerMsg, Publish};
use broker_wasm::{ErrorCode, NodeId};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::{encode_peer, Added, Advert, Link, LinkId, PeerError, HANDSHAKE_TIMEOUT, MAX_BATCH};
use crate::hub::frame_of;
use crate::metrics::Metrics;
use crate::state::Shared;

/// Runs a connected peer transport until it closes. `hello_done` learns the remote node id
/// (or the failure) once the handshake finished; the returned receiver resolves when the link
/// ends (true if the remote is still worth reconnecting to).
pub(crate) async fn drive_link<R, W>(
    shared: Arc<Shared>,
    mut rx_ws: R,
    mut tx_ws: W,
    network: NetworkInfo,
    outbound: bool,
    hello_done: oneshot::Sender<Result<NodeId, PeerError>>,
) where
    R: Stream<Item = Option<Bytes>> + Unpin,
    W: Sink<Bytes> + Unpin,
{
    let peering = &shared.peering;
    let max = shared.config.max_frame;
    let label = format!("{}:{}", network.address, network.port);
    let remote = handshake(&shared, &mut rx_ws, &mut tx_ws, &label).await;
    let node = match remote {
        Ok(n) => n,
        Err(e) => {
            if matches!(e, PeerError::Incompatible(_)) {
                shared.emit_error(
                    ErrorCode::PeerIncompatible,
                    format!("peer {label} speaks another protocol version"),
                );
            }
            let _ = hello_done.send(Err(e));
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(shared.config.queue_size);
    let link = Arc::new(Link {
        node,
        tx,
        network,
        outbound,
        close: shared.shutdown.child_token(),
        removed_by_us: Arc::new(AtomicBool::new(false)),
        replaced: Arc::new(AtomicBool::new(false)),
        bye_ack: Mutex::new(None),
    });
    let id = match peering.add_link(link.clone()) {
        Added::New(id) => id,
        Added::Replaced(id) => {
            // Feeds and requests on the replaced connection are gone: relays look again.
            shared.stores.peer_gone(node);
            id
        }
        Added::Redundant => {
            // Another connection carries this peering (ZB-63). The peer may have sent on
            // this one before it learned that: read it until the peer closes it.
            let _ = hello_done.send(Ok(node));
            let mut moved = Vec::new();
            frame_of(
                Encoding::Binary,
                &[encode_peer(&PeerMsg::Moved)],
                &mut moved,
            );
            let _ = tx_ws.send(Bytes::from(moved)).await;
            drain(&shared, &link, &mut rx_ws).await;
            return;
        }
    };
    // The peering counts as established once the peer's own advert is in (or after the
    // handshake timeout): whoever waits for `peer()` can publish at once and reach the
    // peer's subscribers, and `peer_subscriptions()` already knows them (ZB-03, ZB-07).
    let (advert_tx, advert_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, advert_rx).await;
        let _ = hello_done.send(Ok(node));
    });
    let mut advert_tx = Some(advert_tx);

    let writer = write_link(&shared, &link, rx, tx_ws);

    let reader_shared = shared.clone();
    let reader_link = link.clone();
    let reader = async move {
        let shared = reader_shared;
        let inflight =
            crate::store::InFlight::new(shared.config.max_store_requests, shared.metrics.clone());
        loop {
            let item = tokio::select! {
                i = crate::conn::keepalive::within(&shared, rx_ws.next()) => match i {
                    Some(i) => i,
                    None => break,
                },
                _ = reader_link.close.cancelled() => {
                    if reader_link.replaced.load(std::sync::atomic::Ordering::Relaxed) {
                        drain(&shared, &reader_link, &mut rx_ws).await;
                    }
                    break;
                }
            };
            let Some(item) = item else { break };
            let Some(bytes) = item else { continue };
            Metrics::add(&shared.metrics.bytes_in_total, bytes.len() as u64);
            Metrics::add(&shared.metrics.frames_in_total, 1);
            let msgs = match protocol::from_binary::<PeerMsg>(&bytes, max) {
                Ok(m) => m,
                Err(e) => {
                    Metrics::add(&shared.metrics.errors_total, 1);
                    shared.emit_error(
                        e.code(),
                        format!("malformed frame from peer {}: {e}", reader_link.node),
                    );
                    break;
                }
            };
            for msg in msgs {
                let own_advert =
                    matches!(&msg, PeerMsg::Advert { origin, .. } if *origin == reader_link.node);
                on_message(&shared, &reader_link, id, msg, &inflight);
                if own_advert {
                    if let Some(tx) = advert_tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
            // Backpressure: the peer's store requests wait for room like a client's.
            if !inflight.room(&reader_link.close).await {
                break;
            }
        }
        reader_link.close.cancel();
    };
    tokio::join!(writer, reader);
    if let Some(gone) = peering.remove_link(id) {
        shared.stores.peer_gone(gone);
    }
}

/// Reads a connection that no longer carries the peering (redundant, or replaced by the
/// preferred one) until the peer says it has switched too ([`PeerMsg::Moved`]) or closes it,
/// at most the close grace: what the peer sent on it before it switched is delivered as if it
/// came over the link that carries the peering now (duplicates are suppressed as always).
async fn drain<R>(shared: &Arc<Shared>, link: &Link, rx_ws: &mut R)
where
    R: Stream<Item = Option<Bytes>> + Unpin,
{
    let max = shared.config.max_frame;
    let inflight =
        crate::store::InFlight::new(shared.config.max_store_requests, shared.metrics.clone());
    let grace = crate::conn::keepalive::close_grace(&shared.config);
    let _ = tokio::time::timeout(grace, async {
        while let Some(item) = rx_ws.next().await {
            let Some(bytes) = item else { continue };
            let Ok(msgs) = protocol::from_binary::<PeerMsg>(&bytes, max) else {
                return;
            };
            // The link that carries the peering now, so nothing is forwarded back to it.
            let Some(via) = shared.peering.link_id(link.node) else {
                return;
            };
            for msg in msgs {
                match msg {
                    // The other side has switched too: nothing more will come.
                    PeerMsg::Moved => return,
                    // Keepalive and goodbye concern this connection only.
                    PeerMsg::Hello { .. }
                    | PeerMsg::Ping { .. }
                    | PeerMsg::Pong { .. }
                    | PeerMsg::Bye { .. }
                    | PeerMsg::ByeAck { .. } => {}
                    _ => on_message(shared, link, via, msg, &inflight),
                }
            }
        }
    })
    .await;
}

/// Sends our hello and waits for theirs (at most [`HANDSHAKE_TIMEOUT`]).
async fn handshake<R, W>(
    shared: &Shared,
    rx_ws: &mut R,
    tx_ws: &mut W,
    label: &str,
) -> Result<NodeId, PeerError>
where
    R: Stream<Item = Option<Bytes>> + Unpin,
    W: Sink<Bytes> + Unpin,
{
    let max = shared.config.max_frame;
    let label = label.to_owned();
    let hello = encode_peer(&PeerMsg::Hello {
        endpoint: shared.peering.me,
        version: crate::VERSION.into(),
    });
    let mut first = Vec::new();
    frame_of(Encoding::Binary, &[hello], &mut first);
    if tx_ws.send(Bytes::from(first)).await.is_err() {
        return Err(PeerError::Unavailable(label));
    }
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        while let Some(item) = rx_ws.next().await {
            let Some(bytes) = item else { continue };
            match protocol::from_binary::<PeerMsg>(&bytes, max) {
                Ok(msgs) => {
                    if let Some(PeerMsg::Hello { endpoint, .. }) = msgs.into_iter().next() {
                        return Ok(endpoint);
                    }
                    return Err(PeerError::Unavailable(label.clone()));
                }
                Err(broker_wasm::DecodeError::UnsupportedVersion(_)) => {
                    return Err(PeerError::Incompatible(label.clone()));
                }
                Err(_) => return Err(PeerError::Unavailable(label.clone())),
            }
        }
        Err(PeerError::Unavailable(label.clone()))
    })
    .await
    .unwrap_or_else(|_| Err(PeerError::Timeout(label.clone())))
}

/// The link's writer: batches queued messages into frames, pings, flushes what is left when
/// the link closes; a writer blocked on a peer that does not read is abandoned after the
/// close grace.
fn write_link<W>(
    shared: &Shared,
    link: &Link,
    mut rx: mpsc::Receiver<Bytes>,
    mut tx_ws: W,
) -> impl std::future::Future<Output = ()>
where
    W: Sink<Bytes> + Unpin,
{
    let close = link.close.clone();
    let replaced = link.replaced_flag();
    let writer_metrics = shared.metrics.clone();
    let mut pinger = crate::conn::keepalive::Pinger::new(&shared.config);
    let writer = async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut frame = Vec::new();
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = close.cancelled() => 0,
                // Keepalive: the peer answers with a pong, so the link is never silent.
                _ = pinger.tick() => {
                    batch.push(encode_peer(&PeerMsg::Ping { nonce: 0 }));
                    1
                }
            };
            if n == 0 {
                break;
            }
            frame.clear();
            frame_of(Encoding::Binary, &batch, &mut frame);
            batch.clear();
            Metrics::add(&writer_metrics.bytes_out_total, frame.len() as u64);
            Metrics::add(&writer_metrics.frames_out_total, 1);
            let cap = frame.len();
            let out = std::mem::replace(&mut frame, Vec::with_capacity(cap));
            if tx_ws.send(Bytes::from(out)).await.is_err() {
                break;
            }
        }
        // Flush what is left (e.g. a Bye), best effort.
        while let Ok(b) = rx.try_recv() {
            batch.push(b);
        }
        let moved = replaced.load(std::sync::atomic::Ordering::Relaxed);
        if moved {
            // Replaced by the preferred connection: say so, and leave the connection open
            // for the peer to do the same (the reader drains it meanwhile).
            batch.push(encode_peer(&PeerMsg::Moved));
        }
        if !batch.is_empty() {
            frame.clear();
            frame_of(Encoding::Binary, &batch, &mut frame);
            let _ = tx_ws.send(Bytes::from(frame)).await;
        }
        if !moved {
            let _ = tx_ws.close().await;
        }
    };
    let closing = link.close.clone();
    let grace = crate::conn::keepalive::close_grace(&shared.config);
    async move {
        tokio::pin!(writer);
        tokio::select! {
            () = &mut writer => {}
            () = async {
                closing.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {}
        }
    }
}

/// One message from the peer.
fn on_message(
    shared: &Arc<Shared>,
    link: &Link,
    id: LinkId,
    msg: PeerMsg,
    inflight: &Arc<crate::store::InFlight>,
) {
    match msg {
        PeerMsg::Forward {
            origin,
            seq,
            ttl,
            topic,
            data,
            zeek,
        } => {
            Metrics::add(&shared.metrics.messages_in_total, 1);
            shared
                .peering
                .on_forward(id, origin, seq, ttl, Publish { topic, data }, zeek);
        }
        PeerMsg::Advert {
            origin,
            version,
            peers,
            topics,
            masters,
            uplinks,
        } => {
            let mut st = shared.peering.lock();
            shared.peering.on_advert(
                &mut st,
                id,
                origin,
                Advert {
                    version,
                    peers,
                    topics,
                    masters,
                    uplinks,
                },
            );
        }
        PeerMsg::Ping { nonce } => {
            let _ = link.tx.try_send(encode_peer(&PeerMsg::Pong { nonce }));
        }
        // The peer now sends over another connection to us (ZB-63); this one stays ours to
        // send on until our side switches too, and then closes.
        PeerMsg::Moved => {
            tracing::debug!(node = %link.node, "the peer moved to the preferred connection");
        }
        PeerMsg::Bye { token } => {
            let _ = link.tx.try_send(encode_peer(&PeerMsg::ByeAck { token }));
            // The remote ends the peering: for us it is lost, not removed, and the initiator
            // must not reconnect (ZB-05). Token 0 is a shutdown (ZB-08): the initiator keeps
            // trying, the endpoint may come back (ZB-67).
            if token != 0 {
                if let Some(o) = shared
                    .peering
                    .lock()
                    .outbound
                    .values()
                    .find(|o| o.node == Some(link.node))
                {
                    o.cancel.cancel();
                }
            }
            link.close.cancel();
        }
        PeerMsg::ByeAck { .. } => {
            if let Some(tx) = link
                .bye_ack
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                let _ = tx.send(());
            }
        }
        PeerMsg::Hello { .. } | PeerMsg::Pong { .. } => {}
        m @ (PeerMsg::StoreAttach { .. }
        | PeerMsg::StoreDetach { .. }
        | PeerMsg::StoreMissing { .. }
        | PeerMsg::StoreSnapshot { .. }
        | PeerMsg::StoreUpdate { .. }
        | PeerMsg::StoreMaster { .. }
        | PeerMsg::StoreRequest { .. }
        | PeerMsg::StoreResponse { .. }) => {
            shared.stores.on_peer_msg(link.node, m, inflight);
        }
    }
}
