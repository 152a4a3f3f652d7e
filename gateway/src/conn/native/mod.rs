//! One native-protocol client connection: a reader loop that decodes frames and acts on them,
//! and a writer task that batches queued messages into frames.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use broker_wasm::protocol::{self, ClientMsg, Encoding, ErrorInfo, Publish, ServerMsg};
use broker_wasm::topic::validate_user_topic;
use broker_wasm::ErrorCode;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::conn::limits::{next_incoming, throttle, ByteRate, Incoming, RateLimit};
use crate::hub::{encode_server_msg, Exclude, Sink, StatusSink};
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::subscriber::Control;

/// How long a client may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest batch of messages in one outbound frame.
const MAX_BATCH: usize = 1024;

mod request;
mod resume;
mod writer;

struct Session {
    shared: Arc<Shared>,
    id: u64,
    /// Who this connection is and what it may do (open access: everything).
    who: Arc<crate::auth::Identity>,
    encoding: Encoding,
    tx: mpsc::Sender<Bytes>,
    rate: RateLimit,
    rate_errors: u64,
    /// Control messages waiting for room in a full queue (see `send`).
    overflow: Arc<std::sync::atomic::AtomicUsize>,
    /// Set when a client let too many control messages pile up: it does not read.
    stalled: std::cell::Cell<bool>,
    /// Store requests of this connection waiting for their answers.
    inflight: Arc<crate::store::InFlight>,
    /// Clone feeds of this connection, by store name.
    clones: std::collections::HashMap<
        String,
        (tokio_util::sync::CancellationToken, crate::store::FeedSlot),
    >,
}

impl Session {
    /// Queues a control message (welcome, pong, response, error). These are never dropped:
    /// a client waiting for a pong or a response must get it even when its queue is full of
    /// messages, so a full queue hands the message to a task that waits for room. A client
    /// that lets more than a queue's worth pile up that way does not read what it asked
    /// for: the connection is closed rather than let memory grow.
    fn send(&self, msg: ServerMsg) {
        let Some(b) = encode_server_msg(self.encoding, &msg) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(b)) = self.tx.try_send(b) {
            if self.overflow.fetch_add(1, Relaxed) >= self.shared.config.queue_size.max(1) {
                self.overflow.fetch_sub(1, Relaxed);
                self.stalled.set(true);
                return;
            }
            let (tx, overflow) = (self.tx.clone(), self.overflow.clone());
            tokio::spawn(async move {
                let _ = tx.send(b).await;
                overflow.fetch_sub(1, Relaxed);
            });
        }
    }

    /// Reports an error not tied to a request. Errors are advice: with the queue full they
    /// are dropped (and counted), never queued without bound.
    fn error(&self, code: ErrorCode, context: impl Into<String>) {
        Metrics::add(&self.shared.metrics.errors_total, 1);
        let msg = ServerMsg::Error(ErrorInfo {
            code,
            context: context.into(),
        });
        if let Some(b) = encode_server_msg(self.encoding, &msg) {
            if self.tx.try_send(b).is_err() {
                Metrics::add(&self.shared.metrics.dropped_total, 1);
            }
        }
    }

    fn valid_topics(&self, topics: Vec<String>) -> Vec<String> {
        topics
            .into_iter()
            .filter(|t| match validate_user_topic(t) {
                Ok(()) if self.who.grants.can_subscribe(t) => true,
                Ok(()) => {
                    self.denied(format!("subscribing to {t:?} (grant `subscribe`)"));
                    false
                }
                Err(e) => {
                    self.error(ErrorCode::InvalidTopicKey, e.to_string());
                    false
                }
            })
            .collect()
    }

    /// Reports an operation the connection's grants do not allow (nothing else happens).
    fn denied(&self, what: String) {
        Metrics::add(&self.shared.metrics.denied_total, 1);
        self.error(ErrorCode::Unauthorized, format!("not allowed: {what}"));
    }

    fn handle(&mut self, msg: ClientMsg, raw: Option<&[u8]>) -> bool {
        self.handle_one(msg, raw) && !self.stalled.get()
    }

    fn handle_one(&mut self, msg: ClientMsg, raw: Option<&[u8]>) -> bool {
        match msg {
            ClientMsg::Publish(p) => self.publish(p, raw),
            ClientMsg::Subscribe { topics } => {
                let topics = self.valid_topics(topics);
                let held = self.shared.hub.subscription_count(self.id);
                let max = self.shared.config.max_subscriptions;
                if held + topics.len() > max {
                    self.error(
                        ErrorCode::InvalidTopicKey,
                        format!("subscription limit of {max} prefixes per connection reached"),
                    );
                    return true;
                }
                self.shared.add_topics(self.id, &topics);
            }
            ClientMsg::Unsubscribe { topics } => self.shared.remove_topics(self.id, &topics),
            ClientMsg::Request { id, request } => self.request(id, request),
            ClientMsg::Cancel { id } => self.shared.namespaces.cancel(self.id, id),
            ClientMsg::Ping { nonce } => self.send(ServerMsg::Pong { nonce }),
            ClientMsg::Pong { .. } => {}
            ClientMsg::Hello(_) => {
                self.error(ErrorCode::UnexpectedHandshakeMessage, "hello sent twice")
            }
            ClientMsg::Resume {
                instance,
                epoch,
                positions,
            } => self.resume(instance, epoch, positions),
            ClientMsg::Bye => return false,
        }
        true
    }

    fn publish(&mut self, p: Publish, raw: Option<&[u8]>) {
        Metrics::add(&self.shared.metrics.messages_in_total, 1);
        if !self.rate.allow() {
            // One error per second of excess, not one per dropped message.
            self.rate_errors += 1;
            Metrics::add(&self.shared.metrics.dropped_total, 1);
            if self.rate_errors == 1 || self.rate_errors % self.rate.per_sec.max(1) == 0 {
                self.error(
                    ErrorCode::InvalidMessage,
                    format!(
                        "publish rate above {} messages/s: {} messages dropped",
                        self.rate.per_sec, self.rate_errors
                    ),
                );
            }
            return;
        }
        if let Err(e) = validate_user_topic(&p.topic) {
            self.error(ErrorCode::InvalidTopicKey, e.to_string());
            return;
        }
        if !self.who.grants.can_publish(&p.topic) {
            self.denied(format!("publishing to {:?} (grant `publish`)", p.topic));
            return;
        }
        if p.data.too_deep() {
            self.error(ErrorCode::InvalidData, broker_wasm::data::too_deep_text());
            return;
        }
        if let Err(e) = self.shared.dispatch(&p, raw, Exclude::Consumer(self.id)) {
            self.error(e.code, e.context);
        }
    }
}

fn ws_payload(msg: Message) -> Option<Bytes> {
    match msg {
        Message::Binary(b) => Some(b),
        Message::Text(t) => Some(Bytes::from(t.as_str().to_owned())),
        _ => None,
    }
}

fn decode_frame(
    encoding: Encoding,
    bytes: &[u8],
    max: usize,
    mut f: impl FnMut(ClientMsg, Option<&[u8]>),
) -> Result<(), broker_wasm::DecodeError> {
    match encoding {
        Encoding::Binary => {
            protocol::for_each_binary::<ClientMsg>(bytes, max, |m, raw| f(m, Some(raw)))
        }
        Encoding::Json => {
            for m in protocol::from_json::<ClientMsg>(bytes, max)? {
                f(m, None);
            }
            Ok(())
        }
    }
}

/// Runs a native client connection until it closes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: WebSocket,
    encoding: Encoding,
    remote: SocketAddr,
    slot: crate::state::Slot,
    upgrade_token: Option<String>,
) {
    let (ws_tx, mut ws_rx) = socket.split();
    let max = shared.config.max_frame;
    let (tx, rx) = mpsc::channel::<Bytes>(shared.config.queue_size.max(1));
    let reg = shared.hub.register(Sink::Native {
        encoding,
        tx: tx.clone(),
    });
    let mut session = Session {
        shared: shared.clone(),
        id: reg.id,
        who: shared
            .auth
            .authenticate(None)
            .expect("no token is always accepted"),
        encoding,
        tx,
        rate: RateLimit::new(shared.config.max_publish_rate),
        rate_errors: 0,
        overflow: Default::default(),
        stalled: Default::default(),
        inflight: crate::store::InFlight::new(
            shared.config.max_store_requests,
            shared.metrics.clone(),
        ),
        clones: Default::default(),
    };
    Metrics::add(&shared.metrics.connections_native, 1);

    let stop = shared.shutdown.child_token();
    let writer = writer::spawn(
        &shared,
        &reg,
        encoding,
        rx,
        ws_tx,
        stop.clone(),
        session.inflight.clone(),
    );

    // Handshake: the first message must be a Hello (ZB-37 analogue for the native protocol).
    let hello = tokio::time::timeout(HELLO_TIMEOUT, ws_rx.next()).await;
    let ok = match hello {
        Ok(Some(Ok(msg))) => handshake(&mut session, &reg, msg, remote, upgrade_token.as_deref()),
        _ => false,
    };

    if ok {
        crate::auth::end_at_expiry(&session.who, &stop, &session.tx, move || {
            let msg = ServerMsg::Error(ErrorInfo {
                code: ErrorCode::Unauthorized,
                context: crate::auth::EXPIRED.into(),
            });
            encode_server_msg(encoding, &msg)
        });
    }

    if ok {
        let mut bytes_rate = ByteRate::new(shared.config.max_bytes_rate);
        loop {
            let msg = match next_incoming(&shared, &mut ws_rx, &stop, &reg.kick).await {
                Incoming::Message(m) => m,
                Incoming::TooBig => {
                    session.error(
                        ErrorCode::DeserializationFailed,
                        format!("frame exceeds the limit of {max} bytes; closing"),
                    );
                    break;
                }
                Incoming::End => break,
            };
            let Some(bytes) = ws_payload(msg) else {
                continue;
            };
            Metrics::add(&shared.metrics.bytes_in_total, bytes.len() as u64);
            Metrics::add(&shared.metrics.frames_in_total, 1);
            let mut keep = true;
            let r = decode_frame(encoding, &bytes, max, |m, raw| {
                keep &= session.handle(m, raw)
            });
            if let Err(e) = r {
                // The frame is dropped; the connection stays usable (ZB-40).
                session.error(e.code(), format!("malformed frame: {e}"));
            }
            if !keep || !throttle(&shared, &mut bytes_rate, bytes.len(), &stop).await {
                break;
            }
            // Backpressure: no more frames while too many store requests wait for answers.
            if !session.inflight.room(&stop).await {
                break;
            }
        }
    }

    if shared.hub.unregister(reg.id) {
        shared.filter_changed();
    }
    for (t, _) in session.clones.values() {
        t.cancel();
    }
    drop(session);
    // Namespace attachments and waiters belong to the connection (DB-33).
    shared.namespaces.release_session(reg.id);
    stop.cancel();
    crate::conn::keepalive::finish(&shared.config, writer).await;
    shared.metrics.connections_native.fetch_sub(1, Relaxed);
    drop(slot);
    tracing::debug!(%remote, "native client disconnected");
}

/// Handles the first frame: it must start with a hello whose token (or the upgrade's)
/// authenticates; then the welcome goes out and the frame's other messages are handled. False
/// if the connection is to end.
fn handshake(
    session: &mut Session,
    reg: &crate::hub::Registration,
    msg: Message,
    remote: SocketAddr,
    upgrade_token: Option<&str>,
) -> bool {
    let shared = session.shared.clone();
    let (encoding, max) = (session.encoding, shared.config.max_frame);
    let mut ok = false;
    if let Some(bytes) = ws_payload(msg) {
        Metrics::add(&shared.metrics.bytes_in_total, bytes.len() as u64);
        Metrics::add(&shared.metrics.frames_in_total, 1);
        let mut first = Vec::new();
        let r = decode_frame(encoding, &bytes, max, |m, raw| {
            first.push((m, raw.map(<[u8]>::to_vec)))
        });
        match (r, first.first()) {
            (Ok(()), Some((ClientMsg::Hello(h), _))) => {
                // The hello's token, else one from the upgrade request.
                let token = h.token.as_deref().or(upgrade_token);
                match shared.auth.authenticate(token) {
                    Ok(who) => {
                        session.who = who;
                        ok = true;
                    }
                    Err(e) => {
                        Metrics::add(&shared.metrics.auth_failures_total, 1);
                        tracing::info!(%remote, "client refused: {e}");
                        session.error(ErrorCode::Unauthorized, e.to_string());
                    }
                }
            }
            (Err(e), _) => session.error(e.code(), format!("malformed first frame: {e}")),
            _ => session.error(
                ErrorCode::UnexpectedHandshakeMessage,
                "the first message must be a hello",
            ),
        }
        if ok {
            if let Some((ClientMsg::Hello(h), _)) = first.first() {
                if h.statuses {
                    shared.hub.add_status_sink(
                        reg.id,
                        StatusSink::Native {
                            encoding,
                            tx: session.tx.clone(),
                        },
                        true,
                    );
                }
                session.welcome();
                tracing::debug!(client = h.client, who = session.who.name, %remote, "native client connected");
            }
            for (m, raw) in first.into_iter().skip(1) {
                if !session.handle(m, raw.as_deref()) {
                    ok = false;
                }
            }
        }
    }
    ok
}

fn to_ws(encoding: Encoding, frame: Vec<u8>) -> Message {
    match encoding {
        Encoding::Binary => Message::Binary(Bytes::from(frame)),
        Encoding::Json => match String::from_utf8(frame) {
            Ok(s) => Message::Text(Utf8Bytes::from(s)),
            Err(e) => Message::Binary(Bytes::from(e.into_bytes())),
        },
    }
}

/// A session without a socket, for the `gateway_session` fuzz target (see `crate::fuzzing`;
/// cargo feature `fuzzing`): what [`run`] holds once the hello was accepted.
#[cfg(feature = "fuzzing")]
pub(crate) struct FuzzSession(Session);

#[cfg(feature = "fuzzing")]
impl FuzzSession {
    /// The session of consumer `id` (registered in the hub), whose outbound messages go to
    /// `tx`; queues the welcome as [`run`] does.
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: u64,
        encoding: Encoding,
        tx: mpsc::Sender<Bytes>,
    ) -> FuzzSession {
        let s = Session {
            rate: RateLimit::new(shared.config.max_publish_rate),
            inflight: crate::store::InFlight::new(
                shared.config.max_store_requests,
                shared.metrics.clone(),
            ),
            // Open access (the fuzzing endpoint configures no tokens).
            who: shared
                .auth
                .authenticate(None)
                .expect("no token is always accepted"),
            shared,
            id,
            encoding,
            tx,
            rate_errors: 0,
            overflow: Default::default(),
            stalled: Default::default(),
            clones: Default::default(),
        };
        s.welcome();
        FuzzSession(s)
    }

    /// Handles one frame as [`run`]'s reader loop does; false once the client said bye.
    pub(crate) fn frame(&mut self, bytes: &[u8]) -> bool {
        let session = &mut self.0;
        let max = session.shared.config.max_frame;
        let mut keep = true;
        let r = decode_frame(session.encoding, bytes, max, |m, raw| {
            keep &= session.handle(m, raw)
        });
        if let Err(e) = r {
            session.error(e.code(), format!("malformed frame: {e}"));
        }
        keep
    }

    /// Ends the session's clone feeds, as [`run`] does when the connection ends.
    pub(crate) fn close(self) {
        for (t, _) in self.0.clones.values() {
            t.cancel();
        }
    }
}
