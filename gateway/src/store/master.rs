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
use super::{error, Cmd, Feed, FeedItem, Reply, StoreError, StoreHandle, TableCmd, CHUNK, TICK};
use crate::uplink::table::TableChange;

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
    /// The last updates, for clones that come back (`AttachCloneSince`).
    recent: super::Recent,
    writer: Option<Writer>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Largest key plus value a write may leave in the store, in bytes; 0 = no limit.
    max_value: u64,
    /// A mirror of a Zeek table (ZU-17): only its uplink changes it.
    table: Option<TableState>,
}

/// The state of a store that mirrors a Zeek table.
#[derive(Debug, Default)]
struct TableState {
    /// The uplink is away: clones are told the store is stale.
    lost: bool,
    /// Since the uplink came back: the keys Zeek sent again, until the table was re-sent
    /// whole.
    fresh: Option<std::collections::HashSet<Data>>,
}

/// A memory master that mirrors a Zeek table: clients may read and clone it, not write.
pub(crate) fn spawn_read_only(env: &super::StoreEnv, name: &str) -> StoreHandle {
    spawn_with(env, name, None, Some(TableState::default()))
}

pub(crate) fn spawn(
    env: &super::StoreEnv,
    name: &str,
    backend: Option<(BTreeMap<Data, Entry>, Writer)>,
) -> StoreHandle {
    spawn_with(env, name, backend, None)
}

fn spawn_with(
    env: &super::StoreEnv,
    name: &str,
    backend: Option<(BTreeMap<Data, Entry>, Writer)>,
    table: Option<TableState>,
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
        recent: super::Recent::default(),
        writer,
        metrics: env.metrics.clone(),
        max_value: env.max_value,
        table,
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
            Cmd::Attach { feed, reply, since } => self.attach(feed, reply, since),
            Cmd::Table(t) => self.table(t),
            Cmd::Peer { .. } | Cmd::PeerGone(_) => {}
        }
    }

    /// A command of the uplink that feeds this mirror of a Zeek table (ZU-17).
    fn table(&mut self, cmd: TableCmd) {
        if self.table.is_none() {
            return;
        }
        match cmd {
            TableCmd::Apply(changes) => {
                crate::metrics::Metrics::add(
                    &self.metrics.uplink_table_changes_total,
                    changes.len() as u64,
                );
                for c in changes {
                    match c {
                        TableChange::Put { key, value } => {
                            if let Some(fresh) = self.table.as_mut().and_then(|t| t.fresh.as_mut())
                            {
                                fresh.insert(key.clone());
                            }
                            // Zeek re-sends whole tables to new clients: an unchanged value
                            // is no update.
                            if self.entries.get(&key).is_some_and(|e| e.value == value) {
                                continue;
                            }
                            self.set(key, value, None);
                        }
                        TableChange::Remove { key, expired } => {
                            if let Some(fresh) = self.table.as_mut().and_then(|t| t.fresh.as_mut())
                            {
                                fresh.remove(&key);
                            }
                            self.remove(&key, expired);
                        }
                    }
                }
            }
            TableCmd::Lost => {
                if let Some(t) = &mut self.table {
                    t.lost = true;
                    t.fresh = None;
                }
                self.tell_reachable(false);
            }
            TableCmd::Rebuild => {
                if let Some(t) = &mut self.table {
                    t.lost = false;
                    t.fresh = Some(Default::default());
                }
                self.tell_reachable(true);
            }
            TableCmd::Rebuilt => {
                let Some(fresh) = self.table.as_mut().and_then(|t| t.fresh.take()) else {
                    return;
                };
                let gone: Vec<Data> = self
                    .entries
                    .keys()
                    .filter(|k| !fresh.contains(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    self.remove(&k, false);
                }
            }
        }
    }

    /// Tells the clones whether the source of this store is reachable (a Zeek table's
    /// uplink): they mark their replica stale while it is not.
    fn tell_reachable(&mut self, reachable: bool) {
        let item = FeedItem::new(ServerMsg::StoreMaster {
            store: self.name.clone(),
            reachable,
        });
        self.clones.retain(|f| f.try_send(item.clone()).is_ok());
    }

    /// Sends a snapshot in chunks, then adds the clone to the update fan-out (ZB-58). A
    /// clone with this master's state as of an update still in `recent` gets the updates
    /// since instead.
    fn attach(&mut self, feed: Feed, reply: Reply, since: Option<(NodeId, u64)>) {
        if let Some(since) = since {
            if self
                .recent
                .serve(&self.name, (self.id, self.seq), since, &feed)
            {
                crate::metrics::Metrics::add(&self.metrics.store_clone_catchups_total, 1);
                self.clones.push(feed);
                return reply(Ok(Response::Done));
            }
        }
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
        if ok && self.table.as_ref().is_some_and(|t| t.lost) {
            ok = feed
                .try_send(FeedItem::new(ServerMsg::StoreMaster {
                    store: self.name.clone(),
                    reachable: false,
                }))
                .is_ok();
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
        let item = FeedItem::new(ServerMsg::StoreUpdate {
            store: self.name.clone(),
            seq: self.seq,
            update,
        });
        self.recent.push(self.seq, item.clone());
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
        if self.table.is_some() && store::is_mutation(&op) {
            return reply(Err(error(
                ErrorCode::ReadOnly,
                format!(
                    "store {} mirrors a Zeek table and is read-only: change the table in Zeek",
                    self.name
                ),
            )));
        }
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
