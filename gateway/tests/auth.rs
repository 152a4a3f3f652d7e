//! Authentication and authorisation (hardening): tokens from a file and signed JWTs, grants
//! per topic prefix, store and namespace, the Origin allowlist and TLS. A denied operation
//! gets Broker's `unauthorized` (namespaces: DB-32 `DBR_ERR_NOAUTH`) and nothing else happens.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_client::{Client, ClientError, ClientOptions, StatusEvent};
use broker_wasm::client::CloneOptions;
use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::{Backend, Encoding};
use broker_wasm::{Data, ErrorCode};
use common::*;
use futures_util::{SinkExt, StreamExt};
use gateway::{Config, Endpoint};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const SECRET: &str = "a shared secret of at least thirty-two bytes";

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("broker-auth-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An auth file with three tokens and anonymous access to `public/` only.
fn auth_file(dir: &std::path::Path) -> PathBuf {
    let file = serde_json::json!({
        "anonymous": { "subscribe": ["public/"] },
        "tokens": [
            { "name": "admin", "token": ADMIN, "grants": {
                "publish": [""], "subscribe": [""], "store_read": ["*"], "store_write": ["*"],
                "store_master": ["*"], "ns_create": ["*"], "ns_put": ["*"], "ns_read": ["*"],
                "ns_get": ["*"], "ns_move": ["*"], "ns_delete": ["*"], "peer": true, "admin": true
            }},
            { "name": "reader", "token": READER, "grants": {
                "subscribe": ["a/", "b/"], "store_read": ["shared"], "ns_read": ["jobs"]
            }},
            { "name": "writer", "token": WRITER, "grants": {
                "publish": ["a/"], "subscribe": ["a/"], "store_read": ["shared"],
                "store_write": ["shared"], "ns_put": ["jobs"], "ns_read": ["jobs"],
                "ns_move": ["jobs"]
            }}
        ]
    });
    let path = dir.join("auth.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    path
}

async fn secured() -> (Endpoint, std::net::SocketAddr) {
    let dir = temp_dir();
    let file = auth_file(&dir);
    let secret = dir.join("jwt.secret");
    std::fs::write(&secret, SECRET).unwrap();
    endpoint_with(move |c| {
        c.auth_file = Some(file);
        c.auth_jwt_secret_file = Some(secret);
        c.data_dir = dir;
    })
    .await
}

async fn connect(addr: std::net::SocketAddr, token: Option<&str>) -> Result<Client, ClientError> {
    let opts = ClientOptions {
        token: token.map(str::to_owned),
        ..Default::default()
    };
    Client::connect_with(&url(addr), opts).await
}

/// Next error event on a status subscriber.
async fn next_error(sub: &mut broker_client::StatusSubscriber) -> broker_wasm::protocol::ErrorInfo {
    loop {
        match sub.get_timeout(T).await.unwrap() {
            Some(StatusEvent::Error(e)) => return e,
            Some(_) => continue,
            None => panic!("no error event within {T:?}"),
        }
    }
}

#[tokio::test]
async fn unknown_token_is_refused_and_counted() {
    let (ep, addr) = secured().await;
    match connect(addr, Some("not-a-token-of-this-gateway")).await {
        Err(ClientError::Unauthorized(why)) => assert!(why.contains("unknown token"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(metric(&ep, "auth_failures_total"), 1);
    // Without a token: the anonymous grants (subscribe to public/ only).
    let anon = connect(addr, None).await.unwrap();
    let mut st = anon.make_status_subscriber();
    anon.make_subscriber(["secret/"]);
    let e = next_error(&mut st).await;
    assert_eq!(e.code, ErrorCode::Unauthorized);
    ep.shutdown().await;
}

#[tokio::test]
async fn publish_and_subscribe_are_limited_to_granted_prefixes() {
    let (ep, addr) = secured().await;
    let admin = connect(addr, Some(ADMIN)).await.unwrap();
    let mut everything = admin.make_subscriber([""]);
    admin.flush().await.unwrap();

    let writer = connect(addr, Some(WRITER)).await.unwrap();
    let mut st = writer.make_status_subscriber();
    // Outside the grant: refused, and nobody receives it.
    writer.publish("b/x", Data::Count(1)).await.unwrap();
    let e = next_error(&mut st).await;
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(e.context.contains("b/x"), "{}", e.context);
    // Inside the grant: delivered; it is the first message the admin sees.
    writer.publish("a/x", Data::Count(2)).await.unwrap();
    let (topic, data) = tokio::time::timeout(T, everything.get())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((topic.as_str(), data), ("a/x", Data::Count(2)));

    // Subscriptions: a/ is granted, b/ and the wider "a" are not.
    let mut sub = writer.make_subscriber(["a/", "b/", "a"]);
    let e1 = next_error(&mut st).await;
    let e2 = next_error(&mut st).await;
    assert!(e1.context.contains("\"b/\"") && e2.context.contains("\"a\""));
    writer.flush().await.unwrap();
    admin.publish("b/y", Data::Count(3)).await.unwrap();
    admin.publish("a/y", Data::Count(4)).await.unwrap();
    let (topic, _) = tokio::time::timeout(T, sub.get()).await.unwrap().unwrap();
    assert_eq!(topic, "a/y");
    assert_eq!(metric(&ep, "denied_total"), 3);
    ep.shutdown().await;
}

#[tokio::test]
async fn store_grants_separate_read_write_and_master() {
    let (ep, addr) = secured().await;
    let admin = connect(addr, Some(ADMIN)).await.unwrap();
    admin
        .attach_master("shared", Backend::Memory, Data::None)
        .await
        .unwrap();
    admin
        .attach_master("private", Backend::Memory, Data::None)
        .await
        .unwrap();
    admin.store("shared").put("k", 1u64, None).await.unwrap();

    let reader = connect(addr, Some(READER)).await.unwrap();
    let shared = reader.store("shared");
    assert_eq!(shared.get("k").await.unwrap(), Data::Count(1));
    let e = shared.put("k", 2u64, None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(e.context.contains("store_write"), "{}", e.context);
    let e = reader.store("private").get("k").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    let e = reader
        .attach_master("mine", Backend::Memory, Data::None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unauthorized);
    // Listing shows only readable stores.
    assert_eq!(reader.stores().await.unwrap(), vec!["shared".to_owned()]);
    // Nothing changed.
    assert_eq!(
        admin.store("shared").get("k").await.unwrap(),
        Data::Count(1)
    );

    let writer = connect(addr, Some(WRITER)).await.unwrap();
    writer.store("shared").put("k", 5u64, None).await.unwrap();
    assert_eq!(
        admin.store("shared").get("k").await.unwrap(),
        Data::Count(5)
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn zb47_a_clone_without_store_read_is_refused_at_once_for_good() {
    let (ep, addr) = secured().await;
    let admin = connect(addr, Some(ADMIN)).await.unwrap();
    admin
        .attach_master("private", Backend::Memory, Data::None)
        .await
        .unwrap();
    let reader = connect(addr, Some(READER)).await.unwrap();
    let opts = CloneOptions {
        resync_interval_ms: 100.0,
        ..CloneOptions::default()
    };
    let mut clone = reader.attach_clone("private", opts);
    // `synced` may wait a minute; the refusal must end it long before the test's deadline.
    let long = Duration::from_secs(60);
    let e = tokio::time::timeout(T, clone.synced(long))
        .await
        .expect("the refusal ends the wait at once")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(e.context.contains("store_read"), "{}", e.context);
    assert_eq!(
        clone.refusal().map(|e| e.code),
        Some(ErrorCode::Unauthorized)
    );
    // Every later wait fails at once too; reads fail with the refusal, not stale_data.
    let e = tokio::time::timeout(T, clone.synced(long))
        .await
        .expect("a later wait fails at once")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert_eq!(
        clone.get(&"k".into()).unwrap_err().code,
        ErrorCode::Unauthorized
    );
    let idle = tokio::time::timeout(T, clone.await_idle(long)).await;
    assert_eq!(idle, Ok(false), "await_idle gives up at once");

    // A name the gateway rejects is final too.
    let mut bad = admin.attach_clone("bad\u{1}name", opts);
    let e = tokio::time::timeout(T, bad.synced(long))
        .await
        .expect("the refusal ends the wait at once")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidData);

    // A readable store on the same connection still syncs.
    admin
        .attach_master("shared", Backend::Memory, Data::None)
        .await
        .unwrap();
    let mut shared = reader.attach_clone("shared", opts);
    shared.synced(T).await.unwrap();
    assert_eq!(shared.refusal(), None);
    ep.shutdown().await;
}

#[tokio::test]
async fn db32_namespace_grants_answer_noauth() {
    let (ep, addr) = secured().await;
    let admin = connect(addr, Some(ADMIN)).await.unwrap();
    let jobs = admin.create_namespace("jobs", 0, Vec::new()).await.unwrap();
    admin.create_namespace("done", 0, Vec::new()).await.unwrap();
    jobs.put("t", "first").await.unwrap();

    let writer = connect(addr, Some(WRITER)).await.unwrap();
    let e = writer
        .create_namespace("mine", 0, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, DbrCode::NoAuth);
    let w_jobs = writer.attach_namespace("jobs").await.unwrap();
    w_jobs.put("t", "second").await.unwrap();
    // get is not granted: NOAUTH, and the value stays.
    let e = w_jobs.get("t").await.unwrap_err();
    assert_eq!(e.code, DbrCode::NoAuth);
    // "done" is not readable for the writer: attach is refused.
    let e = writer.attach_namespace("done").await.unwrap_err();
    assert_eq!(e.code, DbrCode::NoAuth);
    // Listing shows only namespaces the token has a grant on.
    assert_eq!(writer.namespaces().await.unwrap(), vec!["jobs".to_owned()]);

    let reader = connect(addr, Some(READER)).await.unwrap();
    let r_jobs = reader.attach_namespace("jobs").await.unwrap();
    assert_eq!(
        r_jobs.put("t", "third").await.unwrap_err().code,
        DbrCode::NoAuth
    );
    // Both values put by permitted clients are there, in order; the refused one is not.
    assert_eq!(jobs.get("t").await.unwrap(), Data::from("first"));
    assert_eq!(jobs.get("t").await.unwrap(), Data::from("second"));
    assert!(
        !jobs.test_key("t").await.unwrap(),
        "the refused put left nothing"
    );
    ep.shutdown().await;
}

fn jwt(grants: serde_json::Value, exp: u64, secret: &str) -> String {
    let claims = serde_json::json!({ "sub": "dashboard", "exp": exp, "grants": grants });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn signed_tokens_carry_grants_and_expire() {
    let (ep, addr) = secured().await;
    let grants = serde_json::json!({ "publish": ["j/"], "subscribe": ["j/"] });
    // Valid: works within its grants.
    let good = jwt(grants.clone(), unix_now() + 3600, SECRET);
    let c = connect(addr, Some(&good)).await.unwrap();
    let mut sub = c.make_subscriber(["j/"]);
    c.flush().await.unwrap();
    let other = connect(addr, Some(ADMIN)).await.unwrap();
    other.publish("j/1", Data::Count(1)).await.unwrap();
    assert_eq!(
        tokio::time::timeout(T, sub.get()).await.unwrap().unwrap().0,
        "j/1"
    );
    // Wrong signature, and long expired (beyond the leeway): refused.
    let forged = jwt(
        grants.clone(),
        unix_now() + 3600,
        "another secret, also 32 bytes long!",
    );
    assert!(matches!(
        connect(addr, Some(&forged)).await,
        Err(ClientError::Unauthorized(_))
    ));
    let expired = jwt(grants.clone(), unix_now() - 3600, SECRET);
    match connect(addr, Some(&expired)).await {
        Err(ClientError::Unauthorized(why)) => assert!(why.contains("xpired"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // Expiring soon: the connection ends when the token does, with a last error.
    let soon = jwt(grants, unix_now() + 2, SECRET);
    let c = connect(addr, Some(&soon)).await.unwrap();
    let mut st = c.make_status_subscriber();
    let e = next_error(&mut st).await;
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(e.context.contains("expired"), "{}", e.context);
    ep.shutdown().await;
}

#[tokio::test]
async fn zeek_api_takes_the_token_as_a_subprotocol() {
    let (ep, addr) = secured().await;
    let zeek = |token: Option<String>| async move {
        let mut req = format!("ws://{addr}/v1/messages/json")
            .into_client_request()
            .unwrap();
        if let Some(t) = &token {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                format!("broker-token.{t}").parse().unwrap(),
            );
        }
        tokio_tungstenite::connect_async(req).await
    };
    // A wrong token is refused at the upgrade (HTTP 401).
    let err = zeek(Some("wrong-token-wrong-token".into()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The writer may subscribe to a/ only.
    let (mut ws, resp) = zeek(Some(WRITER.into())).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        &format!("broker-token.{WRITER}")
    );
    ws.send(Message::Text(r#"["b/"]"#.into())).await.unwrap();
    let reply = recv_text(&mut ws).await;
    assert!(reply.contains("unauthorized"), "{reply}");

    let (mut ws, _) = zeek(Some(WRITER.into())).await.unwrap();
    ws.send(Message::Text(r#"["a/"]"#.into())).await.unwrap();
    let ack = recv_text(&mut ws).await;
    assert!(ack.contains("ack"), "{ack}");
    let msg = r#"{"type":"data-message","topic":"b/z","@data-type":"count","data":1}"#;
    ws.send(Message::Text(msg.into())).await.unwrap();
    let reply = recv_text(&mut ws).await;
    assert!(reply.contains("unauthorized"), "{reply}");
    ep.shutdown().await;
}

#[tokio::test]
async fn peers_need_the_peer_grant() {
    let (b, b_addr) = secured().await;
    // No token: the peering fails.
    let (a, _) = endpoint_with(|c| c.peer_retry = 0.0).await;
    let r = a.peer(&b_addr.ip().to_string(), b_addr.port(), None).await;
    assert!(r.is_err(), "peering without a token must fail");
    // A token without the peer grant: refused too.
    let (a2, _) = endpoint_with(|c| c.peer_token = Some(WRITER.into())).await;
    assert!(a2
        .peer(&b_addr.ip().to_string(), b_addr.port(), None)
        .await
        .is_err());
    // The admin token has it.
    let (a3, _) = endpoint_with(|c| c.peer_token = Some(ADMIN.into())).await;
    a3.peer(&b_addr.ip().to_string(), b_addr.port(), None)
        .await
        .unwrap();
    assert_eq!(a3.peers().len(), 1);
    for ep in [a, a2, a3, b] {
        ep.shutdown().await;
    }
}

async fn upgrade_with_origin(
    addr: std::net::SocketAddr,
    origin: &str,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}/v1/broker")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|_| ())
}

#[tokio::test]
async fn origins_default_to_this_machine_and_follow_the_allowlist() {
    let (ep, addr) = endpoint().await;
    upgrade_with_origin(addr, &format!("http://{addr}"))
        .await
        .unwrap();
    upgrade_with_origin(addr, "http://localhost:5173")
        .await
        .unwrap();
    upgrade_with_origin(addr, "http://[::1]:8080")
        .await
        .unwrap();
    let err = upgrade_with_origin(addr, "https://evil.example")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(upgrade_with_origin(addr, "null").await.is_err());
    ep.shutdown().await;

    let (ep, addr) = endpoint_with(|c| c.allow_origins = vec!["https://dash.example".into()]).await;
    upgrade_with_origin(addr, "https://dash.example")
        .await
        .unwrap();
    // The gateway's own pages always may.
    upgrade_with_origin(addr, &format!("http://{addr}"))
        .await
        .unwrap();
    assert!(upgrade_with_origin(addr, "http://localhost:5173")
        .await
        .is_err());
    assert_eq!(metric(&ep, "auth_failures_total"), 1);
    ep.shutdown().await;
}

/// A self-signed certificate for 127.0.0.1, written as PEM files: (cert path, key path, DER).
fn test_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, signing_key.serialize_pem()).unwrap();
    (c, k, cert.der().to_vec())
}

#[tokio::test]
async fn tls_serves_wss_and_https() {
    let dir = temp_dir();
    let (cert, key, der) = test_certificate(&dir);
    let (ep, addr) = endpoint_with(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
    })
    .await;
    assert!(ep.tls());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let config = Arc::new(config);
    // The Rust client over wss://, trusting the test certificate.
    let opts = ClientOptions {
        tls: Some(config.clone()),
        ..Default::default()
    };
    let client = Client::connect_with(&format!("wss://{addr}"), opts)
        .await
        .unwrap();
    let mut sub = client.make_subscriber(["tls/"]);
    client.flush().await.unwrap();
    ep.publish("tls/1", Data::Count(1)).unwrap();
    assert_eq!(
        tokio::time::timeout(T, sub.get()).await.unwrap().unwrap().0,
        "tls/1"
    );
    client.shutdown().await;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = |connector: tokio_rustls::TlsConnector| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        connector.connect(name, tcp).await
    };

    // A native client over wss://: hello, welcome, publish to itself.
    let stream = tls(connector.clone()).await.unwrap();
    let mut req = format!("wss://{addr}/v1/broker")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        Encoding::Json.subprotocol().parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    let hello = broker_wasm::protocol::ClientMsg::Hello(broker_wasm::protocol::Hello {
        client: "tls".into(),
        token: None,
        statuses: false,
    });
    let frame = String::from_utf8(Encoding::Json.encode(&[hello]).unwrap()).unwrap();
    ws.send(Message::Text(frame.into())).await.unwrap();
    let welcome = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        welcome.to_text().unwrap().contains("welcome"),
        "{welcome:?}"
    );

    // Plain HTTP over TLS: /healthz.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tls(connector.clone()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200") && body.contains("\"ok\""),
        "{body}"
    );

    // A plain-text client gets no service.
    let plain = tokio::time::timeout(
        T,
        tokio_tungstenite::connect_async(format!("ws://{addr}/v1/broker")),
    )
    .await
    .unwrap();
    assert!(plain.is_err());
    ep.shutdown().await;
}

#[tokio::test]
async fn bad_tls_or_auth_files_fail_at_start() {
    let dir = temp_dir();
    let mut c = Config::embedded();
    c.tls_cert = Some(dir.join("missing.pem"));
    c.tls_key = Some(dir.join("missing.key"));
    let e = Endpoint::try_new(c).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");

    let mut c = Config::embedded();
    let bad = dir.join("auth.json");
    std::fs::write(
        &bad,
        r#"{"tokens":[{"name":"x","token":"short","grants":{}}]}"#,
    )
    .unwrap();
    c.auth_file = Some(bad.clone());
    let e = Endpoint::try_new(c).unwrap_err();
    assert!(e.to_string().contains("shorter than 16"), "{e}");

    let mut c = Config::embedded();
    std::fs::write(
        &bad,
        r#"{"tokens":[{"name":"x","token":"long-enough-token!","grants":{"publsh":[]}}]}"#,
    )
    .unwrap();
    c.auth_file = Some(bad);
    let e = Endpoint::try_new(c).unwrap_err();
    assert!(e.to_string().contains("publsh"), "{e}");
}

#[tokio::test]
async fn store_values_over_the_limit_are_refused() {
    let (ep, addr) = endpoint_with(|c| c.store_max_value = 1000).await;
    let c = Client::connect(&url(addr)).await.unwrap();
    c.attach_master("s", Backend::Memory, Data::None)
        .await
        .unwrap();
    let s = c.store("s");
    s.put("small", "x".repeat(100), None).await.unwrap();
    let e = s.put("big", "x".repeat(2000), None).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidData);
    assert!(e.context.contains("--store-max-value"), "{}", e.context);
    // Growing a value past the limit by appends is refused too; it keeps its old value.
    for _ in 0..8 {
        s.append("small", "y".repeat(100), None).await.unwrap();
    }
    assert!(s.append("small", "y".repeat(200), None).await.is_err());
    assert_eq!(
        s.get("small").await.unwrap(),
        Data::from(format!("{}{}", "x".repeat(100), "y".repeat(800)))
    );
    assert!(!s.exists("big").await.unwrap());
    assert_eq!(metric(&ep, "store_value_rejected_total"), 2);
    ep.shutdown().await;
}

#[tokio::test]
async fn a_connection_over_its_byte_rate_is_slowed_not_cut() {
    let (ep, addr) = endpoint_with(|c| c.max_bytes_rate = 2000).await;
    let admin = Client::connect(&url(addr)).await.unwrap();
    let mut sub = admin.make_subscriber(["r/"]);
    admin.flush().await.unwrap();
    let opts = ClientOptions {
        batching: false,
        ..Default::default()
    };
    let c = Client::connect_with(&url(addr), opts).await.unwrap();
    for _ in 0..10 {
        c.publish("r/x", "z".repeat(500)).await.unwrap();
    }
    for _ in 0..10 {
        tokio::time::timeout(T, sub.get()).await.unwrap().unwrap();
    }
    assert!(metric(&ep, "throttled_total") >= 1);
    ep.shutdown().await;
}

#[tokio::test]
async fn peers_over_tls_verify_the_certificate() {
    let dir = temp_dir();
    let (cert, key, _) = test_certificate(&dir);
    let (b, b_addr) = endpoint_with(|c| {
        c.tls_cert = Some(cert.clone());
        c.tls_key = Some(key);
    })
    .await;
    let mut sub = b.make_subscriber(["tls/"]);
    // Trusting the certificate: peers over wss:// and messages flow.
    let (a, _) = endpoint_with(|c| c.peer_ca = Some(cert)).await;
    a.peer(&b_addr.ip().to_string(), b_addr.port(), None)
        .await
        .unwrap();
    eventually("b's subscription at a", || {
        a.peer_subscriptions().iter().any(|t| t == "tls/")
    })
    .await;
    a.publish("tls/x", Data::Count(7)).unwrap();
    let (topic, data) = tokio::time::timeout(T, sub.get()).await.unwrap().unwrap();
    assert_eq!((topic.as_str(), data), ("tls/x", Data::Count(7)));
    // Trusting another certificate: the handshake fails, no peering.
    let other = temp_dir();
    let (other_cert, _, _) = test_certificate(&other);
    let (c, _) = endpoint_with(|c| c.peer_ca = Some(other_cert)).await;
    assert!(c
        .peer(&b_addr.ip().to_string(), b_addr.port(), None)
        .await
        .is_err());
    for ep in [a, b, c] {
        ep.shutdown().await;
    }
}
