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
                    self.resume.on_histories(epoch, prefixes)
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
mod tests {
    use super::*;
    use crate::protocol::{self, NodeId};

    fn server(msgs: &[ServerMsg]) -> Vec<u8> {
        protocol::to_binary(msgs).unwrap()
    }

    fn sent(frame: Vec<u8>) -> Vec<ClientMsg> {
        protocol::from_binary(&frame, DEFAULT_MAX_FRAME).unwrap()
    }

    fn welcome() -> ServerMsg {
        ServerMsg::Welcome(Welcome {
            endpoint: NodeId([1; 16]),
            version: "x".into(),
            max_frame: 1 << 20,
        })
    }

    #[test]
    fn hello_subscriptions_and_coalesced_publishes() {
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.publish("/early".into(), Data::Count(1)).unwrap();
        assert_eq!(
            c.take_frame(),
            None,
            "nothing goes out before the transport opens"
        );
        let s = c.add_subscriber(&["/a".into(), "/b".into()]).unwrap();
        c.on_open();
        let first = sent(c.take_frame().unwrap());
        assert!(matches!(first[0], ClientMsg::Hello(_)));
        assert_eq!(
            first[1],
            ClientMsg::Subscribe {
                topics: vec!["/a".into(), "/b".into()]
            }
        );
        assert!(matches!(&first[2], ClientMsg::Publish(p) if p.topic == "/early"));
        let ev = c.on_frame(&server(&[welcome()])).unwrap();
        assert!(matches!(ev[0], Event::Connected(_)));
        for i in 0..3 {
            c.publish("/x".into(), Data::Count(i)).unwrap();
        }
        assert_eq!(
            sent(c.take_frame().unwrap()).len(),
            3,
            "one frame for the batch"
        );
        let ev = c
            .on_frame(&server(&[ServerMsg::Message(Publish {
                topic: "/a/1".into(),
                data: Data::None,
            })]))
            .unwrap();
        assert_eq!(
            ev,
            vec![Event::Message {
                subscribers: vec![s],
                publish: Publish {
                    topic: "/a/1".into(),
                    data: Data::None
                }
            }]
        );
        assert!(c.publish("bad<$>".into(), Data::None).is_err());
    }

    #[test]
    fn shared_prefixes_are_reference_counted() {
        let mut c = ClientCore::new(Encoding::Json, "t");
        c.on_open();
        c.on_frame(&protocol::to_json(&[welcome()]).unwrap())
            .unwrap();
        let _ = c.take_frame();
        let a = c.add_subscriber(&["/p".into()]).unwrap();
        let b = c.add_subscriber(&["/p".into()]).unwrap();
        let f: Vec<ClientMsg> = protocol::from_json(&c.take_frame().unwrap(), 1 << 20).unwrap();
        assert_eq!(
            f,
            vec![ClientMsg::Subscribe {
                topics: vec!["/p".into()]
            }]
        );
        c.remove_subscriber(a);
        assert_eq!(c.take_frame(), None, "b still holds /p");
        c.remove_subscriber(b);
        let f: Vec<ClientMsg> = protocol::from_json(&c.take_frame().unwrap(), 1 << 20).unwrap();
        assert_eq!(
            f,
            vec![ClientMsg::Unsubscribe {
                topics: vec!["/p".into()]
            }]
        );
    }

    #[test]
    fn reconnect_restores_subscriptions_and_fails_pending_requests() {
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.add_subscriber(&["/keep".into()]).unwrap();
        c.on_open();
        c.on_frame(&server(&[welcome()])).unwrap();
        let _ = c.take_frame();
        let id = c.request(Request::Peers);
        c.publish("/later".into(), Data::Count(2)).unwrap();
        let ev = c.on_close();
        assert!(matches!(&ev[0], Event::Response { id: i, result: Err(_) } if *i == id));
        assert_eq!(ev.last(), Some(&Event::Disconnected));
        c.on_open();
        let again = sent(c.take_frame().unwrap());
        assert!(matches!(again[0], ClientMsg::Hello(_)));
        assert_eq!(
            again[1],
            ClientMsg::Subscribe {
                topics: vec!["/keep".into()]
            }
        );
        assert!(matches!(&again[2], ClientMsg::Publish(p) if p.topic == "/later"));
        assert_eq!(again.len(), 3, "the stale request is not resent");
        // A late response to the failed request is ignored.
        let late = ServerMsg::Response {
            id,
            result: Ok(Response::Done),
        };
        assert!(c.on_frame(&server(&[late])).unwrap().is_empty());
    }

    #[test]
    fn pre_encoded_publishes_match_encoded_ones() {
        let value = Data::Vector(vec![Data::string("ping"), Data::Count(300)]);
        let mut a = ClientCore::new(Encoding::Binary, "t");
        let mut b = ClientCore::new(Encoding::Binary, "t");
        for c in [&mut a, &mut b] {
            c.on_open();
            let _ = c.take_frame();
        }
        a.publish("/t".into(), value.clone()).unwrap();
        a.ping();
        b.publish_encoded("/t", &crate::binary::to_vec(&value).unwrap())
            .unwrap();
        b.ping();
        assert_eq!(a.take_frame(), b.take_frame());
        assert!(b.publish_encoded("x<$>", &[0]).is_err());
    }

    #[test]
    fn frames_can_be_limited_to_a_number_of_messages() {
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.on_open();
        let _ = c.take_frame();
        for i in 0..5 {
            c.publish("/x".into(), Data::Count(i)).unwrap();
        }
        let first = sent(c.take_frame_max(2).unwrap());
        assert_eq!(first.len(), 2);
        assert!(matches!(&first[0], ClientMsg::Publish(p) if p.data == Data::Count(0)));
        assert_eq!(c.queued(), 3);
        let rest = sent(c.take_frame().unwrap());
        assert!(matches!(&rest[0], ClientMsg::Publish(p) if p.data == Data::Count(2)));
        assert_eq!(c.take_frame_max(1), None);
    }

    #[test]
    fn pings_from_the_gateway_are_answered() {
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.on_open();
        let _ = c.take_frame();
        c.on_frame(&server(&[welcome(), ServerMsg::Ping { nonce: 9 }]))
            .unwrap();
        assert_eq!(
            sent(c.take_frame().unwrap()),
            vec![ClientMsg::Pong { nonce: 9 }]
        );
    }

    /// The id of the attach request for `store` in a frame the client sent.
    fn attach_id(msgs: &[ClientMsg], store: &str) -> Option<u64> {
        msgs.iter().find_map(|m| match m {
            ClientMsg::Request {
                id,
                request: Request::AttachClone { store: s },
            } if s == store => Some(*id),
            _ => None,
        })
    }

    fn refuse(id: u64, code: ErrorCode) -> ServerMsg {
        ServerMsg::Response {
            id,
            result: Err(Failure::Broker(ErrorInfo {
                code,
                context: "refused".into(),
            })),
        }
    }

    #[test]
    fn zb47_a_final_refusal_stops_the_clone_other_failures_retry() {
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.on_open();
        c.on_frame(&server(&[welcome()])).unwrap();
        let _ = c.take_frame();
        let opts = CloneOptions {
            resync_interval_ms: 100.0,
            ..CloneOptions::default()
        };
        c.attach_clone("secret", opts);
        c.attach_clone("bad\u{1}name", opts);
        c.attach_clone("later", opts);
        let out = sent(c.take_frame().unwrap());
        let ev = c
            .on_frame(&server(&[
                refuse(attach_id(&out, "secret").unwrap(), ErrorCode::Unauthorized),
                refuse(
                    attach_id(&out, "bad\u{1}name").unwrap(),
                    ErrorCode::InvalidData,
                ),
                refuse(attach_id(&out, "later").unwrap(), ErrorCode::NoSuchMaster),
            ]))
            .unwrap();
        let permanent: Vec<(&str, ErrorCode, bool)> = ev
            .iter()
            .map(|e| match e {
                Event::StoreError {
                    store,
                    error,
                    permanent,
                } => (store.as_str(), error.code, *permanent),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            permanent,
            vec![
                ("secret", ErrorCode::Unauthorized, true),
                ("bad\u{1}name", ErrorCode::InvalidData, true),
                ("later", ErrorCode::NoSuchMaster, false),
            ]
        );
        // The refusal is kept and is what reads fail with; no_such_master is not a refusal.
        assert_eq!(
            c.clone_refusal("secret").map(|e| e.code),
            Some(ErrorCode::Unauthorized)
        );
        assert_eq!(
            c.clone_get("secret", &Data::Count(1)).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert_eq!(c.clone_refusal("later"), None);
        assert_eq!(
            c.clone_get("later", &Data::Count(1)).unwrap_err().code,
            ErrorCode::StaleData
        );
        // Only the clone without a master tries again, on its timer and after a reconnect.
        let retry = c.tick(200.0);
        assert!(retry.is_empty());
        let out = sent(c.take_frame().unwrap());
        assert!(attach_id(&out, "later").is_some());
        assert_eq!(attach_id(&out, "secret"), None);
        assert_eq!(attach_id(&out, "bad\u{1}name"), None);
        c.on_close();
        c.on_open();
        let out = sent(c.take_frame().unwrap());
        assert!(attach_id(&out, "later").is_some());
        assert_eq!(attach_id(&out, "secret"), None);
        // Attaching anew clears the refusal and asks again.
        c.attach_clone("secret", opts);
        assert_eq!(c.clone_refusal("secret"), None);
        assert!(attach_id(&sent(c.take_frame().unwrap()), "secret").is_some());
    }

    #[test]
    fn reconnect_delays_back_off_with_jitter() {
        assert_eq!(reconnect_delay_ms(0, 10_000, 1.0), 100);
        assert_eq!(reconnect_delay_ms(0, 10_000, 0.0), 50);
        assert_eq!(reconnect_delay_ms(3, 10_000, 1.0), 800);
        assert_eq!(reconnect_delay_ms(30, 10_000, 1.0), 10_000);
        assert!(reconnect_delay_ms(30, 10_000, 0.3) < 10_000);
    }

    #[test]
    fn zu17_a_source_that_comes_back_is_announced_to_the_clone() {
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.on_open();
        c.on_frame(&server(&[welcome()])).unwrap();
        let _ = c.take_frame();
        c.attach_clone("zeek:T", CloneOptions::default());
        let out = sent(c.take_frame().unwrap());
        let id = attach_id(&out, "zeek:T").unwrap();
        let ev = c
            .on_frame(&server(&[
                ServerMsg::Response {
                    id,
                    result: Ok(crate::protocol::Response::Done),
                },
                ServerMsg::Snapshot {
                    store: "zeek:T".into(),
                    master: NodeId([2; 16]),
                    seq: 0,
                    entries: vec![],
                    more: false,
                },
            ]))
            .unwrap();
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::StoreChanges { synced: true, .. })));
        let lost = c
            .on_frame(&server(&[ServerMsg::StoreMaster {
                store: "zeek:T".into(),
                reachable: false,
            }]))
            .unwrap();
        assert!(matches!(
            &lost[..],
            [Event::StoreError {
                permanent: false,
                ..
            }]
        ));
        let back = c
            .on_frame(&server(&[ServerMsg::StoreMaster {
                store: "zeek:T".into(),
                reachable: true,
            }]))
            .unwrap();
        assert_eq!(
            back,
            vec![Event::StoreChanges {
                store: "zeek:T".into(),
                changes: vec![],
                reset: false,
                synced: true
            }]
        );
        // Only a change of state is announced.
        let again = c
            .on_frame(&server(&[ServerMsg::StoreMaster {
                store: "zeek:T".into(),
                reachable: true,
            }]))
            .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn a_kept_clone_catches_up_with_the_updates_since_or_takes_a_snapshot() {
        use crate::protocol::{StoreEntry, StoreUpdate};
        let master = NodeId([7; 16]);
        let saved = SavedReplica {
            master,
            seq: 5,
            entries: vec![StoreEntry {
                key: "a".into(),
                value: Data::Count(1),
                expiry: None,
            }],
        };
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.attach_clone_from("s", CloneOptions::default(), Some(saved.clone()));
        // Readable before any connection.
        assert_eq!(
            c.clone_get("s", &"a".into()).unwrap().unwrap().value,
            Data::Count(1)
        );
        c.on_open();
        let msgs = sent(c.take_frame().unwrap());
        assert!(
            msgs.iter().any(|m| matches!(m, ClientMsg::Request {
            request: Request::AttachCloneSince { store, master: m, seq: 5 }, ..
        } if store == "s" && *m == master)),
            "{msgs:?}"
        );
        let update = |seq| ServerMsg::StoreUpdate {
            store: "s".into(),
            seq,
            update: StoreUpdate::Insert {
                key: format!("k{seq}").as_str().into(),
                value: Data::Count(seq),
                expiry: None,
            },
        };
        let current = ServerMsg::CloneCurrent {
            store: "s".into(),
            master,
            seq: 7,
        };
        let events = c
            .on_frame(&server(&[welcome(), update(6), update(7), current]))
            .unwrap();
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::StoreChanges { synced: true, .. })));
        assert_eq!(c.clone_export("s").unwrap().seq, 7);
        assert_eq!(c.clone_export("s").unwrap().entries.len(), 3);

        // A CloneCurrent that does not match: a snapshot is asked for.
        let mut c = ClientCore::new(Encoding::Binary, "t");
        c.attach_clone_from("s", CloneOptions::default(), Some(saved));
        c.on_open();
        c.take_frame();
        c.on_frame(&server(&[welcome()])).unwrap();
        let wrong = ServerMsg::CloneCurrent {
            store: "s".into(),
            master,
            seq: 9,
        };
        c.on_frame(&server(&[wrong])).unwrap();
        assert!(attach_id(&sent(c.take_frame().unwrap()), "s").is_some());
        assert!(c.clone_export("s").is_none(), "not in sync");
    }
}
