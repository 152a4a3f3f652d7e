//! `zeek-double`: a stand-in for a Zeek node's WebSocket API (`/v1/messages/json`) for tests,
//! behaving as spec ZU-03..ZU-09 and Zeek's `src/cluster/websocket/WebSocket.cc` say.
//!
//! ```text
//! zeek-double [--port N] [--node ID] [--version TEXT] [--event SPEC]...
//!             [--no-default-events] [--quiet]
//! ```
//!
//! - `--port N`: listen on 127.0.0.1:N (default 0, a free port).
//! - `--node ID`: the node id (default a random UUID); client `n` (counted from 0 over all
//!   accepted TCP connections) is acked with the endpoint `<ID>-websocket-<n>`.
//! - `--version TEXT`: the version in the ack (default `8.2.0-double`).
//! - `--event SPEC`: declares an event clients may publish: `NAME` (any arguments) or
//!   `NAME(TYPE,...)` with Broker `@data-type` names (`any`, `count`, `string`, `address`,
//!   `vector<T>`, `[T,...]` for a record; see `decl.rs`). Repeatable.
//! - Declared unless `--no-default-events`:
//!   `Cluster::table_change_infos([string,timestamp,string],vector<[enum-value,timestamp,vector,any,any]>)`
//!   and `BrokerGateway::table_published(string)`.
//! - `--quiet`: no `received` lines (still counted by `stats`).
//!
//! Clients: the path must be `/v1/messages/json` (else the error `invalid_uri`, then Close
//! 1008); `X-Application-Name`, if sent, only `[-/_.=:*@a-zA-Z0-9]` (else
//! `invalid_application_name`, Close 1008). The first message is a JSON array of topic
//! prefixes, answered with `{"type":"ack","endpoint":...,"version":...}` and then the
//! on-connect messages whose topic it matches; anything else gets `subscriptions not an
//! array` / `individual subscription not a string` and the connection stays open, never
//! acked, its messages ignored. After the ack each message is a data message: undecodable
//! -> `failed to decode JSON object`, no topic -> `no topic in top-level JSON object`, not a
//! declared event with matching arguments -> `failed to create Zeek event` (all with code
//! `deserialization_failed`; the connection stays open). An accepted event goes, as the
//! text the client sent, to every other acked client with a matching prefix (never back to
//! the sender). Subscriptions never change. Each client has its own send queue and task.
//!
//! Stdout: JSON lines. The first is `{"listening":PORT,"node":"ID"}`; then:
//!
//! ```text
//! {"event":"connected","client":n,"path":"...","app_name":"..."|null,"headers":{"name":"value"}}
//! {"event":"refused","client":n,"error":{"type":"error","code":...,"context":...}}
//! {"event":"subscribed","client":n,"topics":[...],"endpoint":"...","on_connect":k}
//! {"event":"received","client":n,"topic":"...","name":"...","delivered":k,"message":{...}}
//! {"event":"rejected","client":n,"error":{...},"message_text":"..."}
//! {"event":"ignored","client":n,"message_text":"..."|null}
//! {"event":"closed","client":n,"code":c|null,"reason":"..."|null}   (code: the client's Close)
//! {"event":"upgrade_failed","client":n,"error":"..."}
//! ```
//!
//! Stdin: JSON lines, answered in order (a burst answers when it ends):
//!
//! ```text
//! {"cmd":"publish","message":M}        -> {"event":"published","delivered":k}
//!     M: a data-message object (sent compactly, members in Broker's order, reals as %f)
//!     or a string with the exact text; sent to every acked client whose prefixes match.
//! {"cmd":"raw","text":"...","client":n?}  -> {"event":"sent","delivered":k}
//!     a text frame to client n, or to every acked client.
//! {"cmd":"on_connect","messages":[M...]}  -> {"event":"on_connect_set","messages":k}
//!     sent to each client acked from now on, right after its ack, if the topic matches
//!     (like a script calling Cluster::publish_table from Cluster::websocket_client_added).
//! {"cmd":"kick","client":n?}           -> {"event":"kicked","clients":k}
//!     drops the TCP connections (no Close frame) of client n or of every client.
//! {"cmd":"close","code":1001?,"reason":"Terminating"?,"client":n?}
//!                                      -> {"event":"closing","clients":k}
//!     a Close frame (what Zeek sends when it terminates); dropped after 5 s without reply.
//! {"cmd":"burst","topic":T,"name":E,"count":N,"rate":R?,"precise":P?}
//!                                      -> {"event":"burst_done","sent":N,"clients":k,"frames":f,"seconds":S}
//!     N events E(count i, time now), i = 0..N-1, to every matching acked client, R per
//!     second (0: unpaced); the time to the millisecond as Zeek's, to the microsecond with
//!     "precise":true (for latency measurements). sent: the least any client got; frames: all written.
//! {"cmd":"clients"}                    -> {"event":"clients","clients":[{"client":n,"topics":[...],"app_name":...}]}
//! {"cmd":"stats"}                      -> {"event":"stats","received":a,"rejected":b,"forwarded":c}
//! anything else                        -> {"event":"error","text":"...","line":"..."}
//! ```
//!
//! The process ends at EOF on stdin (so a test that dies leaves nothing running) or SIGTERM.

mod client;
mod control;
mod decl;
mod frame;
mod hub;
mod rules;

use std::sync::Arc;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::decl::Decls;
use crate::hub::Hub;

const USAGE: &str = "usage: zeek-double [--port N] [--node ID] [--version TEXT] \
                     [--event SPEC]... [--no-default-events] [--quiet]";

#[derive(Debug)]
struct Opts {
    port: u16,
    node: String,
    version: String,
    decls: Decls,
    quiet: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut port = 0;
    let mut node = None;
    let mut version = "8.2.0-double".to_owned();
    let mut events = Vec::new();
    let mut defaults = true;
    let mut quiet = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = value()?.parse().map_err(|_| "--port takes a port number")?,
            "--node" => node = Some(value()?),
            "--version" => version = value()?,
            "--event" => events.push(value()?),
            "--no-default-events" => defaults = false,
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let mut decls = Decls::default();
    let defaults = if defaults { &decl::DEFAULTS[..] } else { &[] };
    for spec in defaults
        .iter()
        .copied()
        .chain(events.iter().map(String::as_str))
    {
        decls.declare(spec)?;
    }
    Ok(Opts {
        port,
        node: node.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        version,
        decls,
        quiet,
    })
}

#[tokio::main]
async fn main() {
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("zeek-double: {e}\n{USAGE}");
        std::process::exit(2)
    });
    let listener = TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .unwrap_or_else(|e| {
            eprintln!("zeek-double: cannot listen on 127.0.0.1:{}: {e}", opts.port);
            std::process::exit(1)
        });
    let port = listener.local_addr().map_or(0, |a| a.port());
    let hub = Arc::new(Hub::new(opts.node, opts.version, opts.decls, opts.quiet));
    hub.out.emit(json!({"listening": port, "node": hub.node}));
    let accept_hub = hub.clone();
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(client::serve(accept_hub.clone(), stream, n));
                    n += 1;
                }
                Err(e) => {
                    eprintln!("zeek-double: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        () = control::run(hub.clone(), control::stdin_lines()) => {}
        _ = term.recv() => {}
    }
    hub.out.sync();
    std::process::exit(0);
}
