//! A master store: the authoritative copy (ZB-44..58). One task owns the entries, applies
//! every operation in arrival order, numbers the resulting updates and sends them to every
//! clone; with the SQLite backend each change also goes to the writer thread, and the
//! operation is answered once it committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use broker_wasm::protocol::{Response, ServerMsg, StoreEntry, StoreOp, StoreUpdate};
use broker_wasm::store::{self, Entry, Mutation};
use broker_wasm::{Data, ErrorCode, NodeId, Timestamp};
use tokio::sync::mpsc;

use super::sqlite::{Job, Write, Writer};
use super::{error, Cmd, Feed, FeedItem, Reply, StoreError, StoreHandle, CHUNK, TICK};

/// The endpoint clock in nanoseconds since the epoch.
pub(crate) fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

struct Master {
    name: String,
    /// A fresh identity per master instance: clones notice a restart (ZB-60).
    id: NodeId,
    entries: BTreeMap<Data, Entry>,
    expiries: BTreeSet<(Timestamp, Data)>,
    seq: u64,
    clones: Vec<Feed>,
    writer: Option<Writer>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Largest key plus value a write may leave in the store, in bytes; 0 = no limit.
    max_value: u64,
}

pub(crate) fn spawn(
    env: &super::StoreEnv,
    name: &str,
    backend: Option<(BTreeMap<Data, Entry>, Writer)>,
) -> StoreHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (entries, writer) = match backend {
        Some((e, w)) => (e, Some(w)),
        None => (BTreeMap::new(), None),
    };
    let expiries = entries
        .iter()
        .filter_map(|(k, e)| e.expiry.map(|t| (t, k.clone())))
        .collect();
    let m = Master {
        name: name.to_owned(),
        id: NodeId(*uuid::Uuid::new_v4().as_bytes()),
        entries,
        expiries,
        seq: 0,
        clones: Vec::new(),
        writer,
        metrics: env.metrics.clone(),
        max_value: env.max_value,
    };
    let stop = env.shutdown.child_token();
    env.tasks.spawn(run(m, rx, stop));
    StoreHandle {
        tx,
        is_master: true,
    }
}

async fn run(
    mut m: Master,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    stop: tokio_util::sync::CancellationToken,
) {
    // Entries that expired while the store was closed go on the first tick (ZB-46).
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                for cmd in batch.drain(..) {
                    m.handle(cmd);
                }
            }
            _ = tick.tick() => m.reap(now()),
            _ = stop.cancelled() => break,
        }
    }
    super::fail_queued(&mut rx);
    tracing::debug!(store = m.name, "master store closed");
}

impl Master {
    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Op { op, reply } => self.op(op, reply),
            Cmd::Attach { feed, reply } => self.attach(feed, reply),
            Cmd::Peer { .. } | Cmd::PeerGone(_) => {}
        }
    }

    /// Sends a snapshot in chunks, then adds the clone to the update fan-out (ZB-58).
    fn attach(&mut self, feed: Feed, reply: Reply) {
        let mut chunk = Vec::with_capacity(CHUNK.min(self.entries.len()));
        let total = self.entries.len();
        let mut sent = 0;
        let mut ok = true;
        let push = |chunk: Vec<StoreEntry>, more: bool| -> bool {
            feed.try_send(FeedItem::new(ServerMsg::Snapshot {
                store: self.name.clone(),
                master: self.id,
                seq: self.seq,
                entries: chunk,
                more,
            }))
            .is_ok()
        };
        for (k, e) in &self.entries {
            chunk.push(StoreEntry {
                key: k.clone(),
                value: e.value.clone(),
                expiry: e.expiry,
            });
            sent += 1;
            if chunk.len() == CHUNK && sent < total && !push(std::mem::take(&mut chunk), true) {
                ok = false;
                break;
            }
        }
        if ok {
            ok = push(chunk, false);
        }
        if ok {
            self.clones.push(feed);
            reply(Ok(Response::Done));
        } else {
            reply(Err(error(
                ErrorCode::Unspecified,
                "the snapshot does not fit the clone's feed",
            )));
        }
    }

    fn broadcast(&mut self, update: StoreUpdate) {
        self.seq += 1;
        crate::metrics::Metrics::add(&self.metrics.store_updates_total, 1);
        if self.clones.is_empty() {
            return;
        }
        let item = FeedItem::new(ServerMsg::StoreUpdate {
            store: self.name.clone(),
            seq: self.seq,
            update,
        });
        // A clone whose feed is full is dropped; its forwarder re-attaches it with a fresh
        // snapshot, so it never misses an update silently.
        self.clones.retain(|f| f.try_send(item.clone()).is_ok());
    }

    /// Answers now (memory) or once the write committed (SQLite).
    fn persist(&self, write: Write, reply: Reply, answer: Result<Response, StoreError>) {
        match &self.writer {
            Some(w) => w.send((write, Some((reply, answer)))),
            None => reply(answer),
        }
    }

    fn persist_quietly(&self, write: Write) {
        if let Some(w) = &self.writer {
            w.send((write, None) as Job);
        }
    }

    fn set(&mut self, key: Data, value: Data, expiry: Option<Timestamp>) -> Write {
        let write = Write::put(&key, &value, expiry);
        if let Some(t) = expiry {
            self.expiries.insert((t, key.clone()));
        }
        let old = self.entries.insert(
            key.clone(),
            Entry {
                value: value.clone(),
                expiry,
            },
        );
        let update = match old {
            Some(o) => {
                if let Some(t) = o.expiry.filter(|t| Some(*t) != expiry) {
                    self.expiries.remove(&(t, key.clone()));
                }
                StoreUpdate::Update {
                    key,
                    old: o.value,
                    value,
                    expiry,
                }
            }
            None => StoreUpdate::Insert { key, value, expiry },
        };
        self.broadcast(update);
        write
    }

    fn remove(&mut self, key: &Data, expired: bool) -> Option<Write> {
        let old = self.entries.remove(key)?;
        if let Some(t) = old.expiry {
            self.expiries.remove(&(t, key.clone()));
        }
        self.broadcast(if expired {
            StoreUpdate::Expire { key: key.clone() }
        } else {
            StoreUpdate::Erase { key: key.clone() }
        });
        Some(Write::delete(key))
    }

    fn op(&mut self, op: StoreOp, reply: Reply) {
        crate::metrics::Metrics::add(&self.metrics.store_ops_total, 1);
        match &op {
            StoreOp::Get { key } => {
                return reply(
                    self.entries
                        .get(key)
                        .map(|e| Response::Value(e.value.clone()))
                        .ok_or_else(|| error(ErrorCode::NoSuchKey, "no such key")),
                )
            }
            StoreOp::Exists { key } => {
                return reply(Ok(Response::Bool(self.entries.contains_key(key))))
            }
            StoreOp::GetIndexFromValue { key, index } => {
                return reply(match self.entries.get(key) {
                    Some(e) => store::index_of(&e.value, index).map(Response::Value),
                    None => Err(error(ErrorCode::NoSuchKey, "no such key")),
                })
            }
            StoreOp::Keys => {
                return reply(Ok(Response::Value(Data::Set(
                    self.entries.keys().cloned().collect(),
                ))))
            }
            StoreOp::AwaitIdle => return self.persist(Write::Barrier, reply, Ok(Response::Done)),
            StoreOp::Clear => {
                if self.entries.is_empty() {
                    return reply(Ok(Response::Done));
                }
                self.entries.clear();
                self.expiries.clear();
                self.broadcast(StoreUpdate::Clear);
                return self.persist(Write::Clear, reply, Ok(Response::Done));
            }
            _ => {}
        }
        let Some((key, expiry)) = store::key_and_expiry(&op) else {
            return reply(Err(error(ErrorCode::LogicError, "unexpected operation")));
        };
        let at = match expiry {
            None => None,
            Some(span) => match now().checked_add(span) {
                Some(t) => Some(t),
                None => return reply(Err(error(ErrorCode::InvalidData, "expiry out of range"))),
            },
        };
        let unique = matches!(op, StoreOp::PutUnique { .. });
        let current = self.entries.get(key).map(|e| &e.value);
        match store::mutate(&op, current) {
            Err(e) => reply(Err(e)),
            Ok(Mutation::Unchanged) => reply(Ok(if unique {
                Response::Bool(false)
            } else {
                Response::Done
            })),
            Ok(Mutation::Remove) => {
                let key = key.clone();
                match self.remove(&key, false) {
                    Some(w) => self.persist(w, reply, Ok(Response::Done)),
                    None => reply(Ok(Response::Done)),
                }
            }
            Ok(Mutation::Set(value)) if too_big(self.max_value, key, &value) => {
                crate::metrics::Metrics::add(&self.metrics.store_value_rejected_total, 1);
                reply(Err(error(
                    ErrorCode::InvalidData,
                    format!(
                        "the entry would exceed the limit of {} bytes (--store-max-value)",
                        self.max_value
                    ),
                )))
            }
            // An insert or append may nest a value one level deeper than what was sent.
            Ok(Mutation::Set(value)) if value.too_deep() => reply(Err(error(
                ErrorCode::InvalidData,
                broker_wasm::data::too_deep_text(),
            ))),
            Ok(Mutation::Set(value)) => {
                // Any modification without an expiry clears the old one (Broker, ZB-56).
                let key = key.clone();
                let w = self.set(key, value, at);
                let answer = if unique {
                    Response::Bool(true)
                } else {
                    Response::Done
                };
                self.persist(w, reply, Ok(answer));
            }
        }
    }

    /// Removes every entry whose expiry passed, each replicated as `expire` (ZB-56).
    fn reap(&mut self, now: Timestamp) {
        while let Some((t, _)) = self.expiries.first() {
            if *t >= now {
                break;
            }
            let Some((t, key)) = self.expiries.pop_first() else {
                break;
            };
            // The index may hold a stale expiry of a key that was rewritten.
            if self.entries.get(&key).and_then(|e| e.expiry) != Some(t) {
                continue;
            }
            if let Some(w) = self.remove(&key, true) {
                self.persist_quietly(w);
            }
        }
    }
}

/// Size of a datum for the value limit: its binary encoding (a string: its bytes). Scalars
/// are small and not measured.
fn size_of(d: &Data) -> u64 {
    match d {
        Data::String(b) => b.len() as u64,
        Data::Vector(_) | Data::Set(_) | Data::Table(_) => {
            broker_wasm::binary::to_vec(d).map_or(u64::MAX, |v| v.len() as u64)
        }
        _ => 16,
    }
}

/// True if `key` with `value` exceeds the limit `max` (0: no limit).
fn too_big(max: u64, key: &Data, value: &Data) -> bool {
    max > 0 && size_of(key).saturating_add(size_of(value)) > max
}
