//! Messages from a client to the gateway: hello, publish, subscriptions, requests (stores,
//! namespaces, peering) and their cancellation.

#[allow(unused_imports)]
use super::*;

/// The first message of a client: who it is and, optionally, its credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Free-form application name, for logs and metrics.
    pub client: String,
    /// Optional access token.
    pub token: Option<String>,
    /// Whether to receive the gateway's status events.
    pub statuses: bool,
}

/// Messages a client sends to a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMsg {
    Hello(Hello),
    /// Adds subscription prefixes; allowed at any time.
    Subscribe {
        topics: Vec<String>,
    },
    /// Removes subscription prefixes; allowed at any time.
    Unsubscribe {
        topics: Vec<String>,
    },
    /// Publishes one message (a frame of several is a batch).
    Publish(Publish),
    /// A store, namespace or endpoint request; answered by [`ServerMsg::Response`] with the
    /// same id.
    Request {
        id: u64,
        request: Request,
    },
    /// Cancels a pending request (e.g. a blocked namespace `get`).
    Cancel {
        id: u64,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Orderly goodbye.
    Bye,
    /// Sent after the subscriptions (in the first frame when resuming, else once the gateway
    /// announced [`ServerMsg::Histories`]): `instance` names this client across its
    /// connections (its own publishes are not replayed to it); `positions` are where it is
    /// in the histories of the gateway of `epoch` (prefix, last `seq` received). The gateway
    /// replays what came since and matches the subscriptions ([`ServerMsg::Replay`]), or says
    /// what cannot be ([`ServerMsg::Gap`]).
    Resume {
        instance: String,
        epoch: Option<String>,
        positions: Vec<(String, u64)>,
    },
}

/// Requests that expect a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Creates (or re-attaches) a master store on the gateway (ZB-44).
    AttachMaster {
        store: String,
        backend: Backend,
        options: Data,
    },
    /// Starts a clone: the gateway answers, then sends a snapshot and ordered updates (ZB-47).
    AttachClone {
        store: String,
    },
    DetachClone {
        store: String,
    },
    /// A store operation (ZB-48..57).
    Store {
        store: String,
        op: StoreOp,
    },
    /// A namespace operation (DB-01..22).
    Namespace(NamespaceOp),
    /// Runtime peering of the gateway (ZB-03..07).
    Peer {
        host: String,
        port: u16,
        retry: Option<Timespan>,
    },
    Unpeer {
        host: String,
        port: u16,
    },
    Peers,
    PeerSubscriptions,
    /// Names of the stores this gateway holds (masters and relayed clones).
    Stores,
    /// Adds (or replaces) an uplink of the gateway to a Zeek node's WebSocket API (ZU-02);
    /// grant `admin`.
    ZeekUplink(UplinkSpec),
    /// Ends the uplink to `url`; grant `admin`.
    ZeekUnlink {
        url: String,
    },
    /// The gateway's uplinks and their state.
    ZeekUplinks,
    /// Starts a clone that already holds the state of `master` as of update `seq` (kept from
    /// an earlier connection, or loaded from disk): the gateway sends only the updates since,
    /// then [`ServerMsg::CloneCurrent`], when it still has them; else a snapshot, as for
    /// [`Request::AttachClone`].
    AttachCloneSince {
        store: String,
        master: NodeId,
        seq: u64,
    },
}

/// An uplink to a Zeek node (ZU-02..09).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkSpec {
    /// `ws://HOST:PORT/v1/messages/json` or `wss://...`; a URL without a path gets
    /// `/v1/messages/json`.
    pub url: String,
    /// Topic prefixes taken from Zeek.
    pub subscribe: Vec<String>,
    /// Topic prefixes whose events go up to Zeek.
    pub publish: Vec<String>,
    /// Extra HTTP headers of the WebSocket handshake (a reverse proxy's authentication).
    pub headers: Vec<(String, String)>,
    /// `X-Application-Name` (ZU-09).
    pub app_name: Option<String>,
}

/// Store backends (ZB-45, ZB-46).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Memory,
    Sqlite,
}

/// Store operations. `expiry` is relative to the time the master applies the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOp {
    Put {
        key: Data,
        value: Data,
        expiry: Option<Timespan>,
    },
    PutUnique {
        key: Data,
        value: Data,
        expiry: Option<Timespan>,
    },
    Erase {
        key: Data,
    },
    Clear,
    Increment {
        key: Data,
        amount: Data,
        expiry: Option<Timespan>,
    },
    Decrement {
        key: Data,
        amount: Data,
        expiry: Option<Timespan>,
    },
    Append {
        key: Data,
        value: Data,
        expiry: Option<Timespan>,
    },
    InsertInto {
        key: Data,
        index: Data,
        value: Option<Data>,
        expiry: Option<Timespan>,
    },
    RemoveFrom {
        key: Data,
        index: Data,
        expiry: Option<Timespan>,
    },
    Push {
        key: Data,
        value: Data,
        expiry: Option<Timespan>,
    },
    Pop {
        key: Data,
        expiry: Option<Timespan>,
    },
    Get {
        key: Data,
    },
    GetIndexFromValue {
        key: Data,
        index: Data,
    },
    Exists {
        key: Data,
    },
    Keys,
    AwaitIdle,
}

/// How long a namespace read or get may wait for a value (DB-15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// Fail at once with UNAVAIL (`DBR_FLAGS_NOWAIT`).
    NoWait,
    /// Wait up to this long, then fail with TIMEOUT.
    Timeout(Timespan),
    /// Wait until a value arrives or the request is cancelled.
    Forever,
}

/// Namespace (tuple space) operations (DB-01..22).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceOp {
    Create {
        name: String,
        level: u8,
        groups: Vec<String>,
    },
    Attach {
        name: String,
    },
    Detach {
        name: String,
    },
    Delete {
        name: String,
    },
    Query {
        name: String,
    },
    /// Names of every namespace of the gateway, sorted (answered with `Names`). Not in the
    /// Data Broker API; for dashboards and tools.
    List,
    Put {
        ns: String,
        key: String,
        value: Data,
    },
    Read {
        ns: String,
        key: String,
        index: u64,
        wait: Wait,
        capacity: Option<u64>,
        partial: bool,
    },
    Get {
        ns: String,
        key: String,
        wait: Wait,
        capacity: Option<u64>,
        partial: bool,
    },
    Remove {
        ns: String,
        key: String,
    },
    Move {
        from: String,
        key: String,
        to: String,
    },
    TestKey {
        ns: String,
        key: String,
    },
    Directory {
        ns: String,
        pattern: String,
        limit: u64,
    },
    /// One page of names matching `pattern` in name order, after `after`.
    Iterate {
        ns: String,
        pattern: String,
        after: Option<String>,
        limit: u64,
    },
    /// Puts a value back at the head of a queue: how a client undoes a `get` whose
    /// cancellation reached the gateway after the value was taken (DB-25).
    Restore {
        ns: String,
        key: String,
        value: Data,
    },
}
