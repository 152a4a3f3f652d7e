//! `wss://` with rustls (feature `tls`): client configurations (the system's certificate
//! store, or a CA file) and the connector shared by the client and the gateway's peering
//! dialer.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

/// The certificates in a PEM file; an error naming `what` if there are none.
pub fn pem_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// A client configuration that trusts `roots`.
fn trusting(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// A client configuration for peering over TLS that trusts the certificates in `ca` (PEM).
pub fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca, "peer CA")? {
        roots
            .add(c)
            .map_err(|e| format!("peer CA {}: {e}", ca.display()))?;
    }
    trusting(roots)
}

/// A client configuration trusting the system's certificate store, for `wss://` URLs when
/// no other trust is configured.
pub fn system_roots() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err("no trusted certificates found on this system".into());
    }
    trusting(roots)
}

/// A plain or TLS client stream.
pub type ClientStream =
    tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens a WebSocket for `req` over TCP, with TLS when `tls` is given (`wss://`); the
/// certificate is checked against the request's host.
pub async fn connect_ws(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
    config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<tokio_tungstenite::WebSocketStream<ClientStream>, String> {
    use tokio_util::either::Either;
    let (host, tcp) = crate::net::tcp(&req, if tls.is_some() { 443 } else { 80 }).await?;
    let stream = match tls {
        None => Either::Left(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Either::Right(tls)
        }
    };
    tokio_tungstenite::client_async_with_config(req, stream, config)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}
