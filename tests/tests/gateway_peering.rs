//! Two `broker-gateway` processes peered with `--peer`: messages cross from a client of one to
//! a client of the other, and `/metrics` shows the peering (ZB-63, ZB-65).

use std::time::Duration;

use broker_client::Client;
use broker_wasm::Data;
use e2e::Gateway;

#[tokio::test]
async fn peered_processes_carry_messages_between_their_clients() {
    let a = Gateway::start(&[]);
    let b = Gateway::start(&[
        "--peer",
        &format!("127.0.0.1:{}", a.addr.port()),
        "--peer-retry",
        "0.2",
    ]);
    let on_a = Client::connect(&format!("ws://{}", a.addr)).await.unwrap();
    let on_b = Client::connect(&format!("ws://{}", b.addr)).await.unwrap();
    let mut sub = on_a.make_subscriber(["/e2e"]);
    on_a.flush().await.unwrap();
    // No event reaches a client when the peering completes or A's filter arrives at B, so
    // poll B's view of its peers' subscriptions (ZB-07) until it holds "/e2e".
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !on_b
        .peer_subscriptions()
        .await
        .unwrap()
        .iter()
        .any(|t| t == "/e2e")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "A's subscription never reached B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    on_b.publish("/e2e/x", Data::Count(7)).await.unwrap();
    let (t, d) = sub
        .get_timeout(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("delivered");
    assert_eq!((t.as_str(), d), ("/e2e/x", Data::Count(7)));
    assert_eq!(a.metric("peers"), 1);
    assert_eq!(b.metric("peers"), 1);
    assert!(a.metric("messages_in_total") >= 1);
    assert!(b.terminate(), "clean exit on SIGTERM");
    assert!(a.terminate());
}
