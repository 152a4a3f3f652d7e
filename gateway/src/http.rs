//! HTTP routes: health, metrics, the three WebSocket endpoints and the static folders.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use broker_wasm::protocol::{Encoding, SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tower_http::services::ServeDir;

use crate::metrics::Metrics;
use crate::{Endpoint, Shared};

/// Paths of the native protocol for clients and for peering gateways (shared with the client).
pub use broker_wasm::protocol::{CLIENT_PATH, PEER_PATH};

/// Body of `/healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub endpoint: String,
}

async fn healthz(State(ep): State<Endpoint>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: crate::VERSION,
        endpoint: ep.node_id().to_string(),
    })
}

async fn metrics(State(ep): State<Endpoint>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ep.metrics_text(),
    )
}

/// A reserved connection slot (total and per remote address), released when dropped: when
/// the connection ends, and also when the WebSocket upgrade never completes.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Relaxed);
        let mut per = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

/// Reserves a connection slot; `None` (and counted) when a limit is reached.
fn admit(ep: &Endpoint, remote: SocketAddr) -> Option<Slot> {
    let s = ep.shared();
    let ip = remote.ip();
    {
        let mut per = s.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = per.entry(ip).or_insert(0);
        let max = s.config.max_connections_per_address;
        if max > 0 && *n >= max {
            Metrics::add(&s.metrics.connections_rejected_total, 1);
            return None;
        }
        *n += 1;
    }
    // From here on the slot releases both counts when dropped.
    let slot = Slot {
        shared: s.clone(),
        ip,
    };
    let n = s.connections.fetch_add(1, Relaxed);
    if n >= s.config.max_connections {
        Metrics::add(&s.metrics.connections_rejected_total, 1);
        return None;
    }
    Metrics::add(&s.metrics.connections_total, 1);
    Some(slot)
}

fn refused() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response()
}

/// Why an upgrade request is refused: the HTTP status and a text.
type Refusal = (StatusCode, String);

/// True if a browser page of `Origin` may open a WebSocket here (cross-site WebSocket
/// hijacking: a page of any site can open a WebSocket to any address, carrying no proof of
/// who wrote it but this header). Programs send no `Origin` and are not affected.
pub(crate) fn origin_allowed(allow: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if allow
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((_, authority)) = origin.split_once("://") else {
        return false; // e.g. "null" (file://, sandboxed frames)
    };
    // The gateway's own pages (the dashboard) always may.
    let same = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case(authority));
    if same || !allow.is_empty() {
        return same;
    }
    // Default: also pages served from this machine.
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks the Origin of an upgrade request; `Err` is the answer to refuse it with.
fn check_origin(ep: &Endpoint, headers: &HeaderMap) -> Result<(), Refusal> {
    if origin_allowed(&ep.shared().config.allow_origins, headers) {
        return Ok(());
    }
    Metrics::add(&ep.shared().metrics.auth_failures_total, 1);
    Err((
        StatusCode::FORBIDDEN,
        "origin not allowed (see --allow-origin)".into(),
    ))
}

fn ws_limits(ws: WebSocketUpgrade, ep: &Endpoint) -> WebSocketUpgrade {
    // Frames up to the limit plus the frame header; larger ones end the connection with
    // close code 1009 (message too big).
    let max = ep.shared().config.max_frame + broker_wasm::protocol::HEADER_LEN;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
}

/// Bytes read from a WebSocket per system call. Each connection holds a read buffer of this
/// size (zeroed, so resident); tungstenite's default of 128 KiB would make 10,000 idle
/// connections cost 1.3 GB. Larger frames still arrive whole, in several reads.
const READ_BUFFER: usize = 8 * 1024;

async fn client_ws(
    ws: WebSocketUpgrade,
    State(ep): State<Endpoint>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_origin(&ep, &headers) {
        return r.into_response();
    }
    // The hello carries the token; an Authorization header is the fallback for programs.
    let (token, _) = crate::auth::token_of_request(&headers);
    let Some(slot) = admit(&ep, remote) else {
        return refused();
    };
    let ws = ws_limits(ws, &ep).protocols([SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON]);
    // The encoding is the subprotocol the client offered first among ours; binary if none.
    let encoding = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Encoding::from_subprotocol)
        .unwrap_or(Encoding::Binary);
    let shared = ep.shared().clone();
    ws.on_upgrade(move |socket| crate::session::run(shared, socket, encoding, remote, slot, token))
}

/// Authenticates the token of an upgrade request; `Err` is the answer to refuse it with.
fn authenticate(
    ep: &Endpoint,
    token: Option<&str>,
    remote: SocketAddr,
) -> Result<Arc<crate::auth::Identity>, Refusal> {
    ep.shared().auth.authenticate(token).map_err(|e| {
        Metrics::add(&ep.shared().metrics.auth_failures_total, 1);
        tracing::info!(%remote, "connection refused: {e}");
        (StatusCode::UNAUTHORIZED, format!("unauthorized: {e}"))
    })
}

async fn zeek_ws(
    ws: WebSocketUpgrade,
    State(ep): State<Endpoint>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_origin(&ep, &headers) {
        return r.into_response();
    }
    // Zeek's API has no place for a token in its messages: it comes with the upgrade.
    let (token, echo) = crate::auth::token_of_request(&headers);
    let who = match authenticate(&ep, token.as_deref(), remote) {
        Ok(who) => who,
        Err(r) => return r.into_response(),
    };
    let Some(slot) = admit(&ep, remote) else {
        return refused();
    };
    let shared = ep.shared().clone();
    let ws = ws_limits(ws, &ep);
    let ws = match echo {
        Some(p) => ws.protocols([p]),
        None => ws,
    };
    ws.on_upgrade(move |socket| crate::zeek_ws::run(shared, socket, remote, slot, who))
}

async fn peer_ws(
    ws: WebSocketUpgrade,
    State(ep): State<Endpoint>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_origin(&ep, &headers) {
        return r.into_response();
    }
    let (token, _) = crate::auth::token_of_request(&headers);
    match authenticate(&ep, token.as_deref(), remote) {
        Ok(who) if who.grants.peer => {}
        Ok(who) => {
            Metrics::add(&ep.shared().metrics.denied_total, 1);
            tracing::info!(%remote, who = who.name, "peer refused: no `peer` grant");
            return (StatusCode::FORBIDDEN, "not allowed: peering (grant `peer`)").into_response();
        }
        Err(r) => return r.into_response(),
    }
    let Some(slot) = admit(&ep, remote) else {
        return refused();
    };
    let shared = ep.shared().clone();
    ws_limits(ws, &ep)
        .protocols([SUBPROTOCOL_BINARY])
        .on_upgrade(move |socket| async move {
            use axum::extract::ws::Message;
            let (sink, stream) = socket.split();
            let rx = stream
                .take_while(|m| std::future::ready(m.is_ok()))
                .map(|m| match m {
                    Ok(Message::Binary(b)) => Some(b),
                    _ => None,
                })
                .boxed();
            let tx =
                sink.with(|b: Bytes| std::future::ready(Ok::<_, axum::Error>(Message::Binary(b))));
            let (hello_tx, _hello_rx) = tokio::sync::oneshot::channel();
            let network = crate::session::network_of(remote);
            crate::peering::drive_link(shared, rx, Box::pin(tx), network, false, hello_tx).await;
            drop(slot);
        })
}

/// All routes of the gateway.
pub fn router(ep: Endpoint) -> Router {
    let web = ServeDir::new(&ep.shared().config.web_dir).append_index_html_on_directories(true);
    let pkg = ServeDir::new(&ep.shared().config.pkg_dir);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(CLIENT_PATH, get(client_ws))
        .route(broker_wasm::zeek_json::PATH, get(zeek_ws))
        .route(PEER_PATH, get(peer_ws))
        .nest_service("/pkg", pkg)
        .fallback_service(web)
        .with_state(ep)
}
