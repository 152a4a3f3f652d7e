//! Resuming pub/sub (`--history`): a client whose connection is cut mid-stream gets every
//! message exactly once, in order; a gateway restart, a history that no longer reaches back,
//! or a prefix without history is a gap status event; a gateway keeps the history of a topic
//! it relays from a peer even while no client of its own subscribes.

mod common;

use std::time::Duration;

use broker_client::{Client, Position, StatusEvent, Subscriber};
use broker_wasm::protocol::{Gap, GapReason};
use broker_wasm::Data;
use common::cut::CutProxy;
use common::*;
use gateway::history::HistorySpec;

fn history(spec: &str) -> impl FnOnce(&mut gateway::Config) + '_ {
    move |c| c.history = vec![spec.parse::<HistorySpec>().unwrap()]
}

async fn publish_range(p: &Client, topic: &str, range: std::ops::RangeInclusive<u64>) {
    let items: Vec<(String, Data)> = range.map(|i| (topic.to_string(), Data::Count(i))).collect();
    for chunk in items.chunks(500) {
        p.publish_batch(chunk.to_vec()).await.unwrap();
    }
    p.flush().await.unwrap();
}

fn count(d: &Data) -> u64 {
    match d {
        Data::Count(n) => *n,
        other => panic!("not a count: {other:?}"),
    }
}

/// Takes messages from `sub` until `n` arrived (or the deadline).
async fn take(sub: &mut Subscriber, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        match sub.get_timeout(T).await {
            Ok(Some((_, d))) => out.push(count(&d)),
            other => panic!("after {} of {n}: {other:?}", out.len()),
        }
    }
    out
}

async fn next_gap(st: &mut broker_client::StatusSubscriber) -> Gap {
    loop {
        match st.get_timeout(T).await.unwrap() {
            Some(StatusEvent::Gap(g)) => return g,
            Some(_) => continue,
            None => panic!("no gap within {T:?}"),
        }
    }
}

#[tokio::test]
async fn resume_after_a_cut_connection_every_message_once_in_order() {
    let (ep, addr) = endpoint_with(history("/h=100000")).await;
    let proxy = CutProxy::start(addr).await;
    let a = Client::connect(&url(proxy.addr)).await.unwrap();
    let mut sub_a = a.make_subscriber(["/h"]);
    a.flush().await.unwrap();
    let publisher = Client::connect(&url(addr)).await.unwrap();
    const N: u64 = 20_000;
    let pubs = {
        let publisher = publisher.clone();
        tokio::spawn(async move { publish_range(&publisher, "/h/x", 1..=N).await })
    };
    // Mid-stream: the connection is cut (the gateway stays up).
    let mut got = take(&mut sub_a, 3_000).await;
    proxy.cut();
    while let Ok(Some((_, d))) = sub_a.get_timeout(T).await {
        got.push(count(&d));
    }
    assert!(a.is_closed());
    let position = a.position();
    assert_eq!(position.offsets.get("/h").copied(), got.last().copied());
    pubs.await.unwrap();
    // The application comes back with its position: the rest arrives, each once, in order.
    let b = Client::connect(&url(addr)).await.unwrap();
    let mut sub_b = b.make_subscriber(["/h"]);
    b.resume(position);
    let rest = take(&mut sub_b, (N as usize) - got.len()).await;
    got.extend(rest);
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
    // Then live messages.
    publisher.publish("/h/x", Data::Count(N + 1)).await.unwrap();
    assert_eq!(take(&mut sub_b, 1).await, vec![N + 1]);
    assert_eq!(metric(&ep, "resumes_total"), 1);
    assert_eq!(metric(&ep, "resume_gaps_total"), 0);
    assert!(ep
        .metrics_text()
        .contains("broker_history_messages{prefix=\"/h\"} 20001"));
    ep.shutdown().await;
}

#[tokio::test]
async fn resume_while_messages_keep_coming_misses_and_repeats_nothing() {
    // Live messages arrive while the replay is on its way: held back, then in order.
    let (ep, addr) = endpoint_with(history("/h=100000")).await;
    let a = Client::connect(&url(addr)).await.unwrap();
    let mut sub_a = a.make_subscriber(["/h"]);
    a.flush().await.unwrap();
    let publisher = Client::connect(&url(addr)).await.unwrap();
    publish_range(&publisher, "/h/x", 1..=100).await;
    assert_eq!(take(&mut sub_a, 100).await, (1..=100).collect::<Vec<_>>());
    let position = a.position();
    a.shutdown().await;
    publish_range(&publisher, "/h/x", 101..=10_000).await;
    let pubs = {
        let publisher = publisher.clone();
        tokio::spawn(async move { publish_range(&publisher, "/h/x", 10_001..=20_000).await })
    };
    let b = Client::connect(&url(addr)).await.unwrap();
    let mut sub_b = b.make_subscriber(["/h"]);
    b.resume(position);
    let got = take(&mut sub_b, 19_900).await;
    pubs.await.unwrap();
    assert_eq!(got, (101..=20_000).collect::<Vec<_>>());
    b.flush().await.unwrap();
    assert_eq!(sub_b.available(), 0, "nothing twice");
    ep.shutdown().await;
}

#[tokio::test]
async fn a_gateway_restart_is_a_gap_then_what_came_since() {
    let (ep, addr) = endpoint_with(history("/h=1000")).await;
    let a = Client::connect(&url(addr)).await.unwrap();
    let mut sub_a = a.make_subscriber(["/h"]);
    a.flush().await.unwrap();
    let p = Client::connect(&url(addr)).await.unwrap();
    publish_range(&p, "/h/x", 1..=5).await;
    take(&mut sub_a, 5).await;
    let position = a.position();
    assert!(position.epoch.is_some());
    ep.shutdown().await;

    let (ep2, addr2) = endpoint_with(history("/h=1000")).await;
    let p2 = Client::connect(&url(addr2)).await.unwrap();
    publish_range(&p2, "/h/x", 100..=102).await;
    let b = Client::connect(&url(addr2)).await.unwrap();
    let mut st = b.make_status_subscriber();
    let mut sub_b = b.make_subscriber(["/h"]);
    b.resume(position.clone());
    let gap = next_gap(&mut st).await;
    assert_eq!(
        gap,
        Gap {
            prefix: "/h".into(),
            missed: None,
            reason: GapReason::Restart
        }
    );
    assert_eq!(take(&mut sub_b, 3).await, vec![100, 101, 102]);
    let now = b.position();
    assert_ne!(now.epoch, position.epoch);
    assert_eq!(now.offsets["/h"], 3);
    assert_eq!(metric(&ep2, "resume_gaps_total"), 1);
    ep2.shutdown().await;
}

#[tokio::test]
async fn a_history_too_short_says_how_many_are_lost() {
    let (ep, addr) = endpoint_with(history("/h=10")).await;
    let a = Client::connect(&url(addr)).await.unwrap();
    let mut sub_a = a.make_subscriber(["/h"]);
    a.flush().await.unwrap();
    let p = Client::connect(&url(addr)).await.unwrap();
    publish_range(&p, "/h/x", 1..=1).await;
    take(&mut sub_a, 1).await;
    let position = a.position();
    a.shutdown().await;
    publish_range(&p, "/h/x", 2..=51).await;
    let b = Client::connect(&url(addr)).await.unwrap();
    let mut st = b.make_status_subscriber();
    let mut sub_b = b.make_subscriber(["/h"]);
    b.resume(position);
    let gap = next_gap(&mut st).await;
    assert_eq!((gap.missed, gap.reason), (Some(40), GapReason::Evicted));
    assert_eq!(take(&mut sub_b, 10).await, (42..=51).collect::<Vec<_>>());
    assert!(ep
        .metrics_text()
        .contains("broker_history_evicted_total{prefix=\"/h\"} 41"));
    ep.shutdown().await;
}

#[tokio::test]
async fn a_prefix_without_history_is_a_gap_and_other_topics_are_not_numbered() {
    let (ep, addr) = endpoint_with(history("/h=10")).await;
    let b = Client::connect(&url(addr)).await.unwrap();
    let mut st = b.make_status_subscriber();
    let mut sub = b.make_subscriber(["/h", "/other"]);
    b.resume(Position {
        epoch: Some("0000000000000000".into()),
        offsets: [("/nothing".to_string(), 5)].into(),
    });
    let gap = next_gap(&mut st).await;
    assert_eq!(
        (gap.prefix.as_str(), gap.reason),
        ("/nothing", GapReason::NoHistory)
    );
    let p = Client::connect(&url(addr)).await.unwrap();
    p.publish("/other/a", Data::Count(1)).await.unwrap();
    p.publish("/h/a", Data::Count(2)).await.unwrap();
    assert_eq!(take(&mut sub, 2).await, vec![1, 2]);
    // Only the history's message has a position; the unknown prefix is forgotten.
    let pos = b.position();
    assert_eq!(pos.offsets, [("/h".to_string(), 1)].into());
    ep.shutdown().await;
}

#[tokio::test]
async fn a_relaying_gateway_keeps_the_history_while_no_client_subscribes() {
    // Publisher on A; the client on B, which relays /h from A and keeps its history.
    let (a, a_addr) = endpoint().await;
    let (b, b_addr) = endpoint_with(history("/h=1000")).await;
    b.peer("127.0.0.1", a_addr.port(), None).await.unwrap();
    // B wants /h from A although none of its clients subscribes yet.
    eventually("A routes /h to B", || a.probe().routes("/h/x")).await;
    assert_eq!(b.probe().local_filter(), vec!["/h".to_string()]);
    let c = Client::connect(&url(b_addr)).await.unwrap();
    let mut sub = c.make_subscriber(["/h"]);
    c.flush().await.unwrap();
    a.publish("/h/x", Data::Count(1)).unwrap();
    assert_eq!(take(&mut sub, 1).await, vec![1]);
    let position = c.position();
    c.shutdown().await;
    for i in 2..=50 {
        a.publish("/h/x", Data::Count(i)).unwrap();
    }
    eventually("B has the history", || {
        b.metrics_text()
            .contains("broker_history_messages{prefix=\"/h\"} 50")
    })
    .await;
    let d = Client::connect(&url(b_addr)).await.unwrap();
    let mut sub = d.make_subscriber(["/h"]);
    d.resume(position);
    assert_eq!(take(&mut sub, 49).await, (2..=50).collect::<Vec<_>>());
    b.shutdown().await;
    a.shutdown().await;
}

#[test]
fn history_flags_parse() {
    use clap::Parser;
    let c = gateway::Config::try_parse_from([
        "broker-gateway",
        "--history",
        "/zeek=1000,30",
        "--history",
        "/x=5",
    ])
    .unwrap();
    assert_eq!(c.history.len(), 2);
    assert_eq!(c.history[0].max_age, Some(Duration::from_secs(30)));
    let err = gateway::Config::try_parse_from(["broker-gateway", "--history", "/zeek"])
        .err()
        .unwrap();
    assert!(err.to_string().contains("PREFIX=COUNT"), "{err}");
}

#[tokio::test]
async fn a_json_client_resumes_past_a_value_json_cannot_carry() {
    // A NaN reaches no JSON client live; in a replay it is left out the same way, and the
    // replay still ends (the client holds live messages back until it does).
    let (ep, addr) = endpoint_with(history("/h=100")).await;
    let json = || broker_client::ClientOptions {
        encoding: broker_wasm::protocol::Encoding::Json,
        ..Default::default()
    };
    let a = Client::connect_with(&url(addr), json()).await.unwrap();
    let mut sub = a.make_subscriber(["/h"]);
    a.flush().await.unwrap();
    let p = Client::connect(&url(addr)).await.unwrap();
    p.publish("/h/x", Data::Real(1.0)).await.unwrap();
    sub.get_timeout(T).await.unwrap().expect("1.0");
    let position = a.position();
    a.shutdown().await;
    p.publish("/h/x", Data::Real(f64::NAN)).await.unwrap();
    p.publish("/h/x", Data::Real(3.0)).await.unwrap();
    p.flush().await.unwrap();
    let b = Client::connect_with(&url(addr), json()).await.unwrap();
    let mut sub = b.make_subscriber(["/h"]);
    b.resume(position);
    let (_, v) = sub.get_timeout(T).await.unwrap().expect("3.0 replayed");
    assert_eq!(v, Data::Real(3.0));
    p.publish("/h/x", Data::Real(4.0)).await.unwrap();
    let (_, v) = sub
        .get_timeout(T)
        .await
        .unwrap()
        .expect("4.0 live after the replay");
    assert_eq!(v, Data::Real(4.0));
    ep.shutdown().await;
}
