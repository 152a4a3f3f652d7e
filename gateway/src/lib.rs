//! The broker gateway: an axum server that runs the endpoint and serves the dashboard.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`http`]: health endpoint and static files (dashboard at `/`, npm package at `/pkg/`).
//! - [`run`]: serve a bound listener until a shutdown future completes.

pub mod config;
pub mod http;

use std::future::Future;
use std::sync::Arc;

use broker_wasm::NodeId;
use tokio::net::TcpListener;

pub use config::Config;

/// Version of the gateway.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// State shared by all handlers.
#[derive(Debug)]
pub struct Gateway {
    /// This endpoint's identity (ZB-01).
    pub id: NodeId,
    pub config: Config,
}

impl Gateway {
    pub fn new(config: Config) -> Arc<Gateway> {
        Arc::new(Gateway {
            id: NodeId(*uuid::Uuid::new_v4().as_bytes()),
            config,
        })
    }
}

/// Serves `listener` until `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(gateway))
        .with_graceful_shutdown(shutdown)
        .await
}
