//! Messages between two gateways, in both directions: hello, adverts, forwarded messages
//! with TTL and sequence numbers, store relays, keepalive and goodbye.

#[allow(unused_imports)]
use super::*;

/// Messages between peered gateways (ZB-63..68).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMsg {
    /// First message in each direction; each side then sends every advert it knows.
    Hello {
        endpoint: NodeId,
        version: String,
    },
    /// What one endpoint of the peer graph wants and whom it is peered with, flooded to
    /// every gateway (ZB-65). `version` grows with every change; receivers keep the newest
    /// advert per origin, compute reachability from the `peers` lists and forward messages
    /// towards endpoints whose `topics` match.
    Advert {
        origin: NodeId,
        version: u64,
        peers: Vec<NodeId>,
        topics: Vec<String>,
        /// Names of the master stores the origin holds (ZB-44 `master_exists`).
        masters: Vec<String>,
        /// The origin's connected uplinks to Zeek nodes (ZU-19): who receives what from
        /// which Zeek, and who sends what up, so each Zeek message reaches each subscriber
        /// once and each publish reaches Zeek once.
        uplinks: Vec<UplinkAdvert>,
    },
    /// A message travelling the peer graph; `(origin, seq)` identifies it for duplicate
    /// suppression and `ttl` bounds its hops.
    Forward {
        origin: NodeId,
        seq: u64,
        ttl: u8,
        topic: String,
        data: Data,
        /// The Zeek node the message came from, when it entered the graph through an uplink
        /// (ZU-19); such a message never goes back up to a Zeek node.
        zeek: Option<String>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Graceful unpeer (ZB-05): the other side answers with `ByeAck` carrying the token.
    Bye {
        token: u64,
    },
    ByeAck {
        token: u64,
    },
    /// The sender wants a clone feed of `store` (ZB-58): answered with `StoreSnapshot` and
    /// then `StoreUpdate`s, or `StoreMissing`.
    StoreAttach {
        store: String,
    },
    StoreDetach {
        store: String,
    },
    StoreMissing {
        store: String,
    },
    StoreSnapshot {
        store: String,
        master: NodeId,
        seq: u64,
        entries: Vec<StoreEntry>,
        more: bool,
    },
    StoreUpdate {
        store: String,
        seq: u64,
        update: StoreUpdate,
    },
    /// See [`ServerMsg::StoreMaster`]: a relay tells the relays that follow it.
    StoreMaster {
        store: String,
        reachable: bool,
    },
    /// A store operation forwarded towards the master; answered by `StoreResponse`.
    StoreRequest {
        id: u64,
        store: String,
        op: StoreOp,
    },
    StoreResponse {
        id: u64,
        result: Result<Response, Failure>,
    },
    /// The last message on a connection the sender no longer uses for the peering: two
    /// gateways that dialed each other keep one connection (ZB-63). The sender reads on until
    /// the other side says the same, so nothing sent before the switch is lost.
    Moved,
}

/// One connected uplink of an endpoint, as its advert tells the peer graph (ZU-19).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UplinkAdvert {
    /// The Zeek node (its endpoint id without the per-client `-websocket-N` suffix).
    pub zeek: String,
    /// Topic prefixes the uplink takes from Zeek.
    pub subscribe: Vec<String>,
    /// Topic prefixes the uplink sends up to Zeek.
    pub publish: Vec<String>,
}
