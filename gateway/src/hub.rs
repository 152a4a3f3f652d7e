//! The routing core: who is subscribed to what, and delivery of each message to every
//! matching consumer, encoded once per wire format (design decision 4).
//!
//! Consumers are local subscribers of the embedding program, native-protocol clients and
//! Zeek JSON API clients. Each has a bounded queue; when it is full the slow-consumer policy
//! applies (drop and count, or disconnect). Peer links are not consumers: the peering layer
//! decides separately where to forward.
//!
//! Locking: one `RwLock`. Routing takes it for reading (many publishers at once) and only
//! does non-blocking queue pushes while holding it; subscription changes take it for writing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use broker_wasm::protocol::{self, Encoding, Publish, ServerMsg, SERVER_MESSAGE_TAG};
use broker_wasm::topic::SubscriptionIndex;
use broker_wasm::zeek_json;
use bytes::Bytes;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use crate::config::SlowConsumerPolicy;
use crate::history::{Histories, HistorySpec, Log, Replay};
use crate::metrics::Metrics;

/// Identifies a consumer (subscriber, client session) within one endpoint.
pub type ConsumerId = u64;

/// A status or error event for status subscribers (ZB-20).
pub use broker_client::StatusEvent;

/// Where a consumer's messages go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// A subscriber of the embedding program.
    Local(mpsc::Sender<Arc<Publish>>),
    /// A native-protocol client: each queued item is one encoded [`ServerMsg`] (no frame).
    Native {
        encoding: Encoding,
        tx: mpsc::Sender<Bytes>,
    },
    /// A Zeek JSON API client: each queued item is one complete text message.
    Zeek(mpsc::Sender<Bytes>),
}

/// Where status events go: errors always, statuses only when asked for (ZB-20).
#[derive(Debug, Clone)]
pub enum StatusSink {
    Local(mpsc::Sender<StatusEvent>),
    Native {
        encoding: Encoding,
        tx: mpsc::Sender<Bytes>,
    },
}

#[derive(Debug)]
struct Consumer {
    sink: Sink,
    /// Messages dropped for this consumer, reported to it by its session.
    dropped: Arc<AtomicU64>,
    /// Cancelled to disconnect the consumer (slow-consumer policy `disconnect`).
    kick: CancellationToken,
    kicked: AtomicBool,
}

#[derive(Debug, Default)]
struct Inner {
    index: SubscriptionIndex<ConsumerId>,
    consumers: HashMap<ConsumerId, Consumer>,
    status_sinks: HashMap<ConsumerId, (StatusSink, bool)>,
    /// Clients' instance names (`ClientMsg::Resume`): the origin of what they publish.
    instances: HashMap<ConsumerId, Arc<str>>,
}

/// What a consumer's session needs from its registration.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: ConsumerId,
    pub dropped: Arc<AtomicU64>,
    pub kick: CancellationToken,
}

/// Which consumers a message must not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclude {
    /// Nobody (messages from peers).
    None,
    /// The publishing client itself: no echo (ZB-38).
    Consumer(ConsumerId),
    /// The endpoint's own subscribers: a message published through the endpoint's API is
    /// not delivered to subscribers of the same endpoint (ZB-09).
    LocalSubscribers,
}

/// The routing table and delivery.
#[derive(Debug)]
pub struct Hub {
    inner: RwLock<Inner>,
    next_id: AtomicU64,
    policy: SlowConsumerPolicy,
    pub metrics: Arc<Metrics>,
    /// The histories of `--history` (empty: none).
    pub histories: Histories,
}

/// Lazily encoded forms of one message, so each wire format is encoded at most once.
struct Encoded<'a> {
    publish: &'a Publish,
    raw_client: Option<&'a [u8]>,
    /// The message's history and position, for native clients (`ServerMsg::Logged`).
    logged: Option<(u32, u64)>,
    binary: Option<Bytes>,
    json: Option<Bytes>,
    zeek: Option<Option<Bytes>>,
    local: Option<Arc<Publish>>,
}

impl<'a> Encoded<'a> {
    fn binary(&mut self) -> Bytes {
        if let Some((history, seq)) = self.logged {
            return self
                .binary
                .get_or_insert_with(|| {
                    let plain = self.raw_client.map(<[u8]>::to_vec).unwrap_or_else(|| {
                        protocol::server_message_binary(self.publish)
                            .expect("binary encoding cannot fail")
                    });
                    Bytes::from(protocol::logged_message_binary(history, seq, &plain[1..]))
                })
                .clone();
        }
        self.binary
            .get_or_insert_with(|| match self.raw_client {
                Some(raw) => {
                    // A client's Publish differs from the server's Message only in the tag.
                    let mut v = Vec::with_capacity(raw.len());
                    v.push(SERVER_MESSAGE_TAG);
                    v.extend_from_slice(&raw[1..]);
                    Bytes::from(v)
                }
                None => Bytes::from(
                    protocol::server_message_binary(self.publish)
                        .expect("binary encoding cannot fail"),
                ),
            })
            .clone()
    }

    fn json(&mut self) -> Option<Bytes> {
        if self.json.is_none() {
            let msg = match self.logged {
                Some((history, seq)) => ServerMsg::Logged {
                    history,
                    seq,
                    message: self.publish.clone(),
                },
                None => ServerMsg::Message(self.publish.clone()),
            };
            self.json = serde_json::to_vec(&msg).ok().map(Bytes::from);
        }
        self.json.clone()
    }

    fn zeek(&mut self) -> Option<Bytes> {
        self.zeek
            .get_or_insert_with(|| {
                zeek_json::data_message(&self.publish.topic, &self.publish.data)
                    .ok()
                    .map(Bytes::from)
            })
            .clone()
    }

    fn local(&mut self) -> Arc<Publish> {
        self.local
            .get_or_insert_with(|| Arc::new(self.publish.clone()))
            .clone()
    }
}

/// Encodes one server message (no frame) in `encoding`.
pub fn encode_server_msg(encoding: Encoding, msg: &ServerMsg) -> Option<Bytes> {
    match encoding {
        Encoding::Binary => broker_wasm::binary::to_vec(msg).ok().map(Bytes::from),
        Encoding::Json => serde_json::to_vec(msg).ok().map(Bytes::from),
    }
}

impl Hub {
    #[cfg(test)]
    pub fn new(policy: SlowConsumerPolicy, metrics: Arc<Metrics>) -> Hub {
        Hub::with_histories(policy, metrics, &[])
    }

    /// A hub that keeps the histories `specs` name.
    pub fn with_histories(
        policy: SlowConsumerPolicy,
        metrics: Arc<Metrics>,
        specs: &[HistorySpec],
    ) -> Hub {
        Hub {
            inner: RwLock::new(Inner::default()),
            next_id: AtomicU64::new(1),
            policy,
            metrics,
            histories: Histories::new(specs),
        }
    }

    /// Names the client behind consumer `id` (its publishes are not replayed to it).
    pub fn set_instance(&self, id: ConsumerId, instance: &str) {
        self.write().instances.insert(id, Arc::from(instance));
    }

    /// What a resuming client missed in history `log` since `from` (see `history`), for
    /// the prefixes consumer `id` holds now.
    pub fn replay(&self, id: ConsumerId, log: &Log, same_epoch: bool, from: u64) -> Replay {
        let (prefixes, instance) = {
            let inner = self.read();
            let instance = inner.instances.get(&id).cloned();
            (inner.index.prefixes_of(id), instance)
        };
        log.replay(
            same_epoch,
            from,
            &prefixes,
            instance.as_deref().unwrap_or(""),
        )
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a consumer without subscriptions.
    pub fn register(&self, sink: Sink) -> Registration {
        let id = self.next_id.fetch_add(1, Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let kick = CancellationToken::new();
        self.write().consumers.insert(
            id,
            Consumer {
                sink,
                dropped: dropped.clone(),
                kick: kick.clone(),
                kicked: AtomicBool::new(false),
            },
        );
        Registration { id, dropped, kick }
    }

    /// Removes a consumer and its subscriptions (and its status sink). Returns true if the
    /// endpoint's filter changed.
    pub fn unregister(&self, id: ConsumerId) -> bool {
        let mut inner = self.write();
        inner.consumers.remove(&id);
        inner.status_sinks.remove(&id);
        inner.instances.remove(&id);
        let removed = inner.index.remove_all(id);
        // A removed prefix leaves the filter iff nothing (itself or shorter) still covers it.
        removed.iter().any(|t| !inner.index.any_match(t))
    }

    /// Adds status delivery for `id` (errors always; statuses if `statuses`).
    pub fn add_status_sink(&self, id: ConsumerId, sink: StatusSink, statuses: bool) {
        self.write().status_sinks.insert(id, (sink, statuses));
    }

    /// A consumer id for a status-only sink (no messages).
    pub fn status_only(&self, sink: StatusSink, statuses: bool) -> ConsumerId {
        let id = self.next_id.fetch_add(1, Relaxed);
        self.add_status_sink(id, sink, statuses);
        id
    }

    /// Adds prefixes for `id`. Returns true if the endpoint's filter changed.
    pub fn subscribe(&self, id: ConsumerId, topics: &[String]) -> bool {
        let mut inner = self.write();
        let mut changed = false;
        for t in topics {
            // A new prefix enters the filter iff no held prefix (itself or shorter) covers it.
            changed |= !inner.index.any_match(t);
            inner.index.insert(t, id);
        }
        changed
    }

    /// Removes prefixes of `id`. Returns true if the endpoint's filter changed.
    pub fn unsubscribe(&self, id: ConsumerId, topics: &[String]) -> bool {
        let mut inner = self.write();
        let mut changed = false;
        for t in topics {
            if inner.index.remove(t, id) {
                changed |= !inner.index.any_match(t);
            }
        }
        changed
    }

    /// Number of prefixes `id` holds.
    pub fn subscription_count(&self, id: ConsumerId) -> usize {
        self.read().index.prefixes_of(id).len()
    }

    /// The normalised union of every local prefix: what this endpoint wants (ZB-12). The
    /// history prefixes are always in it: their messages are kept for clients that come back.
    pub fn filter(&self) -> Vec<String> {
        let mut all = self.read().index.filter();
        if self.histories.is_empty() {
            return all;
        }
        all.extend(self.histories.prefixes());
        broker_wasm::topic::normalize(all)
    }

    /// Total number of (prefix, consumer) subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.read().index.len()
    }

    /// Delivers `publish` to every matching consumer except `exclude`. `raw_client` is the
    /// message's own bytes when it arrived as a binary [`protocol::ClientMsg::Publish`].
    /// Returns the number of consumers that got it.
    pub fn route(&self, publish: &Publish, raw_client: Option<&[u8]>, exclude: Exclude) -> usize {
        let mut targets = Vec::new();
        let inner = self.read();
        inner.index.lookup_into(&publish.topic, &mut targets);
        // A message under a history is numbered and kept; it is handed to the consumers
        // under the history's lock, so they see the history in order.
        let appending = self
            .histories
            .log_for(&publish.topic)
            .map(|(i, log)| (i, log.begin()));
        if targets.is_empty() && appending.is_none() {
            return 0;
        }
        let mut enc = Encoded {
            publish,
            raw_client,
            logged: appending.as_ref().map(|(i, a)| (*i, a.seq())),
            binary: None,
            json: None,
            zeek: None,
            local: None,
        };
        let mut delivered = 0;
        for id in targets {
            if exclude == Exclude::Consumer(id) {
                continue;
            }
            let Some(c) = inner.consumers.get(&id) else {
                continue;
            };
            let pushed = match &c.sink {
                Sink::Local(_) if exclude == Exclude::LocalSubscribers => continue,
                Sink::Local(tx) => push(tx, enc.local()),
                Sink::Native {
                    encoding: Encoding::Binary,
                    tx,
                } => push(tx, enc.binary()),
                Sink::Native {
                    encoding: Encoding::Json,
                    tx,
                } => match enc.json() {
                    Some(b) => push(tx, b),
                    None => continue,
                },
                Sink::Zeek(tx) => match enc.zeek() {
                    Some(b) => push(tx, b),
                    // Not representable in JSON (a NaN): Zeek clients cannot receive it.
                    None => continue,
                },
            };
            match pushed {
                Ok(()) => delivered += 1,
                Err(Full) => self.overflow(c),
                Err(Gone) => {}
            }
        }
        if let Some((_, appending)) = appending {
            let origin = match exclude {
                Exclude::Consumer(id) => inner.instances.get(&id).cloned(),
                _ => None,
            };
            appending.push(enc.local(), origin);
        }
        Metrics::add(&self.metrics.messages_out_total, delivered as u64);
        delivered
    }

    fn overflow(&self, c: &Consumer) {
        match self.policy {
            SlowConsumerPolicy::Drop => {
                c.dropped.fetch_add(1, Relaxed);
                Metrics::add(&self.metrics.dropped_total, 1);
            }
            SlowConsumerPolicy::Disconnect => {
                if !c.kicked.swap(true, Relaxed) {
                    Metrics::add(&self.metrics.slow_disconnects_total, 1);
                    c.kick.cancel();
                }
                Metrics::add(&self.metrics.dropped_total, 1);
            }
        }
    }

    /// Emits a status event (ZB-20, ZB-23) about `node`.
    pub(crate) fn status(
        &self,
        code: broker_wasm::StatusCode,
        node: Option<broker_wasm::NodeId>,
        network: Option<broker_wasm::protocol::NetworkInfo>,
        message: &str,
    ) {
        tracing::debug!(?code, ?node, message, "status");
        self.emit(StatusEvent::Status(broker_wasm::protocol::Status {
            code,
            endpoint: Some(broker_wasm::protocol::EndpointInfo { node, network }),
            message: message.into(),
        }));
    }

    /// Emits an error event (ZB-22).
    pub(crate) fn error(&self, code: broker_wasm::ErrorCode, context: impl Into<String>) {
        let context = context.into();
        tracing::debug!(?code, context, "error");
        self.emit(StatusEvent::Error(broker_wasm::protocol::ErrorInfo {
            code,
            context,
        }));
    }

    /// Sends a status or error to the status subscribers (ZB-20).
    pub fn emit(&self, event: StatusEvent) {
        let inner = self.read();
        let is_status = matches!(event, StatusEvent::Status(_));
        let mut bin = None;
        let mut json = None;
        for (sink, statuses) in inner.status_sinks.values() {
            if is_status && !statuses {
                continue;
            }
            let msg = || match &event {
                StatusEvent::Status(s) => ServerMsg::Status(s.clone()),
                StatusEvent::Error(e) => ServerMsg::Error(e.clone()),
                StatusEvent::Gap(g) => ServerMsg::Gap(g.clone()),
            };
            let _ = match sink {
                StatusSink::Local(tx) => tx.try_send(event.clone()).map_err(|_| ()),
                StatusSink::Native { encoding, tx } => {
                    let slot = if *encoding == Encoding::Binary {
                        &mut bin
                    } else {
                        &mut json
                    };
                    match slot.get_or_insert_with(|| encode_server_msg(*encoding, &msg())) {
                        Some(b) => tx.try_send(b.clone()).map_err(|_| ()),
                        None => Ok(()),
                    }
                }
            };
        }
    }

    /// Drops every consumer and status sink (shutdown): their queues end after draining.
    pub fn close_all(&self) {
        let mut inner = self.write();
        inner.consumers.clear();
        inner.status_sinks.clear();
        inner.index = SubscriptionIndex::new();
    }

    /// Number of connected consumers by kind: (local subscribers, native, zeek).
    pub fn consumer_counts(&self) -> (usize, usize, usize) {
        let inner = self.read();
        let mut counts = (0, 0, 0);
        for c in inner.consumers.values() {
            match c.sink {
                Sink::Local(_) => counts.0 += 1,
                Sink::Native { .. } => counts.1 += 1,
                Sink::Zeek(_) => counts.2 += 1,
            }
        }
        counts
    }

    /// Messages waiting in all consumer queues.
    pub fn queued(&self) -> usize {
        let inner = self.read();
        inner
            .consumers
            .values()
            .map(|c| match &c.sink {
                Sink::Local(tx) => tx.max_capacity() - tx.capacity(),
                Sink::Native { tx, .. } | Sink::Zeek(tx) => tx.max_capacity() - tx.capacity(),
            })
            .sum()
    }
}

enum PushError {
    Full,
    Gone,
}
use PushError::{Full, Gone};

fn push<T>(tx: &mpsc::Sender<T>, item: T) -> Result<(), PushError> {
    tx.try_send(item).map_err(|e| match e {
        TrySendError::Full(_) => Full,
        TrySendError::Closed(_) => Gone,
    })
}

/// Appends one frame holding the encoded messages `items` to `out`.
pub fn frame_of(encoding: Encoding, items: &[Bytes], out: &mut Vec<u8>) {
    match encoding {
        Encoding::Binary => {
            let start = protocol::begin_frame(out);
            broker_wasm::binary::write_varint(out, items.len() as u64);
            for it in items {
                out.extend_from_slice(it);
            }
            protocol::finish_frame(out, start);
        }
        Encoding::Json => {
            out.extend_from_slice(br#"{"v":1,"messages":["#);
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(it);
            }
            out.extend_from_slice(b"]}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_wasm::Data;

    fn hub(policy: SlowConsumerPolicy) -> Hub {
        Hub::new(policy, Arc::new(Metrics::default()))
    }

    fn msg(topic: &str, n: u64) -> Publish {
        Publish {
            topic: topic.into(),
            data: Data::Count(n),
        }
    }

    #[test]
    fn routes_by_prefix_without_echo() {
        let h = hub(SlowConsumerPolicy::Drop);
        let (tx1, mut rx1) = mpsc::channel(8);
        let (tx2, mut rx2) = mpsc::channel(8);
        let a = h.register(Sink::Local(tx1));
        let b = h.register(Sink::Native {
            encoding: Encoding::Binary,
            tx: tx2,
        });
        assert!(h.subscribe(a.id, &["/test".into()]));
        // Covered by "/test": the filter does not change.
        assert!(!h.subscribe(b.id, &["/test/x".into()]));
        assert_eq!(h.filter(), ["/test"]);
        assert_eq!(h.route(&msg("/test2", 1), None, Exclude::None), 1);
        assert_eq!(rx1.try_recv().unwrap().data, Data::Count(1));
        assert_eq!(
            h.route(&msg("/test/x", 2), None, Exclude::Consumer(b.id)),
            1
        );
        assert!(rx2.try_recv().is_err());
        assert_eq!(
            h.route(&msg("/test/x", 3), None, Exclude::LocalSubscribers),
            1
        );
        let bytes = rx2.try_recv().unwrap();
        let mut frame = Vec::new();
        frame_of(Encoding::Binary, &[bytes], &mut frame);
        let msgs: Vec<ServerMsg> = protocol::from_binary(&frame, 1 << 20).unwrap();
        assert_eq!(msgs, vec![ServerMsg::Message(msg("/test/x", 3))]);
        assert!(h.unregister(a.id));
        assert_eq!(h.filter(), ["/test/x"]);
    }

    #[test]
    fn filter_changes_are_detected_without_recomputing_the_filter() {
        let h = hub(SlowConsumerPolicy::Drop);
        let (tx, _rx) = mpsc::channel(8);
        let a = h.register(Sink::Local(tx.clone()));
        let b = h.register(Sink::Local(tx));
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(h.subscribe(a.id, &s(&["/a/b"])));
        assert!(
            h.subscribe(b.id, &s(&["/a"])),
            "a shorter prefix replaces /a/b"
        );
        assert!(!h.subscribe(a.id, &s(&["/a/c"])), "covered");
        assert!(!h.unsubscribe(a.id, &s(&["/a/b"])), "still covered by /a");
        assert!(!h.unsubscribe(a.id, &s(&["/never"])));
        assert!(h.unsubscribe(b.id, &s(&["/a"])), "/a leaves; /a/c appears");
        assert_eq!(h.filter(), ["/a/c"]);
        assert!(h.unregister(a.id));
        assert!(h.filter().is_empty());
        let before = h.filter();
        assert!(!h.unregister(b.id));
        assert_eq!(h.filter(), before);
    }

    #[test]
    fn zb18_full_queues_drop_or_disconnect() {
        for policy in [SlowConsumerPolicy::Drop, SlowConsumerPolicy::Disconnect] {
            let h = hub(policy);
            let (tx, _rx) = mpsc::channel(2);
            let r = h.register(Sink::Local(tx));
            h.subscribe(r.id, &["".into()]);
            for i in 0..5 {
                h.route(&msg("/x", i), None, Exclude::None);
            }
            match policy {
                SlowConsumerPolicy::Drop => {
                    assert_eq!(r.dropped.load(Relaxed), 3);
                    assert!(!r.kick.is_cancelled());
                }
                SlowConsumerPolicy::Disconnect => assert!(r.kick.is_cancelled()),
            }
            assert_eq!(h.metrics.dropped_total.load(Relaxed), 3);
        }
    }
}
