//! One uplink's connections to a Zeek node (ZU-02..10): connect with the configured headers,
//! the handshake (topic list, then Zeek's ack), delivery of what Zeek sends, events up to
//! Zeek, Zeek's `error` replies surfaced, keepalive, and reconnection with jittered backoff.
//!
//! Subscriptions are fixed per connection (ZU-05): when the spec changes, the new connection
//! is opened and acknowledged before the old one closes, and the two streams are aligned so
//! that nothing is lost and nothing delivered twice (see [`handoff`]).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_wasm::protocol::{NetworkInfo, UplinkSpec};
use broker_wasm::zeek_json::{self, ServerMessage};
use broker_wasm::{ErrorCode, StatusCode};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::route::{covered, zeek_node, UplinkStatus};
use super::table::{self, TableEvent};
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::store::{Cmd, TableCmd};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// How long the old and the new connection of a changed spec overlap at most (ZU-05).
const HANDOFF: Duration = Duration::from_secs(2);
/// Messages of the new connection held back while the streams are aligned.
const HANDOFF_MAX: usize = 100_000;

type Ws = tokio_tungstenite::WebSocketStream<broker_client::tls::ClientStream>;
/// A connection being set up for a changed spec.
type Connecting = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Conn, String>> + Send>>;

/// An acknowledged connection to Zeek.
struct Conn {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    spec: UplinkSpec,
    endpoint: String,
    version: String,
    /// The Zeek node behind `endpoint` (see [`zeek_node`]).
    zeek: Arc<str>,
}

impl Conn {
    fn zeek(&self) -> &str {
        &self.zeek
    }
}

/// What one uplink keeps across its connections.
struct Ctx {
    shared: Arc<Shared>,
    status: Arc<UplinkStatus>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The uplink's decoder thread (see [`decoder`]).
    work: mpsc::Sender<Work>,
    network: Option<NetworkInfo>,
}

/// What the decoder thread of an uplink does, in order.
enum Work {
    /// Messages from Zeek node `zeek`, as they came.
    Texts(Arc<str>, Vec<Utf8Bytes>),
    /// The uplink is connected again: the tables it feeds are rebuilt from what comes next.
    Live,
    /// The uplink lost Zeek: the tables it feeds are stale.
    Lost,
}

/// Messages read from Zeek before they go to the decoder thread in one batch.
const WORK_BATCH: usize = 256;

/// Starts the thread that decodes and delivers what an uplink reads (ZU-06). Decoding Zeek's
/// JSON is most of an uplink's work; on its own thread it neither starves the tasks that
/// write to clients (woken on this runtime's thread, they would wait behind the reader) nor
/// waits for them. The channel is bounded: a decoder that falls behind slows the reader, and
/// with it Zeek's connection, instead of growing a queue. It ends when the uplink does.
fn decoder(shared: Arc<Shared>, status: Arc<UplinkStatus>) -> mpsc::Sender<Work> {
    let (tx, mut rx) = mpsc::channel::<Work>(64);
    let rt = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("zeek-uplink".into())
        .spawn(move || {
            // Stores created here (a new `zeek:` table) run on the endpoint's runtime.
            let _rt = rt.enter();
            let mut tables = HashSet::new();
            while let Some(w) = rx.blocking_recv() {
                match w {
                    Work::Texts(zeek, texts) => {
                        for t in texts {
                            on_text(&shared, &status, &mut tables, &zeek, t.as_str());
                        }
                    }
                    Work::Live | Work::Lost => {
                        let cmd = || match w {
                            Work::Live => TableCmd::Rebuild,
                            _ => TableCmd::Lost,
                        };
                        for name in &tables {
                            if let Some(h) = shared.stores.get(name) {
                                h.send(Cmd::Table(cmd()));
                            }
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(%e, "cannot start the uplink's decoder thread");
    }
    tx
}

enum End {
    Cancelled,
    Lost(String),
}

/// Runs the uplink until `cancel` (removed, or shutdown).
pub(crate) async fn run(
    shared: Arc<Shared>,
    status: Arc<UplinkStatus>,
    mut spec_rx: watch::Receiver<UplinkSpec>,
    cancel: CancellationToken,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let network = network_of(&status.url);
    let work = decoder(shared.clone(), status.clone());
    let mut ctx = Ctx {
        shared,
        status,
        tls,
        work,
        network,
    };
    let mut attempt = 0u32;
    loop {
        let spec = spec_rx.borrow_and_update().clone();
        let conn = tokio::select! {
            c = connect(ctx.shared.clone(), ctx.tls.clone(), spec) => c,
            _ = cancel.cancelled() => break,
        };
        match conn {
            Ok(conn) => {
                attempt = 0;
                match serve(&mut ctx, conn, &mut spec_rx, &cancel).await {
                    End::Cancelled => break,
                    End::Lost(why) => {
                        ctx.status.set_error(why.clone());
                        tracing::warn!(url = ctx.status.url, why, "zeek uplink lost");
                    }
                }
            }
            Err(e) => {
                ctx.status.set_error(e.clone());
                if attempt == 0 {
                    // One error per outage, not one per attempt.
                    ctx.shared.hub.error(
                        ErrorCode::PeerUnavailable,
                        format!("zeek uplink {}: {e}", ctx.status.url),
                    );
                }
                tracing::debug!(url = ctx.status.url, e, "zeek uplink attempt failed");
                attempt += 1;
            }
        }
        ctx.status.set_state("reconnecting");
        let wait = crate::peering::dial::backoff(attempt, BACKOFF_CAP);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = spec_rx.changed() => {}
            _ = cancel.cancelled() => break,
        }
    }
    ctx.shared.up.disconnected(&ctx.status.url);
    ctx.status.set_state("stopped");
}

fn network_of(url: &str) -> Option<NetworkInfo> {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().ok()?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        });
    Some(NetworkInfo {
        address: uri.host()?.to_owned(),
        port,
    })
}

/// Opens a connection and does the handshake (ZU-04, ZU-09).
async fn connect(
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ClientConfig>>,
    spec: UplinkSpec,
) -> Result<Conn, String> {
    let mut req = spec
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    for (n, v) in &spec.headers {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(v).map_err(|e| e.to_string())?;
        req.headers_mut().append(name, value);
    }
    if let Some(a) = &spec.app_name {
        let value = HeaderValue::from_str(a).map_err(|e| e.to_string())?;
        req.headers_mut().insert("x-application-name", value);
    }
    let ws = tokio::time::timeout(
        CONNECT_TIMEOUT,
        broker_client::tls::connect_ws(
            req,
            Some(crate::peering::dial::ws_config(shared.config.max_frame)),
            tls,
        ),
    )
    .await
    .map_err(|_| "timed out connecting".to_owned())??;
    let (mut sink, mut stream) = ws.split();
    let topics: Vec<&str> = spec.subscribe.iter().map(String::as_str).collect();
    sink.send(Message::Text(zeek_json::handshake(&topics).into()))
        .await
        .map_err(|e| e.to_string())?;
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t),
                Some(Ok(Message::Close(_))) | None => {
                    return Err("Zeek closed the connection during the handshake".to_owned())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no ack from Zeek within 10 s".to_owned())??;
    match zeek_json::decode_server_message(first.as_bytes()) {
        Ok(ServerMessage::Ack { endpoint, version }) => Ok(Conn {
            sink,
            stream,
            spec,
            zeek: Arc::from(zeek_node(&endpoint)),
            endpoint,
            version,
        }),
        Ok(ServerMessage::Error { code, context }) => {
            Err(format!("Zeek refused the handshake: {code}: {context}"))
        }
        Ok(ServerMessage::Data(_)) => Err("Zeek sent data before its ack".into()),
        Err(e) => Err(format!("Zeek's answer to the handshake is not an ack: {e}")),
    }
}

/// A changed spec needs a new connection unless only the publish prefixes changed.
fn needs_reconnect(old: &UplinkSpec, new: &UplinkSpec) -> bool {
    old.subscribe != new.subscribe || old.headers != new.headers || old.app_name != new.app_name
}

/// Makes `conn` the uplink's connection: routing, adverts, statuses, tables.
async fn go_live(ctx: &Ctx, conn: &Conn, tx: &mpsc::Sender<Bytes>, first: bool) {
    let s = &ctx.shared;
    ctx.status.set_connected(&conn.endpoint, &conn.version);
    s.up.connected(
        &ctx.status.url,
        conn.zeek(),
        conn.spec.subscribe.clone(),
        tx.clone(),
    );
    s.peering.set_local_uplinks(s.up.adverts());
    if first {
        ctx.status.connects.fetch_add(1, Relaxed);
        Metrics::add(&s.metrics.uplink_connects_total, 1);
        s.hub.status(
            StatusCode::PeerAdded,
            None,
            ctx.network.clone(),
            &format!(
                "zeek uplink {}: connected to Zeek endpoint {} (version {})",
                ctx.status.url, conn.endpoint, conn.version
            ),
        );
        // In order with the messages before it, and never dropped.
        let _ = ctx.work.send(Work::Live).await;
        tracing::info!(
            url = ctx.status.url,
            endpoint = conn.endpoint,
            version = conn.version,
            "zeek uplink connected"
        );
    }
}

/// Serves an acknowledged connection until it ends.
async fn serve(
    ctx: &mut Ctx,
    mut conn: Conn,
    spec_rx: &mut watch::Receiver<UplinkSpec>,
    cancel: &CancellationToken,
) -> End {
    let (tx, mut rx) = mpsc::channel::<Bytes>(ctx.shared.config.queue_size.max(1));
    go_live(ctx, &conn, &tx, true).await;
    let idle = (ctx.shared.config.idle_timeout > 0.0)
        .then(|| Duration::from_secs_f64(ctx.shared.config.idle_timeout));
    let mut pinger = crate::conn::keepalive::Pinger::new(&ctx.shared.config);
    let mut last_rx = Instant::now();
    let mut batch = Vec::with_capacity(256);
    let mut next: Option<Connecting> = None;
    let mut pending_spec: Option<UplinkSpec> = None;
    let mut seen: VecDeque<Utf8Bytes> = VecDeque::new();
    let end = loop {
        tokio::select! {
            m = conn.stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    last_rx = Instant::now();
                    // While a new connection is being set up, remember what this one
                    // delivered: the handoff aligns the two streams with it.
                    let remember = if next.is_some() { Some(&mut seen) } else { None };
                    let (texts, end) = read_ready(&mut conn, t, remember);
                    if ctx.work.send(Work::Texts(conn.zeek.clone(), texts)).await.is_err() {
                        break End::Lost("the uplink's decoder stopped".into());
                    }
                    if let Some(why) = end {
                        break End::Lost(why);
                    }
                }
                Some(Ok(Message::Close(_))) | None => break End::Lost("Zeek closed the connection".into()),
                Some(Err(e)) => break End::Lost(e.to_string()),
                Some(Ok(_)) => last_rx = Instant::now(),
            },
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break End::Lost("the uplink's queue closed".into());
                }
                if let Err(e) = write(&ctx.shared, &mut conn, &mut batch).await {
                    break End::Lost(e);
                }
            }
            _ = pinger.tick() => {
                if idle.is_some_and(|i| last_rx.elapsed() > i) {
                    break End::Lost("Zeek sent nothing within the idle timeout".into());
                }
                if conn.sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break End::Lost("cannot write to Zeek".into());
                }
            }
            r = spec_rx.changed(), if next.is_none() => {
                if r.is_err() {
                    break End::Cancelled;
                }
                let spec = spec_rx.borrow_and_update().clone();
                if needs_reconnect(&conn.spec, &spec) {
                    pending_spec = Some(spec);
                } else {
                    conn.spec = spec;
                }
            }
            r = async { next.as_mut().expect("guarded").await }, if next.is_some() => {
                next = None;
                match r {
                    Ok(new) => {
                        let seen = std::mem::take(&mut seen);
                        conn = handoff(ctx, conn, new, seen, &mut rx).await;
                        go_live(ctx, &conn, &tx, false).await;
                        tracing::info!(url = ctx.status.url, subscribe = ?conn.spec.subscribe, "zeek uplink now on a new connection");
                    }
                    Err(e) => {
                        seen.clear();
                        ctx.status.set_error(e.clone());
                        ctx.shared.hub.error(
                            ErrorCode::PeerUnavailable,
                            format!("zeek uplink {}: the new subscriptions could not be set up ({e}); staying on the old connection", ctx.status.url),
                        );
                    }
                }
            }
            _ = cancel.cancelled() => {
                let _ = conn.sink.send(Message::Close(None)).await;
                break End::Cancelled;
            }
        }
        if next.is_none() {
            if let Some(spec) = pending_spec.take() {
                next = Some(Box::pin(connect(ctx.shared.clone(), ctx.tls.clone(), spec)));
            }
        }
    };
    drop(next);
    lost(ctx).await;
    end
}

/// `first` and whatever else the connection has already read, up to [`WORK_BATCH`] messages;
/// also why the connection ended, if it did meanwhile. `seen` remembers the texts.
fn read_ready(
    conn: &mut Conn,
    first: Utf8Bytes,
    mut seen: Option<&mut VecDeque<Utf8Bytes>>,
) -> (Vec<Utf8Bytes>, Option<String>) {
    use futures_util::FutureExt;
    let mut texts = Vec::with_capacity(16);
    let mut keep = |t: Utf8Bytes, texts: &mut Vec<Utf8Bytes>| {
        if let Some(s) = seen.as_deref_mut() {
            if s.len() < HANDOFF_MAX {
                s.push_back(t.clone());
            }
        }
        texts.push(t);
    };
    keep(first, &mut texts);
    while texts.len() < WORK_BATCH {
        match conn.stream.next().now_or_never() {
            Some(Some(Ok(Message::Text(t)))) => keep(t, &mut texts),
            Some(Some(Ok(Message::Close(_)))) | Some(None) => {
                return (texts, Some("Zeek closed the connection".into()))
            }
            Some(Some(Ok(_))) => {}
            Some(Some(Err(e))) => return (texts, Some(e.to_string())),
            None => break,
        }
    }
    (texts, None)
}

/// Hands one message to the decoder thread (the handoff's path; the reader batches).
async fn deliver(ctx: &Ctx, zeek: &Arc<str>, text: Utf8Bytes) {
    let _ = ctx.work.send(Work::Texts(zeek.clone(), vec![text])).await;
}

/// The connection ended: routing, adverts, statuses, tables.
async fn lost(ctx: &Ctx) {
    let s = &ctx.shared;
    // The state first: whoever hears the status and asks sees it already.
    ctx.status.set_state("reconnecting");
    s.up.disconnected(&ctx.status.url);
    s.peering.set_local_uplinks(s.up.adverts());
    s.hub.status(
        StatusCode::PeerLost,
        None,
        ctx.network.clone(),
        &format!(
            "zeek uplink {}: lost the connection to Zeek",
            ctx.status.url
        ),
    );
    let _ = ctx.work.send(Work::Lost).await;
}

/// Sends queued events up to Zeek as text frames, flushed once per batch.
async fn write(shared: &Shared, conn: &mut Conn, batch: &mut Vec<Bytes>) -> Result<(), String> {
    for b in batch.drain(..) {
        Metrics::add(&shared.metrics.bytes_out_total, b.len() as u64);
        let text = Utf8Bytes::try_from(b).map_err(|e| e.to_string())?;
        conn.sink
            .feed(Message::Text(text))
            .await
            .map_err(|e| e.to_string())?;
    }
    conn.sink.flush().await.map_err(|e| e.to_string())
}

/// One message from Zeek (ZU-06, ZU-08): data to every consumer and the peer graph (tables
/// also to their store), errors to the status subscribers.
fn on_text(
    s: &Shared,
    status: &UplinkStatus,
    tables: &mut HashSet<String>,
    zeek: &str,
    text: &str,
) {
    Metrics::add(&s.metrics.bytes_in_total, text.len() as u64);
    match zeek_json::decode_server_text(text) {
        Ok(ServerMessage::Data(p)) => {
            status.messages_in.fetch_add(1, Relaxed);
            Metrics::add(&s.metrics.uplink_messages_in_total, 1);
            match table::parse(&p.data) {
                Ok(None) => {}
                Ok(Some(TableEvent::Changes(batch))) => {
                    let name = batch.store();
                    match s.stores.zeek_table(&name) {
                        Ok(h) => {
                            tables.insert(name);
                            h.send(Cmd::Table(TableCmd::Apply(batch.changes)));
                        }
                        Err(e) => tracing::warn!(store = name, ?e, "cannot mirror a Zeek table"),
                    }
                }
                Ok(Some(TableEvent::Published(id))) => {
                    if let Some(h) = s.stores.get(&table::store_name(&id)) {
                        h.send(Cmd::Table(TableCmd::Rebuilt));
                    }
                }
                Err(e) => {
                    status.errors.fetch_add(1, Relaxed);
                    s.hub.error(
                        ErrorCode::InvalidData,
                        format!("zeek uplink {}: {e}", status.url),
                    );
                }
            }
            s.dispatch_from_zeek(&p, zeek);
        }
        Ok(ServerMessage::Error { code, context }) => {
            // ZU-08: Zeek dropped something this gateway sent; never silence.
            status.errors.fetch_add(1, Relaxed);
            status.set_error(format!("{code}: {context}"));
            Metrics::add(&s.metrics.uplink_errors_total, 1);
            s.hub.error(
                ErrorCode::from_name(&code).unwrap_or(ErrorCode::Unspecified),
                format!(
                    "zeek uplink {}: Zeek answered {code}: {context}",
                    status.url
                ),
            );
        }
        Ok(ServerMessage::Ack { .. }) => {}
        Err(e) => {
            status.errors.fetch_add(1, Relaxed);
            Metrics::add(&s.metrics.errors_total, 1);
            tracing::warn!(url = status.url, %e, "undecodable message from Zeek");
        }
    }
}

/// The topic of a data message, for aligning two streams.
fn topic_of(text: &[u8]) -> Option<String> {
    match zeek_json::decode_server_message(text) {
        Ok(ServerMessage::Data(p)) => Some(p.topic),
        _ => None,
    }
}

/// Moves the uplink from `old` to `new` (both acknowledged) without losing or repeating a
/// message (ZU-05). Zeek sends both connections the same text for a message both subscribe
/// to, in the same order; the new connection's stream of common topics starts somewhere in
/// the old one's. `seen` holds what the old connection delivered since the new one was
/// asked for. Once the first common message of the new stream is found among what the old
/// one delivered, the old connection closes, the new stream's copies of messages the old
/// one already delivered are skipped, and the rest is delivered. If that does not happen
/// within [`HANDOFF`], whatever the new connection holds is delivered (a repeat is better
/// than a loss). Events queued for Zeek meanwhile go up the new connection.
async fn handoff(
    ctx: &mut Ctx,
    mut old: Conn,
    mut new: Conn,
    mut seen: VecDeque<Utf8Bytes>,
    rx: &mut mpsc::Receiver<Bytes>,
) -> Conn {
    let subscribe = new.spec.subscribe.clone();
    let common = |t: &[u8]| topic_of(t).is_some_and(|tp| covered(&subscribe, &tp));
    // Only messages of topics both connections take can appear in both streams.
    let mut old_common: VecDeque<Utf8Bytes> =
        seen.drain(..).filter(|t| common(t.as_bytes())).collect();
    let mut held: VecDeque<(Utf8Bytes, bool)> = VecDeque::new();
    let deadline = tokio::time::sleep(HANDOFF);
    tokio::pin!(deadline);
    let mut batch = Vec::new();
    let old_zeek = old.zeek.clone();
    let aligned = loop {
        // The first common message of the new stream, found among the old one's?
        if let Some((h0, _)) = held.iter().find(|(_, c)| *c) {
            if let Some(p) = old_common
                .iter()
                .position(|t| t.as_bytes() == h0.as_bytes())
            {
                old_common.drain(..p);
                break true;
            }
        }
        tokio::select! {
            m = old.stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if common(t.as_bytes()) && old_common.len() < HANDOFF_MAX {
                        old_common.push_back(t.clone());
                    }
                    deliver(ctx, &old_zeek, t).await;
                }
                Some(Ok(_)) => {}
                // The old connection ended: the new one has everything from its ack on.
                Some(Err(_)) | None => break false,
            },
            m = new.stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let c = common(t.as_bytes());
                    held.push_back((t, c));
                    if held.len() >= HANDOFF_MAX {
                        break false;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    // The new connection failed: stay on the old one; what the new one
                    // held came on the old one too.
                    ctx.status.set_error("the new connection ended during the handoff");
                    return old;
                }
            },
            n = rx.recv_many(&mut batch, 256) => {
                if n > 0 && write(&ctx.shared, &mut new, &mut batch).await.is_err() {
                    batch.clear();
                }
            }
            _ = &mut deadline => break false,
        }
    };
    let _ = old.sink.send(Message::Close(None)).await;
    let zeek = new.zeek.clone();
    for (t, c) in held {
        // Skip the copies of what the old connection delivered already.
        if aligned
            && c
            && old_common
                .front()
                .is_some_and(|o| o.as_bytes() == t.as_bytes())
        {
            old_common.pop_front();
            continue;
        }
        deliver(ctx, &zeek, t).await;
    }
    // Messages of the old stream past the new one's start that have not come on the new
    // connection yet will: skip them there.
    let mut skip = if aligned { old_common } else { VecDeque::new() };
    loop {
        if skip.is_empty() {
            break;
        }
        let m = tokio::time::timeout(HANDOFF, new.stream.next()).await;
        match m {
            Ok(Some(Ok(Message::Text(t)))) => {
                let c = common(t.as_bytes());
                if c && skip.front().is_some_and(|o| o.as_bytes() == t.as_bytes()) {
                    skip.pop_front();
                } else {
                    deliver(ctx, &zeek, t).await;
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    new
}
