//! broker-wasm: the client core of the browser-capable broker.
//!
//! It owns one definition of every value and every frame, shared by the gateway, native Rust
//! clients and (compiled to WebAssembly) browsers and Node.js. Nothing here does I/O: codecs
//! take bytes and give values, the subscription index takes topics and gives subscribers.
//!
//! # Layout
//! - [`data`]: the Broker data model (ZB-25..31) with Broker's equality and total ordering.
//! - [`zeek`]: Zeek events as data (ZB-34).
//! - [`dbr`]: the Data Broker's error codes, flags and limits (DB-14, DB-27, DB-36), the PyDBR
//!   flag decoding and the scatter/gather split.
//! - [`codes`]: status codes (SC) and error codes (EC) with numbers and names (ZB-21, ZB-22).
//! - [`topic`]: topic rules, filter normalisation and the prefix-trie subscription index (ZB-12).
//! - [`binary`]: the compact binary serde format used by native frames.
//! - [`client`]: the sans-I/O client state machine (hello, subscriptions, batching, routing);
//!   [`client::namespace`]: the Data Broker client rules every driver calls (DB-13, DB-25).
//! - `serde_data`: how [`Data`] maps onto JSON (Broker's typed JSON, ZB-39) and binary.
//! - [`protocol`]: native frames by direction ([`ClientMsg`], [`ServerMsg`], [`PeerMsg`]) in
//!   binary and JSON form.
//! - [`store`]: store semantics (ZB-48..56) and the clone replica (ZB-58..62).
//! - [`zeek_json`]: Zeek's WebSocket JSON API messages (ZB-36..43).
//! - [`timefmt`]: timestamp/timespan text forms.
//! - [`error`]: typed errors per concern.
//! - `wasm` (wasm32 only): the JavaScript boundary, one file per exported type.

pub mod binary;
pub mod client;
pub mod codes;
pub mod data;
pub mod dbr;
pub mod error;
pub mod protocol;
mod serde_data;
pub mod store;
pub mod timefmt;
pub mod topic;
pub mod zeek;
pub mod zeek_json;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use codes::{ErrorCode, StatusCode};
pub use data::{Address, Data, DataType, Port, Protocol, Set, Subnet, Table, Timespan, Timestamp};
pub use error::{DecodeError, EncodeError, ValueError};
pub use protocol::{ClientMsg, NodeId, PeerMsg, ServerMsg};
pub use zeek::Event;

/// Version of this crate (and of the npm package built from it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
