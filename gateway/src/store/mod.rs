//! Data stores (ZB-44..62): master stores living in this gateway, relays that clone a master
//! living on a peer, and the feeds that carry snapshots and ordered updates to clones (client
//! sessions, peer links, Rust handles).
//!
//! Each store is one task that owns its state: a [`master`] applies operations, replicates
//! the resulting values and persists them (SQLite through one writer thread, or memory only);
//! a [`relay`] follows a master on a direct peer and serves its own clones from its replica.
//! Both speak the same [`Cmd`]s, so a session does not care which one it talks to.

mod local;
pub(crate) mod master;
mod recent;
pub(crate) mod relay;
pub mod sqlite;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use broker_wasm::protocol::{
    Backend, Encoding, ErrorInfo, Failure, PeerMsg, Response, ServerMsg, StoreOp,
};
use broker_wasm::{Data, ErrorCode, NodeId};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::peering::Peering;

pub use broker_client::store::{CloneEvent, CloneStore, Store};
pub use broker_wasm::store::StoreError;
pub(crate) use recent::Recent;

/// Entries per snapshot chunk.
pub(crate) const CHUNK: usize = 4096;
/// Items a feed may hold before its clone counts as lagging and is resynchronised.
const FEED_CAP: usize = 1 << 16;
/// How often masters reap expired entries (Broker's tick, ZB-56).
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// What a store operation answers with.
pub type Reply = Box<dyn FnOnce(Result<Response, StoreError>) + Send>;

pub(crate) fn error(code: ErrorCode, context: impl Into<String>) -> StoreError {
    ErrorInfo {
        code,
        context: context.into(),
    }
}

/// A result as it travels on the wire.
pub(crate) fn to_failure(r: Result<Response, StoreError>) -> Result<Response, Failure> {
    r.map_err(Failure::Broker)
}

/// One message of a clone feed, encoded at most once per wire format however many clones it
/// goes to.
#[derive(Debug)]
pub(crate) struct FeedItem {
    pub msg: ServerMsg,
    bin: OnceLock<Option<Bytes>>,
    json: OnceLock<Option<Bytes>>,
    peer: OnceLock<Option<Bytes>>,
}

impl FeedItem {
    pub(crate) fn new(msg: ServerMsg) -> Arc<FeedItem> {
        Arc::new(FeedItem {
            msg,
            bin: OnceLock::new(),
            json: OnceLock::new(),
            peer: OnceLock::new(),
        })
    }

    fn bytes(&self, to: FeedTarget) -> Option<Bytes> {
        match to {
            FeedTarget::Client(Encoding::Binary) => self
                .bin
                .get_or_init(|| crate::hub::encode_server_msg(Encoding::Binary, &self.msg))
                .clone(),
            FeedTarget::Client(Encoding::Json) => self
                .json
                .get_or_init(|| crate::hub::encode_server_msg(Encoding::Json, &self.msg))
                .clone(),
            FeedTarget::Peer => self
                .peer
                .get_or_init(|| {
                    let m = match &self.msg {
                        ServerMsg::Snapshot {
                            store,
                            master,
                            seq,
                            entries,
                            more,
                        } => PeerMsg::StoreSnapshot {
                            store: store.clone(),
                            master: *master,
                            seq: *seq,
                            entries: entries.clone(),
                            more: *more,
                        },
                        ServerMsg::StoreUpdate { store, seq, update } => PeerMsg::StoreUpdate {
                            store: store.clone(),
                            seq: *seq,
                            update: update.clone(),
                        },
                        ServerMsg::StoreMaster { store, reachable } => PeerMsg::StoreMaster {
                            store: store.clone(),
                            reachable: *reachable,
                        },
                        _ => return None,
                    };
                    broker_wasm::binary::to_vec(&m).ok().map(Bytes::from)
                })
                .clone(),
        }
    }
}

/// Where a feed goes: a client session in its encoding, or a peer link.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FeedTarget {
    Client(Encoding),
    Peer,
}

pub(crate) type Feed = mpsc::Sender<Arc<FeedItem>>;

/// The feed a client's clone currently reads, so the answers to that client's own writes can
/// travel behind the updates they caused (`await_idle` relies on that order). Weak: it must
/// not keep a dropped feed open.
pub(crate) type FeedSlot = Arc<Mutex<Option<mpsc::WeakSender<Arc<FeedItem>>>>>;

/// Sends a client's answer behind the updates of its clone's feed if there is one, else
/// straight to its queue.
pub(crate) fn answer(
    rt: &tokio::runtime::Handle,
    slot: Option<&FeedSlot>,
    tx: &mpsc::Sender<Bytes>,
    encoding: Encoding,
    msg: ServerMsg,
) {
    let feed = slot.and_then(|s| {
        s.lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(mpsc::WeakSender::upgrade)
    });
    let msg = match feed {
        Some(f) => match f.try_send(FeedItem::new(msg)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i)) => {
                match Arc::try_unwrap(i) {
                    Ok(item) => item.msg,
                    Err(_) => return,
                }
            }
        },
        None => msg,
    };
    if let Some(b) = crate::hub::encode_server_msg(encoding, &msg) {
        deliver(rt, tx, b);
    }
}

/// A feed that stops: answers still queued in it go straight to the client.
fn drain_answers(
    rx: &mut mpsc::Receiver<Arc<FeedItem>>,
    out: &mpsc::Sender<Bytes>,
    target: FeedTarget,
) {
    let rt = tokio::runtime::Handle::current();
    while let Ok(item) = rx.try_recv() {
        if matches!(item.msg, ServerMsg::Response { .. }) {
            if let Some(b) = item.bytes(target) {
                deliver(&rt, out, b);
            }
        }
    }
}

/// The store requests one connection (client or peer link) has waiting for their answers.
/// Each request holds a [`Ticket`] until its answer goes out; the connection's reader calls
/// [`InFlight::room`] between frames and stops reading while the limit is reached, so a
/// client that sends faster than the stores (or the disk) answer is slowed down by TCP
/// instead of growing the stores' queues.
#[derive(Debug)]
pub(crate) struct InFlight {
    n: std::sync::atomic::AtomicUsize,
    limit: usize,
    freed: tokio::sync::Notify,
    metrics: Arc<crate::metrics::Metrics>,
}

/// One store request in flight; dropping it (the answer went out, or never will) frees it.
#[derive(Debug)]
pub(crate) struct Ticket(Arc<InFlight>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.n.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0
            .metrics
            .store_requests_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.freed.notify_one();
    }
}

impl InFlight {
    pub(crate) fn new(limit: usize, metrics: Arc<crate::metrics::Metrics>) -> Arc<InFlight> {
        Arc::new(InFlight {
            n: Default::default(),
            limit: limit.max(1),
            freed: tokio::sync::Notify::new(),
            metrics,
        })
    }

    pub(crate) fn ticket(self: &Arc<Self>) -> Ticket {
        self.n.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        crate::metrics::Metrics::add(&self.metrics.store_requests_in_flight, 1);
        Ticket(self.clone())
    }

    /// Requests still to be answered (an answer being delivered still counts).
    pub(crate) fn count(&self) -> usize {
        self.n.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until fewer than the limit are in flight; false if `stop` fired first.
    pub(crate) async fn room(&self, stop: &CancellationToken) -> bool {
        let mut counted = false;
        while self.n.load(std::sync::atomic::Ordering::Acquire) >= self.limit {
            if !counted {
                counted = true;
                crate::metrics::Metrics::add(&self.metrics.store_backpressure_total, 1);
            }
            // `notify_one` keeps a permit when nobody waits, so no wake-up is lost.
            tokio::select! {
                _ = self.freed.notified() => {}
                _ = stop.cancelled() => return false,
            }
        }
        true
    }
}

/// Commands a store task understands.
pub(crate) enum Cmd {
    /// An operation from a client, a peer or the Rust API.
    Op { op: StoreOp, reply: Reply },
    /// A new clone: the store sends a snapshot and then every update into `feed`; `reply`
    /// says whether that worked (a relay without a master answers `no_such_master`). With
    /// `since` (the clone holds that master's state as of that update), only the updates
    /// since and `CloneCurrent` when the store still has them ([`Recent`]).
    Attach {
        feed: Feed,
        reply: Reply,
        since: Option<(NodeId, u64)>,
    },
    /// From the peer this relay follows.
    Peer { from: NodeId, msg: PeerMsg },
    /// A direct peer went away.
    PeerGone(NodeId),
    /// From the uplink that feeds a `zeek:` store (ZU-17).
    Table(TableCmd),
}

/// What an uplink tells the store that mirrors a Zeek table.
#[derive(Debug)]
pub(crate) enum TableCmd {
    /// A batch of changes, applied at once and in order.
    Apply(Vec<crate::uplink::table::TableChange>),
    /// The uplink lost Zeek: clones see the store as stale until it is back.
    Lost,
    /// The uplink is back: what Zeek sends next rebuilds the store.
    Rebuild,
    /// Zeek re-sent the whole table: keys it did not re-send are gone.
    Rebuilt,
}

/// Answers every command still queued for a store task that ends, so no caller waits
/// forever.
pub(crate) fn fail_queued(rx: &mut mpsc::UnboundedReceiver<Cmd>) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        let gone = || error(ErrorCode::NoSuchMaster, "the store was closed");
        match cmd {
            Cmd::Op { reply, .. } | Cmd::Attach { reply, .. } => reply(Err(gone())),
            Cmd::Peer { .. } | Cmd::PeerGone(_) | Cmd::Table(_) => {}
        }
    }
}

/// A handle to a store task.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    pub is_master: bool,
}

impl StoreHandle {
    pub(crate) fn send(&self, cmd: Cmd) {
        if let Err(mpsc::error::SendError(cmd)) = self.tx.send(cmd) {
            let gone = || error(ErrorCode::NoSuchMaster, "the store was closed");
            match cmd {
                Cmd::Op { reply, .. } | Cmd::Attach { reply, .. } => reply(Err(gone())),
                Cmd::Peer { .. } | Cmd::PeerGone(_) | Cmd::Table(_) => {}
            }
        }
    }

    pub(crate) fn op(&self, op: StoreOp, reply: Reply) {
        self.send(Cmd::Op { op, reply });
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// What the stores need of their endpoint: the peering table (relays follow masters on
/// peers), metrics, the task tracker and shutdown token, and their limits.
pub(crate) struct StoreEnv {
    pub peering: Arc<Peering>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub tasks: tokio_util::task::TaskTracker,
    pub shutdown: CancellationToken,
    /// Where SQLite masters of clients live.
    pub data_dir: std::path::PathBuf,
    /// Largest entry a write may leave (`--store-max-value`); 0 = no limit.
    pub max_value: u64,
    /// Masters beyond which clients may create no more (`--max-stores`).
    pub max_stores: usize,
    map: Mutex<HashMap<String, StoreHandle>>,
}

impl StoreEnv {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoreHandle>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets `name` if its task ended (a relay that closed), so names asked for once do not
    /// stay in the map.
    pub(crate) fn forget_closed(&self, name: &str) {
        let mut map = self.lock();
        if map.get(name).is_some_and(StoreHandle::is_closed) {
            map.remove(name);
        }
    }
}

/// The stores of one endpoint.
pub struct Stores {
    env: Arc<StoreEnv>,
    /// Held while a master is created, so a store's file is opened once (see
    /// [`Stores::attach_master`]).
    opening: tokio::sync::Mutex<()>,
    /// The SQLite file of each master (canonical path -> store name).
    files: Mutex<HashMap<std::path::PathBuf, String>>,
    /// Feeds this endpoint serves to peers' relays, by (peer, store).
    peer_feeds: Mutex<HashMap<(NodeId, String), CancellationToken>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("names", &self.names())
            .finish()
    }
}

/// Store names: non-empty, no control characters, at most 255 bytes.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(error(
            ErrorCode::InvalidData,
            format!("invalid store name {name:?}: 1..=255 bytes without control characters"),
        ));
    }
    Ok(())
}

impl Stores {
    pub(crate) fn new(
        peering: Arc<Peering>,
        metrics: Arc<crate::metrics::Metrics>,
        tasks: tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
        config: &crate::config::Config,
    ) -> Stores {
        Stores {
            env: Arc::new(StoreEnv {
                peering,
                metrics,
                tasks,
                shutdown,
                data_dir: config.data_dir.clone(),
                max_value: config.store_max_value,
                max_stores: config.max_stores,
                map: Mutex::default(),
            }),
            opening: Default::default(),
            files: Default::default(),
            peer_feeds: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoreHandle>> {
        self.env.lock()
    }

    /// Names of the stores held here (masters and relays), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, h)| !h.is_closed())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// Names of the master stores held here, sorted.
    pub fn masters(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, h)| h.is_master && !h.is_closed())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    pub(crate) fn get(&self, name: &str) -> Option<StoreHandle> {
        self.lock().get(name).filter(|h| !h.is_closed()).cloned()
    }

    /// Creates the master `name`, or returns the one that exists (ZB-44). A relay of that name
    /// (a clone of a master elsewhere) or a master on a direct peer means `master_exists`.
    /// `by_client`: asked for over the client protocol, so its file is chosen by the gateway
    /// (see [`sqlite::SqliteOptions::parse`]). Attaches are serialised: however many race
    /// for one name, its file is opened once, and no two stores share a file.
    pub(crate) async fn attach_master(
        &self,
        name: &str,
        backend: Backend,
        options: &Data,
        by_client: bool,
    ) -> Result<StoreHandle, StoreError> {
        validate_name(name)?;
        let _opening = self.opening.lock().await;
        if let Some(h) = self.get(name) {
            return if h.is_master {
                Ok(h)
            } else {
                Err(error(
                    ErrorCode::MasterExists,
                    format!("store {name} is a clone of a master on another endpoint"),
                ))
            };
        }
        if by_client && name.starts_with(crate::uplink::table::STORE_PREFIX) {
            return Err(error(
                ErrorCode::ReadOnly,
                format!(
                    "store names starting with {:?} mirror Zeek tables; clients cannot create them",
                    crate::uplink::table::STORE_PREFIX
                ),
            ));
        }
        if by_client && self.masters().len() >= self.env.max_stores {
            return Err(error(
                ErrorCode::BackendFailure,
                format!(
                    "limit of {} master stores reached (--max-stores)",
                    self.env.max_stores
                ),
            ));
        }
        if self.env.peering.store_master_elsewhere(name) {
            return Err(error(
                ErrorCode::MasterExists,
                format!("a peer already has a master for {name}"),
            ));
        }
        let mut file = None;
        let backend_state = match backend {
            Backend::Memory => None,
            Backend::Sqlite => {
                let o = sqlite::SqliteOptions::parse(options, &self.env.data_dir, name, by_client)?;
                // A file in use exists, so only an existing file can be another store's.
                if let Ok(key) = std::fs::canonicalize(&o.path) {
                    if let Some((_, other)) = self
                        .files
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .find(|(f, other)| **f == key && self.get(other).is_some())
                    {
                        return Err(error(
                            ErrorCode::BackendFailure,
                            format!("{} is the file of store {other}", o.path.display()),
                        ));
                    }
                }
                let path = o.path.clone();
                let store = name.to_owned();
                let opened = tokio::task::spawn_blocking(move || sqlite::open(&o, &store))
                    .await
                    .map_err(|e| error(ErrorCode::BackendFailure, e.to_string()))??;
                crate::metrics::Metrics::add(&self.env.metrics.store_files_opened_total, 1);
                file = std::fs::canonicalize(&path).ok();
                Some(opened)
            }
        };
        let mut map = self.lock();
        map.retain(|_, h| !h.is_closed());
        let h = master::spawn(&self.env, name, backend_state);
        map.insert(name.to_owned(), h.clone());
        drop(map);
        if let Some(f) = file {
            let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
            files.retain(|_, n| self.get(n).is_some());
            files.insert(f, name.to_owned());
        }
        self.env.peering.set_local_masters(self.masters());
        tracing::info!(store = name, ?backend, "master store attached");
        Ok(h)
    }

    /// The read-only master that mirrors the Zeek table of store `name` (`zeek:<id>`),
    /// created on first use (ZU-17). Gateways uplinked to the same Zeek each keep their own
    /// copy: it is not a client's master, so neither `--max-stores` nor another endpoint's
    /// master of that name prevents it.
    pub(crate) fn zeek_table(&self, name: &str) -> Result<StoreHandle, StoreError> {
        validate_name(name)?;
        let mut map = self.lock();
        if let Some(h) = map.get(name).filter(|h| !h.is_closed() && h.is_master) {
            return Ok(h.clone());
        }
        map.retain(|_, h| !h.is_closed());
        // A relay of that name (a clone of a peer's copy) gives way to the local copy; its
        // clones re-attach to the master here.
        let h = master::spawn_read_only(&self.env, name);
        map.insert(name.to_owned(), h.clone());
        drop(map);
        self.env.peering.set_local_masters(self.masters());
        tracing::info!(store = name, "zeek table store created");
        Ok(h)
    }

    /// The store a clone of `name` should follow: the master here, a relay that already
    /// follows it, or a new relay that looks for it on the direct peers.
    pub(crate) fn source(&self, name: &str) -> Result<StoreHandle, StoreError> {
        validate_name(name)?;
        let mut map = self.lock();
        if let Some(h) = map.get(name).filter(|h| !h.is_closed()) {
            return Ok(h.clone());
        }
        // A relay only when a peer could have the master: with no direct peer and no peering
        // being set up, the answer is known now (and costs no task).
        if self.env.peering.direct_peers().is_empty() && !self.env.peering.outbound_pending() {
            return Err(error(
                ErrorCode::NoSuchMaster,
                format!("no master store {name} on this endpoint and no peer to ask"),
            ));
        }
        let h = relay::spawn(&self.env, name);
        map.insert(name.to_owned(), h.clone());
        Ok(h)
    }

    /// Entries in the map, closed or not (for tests of the clean-up).
    pub(crate) fn entries(&self) -> usize {
        self.lock().len()
    }

    /// A store message from a direct peer.
    /// Requests of the peer hold tickets of `inflight`, the link's backpressure.
    pub(crate) fn on_peer_msg(&self, from: NodeId, msg: PeerMsg, inflight: &Arc<InFlight>) {
        match msg {
            PeerMsg::StoreAttach { store } => {
                let Some(link) = self.env.peering.link_tx(from) else {
                    return;
                };
                // Only masters and relays that are already following serve peers: a relay
                // never starts a search on behalf of a peer (no loops in cyclic graphs).
                let Some(h) = self.get(&store) else {
                    let b = PeerMsg::StoreMissing { store };
                    let _ = link.try_send(encode_peer(&b));
                    return;
                };
                let stop = self.env.peering.link_closed(from);
                if let Some(old) = self
                    .peer_feeds
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((from, store.clone()), stop.clone())
                {
                    // A re-attach (the relay saw a gap): the new feed replaces the old one.
                    old.cancel();
                }
                let missing = link.clone();
                let name = store.clone();
                let ticket = inflight.ticket();
                self.spawn_feed(
                    h,
                    link,
                    (FeedTarget::Peer, None),
                    stop,
                    Box::new(move |r| {
                        if r.is_err() {
                            let _ = missing
                                .try_send(encode_peer(&PeerMsg::StoreMissing { store: name }));
                        }
                        drop(ticket);
                    }),
                    None,
                );
            }
            PeerMsg::StoreDetach { store } => {
                if let Some(t) = self
                    .peer_feeds
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(from, store))
                {
                    t.cancel();
                }
            }
            PeerMsg::StoreRequest { id, store, op } => {
                let Some(link) = self.env.peering.link_tx(from) else {
                    return;
                };
                let rt = tokio::runtime::Handle::current();
                let ticket = inflight.ticket();
                let reply: Reply = Box::new(move |r| {
                    let b = encode_peer(&PeerMsg::StoreResponse {
                        id,
                        result: to_failure(r),
                    });
                    deliver(&rt, &link, b);
                    drop(ticket);
                });
                match self.get(&store) {
                    Some(h) => h.op(op, reply),
                    None => reply(Err(error(
                        ErrorCode::NoSuchMaster,
                        format!("no store {store} on this endpoint"),
                    ))),
                }
            }
            PeerMsg::StoreMissing { ref store }
            | PeerMsg::StoreSnapshot { ref store, .. }
            | PeerMsg::StoreUpdate { ref store, .. }
            | PeerMsg::StoreMaster { ref store, .. } => {
                if let Some(h) = self.get(store).filter(|h| !h.is_master) {
                    h.send(Cmd::Peer { from, msg });
                }
            }
            PeerMsg::StoreResponse { .. } => {
                // Responses carry no store name: every relay checks its own request ids.
                for h in self.relays() {
                    h.send(Cmd::Peer {
                        from,
                        msg: msg.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    fn relays(&self) -> Vec<StoreHandle> {
        self.lock()
            .values()
            .filter(|h| !h.is_master && !h.is_closed())
            .cloned()
            .collect()
    }

    /// A direct peer is gone: relays following it look for another master.
    pub(crate) fn peer_gone(&self, node: NodeId) {
        self.peer_feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _), _| *n != node);
        for h in self.relays() {
            h.send(Cmd::PeerGone(node));
        }
    }

    /// Drops every store (shutdown): tasks end, SQLite writers commit what they have.
    pub(crate) fn close_all(&self) {
        self.lock().clear();
    }
}

/// Queues `bytes` on a connection's outbound queue from any thread (replies may run on the
/// SQLite writer thread): at once if there is room, else from a task on `rt` that waits for
/// room. Answers are never dropped.
pub(crate) fn deliver(rt: &tokio::runtime::Handle, tx: &mpsc::Sender<Bytes>, bytes: Bytes) {
    if let Err(mpsc::error::TrySendError::Full(b)) = tx.try_send(bytes) {
        let tx = tx.clone();
        rt.spawn(async move {
            let _ = tx.send(b).await;
        });
    }
}

pub(crate) fn encode_peer(msg: &PeerMsg) -> Bytes {
    Bytes::from(broker_wasm::binary::to_vec(msg).expect("binary encoding cannot fail"))
}

impl Stores {
    /// Feeds a clone: attaches to `store` and forwards the snapshot and every update into `out`
    /// until `stop`. A clone that falls behind (its feed overflowed) is dropped by the store and
    /// re-attached here, which gives it a fresh snapshot: the replica on the other side sees the
    /// difference and nothing is lost. `attached` learns the outcome of the first attach; the
    /// first attach starts from `since` (a clone that holds that state) when given.
    pub(crate) fn spawn_feed(
        &self,
        store: StoreHandle,
        out: mpsc::Sender<Bytes>,
        (target, mut since): (FeedTarget, Option<(NodeId, u64)>),
        stop: CancellationToken,
        attached: Reply,
        slot: Option<FeedSlot>,
    ) {
        let metrics = self.env.metrics.clone();
        self.env.tasks.spawn(async move {
        // Whoever holds `stop` sees the feed ended, however it ended.
        let _ended = stop.clone().drop_guard();
        let mut attached = Some(attached);
        loop {
            let (tx, mut rx) = mpsc::channel::<Arc<FeedItem>>(FEED_CAP);
            if let Some(s) = &slot {
                *s.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx.downgrade());
            }
            let (ok_tx, ok_rx) = oneshot::channel();
            store.send(Cmd::Attach {
                feed: tx,
                // Only the first attach: after falling behind, a snapshot.
                since: since.take(),
                reply: Box::new(move |r| {
                    let _ = ok_tx.send(r);
                }),
            });
            let result = tokio::select! {
                r = ok_rx => r.unwrap_or_else(|_| Err(error(ErrorCode::NoSuchMaster, "the store was closed"))),
                _ = stop.cancelled() => return,
            };
            let failed = result.is_err();
            if let Some(a) = attached.take() {
                a(result);
            }
            if failed {
                return;
            }
            loop {
                let item = tokio::select! {
                    i = rx.recv() => i,
                    _ = stop.cancelled() => return drain_answers(&mut rx, &out, target),
                };
                let Some(item) = item else { break };
                let Some(b) = item.bytes(target) else { continue };
                tokio::select! {
                    r = out.send(b) => if r.is_err() { return },
                    _ = stop.cancelled() => return drain_answers(&mut rx, &out, target),
                }
            }
            if store.is_closed() {
                return;
            }
            crate::metrics::Metrics::add(&metrics.store_resyncs_total, 1);
            tracing::debug!("clone fell behind; resynchronising");
        }
    });
    }
}
