//! Tests of the client core (`ClientCore`): handshake, subscriptions, frames, requests,
//! clones and their catch-up.

use super::*;
use crate::protocol::{self, NodeId};

fn server(msgs: &[ServerMsg]) -> Vec<u8> {
    protocol::to_binary(msgs).unwrap()
}

fn sent(frame: Vec<u8>) -> Vec<ClientMsg> {
    protocol::from_binary(&frame, DEFAULT_MAX_FRAME).unwrap()
}

fn welcome() -> ServerMsg {
    ServerMsg::Welcome(Welcome {
        endpoint: NodeId([1; 16]),
        version: "x".into(),
        max_frame: 1 << 20,
    })
}

#[test]
fn hello_subscriptions_and_coalesced_publishes() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.publish("/early".into(), Data::Count(1)).unwrap();
    assert_eq!(
        c.take_frame(),
        None,
        "nothing goes out before the transport opens"
    );
    let s = c.add_subscriber(&["/a".into(), "/b".into()]).unwrap();
    c.on_open();
    let first = sent(c.take_frame().unwrap());
    assert!(matches!(first[0], ClientMsg::Hello(_)));
    assert_eq!(
        first[1],
        ClientMsg::Subscribe {
            topics: vec!["/a".into(), "/b".into()]
        }
    );
    assert!(matches!(&first[2], ClientMsg::Publish(p) if p.topic == "/early"));
    let ev = c.on_frame(&server(&[welcome()])).unwrap();
    assert!(matches!(ev[0], Event::Connected(_)));
    for i in 0..3 {
        c.publish("/x".into(), Data::Count(i)).unwrap();
    }
    assert_eq!(
        sent(c.take_frame().unwrap()).len(),
        3,
        "one frame for the batch"
    );
    let ev = c
        .on_frame(&server(&[ServerMsg::Message(Publish {
            topic: "/a/1".into(),
            data: Data::None,
        })]))
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::Message {
            subscribers: vec![s],
            publish: Publish {
                topic: "/a/1".into(),
                data: Data::None
            }
        }]
    );
    assert!(c.publish("bad<$>".into(), Data::None).is_err());
}

#[test]
fn shared_prefixes_are_reference_counted() {
    let mut c = ClientCore::new(Encoding::Json, "t");
    c.on_open();
    c.on_frame(&protocol::to_json(&[welcome()]).unwrap())
        .unwrap();
    let _ = c.take_frame();
    let a = c.add_subscriber(&["/p".into()]).unwrap();
    let b = c.add_subscriber(&["/p".into()]).unwrap();
    let f: Vec<ClientMsg> = protocol::from_json(&c.take_frame().unwrap(), 1 << 20).unwrap();
    assert_eq!(
        f,
        vec![ClientMsg::Subscribe {
            topics: vec!["/p".into()]
        }]
    );
    c.remove_subscriber(a);
    assert_eq!(c.take_frame(), None, "b still holds /p");
    c.remove_subscriber(b);
    let f: Vec<ClientMsg> = protocol::from_json(&c.take_frame().unwrap(), 1 << 20).unwrap();
    assert_eq!(
        f,
        vec![ClientMsg::Unsubscribe {
            topics: vec!["/p".into()]
        }]
    );
}

#[test]
fn reconnect_restores_subscriptions_and_fails_pending_requests() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.add_subscriber(&["/keep".into()]).unwrap();
    c.on_open();
    c.on_frame(&server(&[welcome()])).unwrap();
    let _ = c.take_frame();
    let id = c.request(Request::Peers);
    c.publish("/later".into(), Data::Count(2)).unwrap();
    let ev = c.on_close();
    assert!(matches!(&ev[0], Event::Response { id: i, result: Err(_) } if *i == id));
    assert_eq!(ev.last(), Some(&Event::Disconnected));
    c.on_open();
    let again = sent(c.take_frame().unwrap());
    assert!(matches!(again[0], ClientMsg::Hello(_)));
    assert_eq!(
        again[1],
        ClientMsg::Subscribe {
            topics: vec!["/keep".into()]
        }
    );
    assert!(matches!(&again[2], ClientMsg::Publish(p) if p.topic == "/later"));
    assert_eq!(again.len(), 3, "the stale request is not resent");
    // A late response to the failed request is ignored.
    let late = ServerMsg::Response {
        id,
        result: Ok(Response::Done),
    };
    assert!(c.on_frame(&server(&[late])).unwrap().is_empty());
}

#[test]
fn pre_encoded_publishes_match_encoded_ones() {
    let value = Data::Vector(vec![Data::string("ping"), Data::Count(300)]);
    let mut a = ClientCore::new(Encoding::Binary, "t");
    let mut b = ClientCore::new(Encoding::Binary, "t");
    for c in [&mut a, &mut b] {
        c.on_open();
        let _ = c.take_frame();
    }
    a.publish("/t".into(), value.clone()).unwrap();
    a.ping();
    b.publish_encoded("/t", &crate::binary::to_vec(&value).unwrap())
        .unwrap();
    b.ping();
    assert_eq!(a.take_frame(), b.take_frame());
    assert!(b.publish_encoded("x<$>", &[0]).is_err());
}

#[test]
fn frames_can_be_limited_to_a_number_of_messages() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.on_open();
    let _ = c.take_frame();
    for i in 0..5 {
        c.publish("/x".into(), Data::Count(i)).unwrap();
    }
    let first = sent(c.take_frame_max(2).unwrap());
    assert_eq!(first.len(), 2);
    assert!(matches!(&first[0], ClientMsg::Publish(p) if p.data == Data::Count(0)));
    assert_eq!(c.queued(), 3);
    let rest = sent(c.take_frame().unwrap());
    assert!(matches!(&rest[0], ClientMsg::Publish(p) if p.data == Data::Count(2)));
    assert_eq!(c.take_frame_max(1), None);
}

#[test]
fn pings_from_the_gateway_are_answered() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.on_open();
    let _ = c.take_frame();
    c.on_frame(&server(&[welcome(), ServerMsg::Ping { nonce: 9 }]))
        .unwrap();
    assert_eq!(
        sent(c.take_frame().unwrap()),
        vec![ClientMsg::Pong { nonce: 9 }]
    );
}

/// The id of the attach request for `store` in a frame the client sent.
fn attach_id(msgs: &[ClientMsg], store: &str) -> Option<u64> {
    msgs.iter().find_map(|m| match m {
        ClientMsg::Request {
            id,
            request: Request::AttachClone { store: s },
        } if s == store => Some(*id),
        _ => None,
    })
}

fn refuse(id: u64, code: ErrorCode) -> ServerMsg {
    ServerMsg::Response {
        id,
        result: Err(Failure::Broker(ErrorInfo {
            code,
            context: "refused".into(),
        })),
    }
}

#[test]
fn zb47_a_final_refusal_stops_the_clone_other_failures_retry() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.on_open();
    c.on_frame(&server(&[welcome()])).unwrap();
    let _ = c.take_frame();
    let opts = CloneOptions {
        resync_interval_ms: 100.0,
        ..CloneOptions::default()
    };
    c.attach_clone("secret", opts);
    c.attach_clone("bad\u{1}name", opts);
    c.attach_clone("later", opts);
    let out = sent(c.take_frame().unwrap());
    let ev = c
        .on_frame(&server(&[
            refuse(attach_id(&out, "secret").unwrap(), ErrorCode::Unauthorized),
            refuse(
                attach_id(&out, "bad\u{1}name").unwrap(),
                ErrorCode::InvalidData,
            ),
            refuse(attach_id(&out, "later").unwrap(), ErrorCode::NoSuchMaster),
        ]))
        .unwrap();
    let permanent: Vec<(&str, ErrorCode, bool)> = ev
        .iter()
        .map(|e| match e {
            Event::StoreError {
                store,
                error,
                permanent,
            } => (store.as_str(), error.code, *permanent),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        permanent,
        vec![
            ("secret", ErrorCode::Unauthorized, true),
            ("bad\u{1}name", ErrorCode::InvalidData, true),
            ("later", ErrorCode::NoSuchMaster, false),
        ]
    );
    // The refusal is kept and is what reads fail with; no_such_master is not a refusal.
    assert_eq!(
        c.clone_refusal("secret").map(|e| e.code),
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(
        c.clone_get("secret", &Data::Count(1)).unwrap_err().code,
        ErrorCode::Unauthorized
    );
    assert_eq!(c.clone_refusal("later"), None);
    assert_eq!(
        c.clone_get("later", &Data::Count(1)).unwrap_err().code,
        ErrorCode::StaleData
    );
    // Only the clone without a master tries again, on its timer and after a reconnect.
    let retry = c.tick(200.0);
    assert!(retry.is_empty());
    let out = sent(c.take_frame().unwrap());
    assert!(attach_id(&out, "later").is_some());
    assert_eq!(attach_id(&out, "secret"), None);
    assert_eq!(attach_id(&out, "bad\u{1}name"), None);
    c.on_close();
    c.on_open();
    let out = sent(c.take_frame().unwrap());
    assert!(attach_id(&out, "later").is_some());
    assert_eq!(attach_id(&out, "secret"), None);
    // Attaching anew clears the refusal and asks again.
    c.attach_clone("secret", opts);
    assert_eq!(c.clone_refusal("secret"), None);
    assert!(attach_id(&sent(c.take_frame().unwrap()), "secret").is_some());
}

#[test]
fn reconnect_delays_back_off_with_jitter() {
    assert_eq!(reconnect_delay_ms(0, 10_000, 1.0), 100);
    assert_eq!(reconnect_delay_ms(0, 10_000, 0.0), 50);
    assert_eq!(reconnect_delay_ms(3, 10_000, 1.0), 800);
    assert_eq!(reconnect_delay_ms(30, 10_000, 1.0), 10_000);
    assert!(reconnect_delay_ms(30, 10_000, 0.3) < 10_000);
}

#[test]
fn zu17_a_source_that_comes_back_is_announced_to_the_clone() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.on_open();
    c.on_frame(&server(&[welcome()])).unwrap();
    let _ = c.take_frame();
    c.attach_clone("zeek:T", CloneOptions::default());
    let out = sent(c.take_frame().unwrap());
    let id = attach_id(&out, "zeek:T").unwrap();
    let ev = c
        .on_frame(&server(&[
            ServerMsg::Response {
                id,
                result: Ok(crate::protocol::Response::Done),
            },
            ServerMsg::Snapshot {
                store: "zeek:T".into(),
                master: NodeId([2; 16]),
                seq: 0,
                entries: vec![],
                more: false,
            },
        ]))
        .unwrap();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::StoreChanges { synced: true, .. })));
    let lost = c
        .on_frame(&server(&[ServerMsg::StoreMaster {
            store: "zeek:T".into(),
            reachable: false,
        }]))
        .unwrap();
    assert!(matches!(
        &lost[..],
        [Event::StoreError {
            permanent: false,
            ..
        }]
    ));
    let back = c
        .on_frame(&server(&[ServerMsg::StoreMaster {
            store: "zeek:T".into(),
            reachable: true,
        }]))
        .unwrap();
    assert_eq!(
        back,
        vec![Event::StoreChanges {
            store: "zeek:T".into(),
            changes: vec![],
            reset: false,
            synced: true
        }]
    );
    // Only a change of state is announced.
    let again = c
        .on_frame(&server(&[ServerMsg::StoreMaster {
            store: "zeek:T".into(),
            reachable: true,
        }]))
        .unwrap();
    assert!(again.is_empty());
}

#[test]
fn a_kept_clone_catches_up_with_the_updates_since_or_takes_a_snapshot() {
    use crate::protocol::{StoreEntry, StoreUpdate};
    let master = NodeId([7; 16]);
    let saved = SavedReplica {
        master,
        seq: 5,
        entries: vec![StoreEntry {
            key: "a".into(),
            value: Data::Count(1),
            expiry: None,
        }],
    };
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.attach_clone_from("s", CloneOptions::default(), Some(saved.clone()));
    // Readable before any connection.
    assert_eq!(
        c.clone_get("s", &"a".into()).unwrap().unwrap().value,
        Data::Count(1)
    );
    c.on_open();
    let msgs = sent(c.take_frame().unwrap());
    assert!(
        msgs.iter().any(|m| matches!(m, ClientMsg::Request {
        request: Request::AttachCloneSince { store, master: m, seq: 5 }, ..
    } if store == "s" && *m == master)),
        "{msgs:?}"
    );
    let update = |seq| ServerMsg::StoreUpdate {
        store: "s".into(),
        seq,
        update: StoreUpdate::Insert {
            key: format!("k{seq}").as_str().into(),
            value: Data::Count(seq),
            expiry: None,
        },
    };
    let current = ServerMsg::CloneCurrent {
        store: "s".into(),
        master,
        seq: 7,
    };
    let events = c
        .on_frame(&server(&[welcome(), update(6), update(7), current]))
        .unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::StoreChanges { synced: true, .. })));
    assert_eq!(c.clone_export("s").unwrap().seq, 7);
    assert_eq!(c.clone_export("s").unwrap().entries.len(), 3);

    // A CloneCurrent that does not match: a snapshot is asked for.
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.attach_clone_from("s", CloneOptions::default(), Some(saved));
    c.on_open();
    c.take_frame();
    c.on_frame(&server(&[welcome()])).unwrap();
    let wrong = ServerMsg::CloneCurrent {
        store: "s".into(),
        master,
        seq: 9,
    };
    c.on_frame(&server(&[wrong])).unwrap();
    assert!(attach_id(&sent(c.take_frame().unwrap()), "s").is_some());
    assert!(c.clone_export("s").is_none(), "not in sync");
}

#[test]
fn a_new_client_sends_no_resume_to_a_gateway_without_histories() {
    let mut c = ClientCore::new(Encoding::Binary, "t");
    c.set_instance("me".into());
    c.add_subscriber(&["/h".to_string()]).unwrap();
    c.on_open();
    let first = sent(c.take_frame().unwrap());
    assert!(
        !first.iter().any(|m| matches!(m, ClientMsg::Resume { .. })),
        "{first:?}"
    );
    // A gateway from before histories: welcome only; nothing more goes out.
    c.on_frame(&server(&[welcome()])).unwrap();
    assert!(c.take_frame().is_none());
    // One with histories says so: the client names itself.
    let histories = ServerMsg::Histories {
        epoch: "e".into(),
        prefixes: vec!["/h".into()],
    };
    c.on_frame(&server(&[histories])).unwrap();
    let next = sent(c.take_frame().unwrap());
    assert!(
        matches!(&next[..], [ClientMsg::Resume { instance, positions, .. }] if instance == "me" && positions.is_empty()),
        "{next:?}"
    );
}
