//! Messages from the gateway to a client: welcome, data, statuses and errors, responses,
//! store snapshots and updates.

#[allow(unused_imports)]
use super::*;

/// The gateway's answer to [`ClientMsg::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub endpoint: NodeId,
    /// Gateway software version.
    pub version: String,
    /// Largest frame body the gateway accepts.
    pub max_frame: u64,
}

/// Messages a gateway sends to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome(Welcome),
    /// A message on a topic the client subscribed to.
    Message(Publish),
    Status(Status),
    /// An error not tied to a request (malformed frame, dropped messages, ...).
    Error(ErrorInfo),
    Response {
        id: u64,
        result: Result<Response, Failure>,
    },
    /// A clone's initial state: every entry as of update `seq`, in chunks; the last chunk
    /// has `more == false`.
    Snapshot {
        store: String,
        master: NodeId,
        seq: u64,
        entries: Vec<StoreEntry>,
        more: bool,
    },
    /// One applied mutation; `seq` increases by one per update of the store.
    StoreUpdate {
        store: String,
        seq: u64,
        update: StoreUpdate,
    },
    /// The gateway relaying a clone lost (`false`) or found again (`true`) the store's
    /// master; the clone's stale interval counts from the loss (ZB-47, ZB-60).
    StoreMaster {
        store: String,
        reachable: bool,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Bye,
    /// After the welcome, from a gateway that keeps histories (`--history`): its epoch (new
    /// at every start) and the prefixes of its histories; a [`ServerMsg::Logged`] names its
    /// history by position in `prefixes`.
    Histories {
        epoch: String,
        prefixes: Vec<String>,
    },
    /// A message under a history prefix, with its position in that history (`seq` counts
    /// from 1 per history and epoch).
    Logged {
        history: u32,
        seq: u64,
        message: Publish,
    },
    /// Messages a resuming client missed ([`ClientMsg::Resume`]), oldest first, in chunks;
    /// the last chunk has `head`: the history's newest position when the replay was taken.
    /// Live [`ServerMsg::Logged`] messages of that history may arrive before it ends.
    Replay {
        history: u32,
        entries: Vec<LoggedEntry>,
        head: Option<u64>,
    },
    /// What a resuming client missed cannot be replayed (the gateway restarted, the history
    /// no longer reaches back far enough, or there is no history for the prefix).
    Gap(Gap),
    /// After the updates a [`Request::AttachCloneSince`] asked for: the clone is in sync with
    /// `master` as of update `seq`.
    CloneCurrent {
        store: String,
        master: NodeId,
        seq: u64,
    },
}

/// One message of a [`ServerMsg::Replay`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEntry {
    pub seq: u64,
    pub message: Publish,
}

/// Why a resume could not replay everything (see [`Gap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The gateway restarted since the position (another epoch): what was published before
    /// the restart is gone; what came since is replayed.
    Restart,
    /// The history dropped messages after the position (its count or age limit).
    Evicted,
    /// The gateway keeps no history for the prefix.
    NoHistory,
}

/// A gap in what a resuming client receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The history's prefix.
    pub prefix: String,
    /// Messages of the history that are lost, when known (messages on any topic under the
    /// prefix: at most that many of them were for the client).
    pub missed: Option<u64>,
    pub reason: GapReason,
}

/// One entry of a store snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreEntry {
    pub key: Data,
    pub value: Data,
    /// Absolute expiry time.
    pub expiry: Option<Timestamp>,
}

/// A mutation as replicated from a master to its clones (ZB-58, ZB-62).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreUpdate {
    Insert {
        key: Data,
        value: Data,
        expiry: Option<Timestamp>,
    },
    Update {
        key: Data,
        old: Data,
        value: Data,
        expiry: Option<Timestamp>,
    },
    Erase {
        key: Data,
    },
    Expire {
        key: Data,
    },
    Clear,
}

/// Successful results of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Success without a value.
    Done,
    Bool(bool),
    Value(Data),
    /// A namespace value; `size` is the full length when a capacity was given (DB-13).
    Tuple {
        value: Data,
        size: u64,
    },
    Namespace(NamespaceInfo),
    /// Names from a directory or an iterator page; `done` when there are no more.
    Names {
        names: Vec<String>,
        done: bool,
    },
    Peers(Vec<PeerInfo>),
    Topics(Vec<String>),
    Uplinks(Vec<UplinkInfo>),
}

/// An uplink to a Zeek node and its state (ZU-02..09).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkInfo {
    pub url: String,
    /// `connecting`, `connected` or `reconnecting`.
    pub state: String,
    /// The endpoint id of the current connection's Zeek ack, and Zeek's version.
    pub zeek_endpoint: Option<String>,
    pub zeek_version: Option<String>,
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
    pub messages_in: u64,
    pub messages_out: u64,
    /// `error` objects Zeek answered with (ZU-08).
    pub errors: u64,
    /// Publishes under a publish prefix refused here because Zeek would not take them.
    pub refused: u64,
    /// Established connections so far.
    pub connects: u64,
    pub last_error: Option<String>,
}

/// A namespace's state (DB-06).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub level: u8,
    pub groups: Vec<String>,
    pub refcount: u64,
    pub marked_for_delete: bool,
    pub tuple_names: u64,
    pub total_values: u64,
}

/// A direct peer (ZB-06).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub endpoint: EndpointInfo,
    pub status: PeerStatus,
    pub outbound: bool,
}

/// Peering states (ZB-06).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    Initialized,
    Connecting,
    Connected,
    Peered,
    Disconnected,
    Reconnecting,
}
