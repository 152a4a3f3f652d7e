//! A native Rust client of a remote gateway (tokio-tungstenite), with the endpoint's shape:
//! publish, subscribers, status subscribers, peering requests, shutdown.
//!
//! Publishes are queued to one writer task that coalesces whatever is waiting into a single
//! frame, so a fast publisher sends few, large frames. Incoming messages are routed to the
//! client's subscribers by a local prefix index; the gateway sees one subscription per prefix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_wasm::protocol::{
    self, ClientMsg, Encoding, Failure, Hello, NodeId, PeerInfo, Publish, Request, Response,
    ServerMsg, Welcome,
};
use broker_wasm::topic::{validate_user_topic, SubscriptionIndex, TopicError};
use broker_wasm::{Data, ErrorCode};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::hub::StatusEvent;
use crate::subscriber::{Control, StatusSubscriber, Subscriber};

/// Largest batch of outgoing messages per frame.
const MAX_BATCH: usize = 4096;

/// Errors of the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("handshake failed: {0}")]
    Handshake(String),
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
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            encoding: Encoding::Binary,
            name: "rust-client".into(),
            statuses: true,
            queue_size: 65_536,
            batching: true,
        }
    }
}

#[derive(Debug, Default)]
struct Subs {
    index: SubscriptionIndex<u64>,
    sinks: HashMap<u64, mpsc::Sender<Arc<Publish>>>,
    /// How many subscribers hold each prefix; the gateway holds it while this is > 0.
    refs: HashMap<String, usize>,
    statuses: HashMap<u64, mpsc::Sender<StatusEvent>>,
}

#[derive(Debug)]
struct Inner {
    out: mpsc::Sender<ClientMsg>,
    subs: Mutex<Subs>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Response, Failure>>>>,
    pongs: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_id: AtomicU64,
    closed: CancellationToken,
    queue_size: usize,
    welcome: Welcome,
    /// Messages dropped because a subscriber's queue was full.
    dropped: AtomicU64,
}

impl Inner {
    fn subs(&self) -> std::sync::MutexGuard<'_, Subs> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Control for Inner {
    fn add_topics(&self, id: u64, topics: &[String]) {
        let mut fresh = Vec::new();
        {
            let mut s = self.subs();
            for t in topics {
                if s.index.insert(t, id) {
                    let n = s.refs.entry(t.clone()).or_default();
                    *n += 1;
                    if *n == 1 {
                        fresh.push(t.clone());
                    }
                }
            }
        }
        if !fresh.is_empty() {
            let _ = self.out.try_send(ClientMsg::Subscribe { topics: fresh });
        }
    }

    fn remove_topics(&self, id: u64, topics: &[String]) {
        let mut gone = Vec::new();
        {
            let mut s = self.subs();
            for t in topics {
                if s.index.remove(t, id) {
                    if let Some(n) = s.refs.get_mut(t) {
                        *n -= 1;
                        if *n == 0 {
                            s.refs.remove(t);
                            gone.push(t.clone());
                        }
                    }
                }
            }
        }
        if !gone.is_empty() {
            let _ = self.out.try_send(ClientMsg::Unsubscribe { topics: gone });
        }
    }

    fn close(&self, id: u64) {
        let prefixes = {
            let mut s = self.subs();
            s.sinks.remove(&id);
            s.statuses.remove(&id);
            s.index.prefixes_of(id)
        };
        self.remove_topics(id, &prefixes);
    }
}

/// A connection to a remote gateway. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to a gateway, e.g. `ws://127.0.0.1:9999` (the path `/v1/broker` is added if
    /// missing), with default options.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects with explicit options.
    pub async fn connect_with(url: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let url = if url
            .trim_end_matches('/')
            .ends_with(crate::http::CLIENT_PATH)
        {
            url.to_owned()
        } else {
            format!("{}{}", url.trim_end_matches('/'), crate::http::CLIENT_PATH)
        };
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Connect(url.clone(), e.to_string()))?;
        req.headers_mut().insert(
            "sec-websocket-protocol",
            opts.encoding.subprotocol().parse().expect("valid header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .map_err(|e| ClientError::Connect(url.clone(), e.to_string()))?;
        let (mut ws_tx, mut ws_rx) = ws.split();
        let encoding = opts.encoding;

        // Handshake.
        let hello = ClientMsg::Hello(Hello {
            client: opts.name.clone(),
            token: None,
            statuses: opts.statuses,
        });
        let frame = encoding
            .encode(&[hello])
            .map_err(|e| ClientError::Handshake(e.to_string()))?;
        ws_tx
            .send(to_ws(encoding, frame))
            .await
            .map_err(|e| ClientError::Handshake(e.to_string()))?;
        let welcome = loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), ws_rx.next())
                .await
                .map_err(|_| ClientError::Handshake("no welcome within 10 s".into()))?;
            let Some(Ok(msg)) = msg else {
                return Err(ClientError::Handshake("connection closed".into()));
            };
            let Some(bytes) = payload(msg) else { continue };
            let msgs: Vec<ServerMsg> = encoding
                .decode(&bytes, usize::MAX)
                .map_err(|e| ClientError::Handshake(e.to_string()))?;
            match msgs.into_iter().next() {
                Some(ServerMsg::Welcome(w)) => break w,
                Some(ServerMsg::Error(e)) => return Err(ClientError::Handshake(e.context)),
                other => return Err(ClientError::Handshake(format!("unexpected {other:?}"))),
            }
        };

        let (out, mut out_rx) = mpsc::channel::<ClientMsg>(MAX_BATCH * 4);
        let inner = Arc::new(Inner {
            out,
            subs: Mutex::new(Subs::default()),
            pending: Mutex::new(HashMap::new()),
            pongs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            queue_size: opts.queue_size,
            welcome,
            dropped: AtomicU64::new(0),
        });

        // Writer: coalesce queued messages into frames.
        let closed = inner.closed.clone();
        let max_batch = if opts.batching { MAX_BATCH } else { 1 };
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut frame = Vec::new();
            loop {
                let n = tokio::select! {
                    n = out_rx.recv_many(&mut batch, max_batch) => n,
                    _ = closed.cancelled() => 0,
                };
                if n == 0 {
                    break;
                }
                frame.clear();
                let ok = match encoding {
                    Encoding::Binary => protocol::encode_binary(&batch, &mut frame).is_ok(),
                    Encoding::Json => match protocol::to_json(&batch) {
                        Ok(f) => {
                            frame = f;
                            true
                        }
                        Err(_) => false,
                    },
                };
                let bye = batch.iter().any(|m| matches!(m, ClientMsg::Bye));
                batch.clear();
                let cap = frame.len();
                let out = std::mem::replace(&mut frame, Vec::with_capacity(cap));
                if ok && ws_tx.send(to_ws(encoding, out)).await.is_err() {
                    break;
                }
                if bye {
                    break;
                }
            }
            let _ = ws_tx.close().await;
            closed.cancel();
        });

        // Reader: route messages, statuses and responses.
        let reader = inner.clone();
        tokio::spawn(async move {
            let inner = reader;
            let mut targets = Vec::new();
            loop {
                let msg = tokio::select! {
                    m = ws_rx.next() => m,
                    _ = inner.closed.cancelled() => break,
                };
                let Some(Ok(msg)) = msg else { break };
                let Some(bytes) = payload(msg) else { continue };
                let Ok(msgs) = encoding.decode::<ServerMsg>(&bytes, usize::MAX) else {
                    continue;
                };
                for m in msgs {
                    inner.on_message(m, &mut targets);
                }
            }
            inner.closed.cancel();
            // Ending the queues: subscribers drain what they have, then see Closed.
            let mut s = inner.subs();
            s.sinks.clear();
            s.statuses.clear();
            drop(s);
            inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            inner
                .pongs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        });
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

    async fn send(&self, msg: ClientMsg) -> Result<(), ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        self.inner
            .out
            .send(msg)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Publishes one message; waits only if the outgoing queue is full.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        data: impl Into<Data>,
    ) -> Result<(), ClientError> {
        let p = Publish {
            topic: topic.into(),
            data: data.into(),
        };
        validate_user_topic(&p.topic)?;
        self.send(ClientMsg::Publish(p)).await
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
    pub fn make_subscriber<I, S>(&self, topics: I) -> Subscriber
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.queue_size.max(1));
        self.inner.subs().sinks.insert(id, tx);
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        self.inner.add_topics(id, &topics);
        Subscriber {
            id,
            rx,
            control: self.inner.clone(),
        }
    }

    /// A status subscriber for the gateway's statuses and errors (if the client asked for
    /// them in [`ClientOptions::statuses`]) and errors about this connection.
    pub fn make_status_subscriber(&self) -> StatusSubscriber {
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.queue_size.max(1));
        self.inner.subs().statuses.insert(id, tx);
        StatusSubscriber {
            id,
            rx,
            control: self.inner.clone(),
        }
    }

    /// Sends a request and waits for its response.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        self.send(ClientMsg::Request { id, request }).await?;
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

    /// Waits until the gateway has processed everything sent before (a ping round trip).
    pub async fn flush(&self) -> Result<(), ClientError> {
        let nonce = self.inner.next_id.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner
            .pongs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nonce, tx);
        self.send(ClientMsg::Ping { nonce }).await?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Says goodbye and closes the connection; subscribers end after draining.
    pub async fn shutdown(&self) {
        let _ = self.send(ClientMsg::Bye).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), self.inner.closed.cancelled()).await;
        self.inner.closed.cancel();
    }
}

impl Inner {
    fn on_message(&self, m: ServerMsg, targets: &mut Vec<u64>) {
        match m {
            ServerMsg::Message(p) => {
                let s = self.subs();
                targets.clear();
                s.index.lookup_into(&p.topic, targets);
                if targets.is_empty() {
                    return;
                }
                let p = Arc::new(p);
                for id in targets.iter() {
                    if let Some(tx) = s.sinks.get(id) {
                        // A full subscriber queue drops, like the gateway's Drop policy;
                        // counted in Client::dropped.
                        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(p.clone()) {
                            self.dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            ServerMsg::Status(st) => self.status(StatusEvent::Status(st)),
            ServerMsg::Error(e) => self.status(StatusEvent::Error(e)),
            ServerMsg::Response { id, result } => {
                if let Some(tx) = self
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
                {
                    let _ = tx.send(result);
                }
            }
            ServerMsg::Ping { nonce } => {
                let _ = self.out.try_send(ClientMsg::Pong { nonce });
            }
            ServerMsg::Pong { nonce } => {
                if let Some(tx) = self
                    .pongs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&nonce)
                {
                    let _ = tx.send(());
                }
            }
            ServerMsg::Bye => self.closed.cancel(),
            ServerMsg::Welcome(_) | ServerMsg::Snapshot { .. } | ServerMsg::StoreUpdate { .. } => {}
        }
    }

    fn status(&self, ev: StatusEvent) {
        for tx in self.subs().statuses.values() {
            let _ = tx.try_send(ev.clone());
        }
    }
}

fn payload(msg: Message) -> Option<Bytes> {
    match msg {
        Message::Binary(b) => Some(b),
        Message::Text(t) => Some(Bytes::from(t.as_str().to_owned())),
        _ => None,
    }
}

fn to_ws(encoding: Encoding, frame: Vec<u8>) -> Message {
    match encoding {
        Encoding::Binary => Message::Binary(Bytes::from(frame)),
        Encoding::Json => Message::Text(String::from_utf8(frame).unwrap_or_default().into()),
    }
}
