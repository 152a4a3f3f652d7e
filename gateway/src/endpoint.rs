//! The endpoint a Rust program embeds (ZB-01..13): listen, peer, publish, subscribers, status
//! subscribers, shutdown. The `broker-gateway` binary is one such endpoint.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_wasm::protocol::{Backend, PeerInfo, Publish};
use broker_wasm::topic::validate_user_topic;
use broker_wasm::{Data, ErrorCode, NodeId};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::hub::{Exclude, Hub, Sink, StatusSink};
use crate::metrics::Metrics;
use crate::peering::{self, PeerError, Peering};
use crate::state::Shared;
use crate::store::{Store, StoreError, Stores};
use crate::subscriber::{Control, StatusSubscriber, Subscriber};

/// Errors of the endpoint API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] broker_wasm::topic::TopicError),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, String),
    /// Authentication or TLS settings that cannot be loaded.
    #[error("{0}")]
    Config(String),
    /// Refused by this endpoint (a non-event under an uplink's publish prefix, ZU-08).
    #[error("{1}")]
    Refused(ErrorCode, String),
    /// An uplink to Zeek that cannot be set up as given.
    #[error("zeek uplink: {0}")]
    Uplink(String),
}

impl EndpointError {
    /// The Broker error code (ZB-22).
    pub fn code(&self) -> ErrorCode {
        match self {
            EndpointError::InvalidTopic(_) => ErrorCode::InvalidTopicKey,
            EndpointError::Peer(p) => p.code(),
            EndpointError::Listen(..) => ErrorCode::CannotOpenResource,
            EndpointError::Config(_) => ErrorCode::CannotOpenFile,
            EndpointError::Refused(code, _) => *code,
            EndpointError::Uplink(_) => ErrorCode::PeerInvalid,
        }
    }
}

/// An endpoint: routing, peering and the servers a program embeds. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), gateway::EndpointError> {
/// use gateway::{Config, Endpoint};
/// use broker_wasm::Data;
/// let ep = Endpoint::new(Config::embedded());
/// let addr = ep.listen("127.0.0.1:0".parse().unwrap()).await?;
/// let mut sub = ep.make_subscriber(["/demo"]);
/// ep.publish("/demo/x", Data::Count(1))?; // reaches peers and clients, not `sub` (ZB-09)
/// # drop((addr, sub)); ep.shutdown().await; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub(crate) shared: Arc<Shared>,
}

impl Endpoint {
    /// A new endpoint with a fresh random identity (ZB-01).
    ///
    /// # Panics
    /// If the configured auth file, JWT key or TLS certificate cannot be loaded;
    /// [`Endpoint::try_new`] returns that error instead.
    pub fn new(config: Config) -> Endpoint {
        match Endpoint::try_new(config) {
            Ok(ep) => ep,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Endpoint::new`], but fails if the auth or TLS settings cannot be loaded.
    pub fn try_new(config: Config) -> Result<Endpoint, EndpointError> {
        let auth =
            crate::auth::Auth::load(&config).map_err(|e| EndpointError::Config(e.to_string()))?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::tls::server_config(cert, key).map_err(EndpointError::Config)?)
            }
            (None, None) => None,
            _ => {
                return Err(EndpointError::Config(
                    "TLS needs both --tls-cert and --tls-key".into(),
                ))
            }
        };
        let peer_tls = match &config.peer_ca {
            Some(ca) => Some(crate::tls::client_config(ca).map_err(EndpointError::Config)?),
            None => None,
        };
        let id = NodeId(*uuid::Uuid::new_v4().as_bytes());
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let namespaces = match &config.ns_backend {
            None => crate::namespace::Namespaces::new(
                config.data_dir.clone(),
                config.ns_max_value,
                config.ns_max_waiters,
            ),
            Some(url) => {
                let password = match &config.ns_backend_password_file {
                    Some(f) => Some(
                        std::fs::read_to_string(f)
                            .map_err(|e| {
                                EndpointError::Config(format!(
                                    "--ns-backend-password-file {}: {e}",
                                    f.display()
                                ))
                            })?
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_owned(),
                    ),
                    None => None,
                };
                let ca = match &config.ns_backend_ca {
                    Some(f) => Some(std::fs::read(f).map_err(|e| {
                        EndpointError::Config(format!("--ns-backend-ca {}: {e}", f.display()))
                    })?),
                    None => None,
                };
                crate::namespace::Namespaces::redis(
                    url,
                    crate::namespace::redis_ns::backend::Access { password, ca },
                    id.to_string(),
                    config.ns_max_value,
                    config.ns_max_waiters,
                    shutdown.clone(),
                )
                .map_err(|e| EndpointError::Config(format!("--ns-backend: {e}")))?
            }
        };
        let metrics = Arc::new(Metrics::default());
        let hub = Arc::new(Hub::with_histories(
            config.slow_consumer,
            metrics.clone(),
            &config.history,
        ));
        let up = Arc::new(crate::uplink::route::UpRouter::default());
        let peering = Arc::new(Peering::new(id, hub.clone(), metrics.clone(), up.clone()));
        let stores = Stores::new(
            peering.clone(),
            metrics.clone(),
            tasks.clone(),
            shutdown.clone(),
            &config,
        );
        let shared = Arc::new(Shared {
            id,
            hub,
            peering,
            metrics,
            stores,
            shutdown,
            tasks,
            connections: AtomicUsize::new(0),
            per_address: Mutex::new(std::collections::HashMap::new()),
            listening: Mutex::new(Vec::new()),
            namespaces,
            auth,
            tls,
            peer_tls,
            up,
            uplinks: Default::default(),
            local: Default::default(),
            config,
        });
        // The history prefixes are wanted from peers from the start.
        if !shared.hub.histories.is_empty() {
            shared.filter_changed();
        }
        Ok(Endpoint { shared })
    }

    /// Whether this endpoint serves TLS (wss://, https://).
    pub fn tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// This endpoint's id.
    pub fn node_id(&self) -> NodeId {
        self.shared.id
    }

    /// A read-only view of internals for tests (not part of the API).
    #[doc(hidden)]
    pub fn probe(&self) -> Probe {
        Probe(self.shared.clone())
    }

    /// Binds `addr` and serves clients, peers and the dashboard in the background; returns
    /// the bound address (ZB-02; port 0 picks a free port).
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, EndpointError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| EndpointError::Listen(addr, e.to_string()))?;
        let bound = listener
            .local_addr()
            .map_err(|e| EndpointError::Listen(addr, e.to_string()))?;
        let this = self.clone();
        self.shared.tasks.spawn(async move {
            let _ = this.serve(listener).await;
        });
        Ok(bound)
    }

    /// Serves an already bound listener until shutdown.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        if let Ok(a) = listener.local_addr() {
            self.shared
                .listening
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(a);
        }
        use axum::serve::ListenerExt;
        let token = self.shared.shutdown.clone();
        if let Some(config) = &self.shared.tls {
            let tls = crate::tls::TlsListener::new(listener, config.clone(), token.child_token());
            return axum::serve(
                tls.tap_io(|_| {}),
                crate::http::router(self.shared.clone())
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        }
        // Small frames must not wait for Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            crate::http::router(self.shared.clone())
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await
    }

    /// Addresses this endpoint listens on.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.shared
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes to peers and connected clients; not to this endpoint's own subscribers
    /// (ZB-09). Fire-and-forget.
    pub fn publish(
        &self,
        topic: impl Into<String>,
        data: impl Into<Data>,
    ) -> Result<(), EndpointError> {
        let publish = Publish {
            topic: topic.into(),
            data: data.into(),
        };
        validate_user_topic(&publish.topic)?;
        self.shared
            .dispatch(&publish, None, Exclude::LocalSubscribers)
            .map_err(|e| EndpointError::Refused(e.code, e.context))
    }

    /// Publishes several messages in order (ZB-09 `publish_batch`).
    pub fn publish_batch<T, D>(
        &self,
        batch: impl IntoIterator<Item = (T, D)>,
    ) -> Result<(), EndpointError>
    where
        T: Into<String>,
        D: Into<Data>,
    {
        for (t, d) in batch {
            self.publish(t, d)?;
        }
        Ok(())
    }

    /// A subscriber for topic prefixes (ZB-14). Its queue holds `config.queue_size` messages;
    /// beyond that the slow-consumer policy applies.
    pub fn make_subscriber<I, S>(&self, topics: I) -> Subscriber
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (tx, rx) = mpsc::channel(self.shared.config.queue_size.max(1));
        let reg = self.shared.hub.register(Sink::Local(tx));
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        self.shared.add_topics(reg.id, &topics);
        Subscriber::new(reg.id, rx, self.shared.clone())
    }

    /// A status subscriber (ZB-20): errors always, statuses if `receive_statuses`.
    pub fn make_status_subscriber(&self, receive_statuses: bool) -> StatusSubscriber {
        let (tx, rx) = mpsc::channel(self.shared.config.queue_size.max(1));
        let id = self
            .shared
            .hub
            .status_only(StatusSink::Local(tx), receive_statuses);
        StatusSubscriber::new(id, rx, self.shared.clone())
    }

    /// Peers with the gateway at `host:port` and waits until the handshake finished and the
    /// peer's advert arrived (ZB-03): its subscriptions are known, a publish reaches them.
    /// `retry`: `None` = one attempt (fails with PeerUnavailable), `Some(d)` = keep trying,
    /// backing off up to `d`, and reconnect whenever the peering breaks.
    pub async fn peer(
        &self,
        host: &str,
        port: u16,
        retry: Option<Duration>,
    ) -> Result<NodeId, EndpointError> {
        Ok(peering::dial::peer(&self.shared, host, port, retry).await?)
    }

    /// Like [`Endpoint::peer`] with an overall timeout.
    pub async fn peer_timeout(
        &self,
        host: &str,
        port: u16,
        retry: Option<Duration>,
        timeout: Duration,
    ) -> Result<NodeId, EndpointError> {
        match tokio::time::timeout(timeout, self.peer(host, port, retry)).await {
            Ok(r) => r,
            Err(_) => Err(PeerError::Timeout(format!("{host}:{port}")).into()),
        }
    }

    /// Starts peering without waiting (ZB-04); the outcome arrives as statuses.
    pub fn peer_nosync(&self, host: &str, port: u16, retry: Option<Duration>) {
        let this = self.clone();
        let host = host.to_owned();
        self.shared.tasks.spawn(async move {
            let _ = this.peer(&host, port, retry).await;
        });
    }

    /// Ends a peering gracefully (ZB-05); unknown peers give PeerInvalid.
    pub async fn unpeer(&self, host: &str, port: u16) -> Result<(), EndpointError> {
        Ok(self.shared.peering.unpeer(host, port).await?)
    }

    /// Direct peers (ZB-06).
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.shared.peering.peers()
    }

    /// The union of the filters of direct peers (ZB-07).
    pub fn peer_subscriptions(&self) -> Vec<String> {
        self.shared.peering.peer_subscriptions()
    }

    /// Waits until `node` is a direct peer or reachable through peers (as endpoints behind a
    /// peer are with Broker's forwarding), or `timeout` passes (ZB-13).
    pub async fn await_peer(&self, node: NodeId, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.shared.peering.changed.notified();
                if self.peers().iter().any(|p| p.endpoint.node == Some(node))
                    || self.shared.peering.reachable().contains(&node)
                {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics_text()
    }

    /// Attaches (creates or re-opens) the master store `name` on this endpoint (ZB-44).
    /// `options` are Broker's backend options (a table; `Data::None` for defaults). The same
    /// name again returns the same store; a master of that name on a reachable peer is
    /// `master_exists`; a backend that cannot open is `backend_failure`.
    pub async fn attach_master(
        &self,
        name: &str,
        backend: Backend,
        options: Data,
    ) -> Result<Store, StoreError> {
        let h = self
            .shared
            .stores
            .attach_master(name, backend, &options, false)
            .await?;
        Ok(Store::local(name, Arc::new(h)))
    }

    /// A client connection to this endpoint inside the process, without a TCP port: a
    /// [`crate::Client`] with every client feature, e.g. a clone of a store mastered here or
    /// on a peer (ZB-47), which the endpoint's own API does not hold. With auth configured,
    /// `opts.token` must be granted like any client's.
    pub async fn connect_local(
        &self,
        opts: broker_client::ClientOptions,
    ) -> Result<crate::Client, broker_client::ClientError> {
        crate::local::connect(&self.shared, opts).await
    }

    /// Adds an uplink to a Zeek node's WebSocket API (ZU-02), or changes the one to the same
    /// URL: the endpoint connects (and reconnects with backoff), takes `spec.subscribe` from
    /// Zeek and sends the events published under `spec.publish` up. A changed subscription
    /// list moves to a new connection without losing messages (ZU-05).
    pub fn add_zeek_uplink(
        &self,
        spec: broker_wasm::protocol::UplinkSpec,
    ) -> Result<(), EndpointError> {
        crate::uplink::start(&self.shared, spec).map_err(EndpointError::Uplink)
    }

    /// Ends the uplink to `url`.
    pub fn remove_zeek_uplink(&self, url: &str) -> Result<(), EndpointError> {
        if crate::uplink::stop(&self.shared, url) {
            Ok(())
        } else {
            Err(EndpointError::Uplink(format!("no uplink to {url}")))
        }
    }

    /// The uplinks and their state.
    pub fn zeek_uplinks(&self) -> Vec<broker_wasm::protocol::UplinkInfo> {
        self.shared.up.infos()
    }

    /// Starts the uplinks named by `--zeek` (with `--zeek-subscribe`, `--zeek-publish`,
    /// `--zeek-header`, `--zeek-app-name`).
    pub fn start_configured_uplinks(&self) -> Result<(), EndpointError> {
        for spec in crate::uplink::configured(&self.shared.config).map_err(EndpointError::Uplink)? {
            self.add_zeek_uplink(spec)?;
        }
        Ok(())
    }

    /// Attaches the stores named by `--store` and `--memory-store`.
    pub async fn attach_configured_stores(&self) -> Result<(), StoreError> {
        let c = &self.shared.config;
        let all = c
            .stores
            .iter()
            .map(|n| (n.clone(), Backend::Sqlite))
            .chain(c.memory_stores.iter().map(|n| (n.clone(), Backend::Memory)))
            .collect::<Vec<_>>();
        for (name, backend) in all {
            self.attach_master(&name, backend, Data::None).await?;
        }
        Ok(())
    }

    /// Names of the stores this endpoint holds (masters and relays of remote masters).
    pub fn stores(&self) -> Vec<String> {
        self.shared.stores.names()
    }

    /// Unpeers everyone, closes every connection and waits for the background tasks (at most
    /// 3 s). Live handles become inert: their queues report `Closed` once drained (ZB-08).
    pub async fn shutdown(&self) {
        self.shared.peering.close_all();
        self.shared.shutdown.cancel();
        self.shared.hub.close_all();
        self.shared.stores.close_all();
        self.shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.shared.tasks.wait()).await;
    }
}

/// A read-only view of an endpoint's internals, for tests: the door they use instead of
/// public fields. Not part of the API; it may change without notice.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Probe(Arc<Shared>);

impl Probe {
    /// Other endpoints of the peer graph that advertise connected uplinks to Zeek.
    pub fn uplink_adverts(&self) -> usize {
        self.0.peering.uplink_adverts()
    }

    /// Names of the stores held here (masters and relays).
    pub fn store_names(&self) -> Vec<String> {
        self.0.stores.names()
    }

    /// The union of the local subscriptions (what is advertised to peers).
    pub fn local_filter(&self) -> Vec<String> {
        self.0.hub.filter()
    }

    /// True if some peer link leads towards an endpoint that wants `topic`.
    pub fn routes(&self, topic: &str) -> bool {
        self.0.peering.wants(topic)
    }

    /// Endpoints reachable through the peer graph.
    pub fn reachable(&self) -> usize {
        self.0.peering.reachable().len()
    }

    /// True if a reachable peer advertises a master store `name`.
    pub fn master_elsewhere(&self, name: &str) -> bool {
        self.0.peering.store_master_elsewhere(name)
    }

    /// Blocked reads/gets waiting on tuple `key` of namespace `ns`.
    pub fn namespace_waiters(&self, ns: &str, key: &str) -> usize {
        self.0.namespaces.waiting(ns, key)
    }

    /// Open WebSocket connections (clients and peers), as the connection limit counts them.
    pub fn connections(&self) -> usize {
        self.0
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Names of the namespaces.
    pub fn namespaces(&self) -> Vec<String> {
        self.0.namespaces.list()
    }

    /// How many stores the endpoint keeps track of, including relays whose task ended and
    /// that are not forgotten yet (for tests of that clean-up).
    pub fn store_entries(&self) -> usize {
        self.0.stores.entries()
    }
}
