//! Peering between gateways over the native protocol (ZB-63..69).
//!
//! Each gateway floods an *advert* (its direct peers and its local filter, with a version) to
//! the whole peer graph. From the newest advert of every endpoint each gateway knows which
//! endpoints are reachable (a breadth-first search over links both ends confirm) and, per
//! topic prefix, which direct links lead towards an endpoint that wants it. A message gets an
//! `(origin, seq)` id where it enters the graph and goes hop by hop only towards interested
//! endpoints; each gateway drops ids it has already seen, so line, ring and mesh topologies
//! deliver every message exactly once to each subscriber, and a TTL bounds the hops anyway.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_wasm::protocol::{
    self, Encoding, EndpointInfo, NetworkInfo, PeerInfo, PeerMsg, PeerStatus, Publish,
};
use broker_wasm::topic::SubscriptionIndex;
use broker_wasm::{ErrorCode, NodeId, StatusCode};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hub::{frame_of, Exclude};
use crate::metrics::Metrics;
use crate::Shared;

/// Hops a message may take before it is dropped (Broker's default TTL, ZB-01).
pub const DEFAULT_TTL: u8 = 16;
/// Width of the duplicate-suppression window per origin, in messages.
const WINDOW: u64 = 1 << 16;
/// How long the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an unpeer waits for the other side's acknowledgement (ZB-05).
const UNPEER_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest batch of messages in one frame on a peer link.
const MAX_BATCH: usize = 1024;

/// Identifies a link for the lifetime of the endpoint.
pub type LinkId = u64;

/// Why a peering request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("cannot reach peer {0}")]
    Unavailable(String),
    #[error("peer {0} speaks an incompatible protocol")]
    Incompatible(String),
    #[error("no peering with {0}")]
    Invalid(String),
    #[error("the endpoint is shutting down")]
    ShuttingDown,
    #[error("timed out waiting for peer {0}")]
    Timeout(String),
}

impl PeerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            PeerError::Unavailable(_) => ErrorCode::PeerUnavailable,
            PeerError::Incompatible(_) => ErrorCode::PeerIncompatible,
            PeerError::Invalid(_) => ErrorCode::PeerInvalid,
            PeerError::ShuttingDown => ErrorCode::ShuttingDown,
            PeerError::Timeout(_) => ErrorCode::PeerTimeout,
        }
    }
}

#[derive(Debug)]
struct Link {
    node: NodeId,
    tx: mpsc::Sender<Bytes>,
    network: NetworkInfo,
    outbound: bool,
    close: CancellationToken,
    /// Set when this endpoint ends the peering (unpeer, overflow, shutdown): PeerRemoved
    /// instead of PeerLost (ZB-68).
    removed_by_us: Arc<AtomicBool>,
    bye_ack: Mutex<Option<oneshot::Sender<()>>>,
}

#[derive(Debug, Clone)]
struct Advert {
    version: u64,
    peers: Vec<NodeId>,
    topics: Vec<String>,
    masters: Vec<String>,
}

/// Sliding window of seen sequence numbers of one origin.
#[derive(Debug, Default)]
struct SeenWindow {
    /// One past the highest sequence number seen (0: none yet).
    top: u64,
    bits: Vec<u64>,
}

/// What a sequence number from a peer turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not seen before: deliver it.
    New,
    /// Seen before, or too old to tell: drop it.
    Duplicate,
    /// Far behind everything seen from its origin: the window started over from it (a
    /// forged or corrupt number had pushed the window ahead); deliver it.
    Reset,
    /// No origin ever sends it (at or above [`MAX_SEQ`]): drop it.
    Invalid,
}

/// Sequence numbers start at 1 and grow by one per message an origin sends; no endpoint gets
/// anywhere near this, so a number at or above it is forged or corrupt.
const MAX_SEQ: u64 = 1 << 62;
/// A number this far behind the newest one of its origin cannot be a late message (that many
/// messages are never in flight): the window was pushed ahead by a forged number, and starts
/// over instead of dropping every later message of that origin.
const RESET_DISTANCE: u64 = 1 << 32;

impl SeenWindow {
    /// Marks `seq` seen.
    fn insert(&mut self, seq: u64) -> Seen {
        if seq >= MAX_SEQ {
            return Seen::Invalid;
        }
        if self.bits.is_empty() {
            self.bits = vec![0; (WINDOW / 64) as usize];
        }
        let mut outcome = Seen::New;
        if self.top > RESET_DISTANCE && seq < self.top - RESET_DISTANCE {
            self.bits.fill(0);
            self.top = 0;
            outcome = Seen::Reset;
        }
        // top <= MAX_SEQ and seq < MAX_SEQ: nothing below overflows.
        if seq + WINDOW <= self.top {
            return Seen::Duplicate;
        }
        if seq >= self.top {
            // Slide: clear the slots between the old top and the new one.
            let advance = (seq + 1 - self.top).min(WINDOW);
            for s in self.top..self.top + advance {
                let i = (s % WINDOW) as usize;
                self.bits[i / 64] &= !(1 << (i % 64));
            }
            self.top = seq + 1;
        }
        let i = (seq % WINDOW) as usize;
        let mask = 1u64 << (i % 64);
        if self.bits[i / 64] & mask != 0 {
            return Seen::Duplicate;
        }
        self.bits[i / 64] |= mask;
        outcome
    }
}

/// Windows kept for origins the peer graph does not (or no longer) show, before they are
/// pruned: forwarded messages may name any origin, reachable or not.
const MAX_UNKNOWN_ORIGINS: usize = 64;

/// An outbound peering we keep alive (ZB-03, ZB-67).
#[derive(Debug)]
struct Outbound {
    cancel: CancellationToken,
    status: PeerStatus,
    node: Option<NodeId>,
    /// `peer()` calls waiting for the first outcome of this peering.
    waiters: Vec<oneshot::Sender<Result<NodeId, PeerError>>>,
}

#[derive(Debug, Default)]
struct State {
    links: HashMap<LinkId, Arc<Link>>,
    by_node: HashMap<NodeId, LinkId>,
    adverts: HashMap<NodeId, Advert>,
    my_version: u64,
    my_topics: Vec<String>,
    my_masters: Vec<String>,
    reachable: HashSet<NodeId>,
    /// Topic prefix -> first-hop links towards endpoints that want it.
    routes: SubscriptionIndex<LinkId>,
    seen: HashMap<NodeId, SeenWindow>,
    outbound: HashMap<String, Outbound>,
}

/// The peering layer of one endpoint.
#[derive(Debug)]
pub struct Peering {
    me: NodeId,
    state: Mutex<State>,
    /// Notified whenever a direct link is added or removed.
    pub changed: tokio::sync::Notify,
    next_link: AtomicU64,
    next_seq: AtomicU64,
}

/// Result of one connection attempt.
enum Attempt {
    Peered(NodeId, oneshot::Receiver<bool>),
    Failed(PeerError),
}

impl Peering {
    pub fn new(me: NodeId) -> Peering {
        Peering {
            me,
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
            next_link: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Direct peers (ZB-06): established links and outbound peerings still connecting.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let st = self.lock();
        let mut out: Vec<PeerInfo> = st
            .links
            .values()
            .map(|l| PeerInfo {
                endpoint: EndpointInfo {
                    node: Some(l.node),
                    network: Some(l.network.clone()),
                },
                status: PeerStatus::Peered,
                outbound: l.outbound,
            })
            .collect();
        for (addr, o) in &st.outbound {
            if o.status != PeerStatus::Peered {
                out.push(PeerInfo {
                    endpoint: EndpointInfo {
                        node: o.node,
                        network: parse_network(addr),
                    },
                    status: o.status,
                    outbound: true,
                });
            }
        }
        out
    }

    /// True while a peering this endpoint started is not established yet (connecting or
    /// reconnecting).
    pub(crate) fn outbound_pending(&self) -> bool {
        self.lock()
            .outbound
            .values()
            .any(|o| o.status != PeerStatus::Peered)
    }

    /// The union of the filters of directly peered endpoints (ZB-07).
    pub fn peer_subscriptions(&self) -> Vec<String> {
        let st = self.lock();
        let all = st
            .by_node
            .keys()
            .filter_map(|n| st.adverts.get(n))
            .flat_map(|a| a.topics.iter().cloned());
        broker_wasm::topic::normalize(all)
    }

    /// Endpoints reachable through the peer graph.
    pub fn reachable(&self) -> Vec<NodeId> {
        self.lock().reachable.iter().copied().collect()
    }

    /// True if some link leads towards an endpoint that wants `topic`.
    pub fn wants(&self, topic: &str) -> bool {
        self.lock().routes.any_match(topic)
    }

    /// Our local filter changed: advertise it.
    pub fn set_local_filter(&self, shared: &Shared, topics: Vec<String>) {
        let mut st = self.lock();
        if st.my_topics == topics {
            return;
        }
        st.my_topics = topics;
        self.readvertise(&mut st, shared);
    }

    fn my_advert(&self, st: &State) -> PeerMsg {
        PeerMsg::Advert {
            origin: self.me,
            version: st.my_version,
            peers: st.by_node.keys().copied().collect(),
            topics: st.my_topics.clone(),
            masters: st.my_masters.clone(),
        }
    }

    /// Our master stores changed: advertise them.
    pub fn set_local_masters(&self, shared: &Shared, masters: Vec<String>) {
        let mut st = self.lock();
        if st.my_masters == masters {
            return;
        }
        st.my_masters = masters;
        self.readvertise(&mut st, shared);
    }

    /// True if another reachable endpoint advertises a master store `name` (ZB-44).
    pub fn store_master_elsewhere(&self, name: &str) -> bool {
        let st = self.lock();
        st.adverts
            .iter()
            .any(|(n, a)| st.reachable.contains(n) && a.masters.iter().any(|m| m == name))
    }

    /// Duplicate-suppression windows held (one per origin seen from peers).
    pub fn seq_windows(&self) -> usize {
        self.lock().seen.len()
    }

    /// True while a link to `node` is established.
    fn has_link(&self, node: NodeId) -> bool {
        self.lock().by_node.contains_key(&node)
    }

    /// Waits until no link to `node` is established; false if `cancel` fired first.
    async fn link_gone(&self, node: NodeId, cancel: &CancellationToken) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.has_link(node) {
                return true;
            }
            tokio::select! {
                _ = changed => {}
                _ = cancel.cancelled() => return false,
            }
        }
    }

    /// Direct peers with an established link.
    pub fn direct_peers(&self) -> Vec<NodeId> {
        self.lock().by_node.keys().copied().collect()
    }

    /// The outbound queue of the link to direct peer `node`.
    pub(crate) fn link_tx(&self, node: NodeId) -> Option<mpsc::Sender<Bytes>> {
        let st = self.lock();
        let id = st.by_node.get(&node)?;
        st.links.get(id).map(|l| l.tx.clone())
    }

    /// A token cancelled when the link to `node` ends (already cancelled if there is none).
    pub(crate) fn link_closed(&self, node: NodeId) -> CancellationToken {
        let st = self.lock();
        match st.by_node.get(&node).and_then(|id| st.links.get(id)) {
            Some(l) => l.close.child_token(),
            None => {
                let t = CancellationToken::new();
                t.cancel();
                t
            }
        }
    }

    fn readvertise(&self, st: &mut State, shared: &Shared) {
        st.my_version += 1;
        let advert = encode_peer(&self.my_advert(st));
        for link in st.links.values() {
            let _ = link.tx.try_send(advert.clone());
        }
        self.recompute(st, shared);
    }

    /// Recomputes reachability and routes; emits EndpointDiscovered/Unreachable.
    fn recompute(&self, st: &mut State, shared: &Shared) {
        // Breadth-first search from us over links confirmed by both ends.
        let mut first_hop: HashMap<NodeId, LinkId> = HashMap::new();
        let mut queue = VecDeque::new();
        for (&node, &link) in &st.by_node {
            first_hop.insert(node, link);
            queue.push_back(node);
        }
        while let Some(n) = queue.pop_front() {
            let hop = first_hop[&n];
            let Some(adv) = st.adverts.get(&n) else {
                continue;
            };
            for &m in &adv.peers {
                if m == self.me || first_hop.contains_key(&m) {
                    continue;
                }
                let confirmed = st.adverts.get(&m).is_some_and(|a| a.peers.contains(&n));
                if confirmed {
                    first_hop.insert(m, hop);
                    queue.push_back(m);
                }
            }
        }
        let mut routes = SubscriptionIndex::new();
        for (node, hop) in &first_hop {
            if let Some(adv) = st.adverts.get(node) {
                for t in &adv.topics {
                    routes.insert(t, *hop);
                }
            }
        }
        st.routes = routes;
        let now: HashSet<NodeId> = first_hop.keys().copied().collect();
        for gone in st.reachable.difference(&now) {
            shared.emit_status(
                StatusCode::EndpointUnreachable,
                Some(*gone),
                None,
                "lost the last path to the endpoint",
            );
        }
        for new in now.difference(&st.reachable) {
            // Direct peers get their EndpointDiscovered when the link is added.
            if !st.by_node.contains_key(new) {
                shared.emit_status(
                    StatusCode::EndpointDiscovered,
                    Some(*new),
                    None,
                    "found a new endpoint",
                );
            }
        }
        // Forget adverts and duplicate windows of endpoints we cannot reach; they re-flood
        // when they come back (and a restarted endpoint has a new id anyway).
        st.adverts.retain(|n, _| now.contains(n));
        st.seen.retain(|n, _| now.contains(n));
        st.reachable = now;
    }

    fn on_advert(
        &self,
        st: &mut State,
        shared: &Shared,
        from: LinkId,
        origin: NodeId,
        advert: Advert,
    ) {
        if origin == self.me {
            return;
        }
        if st
            .adverts
            .get(&origin)
            .is_some_and(|a| a.version >= advert.version)
        {
            return;
        }
        let msg = encode_peer(&PeerMsg::Advert {
            origin,
            version: advert.version,
            peers: advert.peers.clone(),
            topics: advert.topics.clone(),
            masters: advert.masters.clone(),
        });
        st.adverts.insert(origin, advert);
        for (id, link) in &st.links {
            if *id != from {
                let _ = link.tx.try_send(msg.clone());
            }
        }
        self.recompute(st, shared);
    }

    /// A message entering the peer graph here (from this endpoint or one of its clients).
    pub fn originate(&self, publish: &Publish) {
        let st = self.lock();
        if st.links.is_empty() {
            return;
        }
        let mut hops = Vec::new();
        st.routes.lookup_into(&publish.topic, &mut hops);
        if hops.is_empty() {
            return;
        }
        let seq = self.next_seq.fetch_add(1, Relaxed);
        let msg = encode_peer(&PeerMsg::Forward {
            origin: self.me,
            seq,
            ttl: DEFAULT_TTL,
            topic: publish.topic.clone(),
            data: publish.data.clone(),
        });
        for hop in hops {
            if let Some(link) = st.links.get(&hop) {
                push_link(link, msg.clone());
            }
        }
    }

    /// A message from a peer: deliver locally unless seen before, and pass it on.
    fn on_forward(
        &self,
        shared: &Shared,
        from: LinkId,
        origin: NodeId,
        seq: u64,
        ttl: u8,
        publish: Publish,
    ) {
        {
            let mut st = self.lock();
            if origin == self.me {
                Metrics::add(&shared.metrics.duplicates_total, 1);
                return;
            }
            if !st.seen.contains_key(&origin)
                && !st.reachable.contains(&origin)
                && st.seen.len() >= st.reachable.len() + MAX_UNKNOWN_ORIGINS
            {
                let State {
                    seen, reachable, ..
                } = &mut *st;
                seen.retain(|n, _| reachable.contains(n));
            }
            match st.seen.entry(origin).or_default().insert(seq) {
                Seen::New => {}
                Seen::Duplicate => {
                    Metrics::add(&shared.metrics.duplicates_total, 1);
                    return;
                }
                Seen::Reset => {
                    Metrics::add(&shared.metrics.peer_seq_resets_total, 1);
                    tracing::warn!(%origin, seq, "sequence number far behind its origin's newest; duplicate window reset");
                }
                Seen::Invalid => {
                    Metrics::add(&shared.metrics.errors_total, 1);
                    tracing::warn!(%origin, seq, "dropped a message with an impossible sequence number");
                    return;
                }
            }
            if ttl > 1 {
                let mut hops = Vec::new();
                st.routes.lookup_into(&publish.topic, &mut hops);
                hops.retain(|h| *h != from);
                if !hops.is_empty() {
                    let msg = encode_peer(&PeerMsg::Forward {
                        origin,
                        seq,
                        ttl: ttl - 1,
                        topic: publish.topic.clone(),
                        data: publish.data.clone(),
                    });
                    for hop in hops {
                        if let Some(link) = st.links.get(&hop) {
                            push_link(link, msg.clone());
                        }
                    }
                }
            }
            // Still under the lock: a message that arrives over two paths (a mesh) is
            // delivered by whichever link reader saw it first, and the next message of that
            // origin must not overtake it on the other reader between the check and the
            // delivery.
            shared.hub.route(&publish, None, Exclude::None);
        }
    }

    /// The endpoint that dialed `link`.
    fn initiator(&self, link: &Link) -> NodeId {
        if link.outbound {
            self.me
        } else {
            link.node
        }
    }

    /// Registers an established link; `None` if it is redundant.
    ///
    /// Two gateways that dial each other (every node of a mesh lists every other) end up with
    /// two connections. Both sides keep the same one (ZB-63): the connection dialed by the
    /// endpoint with the smaller id. A newcomer that wins replaces the registered link, which
    /// closes without a status (the peering stands); one that loses is closed, and its
    /// dialer waits for the surviving link to end before it dials again.
    fn add_link(&self, shared: &Shared, link: Arc<Link>) -> Option<LinkId> {
        let mut st = self.lock();
        if link.node == self.me {
            return None;
        }
        if let Some(&old_id) = st.by_node.get(&link.node) {
            let preferred = self.me.min(link.node);
            let old = st.links.get(&old_id).cloned();
            let new_wins = self.initiator(&link) == preferred
                && old.as_ref().is_some_and(|o| self.initiator(o) != preferred);
            Metrics::add(&shared.metrics.peer_redundant_total, 1);
            if !new_wins {
                return None;
            }
            let id = self.next_link.fetch_add(1, Relaxed);
            if let Some(old) = old {
                old.removed_by_us.store(true, Relaxed);
                old.close.cancel();
            }
            st.by_node.insert(link.node, id);
            st.links.insert(id, link.clone());
            for (origin, a) in &st.adverts {
                let _ = link.tx.try_send(encode_peer(&PeerMsg::Advert {
                    origin: *origin,
                    version: a.version,
                    peers: a.peers.clone(),
                    topics: a.topics.clone(),
                    masters: a.masters.clone(),
                }));
            }
            let _ = link.tx.try_send(encode_peer(&self.my_advert(&st)));
            tracing::debug!(node = %link.node, "redundant connection replaced by the preferred one");
            drop(st);
            // Feeds and requests on the old connection are gone: relays look again.
            shared.stores.peer_gone(link.node);
            self.changed.notify_waiters();
            return Some(id);
        }
        let id = self.next_link.fetch_add(1, Relaxed);
        let node = link.node;
        let network = link.network.clone();
        st.by_node.insert(node, id);
        st.links.insert(id, link.clone());
        // ZB-23: EndpointDiscovered, then PeerAdded, before any data from the peer.
        if !st.reachable.contains(&node) {
            shared.emit_status(
                StatusCode::EndpointDiscovered,
                Some(node),
                Some(network.clone()),
                "found a new peer",
            );
        }
        shared.emit_status(
            StatusCode::PeerAdded,
            Some(node),
            Some(network),
            "handshake successful",
        );
        // Tell the newcomer everything we know, then tell everyone our new peer set.
        for (origin, a) in &st.adverts {
            let _ = link.tx.try_send(encode_peer(&PeerMsg::Advert {
                origin: *origin,
                version: a.version,
                peers: a.peers.clone(),
                topics: a.topics.clone(),
                masters: a.masters.clone(),
            }));
        }
        st.reachable.insert(node);
        self.readvertise(&mut st, shared);
        self.changed.notify_waiters();
        Some(id)
    }

    fn remove_link(&self, shared: &Shared, id: LinkId) {
        let mut st = self.lock();
        let Some(link) = st.links.remove(&id) else {
            return;
        };
        if st.by_node.get(&link.node) != Some(&id) {
            // Replaced by the preferred connection (see `add_link`): the peering stands.
            return;
        }
        st.by_node.remove(&link.node);
        let (code, why) = if link.removed_by_us.load(Relaxed) {
            (StatusCode::PeerRemoved, "removed the peering")
        } else {
            (StatusCode::PeerLost, "lost the connection to the peer")
        };
        shared.emit_status(code, Some(link.node), Some(link.network.clone()), why);
        shared.stores.peer_gone(link.node);
        // Drop the peer's own advert unless another path still confirms it.
        self.readvertise(&mut st, shared);
        self.changed.notify_waiters();
    }

    /// Ends the peering with the peer at `host:port` (ZB-05).
    pub async fn unpeer(&self, shared: &Shared, host: &str, port: u16) -> Result<(), PeerError> {
        let key = format!("{host}:{port}");
        let (link, outbound) = {
            let mut st = self.lock();
            let outbound = st.outbound.remove(&key);
            let link = st
                .links
                .values()
                .find(|l| {
                    (l.network.address == host && l.network.port == port)
                        || outbound.as_ref().is_some_and(|o| o.node == Some(l.node))
                })
                .cloned();
            (link, outbound)
        };
        if let Some(o) = &outbound {
            o.cancel.cancel();
        }
        let Some(link) = link else {
            if outbound.is_some() {
                return Ok(());
            }
            shared.emit_error(
                ErrorCode::PeerInvalid,
                format!("cannot unpeer from unknown peer {key}"),
            );
            return Err(PeerError::Invalid(key));
        };
        link.removed_by_us.store(true, Relaxed);
        let (tx, rx) = oneshot::channel();
        *link.bye_ack.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        let token = rand::random::<u64>();
        let _ = link.tx.try_send(encode_peer(&PeerMsg::Bye { token }));
        let _ = tokio::time::timeout(UNPEER_TIMEOUT, rx).await;
        link.close.cancel();
        Ok(())
    }

    /// Closes every link (shutdown): the other sides see PeerLost (ZB-08).
    pub fn close_all(&self) {
        let st = self.lock();
        for o in st.outbound.values() {
            o.cancel.cancel();
        }
        for link in st.links.values() {
            link.removed_by_us.store(true, Relaxed);
            let _ = link.tx.try_send(encode_peer(&PeerMsg::Bye { token: 0 }));
            link.close.cancel();
        }
    }

    fn resolve_waiters(&self, key: &str, result: Result<NodeId, PeerError>) {
        let waiters = match self.lock().outbound.get_mut(key) {
            Some(o) => std::mem::take(&mut o.waiters),
            None => return,
        };
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }

    fn set_outbound(&self, key: &str, status: PeerStatus, node: Option<NodeId>) {
        if let Some(o) = self.lock().outbound.get_mut(key) {
            o.status = status;
            if node.is_some() {
                o.node = node;
            }
        }
    }
}

fn parse_network(addr: &str) -> Option<NetworkInfo> {
    let (host, port) = addr.rsplit_once(':')?;
    Some(NetworkInfo {
        address: host.to_owned(),
        port: port.parse().ok()?,
    })
}

fn encode_peer(msg: &PeerMsg) -> Bytes {
    Bytes::from(broker_wasm::binary::to_vec(msg).expect("binary encoding cannot fail"))
}

fn push_link(link: &Link, msg: Bytes) {
    if link.tx.try_send(msg).is_err() && !link.close.is_cancelled() {
        // The peer cannot keep up: Broker's default overflow policy is to disconnect
        // (ZB-18); the peer sees PeerLost, we report PeerRemoved.
        link.removed_by_us.store(true, Relaxed);
        link.close.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Driving one link

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
    let me = peering.me;
    let max = shared.config.max_frame;
    let label = format!("{}:{}", network.address, network.port);
    // Handshake: send our hello, wait for theirs.
    let hello = encode_peer(&PeerMsg::Hello {
        endpoint: me,
        version: crate::VERSION.into(),
    });
    let mut first = Vec::new();
    frame_of(Encoding::Binary, &[hello], &mut first);
    if tx_ws.send(Bytes::from(first)).await.is_err() {
        let _ = hello_done.send(Err(PeerError::Unavailable(label)));
        return;
    }
    let remote = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
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
    .unwrap_or_else(|_| Err(PeerError::Timeout(label.clone())));
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
    let (tx, mut rx) = mpsc::channel::<Bytes>(shared.config.queue_size);
    let link = Arc::new(Link {
        node,
        tx,
        network,
        outbound,
        close: shared.shutdown.child_token(),
        removed_by_us: Arc::new(AtomicBool::new(false)),
        bye_ack: Mutex::new(None),
    });
    let Some(id) = peering.add_link(&shared, link.clone()) else {
        // Redundant connection (ZB-63): the existing peering stands.
        let _ = hello_done.send(Ok(node));
        return;
    };
    let _ = hello_done.send(Ok(node));

    // Writer: batches queued messages into frames.
    let close = link.close.clone();
    let writer_metrics = shared.metrics.clone();
    let mut pinger = crate::keepalive::Pinger::new(&shared.config);
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
        if !batch.is_empty() {
            frame.clear();
            frame_of(Encoding::Binary, &batch, &mut frame);
            let _ = tx_ws.send(Bytes::from(frame)).await;
        }
        let _ = tx_ws.close().await;
    };
    // Once the link is closing, a writer blocked on a peer that does not read is abandoned
    // after the close grace.
    let closing = link.close.clone();
    let grace = crate::keepalive::close_grace(&shared.config);
    let writer = async move {
        tokio::pin!(writer);
        tokio::select! {
            () = &mut writer => {}
            () = async {
                closing.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {}
        }
    };

    let reader_shared = shared.clone();
    let reader_link = link.clone();
    let reader = async move {
        let shared = reader_shared;
        let inflight = crate::store::InFlight::new(&shared);
        loop {
            let item = tokio::select! {
                i = crate::keepalive::within(&shared, rx_ws.next()) => match i {
                    Some(i) => i,
                    None => break,
                },
                _ = reader_link.close.cancelled() => break,
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
                match msg {
                    PeerMsg::Forward {
                        origin,
                        seq,
                        ttl,
                        topic,
                        data,
                    } => {
                        Metrics::add(&shared.metrics.messages_in_total, 1);
                        peering_forward(&shared, id, origin, seq, ttl, Publish { topic, data });
                    }
                    PeerMsg::Advert {
                        origin,
                        version,
                        peers,
                        topics,
                        masters,
                    } => {
                        let mut st = shared.peering.lock();
                        shared.peering.on_advert(
                            &mut st,
                            &shared,
                            id,
                            origin,
                            Advert {
                                version,
                                peers,
                                topics,
                                masters,
                            },
                        );
                    }
                    PeerMsg::Ping { nonce } => {
                        let _ = reader_link
                            .tx
                            .try_send(encode_peer(&PeerMsg::Pong { nonce }));
                    }
                    PeerMsg::Bye { token } => {
                        let _ = reader_link
                            .tx
                            .try_send(encode_peer(&PeerMsg::ByeAck { token }));
                        // The remote ends the peering: for us it is lost, not removed, and the
                        // initiator must not reconnect (ZB-05).
                        if let Some(o) = shared
                            .peering
                            .lock()
                            .outbound
                            .values()
                            .find(|o| o.node == Some(reader_link.node))
                        {
                            o.cancel.cancel();
                        }
                        reader_link.close.cancel();
                    }
                    PeerMsg::ByeAck { .. } => {
                        if let Some(tx) = reader_link
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
                        shared
                            .stores
                            .on_peer_msg(&shared, reader_link.node, m, &inflight);
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
    peering.remove_link(&shared, id);
}

fn peering_forward(shared: &Shared, link: LinkId, origin: NodeId, seq: u64, ttl: u8, p: Publish) {
    shared.peering.on_forward(shared, link, origin, seq, ttl, p);
}

// ---------------------------------------------------------------------------------------------
// Outbound connections

/// Connects to `host:port` once and drives the link in the background.
async fn attempt(shared: &Arc<Shared>, host: &str, port: u16) -> Attempt {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let label = format!("{host}:{port}");
    let scheme = if shared.peer_tls.is_some() {
        "wss"
    } else {
        "ws"
    };
    let url = format!("{scheme}://{label}{}", crate::http::PEER_PATH);
    let mut req = match url.into_client_request() {
        Ok(r) => r,
        Err(_) => return Attempt::Failed(PeerError::Unavailable(label)),
    };
    req.headers_mut().insert(
        "sec-websocket-protocol",
        protocol::SUBPROTOCOL_BINARY.parse().expect("valid header"),
    );
    if let Some(token) = &shared.config.peer_token {
        match format!("Bearer {token}").parse() {
            Ok(v) => {
                req.headers_mut().insert("authorization", v);
            }
            Err(_) => return Attempt::Failed(PeerError::Unavailable(label)),
        }
    }
    // The socket comes from broker-client's connector (TCP, TLS for wss://, the WebSocket
    // handshake), as for a client. The link itself is not a `Client`: it speaks the peer
    // protocol (`PeerMsg`: adverts, forwarding with TTL and sequence numbers, store relays),
    // which the client's `ClientCore` does not, so `drive_link` stays the driver.
    let connect = broker_client::tls::connect_ws(
        req,
        Some(ws_config(shared.config.max_frame)),
        shared.peer_tls.clone(),
    );
    let ws = match tokio::time::timeout(Duration::from_secs(1), connect).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!("peering with {label} failed: {e}");
            return Attempt::Failed(PeerError::Unavailable(label));
        }
        Err(_) => return Attempt::Failed(PeerError::Unavailable(label)),
    };
    let (sink, stream) = ws.split();
    let rx_ws = stream
        .take_while(|m| std::future::ready(m.is_ok()))
        .map(|m| match m {
            Ok(Message::Binary(b)) => Some(b),
            _ => None,
        })
        .boxed();
    let tx_ws = sink.with(|b: Bytes| {
        std::future::ready(Ok::<_, tokio_tungstenite::tungstenite::Error>(
            Message::Binary(b),
        ))
    });
    let network = NetworkInfo {
        address: host.to_owned(),
        port,
    };
    let (hello_tx, hello_rx) = oneshot::channel();
    let (end_tx, end_rx) = oneshot::channel();
    let s = shared.clone();
    shared.tasks.spawn(async move {
        drive_link(s, rx_ws, Box::pin(tx_ws), network, true, hello_tx).await;
        let _ = end_tx.send(true);
    });
    match hello_rx.await {
        Ok(Ok(node)) => Attempt::Peered(node, end_rx),
        Ok(Err(e)) => Attempt::Failed(e),
        Err(_) => Attempt::Failed(PeerError::Unavailable(label)),
    }
}

pub(crate) fn ws_config(
    max_frame: usize,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_frame + protocol::HEADER_LEN))
        .max_frame_size(Some(max_frame + protocol::HEADER_LEN))
}

/// Jittered exponential backoff capped at `cap` (ZB-67: Broker retries at a fixed interval).
fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(10));
    let d = base.min(cap);
    let jitter = rand::random::<f64>() * 0.5 + 0.5;
    d.mul_f64(jitter)
}

/// Peers with `host:port` (ZB-03). Resolves once peered. With `retry` = `None` it makes one
/// attempt; otherwise it keeps trying (backing off up to `retry`) and, once peered, also
/// reconnects after the link is lost, until unpeered or shut down.
pub async fn peer(
    shared: &Arc<Shared>,
    host: &str,
    port: u16,
    retry: Option<Duration>,
) -> Result<NodeId, PeerError> {
    let key = format!("{host}:{port}");
    if shared.shutdown.is_cancelled() {
        return Err(PeerError::ShuttingDown);
    }
    // Already peered? Already trying? Then wait with the attempt in progress.
    let (first_tx, first_rx) = oneshot::channel::<Result<NodeId, PeerError>>();
    let cancel = {
        let mut st = shared.peering.lock();
        let peered = |o: &Outbound| o.node.filter(|n| st.by_node.contains_key(n));
        match st.outbound.get(&key) {
            Some(o) => {
                if let Some(node) = peered(o) {
                    return Ok(node);
                }
                if let Some(o) = st.outbound.get_mut(&key) {
                    o.waiters.push(first_tx);
                }
                None
            }
            None => {
                let cancel = shared.shutdown.child_token();
                st.outbound.insert(
                    key.clone(),
                    Outbound {
                        cancel: cancel.clone(),
                        status: PeerStatus::Connecting,
                        node: None,
                        waiters: vec![first_tx],
                    },
                );
                Some(cancel)
            }
        }
    };
    let Some(cancel) = cancel else {
        return first_rx.await.unwrap_or(Err(PeerError::Unavailable(key)));
    };
    let s = shared.clone();
    let (host, key2) = (host.to_owned(), key.clone());
    shared.tasks.spawn(async move {
        let mut tries = 0u32;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            s.peering.set_outbound(
                &key2,
                if tries == 0 {
                    PeerStatus::Connecting
                } else {
                    PeerStatus::Reconnecting
                },
                None,
            );
            let outcome = tokio::select! {
                a = attempt(&s, &host, port) => a,
                _ = cancel.cancelled() => break,
            };
            match outcome {
                Attempt::Peered(node, ended) => {
                    tries = 0;
                    s.peering
                        .set_outbound(&key2, PeerStatus::Peered, Some(node));
                    s.peering.resolve_waiters(&key2, Ok(node));
                    tokio::select! {
                        _ = ended => {}
                        _ = cancel.cancelled() => break,
                    }
                    // Our connection was redundant or replaced: the peer dialed us too and
                    // its connection carries the peering (ZB-63). Nothing to reconnect while
                    // that one stands.
                    if !s.peering.link_gone(node, &cancel).await {
                        break;
                    }
                    s.peering
                        .set_outbound(&key2, PeerStatus::Disconnected, None);
                }
                Attempt::Failed(e) => {
                    // ZB-23.5 and .7: every failed attempt reports PeerUnavailable.
                    s.emit_error(
                        ErrorCode::PeerUnavailable,
                        format!("unable to connect to remote peer {key2}: {e}"),
                    );
                    tries += 1;
                    if retry.is_none() {
                        s.peering.resolve_waiters(&key2, Err(e));
                        break;
                    }
                }
            }
            let Some(cap) = retry else { break };
            tokio::select! {
                _ = tokio::time::sleep(backoff(tries, cap)) => {}
                _ = cancel.cancelled() => break,
            }
        }
        // Whoever still waits learns the attempt is over; forget the record unless an
        // unpeer already did.
        s.peering
            .resolve_waiters(&key2, Err(PeerError::Unavailable(key2.clone())));
        let mut st = s.peering.lock();
        if st
            .outbound
            .get(&key2)
            .is_some_and(|o| o.cancel.is_cancelled() || retry.is_none())
        {
            st.outbound.remove(&key2);
        }
    });
    first_rx.await.unwrap_or(Err(PeerError::Unavailable(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_window_suppresses_duplicates_and_tolerates_reordering() {
        use Seen::*;
        let mut w = SeenWindow::default();
        assert_eq!(w.insert(1), New);
        assert_eq!(w.insert(1), Duplicate);
        assert_eq!(w.insert(5), New);
        assert_eq!(w.insert(3), New, "late but within the window");
        assert_eq!(w.insert(3), Duplicate);
        assert_eq!(w.insert(WINDOW * 3), New);
        assert_eq!(w.insert(5), Duplicate, "too old to tell: treated as seen");
        assert_eq!(w.insert(WINDOW * 3 - 1), New);
        assert_eq!(w.insert(WINDOW * 3), Duplicate);
    }

    #[test]
    fn seen_window_survives_impossible_sequence_numbers() {
        use Seen::*;
        // Used to overflow (`seq + 1`, `seq + WINDOW`): a panic in debug builds.
        let mut w = SeenWindow::default();
        assert_eq!(w.insert(u64::MAX), Invalid);
        assert_eq!(w.insert(u64::MAX - WINDOW + 1), Invalid);
        assert_eq!(w.insert(MAX_SEQ), Invalid);
        assert_eq!(w.insert(MAX_SEQ - 1), New, "the largest valid number");
        assert_eq!(w.insert(MAX_SEQ - 1), Duplicate);
        // A forged number far ahead used to make every later message of its origin "too
        // old"; now the honest stream starts the window over and keeps flowing.
        let mut w = SeenWindow::default();
        assert_eq!(w.insert(10), New);
        assert_eq!(w.insert(1 << 60), New);
        assert_eq!(w.insert(11), Reset);
        assert_eq!(w.insert(12), New);
        assert_eq!(w.insert(11), Duplicate);
        // A jump ahead of any size within the valid range is a normal gap.
        assert_eq!(w.insert(12 + RESET_DISTANCE * 2), New);
        assert_eq!(w.insert(13 + RESET_DISTANCE * 2), New);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let cap = Duration::from_secs(2);
        for attempt in 0..20 {
            let d = backoff(attempt, cap);
            assert!(d <= cap);
            assert!(d >= Duration::from_millis(50));
        }
        assert!(backoff(0, cap) <= Duration::from_millis(100));
    }
}
