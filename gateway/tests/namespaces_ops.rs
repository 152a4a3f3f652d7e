//! Data Broker namespaces through the gateway, from the Rust client (DB-17..36: remove and
//! move, directory and iterator, tags and cancellation, sessions, limits, persistence,
//! scatter/gather; DB-01..16 in `namespaces.rs`).

mod common;

use std::time::{Duration, Instant};

use broker_client::namespace::dbr::{Dbr, DBR_FLAGS_NOWAIT, DB_TAG_ERROR};
use broker_client::namespace::GetOptions;
use broker_client::Client;
use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::Data;
use common::ns::*;
use common::*;
use tokio_util::sync::CancellationToken;

async fn db17_db18_remove_and_atomic_move(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db19_db20_db21_directory_and_iterator_with_globs(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db22_test_key_never_waits_or_consumes(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db23_db24_db25_tags_test_and_cancel(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db25_cancel_after_the_value_was_taken_puts_it_back(backend: Backend) {
    let dir = TempDir::new(backend);
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
async fn db27_a_connection_lost_during_a_request_is_noconnect(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn namespace_list_names_every_namespace_sorted(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db12_a_get_whose_future_is_dropped_never_consumes_a_value(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db33_fifo_waiters_and_session_drop_releases_attachments(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db34_blocked_get_does_not_block_a_put_of_the_same_client(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db36_value_size_cap(backend: Backend) {
    let dir = TempDir::new(backend);
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

async fn db36_blocked_requests_per_connection_are_capped(backend: Backend) {
    let dir = TempDir::new(backend);
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

/// Built-in backend only: volatile namespaces are gone after a restart of the built-in backend; in Redis they stay (shared tuple space).
#[tokio::test]
async fn db07_db30_permanent_namespaces_survive_a_restart() {
    let backend = Backend::Builtin;
    let dir = TempDir::new(backend);
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

async fn db26_gather_put_and_scatter_read_get(backend: Backend) {
    let dir = TempDir::new(backend);
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

/// Built-in backend only: the built-in backend's SQLite file.
#[tokio::test]
async fn db30_storage_layout_in_sqlite() {
    let backend = Backend::Builtin;
    let dir = TempDir::new(backend);
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

async fn json_encoding_clients_use_namespaces_too(backend: Backend) {
    let dir = TempDir::new(backend);
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

both_backends!(
    db17_db18_remove_and_atomic_move,
    db19_db20_db21_directory_and_iterator_with_globs,
    db22_test_key_never_waits_or_consumes,
    db23_db24_db25_tags_test_and_cancel,
    db25_cancel_after_the_value_was_taken_puts_it_back,
    db27_a_connection_lost_during_a_request_is_noconnect,
    namespace_list_names_every_namespace_sorted,
    db12_a_get_whose_future_is_dropped_never_consumes_a_value,
    db33_fifo_waiters_and_session_drop_releases_attachments,
    db34_blocked_get_does_not_block_a_put_of_the_same_client,
    db36_value_size_cap,
    db36_blocked_requests_per_connection_are_capped,
    db26_gather_put_and_scatter_read_get,
    json_encoding_clients_use_namespaces_too,
);
