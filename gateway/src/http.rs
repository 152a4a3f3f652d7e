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

use crate::metrics::Metrics;
use crate::state::{Shared, Slot};

/// Paths of the native protocol for clients and for peering gateways (shared with the client).
pub use broker_wasm::protocol::{CLIENT_PATH, PEER_PATH};

/// Body of `/healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub endpoint: String,
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: crate::VERSION,
        endpoint: shared.id.to_string(),
    })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics_text(),
    )
}

/// Reserves a connection slot; `None` (and counted) when a limit is reached.
fn reserve_slot(s: &Arc<Shared>, remote: SocketAddr) -> Option<Slot> {
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

/// Why an upgrade request is refused: the HTTP status and a text.
type Refusal = (StatusCode, String);

/// How a WebSocket upgrade authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Later, in the first message (native clients; a header token is the fallback).
    InHello,
    /// Now, from the upgrade request (Zeek's API has no place for a token in its messages).
    AtUpgrade,
    /// Now, and the token must grant `peer`.
    Peer,
}

/// An upgrade that passed admission: origin allowed, token accepted (when checked at the
/// upgrade), a connection slot reserved.
struct Admitted {
    slot: Slot,
    /// The token of the request (header or query), for a hello without one.
    token: Option<String>,
    /// The subprotocol that carried the token, echoed back (browsers need it).
    echo: Option<String>,
    /// Who it is, when authenticated at the upgrade.
    who: Option<Arc<crate::auth::Identity>>,
}

/// The one admission step of the three WebSocket upgrades: origin, token, connection slot.
/// `Err` is the answer to refuse the upgrade with (each refusal counted).
fn admit(
    shared: &Arc<Shared>,
    remote: SocketAddr,
    headers: &HeaderMap,
    auth: Auth,
) -> Result<Admitted, Refusal> {
    if !origin_allowed(&shared.config.allow_origins, headers) {
        Metrics::add(&shared.metrics.auth_failures_total, 1);
        return Err((
            StatusCode::FORBIDDEN,
            "origin not allowed (see --allow-origin)".into(),
        ));
    }
    let (token, echo) = crate::auth::token_of_request(headers);
    let who = match auth {
        Auth::InHello => None,
        Auth::AtUpgrade | Auth::Peer => {
            let who = shared.auth.authenticate(token.as_deref()).map_err(|e| {
                Metrics::add(&shared.metrics.auth_failures_total, 1);
                tracing::info!(%remote, "connection refused: {e}");
                (StatusCode::UNAUTHORIZED, format!("unauthorized: {e}"))
            })?;
            if auth == Auth::Peer && !who.grants.peer {
                Metrics::add(&shared.metrics.denied_total, 1);
                tracing::info!(%remote, who = who.name, "peer refused: no `peer` grant");
                return Err((
                    StatusCode::FORBIDDEN,
                    "not allowed: peering (grant `peer`)".into(),
                ));
            }
            Some(who)
        }
    };
    let Some(slot) = reserve_slot(shared, remote) else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "connection limit reached".into(),
        ));
    };
    Ok(Admitted {
        slot,
        token,
        echo,
        who,
    })
}

fn ws_limits(ws: WebSocketUpgrade, shared: &Shared) -> WebSocketUpgrade {
    // Frames up to the limit plus the frame header; larger ones end the connection with
    // close code 1009 (message too big).
    let max = shared.config.max_frame + broker_wasm::protocol::HEADER_LEN;
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
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&shared, remote, &headers, Auth::InHello) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let ws = ws_limits(ws, &shared).protocols([SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON]);
    // The encoding is the subprotocol the client offered first among ours; binary if none.
    let encoding = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Encoding::from_subprotocol)
        .unwrap_or(Encoding::Binary);
    ws.on_upgrade(move |socket| {
        crate::conn::native::run(shared, socket, encoding, remote, a.slot, a.token)
    })
}

async fn zeek_ws(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&shared, remote, &headers, Auth::AtUpgrade) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let who = a.who.expect("authenticated at the upgrade");
    let ws = ws_limits(ws, &shared);
    let ws = match a.echo {
        Some(p) => ws.protocols([p]),
        None => ws,
    };
    ws.on_upgrade(move |socket| crate::conn::zeek::run(shared, socket, remote, a.slot, who))
}

async fn peer_ws(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let a = match admit(&shared, remote, &headers, Auth::Peer) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let slot = a.slot;
    ws_limits(ws, &shared)
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
            let network = crate::conn::limits::network_of(remote);
            crate::peering::link::drive_link(shared, rx, Box::pin(tx), network, false, hello_tx)
                .await;
            drop(slot);
        })
}

/// All routes of the gateway.
pub fn router(shared: Arc<Shared>) -> Router {
    let web = crate::static_files::serve(&shared.config.web_dir, true);
    let pkg = crate::static_files::serve(&shared.config.pkg_dir, false);
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(metrics).layer(tower_http::compression::CompressionLayer::new()),
        )
        .route(CLIENT_PATH, get(client_ws))
        .route(broker_wasm::zeek_json::PATH, get(zeek_ws))
        .route(PEER_PATH, get(peer_ws))
        .nest_service("/pkg", pkg)
        .fallback_service(web)
        .with_state(shared)
}
