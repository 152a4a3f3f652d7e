//! The broker gateway: an endpoint (routing, peering, status events) with an axum server in
//! front of it for native clients, Zeek's WebSocket JSON API, peers and the dashboard.
//!
//! # Layout
//! - [`config`]: flags and environment, defaults.
//! - [`endpoint`]: [`Endpoint`], the API a Rust program embeds; `Shared` state.
//! - [`hub`]: subscriptions and delivery to consumers, encoded once per wire format.
//! - [`peering`]: gateway-to-gateway links, adverts, loop-free forwarding, reconnects.
//! - `conn`: connection handling — one native-protocol client, one Zeek JSON API client,
//!   keepalive and the limits they share.
//! - [`store`]: master stores (memory, SQLite), relays of remote masters, clone feeds.
//! - [`http`]: routes (`/healthz`, `/metrics`, `/v1/broker`, `/v1/messages/json`, `/v1/peer`,
//!   static files).
//! - [`client`]: a native Rust client for a remote gateway, with the endpoint's shape.
//! - [`subscriber`]: subscriber handles shared by endpoint and client.
//! - [`metrics`]: counters rendered for Prometheus.
//! - [`namespace`]: Data Broker namespaces (tuple spaces) served by the gateway.
//! - [`namespace_client`]: the namespace API of [`Client`] and the PyDBR-style `dbr` layer.

pub mod auth;
pub mod client;
pub mod config;
mod conn;
pub mod endpoint;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod namespace;
pub mod namespace_client;
pub mod peering;
mod state;
pub mod store;
pub mod subscriber;
pub mod tls;

pub use client::Client;
pub use config::{Config, SlowConsumerPolicy};
pub use endpoint::{Endpoint, EndpointError};
pub use hub::StatusEvent;
pub use state::Shared;
pub use store::{CloneEvent, CloneStore, Store, StoreError};
pub use subscriber::{Closed, StatusSubscriber, Subscriber};

/// Version of the gateway.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
