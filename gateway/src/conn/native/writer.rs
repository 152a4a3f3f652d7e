//! The writer of a native client connection: batches queued messages into frames, reports
//! drops to a slow consumer, pings, and closes (with a status first when it was kicked).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use broker_wasm::protocol::{Encoding, ErrorInfo, ServerMsg, Status};
use broker_wasm::{ErrorCode, StatusCode};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{to_ws, MAX_BATCH};
use crate::hub::{encode_server_msg, frame_of, Registration};
use crate::metrics::Metrics;
use crate::state::Shared;

/// Starts the writer; it ends when `writer_stop` fires (after flushing), when the hub kicks
/// the consumer, or when the socket fails.
pub(super) fn spawn(
    shared: &Arc<Shared>,
    reg: &Registration,
    encoding: Encoding,
    mut rx: mpsc::Receiver<Bytes>,
    mut ws_tx: futures_util::stream::SplitSink<WebSocket, Message>,
    writer_stop: CancellationToken,
    inflight: Arc<crate::store::InFlight>,
) -> tokio::task::JoinHandle<()> {
    let kick = reg.kick.clone();
    let dropped = reg.dropped.clone();
    let writer_shared = shared.clone();
    let mut pinger = crate::conn::keepalive::Pinger::new(&shared.config);
    tokio::spawn(async move {
        let shared = writer_shared;
        // Buffers grow with bursts and are let go when the queue is empty: an idle
        // connection holds none (a batch of MAX_BATCH would be 32 KiB per connection).
        let mut batch = Vec::new();
        let mut frame = Vec::new();
        let mut reported = 0u64;
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = kick.cancelled() => {
                    let status = ServerMsg::Status(Status {
                        code: StatusCode::PeerRemoved,
                        endpoint: None,
                        message: "disconnected: slow consumer (queue full)".into(),
                    });
                    if let Some(b) = encode_server_msg(encoding, &status) {
                        frame.clear();
                        frame_of(encoding, &[b], &mut frame);
                        let _ = ws_tx.send(to_ws(encoding, std::mem::take(&mut frame))).await;
                    }
                    let _ = ws_tx.send(Message::Close(Some(CloseFrame { code: 1008, reason: Utf8Bytes::from_static("slow consumer") }))).await;
                    break;
                }
                _ = writer_stop.cancelled() => 0,
                _ = pinger.tick() => {
                    if ws_tx.send(Message::Ping(Bytes::new())).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            if n > 0 && n < MAX_BATCH && rx.is_empty() && inflight.count() > n {
                // Answers that other tasks complete one by one (store masters, a Redis
                // backend) would each cost a frame and a write: while more are in flight
                // than this batch answers, let the tasks that are ready run first, then take
                // what they queued. One request at a time is answered at once.
                tokio::task::yield_now().await;
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(b) => batch.push(b),
                        Err(_) => break,
                    }
                }
            }
            if n == 0 {
                // Flush what is still queued (e.g. a last error), then close.
                while let Ok(b) = rx.try_recv() {
                    batch.push(b);
                }
                if !batch.is_empty() {
                    frame.clear();
                    frame_of(encoding, &batch, &mut frame);
                    let _ = ws_tx
                        .send(to_ws(encoding, std::mem::take(&mut frame)))
                        .await;
                }
                let _ = ws_tx.send(Message::Close(None)).await;
                break;
            }
            let lost = dropped.load(Relaxed);
            if lost > reported {
                let note = ServerMsg::Error(ErrorInfo {
                    code: ErrorCode::Unspecified,
                    context: format!("slow consumer: {} messages dropped", lost - reported),
                });
                if let Some(b) = encode_server_msg(encoding, &note) {
                    batch.push(b);
                }
                reported = lost;
            }
            frame.clear();
            frame_of(encoding, &batch, &mut frame);
            batch.clear();
            Metrics::add(&shared.metrics.bytes_out_total, frame.len() as u64);
            Metrics::add(&shared.metrics.frames_out_total, 1);
            let cap = frame.len();
            let out = std::mem::take(&mut frame);
            if rx.is_empty() {
                batch = Vec::new();
            } else {
                frame.reserve(cap);
            }
            if ws_tx.send(to_ws(encoding, out)).await.is_err() {
                break;
            }
        }
    })
}
