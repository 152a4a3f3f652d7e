//! The broker gateway: an endpoint (routing, peering, status events) with an axum server in
//! front of it for native clients, Zeek's WebSocket JSON API, peers and the dashboard.
//!
//! # Layout
//! - [`config`]: flags and environment, defaults.
//! - [`endpoint`]: [`Endpoint`], the API a Rust program embeds.
//! - `state`: the state every task of an endpoint holds.
//! - [`hub`]: subscriptions and delivery to consumers, encoded once per wire format.
//! - [`peering`]: gateway-to-gateway links, adverts, loop-free forwarding, reconnects.
//! - `conn`: connection handling — one native-protocol client, one Zeek JSON API client,
//!   keepalive and the limits they share.
//! - [`store`]: master stores (memory, SQLite), relays of remote masters, clone feeds.
//! - [`http`]: routes (`/healthz`, `/metrics`, `/v1/broker`, `/v1/messages/json`, `/v1/peer`,
//!   static files); `static_files`: the dashboard and the npm package, compressed, with
//!   validators and cache headers.
//! - [`client`], [`subscriber`], [`namespace_client`]: re-exports of the `broker-client`
//!   crate (the native Rust client of a remote gateway, whose subscriber and store handles
//!   the endpoint shares), kept for one release; use `broker_client` directly.
//! - [`metrics`]: counters rendered for Prometheus.
//! - [`history`]: the bounded per-prefix histories (`--history`) that resuming clients replay.
//! - [`namespace`]: Data Broker namespaces (tuple spaces) served by the gateway.

pub(crate) mod auth;
pub mod config;
mod conn;
pub mod endpoint;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub(crate) mod http;
pub(crate) mod hub;
mod local;
pub(crate) mod metrics;
pub(crate) mod namespace;
pub(crate) mod peering;
mod state;
mod static_files;
pub(crate) mod store;
pub mod tls;
pub mod uplink;

pub use config::{Config, SlowConsumerPolicy};
pub use endpoint::{Endpoint, EndpointError};
pub use hub::StatusEvent;
pub use namespace::DB_FILE as NAMESPACE_DB_FILE;
pub use peering::PeerError;
pub use store::{CloneEvent, CloneStore, Store, StoreError};

// The client moved to the `broker-client` crate; these paths keep working for one release.
pub use broker_client::namespace as namespace_client;
pub use broker_client::{client, subscriber};
pub use broker_client::{Client, Closed, StatusSubscriber, Subscriber};

/// Version of the gateway.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
