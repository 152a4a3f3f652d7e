//! The client's two tasks: the writer sends what the core queued (and drives its timers),
//! the reader feeds frames through the core and hands the events out.

use std::sync::Arc;
use std::time::Duration;

use broker_wasm::protocol::Encoding;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{lock, payload, to_ws, Inner};
use crate::subscriber::StatusEvent;

/// Sends whatever the core has queued, as one frame (or `max` messages per frame without
/// batching); ticks the core while clones wait for a retry or writes are buffered.
pub(super) fn spawn_writer<W>(inner: Arc<Inner>, mut ws_tx: W, encoding: Encoding, max: usize)
where
    W: Sink<Message> + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        'run: loop {
            let woken = inner.wake.notified();
            loop {
                let frame = lock(&inner.core).take_frame_max(max);
                let Some(frame) = frame else { break };
                inner.room.notify_waiters();
                if ws_tx.send(to_ws(encoding, frame)).await.is_err() {
                    break 'run;
                }
            }
            // Clones with a retry due and writes buffered while disconnected need the
            // core's timers.
            let ticking = lock(&inner.core).needs_tick();
            tokio::select! {
                _ = woken => {}
                _ = inner.closed.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(50)), if ticking => {
                    let now = inner.start.elapsed().as_secs_f64() * 1000.0;
                    let events = inner.core().tick(now);
                    inner.dispatch(events);
                }
            }
        }
        // Send what is left (e.g. a bye), then close.
        let last = lock(&inner.core).take_frame();
        if let Some(frame) = last {
            let _ = ws_tx.send(to_ws(encoding, frame)).await;
        }
        let _ = ws_tx.close().await;
        inner.end();
    });
}

/// Frames through the core, events to subscribers and waiters, until the connection ends.
pub(super) fn spawn_reader<R>(inner: Arc<Inner>, mut ws_rx: R)
where
    R: Stream<Item = Result<Message, WsError>> + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = ws_rx.next() => m,
                _ = inner.closed.cancelled() => break,
            };
            let Some(Ok(msg)) = msg else { break };
            let Some(bytes) = payload(msg) else { continue };
            let events = {
                let mut core = inner.core();
                let events = core.on_frame(&bytes);
                if core.queued() > 0 || core.needs_tick() {
                    // Pongs to the gateway's pings, clone resyncs, timers to arm.
                    inner.wake.notify_one();
                }
                events
            };
            match events {
                Ok(events) => inner.dispatch(events),
                Err(e) => inner.status(StatusEvent::Error(broker_wasm::protocol::ErrorInfo {
                    code: e.code(),
                    context: format!("malformed frame from the gateway: {e}"),
                })),
            }
        }
        let events = inner.core().on_close();
        inner.dispatch(events);
        inner.end();
    });
}
