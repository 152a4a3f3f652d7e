//! Publish/subscribe through one gateway: native clients (binary and JSON), the embedded
//! endpoint API, subscribers (ZB-09, ZB-12, ZB-14..19, ZB-38).

mod common;

use std::time::Duration;

use broker_client::{Client, Closed};
use broker_wasm::protocol::{ClientMsg, Encoding, Publish, ServerMsg};
use broker_wasm::{Data, ErrorCode, Event};
use common::*;
use futures_util::StreamExt;

fn every_type() -> Data {
    let v: Data = broker_wasm::zeek_json::decode_value(
        br#"{"@data-type":"vector","data":[{"@data-type":"count","data":18446744073709551615},{"@data-type":"integer","data":-9223372036854775808},{"@data-type":"real","data":-7.5},{"@data-type":"string","data":"s"},{"@data-type":"address","data":"2001:db8::"},{"@data-type":"subnet","data":"10.0.0.0/8"},{"@data-type":"port","data":"53/udp"},{"@data-type":"timestamp","data":"2014-07-09T10:16:44.000"},{"@data-type":"timespan","data":"1500ms"},{"@data-type":"enum-value","data":"X::Y"},{"@data-type":"set","data":[{"@data-type":"none","data":{}}]},{"@data-type":"table","data":[{"key":{"@data-type":"boolean","data":true},"value":{"@data-type":"vector","data":[]}}]}]}"#,
    )
    .unwrap();
    v
}

#[tokio::test]
async fn zb38_clients_see_each_other_without_echo() {
    let (ep, addr) = endpoint().await;
    let a = Client::connect(&url(addr)).await.unwrap();
    let b = Client::connect(&url(addr)).await.unwrap();
    assert_eq!(a.endpoint_id(), ep.node_id());
    let mut sub_a = a.make_subscriber(["/test"]);
    let sub_b = b.make_subscriber(["/test"]);
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    b.publish("/test2", every_type()).await.unwrap(); // plain prefix: /test matches /test2
    let (topic, data) = sub_a.get_timeout(T).await.unwrap().expect("delivered");
    assert_eq!((topic.as_str(), &data), ("/test2", &every_type()));
    // No echo to the publisher.
    b.flush().await.unwrap();
    assert_eq!(sub_b.available(), 0);
    ep.shutdown().await;
}

#[tokio::test]
async fn binary_and_json_clients_see_identical_values() {
    let (ep, addr) = endpoint().await;
    let mut bin = native_raw(addr, Encoding::Binary).await;
    let mut json = native_raw(addr, Encoding::Json).await;
    send_frame(
        &mut bin,
        Encoding::Binary,
        &[
            ClientMsg::Subscribe {
                topics: vec!["/x".into()],
            },
            ClientMsg::Ping { nonce: 1 },
        ],
    )
    .await;
    assert_eq!(
        recv_frame(&mut bin, Encoding::Binary).await,
        vec![ServerMsg::Pong { nonce: 1 }]
    );
    send_frame(
        &mut json,
        Encoding::Json,
        &[
            ClientMsg::Subscribe {
                topics: vec!["/x".into()],
            },
            ClientMsg::Ping { nonce: 2 },
        ],
    )
    .await;
    assert_eq!(
        recv_frame(&mut json, Encoding::Json).await,
        vec![ServerMsg::Pong { nonce: 2 }]
    );
    let p1 = Publish {
        topic: "/x/1".into(),
        data: every_type(),
    };
    send_frame(&mut json, Encoding::Json, &[ClientMsg::Publish(p1.clone())]).await;
    assert_eq!(
        recv_frame(&mut bin, Encoding::Binary).await,
        vec![ServerMsg::Message(p1)]
    );
    let p2 = Publish {
        topic: "/x/2".into(),
        data: Event::new("e", vec![Data::Count(u64::MAX)]).to_data(),
    };
    send_frame(
        &mut bin,
        Encoding::Binary,
        &[ClientMsg::Publish(p2.clone())],
    )
    .await;
    assert_eq!(
        recv_frame(&mut json, Encoding::Json).await,
        vec![ServerMsg::Message(p2)]
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn zb09_endpoint_publish_reaches_clients_not_own_subscribers() {
    let (ep, addr) = endpoint().await;
    let mut local = ep.make_subscriber(["/t"]);
    let c = Client::connect(&url(addr)).await.unwrap();
    let mut remote = c.make_subscriber(["/t"]);
    c.flush().await.unwrap();
    ep.publish("/t/1", Data::Count(1)).unwrap();
    assert_eq!(
        remote.get_timeout(T).await.unwrap(),
        Some(("/t/1".into(), Data::Count(1)))
    );
    assert_eq!(local.available(), 0);
    // A client's publish reaches the endpoint's subscribers.
    c.publish("/t/2", Data::Count(2)).await.unwrap();
    assert_eq!(
        local.get_timeout(T).await.unwrap(),
        Some(("/t/2".into(), Data::Count(2)))
    );
    assert!(
        matches!(ep.publish("/bad<$>", Data::None), Err(e) if e.code() == ErrorCode::InvalidTopicKey)
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn zb15_zb16_zb17_subscriber_api() {
    let (ep, addr) = endpoint().await;
    let c = Client::connect(&url(addr)).await.unwrap();
    let mut sub = ep.make_subscriber(["/a"]);
    assert_eq!(
        sub.get_timeout(Duration::from_millis(20)).await.unwrap(),
        None
    );
    for i in 0..5u64 {
        c.publish("/a", Data::Count(i)).await.unwrap();
    }
    c.flush().await.unwrap();
    assert_eq!(sub.available(), 5);
    let two = sub.get_many(2).await.unwrap();
    assert_eq!(two[1].1, Data::Count(1));
    let rest = sub
        .get_many_timeout(10, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
    assert!(sub.poll().is_empty());
    // add_topic / remove_topic at any time; the filter follows (ZB-17 divergence).
    sub.add_topic("/b");
    assert_eq!(ep.probe().local_filter(), ["/a", "/b"]);
    c.publish("/b/1", Data::Count(9)).await.unwrap();
    assert_eq!(sub.next().await, Some(("/b/1".into(), Data::Count(9))));
    sub.remove_topic("/a");
    assert_eq!(ep.probe().local_filter(), ["/b"]);
    c.publish("/a", Data::Count(10)).await.unwrap();
    c.publish("/b", Data::Count(11)).await.unwrap();
    assert_eq!(sub.get().await.unwrap().1, Data::Count(11));
    // ZB-19: after shutdown the queue reports Closed once drained.
    ep.shutdown().await;
    assert_eq!(sub.get().await, Err(Closed));
}

#[tokio::test]
async fn clients_get_closed_after_the_gateway_goes_away() {
    let (ep, addr) = endpoint().await;
    let c = Client::connect(&url(addr)).await.unwrap();
    let mut sub = c.make_subscriber(["/z"]);
    c.flush().await.unwrap();
    ep.shutdown().await;
    assert_eq!(
        tokio::time::timeout(T, sub.get()).await.unwrap(),
        Err(Closed)
    );
    assert!(c.publish("/z", Data::None).await.is_err());
}

#[tokio::test]
async fn a_full_client_side_queue_drops_and_counts() {
    let (ep, addr) = endpoint().await;
    let opts = broker_client::ClientOptions {
        queue_size: 4,
        ..Default::default()
    };
    let c = Client::connect_with(&url(addr), opts).await.unwrap();
    let mut sub = c.make_subscriber(["/q"]);
    c.flush().await.unwrap();
    for i in 0..100u64 {
        ep.publish("/q", Data::Count(i)).unwrap();
    }
    // The gateway has sent all 100 once a round trip after them completes.
    c.flush().await.unwrap();
    assert_eq!(sub.poll().len(), 4);
    assert_eq!(c.dropped(), 96);
    ep.shutdown().await;
}
