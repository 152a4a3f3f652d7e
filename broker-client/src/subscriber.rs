//! Subscriber handles of the remote [`crate::Client`], shared with the gateway's embedded
//! `Endpoint`: get, get with timeout, poll, available, a `Stream`, and topic changes at any
//! time (ZB-14..19).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use broker_wasm::protocol::{ErrorInfo, Publish, Status};
use broker_wasm::Data;
use futures_util::Stream;
use tokio::sync::mpsc;

/// A status or error event for status subscribers (ZB-20).
#[derive(Debug, Clone, PartialEq)]
pub enum StatusEvent {
    Status(Status),
    Error(ErrorInfo),
    /// A resume could not replay everything the client missed ([`crate::Position`]).
    Gap(broker_wasm::protocol::Gap),
}

/// The subscriber's endpoint is gone (shut down, or the client disconnected for good) and
/// nothing more is queued (ZB-19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber queue closed")]
pub struct Closed;

/// How a subscriber changes its topics; implemented by the client, and by an endpoint that
/// hands out the same handles (the gateway's `Endpoint`).
pub trait Control: Send + Sync + std::fmt::Debug {
    /// Adds prefixes to subscriber `id`.
    fn add_topics(&self, id: u64, topics: &[String]);
    /// Removes prefixes from subscriber `id`.
    fn remove_topics(&self, id: u64, topics: &[String]);
    /// Subscriber `id` was dropped.
    fn close(&self, id: u64);
}

/// A queue of `(topic, data)` messages matching the subscriber's prefixes.
#[derive(Debug)]
pub struct Subscriber {
    pub(crate) id: u64,
    pub(crate) rx: mpsc::Receiver<Arc<Publish>>,
    pub(crate) control: Arc<dyn Control>,
}

fn take(p: Arc<Publish>) -> (String, Data) {
    let p = Arc::unwrap_or_clone(p);
    (p.topic, p.data)
}

impl Subscriber {
    /// A handle over a queue filled by `control`'s owner, for endpoints that deliver to their
    /// own subscribers (the gateway's `Endpoint`); `control` learns of topic changes and the
    /// drop under `id`.
    pub fn new(id: u64, rx: mpsc::Receiver<Arc<Publish>>, control: Arc<dyn Control>) -> Self {
        Subscriber { id, rx, control }
    }

    /// Waits for the next message (ZB-15 `get()`).
    pub async fn get(&mut self) -> Result<(String, Data), Closed> {
        self.rx.recv().await.map(take).ok_or(Closed)
    }

    /// Waits up to `timeout` for the next message; `Ok(None)` on timeout (ZB-15 `get(t)`).
    pub async fn get_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(String, Data)>, Closed> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(p)) => Ok(Some(take(p))),
            Ok(None) => Err(Closed),
            Err(_) => Ok(None),
        }
    }

    /// Waits for exactly `n` messages (ZB-15 `get(n)`).
    pub async fn get_many(&mut self, n: usize) -> Result<Vec<(String, Data)>, Closed> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.get().await?);
        }
        Ok(out)
    }

    /// Up to `n` messages, fewer if `timeout` passes first (ZB-15 `get(n, t)`).
    pub async fn get_many_timeout(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<(String, Data)>, Closed> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => out.push(take(p)),
                Ok(None) if out.is_empty() => return Err(Closed),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Every message queued now, without waiting (ZB-16).
    pub fn poll(&mut self) -> Vec<(String, Data)> {
        let mut out = Vec::new();
        while let Ok(p) = self.rx.try_recv() {
            out.push(take(p));
        }
        out
    }

    /// Number of messages that can be taken without waiting (ZB-16).
    pub fn available(&self) -> usize {
        self.rx.len()
    }

    /// Adds a prefix (ZB-17); the filter advertised to peers grows accordingly.
    pub fn add_topic(&self, topic: impl Into<String>) {
        self.control.add_topics(self.id, &[topic.into()]);
    }

    /// Removes a prefix (ZB-17). Unlike Broker, the advertised filter shrinks again.
    pub fn remove_topic(&self, topic: impl Into<String>) {
        self.control.remove_topics(self.id, &[topic.into()]);
    }
}

impl Stream for Subscriber {
    type Item = (String, Data);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(take))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.control.close(self.id);
    }
}

/// A queue of status and error events (ZB-20).
#[derive(Debug)]
pub struct StatusSubscriber {
    pub(crate) id: u64,
    pub(crate) rx: mpsc::Receiver<StatusEvent>,
    pub(crate) control: Arc<dyn Control>,
}

impl StatusSubscriber {
    /// A handle over a queue of status events filled by `control`'s owner (see
    /// [`Subscriber::new`]).
    pub fn new(id: u64, rx: mpsc::Receiver<StatusEvent>, control: Arc<dyn Control>) -> Self {
        StatusSubscriber { id, rx, control }
    }

    /// Waits for the next event.
    pub async fn get(&mut self) -> Result<StatusEvent, Closed> {
        self.rx.recv().await.ok_or(Closed)
    }

    /// Waits up to `timeout`; `Ok(None)` on timeout.
    pub async fn get_timeout(&mut self, timeout: Duration) -> Result<Option<StatusEvent>, Closed> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(e)) => Ok(Some(e)),
            Ok(None) => Err(Closed),
            Err(_) => Ok(None),
        }
    }

    /// Every event queued now.
    pub fn poll(&mut self) -> Vec<StatusEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.rx.try_recv() {
            out.push(e);
        }
        out
    }

    /// Number of events that can be taken without waiting.
    pub fn available(&self) -> usize {
        self.rx.len()
    }
}

impl Stream for StatusSubscriber {
    type Item = StatusEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for StatusSubscriber {
    fn drop(&mut self) {
        self.control.close(self.id);
    }
}
