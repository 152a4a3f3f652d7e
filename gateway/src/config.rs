//! Configuration: command-line flags with environment fallbacks, defaults as constants.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Where the gateway listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9999";

/// What happens when a consumer's outbound queue is full (ZB-18, ZB-42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumerPolicy {
    /// Drop the new message for that consumer, count it and tell the consumer.
    Drop,
    /// Disconnect the consumer.
    Disconnect,
}

/// The broker gateway: pub/sub routing, peering, stores and namespaces for browsers,
/// Node.js and native clients.
#[derive(Debug, Clone, Parser)]
#[command(name = "broker-gateway", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "BROKER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Gateways to peer with at start, as HOST:PORT (repeat the flag or separate with commas).
    #[arg(long = "peer", env = "BROKER_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Longest interval between reconnection attempts to a peer, in seconds (ZB-03, ZB-67);
    /// attempts back off with jitter up to this interval. 0 = try once, never reconnect.
    #[arg(long, env = "BROKER_PEER_RETRY", default_value_t = 10.0)]
    pub peer_retry: f64,

    /// Directory for persistent state (SQLite stores and namespaces).
    #[arg(long, env = "BROKER_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Master stores with the SQLite backend to attach at start, each in
    /// `<data-dir>/<name>.sqlite` (repeat the flag or separate with commas; ZB-44, ZB-46).
    #[arg(long = "store", env = "BROKER_STORES", value_delimiter = ',')]
    pub stores: Vec<String>,

    /// Master stores with the memory backend to attach at start (ZB-45).
    #[arg(
        long = "memory-store",
        env = "BROKER_MEMORY_STORES",
        value_delimiter = ','
    )]
    pub memory_stores: Vec<String>,

    /// Whether clients may create master stores (`attach_master` over the client protocol).
    #[arg(long, env = "BROKER_CLIENT_MASTERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub client_masters: bool,

    /// Directory of the web dashboard served at `/`.
    #[arg(long, env = "BROKER_WEB_DIR", default_value_os_t = default_dir("web"))]
    pub web_dir: PathBuf,

    /// Directory of the generated npm package, served at `/pkg/` for the dashboard.
    #[arg(long, env = "BROKER_PKG_DIR", default_value_os_t = default_dir("pkg"))]
    pub pkg_dir: PathBuf,

    /// Largest frame (WebSocket message) accepted from a client or peer, in bytes.
    #[arg(long, env = "BROKER_MAX_FRAME", default_value_t = 16 * 1024 * 1024)]
    pub max_frame: usize,

    /// Messages queued per consumer (client, peer link, subscriber) before the slow-consumer
    /// policy applies.
    #[arg(long, env = "BROKER_QUEUE_SIZE", default_value_t = 8192)]
    pub queue_size: usize,

    /// Keeps the last COUNT messages (for at most SECONDS) published under PREFIX, so a
    /// client that reconnects gets what it missed (README, "Resume after a reconnect");
    /// repeatable. Env: several separated by `;`.
    #[arg(
        long = "history",
        env = "BROKER_HISTORY",
        value_name = "PREFIX=COUNT[,SECONDS]",
        value_delimiter = ';'
    )]
    pub history: Vec<crate::history::HistorySpec>,

    /// What to do with a consumer whose queue is full.
    #[arg(long, env = "BROKER_SLOW_CONSUMER", value_enum, default_value_t = SlowConsumerPolicy::Drop)]
    pub slow_consumer: SlowConsumerPolicy,

    /// Most concurrent WebSocket connections (clients and peers).
    #[arg(long, env = "BROKER_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most concurrent WebSocket connections from one IP address; 0 = no limit.
    #[arg(
        long,
        env = "BROKER_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 1000
    )]
    pub max_connections_per_address: usize,

    /// Most messages per second one connection may publish; 0 = no limit. Excess messages are
    /// dropped with an error frame.
    #[arg(long, env = "BROKER_MAX_RATE", default_value_t = 0)]
    pub max_publish_rate: u64,

    /// Most subscription prefixes one connection may hold.
    #[arg(long, env = "BROKER_MAX_SUBSCRIPTIONS", default_value_t = 10_000)]
    pub max_subscriptions: usize,

    /// Most master stores the gateway holds before clients may create no more (each is a
    /// writer thread and, with SQLite, a file); beyond it a client's `attach_master` of a new
    /// name fails with `backend_failure`. Stores of `--store` and the Rust API do not count
    /// against it but are counted.
    #[arg(long, env = "BROKER_MAX_STORES", default_value_t = 1000)]
    pub max_stores: usize,

    /// Most store clones one connection may have attached; more attaches fail with
    /// `backend_failure`.
    #[arg(long, env = "BROKER_MAX_CLONES", default_value_t = 1000)]
    pub max_clones: usize,

    /// Most store requests (operations and attaches) one connection or peer link may have
    /// waiting for their answers. At the limit the gateway stops reading that connection
    /// until answers go out (backpressure through TCP), so nobody outruns the disk.
    #[arg(long, env = "BROKER_MAX_STORE_REQUESTS", default_value_t = 1024)]
    pub max_store_requests: usize,

    /// Largest value a namespace `put` accepts, in bytes (strings: their length; other
    /// values: their binary encoding). Larger puts fail with DBR_ERR_NOMEMORY.
    #[arg(long, env = "BROKER_NS_MAX_VALUE", default_value_t = 16 * 1024 * 1024)]
    pub ns_max_value: u64,

    /// Most blocked namespace reads/gets one connection may have waiting; more fail with
    /// DBR_ERR_NOMEMORY.
    #[arg(long, env = "BROKER_NS_MAX_WAITERS", default_value_t = 10_000)]
    pub ns_max_waiters: usize,

    /// Keep namespaces in Redis, shared by every gateway using the same one:
    /// `redis://HOST:PORT`, `rediss://HOST:PORT`, or `redis+cluster://H1:P1,H2:P2,...` for a
    /// Redis Cluster. Default: the built-in backend (memory, SQLite for PERMANENT levels).
    #[arg(long, env = "BROKER_NS_BACKEND")]
    pub ns_backend: Option<String>,

    /// A file holding the password of `--ns-backend` (its first line).
    #[arg(long, env = "BROKER_NS_BACKEND_PASSWORD_FILE")]
    pub ns_backend_password_file: Option<PathBuf>,

    /// A PEM file of the certificate authority that signed the certificate of a `rediss://`
    /// `--ns-backend` (instead of the system's roots).
    #[arg(long, env = "BROKER_NS_BACKEND_CA")]
    pub ns_backend_ca: Option<PathBuf>,

    /// Largest value a store write accepts (put, put_unique, append, insert_into, push, and
    /// the value an increment or append produces), in bytes of its binary encoding. Larger
    /// writes fail with `invalid_data`; 0 = no limit.
    #[arg(long, env = "BROKER_STORE_MAX_VALUE", default_value_t = 16 * 1024 * 1024)]
    pub store_max_value: u64,

    /// Most bytes per second one connection may send (frames as received); 0 = no limit.
    /// Beyond it the gateway stops reading from that connection until the second is over
    /// (backpressure through TCP), and counts it.
    #[arg(long, env = "BROKER_MAX_BYTES_RATE", default_value_t = 0)]
    pub max_bytes_rate: u64,

    /// JSON file of access tokens and their grants (see SECURITY in the README). With it, or
    /// with a JWT key, every connection is checked; without, access is open.
    #[arg(long, env = "BROKER_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,

    /// File holding the shared secret (at least 32 bytes) of HS256-signed JWT tokens.
    #[arg(long, env = "BROKER_AUTH_JWT_SECRET_FILE")]
    pub auth_jwt_secret_file: Option<PathBuf>,

    /// PEM file with the RSA (RS256) or P-256 (ES256) public key of signed JWT tokens.
    #[arg(long, env = "BROKER_AUTH_JWT_PUBLIC_KEY")]
    pub auth_jwt_public_key: Option<PathBuf>,

    /// Token this gateway presents when it peers with others (for their `--auth-*`).
    #[arg(long, env = "BROKER_PEER_TOKEN")]
    pub peer_token: Option<String>,

    /// PEM file of the certificates (CA or self-signed) to trust for peers; with it, this
    /// gateway peers over TLS (wss://) and verifies the peer's certificate for its host name.
    #[arg(long, env = "BROKER_PEER_CA")]
    pub peer_ca: Option<PathBuf>,

    /// Web origins allowed to open WebSockets (browsers send `Origin`), e.g.
    /// `https://dash.example.com` (repeat or separate with commas); `*` allows every origin.
    /// Without the flag: the gateway's own origin and pages on localhost / 127.0.0.1 / [::1].
    /// Requests without an `Origin` header (programs, not browsers) are not affected.
    #[arg(
        long = "allow-origin",
        env = "BROKER_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,

    /// PEM certificate chain for TLS (wss:// and https://); needs --tls-key.
    #[arg(long, env = "BROKER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for TLS; needs --tls-cert.
    #[arg(long, env = "BROKER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds between the pings the gateway sends on every connection (WebSocket pings to
    /// clients, protocol pings to peers); 0 = no pings.
    #[arg(long, env = "BROKER_PING_INTERVAL", default_value_t = 30.0)]
    pub ping_interval: f64,

    /// Seconds a connection (client or peer) may send nothing at all — no message, no pong,
    /// no complete frame — before the gateway closes it; 0 = never.
    #[arg(long, env = "BROKER_IDLE_TIMEOUT", default_value_t = 90.0)]
    pub idle_timeout: f64,

    /// A Zeek node's WebSocket API to join as a client (ZU-02), e.g.
    /// `ws://127.0.0.1:27759/v1/messages/json`; repeatable. A URL without a path gets
    /// `/v1/messages/json`.
    #[arg(long = "zeek", env = "BROKER_ZEEK", value_delimiter = ',')]
    pub zeek: Vec<String>,

    /// Topic prefixes the uplinks take from Zeek; repeatable.
    #[arg(
        long = "zeek-subscribe",
        env = "BROKER_ZEEK_SUBSCRIBE",
        value_delimiter = ',',
        default_value = "zeek/"
    )]
    pub zeek_subscribe: Vec<String>,

    /// Topic prefixes whose events the uplinks send up to Zeek; repeatable (default none).
    #[arg(
        long = "zeek-publish",
        env = "BROKER_ZEEK_PUBLISH",
        value_delimiter = ','
    )]
    pub zeek_publish: Vec<String>,

    /// An HTTP header for the uplinks' WebSocket handshake, `'Name: value'` (a reverse
    /// proxy's authentication); repeatable.
    #[arg(
        long = "zeek-header",
        env = "BROKER_ZEEK_HEADERS",
        value_delimiter = '\n'
    )]
    pub zeek_headers: Vec<String>,

    /// `X-Application-Name` the uplinks send (ZU-09): `[-/_.=:*@a-zA-Z0-9]+`.
    #[arg(
        long = "zeek-app-name",
        env = "BROKER_ZEEK_APP_NAME",
        default_value = "broker-gateway"
    )]
    pub zeek_app_name: String,

    /// PEM file of the CA(s) to trust for `wss://` uplinks (default: the system's roots).
    #[arg(long = "zeek-ca", env = "BROKER_ZEEK_CA")]
    pub zeek_ca: Option<PathBuf>,

    /// Log filter, e.g. `info` or `gateway=debug,info`.
    #[arg(long, env = "BROKER_LOG", default_value = "info")]
    pub log_level: String,
}

impl Config {
    /// Defaults for an embedded endpoint (what the flags default to, listening on port 0).
    pub fn embedded() -> Config {
        Config::parse_from(["broker-gateway", "--listen", "127.0.0.1:0"])
    }

    /// Whether any authentication is configured (an auth file or a JWT key).
    pub fn auth_configured(&self) -> bool {
        self.auth_file.is_some()
            || self.auth_jwt_secret_file.is_some()
            || self.auth_jwt_public_key.is_some()
    }

    /// True if the gateway would serve open access beyond this machine: it listens on a
    /// non-loopback address without authentication (the binary warns about it at start).
    pub fn open_beyond_loopback(&self) -> bool {
        !self.listen.ip().is_loopback() && !self.auth_configured()
    }

    /// The reconnect interval cap; `None` for "never retry".
    pub fn retry_interval(&self) -> Option<Duration> {
        (self.peer_retry > 0.0).then(|| Duration::from_secs_f64(self.peer_retry))
    }
}

/// `./NAME` if it exists in the working directory, else the folder of the source checkout the
/// binary was built from.
fn default_dir(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_access_beyond_loopback_is_flagged() {
        let parse = |args: &[&str]| {
            Config::parse_from(std::iter::once("broker-gateway").chain(args.iter().copied()))
        };
        assert!(
            !parse(&[]).open_beyond_loopback(),
            "the default is 127.0.0.1"
        );
        assert!(!parse(&["--listen", "[::1]:9999"]).open_beyond_loopback());
        assert!(parse(&["--listen", "0.0.0.0:9999"]).open_beyond_loopback());
        assert!(
            !parse(&["--listen", "0.0.0.0:9999", "--auth-file", "a.json"]).open_beyond_loopback()
        );
        assert!(
            !parse(&["--listen", "10.1.2.3:1", "--auth-jwt-secret-file", "s"])
                .open_beyond_loopback()
        );
    }
}
