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
    EndpointInfo, NetworkInfo, PeerInfo, PeerMsg, PeerStatus, Publish, UplinkAdvert,
};
use broker_wasm::topic::SubscriptionIndex;
use broker_wasm::{ErrorCode, NodeId, StatusCode};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::hub::{Exclude, Hub};
use crate::metrics::Metrics;
use crate::uplink::route::{covered, Origin, UpRouter};

pub(crate) mod dial;
pub(crate) mod link;
mod seen;

use seen::{Seen, SeenWindow};

/// Hops a message may take before it is dropped (Broker's default TTL, ZB-01).
pub const DEFAULT_TTL: u8 = 16;
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
    /// Set when the preferred connection to the same peer replaced this one: its reader
    /// goes on until the peer closes it, so nothing the peer sent before it switched is lost.
    replaced: Arc<AtomicBool>,
    bye_ack: Mutex<Option<oneshot::Sender<()>>>,
}

impl Link {
    fn replaced_flag(&self) -> Arc<AtomicBool> {
        self.replaced.clone()
    }
}

#[derive(Debug, Clone)]
struct Advert {
    version: u64,
    peers: Vec<NodeId>,
    topics: Vec<String>,
    masters: Vec<String>,
    uplinks: Vec<UplinkAdvert>,
}

impl Advert {
    /// The advert of `origin`, encoded for a link.
    fn encode(&self, origin: NodeId) -> Bytes {
        encode_peer(&PeerMsg::Advert {
            origin,
            version: self.version,
            peers: self.peers.clone(),
            topics: self.topics.clone(),
            masters: self.masters.clone(),
            uplinks: self.uplinks.clone(),
        })
    }
}

/// Tells a new link everything this endpoint knows of the graph.
fn send_known_adverts(st: &State, link: &Link) {
    for (origin, a) in &st.adverts {
        let _ = link.tx.try_send(a.encode(*origin));
    }
}

/// Windows kept for origins the peer graph does not (or no longer) show, before they are
/// pruned: forwarded messages may name any origin, reachable or not.
const MAX_UNKNOWN_ORIGINS: usize = 64;
/// Adverts of endpoints not (yet) reachable kept beyond the reachable ones; more, and only
/// reachable ones are kept.
const MAX_PENDING_ADVERTS: usize = 1024;

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
    my_uplinks: Vec<UplinkAdvert>,
    reachable: HashSet<NodeId>,
    /// Topic prefix -> first-hop links towards endpoints that want it.
    routes: SubscriptionIndex<LinkId>,
    seen: HashMap<NodeId, SeenWindow>,
    outbound: HashMap<String, Outbound>,
}

/// What registering a new link did.
enum Added {
    /// A new peering.
    New(LinkId),
    /// The preferred connection replaced the one registered for the same peer.
    Replaced(LinkId),
    /// Another connection carries this peering; close this one.
    Redundant,
}

/// The peering layer of one endpoint: links, adverts, reachability and routes. The link driver
/// ([`link`]) and the dialer ([`dial`]) sit on top of it.
#[derive(Debug)]
pub struct Peering {
    me: NodeId,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    /// The uplinks to Zeek nodes: what goes up, and what this endpoint takes from Zeek itself.
    up: Arc<UpRouter>,
    state: Mutex<State>,
    /// Notified whenever a direct link is added or removed.
    pub changed: tokio::sync::Notify,
    next_link: AtomicU64,
    next_seq: AtomicU64,
}

impl Peering {
    pub fn new(me: NodeId, hub: Arc<Hub>, metrics: Arc<Metrics>, up: Arc<UpRouter>) -> Peering {
        Peering {
            me,
            hub,
            metrics,
            up,
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
    pub fn set_local_filter(&self, topics: Vec<String>) {
        let mut st = self.lock();
        if st.my_topics == topics {
            return;
        }
        st.my_topics = topics;
        self.readvertise(&mut st);
    }

    fn my_advert(&self, st: &State) -> PeerMsg {
        PeerMsg::Advert {
            origin: self.me,
            version: st.my_version,
            peers: st.by_node.keys().copied().collect(),
            topics: st.my_topics.clone(),
            masters: st.my_masters.clone(),
            uplinks: st.my_uplinks.clone(),
        }
    }

    /// Our connected uplinks changed: advertise them (ZU-19).
    pub fn set_local_uplinks(&self, uplinks: Vec<UplinkAdvert>) {
        let mut st = self.lock();
        if st.my_uplinks == uplinks {
            return;
        }
        st.my_uplinks = uplinks;
        self.readvertise(&mut st);
    }

    /// ZU-19: a message from Zeek node `zeek` that `origin` took from its uplink is delivered
    /// here only if no better source exists: not if an uplink of this endpoint takes the topic
    /// from that Zeek itself, and not if a reachable endpoint with a smaller id does.
    fn take_from_peer(&self, st: &State, origin: NodeId, zeek: &str, topic: &str) -> bool {
        if self.up.receives(zeek, topic) {
            return false;
        }
        !st.adverts.iter().any(|(n, a)| {
            *n < origin
                && st.reachable.contains(n)
                && a.uplinks
                    .iter()
                    .any(|u| u.zeek == zeek && covered(&u.subscribe, topic))
        })
    }

    /// ZU-19: whether this endpoint sends a message of `origin` up to Zeek node `zeek`. The
    /// origin does, when it has an uplink of its own to that Zeek for the topic; otherwise
    /// the endpoint with the smallest id among those that have one.
    fn send_up_for(&self, st: &State, origin: NodeId, zeek: &str, topic: &str) -> bool {
        let sends = |a: &Advert| {
            a.uplinks
                .iter()
                .any(|u| u.zeek == zeek && covered(&u.publish, topic))
        };
        if st.adverts.get(&origin).is_some_and(sends) {
            return false;
        }
        !st.adverts
            .iter()
            .any(|(n, a)| *n < self.me && st.reachable.contains(n) && sends(a))
    }

    /// Our master stores changed: advertise them.
    pub fn set_local_masters(&self, masters: Vec<String>) {
        let mut st = self.lock();
        if st.my_masters == masters {
            return;
        }
        st.my_masters = masters;
        self.readvertise(&mut st);
    }

    /// True if another reachable endpoint advertises a master store `name` (ZB-44).
    pub fn store_master_elsewhere(&self, name: &str) -> bool {
        let st = self.lock();
        st.adverts
            .iter()
            .any(|(n, a)| st.reachable.contains(n) && a.masters.iter().any(|m| m == name))
    }

    /// Reachable endpoints that advertise connected uplinks to Zeek (ZU-19).
    pub fn uplink_adverts(&self) -> usize {
        let st = self.lock();
        st.adverts
            .iter()
            .filter(|(n, a)| st.reachable.contains(n) && !a.uplinks.is_empty())
            .count()
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

    /// The id of the link that carries the peering with `node`, if any.
    fn link_id(&self, node: NodeId) -> Option<LinkId> {
        self.lock().by_node.get(&node).copied()
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

    fn readvertise(&self, st: &mut State) {
        st.my_version += 1;
        let advert = encode_peer(&self.my_advert(st));
        for link in st.links.values() {
            let _ = link.tx.try_send(advert.clone());
        }
        self.recompute(st);
    }

    /// Recomputes reachability and routes; emits EndpointDiscovered/Unreachable.
    fn recompute(&self, st: &mut State) {
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
            self.hub.status(
                StatusCode::EndpointUnreachable,
                Some(*gone),
                None,
                "lost the last path to the endpoint",
            );
        }
        for new in now.difference(&st.reachable) {
            // Direct peers get their EndpointDiscovered when the link is added.
            if !st.by_node.contains_key(new) {
                self.hub.status(
                    StatusCode::EndpointDiscovered,
                    Some(*new),
                    None,
                    "found a new endpoint",
                );
            }
        }
        // Forget adverts and duplicate windows of endpoints we lost; they re-flood when they
        // come back (and a restarted endpoint has a new id anyway). Adverts of endpoints not
        // reachable *yet* stay: adverts arrive in any order, and the one of an endpoint two
        // hops away often comes before the one of the peer that links it to us.
        for gone in st.reachable.difference(&now) {
            st.adverts.remove(gone);
        }
        st.seen.retain(|n, _| now.contains(n));
        if st.adverts.len() > now.len() + MAX_PENDING_ADVERTS {
            st.adverts.retain(|n, _| now.contains(n));
        }
        let grew = !now.is_subset(&st.reachable);
        st.reachable = now;
        if grew {
            // `await_peer` also waits for endpoints behind a peer.
            self.changed.notify_waiters();
        }
    }

    fn on_advert(&self, st: &mut State, from: LinkId, origin: NodeId, advert: Advert) {
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
        let msg = advert.encode(origin);
        st.adverts.insert(origin, advert);
        for (id, link) in &st.links {
            if *id != from {
                let _ = link.tx.try_send(msg.clone());
            }
        }
        self.recompute(st);
    }

    /// A message entering the peer graph here (from this endpoint or one of its clients, or
    /// from Zeek node `zeek` over an uplink).
    pub fn originate(&self, publish: &Publish, zeek: Option<&str>) {
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
            zeek: zeek.map(str::to_owned),
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
        from: LinkId,
        origin: NodeId,
        seq: u64,
        ttl: u8,
        publish: Publish,
        zeek: Option<String>,
    ) {
        {
            let mut st = self.lock();
            if origin == self.me {
                Metrics::add(&self.metrics.duplicates_total, 1);
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
                    Metrics::add(&self.metrics.duplicates_total, 1);
                    return;
                }
                Seen::Reset => {
                    Metrics::add(&self.metrics.peer_seq_resets_total, 1);
                    tracing::warn!(%origin, seq, "sequence number far behind its origin's newest; duplicate window reset");
                }
                Seen::Invalid => {
                    Metrics::add(&self.metrics.errors_total, 1);
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
                        zeek: zeek.clone(),
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
            match &zeek {
                Some(z) => {
                    if self.take_from_peer(&st, origin, z, &publish.topic) {
                        self.hub.route(&publish, None, Exclude::None);
                    } else {
                        Metrics::add(&self.metrics.uplink_duplicates_total, 1);
                    }
                }
                None => {
                    self.hub.route(&publish, None, Exclude::None);
                    if !self.up.is_empty() {
                        let elected = |z: &str, t: &str| self.send_up_for(&st, origin, z, t);
                        self.up
                            .offer(&publish, Origin::Peer(&elected), &self.metrics);
                    }
                }
            }
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
    fn add_link(&self, link: Arc<Link>) -> Added {
        let mut st = self.lock();
        if link.node == self.me {
            return Added::Redundant;
        }
        if let Some(&old_id) = st.by_node.get(&link.node) {
            let preferred = self.me.min(link.node);
            let old = st.links.get(&old_id).cloned();
            let new_wins = self.initiator(&link) == preferred
                && old.as_ref().is_some_and(|o| self.initiator(o) != preferred);
            Metrics::add(&self.metrics.peer_redundant_total, 1);
            if !new_wins {
                return Added::Redundant;
            }
            let id = self.next_link.fetch_add(1, Relaxed);
            if let Some(old) = old {
                old.removed_by_us.store(true, Relaxed);
                old.replaced.store(true, Relaxed);
                old.close.cancel();
            }
            st.by_node.insert(link.node, id);
            st.links.insert(id, link.clone());
            send_known_adverts(&st, &link);
            let _ = link.tx.try_send(encode_peer(&self.my_advert(&st)));
            // Routes name links: the peer's topics now go over the new one.
            self.recompute(&mut st);
            tracing::debug!(node = %link.node, "redundant connection replaced by the preferred one");
            drop(st);
            self.changed.notify_waiters();
            // Feeds and requests on the old connection are gone: relays must look again.
            return Added::Replaced(id);
        }
        let id = self.next_link.fetch_add(1, Relaxed);
        let node = link.node;
        let network = link.network.clone();
        st.by_node.insert(node, id);
        st.links.insert(id, link.clone());
        // ZB-23: EndpointDiscovered, then PeerAdded, before any data from the peer.
        if !st.reachable.contains(&node) {
            self.hub.status(
                StatusCode::EndpointDiscovered,
                Some(node),
                Some(network.clone()),
                "found a new peer",
            );
        }
        self.hub.status(
            StatusCode::PeerAdded,
            Some(node),
            Some(network),
            "handshake successful",
        );
        // Tell the newcomer everything we know, then tell everyone our new peer set.
        send_known_adverts(&st, &link);
        st.reachable.insert(node);
        self.readvertise(&mut st);
        self.changed.notify_waiters();
        Added::New(id)
    }

    /// Forgets a link that ended; the peer it led to if that ended the peering (the caller
    /// tells the stores), `None` if the link was replaced (see `add_link`).
    fn remove_link(&self, id: LinkId) -> Option<NodeId> {
        let mut st = self.lock();
        let link = st.links.remove(&id)?;
        if st.by_node.get(&link.node) != Some(&id) {
            // Replaced by the preferred connection (see `add_link`): the peering stands.
            return None;
        }
        st.by_node.remove(&link.node);
        let (code, why) = if link.removed_by_us.load(Relaxed) {
            (StatusCode::PeerRemoved, "removed the peering")
        } else {
            (StatusCode::PeerLost, "lost the connection to the peer")
        };
        self.hub
            .status(code, Some(link.node), Some(link.network.clone()), why);
        // Drop the peer's own advert unless another path still confirms it.
        self.readvertise(&mut st);
        self.changed.notify_waiters();
        Some(link.node)
    }

    /// Ends the peering with the peer at `host:port` (ZB-05).
    pub async fn unpeer(&self, host: &str, port: u16) -> Result<(), PeerError> {
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
            self.hub.error(
                ErrorCode::PeerInvalid,
                format!("cannot unpeer from unknown peer {key}"),
            );
            return Err(PeerError::Invalid(key));
        };
        link.removed_by_us.store(true, Relaxed);
        let (tx, rx) = oneshot::channel();
        *link.bye_ack.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        // Never 0: that token means a shutdown (see the link's `Bye` handling).
        let token = rand::random::<u64>() | 1;
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
