//! What the connections share: the clients with their queues and subscriptions, the
//! on-connect messages, counters, and stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::{mpsc::UnboundedSender, oneshot};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::decl::Decls;

/// What a client's connection task sends, in queue order.
#[derive(Debug)]
pub enum Out {
    Text(Utf8Bytes),
    /// A Close frame; nothing is sent after it.
    Close(u16, String),
    /// Writes `plan.count` events; answers the number written.
    Burst(Arc<BurstPlan>, oneshot::Sender<u64>),
}

/// A pre-encoded event `NAME(count i, time now)` on a topic.
#[derive(Debug)]
pub struct BurstPlan {
    /// Text up to the count.
    pub head: String,
    /// Text between the count and the timestamp string.
    pub mid: &'static str,
    /// Text after the timestamp string.
    pub tail: &'static str,
    pub count: u64,
    /// Events per second; 0 = as fast as the socket takes them.
    pub rate: u64,
    /// Timestamps to the microsecond (for latency measurements) instead of Zeek's
    /// milliseconds.
    pub precise: bool,
}

/// A message the double sends, with the topic it is matched on.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub topic: String,
    pub text: Utf8Bytes,
}

#[derive(Debug)]
struct Entry {
    tx: UnboundedSender<Out>,
    /// `None` until the handshake was acked.
    topics: Option<Vec<String>>,
    app_name: Option<String>,
    task: Option<AbortHandle>,
    /// Kicked before its task was recorded.
    kicked: bool,
}

/// Counters for `{"cmd":"stats"}`.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub rejected: AtomicU64,
    pub forwarded: AtomicU64,
}

#[derive(Debug)]
pub struct Hub {
    pub node: String,
    pub version: String,
    pub decls: Decls,
    /// No `received` lines (counted in stats only).
    pub quiet: bool,
    pub out: Emitter,
    pub stats: Stats,
    clients: Mutex<BTreeMap<u64, Entry>>,
    on_connect: Mutex<Vec<Prepared>>,
}

/// Whether a client subscribed to `prefixes` gets `topic` (Zeek matches by prefix).
fn matches(prefixes: &[String], topic: &str) -> bool {
    prefixes.iter().any(|p| topic.starts_with(p.as_str()))
}

impl Hub {
    pub fn new(node: String, version: String, decls: Decls, quiet: bool) -> Hub {
        Hub {
            node,
            version,
            decls,
            quiet,
            out: Emitter::start(),
            stats: Stats::default(),
            clients: Mutex::default(),
            on_connect: Mutex::default(),
        }
    }

    /// The endpoint id the ack of client `n` carries, as Zeek builds it.
    pub fn endpoint(&self, n: u64) -> String {
        format!("{}-websocket-{n}", self.node)
    }

    pub fn register(&self, n: u64, tx: UnboundedSender<Out>, app_name: Option<String>) {
        self.lock().insert(
            n,
            Entry {
                tx,
                topics: None,
                app_name,
                task: None,
                kicked: false,
            },
        );
    }

    /// Records the task of client `n` (aborted by `kick`).
    pub fn set_task(&self, n: u64, task: AbortHandle) {
        if let Some(e) = self.lock().get_mut(&n) {
            if e.kicked {
                task.abort();
            }
            e.task = Some(task);
        }
    }

    /// Forgets client `n`; false if it was already gone.
    pub fn unregister(&self, n: u64) -> bool {
        self.lock().remove(&n).is_some()
    }

    /// Acks client `n`'s handshake: queues the ack and then the on-connect messages that
    /// match `topics`, and makes it a receiver; returns how many on-connect messages went.
    pub fn ack(&self, n: u64, topics: Vec<String>) -> usize {
        let ack = broker_wasm::zeek_json::ack(&self.endpoint(n), &self.version);
        let mut clients = self.lock();
        let Some(e) = clients.get_mut(&n) else {
            return 0;
        };
        let _ = e.tx.send(Out::Text(ack.into()));
        let on_connect = self.on_connect.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = 0;
        for m in on_connect.iter().filter(|m| matches(&topics, &m.topic)) {
            if e.tx.send(Out::Text(m.text.clone())).is_ok() {
                sent += 1;
            }
        }
        e.topics = Some(topics);
        sent
    }

    /// Queues `text` for every acked client subscribed to `topic` except `except`.
    pub fn deliver(&self, topic: &str, text: &Utf8Bytes, except: Option<u64>) -> usize {
        let clients = self.lock();
        let mut k = 0;
        for (n, e) in clients.iter() {
            if Some(*n) == except || !e.topics.as_deref().is_some_and(|t| matches(t, topic)) {
                continue;
            }
            if e.tx.send(Out::Text(text.clone())).is_ok() {
                k += 1;
            }
        }
        k
    }

    /// Queues `text` for client `only`, or for every acked client.
    pub fn send_raw(&self, text: &Utf8Bytes, only: Option<u64>) -> usize {
        let clients = self.lock();
        clients
            .iter()
            .filter(|(n, e)| only.map_or(e.topics.is_some(), |o| o == **n))
            .filter(|(_, e)| e.tx.send(Out::Text(text.clone())).is_ok())
            .count()
    }

    /// Drops the connections (no Close frame) of client `only`, or of every client.
    pub fn kick(&self, only: Option<u64>) -> usize {
        let mut clients = self.lock();
        let mut k = 0;
        for (n, e) in clients.iter_mut() {
            if only.is_none_or(|o| o == *n) {
                match &e.task {
                    Some(t) => t.abort(),
                    None => e.kicked = true,
                }
                k += 1;
            }
        }
        k
    }

    /// Queues a Close frame for client `only`, or for every client; returns the clients.
    pub fn close(&self, code: u16, reason: &str, only: Option<u64>) -> Vec<u64> {
        let clients = self.lock();
        clients
            .iter()
            .filter(|(n, _)| only.is_none_or(|o| o == **n))
            .filter(|(_, e)| e.tx.send(Out::Close(code, reason.to_owned())).is_ok())
            .map(|(n, _)| *n)
            .collect()
    }

    /// Starts `plan` on every acked client subscribed to `topic`; the receivers answer the
    /// number of events each wrote.
    pub fn burst(&self, topic: &str, plan: &Arc<BurstPlan>) -> Vec<oneshot::Receiver<u64>> {
        let clients = self.lock();
        let mut done = Vec::new();
        for e in clients.values() {
            if !e.topics.as_deref().is_some_and(|t| matches(t, topic)) {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if e.tx.send(Out::Burst(plan.clone(), tx)).is_ok() {
                done.push(rx);
            }
        }
        done
    }

    pub fn set_on_connect(&self, messages: Vec<Prepared>) {
        *self.on_connect.lock().unwrap_or_else(|p| p.into_inner()) = messages;
    }

    /// `[{"client":n,"topics":[...],"app_name":...}]` of the acked clients.
    pub fn list(&self) -> Value {
        let clients = self.lock();
        clients
            .iter()
            .filter_map(|(n, e)| {
                let topics = e.topics.as_ref()?;
                Some(json!({"client": n, "topics": topics, "app_name": e.app_name}))
            })
            .collect()
    }

    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Value {
        let s = &self.stats;
        json!({
            "event": "stats",
            "received": s.received.load(Ordering::Relaxed),
            "rejected": s.rejected.load(Ordering::Relaxed),
            "forwarded": s.forwarded.load(Ordering::Relaxed),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Line {
    Text(String),
    Sync(mpsc::Sender<()>),
}

/// Writes JSON lines to stdout from a thread of its own (a reader that is slow to read
/// stdout never stalls the connections); flushes whenever no more lines are waiting.
#[derive(Debug)]
pub struct Emitter {
    tx: mpsc::Sender<Line>,
}

impl Emitter {
    fn start() -> Emitter {
        let (tx, rx) = mpsc::channel::<Line>();
        std::thread::spawn(move || {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let write = |line: Line, out: &mut std::io::StdoutLock<'_>| match line {
                Line::Text(t) => {
                    if out.write_all(t.as_bytes()).is_err() || out.write_all(b"\n").is_err() {
                        // Nobody reads stdout any more: the driver is gone.
                        std::process::exit(0);
                    }
                }
                Line::Sync(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            };
            while let Ok(line) = rx.recv() {
                write(line, &mut out);
                while let Ok(line) = rx.try_recv() {
                    write(line, &mut out);
                }
                if out.flush().is_err() {
                    std::process::exit(0);
                }
            }
        });
        Emitter { tx }
    }

    /// Prints one JSON line.
    pub fn emit(&self, v: Value) {
        let _ = self.tx.send(Line::Text(v.to_string()));
    }

    /// Waits (blocking) until every line emitted so far is written and flushed.
    pub fn sync(&self) {
        let (tx, rx) = mpsc::channel();
        let _ = self.tx.send(Line::Sync(tx));
        let _ = rx.recv();
    }
}
