//! `broker-gateway`: parse flags, bind, print the bound address, peer, serve until
//! SIGINT/SIGTERM.

use clap::Parser;
use gateway::{Config, Endpoint};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// Messages are many small allocations freed on other threads; mimalloc handles that pattern
// far better than the system allocator (about a third of the routing time went to malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("broker-gateway: cannot listen on {}: {e}", config.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let peers = config.peers.clone();
    let retry = config.retry_interval();
    let open_beyond_loopback = config.open_beyond_loopback();
    let endpoint = match Endpoint::try_new(config) {
        Ok(ep) => ep,
        Err(e) => {
            eprintln!("broker-gateway: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if open_beyond_loopback {
        eprintln!(
            "broker-gateway: WARNING: listening on {addr} without authentication: anyone who \
             can reach this address may publish, subscribe, and read and write every store \
             and namespace. Configure --auth-file or a JWT key (see SECURITY in the README)."
        );
    }
    if let Err(e) = endpoint.attach_configured_stores().await {
        eprintln!(
            "broker-gateway: cannot attach a store: {} ({})",
            e.context, e.code
        );
        return std::process::ExitCode::FAILURE;
    }
    // Signal handlers first: a script may send SIGTERM as soon as it read the line below.
    let signals = shutdown_signal();
    // Tests and scripts read this line to find the port when listening on port 0.
    println!(
        "broker-gateway {} listening on {}://{addr}",
        gateway::VERSION,
        if endpoint.tls() { "https" } else { "http" }
    );
    tracing::info!(endpoint = %endpoint.node_id(), %addr, "started");
    for p in peers {
        match p
            .rsplit_once(':')
            .and_then(|(h, port)| Some((h.to_owned(), port.parse::<u16>().ok()?)))
        {
            Some((host, port)) => endpoint.peer_nosync(&host, port, retry),
            None => {
                eprintln!("broker-gateway: --peer {p:?} is not HOST:PORT");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = endpoint.start_configured_uplinks() {
        eprintln!("broker-gateway: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let server = endpoint.clone();
    let serve = tokio::spawn(async move { server.serve(listener).await });
    signals.await;
    tracing::info!("shutting down");
    endpoint.shutdown().await;
    match serve.await {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("broker-gateway: {e}");
            std::process::ExitCode::FAILURE
        }
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

/// Registers for SIGINT and SIGTERM now; the returned future completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    #[cfg(unix)]
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        {
            let int = async {
                match sigint.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match sigterm.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = int => {},
                _ = term => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
