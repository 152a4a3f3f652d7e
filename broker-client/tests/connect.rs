//! Connection failures that need no gateway (the client against a gateway is tested in
//! gateway/tests and tests/).

use broker_client::{Client, ClientError};
use broker_wasm::ErrorCode;

/// A port nobody listens on: bound, then released.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error() {
    let url = format!("ws://127.0.0.1:{}", closed_port());
    let err = Client::connect(&url).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Connect(u, _) if u.ends_with("/v1/broker")),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::PeerUnavailable);
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn wss_needs_the_tls_feature() {
    let url = format!("wss://127.0.0.1:{}", closed_port());
    match Client::connect(&url).await {
        Err(ClientError::Connect(_, why)) => assert!(why.contains("`tls` feature"), "{why}"),
        other => panic!("{other:?}"),
    }
}
