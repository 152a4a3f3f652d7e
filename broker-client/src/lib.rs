//! The Rust client of the broker gateway: the tokio driver of broker-wasm's sans-I/O
//! [`ClientCore`](broker_wasm::client::ClientCore), the same core the JS client runs as wasm.
//! This crate owns the socket, the tasks and the queues; the protocol rules live in the core.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use broker_client::Client;
//! use broker_client::broker_wasm::Data;
//! let client = Client::connect("ws://127.0.0.1:9999").await?;
//! let mut sub = client.make_subscriber(["/zeek/events"]);
//! client.publish("/zeek/events/y", Data::string("hi")).await?;
//! let (topic, data) = sub.get().await?;
//! client.shutdown().await;
//! # drop((topic, data)); Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`]: [`Client`], its options and errors; the reader and writer tasks.
//! - [`subscriber`]: [`Subscriber`] and [`StatusSubscriber`] handles (shared with the
//!   gateway's embedded `Endpoint`).
//! - [`store`]: [`Store`] (operations on a master) and [`CloneStore`] (a local replica).
//! - [`namespace`]: Data Broker namespaces ([`Namespace`]) and the PyDBR-shaped
//!   [`namespace::dbr`] layer.
//! - `tls` (feature `tls`, on by default): `wss://` with rustls, and the connector the
//!   gateway's peering dialer shares.
//!
//! # Features
//! - `tls` (default): `wss://` URLs, trusting the system's certificate store unless
//!   [`ClientOptions`] carries a rustls configuration. Without it, `ws://` only.

pub mod client;
pub mod namespace;
mod net;
pub mod subscriber;
#[cfg(feature = "tls")]
pub mod tls;

/// The core this crate drives: the data model ([`broker_wasm::Data`]), the protocol types,
/// clone options; re-exported so a program can depend on this crate alone.
pub use broker_wasm;
pub use broker_wasm::client::Position;
/// Store handles and clones: part of the client (they work through its connection).
pub use client::store;
pub use client::{Client, ClientError, ClientOptions};
pub use namespace::{GetOptions, Namespace, NsError};
pub use store::{CloneEvent, CloneStore, Store, StoreError};
pub use subscriber::{Closed, StatusEvent, StatusSubscriber, Subscriber};
