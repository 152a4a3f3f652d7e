//! What a hostile client or peer must not be able to do to a gateway, and the limits an
//! operator relies on: store files stay in the data directory (ZB-46), unknown store names cost
//! nothing lasting (ZB-47), store requests are flow-controlled, one file per store (ZB-44),
//! and the Zeek JSON API honours `--max-subscriptions` (ZB-37).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use broker_client::ClientError;
use broker_wasm::client::CloneOptions;
use broker_wasm::protocol::{Backend, ClientMsg, Encoding, Request, ServerMsg, StoreOp};
use broker_wasm::{Data, ErrorCode};
use common::*;

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("broker-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(pairs: &[(&str, Data)]) -> Data {
    Data::Table(
        pairs
            .iter()
            .map(|(k, v)| (Data::from(*k), v.clone()))
            .collect(),
    )
}

fn code(e: &ClientError) -> ErrorCode {
    e.code()
}

#[tokio::test]
async fn zb46_a_client_cannot_choose_delete_or_share_a_store_file() {
    let dir = temp_dir("files");
    let data = dir.join("data");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let d = data.clone();
    let (ep, addr) = endpoint_with(move |c| c.data_dir = d).await;
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();

    // The reproduction (a path of the client's choosing, with DELETE as failure mode), then
    // each option alone: all refused.
    let path = ("path", Data::from(victim.to_str().unwrap()));
    let delete = (
        "failure_mode",
        Data::enum_value("Broker::SQLITE_FAILURE_MODE_DELETE"),
    );
    for opts in [
        options(&[path.clone(), delete.clone()]),
        options(&[path]),
        options(&[delete]),
    ] {
        let e = client
            .attach_master("evil", Backend::Sqlite, opts.clone())
            .await
            .unwrap_err();
        assert_eq!(code(&e), ErrorCode::Unauthorized, "{opts}: {e}");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

    // Names that used to share a file ("a b" and "a_b" were both a_b.sqlite) or that look
    // like paths get files of their own, all inside the data directory.
    let names = ["a b", "a_b", "../escape", "x/../../y", ".."];
    for (i, n) in names.iter().enumerate() {
        let s = client
            .attach_master(n, Backend::Sqlite, Data::None)
            .await
            .unwrap();
        s.put("who", *n, None).await.unwrap();
        s.put("i", i as u64, None).await.unwrap();
    }
    for n in names {
        let s = client.store(n);
        assert_eq!(s.get("who").await.unwrap(), Data::from(n));
    }
    let files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".sqlite"))
        .collect();
    assert_eq!(files.len(), names.len(), "{files:?}");
    let outside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        {
            let mut o = outside.clone();
            o.sort();
            o
        },
        vec!["data".to_string(), "victim.txt".to_string()],
        "nothing written beside the data directory"
    );

    // The operator (the embedding program) may still choose a file, but not one in use.
    let own = dir.join("operator.db");
    let p = options(&[("path", own.to_str().unwrap().into())]);
    ep.attach_master("mine", Backend::Sqlite, p.clone())
        .await
        .unwrap();
    assert!(own.exists());
    let e = ep
        .attach_master("other", Backend::Sqlite, p)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::BackendFailure, "{e:?}");
    client.shutdown().await;
    ep.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn zb44_racing_attaches_open_a_store_file_once() {
    let dir = temp_dir("race");
    let d = dir.clone();
    let (ep, _addr) = endpoint_with(move |c| c.data_dir = d).await;
    let ep = std::sync::Arc::new(ep);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ep = ep.clone();
        tasks.push(tokio::spawn(async move {
            ep.attach_master("same", Backend::Sqlite, Data::None).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(metric(&ep, "store_files_opened_total"), 1);
    ep.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn zb47_unknown_store_names_leave_nothing_behind() {
    // Without peers, the answer is immediate and no relay is started.
    let (ep, addr) = endpoint().await;
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    for i in 0..50 {
        let e = client
            .store(&format!("nothing-{i}"))
            .get("k")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSuchMaster, "{e:?}");
    }
    assert_eq!(ep.probe().store_entries(), 0);

    // With a peer that has no such store, a relay asks, fails, and is forgotten.
    let (other, other_addr) = endpoint().await;
    ep.peer("127.0.0.1", other_addr.port(), None).await.unwrap();
    for i in 0..5 {
        let e = client
            .store(&format!("missing-{i}"))
            .get("k")
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSuchMaster, "{e:?}");
    }
    eventually("closed relays forgotten", || {
        ep.probe().store_entries() == 0
    })
    .await;
    client.shutdown().await;
    ep.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn zb58_clones_per_connection_are_capped() {
    let (ep, addr) = endpoint_with(|c| c.max_clones = 3).await;
    for i in 0..4 {
        ep.attach_master(&format!("s{i}"), Backend::Memory, Data::None)
            .await
            .unwrap();
    }
    let mut ws = native_raw(addr, Encoding::Json).await;
    let attach = |id: u64, store: &str| ClientMsg::Request {
        id,
        request: Request::AttachClone {
            store: store.into(),
        },
    };
    let mut answers = std::collections::HashMap::new();
    for (id, store) in [(1, "s0"), (2, "s1"), (3, "s2"), (4, "s3")] {
        send_frame(&mut ws, Encoding::Json, &[attach(id, store)]).await;
        while !answers.contains_key(&id) {
            for m in recv_frame(&mut ws, Encoding::Json).await {
                if let ServerMsg::Response { id, result } = m {
                    answers.insert(id, result);
                }
            }
        }
    }
    for id in 1..=3 {
        assert!(answers[&id].is_ok(), "{:?}", answers[&id]);
    }
    match &answers[&4] {
        Err(broker_wasm::protocol::Failure::Broker(e)) => {
            assert_eq!(e.code, ErrorCode::BackendFailure);
            assert!(e.context.contains("--max-clones"), "{}", e.context);
        }
        other => panic!("expected the clone limit, got {other:?}"),
    }
    // Detaching one makes room.
    send_frame(
        &mut ws,
        Encoding::Json,
        &[
            ClientMsg::Request {
                id: 5,
                request: Request::DetachClone { store: "s0".into() },
            },
            attach(6, "s3"),
        ],
    )
    .await;
    let deadline = tokio::time::Instant::now() + T;
    while !answers.contains_key(&6) {
        assert!(tokio::time::Instant::now() < deadline, "no answer to 6");
        for m in recv_frame(&mut ws, Encoding::Json).await {
            if let ServerMsg::Response { id, result } = m {
                answers.insert(id, result);
            }
        }
    }
    assert!(answers[&6].is_ok(), "{:?}", answers[&6]);
    ep.shutdown().await;
}

#[tokio::test]
async fn store_requests_in_flight_are_capped_by_backpressure() {
    let (ep, addr) = endpoint_with(|c| c.max_store_requests = 8).await;
    // A peering still being set up (to a port nobody listens on) makes requests for unknown
    // stores wait for a master: they stay in flight for seconds.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    ep.peer_nosync("127.0.0.1", closed, Some(Duration::from_secs(5)));
    eventually("the peering is being set up", || !ep.peers().is_empty()).await;
    let mut ws = native_raw(addr, Encoding::Binary).await;
    for id in 0..50u64 {
        let get = ClientMsg::Request {
            id,
            request: Request::Store {
                store: format!("far-{id}"),
                op: StoreOp::Exists {
                    key: Data::Count(1),
                },
            },
        };
        send_frame(&mut ws, Encoding::Binary, &[get]).await;
    }
    eventually("the limit reached", || {
        metric(&ep, "store_requests_in_flight") == 8
    })
    .await;
    assert!(metric(&ep, "store_backpressure_total") >= 1);
    // The other 42 wait unread in the socket, not in the stores' queues.
    assert_eq!(metric(&ep, "store_requests_in_flight"), 8);
    drop(ws);
    ep.shutdown().await;
}

#[tokio::test]
async fn pipelined_store_writes_under_backpressure_are_all_acknowledged() {
    let dir = temp_dir("pipeline");
    let d = dir.clone();
    let (ep, addr) = endpoint_with(move |c| {
        c.data_dir = d;
        c.max_store_requests = 8;
    })
    .await;
    ep.attach_master("p", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    let mut ws = native_raw(addr, Encoding::Binary).await;
    const N: u64 = 3000;
    // 30 frames of 100 puts each, sent without waiting for answers.
    for f in 0..30u64 {
        let msgs: Vec<ClientMsg> = (0..100u64)
            .map(|i| {
                let id = f * 100 + i;
                ClientMsg::Request {
                    id,
                    request: Request::Store {
                        store: "p".into(),
                        op: StoreOp::Put {
                            key: Data::Count(id),
                            value: Data::Count(id),
                            expiry: None,
                        },
                    },
                }
            })
            .collect();
        send_frame(&mut ws, Encoding::Binary, &msgs).await;
    }
    let mut acked = std::collections::HashSet::new();
    while (acked.len() as u64) < N {
        for m in recv_frame(&mut ws, Encoding::Binary).await {
            if let ServerMsg::Response { id, result } = m {
                assert!(result.is_ok(), "{result:?}");
                assert!(acked.insert(id), "answered twice: {id}");
            }
        }
    }
    assert!(metric(&ep, "store_backpressure_total") >= 1);
    eventually("nothing left in flight", || {
        metric(&ep, "store_requests_in_flight") == 0
    })
    .await;
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let keys = client.store("p").keys().await.unwrap();
    match keys {
        Data::Set(s) => assert_eq!(s.len() as u64, N),
        other => panic!("{other:?}"),
    }
    client.shutdown().await;
    ep.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn zb37_zeek_handshake_honours_max_subscriptions() {
    let (ep, addr) = endpoint_with(|c| c.max_subscriptions = 3).await;
    let mut ws = raw_ws(addr, "/v1/messages/json", None).await;
    use futures_util::SinkExt;
    let topics: Vec<String> = (0..4).map(|i| format!("/t{i}")).collect();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        serde_json::to_string(&topics).unwrap().into(),
    ))
    .await
    .unwrap();
    let reply = recv_text(&mut ws).await;
    assert!(
        reply.contains("\"error\"") && reply.contains("--max-subscriptions"),
        "{reply}"
    );
    // At the limit is fine.
    let mut ws = raw_ws(addr, "/v1/messages/json", None).await;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        serde_json::to_string(&topics[..3]).unwrap().into(),
    ))
    .await
    .unwrap();
    let reply = recv_text(&mut ws).await;
    assert!(reply.contains("\"ack\""), "{reply}");
    ep.shutdown().await;
}

#[tokio::test]
async fn zb47_a_clone_of_an_unknown_store_fails_at_once_without_peers() {
    let (ep, addr) = endpoint().await;
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let mut clone = client.attach_clone("nowhere", CloneOptions::default());
    match tokio::time::timeout(Duration::from_secs(5), clone.next_event())
        .await
        .expect("an answer without a search")
    {
        Some(broker_client::CloneEvent::Error(e)) => assert_eq!(e.code, ErrorCode::NoSuchMaster),
        other => panic!("expected no_such_master, got {other:?}"),
    }
    assert_eq!(ep.probe().store_entries(), 0);
    client.shutdown().await;
    ep.shutdown().await;
}

/// A raw peer connection that said hello as endpoint `node`.
async fn raw_peer(addr: std::net::SocketAddr, node: broker_wasm::NodeId) -> Ws {
    use broker_wasm::protocol::PeerMsg;
    use futures_util::SinkExt;
    let mut ws = raw_ws(
        addr,
        "/v1/peer",
        Some(broker_wasm::protocol::SUBPROTOCOL_BINARY),
    )
    .await;
    let hello = PeerMsg::Hello {
        endpoint: node,
        version: gateway::VERSION.into(),
    };
    let frame = broker_wasm::protocol::to_binary(&[hello]).unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        frame.into(),
    ))
    .await
    .unwrap();
    ws
}

async fn send_peer(ws: &mut Ws, msgs: &[broker_wasm::protocol::PeerMsg]) {
    use futures_util::SinkExt;
    let frame = broker_wasm::protocol::to_binary(msgs).unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        frame.into(),
    ))
    .await
    .unwrap();
}

fn forward(origin: broker_wasm::NodeId, seq: u64, n: u64) -> broker_wasm::protocol::PeerMsg {
    broker_wasm::protocol::PeerMsg::Forward {
        origin,
        seq,
        ttl: 1,
        topic: "/forged/x".into(),
        data: Data::Count(n),
        zeek: None,
    }
}

#[tokio::test]
async fn zb63_peer_sequence_numbers_cannot_crash_or_silence_an_origin() {
    let (ep, addr) = endpoint().await;
    let mut sub = ep.make_subscriber(["/forged"]);
    let mut status = ep.make_status_subscriber(true);
    let peer = broker_wasm::NodeId(*uuid::Uuid::new_v4().as_bytes());
    let mut ws = raw_peer(addr, peer).await;
    expect_status(&mut status, broker_wasm::StatusCode::PeerAdded).await;
    let origin = broker_wasm::NodeId(*uuid::Uuid::new_v4().as_bytes());
    send_peer(
        &mut ws,
        &[
            forward(origin, 1, 1),
            // Forged far ahead: used to make every later message "too old".
            forward(origin, 1 << 61, 2),
            forward(origin, 2, 3),
            // Used to overflow `seq + WINDOW` (a panic that ended the link).
            forward(origin, u64::MAX, 99),
            forward(origin, u64::MAX - 1, 99),
            forward(origin, 3, 4),
            forward(origin, 3, 99),
        ],
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 4 {
        match sub.get_timeout(T).await.unwrap() {
            Some((_, Data::Count(n))) => got.push(n),
            other => panic!("after {got:?}: {other:?}"),
        }
    }
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert_eq!(metric(&ep, "peer_seq_resets_total"), 1);
    assert!(metric(&ep, "errors_total") >= 2);

    // Forwards may name any origin; windows of origins the graph does not show are pruned.
    for chunk in 0..10u64 {
        let msgs: Vec<_> = (0..100u64)
            .map(|i| {
                forward(
                    broker_wasm::NodeId(*uuid::Uuid::new_v4().as_bytes()),
                    1,
                    1000 + chunk * 100 + i,
                )
            })
            .collect();
        send_peer(&mut ws, &msgs).await;
    }
    let mut n = 0;
    while n < 1000 {
        match sub.get_timeout(T).await.unwrap() {
            Some(_) => n += 1,
            None => panic!("only {n} of 1000 delivered"),
        }
    }
    let windows = metric(&ep, "peer_seq_windows");
    assert!(windows <= 64 + 2, "{windows} windows kept");
    drop(ws);
    ep.shutdown().await;
}

#[tokio::test]
async fn zb44_clients_create_at_most_max_stores_masters() {
    let (ep, addr) = endpoint_with(|c| c.max_stores = 3).await;
    ep.attach_master("operator", Backend::Memory, Data::None)
        .await
        .unwrap();
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    for name in ["a", "b"] {
        client
            .attach_master(name, Backend::Memory, Data::None)
            .await
            .unwrap();
    }
    let e = client
        .attach_master("c", Backend::Memory, Data::None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BackendFailure, "{e}");
    assert!(e.to_string().contains("--max-stores"), "{e}");
    // An existing name is still attached (it creates nothing).
    client
        .attach_master("a", Backend::Memory, Data::None)
        .await
        .unwrap();
    // The operator is not limited.
    ep.attach_master("operator-2", Backend::Memory, Data::None)
        .await
        .unwrap();
    client.shutdown().await;
    ep.shutdown().await;
}
