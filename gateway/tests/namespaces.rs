//! Data Broker namespaces through the gateway, from the Rust client (DB-01..36; the spec's
//! checklist, section 12). DB-31 (Redis cluster) and DB-35 (data adapters) do not apply.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use broker_client::namespace::dbr::{Dbr, DBR_FLAGS_NOWAIT, DBR_FLAGS_PARTIAL, DB_TAG_ERROR};
use broker_client::namespace::{GetOptions, NsError};
use broker_client::Client;
use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::Data;
use common::*;
use gateway::Endpoint;
use tokio_util::sync::CancellationToken;

/// A fresh data directory under the system's temp dir (removed by the guard).
struct TempDir(PathBuf);
impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("ns-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn gateway_in(dir: &TempDir) -> (Endpoint, String) {
    let d = dir.0.clone();
    let (ep, addr) = endpoint_with(move |c| {
        c.data_dir = d;
        c.ns_max_value = 1024 * 1024;
    })
    .await;
    (ep, url(addr))
}

async fn client(url: &str) -> Client {
    Client::connect(url).await.unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T, NsError>) -> DbrCode {
    r.expect_err("an error").code
}

fn s(v: &str) -> Data {
    Data::String(v.as_bytes().to_vec())
}

const NOWAIT: fn() -> GetOptions = GetOptions::nowait;

async fn waiting(ep: &Endpoint, ns: &str, key: &str, n: usize) {
    eventually(&format!("{n} waiters on {ns}/{key}"), || {
        ep.probe().namespace_waiters(ns, key) == n
    })
    .await;
}

#[tokio::test]
async fn db01_create_and_exists() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db02_name_rules_and_no_cross_namespace_collisions() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db03_db04_attach_refcount_and_producer_consumer_handoff() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db05_delete_marks_and_last_detach_deletes() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db06_db07_query_state_level_and_groups() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db08_unsupported_management_calls() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let h = d.create("db08", 0, &[]).await.unwrap();
    assert_eq!(d.add_units(&h, &["u"]), DbrCode::NotImpl.code());
    assert_eq!(d.remove_units(&h, &["u"]), DbrCode::NotImpl.code());
    ep.shutdown().await;
}

#[tokio::test]
async fn db09_db10_fifo_binary_values_and_name_lifetime() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db11_read_peeks_at_index() {
    let dir = TempDir::new();
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
#[tokio::test]
async fn db12_ten_concurrent_getters_exactly_one_wins() {
    const SLOW: Duration = Duration::from_secs(60);
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let producer = client(&url).await;
    let p = producer.create_namespace("db12", 0, vec![]).await.unwrap();
    let mut getters = Vec::new();
    for i in 0..10 {
        let c = client(&url).await;
        let ns = c.attach_namespace("db12").await.unwrap();
        let mut get = Box::pin(async move { ns.get_with("one", GetOptions::forever()).await });
        // Polled once, the request is queued; the flush's answer means the gateway has
        // registered it. So the gateway's waiters are in the order of `i`.
        tokio::select! {
            biased;
            r = &mut get => panic!("getter {i} answered before any put: {r:?}"),
            _ = std::future::ready(()) => {}
        }
        tokio::time::timeout(SLOW, c.flush())
            .await
            .expect("flush in time")
            .unwrap();
        assert_eq!(ep.probe().namespace_waiters("db12", "one"), i + 1);
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

#[tokio::test]
async fn db13_short_buffer_never_loses_a_value() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db15_timeout_and_put_during_wait() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db16_missing_tuple_outcomes() {
    let dir = TempDir::new();
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

#[tokio::test]
async fn db17_db18_remove_and_atomic_move() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let a = c.create_namespace("src", 0, vec![]).await.unwrap();
    let b = c
        .create_namespace("dst", dbr::PERST_PERMANENT_SIMPLE, vec![])
        .await
        .unwrap();
    for i in 0..3u64 {
        a.put("k", i).await.unwrap();
    }
    a.put("gone", 1u64).await.unwrap();
    a.put("gone", 2u64).await.unwrap();
    a.remove("gone").await.unwrap();
    assert!(!a.test_key("gone").await.unwrap());
    assert_eq!(code(a.remove("gone").await), DbrCode::Unavail);
    // Same handle: SUCCESS without checks.
    a.move_to("nothing", &a).await.unwrap();
    // Whole queue, order kept, across memory -> SQLite.
    a.move_to("k", &b).await.unwrap();
    assert!(!a.test_key("k").await.unwrap());
    for i in 0..3u64 {
        assert_eq!(
            b.read_with(
                "k",
                GetOptions {
                    index: i,
                    ..NOWAIT()
                }
            )
            .await
            .unwrap()
            .value,
            Data::Count(i)
        );
    }
    // Destination has the name: EXISTS, source intact.
    a.put("k", 9u64).await.unwrap();
    assert_eq!(code(a.move_to("k", &b).await), DbrCode::Exists);
    assert_eq!(a.read("k").await.unwrap(), Data::Count(9));
    assert_eq!(code(a.move_to("missing", &b).await), DbrCode::Unavail);
    // A move wakes a getter waiting at the destination.
    b.remove("k").await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.get_with("k", GetOptions::forever()).await })
    };
    waiting(&ep, "dst", "k", 1).await;
    a.move_to("k", &b).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap().value, Data::Count(9));
    b.delete().await.unwrap();
    ep.shutdown().await;
}

#[tokio::test]
async fn db19_db20_db21_directory_and_iterator_with_globs() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("db20", 0, vec![]).await.unwrap();
    for k in ["key-1", "key-2", "key-10", "other", "k*"] {
        ns.put(k, 1u64).await.unwrap();
    }
    let mut all = ns.directory("", 0).await.unwrap();
    all.sort();
    assert_eq!(all, ["k*", "key-1", "key-10", "key-2", "other"]);
    assert_eq!(ns.directory("key-?", 0).await.unwrap(), ["key-1", "key-2"]);
    assert_eq!(
        ns.directory("key-[^2]*", 0).await.unwrap(),
        ["key-1", "key-10"]
    );
    assert_eq!(ns.directory("k\\*", 0).await.unwrap(), ["k*"]);
    assert_eq!(
        ns.directory("key-*", 2).await.unwrap().len(),
        2,
        "count caps"
    );
    assert!(ns.directory("nomatch*", 0).await.unwrap().is_empty());
    // PyDBR shape: newline-joined, size in bytes, no match = SUCCESS, size 0.
    let d = Dbr::new(c.clone());
    let (list, size, code0) = d.directory(&ns, "key-?", "", 100, 1024).await;
    assert_eq!(
        (list, size, code0),
        (vec!["key-1".to_owned(), "key-2".to_owned()], 11, 0)
    );
    assert_eq!(
        d.directory(&ns, "zzz", "", 100, 1024).await,
        (vec![String::new()], 0, 0)
    );
    // Missing namespace: UNAVAIL.
    let gone = c.create_namespace("db20-gone", 0, vec![]).await.unwrap();
    let stale = gone.clone();
    let other = client(&url).await;
    let keep = other.attach_namespace("db20-gone").await.unwrap();
    keep.delete().await.unwrap_err();
    gone.detach().await.unwrap();
    let raw = c
        .namespace_op(broker_wasm::protocol::NamespaceOp::Directory {
            ns: "db20-gone".into(),
            pattern: "*".into(),
            limit: 0,
        })
        .await;
    assert_eq!(code(raw), DbrCode::Unavail);
    drop(stale);
    // Iterator: each match once, then DONE; an empty match ends at once.
    let mut it = None;
    let mut seen = Vec::new();
    loop {
        let (name, next) = d.iterator(&ns, it, "", "key-*").await;
        match name {
            Some(n) => seen.push(n),
            None => {
                assert!(next.is_none());
                break;
            }
        }
        it = next;
    }
    assert_eq!(seen, ["key-1", "key-10", "key-2"]);
    assert_eq!(d.iterator(&ns, None, "", "none*").await, (None, None));
    // Paging: stateless cursor.
    let (page, done) = ns.iterate_page("*", None, 2).await.unwrap();
    assert_eq!((page.len(), done), (2, false));
    let (rest, done) = ns
        .iterate_page("*", page.last().cloned(), 10)
        .await
        .unwrap();
    assert_eq!((rest.len(), done), (3, true));
    ep.shutdown().await;
}

#[tokio::test]
async fn db22_test_key_never_waits_or_consumes() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let h = d.create("db22", 0, &[]).await.unwrap();
    assert_eq!(d.test_key(&h, "k").await, 7);
    d.put(&h, "v", "k", "").await;
    assert_eq!(d.test_key(&h, "k").await, 0);
    assert_eq!(d.test_key(&h, "k").await, 0);
    assert_eq!(h.query().await.unwrap().total_values, 1);
    ep.shutdown().await;
}

#[tokio::test]
async fn db23_db24_db25_tags_test_and_cancel() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let h = d.create("db23", 0, &[]).await.unwrap();
    // getA before the put completes after the put.
    let g = d.get_a(&h, "k", "", "", 0);
    assert!((0..1024).contains(&g));
    waiting(&ep, "db23", "k", 1).await;
    assert_eq!(d.test(g), 4, "INPROGRESS");
    let p = d.put_a(&h, "v", "k", "");
    assert_eq!(d.wait(p).await, (0, None));
    // The put is done, so the get completes now; test reports it once, then the tag is free.
    // `dbrTest` is the original's polling API (a wait would take the tag): poll it, with a
    // deadline.
    let deadline = Instant::now() + T;
    let done = loop {
        match d.test_value(g) {
            (4, _) => {
                assert!(
                    Instant::now() < deadline,
                    "getA tag {g} still in progress {T:?} after its put completed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => break other,
        }
    };
    assert_eq!(done, (0, Some(s("v"))));
    assert_eq!(d.test(g), 12, "a reported tag is free: TAGERROR");
    // A cancelled getA never consumes a later put.
    let g = d.get_a(&h, "later", "", "", 0);
    waiting(&ep, "db23", "later", 1).await;
    assert_eq!(d.cancel(g), 0);
    waiting(&ep, "db23", "later", 0).await;
    h.put("later", "kept").await.unwrap();
    assert_eq!(h.read("later").await.unwrap(), s("kept"));
    assert_eq!(d.cancel(g), 12);
    assert_eq!(d.cancel(5000), 12);
    assert_eq!(d.test(-3), 12);
    // 1024 outstanding requests; the 1025th fails with DB_TAG_ERROR.
    let tags: Vec<i64> = (0..1024).map(|_| d.get_a(&h, "never", "", "", 0)).collect();
    assert!(tags.iter().all(|t| (0..1024).contains(t)));
    assert_eq!(d.get_a(&h, "never", "", "", 0), DB_TAG_ERROR);
    for t in tags {
        d.cancel(t);
    }
    ep.shutdown().await;
}

#[tokio::test]
async fn db25_cancel_after_the_value_was_taken_puts_it_back() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("db25", 0, vec![]).await.unwrap();
    ns.put("k", "first").await.unwrap();
    ns.put("k", "second").await.unwrap();
    // The token is cancelled before the request is even sent: the gateway answers the get
    // at once, the cancel arrives too late, and the client restores the value at the head.
    let token = CancellationToken::new();
    token.cancel();
    let r = ns
        .get_with(
            "k",
            GetOptions {
                cancel: Some(token),
                ..GetOptions::nowait()
            },
        )
        .await;
    assert_eq!(code(r), DbrCode::Cancelled);
    assert_eq!(ns.get("k").await.unwrap(), s("first"), "order kept");
    assert_eq!(ns.get("k").await.unwrap(), s("second"));
    ep.shutdown().await;
}

/// DB-27: a request whose connection closes before the answer (a Broker-level failure,
/// `shutting_down`, made by the client core) is `DBR_ERR_NOCONNECT`, the same code the JS
/// client gives (`namespace.test.mjs`): the rule lives once, in the core.
#[tokio::test]
async fn db27_a_connection_lost_during_a_request_is_noconnect() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("lost", 0, vec![]).await.unwrap();
    let get = tokio::spawn({
        let ns = ns.clone();
        async move { ns.get_with("k", GetOptions::forever()).await }
    });
    waiting(&ep, "lost", "k", 1).await;
    ep.shutdown().await;
    let r = tokio::time::timeout(Duration::from_secs(10), get)
        .await
        .expect("the get ends when the connection does")
        .unwrap();
    let e = r.expect_err("no value came");
    assert_eq!(e.code, DbrCode::NoConnect, "{e}");
    // The Broker failure itself, not a request sent after the close.
    assert!(e.context.starts_with("shutting_down: "), "{e}");
}

#[tokio::test]
async fn namespace_list_names_every_namespace_sorted() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let a = client(&url).await;
    let b = client(&url).await;
    assert!(b.namespaces().await.unwrap().is_empty());
    a.create_namespace("zeta", 0, vec![]).await.unwrap();
    a.create_namespace("alpha", 4, vec![]).await.unwrap();
    // Another connection sees them without attaching.
    assert_eq!(b.namespaces().await.unwrap(), vec!["alpha", "zeta"]);
    ep.shutdown().await;
}

#[tokio::test]
async fn db12_a_get_whose_future_is_dropped_never_consumes_a_value() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let a = client(&url).await;
    let b = client(&url).await;
    let ns_a = a.create_namespace("dropped", 0, vec![]).await.unwrap();
    let ns_b = b.attach_namespace("dropped").await.unwrap();
    // A blocking get, polled once so its request is queued, then known to the gateway.
    let get = ns_a.get_with(
        "k",
        GetOptions {
            wait: broker_wasm::protocol::Wait::Forever,
            ..GetOptions::default()
        },
    );
    let mut get = Box::pin(get);
    tokio::select! {
        biased;
        _ = &mut get => panic!("nothing to get yet"),
        _ = std::future::ready(()) => {}
    }
    a.flush().await.unwrap();
    waiting(&ep, "dropped", "k", 1).await;
    // The put goes to the waiting get; the answer reaches A's client...
    ns_b.put("k", "v").await.unwrap();
    a.flush().await.unwrap();
    // ...but the caller is gone: dropping the future puts the value back.
    drop(get);
    a.flush().await.unwrap();
    assert_eq!(ns_b.get_with("k", NOWAIT()).await.unwrap().value, s("v"));
    ep.shutdown().await;
}

#[tokio::test]
async fn db33_fifo_waiters_and_session_drop_releases_attachments() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let owner = client(&url).await;
    let ns = owner.create_namespace("db33", 0, vec![]).await.unwrap();
    let mut getters = Vec::new();
    for i in 0..3u64 {
        let c = client(&url).await;
        let n = c.attach_namespace("db33").await.unwrap();
        getters.push(tokio::spawn(async move {
            let v = n.get_with("k", GetOptions::forever()).await;
            (i, v, c)
        }));
        waiting(&ep, "db33", "k", i as usize + 1).await;
    }
    for v in 0..3u64 {
        ns.put("k", v).await.unwrap();
    }
    for g in getters {
        let (i, v, c) = g.await.unwrap();
        assert_eq!(v.unwrap().value, Data::Count(i), "first come, first served");
        c.shutdown().await;
    }
    // A connection that drops releases its attachments: the marked namespace goes away.
    let holder = client(&url).await;
    holder.attach_namespace("db33").await.unwrap();
    let waiter = holder.attach_namespace("db33").await.unwrap();
    let blocked =
        tokio::spawn(async move { waiter.get_with("never", GetOptions::forever()).await });
    waiting(&ep, "db33", "never", 1).await;
    assert_eq!(code(ns.delete().await), DbrCode::NsBusy);
    holder.shutdown().await;
    assert!(blocked.await.unwrap().is_err());
    eventually("the namespace to be deleted", || {
        !ep.probe().namespaces().contains(&"db33".to_owned())
    })
    .await;
    ep.shutdown().await;
}

#[tokio::test]
async fn db34_blocked_get_does_not_block_a_put_of_the_same_client() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("db34", 0, vec![]).await.unwrap();
    let getter = {
        let ns = ns.clone();
        tokio::spawn(async move { ns.get_with("k", GetOptions::forever()).await })
    };
    waiting(&ep, "db34", "k", 1).await;
    ns.put("k", 1u64).await.unwrap();
    assert_eq!(getter.await.unwrap().unwrap().value, Data::Count(1));
    ep.shutdown().await;
}

#[tokio::test]
async fn db36_value_size_cap() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c.create_namespace("db36", 0, vec![]).await.unwrap();
    ns.put("k", Data::String(vec![7; 1024 * 1024]))
        .await
        .unwrap();
    assert_eq!(
        code(ns.put("k", Data::String(vec![7; 1024 * 1024 + 1])).await),
        DbrCode::NoMemory
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn db36_blocked_requests_per_connection_are_capped() {
    let dir = TempDir::new();
    let d = dir.0.clone();
    let (ep, addr) = endpoint_with(move |c| {
        c.data_dir = d;
        c.ns_max_waiters = 3;
    })
    .await;
    let c = client(&url(addr)).await;
    let ns = c.create_namespace("cap", 0, vec![]).await.unwrap();
    let forever = || GetOptions {
        wait: broker_wasm::protocol::Wait::Forever,
        ..GetOptions::default()
    };
    let mut blocked = Vec::new();
    for k in ["a", "b", "c"] {
        let ns = ns.clone();
        blocked.push(tokio::spawn(async move { ns.get_with(k, forever()).await }));
        waiting(&ep, "cap", k, 1).await;
    }
    // A fourth blocked get on this connection is refused at once; nothing else is affected.
    assert_eq!(code(ns.get_with("d", forever()).await), DbrCode::NoMemory);
    assert_eq!(code(ns.get_with("d", NOWAIT()).await), DbrCode::Unavail);
    // Once one is served, there is room again.
    ns.put("a", "x").await.unwrap();
    assert_eq!(blocked.remove(0).await.unwrap().unwrap().value, s("x"));
    let d = ns.clone();
    let again = tokio::spawn(async move { d.get_with("d", forever()).await });
    waiting(&ep, "cap", "d", 1).await;
    ns.put("d", "y").await.unwrap();
    assert_eq!(again.await.unwrap().unwrap().value, s("y"));
    ep.shutdown().await;
}

#[tokio::test]
async fn db07_db30_permanent_namespaces_survive_a_restart() {
    let dir = TempDir::new();
    {
        let (ep, url) = gateway_in(&dir).await;
        let c = client(&url).await;
        let p = c
            .create_namespace("kept", dbr::PERST_PERMANENT_FT, vec!["g".into()])
            .await
            .unwrap();
        let v = c
            .create_namespace("volatile", dbr::PERST_VOLATILE_SIMPLE, vec![])
            .await
            .unwrap();
        for i in 0..3u64 {
            p.put("q", i).await.unwrap();
        }
        p.put("bin", Data::String(vec![0, 255])).await.unwrap();
        assert_eq!(p.get("q").await.unwrap(), Data::Count(0));
        v.put("q", 1u64).await.unwrap();
        let marked = c.create_namespace("marked", 4, vec![]).await.unwrap();
        let other = client(&url).await;
        other.attach_namespace("marked").await.unwrap();
        assert_eq!(code(marked.delete().await), DbrCode::NsBusy);
        // The producer detaches: refcount 0, data kept.
        p.detach().await.unwrap();
        c.shutdown().await;
        ep.shutdown().await;
    }
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let p = c.attach_namespace("kept").await.unwrap();
    let info = p.query().await.unwrap();
    assert_eq!(
        (info.level, info.groups.clone(), info.refcount),
        (5, vec!["g".to_owned()], 1)
    );
    assert_eq!(p.get("q").await.unwrap(), Data::Count(1));
    assert_eq!(p.get("q").await.unwrap(), Data::Count(2));
    assert_eq!(p.get("bin").await.unwrap(), Data::String(vec![0, 255]));
    assert_eq!(code(c.attach_namespace("volatile").await), DbrCode::Unavail);
    assert_eq!(
        code(c.attach_namespace("marked").await),
        DbrCode::Unavail,
        "marked, nobody attached"
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn db26_gather_put_and_scatter_read_get() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let d = Dbr::new(c.clone());
    let h = d.create("db26", 0, &[]).await.unwrap();
    assert_eq!(
        d.put_gather(&h, &[], "k", "").await,
        DbrCode::Invalid.code()
    );
    assert_eq!(d.put_gather(&h, &[b"abc", b"", b"defg"], "k", "").await, 0);
    let (pieces, code0) = d
        .read_scatter(&h, &[2, 2, 10], "k", "", "", DBR_FLAGS_NOWAIT)
        .await;
    assert_eq!(code0, 0);
    assert_eq!(
        pieces,
        vec![b"ab".to_vec(), b"cd".to_vec(), b"efg".to_vec()]
    );
    // Too small in total: UBUFFER, and the get leaves the value queued.
    assert_eq!(
        d.get_scatter(&h, &[3, 3], "k", "", "", 0).await.1,
        DbrCode::UBuffer.code()
    );
    let (pieces, _) = d.get_scatter(&h, &[4, 3], "k", "", "", 0).await;
    assert_eq!(pieces.concat(), b"abcdefg");
    // NOWAIT means no wait (the original inverted it for scatter calls).
    let t0 = Instant::now();
    assert_eq!(
        d.get_scatter(&h, &[4], "k", "", "", DBR_FLAGS_NOWAIT)
            .await
            .1,
        7
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(d.read_scatter(&h, &[], "k", "", "", 0).await.1, 2);
    ep.shutdown().await;
}

#[tokio::test]
async fn db30_storage_layout_in_sqlite() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let c = client(&url).await;
    let ns = c
        .create_namespace("layout", 4, vec!["grp".into()])
        .await
        .unwrap();
    ns.put("q", 1u64).await.unwrap();
    ns.put("q", 2u64).await.unwrap();
    let other = client(&url).await;
    other.attach_namespace("layout").await.unwrap();
    assert_eq!(code(ns.delete().await), DbrCode::NsBusy);
    // Namespace metadata (level, groups, delete mark) and one row per queued value, in order,
    // namespace and tuple name in separate columns.
    let db = rusqlite::Connection::open(dir.0.join(gateway::NAMESPACE_DB_FILE)).unwrap();
    let (level, groups, marked): (u8, String, bool) = db
        .query_row(
            "SELECT level, groups, marked FROM ns_spaces WHERE name = 'layout'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((level, groups.as_str(), marked), (4, r#"["grp"]"#, true));
    let rows: Vec<(String, String, i64)> = db
        .prepare("SELECT ns, key, seq FROM ns_tuples ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|(n, k, _)| n == "layout" && k == "q"));
    assert!(rows[0].2 < rows[1].2);
    ep.shutdown().await;
}

#[tokio::test]
async fn json_encoding_clients_use_namespaces_too() {
    let dir = TempDir::new();
    let (ep, url) = gateway_in(&dir).await;
    let opts = broker_client::ClientOptions {
        encoding: broker_wasm::protocol::Encoding::Json,
        ..Default::default()
    };
    let json = Client::connect_with(&url, opts).await.unwrap();
    let bin = client(&url).await;
    let nj = json.create_namespace("json", 0, vec![]).await.unwrap();
    let nb = bin.attach_namespace("json").await.unwrap();
    let waiter = tokio::spawn(async move { nj.get_with("k", GetOptions::forever()).await });
    waiting(&ep, "json", "k", 1).await;
    nb.put("k", Data::String(vec![0, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(
        waiter.await.unwrap().unwrap().value,
        Data::String(vec![0, 159, 146, 150])
    );
    let e = json
        .namespace_op(broker_wasm::protocol::NamespaceOp::Get {
            ns: "json".into(),
            key: "k".into(),
            wait: broker_wasm::protocol::Wait::NoWait,
            capacity: None,
            partial: false,
        })
        .await;
    assert_eq!(code(e), DbrCode::Unavail);
    ep.shutdown().await;
}
