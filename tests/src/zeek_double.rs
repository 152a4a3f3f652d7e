//! Driver of the `zeek-double` binary (a stand-in for Zeek's WebSocket API, see
//! `src/bin/zeek-double/main.rs` for its command line and its stdin/stdout protocol): starts
//! it, sends commands, waits for its stdout events with a deadline, and kills it when
//! dropped (a test that panics never leaves it running; it also exits by itself when its
//! stdin closes).
//!
//! ```ignore
//! let mut zeek = e2e::start_zeek_double!(&["--event", "ping(string,count)"]).await;
//! // ... connect to zeek.url() ...
//! let hello = zeek.next("client 0 subscribed", |e| e["event"] == "subscribed").await;
//! zeek.publish(json!({"type":"data-message","topic":"/t", ...})).await;
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Default deadline of every wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts `zeek-double` with these arguments (a `&[&str]`); in the tests of this package,
/// with the binary Cargo built for them. Evaluates to a future of [`ZeekDouble`].
#[macro_export]
macro_rules! start_zeek_double {
    ($args:expr) => {
        $crate::zeek_double::ZeekDouble::start_bin(
            ::std::path::Path::new(env!("CARGO_BIN_EXE_zeek-double")),
            $args,
        )
    };
}

/// Path of the binary: `$ZEEK_DOUBLE_BIN`, else `target/debug/zeek-double` of this
/// workspace (`$CARGO_TARGET_DIR` honoured); `cargo build -p e2e --bin zeek-double`.
pub fn zeek_double_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ZEEK_DOUBLE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/zeek-double")
}

/// A running `zeek-double`.
#[derive(Debug)]
pub struct ZeekDouble {
    child: Child,
    stdin: ChildStdin,
    lines: UnboundedReceiver<Value>,
    /// Lines read but not yet taken by a wait (they did not match it).
    backlog: VecDeque<Value>,
    pub port: u16,
    /// The node id; client `n` is acked with the endpoint `<node>-websocket-<n>`.
    pub node: String,
}

impl ZeekDouble {
    /// Starts [`zeek_double_bin`] with `args`.
    pub async fn start(args: &[&str]) -> ZeekDouble {
        ZeekDouble::start_bin(&zeek_double_bin(), args).await
    }

    /// Starts the binary `bin` with `args` and waits for its `listening` line.
    pub async fn start_bin(bin: &Path, args: &[&str]) -> ZeekDouble {
        assert!(
            bin.exists(),
            "{} not found: build it with `cargo build -p e2e --bin zeek-double`",
            bin.display()
        );
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn zeek-double");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut zd = ZeekDouble {
            child,
            stdin,
            lines: rx,
            backlog: VecDeque::new(),
            port: 0,
            node: String::new(),
        };
        let first = zd
            .next_within(crate::START_WITHIN, "the listening line", |_| true)
            .await;
        let (Some(port), Some(node)) = (first["listening"].as_u64(), first["node"].as_str()) else {
            panic!("unexpected first line from zeek-double: {first}");
        };
        zd.port = u16::try_from(port).expect("a port");
        zd.node = node.to_owned();
        zd
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `ws://127.0.0.1:PORT/v1/messages/json`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/messages/json", self.port)
    }

    /// The endpoint id in the ack of client `n`.
    pub fn endpoint(&self, n: u64) -> String {
        format!("{}-websocket-{n}", self.node)
    }

    /// Sends one command line.
    pub fn send(&mut self, cmd: &Value) {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush())
            .expect("write to zeek-double's stdin");
    }

    /// The next stdout event matching `pred` (earlier unmatched ones first); panics naming
    /// `what` after [`WAIT`].
    pub async fn next(&mut self, what: &str, pred: impl FnMut(&Value) -> bool) -> Value {
        self.next_within(WAIT, what, pred).await
    }

    /// [`next`](Self::next) with another deadline.
    pub async fn next_within(
        &mut self,
        within: Duration,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i).expect("in range");
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) if pred(&v) => return v,
                Ok(Some(v)) => self.backlog.push_back(v),
                Ok(None) => panic!(
                    "zeek-double ended while waiting for {what}; unmatched: {:?}",
                    self.backlog
                ),
                Err(_) => panic!(
                    "no {what} from zeek-double within {within:?}; unmatched: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// The next event named `event` (e.g. `"subscribed"`).
    pub async fn event(&mut self, event: &str) -> Value {
        self.next(event, |v| v["event"] == event).await
    }

    /// The next event named `event` about client `n`.
    pub async fn client_event(&mut self, event: &str, n: u64) -> Value {
        self.next(&format!("{event} of client {n}"), |v| {
            v["event"] == event && v["client"] == n
        })
        .await
    }

    /// Sends `cmd` and waits for its answer, the event `answer`.
    pub async fn command(&mut self, cmd: Value, answer: &str) -> Value {
        self.send(&cmd);
        self.event(answer).await
    }

    /// Publishes a data message (an object, or its exact text as a string); returns to how
    /// many clients it went.
    pub async fn publish(&mut self, message: Value) -> u64 {
        let r = self
            .command(json!({"cmd": "publish", "message": message}), "published")
            .await;
        r["delivered"].as_u64().expect("delivered")
    }

    /// Sets the messages sent to each new client after its ack.
    pub async fn on_connect(&mut self, messages: Vec<Value>) {
        self.command(
            json!({"cmd": "on_connect", "messages": messages}),
            "on_connect_set",
        )
        .await;
    }

    /// Drops every client connection without a Close frame; returns how many.
    pub async fn kick(&mut self) -> u64 {
        let r = self.command(json!({"cmd": "kick"}), "kicked").await;
        r["clients"].as_u64().expect("clients")
    }

    /// The acked clients: `[{"client":n,"topics":[...],"app_name":...}]`.
    pub async fn clients(&mut self) -> Vec<Value> {
        let r = self.command(json!({"cmd": "clients"}), "clients").await;
        r["clients"].as_array().cloned().unwrap_or_default()
    }

    /// Lines read and not taken by any wait yet.
    pub fn backlog(&self) -> &VecDeque<Value> {
        &self.backlog
    }
}

impl Drop for ZeekDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
