//! The Redis backend as the gateway drives it: connecting (lazily, again after a failure),
//! operations started in the order each client connection sent them,
//! and the background task that listens for wake-ups, re-polls waiters and renews leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::NamespaceOp;
use redis::ProtocolVersion;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spaces::{repoll_every, RedisSpaces};
use super::{Conn, Target, LEASE_MS};
use crate::namespace::{failure, Outcome, Pending};

/// How long one Redis command may take before it fails (RB-15: no hang).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How the gateway proves itself to Redis and checks Redis' certificate.
#[derive(Default)]
pub(crate) struct Access {
    /// `--ns-backend-password-file`.
    pub password: Option<String>,
    /// `--ns-backend-ca`: PEM roots for `rediss://` instead of the system's.
    pub ca: Option<Vec<u8>>,
}

/// What `--ns-backend redis://...` makes of the namespaces of one gateway.
pub(crate) struct RedisBackend {
    target: Target,
    password: Option<String>,
    ca: Option<Vec<u8>>,
    gw: String,
    max_value: u64,
    max_waiters: usize,
    shutdown: CancellationToken,
    spaces: tokio::sync::OnceCell<Arc<RedisSpaces>>,
    /// Per connection: its operations under way.
    sessions: Mutex<HashMap<u64, tokio_util::task::TaskTracker>>,
    /// Namespace names as last listed (for the synchronous `Endpoint::namespaces`).
    names: Mutex<Vec<String>>,
    /// Whether the last command (or the periodic `PING`) reached Redis (for `/metrics` and
    /// the dashboard).
    pub(crate) up: Arc<std::sync::atomic::AtomicBool>,
    /// Ended connections whose attachments are being given up, and their completion.
    releasing: std::sync::atomic::AtomicUsize,
    released: tokio::sync::Notify,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `url` with RESP3 (wake-ups arrive as pushes) and the password, if given.
fn resp3(url: &str, password: Option<&str>) -> Result<redis::ConnectionInfo, String> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()
        .map_err(|e| format!("{url}: {e}"))?;
    let mut redis_info = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    if let Some(p) = password {
        redis_info = redis_info.set_password(p);
    }
    Ok(info.set_redis_settings(redis_info))
}

impl RedisBackend {
    pub(crate) fn new(
        url: &str,
        access: Access,
        gw: String,
        max_value: u64,
        max_waiters: usize,
        shutdown: CancellationToken,
    ) -> Result<RedisBackend, String> {
        let Access { password, ca } = access;
        let target = Target::parse(url)?;
        if ca.is_some() && !url.starts_with("rediss") {
            return Err(format!(
                "--ns-backend-ca is for TLS: use rediss:// (or rediss+cluster://), not {url:?}"
            ));
        }
        // Fail early on a URL the client cannot use.
        match &target {
            Target::Single(u) => drop(resp3(u, password.as_deref())?),
            Target::Cluster(nodes) => {
                for n in nodes {
                    resp3(n, password.as_deref())?;
                }
            }
        }
        Ok(RedisBackend {
            target,
            password,
            ca,
            gw,
            max_value,
            max_waiters,
            shutdown,
            spaces: tokio::sync::OnceCell::new(),
            sessions: Mutex::default(),
            names: Mutex::default(),
            up: Default::default(),
            releasing: Default::default(),
            released: tokio::sync::Notify::new(),
        })
    }

    /// The URL with any password left out, for logs, metrics and the dashboard.
    pub(crate) fn describe(&self) -> String {
        match &self.target {
            Target::Single(u) => redact(u),
            Target::Cluster(n) => format!(
                "redis+cluster://{}",
                n.iter()
                    .map(|u| redact(u).split("://").nth(1).unwrap_or("").to_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    /// Connects on first use; a failed attempt is tried again by the next operation.
    async fn spaces(&self) -> Result<&Arc<RedisSpaces>, broker_wasm::protocol::Failure> {
        self.spaces
            .get_or_try_init(|| async {
                let (conn, wake) = self.connect().await.map_err(|e| {
                    failure(
                        DbrCode::NoConnect,
                        format!("redis {}: {e}", self.describe()),
                    )
                })?;
                let (spaces, changed) =
                    RedisSpaces::new(conn, self.gw.clone(), self.max_value, self.max_waiters);
                tokio::spawn(background(
                    spaces.clone(),
                    wake,
                    changed,
                    self.up.clone(),
                    self.shutdown.clone(),
                ));
                Ok(spaces)
            })
            .await
    }

    /// `--ns-backend-ca` as the client crate takes it.
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        self.ca.as_ref().map(|ca| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.clone()),
        })
    }

    /// Connects and asks Redis for a `PING`: what the gateway does at start, so `/metrics`
    /// and the dashboard tell whether Redis answers before any namespace is used.
    pub(crate) async fn check(&self) {
        let up = match self.spaces().await {
            Ok(s) => s.ping().await,
            Err(_) => false,
        };
        self.up.store(up, std::sync::atomic::Ordering::Relaxed);
    }

    /// The command connection and a second one for wake-ups (RESP3 pushes into `push`).
    async fn connect(&self) -> Result<(Conn, Wake), String> {
        let pw = self.password.as_deref();
        match &self.target {
            Target::Single(url) => {
                let info = resp3(url, pw)?;
                let client = match self.certificates() {
                    Some(certs) => redis::Client::build_with_tls(info, certs),
                    None => redis::Client::open(info),
                }
                .map_err(|e| e.to_string())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                let conn = redis::aio::ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    config.clone(),
                )
                .map_err(|e| e.to_string())?;
                let (push_tx, push_rx) = mpsc::unbounded_channel();
                let wake = redis::aio::ConnectionManager::new_lazy_with_config(
                    client,
                    config
                        .set_push_sender(push_tx)
                        .set_automatic_resubscription(),
                )
                .map_err(|e| e.to_string())?;
                Ok((
                    Conn::Single(conn),
                    Wake {
                        conn: Conn::Single(wake),
                        push: push_rx,
                    },
                ))
            }
            Target::Cluster(nodes) => {
                let infos = nodes
                    .iter()
                    .map(|n| resp3(n, pw))
                    .collect::<Result<Vec<_>, _>>()?;
                let builder = || {
                    let b = redis::cluster::ClusterClientBuilder::new(infos.clone())
                        .use_protocol(ProtocolVersion::RESP3)
                        .response_timeout(RESPONSE_TIMEOUT)
                        .connection_timeout(CONNECT_TIMEOUT);
                    match self.certificates() {
                        Some(certs) => b.certs(certs),
                        None => b,
                    }
                };
                let conn = builder()
                    .build()
                    .map_err(|e| e.to_string())?
                    .get_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                let (push_tx, push_rx) = mpsc::unbounded_channel();
                let wake = builder()
                    .push_sender(push_tx)
                    .build()
                    .map_err(|e| e.to_string())?
                    .get_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((
                    Conn::Cluster(conn),
                    Wake {
                        conn: Conn::Cluster(wake),
                        push: push_rx,
                    },
                ))
            }
        }
    }

    /// Submits an operation of connection `session`. It is polled once here, which sends
    /// its first Redis command: Redis sees a connection's commands in the order it sent them
    /// (one multiplexed connection), while their answers overlap.
    pub(crate) fn submit(self: &Arc<Self>, session: u64, id: u64, op: NamespaceOp) -> Outcome {
        use std::future::Future;
        use std::task::{Context, Poll};
        let token = lock(&self.sessions).entry(session).or_default().token();
        let mut pending = Box::pin(self.clone().one(session, id, op, token));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match pending.as_mut().poll(&mut cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => Outcome::Later(Pending(pending)),
        }
    }

    async fn one(
        self: Arc<Self>,
        session: u64,
        id: u64,
        op: NamespaceOp,
        _running: tokio_util::task::task_tracker::TaskTrackerToken,
    ) -> Outcome {
        let list = matches!(op, NamespaceOp::List);
        // Counts must not include attachments of connections that already ended.
        if matches!(
            op,
            NamespaceOp::Delete { .. } | NamespaceOp::Detach { .. } | NamespaceOp::Query { .. }
        ) {
            self.releases_done().await;
        }
        let outcome = match self.spaces().await {
            Ok(s) => {
                let o = s.run(session, id, op).await;
                if matches!(o, Outcome::Done(_)) {
                    s.settled(session, id);
                }
                o
            }
            Err(f) => Outcome::Done(Err(f)),
        };
        let failed = matches!(
            &outcome,
            Outcome::Done(Err(broker_wasm::protocol::Failure::Namespace { code, .. }))
                if *code == DbrCode::NoConnect.code() || *code == DbrCode::BeGeneral.code()
        );
        self.up.store(!failed, std::sync::atomic::Ordering::Relaxed);
        if let (true, Outcome::Done(Ok(broker_wasm::protocol::Response::Names { names, .. }))) =
            (list, &outcome)
        {
            self.remember_names(names.clone());
        }
        outcome
    }

    pub(crate) fn expire(&self, session: u64, id: u64) -> bool {
        self.spaces.get().is_some_and(|s| s.expire(session, id))
    }

    pub(crate) fn cancel(&self, session: u64, id: u64) {
        if let Some(s) = self.spaces.get() {
            s.cancel(session, id);
        }
    }

    /// A connection ended: after its queued operations, its waiters and attachments go.
    pub(crate) fn release_session(self: &Arc<Self>, session: u64) {
        let running = lock(&self.sessions).remove(&session);
        let this = self.clone();
        self.releasing
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        tokio::spawn(async move {
            if let Some(running) = running {
                // Its operations still under way finish first.
                running.close();
                running.wait().await;
            }
            if let Some(s) = this.spaces.get() {
                s.release_session(session).await;
            }
            this.releasing
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            this.released.notify_waiters();
        });
    }

    /// Waits (at most a few seconds) until the connections that ended have given their
    /// attachments up, as they have at once with the built-in backend.
    async fn releases_done(&self) {
        let wait = async {
            loop {
                let done = self.released.notified();
                if self.releasing.load(std::sync::atomic::Ordering::Acquire) == 0 {
                    return;
                }
                done.await;
            }
        };
        let _ = tokio::time::timeout(RESPONSE_TIMEOUT, wait).await;
    }

    pub(crate) fn waiting(&self, ns: &str, key: &str) -> usize {
        self.spaces.get().map_or(0, |s| s.waiting(ns, key))
    }

    pub(crate) fn waiting_total(&self) -> usize {
        self.spaces.get().map_or(0, |s| s.waiting_total())
    }

    pub(crate) fn list(&self) -> Vec<String> {
        lock(&self.names).clone()
    }

    pub(crate) fn remember_names(&self, names: Vec<String>) {
        *lock(&self.names) = names;
    }
}

/// The wake-up connection and its pushes.
pub(crate) struct Wake {
    conn: Conn,
    push: mpsc::UnboundedReceiver<redis::PushInfo>,
}

fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Listens for wake-ups on the channels of namespaces with waiters here, re-polls waiters
/// (lost wake-ups), and every 10 s pings Redis and renews this gateway's attachment leases,
/// until shutdown.
async fn background(
    spaces: Arc<RedisSpaces>,
    mut wake: Wake,
    mut changed: mpsc::UnboundedReceiver<()>,
    up: Arc<std::sync::atomic::AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut subscribed: HashMap<String, String> = HashMap::new();
    let mut repoll = tokio::time::interval(repoll_every());
    let mut renew = tokio::time::interval(Duration::from_millis(LEASE_MS / 3));
    let sharded = matches!(wake.conn, Conn::Cluster(_));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = changed.recv() => {
                while changed.try_recv().is_ok() {}
                let wanted: HashMap<String, String> = spaces.wanted_channels().into_iter().collect();
                let mut new = Vec::new();
                for (ch, ns) in &wanted {
                    if !subscribed.contains_key(ch) && subscribe(&mut wake.conn, ch, sharded, true).await {
                        subscribed.insert(ch.clone(), ns.clone());
                        new.push(ns.clone());
                    }
                }
                // A put between a waiter's registration and this subscription published to
                // nobody: retry those waiters now rather than at the next re-poll.
                for (ns, key) in spaces.waited_for() {
                    if new.contains(&ns) {
                        spaces.retry(ns, key);
                    }
                }
                let stale: Vec<String> = subscribed.keys().filter(|c| !wanted.contains_key(*c)).cloned().collect();
                for ch in stale {
                    subscribe(&mut wake.conn, &ch, sharded, false).await;
                    subscribed.remove(&ch);
                }
            }
            Some(push) = wake.push.recv() => {
                use redis::PushKind;
                if matches!(push.kind, PushKind::Message | PushKind::SMessage) {
                    let text = |v: &redis::Value| match v {
                        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                        _ => None,
                    };
                    if let (Some(ch), Some(name)) = (push.data.first().and_then(text), push.data.get(1).and_then(text)) {
                        if let Some(ns) = subscribed.get(&ch) {
                            spaces.retry(ns.clone(), name);
                        }
                    }
                }
            }
            _ = repoll.tick() => spaces.repoll(),
            _ = renew.tick() => {
                // Redis' state for /metrics also while no namespace is used.
                up.store(spaces.ping().await, std::sync::atomic::Ordering::Relaxed);
                spaces.renew().await;
                spaces.recover_moves().await;
            }
        }
    }
}

/// (Un)subscribes `channel`; false if Redis did not take it (the re-poll still serves).
async fn subscribe(conn: &mut Conn, channel: &str, sharded: bool, on: bool) -> bool {
    let r = match (conn, sharded, on) {
        (Conn::Single(c), _, true) => c.subscribe(channel).await,
        (Conn::Single(c), _, false) => c.unsubscribe(channel).await,
        (Conn::Cluster(c), true, true) => c.ssubscribe(channel).await,
        (Conn::Cluster(c), true, false) => c.sunsubscribe(channel).await,
        (Conn::Cluster(c), false, true) => c.subscribe(channel).await,
        (Conn::Cluster(c), false, false) => c.unsubscribe(channel).await,
    };
    if let Err(e) = &r {
        tracing::debug!(channel, "redis (un)subscribe failed: {e}");
    }
    r.is_ok()
}
