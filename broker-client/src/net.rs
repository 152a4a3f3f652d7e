//! The TCP connection under a client's WebSocket (and under a gateway's peering link).

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;

/// Connects to the host and port of `req` (`default_port` if the URL has none), with Nagle off;
/// also returns the host name, without IPv6 brackets, for the TLS certificate check.
pub(crate) async fn tcp(req: &Request, default_port: u16) -> Result<(String, TcpStream), String> {
    let host = req
        .uri()
        .host()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = req.uri().port_u16().unwrap_or(default_port);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    Ok((host, tcp))
}

/// Opens a plain WebSocket (`ws://`) for `req`; `wss://` needs the `tls` feature.
#[cfg(not(feature = "tls"))]
pub(crate) async fn connect_plain(
    req: Request,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, String> {
    if req.uri().scheme_str() == Some("wss") {
        return Err("wss:// URLs need the `tls` feature of broker-client".into());
    }
    let (_, tcp) = tcp(&req, 80).await?;
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}
