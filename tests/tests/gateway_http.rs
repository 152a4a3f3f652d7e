//! The gateway binary serves its health endpoint and the dashboard, on a port chosen by the OS.

use e2e::Gateway;

#[test]
fn healthz_reports_status_version_and_endpoint() {
    let gw = Gateway::start(&[]);
    assert_ne!(gw.addr.port(), 0);
    let (status, body) = gw.get("/healthz");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let id: broker_wasm::NodeId = health["endpoint"].as_str().unwrap().parse().expect("UUID");
    // A second gateway gets another identity (ZB-01).
    let other = Gateway::start(&[]);
    let (_, body2) = other.get("/healthz");
    let health2: serde_json::Value = serde_json::from_str(&body2).unwrap();
    assert_ne!(health2["endpoint"].as_str().unwrap(), id.to_string());
}

#[test]
fn serves_the_dashboard_and_the_package() {
    let gw = Gateway::start(&[]);
    let (status, body) = gw.get("/");
    assert_eq!(status, 200);
    assert!(body.contains("<title>Broker gateway</title>"), "{body}");
    let (status, body) = gw.get("/app.js");
    assert_eq!(status, 200);
    assert!(body.contains("/pkg/index.js"));
    let (status, body) = gw.get("/pkg/package.json");
    assert_eq!(
        status, 200,
        "pkg/ must be built before the tests (scripts/build-pkg.sh)"
    );
    assert!(body.contains("\"name\": \"broker-wasm\""));
    let (status, _) = gw.get("/no/such/file");
    assert_eq!(status, 404);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let gw = Gateway::start(&[]);
    assert_eq!(gw.get("/healthz").0, 200);
    assert!(gw.terminate(), "exit status 0 after SIGTERM");
}

#[test]
fn a_port_in_use_is_a_clear_failure() {
    let gw = Gateway::start(&[]);
    // Must fail at once; should it listen after all, it is killed after the deadline.
    let out = e2e::output_within(
        std::process::Command::new(e2e::gateway_bin()).args(["--listen", &gw.addr.to_string()]),
        e2e::START_WITHIN,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}
