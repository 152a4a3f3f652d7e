//! The gateway binary's uplinks to a Zeek node (ZU-02..17), with the Zeek double standing in
//! for Zeek (ZU-20 b): the handshake as Zeek sees it (subscriptions, application name,
//! headers), the uplink in `/metrics`, reconnection to a restarted Zeek, Zeek's error replies
//! reaching a client, and the mirrored tables rebuilt after a reconnect.
//! The Node and Chromium sides are in `tests/node/uplink.test.mjs`.

use std::time::Duration;

use broker_client::Client;
use broker_wasm::StatusCode;
use broker_wasm::{Data, ErrorCode};
use e2e::start_zeek_double;
use e2e::Gateway;
use serde_json::json;

const T: Duration = Duration::from_secs(10);

fn uplink_line(g: &Gateway, series: &str) -> Option<String> {
    let (_, body) = g.get("/metrics");
    body.lines()
        .find(|l| l.starts_with(&format!("broker_{series}{{")))
        .map(str::to_owned)
}

/// Polls the uplink's `/metrics` line until `cond` holds.
fn wait_uplink_line(g: &Gateway, series: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + T;
    loop {
        if let Some(l) = uplink_line(g, series).filter(|l| cond(l)) {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "broker_{series} never matched: {:?}",
            uplink_line(g, series)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn zu04_zu09_the_handshake_zeek_sees_and_the_uplink_in_metrics() {
    let mut zeek = start_zeek_double!(&[]).await;
    let url = zeek.url();
    let g = Gateway::start(&[
        "--zeek",
        &url,
        "--zeek-subscribe",
        "zeek/",
        "--zeek-subscribe",
        "zeek.test",
        "--zeek-app-name",
        "e2e-gateway",
        "--zeek-header",
        "Authorization: Basic dXNlcjpwYXNz",
    ]);
    let c = zeek.event("connected").await;
    assert_eq!(c["path"], "/v1/messages/json");
    assert_eq!(c["app_name"], "e2e-gateway");
    assert_eq!(c["headers"]["authorization"], "Basic dXNlcjpwYXNz");
    let s = zeek.event("subscribed").await;
    assert_eq!(s["topics"], json!(["zeek/", "zeek.test"]));
    let line = wait_uplink_line(&g, "uplink_up", |l| l.ends_with(" 1"));
    assert!(line.contains(&format!("url=\"{url}\"")), "{line}");
    assert!(
        line.contains(&format!("zeek_endpoint=\"{}\"", zeek.endpoint(0))),
        "{line}"
    );
    assert!(line.contains("zeek_version=\"8.2.0-double\""), "{line}");
    assert_eq!(g.metric("uplinks"), 1);
    assert_eq!(g.metric("uplink_connects_total"), 1);
}

#[tokio::test]
async fn zu02_a_bad_uplink_flag_stops_the_gateway_with_a_message() {
    for (args, want) in [
        (vec!["--zeek", "http://127.0.0.1:1/"], "ws:// or wss://"),
        (
            vec!["--zeek", "ws://127.0.0.1:1", "--zeek-app-name", "bad name"],
            "ZU-09",
        ),
        (
            vec!["--zeek", "ws://127.0.0.1:1", "--zeek-header", "no colon"],
            "Name: value",
        ),
    ] {
        let out = e2e::output_within(
            std::process::Command::new(e2e::gateway_bin())
                .args(["--listen", "127.0.0.1:0"])
                .args(&args),
            T,
        );
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn zu02_the_uplink_reconnects_to_a_restarted_zeek_and_reports_it() {
    let zeek = start_zeek_double!(&["--event", "Test::ping(count)"]).await;
    let port = zeek.port.to_string();
    let url = zeek.url();
    let g = Gateway::start(&["--zeek", &url, "--zeek-publish", "zeek/up/"]);
    wait_uplink_line(&g, "uplink_up", |l| l.ends_with(" 1"));
    let opts = broker_client::ClientOptions {
        statuses: true,
        ..Default::default()
    };
    let client = Client::connect_with(&format!("ws://{}", g.addr), opts)
        .await
        .unwrap();
    let mut st = client.make_status_subscriber();
    let mut sub = client.make_subscriber(["zeek/"]);
    drop(zeek);
    expect_uplink_status(&mut st, StatusCode::PeerLost).await;
    // A new Zeek process on the same port: a new node id in the ack.
    let mut zeek = start_zeek_double!(&["--port", &port, "--event", "Test::ping(count)"]).await;
    let added = expect_uplink_status(&mut st, StatusCode::PeerAdded).await;
    assert!(added.contains(&zeek.endpoint(0)), "{added}");
    wait_uplink_line(&g, "uplink_up", |l| {
        l.contains(&zeek.endpoint(0)) && l.ends_with(" 1")
    });
    assert_eq!(g.metric("uplink_connects_total"), 2);
    // Both ways work on the new connection.
    zeek.event("subscribed").await;
    client.flush().await.unwrap();
    let ping = broker_wasm::zeek::Event::new("Test::ping", vec![Data::Count(1)]);
    zeek.publish(serde_json::Value::String(
        broker_wasm::zeek_json::data_message("zeek/x", &ping.to_data()).unwrap(),
    ))
    .await;
    let (topic, _) = sub.get_timeout(T).await.unwrap().expect("down");
    assert_eq!(topic, "zeek/x");
    client.publish("zeek/up/y", ping.to_data()).await.unwrap();
    let r = zeek.event("received").await;
    assert_eq!(r["topic"], "zeek/up/y");
    client.shutdown().await;
}

/// The next status of an uplink with `code`; returns its message.
async fn expect_uplink_status(
    st: &mut broker_client::StatusSubscriber,
    code: StatusCode,
) -> String {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match st.get_timeout(left).await.unwrap() {
            Some(broker_client::StatusEvent::Status(s))
                if s.code == code && s.message.starts_with("zeek uplink") =>
            {
                return s.message;
            }
            Some(_) => continue,
            None => panic!("no uplink {code:?} within {T:?}"),
        }
    }
}

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/zeek")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One `table_change_infos` frame for `Test::hosts` (a `table[addr] of count`), in Zeek 8.2's
/// shape (see tests/fixtures/zeek/README.md): `(change, address, count)` per element.
fn hosts_frame(changes: &[(&str, &str, u64)]) -> String {
    let infos: Vec<serde_json::Value> = changes
        .iter()
        .map(|(kind, a, n)| {
            json!({"@data-type": "vector", "data": [
                {"@data-type": "enum-value", "data": kind},
                {"@data-type": "timestamp", "data": "2025-06-02T10:15:31.010"},
                {"@data-type": "vector", "data": [{"@data-type": "address", "data": a}]},
                {"@data-type": "count", "data": n},
                {"@data-type": "none", "data": {}},
            ]})
        })
        .collect();
    json!({"type": "data-message", "topic": "zeek/table/Test::hosts/", "@data-type": "vector",
    "data": [
        {"@data-type": "count", "data": 1},
        {"@data-type": "count", "data": 1},
        {"@data-type": "vector", "data": [
            {"@data-type": "string", "data": "Cluster::table_change_infos"},
            {"@data-type": "vector", "data": [
                {"@data-type": "vector", "data": [
                    {"@data-type": "string", "data": "Test::hosts"},
                    {"@data-type": "timestamp", "data": "2025-06-02T10:15:31.020"},
                    {"@data-type": "string", "data": "zeek"},
                ]},
                {"@data-type": "vector", "data": infos},
            ]},
        ]},
    ]})
    .to_string()
}

fn marker(id: &str) -> String {
    broker_wasm::zeek_json::data_message(
        &format!("zeek/table/{id}/"),
        &broker_wasm::zeek::Event::new(
            "BrokerGateway::table_published",
            vec![Data::String(id.into())],
        )
        .to_data(),
    )
    .unwrap()
}

async fn wait_clone(
    clone: &mut broker_client::store::CloneStore,
    what: &str,
    cond: impl Fn(&broker_client::store::CloneStore) -> bool,
) {
    let deadline = tokio::time::Instant::now() + T;
    while !cond(clone) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "clone never reached: {what}");
        let _ = tokio::time::timeout(left, clone.next_event()).await;
    }
}

#[tokio::test]
async fn zu15_zu17_a_mirrored_table_goes_stale_and_is_rebuilt_after_a_reconnect() {
    let mut zeek = start_zeek_double!(&[]).await;
    let g = Gateway::start(&["--zeek", &zeek.url()]);
    zeek.event("subscribed").await;
    let addr = |s: &str| Data::Address(s.parse().unwrap());
    // The fixture of a two-column index, exactly as Zeek 8.2 sends it, and a table of ours.
    zeek.publish(serde_json::Value::String(fixture(
        "table-two-column-index.json",
    )))
    .await;
    zeek.publish(serde_json::Value::String(hosts_frame(&[
        ("TABLE_ELEMENT_NEW", "10.0.0.1", 1),
        ("TABLE_ELEMENT_NEW", "10.0.0.2", 2),
        ("TABLE_ELEMENT_NEW", "10.0.0.3", 3),
    ])))
    .await;
    let client = Client::connect(&format!("ws://{}", g.addr)).await.unwrap();
    let mut services = client.attach_clone("zeek:Test::services", Default::default());
    services.synced(T).await.unwrap();
    let key = Data::Vector(vec![
        addr("10.0.0.1"),
        Data::Port(broker_wasm::data::Port::new(
            80,
            broker_wasm::data::Protocol::Tcp,
        )),
    ]);
    // The batch is applied by the store after the gateway read it: wait for it.
    wait_clone(&mut services, "the fixture's entries", |c| {
        c.get(&key).ok().flatten() == Some(Data::String("http".into()))
    })
    .await;
    let mut hosts = client.attach_clone("zeek:Test::hosts", Default::default());
    hosts.synced(T).await.unwrap();
    wait_clone(&mut hosts, "three hosts", |c| c.len() == 3).await;
    let err = hosts
        .master()
        .put(addr("10.0.0.9"), Data::Count(9), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ReadOnly);

    // Zeek will re-send the table to the next client, without 10.0.0.2 (removed while the
    // gateway was away) and with 10.0.0.3 changed, then the marker of the project's script.
    zeek.on_connect(vec![
        serde_json::Value::String(hosts_frame(&[
            ("TABLE_ELEMENT_NEW", "10.0.0.1", 1),
            ("TABLE_ELEMENT_NEW", "10.0.0.3", 30),
        ])),
        serde_json::Value::String(marker("Test::hosts")),
    ])
    .await;
    assert_eq!(zeek.kick().await, 1);
    // Stale while away (the clone hears the source is gone), then rebuilt.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, hosts.next_event()).await {
            Ok(Some(broker_client::store::CloneEvent::Error(e)))
                if e.code == ErrorCode::NoSuchMaster =>
            {
                break
            }
            Ok(Some(_)) => continue,
            other => panic!("no stale signal: {other:?}"),
        }
    }
    wait_clone(&mut hosts, "the re-sent table", |c| {
        c.len() == 2 && c.get(&addr("10.0.0.3")).ok().flatten() == Some(Data::Count(30))
    })
    .await;
    assert_eq!(hosts.get(&addr("10.0.0.2")).unwrap(), None);
    assert_eq!(hosts.get(&addr("10.0.0.1")).unwrap(), Some(Data::Count(1)));
    // The other table (not re-sent, no marker) keeps its content.
    assert_eq!(
        services.get(&key).unwrap(),
        Some(Data::String("http".into()))
    );
    client.shutdown().await;
    drop(zeek);
}
