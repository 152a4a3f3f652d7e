//! A relay: this gateway's clone of a master that lives on a direct peer (ZB-47, ZB-58).
//!
//! It asks every direct peer for the store, follows the first that has it (snapshot, then
//! ordered updates), and serves its own clones (sessions, other peers) from its replica with
//! the master's identity and sequence numbers, so a browser connected to this gateway sees
//! the same stream as one connected to the master's. Operations go to the master over the
//! peer link and the answers come back the same way. When the link breaks it looks again,
//! every [`RETRY`], and its clones get the new snapshot as a difference.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use broker_wasm::protocol::{PeerMsg, Response, ServerMsg, StoreEntry};
use broker_wasm::store::Replica;
use broker_wasm::{ErrorCode, NodeId};
use tokio::sync::mpsc;

use super::{encode_peer, error, Cmd, Feed, FeedItem, Reply, StoreHandle, CHUNK};

/// How often a relay without a master asks its peers again.
const RETRY: Duration = Duration::from_secs(1);
/// How long attaches and operations wait for a master before `no_such_master`.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a relay keeps following its master after its last clone went.
const LINGER: Duration = Duration::from_secs(30);

struct Relay {
    env: Arc<super::StoreEnv>,
    name: String,
    replica: Replica,
    /// The peer whose master (or relay) we follow.
    bound: Option<NodeId>,
    /// Peers asked and not yet answered.
    asked: HashSet<NodeId>,
    feeds: Vec<Feed>,
    /// The last updates relayed, for clones that come back (`AttachCloneSince`).
    recent: super::Recent,
    /// Attaches waiting for the first snapshot.
    waiting: Vec<(Feed, Reply)>,
    /// Operations waiting for a master.
    queued: Vec<(broker_wasm::protocol::StoreOp, Reply)>,
    pending: HashMap<u64, Reply>,
    next_id: u64,
    /// When the current search started (for FIND_TIMEOUT).
    searching_since: Option<tokio::time::Instant>,
}

pub(crate) fn spawn(env: &Arc<super::StoreEnv>, name: &str) -> StoreHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let r = Relay {
        env: env.clone(),
        name: name.to_owned(),
        replica: Replica::new(),
        bound: None,
        asked: HashSet::new(),
        feeds: Vec::new(),
        recent: super::Recent::default(),
        waiting: Vec::new(),
        queued: Vec::new(),
        pending: HashMap::new(),
        // Ids unique across relays: responses are offered to every relay.
        next_id: u64::from(rand::random::<u32>()) << 32,
        searching_since: None,
    };
    let stop = env.shutdown.child_token();
    env.tasks.spawn(run(r, rx, stop));
    StoreHandle {
        tx,
        is_master: false,
    }
}

async fn run(
    mut r: Relay,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    stop: tokio_util::sync::CancellationToken,
) {
    r.search();
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(c) => r.handle(c),
                None => break,
            },
            _ = retry.tick() => r.on_tick(),
            _ = stop.cancelled() => break,
        }
        if r.idle() {
            // Nobody follows this store through us any more. The relay stays a while, so a
            // clone that comes back (a reloaded page) catches up instead of a new snapshot.
            let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
            if r.bound.is_none() || since.elapsed() >= LINGER {
                break;
            }
        } else {
            idle_since = None;
        }
    }
    super::fail_queued(&mut rx);
    r.fail_waiting("the relay closed");
    for (_, reply) in r.pending.drain() {
        reply(Err(error(ErrorCode::NoSuchMaster, "the relay closed")));
    }
    if let Some(peer) = r.bound {
        if let Some(link) = r.env.peering.link_tx(peer) {
            let _ = link.try_send(encode_peer(&PeerMsg::StoreDetach {
                store: r.name.clone(),
            }));
        }
    }
    r.env.forget_closed(&r.name);
    tracing::debug!(store = r.name, "relay closed");
}

impl Relay {
    fn idle(&mut self) -> bool {
        self.feeds.retain(|f| !f.is_closed());
        self.feeds.is_empty()
            && self.waiting.is_empty()
            && self.queued.is_empty()
            && self.pending.is_empty()
            && self.searching_since.is_none()
    }

    fn search(&mut self) {
        self.asked = self.env.peering.direct_peers().into_iter().collect();
        if self.searching_since.is_none() {
            self.searching_since = Some(tokio::time::Instant::now());
        }
        for p in &self.asked {
            if let Some(link) = self.env.peering.link_tx(*p) {
                let _ = link.try_send(encode_peer(&PeerMsg::StoreAttach {
                    store: self.name.clone(),
                }));
            }
        }
    }

    fn on_tick(&mut self) {
        if self.bound.is_some() {
            return;
        }
        let timed_out = self
            .searching_since
            .is_some_and(|t| t.elapsed() >= FIND_TIMEOUT);
        // Every direct peer said it has no such store: fail now, unless a peering is still
        // being set up (a gateway just started with --peer), which may bring the master.
        let all_missing = self.asked.is_empty()
            && self.searching_since.is_some()
            && !self.env.peering.outbound_pending();
        if timed_out || all_missing {
            self.fail_waiting(if timed_out {
                "no master found in time"
            } else {
                "no direct peer has a master for this store"
            });
        }
        if !self.feeds.is_empty() || self.searching_since.is_some() {
            // Our clones keep their caches, or attaches and operations wait: keep looking
            // for the master (peers may have appeared since).
            self.search();
        }
    }

    fn fail_waiting(&mut self, why: &str) {
        let e = || {
            error(
                ErrorCode::NoSuchMaster,
                format!("store {}: {why}", self.name),
            )
        };
        for (_, reply) in self.waiting.drain(..) {
            reply(Err(e()));
        }
        for (_, reply) in self.queued.drain(..) {
            reply(Err(e()));
        }
        self.searching_since = None;
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Op { op, reply } => match self.bound {
                Some(peer) => self.forward(peer, op, reply),
                None => {
                    self.queued.push((op, reply));
                    if self.searching_since.is_none() {
                        self.search();
                    }
                }
            },
            Cmd::Attach { feed, reply, since } => {
                if self.bound.is_some() && self.replica.is_synced() {
                    let ours = self.replica.master().map(|m| (m, self.replica.seq()));
                    let caught_up = match (since, ours) {
                        (Some(since), Some(ours)) => {
                            self.recent.serve(&self.name, ours, since, &feed)
                        }
                        _ => false,
                    };
                    if caught_up {
                        crate::metrics::Metrics::add(
                            &self.env.metrics.store_clone_catchups_total,
                            1,
                        );
                        self.feeds.push(feed);
                        reply(Ok(Response::Done));
                    } else if self.send_snapshot(&feed) {
                        self.feeds.push(feed);
                        reply(Ok(Response::Done));
                    } else {
                        reply(Err(error(ErrorCode::Unspecified, "feed full")));
                    }
                } else {
                    self.waiting.push((feed, reply));
                    if self.searching_since.is_none() {
                        self.search();
                    }
                }
            }
            Cmd::Peer { from, msg } => self.on_peer(from, msg),
            Cmd::Table(_) => {}
            Cmd::PeerGone(node) => {
                self.asked.remove(&node);
                if self.bound == Some(node) {
                    self.bound = None;
                    self.replica.unsync();
                    self.announce(false);
                    for (_, reply) in self.pending.drain() {
                        reply(Err(error(
                            ErrorCode::NoSuchMaster,
                            "lost the connection to the master",
                        )));
                    }
                    self.search();
                }
            }
        }
    }

    /// Tells our clones whether we can reach the master.
    fn announce(&mut self, reachable: bool) {
        let item = FeedItem::new(ServerMsg::StoreMaster {
            store: self.name.clone(),
            reachable,
        });
        self.feeds.retain(|f| f.try_send(item.clone()).is_ok());
    }

    fn forward(&mut self, peer: NodeId, op: broker_wasm::protocol::StoreOp, reply: Reply) {
        let Some(link) = self.env.peering.link_tx(peer) else {
            return reply(Err(error(ErrorCode::NoSuchMaster, "master unreachable")));
        };
        self.next_id += 1;
        let id = self.next_id;
        let b = encode_peer(&PeerMsg::StoreRequest {
            id,
            store: self.name.clone(),
            op,
        });
        self.pending.insert(id, reply);
        if let Err(mpsc::error::TrySendError::Full(b)) = link.try_send(b) {
            tokio::spawn(async move {
                let _ = link.send(b).await;
            });
        }
    }

    fn send_snapshot(&self, feed: &Feed) -> bool {
        let Some(master) = self.replica.master() else {
            return false;
        };
        let entries: Vec<StoreEntry> = self
            .replica
            .entries()
            .iter()
            .map(|(k, e)| StoreEntry {
                key: k.clone(),
                value: e.value.clone(),
                expiry: e.expiry,
            })
            .collect();
        let n = entries.len().div_ceil(CHUNK).max(1);
        let mut it = entries.into_iter();
        for i in 0..n {
            let chunk: Vec<StoreEntry> = it.by_ref().take(CHUNK).collect();
            let item = FeedItem::new(ServerMsg::Snapshot {
                store: self.name.clone(),
                master,
                seq: self.replica.seq(),
                entries: chunk,
                more: i + 1 < n,
            });
            if feed.try_send(item).is_err() {
                return false;
            }
        }
        true
    }

    fn on_peer(&mut self, from: NodeId, msg: PeerMsg) {
        match msg {
            PeerMsg::StoreMissing { .. } => {
                self.asked.remove(&from);
            }
            PeerMsg::StoreSnapshot {
                master,
                seq,
                entries,
                more,
                ..
            } => {
                match self.bound {
                    None => self.bound = Some(from),
                    Some(b) if b != from => {
                        // Someone else answered first: we follow one source only.
                        if let Some(link) = self.env.peering.link_tx(from) {
                            let _ = link.try_send(encode_peer(&PeerMsg::StoreDetach {
                                store: self.name.clone(),
                            }));
                        }
                        return;
                    }
                    Some(_) => {}
                }
                let before = self.replica.master();
                let applied = self.replica.snapshot_chunk(master, seq, entries, more);
                if applied.synced {
                    // Updates kept so far are another master's, or may not reach this
                    // snapshot (the master sends it again when asked again).
                    if before != Some(master) {
                        self.recent.clear();
                    } else {
                        self.recent.rebase(seq);
                    }
                    self.searching_since = None;
                    self.asked.clear();
                    // Everyone gets the new state; their replicas compute the difference.
                    let feeds = std::mem::take(&mut self.feeds);
                    for f in feeds {
                        if self.send_snapshot(&f) {
                            self.feeds.push(f);
                        }
                    }
                    for (f, reply) in std::mem::take(&mut self.waiting) {
                        if self.send_snapshot(&f) {
                            self.feeds.push(f);
                            reply(Ok(Response::Done));
                        } else {
                            reply(Err(error(ErrorCode::Unspecified, "feed full")));
                        }
                    }
                    for (op, reply) in std::mem::take(&mut self.queued) {
                        self.forward(from, op, reply);
                    }
                }
            }
            PeerMsg::StoreUpdate { seq, update, .. } => {
                if self.bound != Some(from) {
                    return;
                }
                match self.replica.update(seq, update.clone()) {
                    Ok(_) => {
                        let item = FeedItem::new(ServerMsg::StoreUpdate {
                            store: self.name.clone(),
                            seq,
                            update,
                        });
                        self.recent.push(seq, item.clone());
                        self.feeds.retain(|f| f.try_send(item.clone()).is_ok());
                    }
                    Err(gap) => {
                        tracing::warn!(store = self.name, ?gap, "relay missed updates; resyncing");
                        if let Some(link) = self.env.peering.link_tx(from) {
                            let _ = link.try_send(encode_peer(&PeerMsg::StoreAttach {
                                store: self.name.clone(),
                            }));
                        }
                    }
                }
            }
            // The relay we follow lost (or found) the master: so did we.
            PeerMsg::StoreMaster { reachable, .. } if self.bound == Some(from) => {
                self.announce(reachable);
            }
            PeerMsg::StoreResponse { id, result } => {
                if let Some(reply) = self.pending.remove(&id) {
                    reply(result.map_err(|f| match f {
                        broker_wasm::protocol::Failure::Broker(e) => e,
                        broker_wasm::protocol::Failure::Namespace { context, .. } => {
                            error(ErrorCode::Unspecified, context)
                        }
                    }));
                }
            }
            _ => {}
        }
    }
}
