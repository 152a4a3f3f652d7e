//! Drives one native-protocol client session in-process, without a socket, for the
//! `gateway_session` fuzz target in `fuzz/` (cargo feature `fuzzing`; not a public API).
//!
//! Each call builds a fresh endpoint (in-memory configuration, a data directory of its own
//! under `/dev/shm` or the temporary directory, small limits so they are reached), registers the
//! connection as the WebSocket handler does, queues the welcome, hands the frames to the
//! session one after the other and lets the endpoint's tasks run between them. Two
//! observers, a binary and a JSON client subscribed to every topic, receive what the session
//! publishes. Everything queued for the three connections must decode as server messages.
//! At the end the connection closes and the endpoint shuts down as they do in the gateway.
//!
//! Two requests are tamed before they reach the session, since they would reach outside
//! the process: runtime peering (`Peer`, which connects to a host) becomes `Peers`, and a
//! SQLite master's options (which may name any file) are dropped, so the file lands in
//! the data directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use broker_wasm::protocol::{Backend, ClientMsg, Encoding, Request, ServerMsg};
use broker_wasm::Data;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::conn::native::FuzzSession;
use crate::endpoint::Endpoint;
use crate::hub::{Sink, StatusSink};
use crate::state::Shared;
use crate::subscriber::Control;

/// Runs sessions; keeps the configuration and a counter for data directories.
#[derive(Debug)]
pub struct Harness {
    config: Config,
    base: PathBuf,
    runs: u64,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let mut config = Config::embedded();
        config.queue_size = 64;
        config.max_subscriptions = 16;
        config.ns_max_waiters = 8;
        config.ns_max_value = 4096;
        Harness {
            config,
            base: scratch().join(format!("broker-fuzz-{}", std::process::id())),
            runs: 0,
        }
    }

    /// One connection: the hello (asking for status events if `statuses`), then `frames`.
    /// Panics if the gateway queues something for a client that does not decode.
    pub fn session(&mut self, encoding: Encoding, statuses: bool, frames: &[Vec<u8>]) {
        self.runs += 1;
        let mut config = self.config.clone();
        config.data_dir = self.base.join(self.runs.to_string());
        let dir = config.data_dir.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(run(config, encoding, statuses, frames));
        rt.shutdown_timeout(Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Where data directories go: memory-backed `/dev/shm` where there is one (SQLite files are
/// written and synced for persistent namespaces and SQLite masters), else the temporary
/// directory.
fn scratch() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// A queue of one consumer, checked as it is drained.
struct Queue {
    encoding: Encoding,
    rx: mpsc::Receiver<Bytes>,
}

impl Queue {
    fn new(encoding: Encoding, capacity: usize) -> (Queue, mpsc::Sender<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Queue { encoding, rx }, tx)
    }

    fn drain(&mut self) {
        while let Ok(b) = self.rx.try_recv() {
            let msg = match self.encoding {
                Encoding::Binary => {
                    broker_wasm::binary::from_slice::<ServerMsg>(&b).map_err(|e| e.to_string())
                }
                Encoding::Json => {
                    serde_json::from_slice::<ServerMsg>(&b).map_err(|e| e.to_string())
                }
            };
            if let Err(e) = msg {
                panic!(
                    "a queued {:?} message does not decode: {e}: {b:?}",
                    self.encoding
                );
            }
        }
    }
}

/// Lets the endpoint's tasks (store masters, feeds, waiters) take their turns.
async fn settle() {
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
}

async fn run(config: Config, encoding: Encoding, statuses: bool, frames: &[Vec<u8>]) {
    let ep = Endpoint::new(config);
    let shared: Arc<Shared> = ep.shared.clone();
    let capacity = shared.config.queue_size.max(1);

    let mut observers = Vec::new();
    for e in [Encoding::Binary, Encoding::Json] {
        let (q, tx) = Queue::new(e, 1 << 16);
        let reg = shared.hub.register(Sink::Native { encoding: e, tx });
        shared.add_topics(reg.id, &[String::new()]);
        observers.push(q);
    }

    let (mut queue, tx) = Queue::new(encoding, capacity);
    let reg = shared.hub.register(Sink::Native {
        encoding,
        tx: tx.clone(),
    });
    if statuses {
        let sink = StatusSink::Native {
            encoding,
            tx: tx.clone(),
        };
        shared.hub.add_status_sink(reg.id, sink, true);
    }
    let mut session = FuzzSession::new(shared.clone(), reg.id, encoding, tx);
    for frame in frames {
        let keep = match tame(encoding, frame) {
            Some(f) => session.frame(&f),
            None => session.frame(frame),
        };
        settle().await;
        queue.drain();
        for o in &mut observers {
            o.drain();
        }
        if !keep {
            break;
        }
    }

    // The connection ends as in `conn::native::run`.
    if shared.hub.unregister(reg.id) {
        shared.filter_changed();
    }
    session.close();
    shared.namespaces.release_session(reg.id);
    settle().await;
    queue.drain();
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.shutdown()).await;
    for o in &mut observers {
        o.drain();
    }
}

/// The frame with the requests that would reach outside the process replaced (see the
/// module's documentation); `None` if there are none (or the frame does not decode). A
/// frame that cannot be encoded again becomes an empty (malformed) one.
fn tame(encoding: Encoding, frame: &[u8]) -> Option<Vec<u8>> {
    let mut msgs: Vec<ClientMsg> = encoding.decode(frame, usize::MAX).ok()?;
    let mut changed = false;
    for m in &mut msgs {
        let ClientMsg::Request { request, .. } = m else {
            continue;
        };
        match request {
            Request::Peer { .. } => {
                *request = Request::Peers;
                changed = true;
            }
            Request::AttachMaster {
                backend: Backend::Sqlite,
                options,
                ..
            } if *options != Data::None => {
                *options = Data::None;
                changed = true;
            }
            _ => {}
        }
    }
    changed.then(|| encoding.encode(&msgs).unwrap_or_default())
}
