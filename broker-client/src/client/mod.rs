//! A native Rust client of a remote gateway (tokio-tungstenite), with the endpoint's shape:
//! publish, subscribers, status subscribers, peering requests, shutdown.
//!
//! The protocol logic is the sans-I/O [`ClientCore`] that the JS client runs as wasm: this
//! file only owns the socket, the tasks and the queues. Publishes are queued in the core and
//! one writer task sends whatever is waiting as a single frame, so a fast publisher sends few,
//! large frames. Incoming messages go to the subscribers the core names.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use broker_wasm::client::{ClientCore, CloneOptions, Event, Position};
use broker_wasm::protocol::{
    Encoding, Failure, NodeId, PeerInfo, Publish, Request, Response, Welcome, CLIENT_PATH,
};
use broker_wasm::topic::TopicError;
use broker_wasm::{Data, ErrorCode};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

mod io;
pub mod store;

use crate::subscriber::{Control, StatusEvent, StatusSubscriber, Subscriber};
use store::{CloneEvent, CloneStore, Store};

/// Messages queued in the core before `publish` waits for the writer.
const MAX_QUEUED: usize = 16_384;
/// Ids of status subscribers live above those of message subscribers (the core's `u32`s).
const STATUS_ID_BASE: u64 = 1 << 32;

/// Errors of the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("refused: {0}")]
    Unauthorized(String),
    #[error("the connection is closed")]
    Closed,
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] TopicError),
    #[error("request failed: {0:?}")]
    Failed(Failure),
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The Broker error code (ZB-22).
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Connect(..) => ErrorCode::PeerUnavailable,
            ClientError::Handshake(_) => ErrorCode::PeerIncompatible,
            ClientError::Unauthorized(_) => ErrorCode::Unauthorized,
            ClientError::Closed => ErrorCode::ShuttingDown,
            ClientError::InvalidTopic(_) => ErrorCode::InvalidTopicKey,
            ClientError::Failed(Failure::Broker(e)) => e.code,
            ClientError::Failed(Failure::Namespace { .. }) => ErrorCode::Unspecified,
            ClientError::Timeout => ErrorCode::RequestTimeout,
        }
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Wire encoding (WebSocket subprotocol).
    pub encoding: Encoding,
    /// Application name sent in the hello.
    pub name: String,
    /// Whether to receive the gateway's status events.
    pub statuses: bool,
    /// Queue length of each subscriber.
    pub queue_size: usize,
    /// Coalesce queued messages into one frame (true), or send one frame per message.
    pub batching: bool,
    /// Access token sent in the hello (see SECURITY in the README).
    pub token: Option<String>,
    /// TLS settings for `wss://` URLs; `None`: trust the system's certificate store.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            encoding: Encoding::Binary,
            name: "rust-client".into(),
            statuses: true,
            queue_size: 65_536,
            batching: true,
            token: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct Inner {
    core: Mutex<ClientCore>,
    /// Wakes the writer: something was queued in the core.
    wake: Notify,
    /// Wakes waiting publishers: the writer took a frame out of the core.
    room: Notify,
    sinks: Mutex<HashMap<u64, mpsc::Sender<Arc<Publish>>>>,
    statuses: Mutex<HashMap<u64, mpsc::Sender<StatusEvent>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Response, Failure>>>>,
    pongs: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_status: AtomicU64,
    closed: CancellationToken,
    queue_size: usize,
    welcome: Welcome,
    /// Messages dropped because a subscriber's queue was full.
    dropped: AtomicU64,
    /// Event channels of store clones, by store name.
    clones: Mutex<HashMap<String, mpsc::UnboundedSender<CloneEvent>>>,
    /// Notified after every batch of events (for waits on core state).
    activity: Notify,
    /// The core's clock starts here.
    start: std::time::Instant,
    /// Namespace gets whose caller went away before the answer: a value that still arrives
    /// is put back (DB-12: a get nobody receives must not consume the value).
    orphans: Mutex<HashMap<u64, Request>>,
}

type Answer = oneshot::Receiver<Result<Response, Failure>>;

/// Cancels a request whose future is dropped before its answer was taken.
struct Pending<'a> {
    inner: &'a Inner,
    id: u64,
    rx: Answer,
    /// The request, kept only when a late answer would need undoing (a namespace get).
    undo: Option<Request>,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if lock(&self.inner.pending).remove(&self.id).is_some() {
            // Not answered yet: cancel, and undo a value that still arrives.
            lock(&self.inner.core).cancel(self.id);
            if let Some(r) = self.undo.take() {
                lock(&self.inner.orphans).insert(self.id, r);
            }
            self.inner.wake.notify_one();
        } else if let (Some(r), Ok(answer)) = (self.undo.take(), self.rx.try_recv()) {
            // Answered, but nobody took the answer.
            lock(&self.inner.orphans).insert(self.id, r);
            self.inner.orphaned(self.id, answer);
        }
    }
}

fn undo_of(request: &Request) -> Option<Request> {
    matches!(
        request,
        Request::Namespace(broker_wasm::protocol::NamespaceOp::Get { .. })
    )
    .then(|| request.clone())
}

impl Control for Inner {
    fn add_topics(&self, id: u64, topics: &[String]) {
        if let Ok(id) = u32::try_from(id) {
            // Topics were validated when the subscriber was made or are checked here.
            let _ = lock(&self.core).add_topics(id, topics);
            self.wake.notify_one();
        }
    }

    fn remove_topics(&self, id: u64, topics: &[String]) {
        if let Ok(id) = u32::try_from(id) {
            lock(&self.core).remove_topics(id, topics);
            self.wake.notify_one();
        }
    }

    fn close(&self, id: u64) {
        if id >= STATUS_ID_BASE {
            lock(&self.statuses).remove(&id);
        } else if let Ok(sub) = u32::try_from(id) {
            lock(&self.sinks).remove(&id);
            lock(&self.core).remove_subscriber(sub);
            self.wake.notify_one();
        }
    }
}

impl Inner {
    /// The core, with its clock set to now.
    fn core(&self) -> MutexGuard<'_, ClientCore> {
        let mut core = lock(&self.core);
        core.set_now(self.start.elapsed().as_secs_f64() * 1000.0);
        core
    }

    fn dispatch(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Message {
                    subscribers,
                    publish,
                } => {
                    let p = Arc::new(publish);
                    let sinks = lock(&self.sinks);
                    for id in subscribers {
                        if let Some(tx) = sinks.get(&u64::from(id)) {
                            // A full subscriber queue drops, like the gateway's Drop policy;
                            // counted in Client::dropped.
                            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(p.clone())
                            {
                                self.dropped.fetch_add(1, Relaxed);
                            }
                        }
                    }
                }
                Event::Status(s) => self.status(StatusEvent::Status(s)),
                Event::Error(e) => self.status(StatusEvent::Error(e)),
                Event::Gap(g) => self.status(StatusEvent::Gap(g)),
                Event::Response { id, result } => {
                    if let Some(tx) = lock(&self.pending).remove(&id) {
                        if let Err(result) = tx.send(result) {
                            // The caller went away meanwhile (its future was dropped).
                            self.orphaned(id, result);
                        }
                    } else {
                        self.orphaned(id, result);
                    }
                }
                Event::Pong { nonce } => {
                    if let Some(tx) = lock(&self.pongs).remove(&nonce) {
                        let _ = tx.send(());
                    }
                }
                Event::Disconnected => self.closed.cancel(),
                Event::Connected(_) => {}
                Event::StoreChanges {
                    store,
                    changes,
                    reset,
                    synced,
                } => {
                    if let Some(tx) = lock(&self.clones).get(&store) {
                        let _ = tx.send(CloneEvent::Changes {
                            changes,
                            reset,
                            synced,
                        });
                    }
                }
                Event::StoreError { store, error, .. } => {
                    if let Some(tx) = lock(&self.clones).get(&store) {
                        let _ = tx.send(CloneEvent::Error(error));
                    }
                }
                Event::Write {
                    store,
                    key,
                    value,
                    state,
                    ..
                } => {
                    if let Some(tx) = lock(&self.clones).get(&store) {
                        let _ = tx.send(CloneEvent::Write { key, value, state });
                    }
                }
            }
        }
        self.activity.notify_waiters();
    }

    /// An answer nobody waits for: a value taken by an abandoned namespace get goes back to
    /// the head of its queue.
    fn orphaned(&self, id: u64, result: Result<Response, Failure>) {
        let Some(Request::Namespace(broker_wasm::protocol::NamespaceOp::Get { ns, key, .. })) =
            lock(&self.orphans).remove(&id)
        else {
            return;
        };
        if let Ok(Response::Tuple { value, .. }) = result {
            lock(&self.core).request(Request::Namespace(
                broker_wasm::protocol::NamespaceOp::Restore { ns, key, value },
            ));
            self.wake.notify_one();
        }
    }

    fn status(&self, ev: StatusEvent) {
        for tx in lock(&self.statuses).values() {
            let _ = tx.try_send(ev.clone());
        }
    }

    /// Ends everything: subscribers drain what they have, then see `Closed`.
    /// Removes `key` from `map` again if the connection ended meanwhile: `end` may have
    /// cleared the map just before the insert, and a waiter left there would wait forever.
    /// (`end` cancels `closed` before it clears the maps, so one of the two sees the other.)
    fn forget_if_closed<K: std::hash::Hash + Eq, V>(&self, map: &Mutex<HashMap<K, V>>, key: &K) {
        if self.closed.is_cancelled() {
            lock(map).remove(key);
        }
    }

    fn end(&self) {
        self.closed.cancel();
        lock(&self.sinks).clear();
        lock(&self.statuses).clear();
        lock(&self.pending).clear();
        lock(&self.pongs).clear();
        lock(&self.clones).clear();
        self.room.notify_waiters();
        self.activity.notify_waiters();
    }
}

/// A connection to a remote gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn payload(msg: Message) -> Option<Bytes> {
    match msg {
        Message::Binary(b) => Some(b),
        Message::Text(t) => Some(Bytes::from(t.as_str().to_owned())),
        _ => None,
    }
}

/// The WebSocket upgrade request for `url` with the encoding's subprotocol.
fn request(
    url: &str,
    opts: &ClientOptions,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ClientError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| ClientError::Connect(url.to_owned(), e.to_string()))?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        opts.encoding.subprotocol().parse().expect("valid header"),
    );
    Ok(req)
}

fn to_ws(encoding: Encoding, frame: Vec<u8>) -> Message {
    match encoding {
        Encoding::Binary => Message::Binary(Bytes::from(frame)),
        Encoding::Json => Message::Text(String::from_utf8(frame).unwrap_or_default().into()),
    }
}

impl Client {
    /// Connects to a gateway, e.g. `ws://127.0.0.1:9999` (the path `/v1/broker` is added if
    /// missing), with default options.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Where this client is in the gateway's histories (`--history`): the gateway's epoch
    /// and the last position received per history prefix. Save it to resume after a restart
    /// with [`Client::resume`].
    pub fn position(&self) -> Position {
        lock(&self.inner.core).position()
    }

    /// Asks the gateway for what was published under its history prefixes since `position`
    /// and matches the subscriptions held now (make the subscribers first): it comes in
    /// order before newer messages, each once; what cannot be replayed (the gateway
    /// restarted, the history no longer reaches back) is a [`StatusEvent::Gap`]. Call it
    /// right after making the subscribers: it replaces the position, so messages received
    /// before it would be replayed again.
    pub fn resume(&self, position: Position) {
        self.inner.core().resume_from(position);
        self.inner.wake.notify_one();
    }

    /// Connects with explicit options.
    pub async fn connect_with(url: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let url = if url.trim_end_matches('/').ends_with(CLIENT_PATH) {
            url.to_owned()
        } else {
            format!("{}{}", url.trim_end_matches('/'), CLIENT_PATH)
        };
        let req = request(&url, &opts)?;
        #[cfg(feature = "tls")]
        let ws = {
            let tls = match (url.starts_with("wss://"), &opts.tls) {
                (false, _) => None,
                (true, Some(c)) => Some(c.clone()),
                (true, None) => Some(
                    crate::tls::system_roots().map_err(|e| ClientError::Connect(url.clone(), e))?,
                ),
            };
            crate::tls::connect_ws(req, None, tls).await
        };
        #[cfg(not(feature = "tls"))]
        let ws = crate::net::connect_plain(req).await;
        let ws = ws.map_err(|e| ClientError::Connect(url.clone(), e))?;
        Client::handshake(ws, opts).await
    }

    /// Connects over an already open byte stream (e.g. one half of a `tokio::io::duplex` whose
    /// other half a gateway in the same process serves): the WebSocket handshake for `url`'s
    /// path, then the client's hello and the gateway's welcome as for [`Client::connect_with`].
    pub async fn connect_stream<S>(
        stream: S,
        url: &str,
        opts: ClientOptions,
    ) -> Result<Client, ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let req = request(url, &opts)?;
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .map_err(|e| ClientError::Connect(url.to_owned(), e.to_string()))?;
        Client::handshake(ws, opts).await
    }

    /// The client's hello out, the gateway's welcome in, then the reader and writer tasks.
    async fn handshake<S>(
        ws: tokio_tungstenite::WebSocketStream<S>,
        opts: ClientOptions,
    ) -> Result<Client, ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut ws_tx, mut ws_rx) = ws.split();
        let encoding = opts.encoding;

        // Handshake: the core's hello out, the welcome in.
        let mut core = ClientCore::new(encoding, opts.name.clone());
        core.set_statuses(opts.statuses);
        core.set_token(opts.token.clone());
        core.set_instance(instance_name());
        core.on_open();
        let hello = core.take_frame().expect("the hello is queued");
        ws_tx
            .send(to_ws(encoding, hello))
            .await
            .map_err(|e| ClientError::Handshake(e.to_string()))?;
        let (welcome, early) = loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws_rx.next())
                .await
                .map_err(|_| ClientError::Handshake("no welcome within 10 s".into()))?;
            let Some(Ok(msg)) = msg else {
                return Err(ClientError::Handshake("connection closed".into()));
            };
            let Some(bytes) = payload(msg) else { continue };
            let mut events = core
                .on_frame(&bytes)
                .map_err(|e| ClientError::Handshake(e.to_string()))?;
            match events.iter().position(|e| matches!(e, Event::Connected(_))) {
                Some(i) => {
                    let Event::Connected(w) = events.remove(i) else {
                        unreachable!()
                    };
                    break (w, events);
                }
                None => {
                    if let Some(Event::Error(e)) =
                        events.into_iter().find(|e| matches!(e, Event::Error(_)))
                    {
                        if e.code == ErrorCode::Unauthorized {
                            return Err(ClientError::Unauthorized(e.context));
                        }
                        return Err(ClientError::Handshake(e.context));
                    }
                }
            }
        };

        let inner = Arc::new(Inner {
            core: Mutex::new(core),
            wake: Notify::new(),
            room: Notify::new(),
            sinks: Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            pongs: Mutex::new(HashMap::new()),
            next_status: AtomicU64::new(STATUS_ID_BASE),
            closed: CancellationToken::new(),
            queue_size: opts.queue_size,
            welcome,
            dropped: AtomicU64::new(0),
            clones: Mutex::new(HashMap::new()),
            activity: Notify::new(),
            start: std::time::Instant::now(),
            orphans: Mutex::new(HashMap::new()),
        });
        inner.dispatch(early);

        let max = if opts.batching { usize::MAX } else { 1 };
        io::spawn_writer(inner.clone(), ws_tx, encoding, max);
        io::spawn_reader(inner.clone(), ws_rx);
        Ok(Client { inner })
    }

    /// The gateway's endpoint id.
    pub fn endpoint_id(&self) -> NodeId {
        self.inner.welcome.endpoint
    }

    /// The gateway's version.
    pub fn gateway_version(&self) -> &str {
        &self.inner.welcome.version
    }

    /// Messages this client dropped because one of its subscribers' queues was full
    /// ([`ClientOptions::queue_size`]).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Relaxed)
    }

    /// True once the connection ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Waits while the core holds [`MAX_QUEUED`] messages the writer has not sent yet.
    async fn room(&self) -> Result<(), ClientError> {
        loop {
            let room = self.inner.room.notified();
            if self.is_closed() {
                return Err(ClientError::Closed);
            }
            if lock(&self.inner.core).queued() < MAX_QUEUED {
                return Ok(());
            }
            room.await;
        }
    }

    /// Publishes one message; waits only if many messages are still unsent.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        data: impl Into<Data>,
    ) -> Result<(), ClientError> {
        self.room().await?;
        lock(&self.inner.core).publish(topic.into(), data.into())?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Publishes several messages in order.
    pub async fn publish_batch<T: Into<String>, D: Into<Data>>(
        &self,
        batch: impl IntoIterator<Item = (T, D)>,
    ) -> Result<(), ClientError> {
        for (t, d) in batch {
            self.publish(t, d).await?;
        }
        Ok(())
    }

    /// A subscriber for prefixes; messages the gateway sends for them are queued here.
    ///
    /// # Panics
    /// If a topic contains the reserved `<$>` (use [`Client::try_make_subscriber`]).
    pub fn make_subscriber<I, S>(&self, topics: I) -> Subscriber
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.try_make_subscriber(topics)
            .expect("valid subscription topics")
    }

    /// A subscriber for prefixes, or an error for an invalid topic.
    pub fn try_make_subscriber<I, S>(&self, topics: I) -> Result<Subscriber, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        let (tx, rx) = mpsc::channel(self.inner.queue_size.max(1));
        let id = {
            let mut core = lock(&self.inner.core);
            let id = core.add_subscriber(&topics)?;
            lock(&self.inner.sinks).insert(u64::from(id), tx);
            id
        };
        self.inner
            .forget_if_closed(&self.inner.sinks, &u64::from(id));
        self.inner.wake.notify_one();
        Ok(Subscriber {
            id: u64::from(id),
            rx,
            control: self.inner.clone(),
        })
    }

    /// A status subscriber for the gateway's statuses and errors (if the client asked for
    /// them in [`ClientOptions::statuses`]) and errors about this connection.
    pub fn make_status_subscriber(&self) -> StatusSubscriber {
        let id = self.inner.next_status.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.queue_size.max(1));
        lock(&self.inner.statuses).insert(id, tx);
        self.inner.forget_if_closed(&self.inner.statuses, &id);
        StatusSubscriber {
            id,
            rx,
            control: self.inner.clone(),
        }
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        self.send_request(request, None).await
    }

    /// Sends a request that can be cancelled (e.g. a blocked namespace `get`). If `cancel`
    /// fires first, asks the gateway to cancel it and waits for the final answer: a
    /// `DBR_ERR_CANCELLED` failure, or the result the gateway had sent before the
    /// cancellation reached it (callers check `cancel.is_cancelled()`).
    pub async fn request_cancellable(
        &self,
        request: Request,
        cancel: &CancellationToken,
    ) -> Result<Response, ClientError> {
        self.send_request(request, Some(cancel)).await
    }

    async fn send_request(
        &self,
        request: Request,
        cancel: Option<&CancellationToken>,
    ) -> Result<Response, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let undo = undo_of(&request);
        let id = {
            // Register the waiter before the writer can send the request.
            let mut core = lock(&self.inner.core);
            let id = core.request(request);
            lock(&self.inner.pending).insert(id, tx);
            id
        };
        self.inner.forget_if_closed(&self.inner.pending, &id);
        let mut guard = Pending {
            inner: &self.inner,
            id,
            rx,
            undo,
            done: false,
        };
        self.inner.wake.notify_one();
        let answer = match cancel {
            None => (&mut guard.rx).await,
            Some(cancel) => tokio::select! {
                r = &mut guard.rx => r,
                _ = cancel.cancelled() => {
                    lock(&self.inner.core).cancel(id);
                    self.inner.wake.notify_one();
                    (&mut guard.rx).await
                }
            },
        };
        guard.done = true;
        match answer {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(f)) => Err(ClientError::Failed(f)),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// A write through the clone of `store` (`ClientCore::store_request`): optimistic if
    /// the clone is.
    pub(crate) async fn clone_write(
        &self,
        store: &str,
        op: broker_wasm::protocol::StoreOp,
    ) -> Result<Response, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let (id, events) = {
            let mut core = self.inner.core();
            let id = core
                .store_request(store, op)
                .map_err(|e| ClientError::Failed(Failure::Broker(e)))?;
            lock(&self.inner.pending).insert(id, tx);
            (id, core.take_events())
        };
        self.inner.dispatch(events);
        self.inner.forget_if_closed(&self.inner.pending, &id);
        self.inner.wake.notify_one();
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(f)) => Err(ClientError::Failed(f)),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// The gateway's direct peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        match self.request(Request::Peers).await? {
            Response::Peers(p) => Ok(p),
            other => Err(ClientError::Handshake(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// The union of the filters of the gateway's direct peers (ZB-07).
    pub async fn peer_subscriptions(&self) -> Result<Vec<String>, ClientError> {
        match self.request(Request::PeerSubscriptions).await? {
            Response::Topics(t) => Ok(t),
            other => Err(ClientError::Handshake(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// Asks the gateway to peer with `host:port`.
    pub async fn peer(
        &self,
        host: &str,
        port: u16,
        retry: Option<Duration>,
    ) -> Result<(), ClientError> {
        let retry = retry.map(|d| broker_wasm::Timespan(d.as_nanos().min(i64::MAX as u128) as i64));
        self.request(Request::Peer {
            host: host.into(),
            port,
            retry,
        })
        .await
        .map(|_| ())
    }

    /// Asks the gateway to join a Zeek node's WebSocket API as a client (ZU-02), or to change
    /// the uplink to the same URL; grant `admin`.
    pub async fn zeek_uplink(
        &self,
        spec: broker_wasm::protocol::UplinkSpec,
    ) -> Result<(), ClientError> {
        self.request(Request::ZeekUplink(spec)).await.map(|_| ())
    }

    /// Asks the gateway to end its uplink to `url`; grant `admin`.
    pub async fn zeek_unlink(&self, url: &str) -> Result<(), ClientError> {
        self.request(Request::ZeekUnlink { url: url.into() })
            .await
            .map(|_| ())
    }

    /// The gateway's uplinks to Zeek nodes and their state.
    pub async fn zeek_uplinks(
        &self,
    ) -> Result<Vec<broker_wasm::protocol::UplinkInfo>, ClientError> {
        match self.request(Request::ZeekUplinks).await? {
            Response::Uplinks(u) => Ok(u),
            other => Err(ClientError::Handshake(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// Runs `f` on the client core (for local clone reads).
    pub(crate) fn with_core<T>(&self, f: impl FnOnce(&mut ClientCore) -> T) -> T {
        f(&mut self.inner.core())
    }

    /// Waits for the next batch of events from the gateway.
    pub(crate) fn activity(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.activity.notified()
    }

    /// Starts a clone of store `name` (ZB-47): it attaches now and gets a snapshot and then
    /// every update. Reads on it are local. Attaching again replaces the earlier clone.
    pub fn attach_clone(&self, name: &str, opts: CloneOptions) -> CloneStore {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.clones).insert(name.to_owned(), tx);
        self.inner
            .forget_if_closed(&self.inner.clones, &name.to_owned());
        lock(&self.inner.core).attach_clone(name, opts);
        self.inner.wake.notify_one();
        CloneStore {
            name: name.to_owned(),
            client: self.clone(),
            events: rx,
        }
    }

    /// Operations on store `name`'s master through this connection.
    pub fn store(&self, name: &str) -> Store {
        Store::remote(self, name)
    }

    /// Names of the stores the gateway holds.
    pub async fn stores(&self) -> Result<Vec<String>, ClientError> {
        match self.request(Request::Stores).await? {
            Response::Names { names, .. } => Ok(names),
            other => Err(ClientError::Handshake(format!(
                "unexpected response {other:?}"
            ))),
        }
    }

    /// Creates (or re-attaches) a master store on the gateway (ZB-44), if the gateway lets
    /// clients do that.
    pub async fn attach_master(
        &self,
        name: &str,
        backend: broker_wasm::protocol::Backend,
        options: broker_wasm::Data,
    ) -> Result<Store, ClientError> {
        self.request(Request::AttachMaster {
            store: name.to_owned(),
            backend,
            options,
        })
        .await?;
        Ok(Store::remote(self, name))
    }

    /// Waits until the gateway has processed everything sent before (a ping round trip).
    pub async fn flush(&self) -> Result<(), ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let (tx, rx) = oneshot::channel();
        let nonce = {
            let mut core = lock(&self.inner.core);
            let nonce = core.ping();
            lock(&self.inner.pongs).insert(nonce, tx);
            nonce
        };
        self.inner.forget_if_closed(&self.inner.pongs, &nonce);
        self.inner.wake.notify_one();
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Says goodbye and closes the connection; subscribers end after draining.
    pub async fn shutdown(&self) {
        if !self.is_closed() {
            lock(&self.inner.core).bye();
            self.inner.wake.notify_one();
            let _ =
                tokio::time::timeout(Duration::from_secs(3), self.inner.closed.cancelled()).await;
        }
        self.inner.closed.cancel();
    }
}

/// A name for this client across its connections (its own publishes are not replayed to
/// it): random per client, from the standard library's randomly keyed hasher and the clock.
fn instance_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}
