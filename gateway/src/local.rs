//! In-process client connections: a [`broker_client::Client`] whose WebSocket runs over an
//! in-memory stream that this endpoint's own router serves, so a program embedding the
//! endpoint (the Python package's clones, for one) gets every client feature (clones with
//! their retries and `await_idle`, remote store handles) without opening a TCP port.
//!
//! Layer: beside the listeners; uses the HTTP router and the client crate.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use crate::state::Shared;

/// The address local connections count under (per-address limits, logs).
const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
/// Bytes buffered in each direction of a local connection.
const PIPE: usize = 1 << 18;

/// The endpoint's side of local connections, as a listener the router serves.
struct LocalListener {
    rx: mpsc::UnboundedReceiver<DuplexStream>,
}

impl axum::serve::Listener for LocalListener {
    type Io = DuplexStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(s) => (s, LOCAL),
            // The endpoint is gone: no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(LOCAL)
    }
}

/// Where new local connections go; the serving task starts with the first one.
fn acceptor(shared: &Arc<Shared>) -> mpsc::UnboundedSender<DuplexStream> {
    shared
        .local
        .get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let token = shared.shutdown.clone();
            let router = crate::http::router(shared.clone());
            shared.tasks.spawn(async move {
                use axum::serve::ListenerExt;
                // (`tap_io` gives the listener axum's `ConnectInfo<SocketAddr>`.)
                let _ = axum::serve(
                    LocalListener { rx }.tap_io(|_| {}),
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            });
            tx
        })
        .clone()
}

/// Opens a client connection to this endpoint inside the process.
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    opts: broker_client::ClientOptions,
) -> Result<broker_client::Client, broker_client::ClientError> {
    let url = format!("ws://localhost{}", broker_wasm::protocol::CLIENT_PATH);
    if shared.shutdown.is_cancelled() {
        return Err(broker_client::ClientError::Connect(
            url,
            "the endpoint was shut down".into(),
        ));
    }
    let (ours, theirs) = tokio::io::duplex(PIPE);
    acceptor(shared).send(ours).map_err(|_| {
        broker_client::ClientError::Connect(url.clone(), "the endpoint was shut down".into())
    })?;
    broker_client::Client::connect_stream(theirs, &url, opts).await
}
