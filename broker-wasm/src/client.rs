//! The sans-I/O client state machine shared by every client of a gateway (JS through wasm,
//! and any Rust program that brings its own socket).
//!
//! It takes events in (`on_open`, `on_frame(bytes)`, `on_close`) and API calls (`publish`,
//! `subscribe`, `request`), and gives frames out (`take_frame`) and [`Event`]s back. It keeps
//! the subscriptions, so after a reconnect `on_open` sends them again; it coalesces queued
//! messages into one frame; it routes each incoming message to the local subscribers whose
//! prefixes match.
//!
//! [`namespace`] holds the Data Broker client rules every driver applies to namespace
//! requests (DB-13, DB-23, DB-25, DB-27).

mod clone;
pub mod namespace;
mod optimistic;
mod resume;

pub use optimistic::WriteState;
pub use resume::Position;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::codes::ErrorCode;
use crate::data::Data;
use crate::error::DecodeError;
use crate::protocol::{
    ClientMsg, Encoding, ErrorInfo, Failure, Gap, Hello, Publish, Request, Response, ServerMsg,
    Status, StoreOp, Welcome, DEFAULT_MAX_FRAME,
};
use crate::store::{Change, Entry, Replica, SavedReplica};
use crate::topic::{validate_user_topic, SubscriptionIndex, TopicError};

/// A local subscriber's id, chosen by the client core.
pub type SubscriberId = u32;

/// What the application learns from a frame or a state change.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The gateway accepted the connection.
    Connected(Welcome),
    /// The connection ended; requests that were in flight failed with [`ErrorCode::ShuttingDown`].
    Disconnected,
    /// A message for the listed local subscribers.
    Message {
        subscribers: Vec<SubscriberId>,
        publish: Publish,
    },
    Status(Status),
    Error(ErrorInfo),
    /// A resume could not replay everything the client missed (see [`Position`]).
    Gap(Gap),
    Response {
        id: u64,
        result: Result<Response, Failure>,
    },
    Pong {
        nonce: u64,
    },
    /// A clone applied a snapshot or updates (ZB-58, ZB-62). `reset`: the master is a
    /// different one than before (it restarted); `synced`: the clone is (again) in sync.
    StoreChanges {
        store: String,
        changes: Vec<Change>,
        reset: bool,
        synced: bool,
    },
    /// A clone could not attach, or lost its master. Unless `permanent`, it tries again
    /// after its resync interval (e.g. `no_such_master`: a master may still appear). A
    /// `permanent` refusal (see [`is_final_refusal`]) will not change: the clone stopped
    /// trying, keeps the error ([`ClientCore::clone_refusal`]) and reads fail with it.
    StoreError {
        store: String,
        error: ErrorInfo,
        permanent: bool,
    },
    /// An optimistic write of a clone ([`CloneOptions::optimistic`]): made (`Pending`, the
    /// view of `key` changed at once), confirmed, or rolled back; `value` is the view of
    /// `key` now (`None`: absent).
    Write {
        store: String,
        id: u64,
        key: Data,
        value: Option<Data>,
        state: WriteState,
    },
}

/// Whether the gateway's refusal to attach a clone is final: asking again cannot succeed.
/// `unauthorized` (the connection's grants do not change while it lasts) and `invalid_data`
/// (the gateway rejects the store's name) are; `no_such_master` is not (the gateway looks for
/// the master on its peers, and one may appear later), nor are a lost connection
/// (`shutting_down`) or a full feed (`unspecified`).
pub fn is_final_refusal(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Unauthorized | ErrorCode::InvalidData)
}

/// The documented clone parameters of Broker (ZB-47), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloneOptions {
    /// How long to wait before attaching again after a failed attach.
    pub resync_interval_ms: f64,
    /// How long after losing the connection reads keep answering from the cache before
    /// they fail with `stale_data`; negative = forever.
    pub stale_interval_ms: f64,
    /// How long writes made while disconnected wait for the connection before they fail
    /// with `request_timeout`; zero or negative = they fail at once.
    pub mutation_buffer_interval_ms: f64,
    /// Writes through the clone ([`ClientCore::store_request`]) show in its view at once,
    /// pending until the master's answer confirms or rolls them back ([`Event::Write`]).
    pub optimistic: bool,
}

impl Default for CloneOptions {
    fn default() -> CloneOptions {
        CloneOptions {
            resync_interval_ms: 10_000.0,
            stale_interval_ms: 300_000.0,
            mutation_buffer_interval_ms: 120_000.0,
            optimistic: false,
        }
    }
}

#[derive(Debug)]
struct CloneState {
    replica: Replica,
    opts: CloneOptions,
    disconnected_since: Option<f64>,
    retry_at: Option<f64>,
    /// Whether the application wants [`Change`]s (computing them costs time on big stores).
    changes: bool,
    /// The gateway refused the attach for good ([`is_final_refusal`]): no more attempts.
    refused: Option<ErrorInfo>,
    /// Optimistic writes waiting for the master's answer.
    overlay: optimistic::Overlay,
}

fn store_error(code: ErrorCode, context: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        code,
        context: context.into(),
    }
}

/// A queued message: a value, or (binary encoding only) its bytes already encoded.
#[derive(Debug, Clone)]
enum Outgoing {
    Msg(ClientMsg),
    Encoded(Vec<u8>),
}

impl Outgoing {
    fn is_publish(&self) -> bool {
        matches!(
            self,
            Outgoing::Msg(ClientMsg::Publish(_)) | Outgoing::Encoded(_)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    AwaitingWelcome,
    Open,
}

/// The client state machine.
#[derive(Debug)]
pub struct ClientCore {
    encoding: Encoding,
    name: String,
    token: Option<String>,
    statuses: bool,
    state: State,
    index: SubscriptionIndex<SubscriberId>,
    /// Subscribers per prefix: the gateway holds a prefix while any local subscriber does.
    refs: BTreeMap<String, usize>,
    next_subscriber: SubscriberId,
    next_request: u64,
    pending: HashMap<u64, ()>,
    outbox: VecDeque<Outgoing>,
    max_frame: usize,
    clones: BTreeMap<String, CloneState>,
    /// Attach requests of clones: their responses are handled here, not surfaced.
    clone_requests: HashMap<u64, String>,
    /// Store writes made while disconnected, with the time they give up.
    buffered: Vec<(u64, f64)>,
    /// Store operations in flight, with their store's name (for `clone_idle`).
    store_requests: HashMap<u64, String>,
    now_ms: f64,
    resume: resume::Resume,
    /// Events of API calls (an optimistic write), for [`ClientCore::take_events`].
    deferred: Vec<Event>,
}

impl ClientCore {
    /// A client that will introduce itself as `name`.
    pub fn new(encoding: Encoding, name: impl Into<String>) -> ClientCore {
        ClientCore {
            encoding,
            name: name.into(),
            token: None,
            statuses: true,
            state: State::Closed,
            index: SubscriptionIndex::new(),
            refs: BTreeMap::new(),
            next_subscriber: 1,
            next_request: 1,
            pending: HashMap::new(),
            outbox: VecDeque::new(),
            max_frame: DEFAULT_MAX_FRAME,
            clones: BTreeMap::new(),
            clone_requests: HashMap::new(),
            buffered: Vec::new(),
            store_requests: HashMap::new(),
            now_ms: 0.0,
            resume: resume::Resume::default(),
            deferred: Vec::new(),
        }
    }

    /// Events that API calls caused (an optimistic write's `Pending`), in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.deferred)
    }

    /// Names this client across its connections (a random string chosen by the driver) and
    /// turns on resuming: every connection then asks the gateway for what was published
    /// under its history prefixes while the client was away ([`Position`]).
    pub fn set_instance(&mut self, instance: String) {
        self.resume.set_instance(instance);
    }

    /// Where this client is in the gateway's histories.
    pub fn position(&self) -> Position {
        self.resume.position().clone()
    }

    /// Resumes from `position` at the next connection (e.g. one saved before a restart).
    pub fn set_position(&mut self, position: Position) {
        self.resume.set_position(position);
    }

    /// Resumes from `position` now, on the open connection, for the subscriptions held now
    /// (a client that subscribes after connecting). Needs [`ClientCore::set_instance`].
    pub fn resume_from(&mut self, position: Position) {
        if let Some(m) = self.resume.resume_from(position) {
            if self.state != State::Closed {
                self.outbox.push_back(Outgoing::Msg(m));
            }
        }
    }

    /// Sets the access token sent in the hello.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// Whether to ask the gateway for its status events.
    pub fn set_statuses(&mut self, statuses: bool) {
        self.statuses = statuses;
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// True between the gateway's welcome and the end of the connection.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The transport connected: queue the hello and every current subscription (so a
    /// reconnect restores them).
    pub fn on_open(&mut self) {
        self.state = State::AwaitingWelcome;
        let mut first = vec![Outgoing::Msg(ClientMsg::Hello(Hello {
            client: self.name.clone(),
            token: self.token.clone(),
            statuses: self.statuses,
        }))];
        if !self.refs.is_empty() {
            first.push(Outgoing::Msg(ClientMsg::Subscribe {
                topics: self.refs.keys().cloned().collect(),
            }));
        }
        // After the subscriptions: the replay matches them.
        if let Some(m) = self.resume.on_open() {
            first.push(Outgoing::Msg(m));
        }
        // Publishes queued while disconnected go out after the hello, in order.
        let mut first: VecDeque<Outgoing> = first.into();
        first.append(&mut self.outbox);
        self.outbox = first;
        // Clones attach again: the snapshot brings them up to date (and tells a restarted
        // master apart by its identity). Buffered writes go out after the hello, in order.
        // Clones refused for good stay refused.
        let names: Vec<String> = self
            .clones
            .iter()
            .filter(|(_, c)| c.refused.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.send_attach(&name);
        }
        self.buffered.clear();
    }

    /// The transport closed. Pending requests fail; subscriptions stay for the next
    /// connection; queued publishes stay queued.
    pub fn on_close(&mut self) -> Vec<Event> {
        if self.state == State::Closed {
            return Vec::new();
        }
        self.state = State::Closed;
        self.resume.on_close();
        // Control messages of the old connection are meaningless on the next one.
        self.outbox.retain(Outgoing::is_publish);
        let now = self.now_ms;
        for c in self.clones.values_mut() {
            c.replica.unsync();
            c.disconnected_since.get_or_insert(now);
        }
        let internal = std::mem::take(&mut self.clone_requests);
        let mut settled = Vec::new();
        for (id, store) in std::mem::take(&mut self.store_requests) {
            let closed = store_error(
                ErrorCode::ShuttingDown,
                "the connection closed before the answer",
            );
            settled.extend(self.settle_write(&store, id, Err(closed)));
        }
        let mut events: Vec<Event> = self
            .pending
            .drain()
            .filter(|(id, ())| !internal.contains_key(id))
            .map(|(id, ())| Event::Response {
                id,
                result: Err(Failure::Broker(ErrorInfo {
                    code: ErrorCode::ShuttingDown,
                    context: "the connection closed before the response arrived".into(),
                })),
            })
            .collect();
        events.sort_by_key(|e| match e {
            Event::Response { id, .. } => *id,
            _ => 0,
        });
        events.extend(settled);
        events.push(Event::Disconnected);
        events
    }

    /// Queues a publish.
    pub fn publish(&mut self, topic: String, data: Data) -> Result<(), TopicError> {
        validate_user_topic(&topic)?;
        self.outbox
            .push_back(Outgoing::Msg(ClientMsg::Publish(Publish { topic, data })));
        Ok(())
    }

    /// Queues a publish whose value is already in the binary value encoding (`value`), as
    /// the wasm binding does to skip building a [`Data`]. Only for the binary encoding.
    pub fn publish_encoded(&mut self, topic: &str, value: &[u8]) -> Result<(), TopicError> {
        validate_user_topic(topic)?;
        assert_eq!(
            self.encoding,
            Encoding::Binary,
            "pre-encoded values need the binary encoding"
        );
        let mut raw = Vec::with_capacity(1 + 2 + topic.len() + value.len());
        raw.push(crate::protocol::CLIENT_PUBLISH_TAG);
        crate::binary::write_varint(&mut raw, topic.len() as u64);
        raw.extend_from_slice(topic.as_bytes());
        raw.extend_from_slice(value);
        self.outbox.push_back(Outgoing::Encoded(raw));
        Ok(())
    }

    /// A new local subscriber for `topics`.
    pub fn add_subscriber(&mut self, topics: &[String]) -> Result<SubscriberId, TopicError> {
        for t in topics {
            validate_user_topic(t)?;
        }
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        self.add_topics(id, topics)?;
        Ok(id)
    }

    /// Adds prefixes to a subscriber.
    pub fn add_topics(&mut self, id: SubscriberId, topics: &[String]) -> Result<(), TopicError> {
        for t in topics {
            validate_user_topic(t)?;
        }
        let mut fresh = Vec::new();
        for t in topics {
            if self.index.insert(t, id) {
                let n = self.refs.entry(t.clone()).or_default();
                *n += 1;
                if *n == 1 {
                    fresh.push(t.clone());
                }
            }
        }
        if !fresh.is_empty() && self.state != State::Closed {
            self.outbox
                .push_back(Outgoing::Msg(ClientMsg::Subscribe { topics: fresh }));
        }
        Ok(())
    }

    /// Removes prefixes from a subscriber.
    pub fn remove_topics(&mut self, id: SubscriberId, topics: &[String]) {
        let mut gone = Vec::new();
        for t in topics {
            if self.index.remove(t, id) {
                if let Some(n) = self.refs.get_mut(t) {
                    *n -= 1;
                    if *n == 0 {
                        self.refs.remove(t);
                        gone.push(t.clone());
                    }
                }
            }
        }
        if !gone.is_empty() && self.state != State::Closed {
            self.outbox
                .push_back(Outgoing::Msg(ClientMsg::Unsubscribe { topics: gone }));
        }
    }

    /// Removes a subscriber and its prefixes.
    pub fn remove_subscriber(&mut self, id: SubscriberId) {
        let prefixes = self.index.prefixes_of(id);
        self.remove_topics(id, &prefixes);
    }

    /// The prefixes the gateway is asked to send.
    pub fn subscriptions(&self) -> Vec<String> {
        self.refs.keys().cloned().collect()
    }

    /// Queues a request; its response arrives as [`Event::Response`] with the returned id.
    pub fn request(&mut self, request: Request) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        if let Request::Store { store, .. } = &request {
            self.store_requests.insert(id, store.clone());
        }
        self.pending.insert(id, ());
        self.outbox
            .push_back(Outgoing::Msg(ClientMsg::Request { id, request }));
        id
    }

    // -----------------------------------------------------------------------------------------
    // Stores

    /// Sets the clock (milliseconds, any epoch) used for clone intervals.
    pub fn set_now(&mut self, now_ms: f64) {
        self.now_ms = now_ms;
    }

    /// Queues a ping; the gateway answers after everything sent before ([`Event::Pong`]).
    pub fn ping(&mut self) -> u64 {
        let nonce = self.next_request;
        self.next_request += 1;
        self.outbox
            .push_back(Outgoing::Msg(ClientMsg::Ping { nonce }));
        nonce
    }

    /// Queues an orderly goodbye; the gateway closes the connection after it.
    pub fn bye(&mut self) {
        self.outbox.push_back(Outgoing::Msg(ClientMsg::Bye));
    }

    /// Asks the gateway to cancel a pending request (e.g. a blocked namespace `get`). The
    /// request's response still arrives: a failure with `DBR_ERR_CANCELLED` if the
    /// cancellation took effect, else the result the gateway had already sent.
    pub fn cancel(&mut self, id: u64) {
        if self.pending.contains_key(&id) {
            self.outbox
                .push_back(Outgoing::Msg(ClientMsg::Cancel { id }));
        }
    }

    /// Messages waiting for [`ClientCore::take_frame`].
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Everything queued, as one frame to send; `None` if nothing is queued or the connection
    /// is not ready (before the transport opened, only publishes wait).
    pub fn take_frame(&mut self) -> Option<Vec<u8>> {
        self.take_frame_max(usize::MAX)
    }

    /// Like [`ClientCore::take_frame`], with at most `max` messages in the frame (the rest
    /// stays queued).
    pub fn take_frame_max(&mut self, max: usize) -> Option<Vec<u8>> {
        if self.outbox.is_empty() || self.state == State::Closed || max == 0 {
            return None;
        }
        let items: Vec<Outgoing> = if max >= self.outbox.len() {
            std::mem::take(&mut self.outbox).into()
        } else {
            self.outbox.drain(..max).collect()
        };
        match self.encoding {
            Encoding::Binary => {
                let mut out = Vec::new();
                let start = crate::protocol::begin_frame(&mut out);
                let mut body = Vec::new();
                let mut count = 0u64;
                for item in &items {
                    match item {
                        Outgoing::Encoded(raw) => body.extend_from_slice(raw),
                        Outgoing::Msg(m) => {
                            // Binary encoding of our own messages does not fail; skip if so.
                            if crate::binary::to_writer(&mut body, m).is_err() {
                                continue;
                            }
                        }
                    }
                    count += 1;
                }
                crate::binary::write_varint(&mut out, count);
                out.extend_from_slice(&body);
                crate::protocol::finish_frame(&mut out, start);
                Some(out)
            }
            Encoding::Json => {
                // Values JSON cannot carry (a NaN) are dropped one by one so the rest goes out.
                let msgs: Vec<ClientMsg> = items
                    .into_iter()
                    .filter_map(|i| match i {
                        Outgoing::Msg(m) => Some(m),
                        Outgoing::Encoded(_) => None,
                    })
                    .filter(crate::protocol::json_encodable)
                    .collect();
                crate::protocol::to_json(&msgs).ok()
            }
        }
    }

    /// Handles a frame from the gateway.
    pub fn on_frame(&mut self, bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
        let msgs: Vec<ServerMsg> = self
            .encoding
            .decode(bytes, self.max_frame.max(bytes.len()))?;
        let mut events = Vec::with_capacity(msgs.len());
        let mut targets = Vec::new();
        for m in msgs {
            match m {
                ServerMsg::Welcome(w) => {
                    self.state = State::Open;
                    events.push(Event::Connected(w));
                }
                ServerMsg::Message(p) => self.deliver(p, &mut targets, &mut events),
                ServerMsg::Logged {
                    history,
                    seq,
                    message,
                } => {
                    if let Some(p) = self.resume.on_logged(history, seq, message) {
                        self.deliver(p, &mut targets, &mut events);
                    }
                }
                ServerMsg::Replay {
                    history,
                    entries,
                    head,
                } => {
                    let mut out = Vec::new();
                    self.resume.on_replay(history, entries, head, &mut out);
                    for p in out {
                        self.deliver(p, &mut targets, &mut events);
                    }
                }
                ServerMsg::Histories { epoch, prefixes } => {
                    if let Some(m) = self.resume.on_histories(epoch, prefixes) {
                        self.outbox.push_back(Outgoing::Msg(m));
                    }
                }
                ServerMsg::Gap(gap) => {
                    self.resume.on_gap(&gap);
                    events.push(Event::Gap(gap));
                }
                ServerMsg::CloneCurrent { store, master, seq } => {
                    let Some(c) = self.clones.get_mut(&store) else {
                        continue;
                    };
                    match c.replica.caught_up(master, seq) {
                        Ok(_) => {
                            c.disconnected_since = None;
                            events.push(Event::StoreChanges {
                                store,
                                changes: Vec::new(),
                                reset: false,
                                synced: true,
                            });
                        }
                        Err(_) => self.send_attach_snapshot(&store),
                    }
                }
                ServerMsg::Status(s) => events.push(Event::Status(s)),
                ServerMsg::Error(e) => events.push(Event::Error(e)),
                ServerMsg::Response { id, result } => {
                    if let Some(store) = self.store_requests.remove(&id) {
                        let outcome = match &result {
                            Ok(_) => Ok(()),
                            Err(Failure::Broker(e)) => Err(e.clone()),
                            Err(Failure::Namespace { context, .. }) => {
                                Err(store_error(ErrorCode::Unspecified, context.clone()))
                            }
                        };
                        events.extend(self.settle_write(&store, id, outcome));
                    }
                    if self.pending.remove(&id).is_some() {
                        match self.clone_requests.remove(&id) {
                            Some(store) => events.extend(self.on_clone_response(store, result)),
                            None => events.push(Event::Response { id, result }),
                        }
                    }
                }
                ServerMsg::Ping { nonce } => self
                    .outbox
                    .push_back(Outgoing::Msg(ClientMsg::Pong { nonce })),
                ServerMsg::Pong { nonce } => events.push(Event::Pong { nonce }),
                ServerMsg::Bye => events.extend(self.on_close()),
                ServerMsg::Snapshot {
                    store,
                    master,
                    seq,
                    entries,
                    more,
                } => {
                    let Some(c) = self.clones.get_mut(&store) else {
                        continue;
                    };
                    let applied = c
                        .replica
                        .snapshot_chunk_with(master, seq, entries, more, c.changes);
                    if applied.synced {
                        c.disconnected_since = None;
                        c.overlay.rebase(&c.replica);
                        events.push(Event::StoreChanges {
                            store,
                            changes: applied.changes,
                            reset: applied.reset,
                            synced: true,
                        });
                    }
                }
                ServerMsg::StoreMaster { store, reachable } => {
                    let now = self.now_ms;
                    let Some(c) = self.clones.get_mut(&store) else {
                        continue;
                    };
                    if reachable {
                        if self.state == State::Open && c.disconnected_since.take().is_some() {
                            // The source is back: readers that marked the replica stale
                            // learn it now, not only with the next change.
                            events.push(Event::StoreChanges {
                                store,
                                changes: Vec::new(),
                                reset: false,
                                synced: true,
                            });
                        }
                    } else {
                        c.disconnected_since.get_or_insert(now);
                        events.push(Event::StoreError {
                            store,
                            error: store_error(
                                ErrorCode::NoSuchMaster,
                                "the gateway lost the store's master; reading from the cache",
                            ),
                            permanent: false,
                        });
                    }
                }
                ServerMsg::StoreUpdate { store, seq, update } => {
                    let Some(c) = self.clones.get_mut(&store) else {
                        continue;
                    };
                    let want = c.changes;
                    match c.replica.update(seq, update) {
                        Ok(changes) if changes.is_empty() || !want => {}
                        Ok(changes) => {
                            // Consecutive updates of one store in a frame become one event.
                            if let Some(Event::StoreChanges {
                                store: s,
                                changes: prev,
                                reset: false,
                                ..
                            }) = events.last_mut()
                            {
                                if *s == store {
                                    prev.extend(changes);
                                    continue;
                                }
                            }
                            events.push(Event::StoreChanges {
                                store,
                                changes,
                                reset: false,
                                synced: false,
                            });
                        }
                        // A gap: ask for a fresh snapshot (ZB-58).
                        Err(_) => self.send_attach(&store),
                    }
                }
            }
        }
        Ok(events)
    }
}

impl ClientCore {
    /// A message for the local subscribers whose prefixes match.
    fn deliver(&self, p: Publish, targets: &mut Vec<SubscriberId>, events: &mut Vec<Event>) {
        targets.clear();
        self.index.lookup_into(&p.topic, targets);
        if !targets.is_empty() {
            events.push(Event::Message {
                subscribers: targets.clone(),
                publish: p,
            });
        }
    }
}

/// Delay before reconnect attempt `attempt` (0-based): exponential from 100 ms, capped at
/// `cap_ms`, scaled by a jitter factor in [0.5, 1) from `random` in [0, 1).
pub fn reconnect_delay_ms(attempt: u32, cap_ms: u64, random: f64) -> u64 {
    let base = 100u64.saturating_mul(1u64 << attempt.min(20));
    let capped = base.min(cap_ms) as f64;
    (capped * (0.5 + 0.5 * random.clamp(0.0, 1.0))) as u64
}

#[cfg(test)]
mod tests;
