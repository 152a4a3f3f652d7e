//! One client connection: the WebSocket upgrade, the handshake and data messages as Zeek's
//! `WebSocketEventDispatcher` handles them, and what the double sends it. Each connection is
//! one task with its own queue, so a slow client holds up nobody else. Data frames go out
//! framed here, in batches, straight to the socket (fast enough for benchmarks even in a
//! debug build); tungstenite reads, and writes the control frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::frame::{fmt_u64, now_text, now_text_in, push_frame, push_frame_parts};
use crate::hub::{BurstPlan, Hub, Out};
use crate::rules::{
    check_event, error_text, error_value, good_app_name, subscriptions, BAD_APP, BAD_URI, PATH,
};

type Ws = WebSocketStream<TcpStream>;

/// How long a client has to answer a Close frame of the double's.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Bytes of data frames gathered before a write.
const WRITE_BATCH: usize = 256 * 1024;

struct Upgrade {
    path: String,
    app_name: Option<String>,
    headers: Map<String, Value>,
}

/// Serves TCP connection number `n` until it ends.
pub async fn serve(hub: Arc<Hub>, stream: TcpStream, n: u64) {
    let _ = stream.set_nodelay(true);
    let mut up = None;
    // The callback's type is tungstenite's (its error is a whole HTTP response).
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        let mut headers = Map::new();
        for (name, value) in req.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                _ => {
                    headers.insert(name.as_str().to_owned(), value.into());
                }
            }
        }
        let app_name = req
            .headers()
            .get("x-application-name")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_owned());
        up = Some(Upgrade {
            path,
            app_name,
            headers,
        });
        Ok(resp)
    };
    let ws = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            let text = e.to_string();
            hub.out
                .emit(json!({"event": "upgrade_failed", "client": n, "error": text}));
            return;
        }
    };
    let Some(up) = up else { return };
    hub.out.emit(json!({
        "event": "connected",
        "client": n,
        "path": up.path,
        "app_name": up.app_name,
        "headers": up.headers,
    }));
    let refusal = if up.path != PATH {
        Some(("invalid_uri", BAD_URI))
    } else if up.app_name.as_deref().is_some_and(|a| !good_app_name(a)) {
        Some(("invalid_application_name", BAD_APP))
    } else {
        None
    };
    let (tx, rx) = unbounded_channel();
    hub.register(n, tx.clone(), up.app_name);
    if let Some((code, context)) = refusal {
        // Zeek: SendError, then Close(1008, context); later messages are discarded.
        let _ = tx.send(Out::Text(error_text(code, context).into()));
        let _ = tx.send(Out::Close(1008, context.to_owned()));
        hub.out
            .emit(json!({"event": "refused", "client": n, "error": error_value(code, context)}));
    }
    let conn = Conn {
        reg: Registered {
            hub: hub.clone(),
            n,
            close: None,
        },
        state: if refusal.is_some() {
            State::Ignoring
        } else {
            State::Handshake
        },
        ws,
        rx,
        buf: Vec::new(),
        closing: None,
    };
    let task = tokio::spawn(conn.run());
    hub.set_task(n, task.abort_handle());
}

/// Unregisters its client when the connection task ends, also when it is aborted (`kick`:
/// the socket is dropped without a Close frame).
struct Registered {
    hub: Arc<Hub>,
    n: u64,
    /// The client's Close frame, if it sent one.
    close: Option<(u16, String)>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.hub.unregister(self.n) {
            let (code, reason) = match &self.close {
                Some((c, r)) => (Some(*c), Some(r.as_str())),
                None => (None, None),
            };
            self.hub
                .out
                .emit(json!({"event": "closed", "client": self.n, "code": code, "reason": reason}));
        }
    }
}

enum State {
    /// Waiting for the subscriptions array.
    Handshake,
    Acked,
    /// Refused, or the handshake was bad: Zeek discards (or queues for ever) what comes.
    Ignoring,
}

struct Conn {
    reg: Registered,
    state: State,
    ws: Ws,
    rx: UnboundedReceiver<Out>,
    /// Data frames waiting for a write.
    buf: Vec<u8>,
    /// Set once a Close frame went or came: nothing more is sent, the end is awaited.
    closing: Option<tokio::time::Instant>,
}

enum Step {
    Incoming(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Outgoing(Option<Out>),
    Late,
}

impl Conn {
    async fn run(mut self) {
        loop {
            let step = match self.closing {
                Some(deadline) => tokio::select! {
                    m = self.ws.next() => Step::Incoming(m),
                    () = tokio::time::sleep_until(deadline) => Step::Late,
                },
                None => tokio::select! {
                    m = self.ws.next() => Step::Incoming(m),
                    o = self.rx.recv() => Step::Outgoing(o),
                },
            };
            let ok = match step {
                Step::Late | Step::Incoming(None | Some(Err(_))) | Step::Outgoing(None) => false,
                Step::Incoming(Some(Ok(m))) => {
                    self.incoming(m);
                    true
                }
                Step::Outgoing(Some(out)) => self.outgoing(out).await.is_ok(),
            };
            if !ok {
                return;
            }
        }
    }

    /// Sends `first` and what else is queued, up to a batch of data frames (then reading
    /// gets its turn).
    async fn outgoing(&mut self, first: Out) -> std::io::Result<()> {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Text(t) => {
                    push_frame(&mut self.buf, t.as_bytes());
                    if self.buf.len() < WRITE_BATCH {
                        next = self.rx.try_recv().ok();
                    }
                }
                Out::Close(code, reason) => {
                    self.write_buf().await?;
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    self.ws
                        .send(Message::Close(Some(frame)))
                        .await
                        .map_err(std::io::Error::other)?;
                    self.closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    return Ok(());
                }
                Out::Burst(plan, done) => {
                    self.write_buf().await?;
                    let (sent, result) = self.burst(&plan).await;
                    let _ = done.send(sent);
                    return result;
                }
            }
        }
        self.write_buf().await
    }

    /// Writes the gathered data frames, after anything tungstenite still holds.
    async fn write_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.ws.flush().await.map_err(std::io::Error::other)?;
        self.ws.get_mut().write_all(&self.buf).await?;
        self.buf.clear();
        Ok(())
    }

    /// Writes `plan.count` events, paced by a token bucket at `plan.rate` (refilled in steps
    /// of about 5 ms worth of events). Returns the events written.
    async fn burst(&mut self, plan: &BurstPlan) -> (u64, std::io::Result<()>) {
        let start = Instant::now();
        let step = if plan.rate == 0 {
            u64::MAX
        } else {
            (plan.rate / 200).max(1)
        };
        let mut sent = 0u64;
        let mut digits = [0u8; 20];
        while sent < plan.count {
            let mut allowed = plan.count;
            if plan.rate > 0 {
                let earned = (start.elapsed().as_secs_f64() * plan.rate as f64) as u64;
                allowed = allowed.min(earned.saturating_add(step));
                if allowed <= sent {
                    let at = start + Duration::from_secs_f64((sent + 1) as f64 / plan.rate as f64);
                    tokio::time::sleep_until(at.into()).await;
                    continue;
                }
            }
            let ts = if plan.precise {
                now_text_in(1_000)
            } else {
                now_text()
            };
            while sent < allowed && self.buf.len() < WRITE_BATCH {
                let number = fmt_u64(&mut digits, sent);
                let parts = [
                    plan.head.as_bytes(),
                    number.as_bytes(),
                    plan.mid.as_bytes(),
                    ts.as_bytes(),
                    plan.tail.as_bytes(),
                ];
                push_frame_parts(&mut self.buf, &parts);
                sent += 1;
            }
            if let Err(e) = self.write_buf().await {
                return (sent, Err(e));
            }
        }
        (sent, Ok(()))
    }

    fn incoming(&mut self, m: Message) {
        let hub = self.reg.hub.clone();
        let n = self.reg.n;
        let text = match m {
            Message::Text(t) => t,
            // Zeek reads binary frames as text too.
            Message::Binary(b) => match Utf8Bytes::try_from(b) {
                Ok(t) => t,
                Err(_) => {
                    hub.out
                        .emit(json!({"event": "ignored", "client": n, "message_text": null}));
                    return;
                }
            },
            Message::Close(frame) => {
                // tungstenite answers it; nothing else may be sent now.
                self.reg.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                self.closing
                    .get_or_insert_with(|| tokio::time::Instant::now() + CLOSE_GRACE);
                return;
            }
            _ => return,
        };
        match self.state {
            State::Ignoring => {
                hub.out
                    .emit(json!({"event": "ignored", "client": n, "message_text": text.as_str()}));
            }
            State::Handshake => match subscriptions(&text) {
                Ok(topics) => {
                    let sent = hub.ack(n, topics.clone());
                    hub.out.emit(json!({
                        "event": "subscribed",
                        "client": n,
                        "topics": topics,
                        "endpoint": hub.endpoint(n),
                        "on_connect": sent,
                    }));
                    self.state = State::Acked;
                }
                Err(context) => {
                    // Zeek answers and keeps the connection, but never acks it.
                    reject(&hub, n, context, &text);
                    self.state = State::Ignoring;
                }
            },
            State::Acked => match check_event(&hub.decls, &text) {
                Ok((topic, name, message)) => {
                    let k = hub.deliver(&topic, &text, Some(n));
                    Hub::count(&hub.stats.received);
                    hub.stats
                        .forwarded
                        .fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
                    if !hub.quiet {
                        hub.out.emit(json!({
                            "event": "received",
                            "client": n,
                            "topic": topic,
                            "name": name,
                            "delivered": k,
                            "message": message,
                        }));
                    }
                }
                Err(context) => reject(&hub, n, context, &text),
            },
        }
    }
}

/// Sends client `n` an error for `text` (deserialization_failed) and reports it.
fn reject(hub: &Hub, n: u64, context: &str, text: &str) {
    let code = "deserialization_failed";
    hub.send_raw(&error_text(code, context).into(), Some(n));
    Hub::count(&hub.stats.rejected);
    hub.out.emit(json!({
        "event": "rejected",
        "client": n,
        "error": error_value(code, context),
        "message_text": text,
    }));
}
