//! Keepalive: the gateway pings every connection (native clients, Zeek API clients, peers)
//! every `--ping-interval` seconds and closes one that sends nothing at all — no message, not
//! even a pong, no complete frame — for `--idle-timeout` seconds. This frees connections whose
//! client vanished without the TCP connection ending (a host that went away, a network that
//! dropped) and clients that sent half a frame and stalled. Browsers and WebSocket libraries
//! answer pings by themselves; peer links use the native `ping`/`pong` messages.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::Shared;

/// How long a closing connection's writer may take to flush before it is abandoned (when no
/// shorter idle timeout is configured): a client that stopped reading must not hold its
/// connection open.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// `secs` as a duration; `None` for 0 (disabled), negative or not finite.
fn duration(secs: f64) -> Option<Duration> {
    (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

/// Ticks every ping interval, the first tick one interval after creation; never when pings
/// are disabled.
#[derive(Debug)]
pub(crate) struct Pinger(Option<Interval>);

impl Pinger {
    pub(crate) fn new(config: &Config) -> Pinger {
        Pinger(duration(config.ping_interval).map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        }))
    }

    /// Resolves at the next tick (cancel-safe).
    pub(crate) async fn tick(&mut self) {
        match &mut self.0 {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Waits for the next thing a connection sends (`f`) up to the idle timeout; `None`, counted
/// in `broker_idle_disconnects_total`, when the connection stayed silent that long.
pub(crate) async fn within<F: Future>(shared: &Shared, f: F) -> Option<F::Output> {
    let Some(idle) = duration(shared.config.idle_timeout) else {
        return Some(f.await);
    };
    match tokio::time::timeout(idle, f).await {
        Ok(v) => Some(v),
        Err(_) => {
            Metrics::add(&shared.metrics.idle_disconnects_total, 1);
            tracing::debug!(?idle, "closing a silent connection");
            None
        }
    }
}

/// How long a closing connection's writer may still flush.
pub(crate) fn close_grace(config: &Config) -> Duration {
    duration(config.idle_timeout).map_or(CLOSE_GRACE, |d| d.min(CLOSE_GRACE))
}

/// Waits for a connection's writer task to end after the reader stopped; aborts it after the
/// close grace (it is blocked on a peer that does not read).
pub(crate) async fn finish(config: &Config, mut writer: JoinHandle<()>) {
    if tokio::time::timeout(close_grace(config), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
        let _ = writer.await;
    }
}
