//! The sans-I/O client core (what the JS client runs as wasm) against a real gateway, over a
//! plain WebSocket: hello and welcome, coalesced publishes, routing to local subscribers, and
//! re-subscription after the gateway restarts.

mod common;

use broker_wasm::client::{ClientCore, Event};
use broker_wasm::protocol::Encoding;
use broker_wasm::Data;
use common::*;
use futures_util::{SinkExt, StreamExt};
use gateway::{Config, Endpoint};
use tokio_tungstenite::tungstenite::Message;

async fn pump(core: &mut ClientCore, ws: &mut Ws) {
    if let Some(frame) = core.take_frame() {
        ws.send(Message::Binary(frame.into())).await.unwrap();
    }
}

async fn next_events(core: &mut ClientCore, ws: &mut Ws) -> Vec<Event> {
    loop {
        match tokio::time::timeout(T, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Binary(b))) => return core.on_frame(&b).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn core_talks_to_the_gateway_and_resubscribes_after_a_restart() {
    let (ep, addr) = endpoint().await;
    let mut core = ClientCore::new(Encoding::Binary, "core-test");
    let sub = core.add_subscriber(&["/core".into()]).unwrap();
    let mut ws = raw_ws(addr, "/v1/broker", Some(Encoding::Binary.subprotocol())).await;
    core.on_open();
    pump(&mut core, &mut ws).await;
    assert!(matches!(
        next_events(&mut core, &mut ws).await[0],
        Event::Connected(_)
    ));
    // The subscription went out with the hello: a publish from the endpoint arrives.
    let nonce = core.ping();
    pump(&mut core, &mut ws).await;
    assert_eq!(
        next_events(&mut core, &mut ws).await,
        vec![Event::Pong { nonce }]
    );
    ep.publish("/core/1", Data::Count(1)).unwrap();
    match &next_events(&mut core, &mut ws).await[0] {
        Event::Message {
            subscribers,
            publish,
        } => {
            assert_eq!(subscribers, &vec![sub]);
            assert_eq!(publish.data, Data::Count(1));
        }
        other => panic!("{other:?}"),
    }
    // Publishes are coalesced into one frame and reach the endpoint's subscribers.
    let mut local = ep.make_subscriber(["/from-core"]);
    for i in 0..10u64 {
        core.publish("/from-core".into(), Data::Count(i)).unwrap();
    }
    pump(&mut core, &mut ws).await;
    assert_eq!(local.get_many_timeout(10, T).await.unwrap().len(), 10);

    // The gateway restarts on the same port; the core reconnects and resubscribes.
    ep.shutdown().await;
    let end = core.on_close();
    assert_eq!(end.last(), Some(&Event::Disconnected));
    drop(ws);
    let ep2 = Endpoint::new(Config::embedded());
    ep2.listen(addr).await.unwrap();
    let mut ws = raw_ws(addr, "/v1/broker", Some(Encoding::Binary.subprotocol())).await;
    core.on_open();
    let nonce = core.ping();
    pump(&mut core, &mut ws).await;
    let mut events = next_events(&mut core, &mut ws).await;
    while !events.contains(&Event::Pong { nonce }) {
        events.extend(next_events(&mut core, &mut ws).await);
    }
    assert_eq!(ep2.probe().local_filter(), ["/core"]);
    ep2.publish("/core/2", Data::Count(2)).unwrap();
    assert!(
        matches!(&next_events(&mut core, &mut ws).await[0], Event::Message { publish, .. } if publish.data == Data::Count(2))
    );
    ep2.shutdown().await;
}
