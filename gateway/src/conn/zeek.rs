//! Zeek's WebSocket JSON API at `/v1/messages/json` (ZB-36..43): handshake with a topic
//! list, ack, data messages both ways, error messages for malformed input. After the ack a
//! client receives only `data-message` and `error` messages; never status events of the
//! gateway (zeek/zeek#4931).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use broker_wasm::topic::validate_user_topic;
use broker_wasm::zeek_json::{self, ZeekError};
use broker_wasm::ErrorCode;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::conn::limits::{next_incoming, throttle, ByteRate, Incoming, RateLimit};
use crate::hub::{Exclude, Sink};
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::subscriber::Control;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn text(bytes: Bytes) -> Message {
    match Utf8Bytes::try_from(bytes) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Text(Utf8Bytes::from_static("")),
    }
}

type WsTx = futures_util::stream::SplitSink<WebSocket, Message>;
type WsRx = futures_util::stream::SplitStream<WebSocket>;

/// Runs one Zeek API client until it disconnects (with or without a Close frame).
pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: WebSocket,
    remote: SocketAddr,
    _slot: crate::state::Slot,
    who: Arc<crate::auth::Identity>,
) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    Metrics::add(&shared.metrics.connections_zeek, 1);
    if let Some(topics) = handshake(&shared, &who, &mut ws_tx, &mut ws_rx).await {
        serve(&shared, &who, ws_tx, ws_rx, topics, remote).await;
    }
    shared.metrics.connections_zeek.fetch_sub(1, Relaxed);
}

/// The handshake (ZB-37): the topic list, checked; `None` once the client got its error (or
/// left).
async fn handshake(
    shared: &Shared,
    who: &crate::auth::Identity,
    ws_tx: &mut WsTx,
    ws_rx: &mut WsRx,
) -> Option<Vec<String>> {
    let refuse = |e: ZeekError| Message::Text(zeek_json::handshake_error(&e).into());
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, ws_rx.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(Message::Binary(_)))) => {
            let _ = ws_tx
                .send(refuse(ZeekError {
                    code: ErrorCode::DeserializationFailed,
                    context: "binary frames are not supported; send JSON text".into(),
                }))
                .await;
            let _ = ws_tx.send(Message::Close(None)).await;
            return None;
        }
        _ => return None,
    };
    Metrics::add(&shared.metrics.bytes_in_total, first.len() as u64);
    match zeek_json::decode_handshake(first.as_bytes()).and_then(|t| check_topics(shared, who, t)) {
        Ok(t) => Some(t),
        Err(e) => {
            Metrics::add(&shared.metrics.errors_total, 1);
            let _ = ws_tx.send(refuse(e)).await;
            let _ = ws_tx.send(Message::Close(None)).await;
            None
        }
    }
}

/// The handshake's topics: valid, allowed by the grants, within `--max-subscriptions`.
fn check_topics(
    shared: &Shared,
    who: &crate::auth::Identity,
    topics: Vec<String>,
) -> Result<Vec<String>, ZeekError> {
    if let Some(e) = topics.iter().find_map(|t| validate_user_topic(t).err()) {
        return Err(ZeekError {
            code: ErrorCode::InvalidTopicKey,
            context: e.to_string(),
        });
    }
    if let Some(t) = topics.iter().find(|t| !who.grants.can_subscribe(t)) {
        Metrics::add(&shared.metrics.denied_total, 1);
        return Err(ZeekError {
            code: ErrorCode::Unauthorized,
            context: format!("not allowed: subscribing to {t:?} (grant `subscribe`)"),
        });
    }
    let max = shared.config.max_subscriptions;
    if topics.len() > max {
        return Err(ZeekError {
            code: ErrorCode::InvalidTopicKey,
            context: format!(
                "{} topics in the handshake; the limit is {max} prefixes per connection \
                 (--max-subscriptions)",
                topics.len()
            ),
        });
    }
    Ok(topics)
}

/// After the ack: the writer task, and data messages from the client until it leaves.
async fn serve(
    shared: &Arc<Shared>,
    who: &Arc<crate::auth::Identity>,
    mut ws_tx: WsTx,
    mut ws_rx: WsRx,
    topics: Vec<String>,
    remote: SocketAddr,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(shared.config.queue_size.max(1));
    let reg = shared.hub.register(Sink::Zeek(tx.clone()));
    shared.add_topics(reg.id, &topics);
    let ack = zeek_json::ack(&shared.id.to_string(), crate::VERSION);
    if ws_tx.send(Message::Text(ack.into())).await.is_err() {
        shared.close(reg.id);
        return;
    }
    tracing::debug!(%remote, ?topics, "zeek client connected");

    let stop = shared.shutdown.child_token();
    crate::auth::end_at_expiry(who, &stop, &tx, || {
        Some(Bytes::from(zeek_json::error(
            ErrorCode::Unauthorized,
            crate::auth::EXPIRED,
        )))
    });
    let writer = spawn_writer(shared, &reg, rx, ws_tx, stop.clone());

    let mut n = 0u64;
    let mut rate = RateLimit::new(shared.config.max_publish_rate);
    let mut bytes_rate = ByteRate::new(shared.config.max_bytes_rate);
    let reply = |s: String| {
        Metrics::add(&shared.metrics.errors_total, 1);
        let _ = tx.try_send(Bytes::from(s));
    };
    loop {
        // A disconnect without a Close frame is a normal end too (ZB-37).
        let msg = match next_incoming(shared, &mut ws_rx, &stop, &reg.kick).await {
            Incoming::Message(m) => m,
            Incoming::TooBig => {
                reply(zeek_json::error(
                    ErrorCode::DeserializationFailed,
                    &format!(
                        "input #{} exceeds the limit of {} bytes; closing",
                        n + 1,
                        shared.config.max_frame
                    ),
                ));
                break;
            }
            Incoming::End => break,
        };
        let body = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                n += 1;
                reply(zeek_json::error(
                    ErrorCode::DeserializationFailed,
                    &format!("input #{n} was a binary frame; send JSON text"),
                ));
                continue;
            }
            _ => continue,
        };
        n += 1;
        Metrics::add(&shared.metrics.bytes_in_total, body.len() as u64);
        Metrics::add(&shared.metrics.frames_in_total, 1);
        if !throttle(shared, &mut bytes_rate, body.len(), &stop).await {
            break;
        }
        Metrics::add(&shared.metrics.messages_in_total, 1);
        match zeek_json::decode_data_message(body.as_bytes(), n) {
            Ok(p) => match check_publish(shared, who, &p, n, &mut rate) {
                Ok(()) => {
                    if let Err(e) = shared.dispatch(&p, None, Exclude::Consumer(reg.id)) {
                        reply(zeek_json::error(
                            e.code,
                            &format!("input #{n}: {}", e.context),
                        ));
                    }
                }
                Err(e) => reply(e),
            },
            Err(e) => reply(zeek_json::error(e.code, &e.context)),
        }
    }
    shared.close(reg.id);
    drop(tx);
    stop.cancel();
    crate::conn::keepalive::finish(&shared.config, writer).await;
    tracing::debug!(%remote, "zeek client disconnected");
}

/// Whether data message `n` may be published; `Err` is the error message to answer with.
fn check_publish(
    shared: &Shared,
    who: &crate::auth::Identity,
    p: &broker_wasm::protocol::Publish,
    n: u64,
    rate: &mut RateLimit,
) -> Result<(), String> {
    if let Err(e) = validate_user_topic(&p.topic) {
        return Err(zeek_json::error(
            ErrorCode::InvalidTopicKey,
            &format!("input #{n}: {e}"),
        ));
    }
    if !who.grants.can_publish(&p.topic) {
        Metrics::add(&shared.metrics.denied_total, 1);
        return Err(zeek_json::error(
            ErrorCode::Unauthorized,
            &format!(
                "input #{n}: not allowed: publishing to {:?} (grant `publish`)",
                p.topic
            ),
        ));
    }
    if p.data.too_deep() {
        return Err(zeek_json::error(
            ErrorCode::InvalidData,
            &format!("input #{n}: {}", broker_wasm::data::too_deep_text()),
        ));
    }
    if !rate.allow() {
        Metrics::add(&shared.metrics.dropped_total, 1);
        return Err(zeek_json::error(
            ErrorCode::InvalidMessage,
            &format!("input #{n} dropped: publish rate limit"),
        ));
    }
    Ok(())
}

/// The writer: queued messages as text frames, pings, a note when messages were dropped for
/// this slow consumer; flushes and closes when the connection stops.
fn spawn_writer(
    shared: &Arc<Shared>,
    reg: &crate::hub::Registration,
    mut rx: mpsc::Receiver<Bytes>,
    mut ws_tx: WsTx,
    writer_stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let kick = reg.kick.clone();
    let dropped = reg.dropped.clone();
    let writer_shared = shared.clone();
    let mut pinger = crate::conn::keepalive::Pinger::new(&shared.config);
    tokio::spawn(async move {
        let mut batch = Vec::new();
        let mut reported = 0;
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, 256) => n,
                _ = kick.cancelled() => 0,
                _ = writer_stop.cancelled() => {
                    // Flush what is still queued (e.g. a last error), then close.
                    while let Ok(b) = rx.try_recv() {
                        let _ = ws_tx.feed(text(b)).await;
                    }
                    0
                }
                _ = pinger.tick() => {
                    if ws_tx.send(Message::Ping(Bytes::new())).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            let lost = dropped.load(Relaxed);
            if lost > reported {
                let note = zeek_json::error(
                    ErrorCode::Unspecified,
                    &format!("slow consumer: {} messages dropped", lost - reported),
                );
                batch.push(Bytes::from(note));
                reported = lost;
            }
            for b in batch.drain(..) {
                Metrics::add(&writer_shared.metrics.bytes_out_total, b.len() as u64);
                Metrics::add(&writer_shared.metrics.frames_out_total, 1);
                if ws_tx.feed(text(b)).await.is_err() {
                    return;
                }
            }
            if ws_tx.flush().await.is_err() {
                return;
            }
        }
        let _ = ws_tx.send(Message::Close(None)).await;
    })
}
