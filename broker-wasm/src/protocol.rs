//! The native protocol: frames by direction, in a compact binary encoding and a JSON form.
//!
//! - [`ClientMsg`]: client -> gateway. [`ServerMsg`]: gateway -> client. [`PeerMsg`]: between
//!   two gateways, in both directions.
//! - A frame carries any number of messages (so a batch of publishes is one frame).
//!
//! Binary frame layout (protocol version 1):
//!
//! ```text
//! +---------+----------------------+------------------------------------------+
//! | version | body length (u32 LE) | body: varint count, then the messages     |
//! | 1 byte  | 4 bytes              | in the format of crate::binary            |
//! +---------+----------------------+------------------------------------------+
//! ```
//!
//! JSON form: `{"v":1,"messages":[...]}` with values in Broker's typed JSON encoding, e.g.
//! `{"v":1,"messages":[{"publish":{"topic":"/t","data":{"@data-type":"count","data":1}}}]}`.
//!
//! [`decode_binary`] tells "need more bytes" ([`DecodeError::Incomplete`]) from malformed input,
//! refuses frames over a size limit before buffering them, and never panics.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::binary;
use crate::codes::{ErrorCode, StatusCode};
use crate::data::{Data, Timespan, Timestamp};
use crate::error::{DecodeError, EncodeError};

/// The protocol version this crate speaks (first byte of every binary frame, `v` in JSON).
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes before the body of a binary frame.
pub const HEADER_LEN: usize = 5;
/// Default limit on a frame's body.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// WebSocket subprotocol of the binary encoding.
pub const SUBPROTOCOL_BINARY: &str = "broker.v1.bin";
/// WebSocket subprotocol of the JSON encoding.
pub const SUBPROTOCOL_JSON: &str = "broker.v1.json";
/// HTTP path of the native protocol for clients (a gateway's WebSocket endpoint).
pub const CLIENT_PATH: &str = "/v1/broker";
/// HTTP path of the native protocol for peering gateways.
pub const PEER_PATH: &str = "/v1/peer";

// ---------------------------------------------------------------------------------------------
// Identities

/// An endpoint's identity: 16 random bytes, shown as a lower-case UUID
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, ZB-01).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    /// A version-4 UUID from 16 random bytes supplied by the caller (the core does no I/O).
    pub fn from_random(mut bytes: [u8; 16]) -> NodeId {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        NodeId(bytes)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<NodeId, DecodeError> {
        let bad = || DecodeError::Invalid(format!("invalid node id `{s}`"));
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        let dashes_ok = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
        if hex.len() != 32 || !dashes_ok {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(NodeId(out))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(NodeId)
        }
    }
}

/// Where an endpoint is (ZB-20, ZB-24): its id and, if known, its network address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub node: Option<NodeId>,
    pub network: Option<NetworkInfo>,
}

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub address: String,
    pub port: u16,
}

// ---------------------------------------------------------------------------------------------
// Shared payloads

/// A message on a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    pub topic: String,
    pub data: Data,
}

/// A status event (ZB-20, ZB-21).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub code: StatusCode,
    pub endpoint: Option<EndpointInfo>,
    pub message: String,
}

/// An error event or a failed request (ZB-22).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub context: String,
}

/// Why a request failed: a Broker error code, or a Data Broker error code (`DBR_ERR_*`
/// number) for namespace operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    Broker(ErrorInfo),
    Namespace { code: i32, context: String },
}

// ---------------------------------------------------------------------------------------------
// Client -> gateway

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

// ---------------------------------------------------------------------------------------------
// Gateway -> client

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

// ---------------------------------------------------------------------------------------------
// Gateway <-> gateway

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
    },
    /// A message travelling the peer graph; `(origin, seq)` identifies it for duplicate
    /// suppression and `ttl` bounds its hops.
    Forward {
        origin: NodeId,
        seq: u64,
        ttl: u8,
        topic: String,
        data: Data,
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
}

// ---------------------------------------------------------------------------------------------
// Frame codecs

/// Appends one binary frame holding `messages` to `out`.
pub fn encode_binary<M: Serialize>(messages: &[M], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = begin_frame(out);
    if let Err(e) = binary::to_writer(out, messages) {
        out.truncate(start);
        return Err(e);
    }
    let body = out.len() - start - HEADER_LEN;
    if u32::try_from(body).is_err() {
        out.truncate(start);
        return Err(EncodeError::Unrepresentable(format!(
            "frame body of {body} bytes exceeds 4 GiB"
        )));
    }
    finish_frame(out, start);
    Ok(())
}

/// One binary frame holding `messages`.
pub fn to_binary<M: Serialize>(messages: &[M]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_binary(messages, &mut out)?;
    Ok(out)
}

/// Decodes the binary frame at the start of `input`: its messages and the bytes it used.
///
/// # Errors
/// [`DecodeError::Incomplete`] if `input` holds only part of a frame whose size is within
/// `max_body`; any other error means the input is malformed and the stream unusable.
pub fn decode_binary<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
) -> Result<(Vec<M>, usize), DecodeError> {
    let Some(&version) = input.first() else {
        return Err(DecodeError::Incomplete(HEADER_LEN));
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(u64::from(version)));
    }
    if input.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete(HEADER_LEN - input.len()));
    }
    let len = u32::from_le_bytes([input[1], input[2], input[3], input[4]]) as usize;
    if len > max_body {
        return Err(DecodeError::TooLarge {
            len: len as u64,
            max: max_body,
        });
    }
    let total = HEADER_LEN + len;
    if input.len() < total {
        return Err(DecodeError::Incomplete(total - input.len()));
    }
    let messages = binary::from_slice(&input[HEADER_LEN..total])?;
    Ok((messages, total))
}

/// Variant index of [`ClientMsg::Publish`] in the binary encoding.
pub const CLIENT_PUBLISH_TAG: u8 = 3;
/// Variant index of [`ServerMsg::Message`] in the binary encoding.
pub const SERVER_MESSAGE_TAG: u8 = 1;

/// Decodes a buffer holding exactly one binary frame, handing each message to `f` together
/// with its own bytes. A [`ClientMsg::Publish`] and a [`ServerMsg::Message`] differ only in
/// their first byte, so a gateway can forward a publish without encoding it again.
pub fn for_each_binary<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
    mut f: impl FnMut(M, &[u8]),
) -> Result<(), DecodeError> {
    let Some(&version) = input.first() else {
        return Err(DecodeError::Truncated);
    };
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(u64::from(version)));
    }
    if input.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let len = u32::from_le_bytes([input[1], input[2], input[3], input[4]]) as usize;
    if len > max_body {
        return Err(DecodeError::TooLarge {
            len: len as u64,
            max: max_body,
        });
    }
    let body = &input[HEADER_LEN..];
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => return Err(DecodeError::Truncated),
        std::cmp::Ordering::Greater => return Err(DecodeError::Trailing(body.len() - len)),
        std::cmp::Ordering::Equal => {}
    }
    let mut d = binary::Decoder::new(body);
    let count = d.read_length()?;
    // The messages are a sequence: one level deep, as for `from_binary`, so the gateway
    // accepts no value nested deeper than the clients it forwards it to can decode.
    d.enter_sequence()?;
    for _ in 0..count {
        let start = d.position();
        let msg = M::deserialize(&mut d)?;
        f(msg, &body[start..d.position()]);
    }
    d.finish()
}

/// Starts a binary frame in `out`; returns the offset to pass to [`finish_frame`].
/// Between the two calls, append the varint message count and then the messages.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&[0; 4]);
    start
}

/// Writes the body length into a frame started by [`begin_frame`]. The body must be under
/// 4 GiB (frames are far smaller: they are bounded by the frame limit and batch sizes).
pub fn finish_frame(out: &mut [u8], start: usize) {
    let body = (out.len() - start - HEADER_LEN) as u32;
    out[start + 1..start + HEADER_LEN].copy_from_slice(&body.to_le_bytes());
}

/// Decodes a buffer that must hold exactly one binary frame (a WebSocket message).
pub fn from_binary<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
) -> Result<Vec<M>, DecodeError> {
    let (messages, used) = match decode_binary(input, max_body) {
        Err(DecodeError::Incomplete(_)) => return Err(DecodeError::Truncated),
        other => other?,
    };
    if used != input.len() {
        return Err(DecodeError::Trailing(input.len() - used));
    }
    Ok(messages)
}

#[derive(Serialize)]
struct JsonFrameOut<'a, M> {
    v: u8,
    messages: &'a [M],
}

#[derive(Deserialize)]
struct JsonFrameIn<M> {
    v: u64,
    messages: Vec<M>,
}

#[derive(Deserialize)]
struct JsonVersion {
    v: u64,
}

/// The JSON form of a frame holding `messages`.
pub fn to_json<M: Serialize>(messages: &[M]) -> Result<Vec<u8>, EncodeError> {
    Ok(serde_json::to_vec(&JsonFrameOut {
        v: PROTOCOL_VERSION,
        messages,
    })?)
}

/// Decodes the JSON form of a frame.
pub fn from_json<M: DeserializeOwned>(
    input: &[u8],
    max_body: usize,
) -> Result<Vec<M>, DecodeError> {
    if input.len() > max_body {
        return Err(DecodeError::TooLarge {
            len: input.len() as u64,
            max: max_body,
        });
    }
    match serde_json::from_slice::<JsonFrameIn<M>>(input) {
        Ok(f) if f.v == u64::from(PROTOCOL_VERSION) => Ok(f.messages),
        Ok(f) => Err(DecodeError::UnsupportedVersion(f.v)),
        Err(e) => match serde_json::from_slice::<JsonVersion>(input) {
            Ok(JsonVersion { v }) if v != u64::from(PROTOCOL_VERSION) => {
                Err(DecodeError::UnsupportedVersion(v))
            }
            _ => Err(e.into()),
        },
    }
}

/// The two encodings of the native protocol, chosen by WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Json,
}

impl Encoding {
    /// The encoding for a WebSocket subprotocol name.
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        match name {
            SUBPROTOCOL_BINARY => Some(Encoding::Binary),
            SUBPROTOCOL_JSON => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Binary => SUBPROTOCOL_BINARY,
            Encoding::Json => SUBPROTOCOL_JSON,
        }
    }

    /// Encodes a frame.
    pub fn encode<M: Serialize>(self, messages: &[M]) -> Result<Vec<u8>, EncodeError> {
        match self {
            Encoding::Binary => to_binary(messages),
            Encoding::Json => to_json(messages),
        }
    }

    /// Decodes a complete frame.
    pub fn decode<M: DeserializeOwned>(
        self,
        input: &[u8],
        max_body: usize,
    ) -> Result<Vec<M>, DecodeError> {
        match self {
            Encoding::Binary => from_binary(input, max_body),
            Encoding::Json => from_json(input, max_body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(i: u64) -> ClientMsg {
        ClientMsg::Publish(Publish {
            topic: "/t".into(),
            data: Data::Vector(vec![Data::string("ping"), Data::Count(i)]),
        })
    }

    #[test]
    fn binary_frame_layout_and_batches() {
        let batch: Vec<_> = (0..3).map(publish).collect();
        let bytes = to_binary(&batch).unwrap();
        assert_eq!(bytes[0], PROTOCOL_VERSION);
        let len = u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize;
        assert_eq!(len + HEADER_LEN, bytes.len());
        assert_eq!(bytes[5], 3, "message count");
        let (back, used) = decode_binary::<ClientMsg>(&bytes, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!((back, used), (batch, bytes.len()));
    }

    #[test]
    fn streaming_decode_needs_more_then_succeeds() {
        let mut stream = to_binary(&[publish(1)]).unwrap();
        stream.extend(to_binary(&[publish(2), publish(3)]).unwrap());
        for cut in 0..stream.len() {
            match decode_binary::<ClientMsg>(&stream[..cut], DEFAULT_MAX_FRAME) {
                Err(DecodeError::Incomplete(n)) => assert!(n > 0),
                Ok((msgs, used)) => {
                    assert_eq!(msgs, vec![publish(1)]);
                    assert!(used <= cut);
                }
                Err(e) => panic!("cut {cut}: {e}"),
            }
        }
        let (_, used) = decode_binary::<ClientMsg>(&stream, DEFAULT_MAX_FRAME).unwrap();
        let (second, _) = decode_binary::<ClientMsg>(&stream[used..], DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(second, vec![publish(2), publish(3)]);
    }

    #[test]
    fn limits_and_versions() {
        let frame = to_binary(&[publish(1)]).unwrap();
        let err = decode_binary::<ClientMsg>(&frame, 4).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { max: 4, .. }));
        // The size check fires from the header alone, before the body arrives.
        let err = decode_binary::<ClientMsg>(&frame[..HEADER_LEN], 4).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
        let mut v2 = frame.clone();
        v2[0] = 2;
        assert_eq!(
            decode_binary::<ClientMsg>(&v2, DEFAULT_MAX_FRAME).unwrap_err(),
            DecodeError::UnsupportedVersion(2)
        );
        assert_eq!(
            from_json::<ClientMsg>(br#"{"v":7,"messages":[{"bogus":1}]}"#, DEFAULT_MAX_FRAME)
                .unwrap_err(),
            DecodeError::UnsupportedVersion(7)
        );
        assert_eq!(
            from_binary::<ClientMsg>(&frame[..frame.len() - 1], DEFAULT_MAX_FRAME).unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn json_form() {
        let text = to_json(&[publish(7)]).unwrap();
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            r#"{"v":1,"messages":[{"publish":{"topic":"/t","data":{"@data-type":"vector","data":[{"@data-type":"string","data":"ping"},{"@data-type":"count","data":7}]}}}]}"#
        );
        let back: Vec<ClientMsg> = from_json(&text, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(back, vec![publish(7)]);
    }

    #[test]
    fn publish_and_message_differ_in_the_first_byte() {
        let p = Publish {
            topic: "/a/b".into(),
            data: Data::Vector(vec![Data::Count(9)]),
        };
        let client = to_binary(&[ClientMsg::Publish(p.clone())]).unwrap();
        let server = to_binary(&[ServerMsg::Message(p.clone())]).unwrap();
        let mut seen = Vec::new();
        for_each_binary::<ClientMsg>(&client, DEFAULT_MAX_FRAME, |m, raw| {
            seen.push(m);
            assert_eq!(raw[0], CLIENT_PUBLISH_TAG);
            let mut swapped = raw.to_vec();
            swapped[0] = SERVER_MESSAGE_TAG;
            assert_eq!(&swapped[..], &server[HEADER_LEN + 1..]);
        })
        .unwrap();
        assert_eq!(seen, vec![ClientMsg::Publish(p)]);
        // A frame assembled from raw messages equals the encoder's.
        let mut out = Vec::new();
        let start = begin_frame(&mut out);
        binary::write_varint(&mut out, 1);
        out.extend_from_slice(&server[HEADER_LEN + 1..]);
        finish_frame(&mut out, start);
        assert_eq!(out, server);
    }

    #[test]
    fn node_ids() {
        let id = NodeId::from_random([0xab; 16]);
        let text = id.to_string();
        assert_eq!(text, "abababab-abab-4bab-abab-abababababab");
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert!("abababab-abab-4bab-abab-ababababab"
            .parse::<NodeId>()
            .is_err());
        assert!("zzababab-abab-4bab-abab-abababababab"
            .parse::<NodeId>()
            .is_err());
    }
}
