//! Limits every client connection shares: publish rate, bytes per second (paused reading,
//! so the sender feels TCP backpressure), frame size and the idle timeout on reads.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use broker_wasm::protocol::NetworkInfo;
use futures_util::StreamExt;

use crate::metrics::Metrics;
use crate::state::Shared;

/// Limits the rate of publishes of one connection (a token bucket refilled every second).
#[derive(Debug)]
pub(crate) struct RateLimit {
    pub(crate) per_sec: u64,
    tokens: u64,
    since: Instant,
}

impl RateLimit {
    pub(crate) fn new(per_sec: u64) -> RateLimit {
        RateLimit {
            per_sec,
            tokens: per_sec,
            since: Instant::now(),
        }
    }

    /// True if one more message is allowed now.
    pub(crate) fn allow(&mut self) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.tokens = self.per_sec;
            self.since = Instant::now();
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Limits the bytes one connection may send per second: past the budget the reader pauses
/// until the second is over, so the sender feels it as TCP backpressure.
#[derive(Debug)]
pub(crate) struct ByteRate {
    per_sec: u64,
    used: u64,
    since: Instant,
}

impl ByteRate {
    pub(crate) fn new(per_sec: u64) -> ByteRate {
        ByteRate {
            per_sec,
            used: 0,
            since: Instant::now(),
        }
    }

    /// Counts `n` bytes received; returns how long to pause reading, if the budget is spent.
    pub(crate) fn charge(&mut self, n: usize) -> Option<Duration> {
        if self.per_sec == 0 {
            return None;
        }
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.used = 0;
            self.since = Instant::now();
        }
        self.used += n as u64;
        if self.used < self.per_sec {
            return None;
        }
        // Past the budget: wait out this second, and as many more as the excess needs.
        let seconds = self.used / self.per_sec;
        self.used %= self.per_sec;
        let pause = Duration::from_secs(seconds).saturating_sub(self.since.elapsed());
        self.since = Instant::now() + pause;
        Some(pause)
    }
}

/// Pauses a reader that went over its byte budget; false if the connection ends meanwhile.
pub(crate) async fn throttle(
    shared: &Shared,
    rate: &mut ByteRate,
    n: usize,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    let Some(pause) = rate.charge(n) else {
        return true;
    };
    Metrics::add(&shared.metrics.throttled_total, 1);
    tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = stop.cancelled() => false,
    }
}

/// What the reader of a client connection gets next.
pub(crate) enum Incoming {
    /// A data message (not a Close).
    Message(Message),
    /// A message over the size limit: the connection is unusable now.
    TooBig,
    /// The connection ended (Close frame, error, disconnect without a Close frame, nothing
    /// received within the idle timeout), the gateway shuts down, or the slow-consumer policy
    /// kicked the client.
    End,
}

/// Waits for the next message of a client connection.
pub(crate) async fn next_incoming(
    shared: &Shared,
    ws_rx: &mut futures_util::stream::SplitStream<WebSocket>,
    stop: &tokio_util::sync::CancellationToken,
    kick: &tokio_util::sync::CancellationToken,
) -> Incoming {
    let msg = tokio::select! {
        m = crate::conn::keepalive::within(shared, ws_rx.next()) => match m {
            Some(m) => m,
            None => return Incoming::End,
        },
        _ = stop.cancelled() => return Incoming::End,
        _ = kick.cancelled() => return Incoming::End,
    };
    match msg {
        Some(Ok(Message::Close(_))) | None => Incoming::End,
        Some(Ok(m)) => Incoming::Message(m),
        Some(Err(e)) if too_big(&e) => Incoming::TooBig,
        Some(Err(_)) => Incoming::End,
    }
}

/// True if a WebSocket read failed because the message exceeded the size limit.
fn too_big(e: &axum::Error) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(t, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    false
}

/// The client's address as a [`NetworkInfo`].
pub(crate) fn network_of(addr: SocketAddr) -> NetworkInfo {
    NetworkInfo {
        address: addr.ip().to_string(),
        port: addr.port(),
    }
}
