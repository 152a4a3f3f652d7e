//! Data Broker namespaces through the gateway, from the Rust client (DB-01..16: namespaces,
//! put/get/read, waits and timeouts; the rest in `namespaces_ops.rs`; the spec's checklist,
//! section 12). DB-31 (Redis cluster) and DB-35 (data adapters) do not apply.

mod common;

use std::time::{Duration, Instant};

use broker_client::namespace::dbr::{Dbr, DBR_FLAGS_NOWAIT, DBR_FLAGS_PARTIAL};
use broker_client::namespace::GetOptions;
use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::Data;
use common::ns::*;

async fn db01_create_and_exists(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let (a, b) = (client(&url).await, client(&url).await);
    let ns = a.create_namespace("db01", 0, vec![]).await.unwrap();
    assert_eq!(ns.query().await.unwrap().refcount, 1, "create attaches");
    assert_eq!(
        code(b.create_namespace("db01", 0, vec![]).await),
        DbrCode::Exists
    );
    // The PyDBR layer returns None (the original's NULL handle).
    let d = Dbr::new(b.clone());
    assert!(d.create("db01", 0, &[]).await.is_none());
    ep.shutdown().await;
}

async fn db02_name_rules_and_no_cross_namespace_collisions(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let long = "n".repeat(1023);
    c.create_namespace(long.clone(), 0, vec![]).await.unwrap();
    assert_eq!(
        code(c.create_namespace("n".repeat(1024), 0, vec![]).await),
        DbrCode::NsInval
    );
    assert_eq!(
        code(c.create_namespace("", 0, vec![]).await),
        DbrCode::NsInval
    );
    // Tuple names: 1..1023 bytes.
    let a = c.create_namespace("a", 0, vec![]).await.unwrap();
    a.put("k".repeat(1023), 1u64).await.unwrap();
    assert_eq!(code(a.put("k".repeat(1024), 1u64).await), DbrCode::Invalid);
    // `a::b` and glob characters are just names: no collision with tuple `b` of `a`, and
    // deleting `n*` leaves `nx` alone.
    let ab = c.create_namespace("a::b", 0, vec![]).await.unwrap();
    a.put("b", "tuple b of a").await.unwrap();
    assert_eq!(ab.query().await.unwrap().total_values, 0);
    assert!(!ab.test_key("b").await.unwrap());
    let star = c.create_namespace("n*", 0, vec![]).await.unwrap();
    let nx = c.create_namespace("nx", 0, vec![]).await.unwrap();
    star.put("x", 1u64).await.unwrap();
    nx.put("x", 2u64).await.unwrap();
    star.delete().await.unwrap();
    assert_eq!(nx.get("x").await.unwrap(), Data::Count(2));
    assert_eq!(code(c.attach_namespace("n*").await), DbrCode::Unavail);
    ep.shutdown().await;
}

async fn db03_db04_attach_refcount_and_producer_consumer_handoff(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let (producer, consumer) = (client(&url).await, client(&url).await);
    assert_eq!(
        code(consumer.attach_namespace("handoff").await),
        DbrCode::Unavail
    );
    let p = producer
        .create_namespace("handoff", 0, vec![])
        .await
        .unwrap();
    let extra = producer.attach_namespace("handoff").await.unwrap();
    assert_eq!(p.query().await.unwrap().refcount, 2, "each attach counts");
    extra.detach().await.unwrap();
    p.put("job", "payload").await.unwrap();
    // The producer detaches (refcount 0, not marked) before the consumer attaches: the data
    // stays (IBM/data-broker#42).
    p.detach().await.unwrap();
    assert_eq!(
        code(p.put("job", 1u64).await),
        DbrCode::NsInval,
        "stale handle"
    );
    let c = consumer.attach_namespace("handoff").await.unwrap();
    let info = c.query().await.unwrap();
    assert_eq!((info.refcount, info.total_values), (1, 1));
    assert_eq!(c.get("job").await.unwrap(), s("payload"));
    // Detach without holding it: NSINVAL.
    let raw = producer
        .namespace_op(broker_wasm::protocol::NamespaceOp::Detach {
            name: "handoff".into(),
        })
        .await;
    assert_eq!(code(raw), DbrCode::NsInval);
    c.delete().await.unwrap();
    ep.shutdown().await;
}

async fn db05_delete_marks_and_last_detach_deletes(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let (a, b) = (client(&url).await, client(&url).await);
    let na = a.create_namespace("db05", 0, vec![]).await.unwrap();
    let nb = b.attach_namespace("db05").await.unwrap();
    na.put("k", 1u64).await.unwrap();
    assert_eq!(code(na.delete().await), DbrCode::NsBusy);
    assert_eq!(
        code(na.put("k", 2u64).await),
        DbrCode::NsInval,
        "handle unusable"
    );
    let info = nb.query().await.unwrap();
    assert!(info.marked_for_delete);
    assert_eq!(info.refcount, 1);
    // Other holders keep full access until they detach; attaching to a marked namespace
    // succeeds and postpones the deletion (DB-03).
    assert_eq!(nb.read("k").await.unwrap(), Data::Count(1));
    let late = a.attach_namespace("db05").await.unwrap();
    nb.detach().await.unwrap();
    assert_eq!(late.read("k").await.unwrap(), Data::Count(1));
    late.detach().await.unwrap();
    // Last detach of a marked namespace: gone with its tuples.
    assert_eq!(code(a.attach_namespace("db05").await), DbrCode::Unavail);
    // Delete twice / unknown: NSINVAL.
    let d = Dbr::new(a.clone());
    assert_eq!(d.delete("db05").await, DbrCode::NsInval.code());
    let h = d.create("db05b", 0, &[]).await.unwrap();
    assert_eq!(d.put(&h, 1u64, "k", "").await, 0);
    assert_eq!(d.delete("db05b").await, 0);
    assert_eq!(d.delete("db05b").await, DbrCode::NsInval.code());
    ep.shutdown().await;
}

async fn db06_db07_query_state_level_and_groups(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c
        .create_namespace(
            "db06",
            dbr::PERST_TEMPORARY_FT,
            vec!["g1".into(), "g2".into()],
        )
        .await
        .unwrap();
    ns.put("a", 1u64).await.unwrap();
    ns.put("a", 2u64).await.unwrap();
    ns.put("b", 3u64).await.unwrap();
    let info = ns.query().await.unwrap();
    assert_eq!(info.name, "db06");
    assert_eq!(info.level, 3);
    assert_eq!(info.groups, vec!["g1".to_owned(), "g2".to_owned()]);
    assert_eq!(
        (info.refcount, info.tuple_names, info.total_values),
        (1, 2, 3)
    );
    assert!(!info.marked_for_delete);
    assert_eq!(
        code(c.create_namespace("bad-level", 6, vec![]).await),
        DbrCode::Invalid
    );
    let d = Dbr::new(c.clone());
    assert_eq!(d.query(&ns).await.0, 0);
    ns.delete().await.unwrap();
    assert_eq!(
        d.query(&ns).await.0,
        DbrCode::NsInval.code(),
        "deleted handle"
    );
    ep.shutdown().await;
}

async fn db08_unsupported_management_calls(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let h = d.create("db08", 0, &[]).await.unwrap();
    assert_eq!(d.add_units(&h, &["u"]), DbrCode::NotImpl.code());
    assert_eq!(d.remove_units(&h, &["u"]), DbrCode::NotImpl.code());
    ep.shutdown().await;
}

async fn db09_db10_fifo_binary_values_and_name_lifetime(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("db09", 0, vec![]).await.unwrap();
    let values = vec![
        Data::String(b"with\0nul\r\n".to_vec()),
        Data::String(vec![]),
        Data::String(vec![0xff, 0x00, 0x80]),
        Data::Count(u64::MAX),
        Data::Vector(vec![Data::Real(1.5), Data::None]),
    ];
    for v in &values {
        ns.put("q", v.clone()).await.unwrap();
    }
    for v in &values {
        assert_eq!(&ns.get("q").await.unwrap(), v);
    }
    assert!(
        !ns.test_key("q").await.unwrap(),
        "the name vanishes with its last value"
    );
    assert!(ns.directory("*", 0).await.unwrap().is_empty());
    ep.shutdown().await;
}

async fn db11_read_peeks_at_index(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("db11", 0, vec![]).await.unwrap();
    for i in 0..3u64 {
        ns.put("k", i).await.unwrap();
    }
    assert_eq!(ns.read("k").await.unwrap(), Data::Count(0));
    assert_eq!(
        ns.read("k").await.unwrap(),
        Data::Count(0),
        "read does not remove"
    );
    let at = |index| GetOptions {
        index,
        ..GetOptions::nowait()
    };
    assert_eq!(
        ns.read_with("k", at(2)).await.unwrap().value,
        Data::Count(2)
    );
    assert_eq!(code(ns.read_with("k", at(3)).await), DbrCode::Unavail);
    // The PyDBR layer: index in flags << 4.
    let d = Dbr::new(c.clone());
    let flags = DBR_FLAGS_NOWAIT | (1 << dbr::READ_FLAGS_INDEX_SHIFT);
    assert_eq!(
        d.read(&ns, "k", "", "", flags, None).await,
        (Some(Data::Count(1)), 0)
    );
    assert_eq!(ns.query().await.unwrap().total_values, 3);
    ep.shutdown().await;
}

/// DB-12 and DB-33: ten clients wait for one key; a put goes to exactly one of them, the one
/// that asked first, and the others keep waiting, to be served in the order they asked. The
/// getters have no timeout of their own (a busy machine cannot make one give up early), and
/// every wait of the test has a generous deadline.
async fn db12_ten_concurrent_getters_exactly_one_wins(backend: Backend) {
    const SLOW: Duration = Duration::from_secs(60);
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let producer = client(&url).await;
    let p = producer.create_namespace("db12", 0, vec![]).await.unwrap();
    let mut getters = Vec::new();
    for i in 0..10 {
        let c = client(&url).await;
        let ns = c.attach_namespace("db12").await.unwrap();
        let mut get = Box::pin(async move { ns.get_with("one", GetOptions::forever()).await });
        // Polled once, the request is queued; the flush's answer means the gateway has it,
        // and (the Redis backend asks Redis first) the waiter count shows it registered. So
        // the gateway's waiters are in the order of `i`.
        tokio::select! {
            biased;
            r = &mut get => panic!("getter {i} answered before any put: {r:?}"),
            _ = std::future::ready(()) => {}
        }
        tokio::time::timeout(SLOW, c.flush())
            .await
            .expect("flush in time")
            .unwrap();
        waiting(&ep, "db12", "one", i + 1).await;
        getters.push((c, tokio::spawn(get)));
    }
    p.put("one", s("the value")).await.unwrap();
    let first = tokio::time::timeout(SLOW, &mut getters[0].1)
        .await
        .expect("the first getter is served")
        .unwrap()
        .unwrap();
    assert_eq!(first.value, s("the value"));
    // Exactly one getter got it: the value is gone and the nine others still wait.
    assert!(!p.test_key("one").await.unwrap());
    assert_eq!(ep.probe().namespace_waiters("db12", "one"), 9);
    // One value each for the rest, first come, first served: a getter that had also received
    // the first value would show it here instead of its own.
    for i in 1..10 {
        p.put("one", s(&format!("value {i}"))).await.unwrap();
    }
    for (i, (_client, getter)) in getters.into_iter().enumerate().skip(1) {
        let got = tokio::time::timeout(SLOW, getter)
            .await
            .unwrap_or_else(|_| panic!("getter {i} served within {SLOW:?}"))
            .unwrap()
            .unwrap();
        assert_eq!(got.value, s(&format!("value {i}")), "getter {i}");
    }
    assert_eq!(ep.probe().namespace_waiters("db12", "one"), 0);
    assert!(!p.test_key("one").await.unwrap());
    ep.shutdown().await;
}

async fn db13_short_buffer_never_loses_a_value(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let ns = d.create("db13", 0, &[]).await.unwrap();
    assert_eq!(d.put(&ns, "0123456789", "k", "").await, 0);
    // Too small, no PARTIAL: UBUFFER, size unchanged.
    let mut size = 4u64;
    assert_eq!(d.get(&ns, "k", "", "", 0, Some(&mut size)).await, (None, 6));
    assert_eq!(size, 4);
    // PARTIAL: UBUFFER with the full length.
    assert_eq!(
        d.read(&ns, "k", "", "", DBR_FLAGS_PARTIAL, Some(&mut size))
            .await
            .1,
        6
    );
    assert_eq!(size, 10);
    let mut small = 4u64;
    assert_eq!(
        d.get(&ns, "k", "", "", DBR_FLAGS_PARTIAL, Some(&mut small))
            .await
            .1,
        6
    );
    assert_eq!(small, 10);
    // Divergence: the failed gets did not consume the value.
    let mut big = 10u64;
    assert_eq!(
        d.get(&ns, "k", "", "", 0, Some(&mut big)).await,
        (Some(s("0123456789")), 0)
    );
    assert_eq!(big, 10);
    // The idiomatic API: capacity + partial gives UBUFFER with the size.
    ns.put("k", "abcdef").await.unwrap();
    let e = ns
        .get_with(
            "k",
            GetOptions {
                capacity: Some(2),
                partial: true,
                ..GetOptions::nowait()
            },
        )
        .await
        .unwrap_err();
    assert_eq!((e.code, e.size), (DbrCode::UBuffer, Some(6)));
    assert!(ns.test_key("k").await.unwrap());
    ep.shutdown().await;
}

#[test]
fn db14_db27_flags_and_error_codes() {
    assert_eq!(
        (
            dbr::FLAGS_NONE,
            dbr::FLAGS_NOWAIT,
            dbr::FLAGS_PARTIAL,
            dbr::FLAGS_MAX
        ),
        (0, 1, 2, 3)
    );
    assert_eq!(dbr::FLAGS_NOWAIT | dbr::FLAGS_PARTIAL, dbr::FLAGS_MAX);
    let expected = [
        "Operation successful",
        "A general or unknown error has occurred",
        "Invalid argument",
        "An invalid handle was encountered inside",
        "Operation in progress",
        "Operation timed out",
        "Provided user buffer problem (too small, not available)",
        "Entry not available",
        "Entry already exists",
        "Namespace still referenced by a client",
        "Namespace is invalid",
        "Insufficient memory or storage",
        "Invalid tag",
        "File not found",
        "Access authorization required or failed",
        "Connection to a storage backend failed",
        "Operation was cancelled",
        "Operation not implemented",
        "Invalid operation",
        "Failed to post request to back-end",
        "Unspecified back-end error",
        "Invalid iterator or error iterating the namespace",
        "Error while processing request/data in data adapter",
    ];
    for (i, m) in expected.iter().enumerate() {
        assert_eq!(
            broker_client::namespace::dbr::get_error_message(i as i32),
            *m
        );
    }
    for bad in [-1, 23, 24, 1000] {
        assert_eq!(dbr::error_message(bad), "Unknown Error");
    }
    assert_eq!(
        broker_client::namespace::dbr::get_error_code(7),
        "DBR_ERR_UNAVAIL"
    );
    assert_eq!(dbr::CODES.len(), 24);
}

async fn db15_timeout_and_put_during_wait(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let (a, b) = (client(&url).await, client(&url).await);
    let na = a.create_namespace("db15", 0, vec![]).await.unwrap();
    let nb = b.attach_namespace("db15").await.unwrap();
    let t0 = Instant::now();
    let r = na
        .get_with("none", GetOptions::timeout(Duration::from_millis(300)))
        .await;
    assert_eq!(code(r), DbrCode::Timeout);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "never less than the timeout"
    );
    // A blocked get released by a put from another client.
    let getter = tokio::spawn(async move { na.get_with("job", GetOptions::forever()).await });
    waiting(&ep, "db15", "job", 1).await;
    nb.put("job", 42u64).await.unwrap();
    assert_eq!(getter.await.unwrap().unwrap().value, Data::Count(42));
    // Every waiting reader gets a copy; the value stays.
    let r1 = {
        let n = nb.clone();
        tokio::spawn(async move { n.read_with("shared", GetOptions::forever()).await })
    };
    let r2 = {
        let c = client(&url).await;
        let n = c.attach_namespace("db15").await.unwrap();
        tokio::spawn(async move { n.read_with("shared", GetOptions::forever()).await })
    };
    waiting(&ep, "db15", "shared", 2).await;
    nb.put("shared", "x").await.unwrap();
    assert_eq!(r1.await.unwrap().unwrap().value, s("x"));
    assert_eq!(r2.await.unwrap().unwrap().value, s("x"));
    assert!(nb.test_key("shared").await.unwrap());
    ep.shutdown().await;
}

async fn db16_missing_tuple_outcomes(backend: Backend) {
    let dir = TempDir::new(backend);
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let h = d.create("db16", 0, &[]).await.unwrap();
    let h2 = d.create("db16b", 0, &[]).await.unwrap();
    assert_eq!(d.read(&h, "x", "", "", DBR_FLAGS_NOWAIT, None).await.1, 7);
    assert_eq!(d.get(&h, "x", "", "", DBR_FLAGS_NOWAIT, None).await.1, 7);
    let mut quick = Dbr::new(c.clone());
    quick.timeout = Some(Duration::from_millis(100));
    assert_eq!(quick.read(&h, "x", "", "", 0, None).await.1, 5);
    assert_eq!(quick.get(&h, "x", "", "", 0, None).await.1, 5);
    assert_eq!(d.test_key(&h, "x").await, 7);
    assert_eq!(d.remove(&h, "", "x", "").await, 7);
    assert_eq!(d.r#move(&h, "", "x", "", &h2, "").await, 7);
    // readA/getA + test: UNAVAIL with NOWAIT; INPROGRESS without.
    let t = d.read_a(&h, "x", "", "", DBR_FLAGS_NOWAIT);
    let t2 = d.get_a(&h, "x", "", "", 0);
    assert_eq!(d.wait(t).await, (7, None));
    waiting(&ep, "db16", "x", 1).await;
    assert_eq!(d.test(t2), 4);
    assert_eq!(d.cancel(t2), 0);
    ep.shutdown().await;
}

both_backends!(
    db01_create_and_exists,
    db02_name_rules_and_no_cross_namespace_collisions,
    db03_db04_attach_refcount_and_producer_consumer_handoff,
    db05_delete_marks_and_last_detach_deletes,
    db06_db07_query_state_level_and_groups,
    db08_unsupported_management_calls,
    db09_db10_fifo_binary_values_and_name_lifetime,
    db11_read_peeks_at_index,
    db12_ten_concurrent_getters_exactly_one_wins,
    db13_short_buffer_never_loses_a_value,
    db15_timeout_and_put_during_wait,
    db16_missing_tuple_outcomes,
);
