//! Configuration: command-line flags with environment fallbacks, defaults as constants.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Where the gateway listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9999";

/// The broker gateway: pub/sub routing, peering, stores and namespaces for browsers,
/// Node.js and native clients.
#[derive(Debug, Clone, Parser)]
#[command(name = "broker-gateway", version, about)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "BROKER_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Directory for persistent state (SQLite stores and namespaces).
    #[arg(long, env = "BROKER_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Directory of the web dashboard served at `/`.
    #[arg(long, env = "BROKER_WEB_DIR", default_value_os_t = default_dir("web"))]
    pub web_dir: PathBuf,

    /// Directory of the generated npm package, served at `/pkg/` for the dashboard.
    #[arg(long, env = "BROKER_PKG_DIR", default_value_os_t = default_dir("pkg"))]
    pub pkg_dir: PathBuf,

    /// Log filter, e.g. `info` or `gateway=debug,info`.
    #[arg(long, env = "BROKER_LOG", default_value = "info")]
    pub log_level: String,
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
