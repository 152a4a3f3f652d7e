//! Data stores (ZB-44..62): masters on an endpoint (memory and SQLite), operations through the
//! Rust API and through a client connection, clones in a native client, relays on a peered
//! gateway, persistence across a restart, master restarts and unreachable masters.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use broker_client::{CloneEvent, CloneStore, StoreError};
use broker_wasm::client::CloneOptions;
use broker_wasm::protocol::Backend;
use broker_wasm::store::Change;
use broker_wasm::{Data, ErrorCode};
use common::*;
use gateway::{Config, Endpoint};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("broker-stores-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn endpoint_in(dir: &TempDir) -> (Endpoint, std::net::SocketAddr) {
    let d = dir.0.clone();
    endpoint_with(move |c: &mut Config| c.data_dir = d).await
}

fn code<T: std::fmt::Debug>(r: Result<T, StoreError>) -> ErrorCode {
    r.unwrap_err().code
}

/// The next batch of changes (or a reset). No deadline of its own: callers add one.
async fn next_batch(c: &mut CloneStore) -> (Vec<Change>, bool) {
    loop {
        match c.next_event().await {
            Some(CloneEvent::Changes { changes, reset, .. }) if !changes.is_empty() || reset => {
                return (changes, reset)
            }
            Some(_) => {}
            None => panic!("client closed"),
        }
    }
}

/// The next batch of changes (or a reset) within T.
async fn next_changes(c: &mut CloneStore) -> (Vec<Change>, bool) {
    tokio::time::timeout(T, next_batch(c))
        .await
        .unwrap_or_else(|_| panic!("no change event within {T:?}"))
}

/// Takes change batches until `want` says the changes seen so far are complete; fails after T
/// in all. Returns every change seen.
async fn changes_until(
    c: &mut CloneStore,
    what: &str,
    want: impl Fn(&[Change]) -> bool,
) -> Vec<Change> {
    let mut seen = Vec::new();
    tokio::time::timeout(T, async {
        while !want(&seen) {
            seen.extend(next_batch(c).await.0);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {T:?}; changes seen: {seen:?}"));
    seen
}

fn expired(changes: &[Change]) -> Vec<Data> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Expire { key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn zb44_zb48_to_zb55_every_operation_on_a_memory_master() {
    let (ep, _) = endpoint().await;
    let s = ep
        .attach_master("ops", Backend::Memory, Data::None)
        .await
        .unwrap();
    // ZB-44: attaching again gives the same store.
    let again = ep
        .attach_master("ops", Backend::Memory, Data::None)
        .await
        .unwrap();
    s.put("a", 1u64, None).await.unwrap();
    assert_eq!(again.get("a").await.unwrap(), Data::Count(1));
    // ZB-49
    assert!(!s.put_unique("a", 2u64, None).await.unwrap());
    assert!(s.put_unique("b", 2u64, None).await.unwrap());
    assert_eq!(s.get("b").await.unwrap(), Data::Count(2));
    // ZB-51: increments, a clash reaches the caller and changes nothing.
    s.increment("a", 5u64, None).await.unwrap();
    s.decrement("a", 2u64, None).await.unwrap();
    assert_eq!(s.get("a").await.unwrap(), Data::Count(4));
    assert_eq!(
        code(s.increment("a", Data::Integer(1), None).await),
        ErrorCode::TypeClash
    );
    assert_eq!(s.get("a").await.unwrap(), Data::Count(4));
    s.increment("n", Data::Integer(-3), None).await.unwrap();
    assert_eq!(s.get("n").await.unwrap(), Data::Integer(-3));
    assert_eq!(
        code(s.decrement("absent", 1u64, None).await),
        ErrorCode::NoSuchKey
    );
    // ZB-52
    s.append("s", "ab", None).await.unwrap();
    s.append("s", "cd", None).await.unwrap();
    assert_eq!(s.get("s").await.unwrap(), Data::from("abcd"));
    assert_eq!(code(s.append("a", "x", None).await), ErrorCode::TypeClash);
    // ZB-53: sets, tables, positional vectors.
    s.insert_into("set", 1u64, None, None).await.unwrap();
    s.insert_into("set", 2u64, None, None).await.unwrap();
    s.remove_from("set", 1u64, None).await.unwrap();
    assert_eq!(
        s.get("set").await.unwrap(),
        Data::Set([Data::Count(2)].into())
    );
    s.insert_into("t", "k", Some(Data::from("v")), None)
        .await
        .unwrap();
    assert_eq!(
        s.get_index_from_value("t", "k").await.unwrap(),
        Data::from("v")
    );
    assert_eq!(
        code(s.get_index_from_value("t", "nope").await),
        ErrorCode::NoSuchKey
    );
    // ZB-54
    s.push("v", 1u64, None).await.unwrap();
    s.push("v", 3u64, None).await.unwrap();
    s.insert_into("v", 1u64, Some(Data::Count(2)), None)
        .await
        .unwrap();
    assert_eq!(
        s.get("v").await.unwrap(),
        Data::Vector(vec![1u64.into(), 2u64.into(), 3u64.into()])
    );
    s.pop("v", None).await.unwrap();
    assert_eq!(
        s.get_index_from_value("v", 1u64).await.unwrap(),
        Data::Count(2)
    );
    assert_eq!(code(s.pop("nothing", None).await), ErrorCode::NoSuchKey);
    // ZB-55
    assert!(s.exists("a").await.unwrap());
    assert!(!s.exists("zzz").await.unwrap());
    assert_eq!(code(s.get("zzz").await), ErrorCode::NoSuchKey);
    let Data::Set(keys) = s.keys().await.unwrap() else {
        panic!("keys is a set")
    };
    assert_eq!(keys.len(), 7); // a b n s set t v
                               // ZB-50
    s.erase("a").await.unwrap();
    s.erase("a").await.unwrap(); // absent: fine
    assert!(!s.exists("a").await.unwrap());
    s.clear().await.unwrap();
    assert_eq!(s.keys().await.unwrap(), Data::Set(Default::default()));
    assert_eq!(ep.stores(), vec!["ops".to_owned()]);
    assert_eq!(metric(&ep, "stores_master"), 1);
    let ops = metric(&ep, "store_ops_total");
    assert!(ops >= 40, "{ops} store operations counted");
    ep.shutdown().await;
}

#[tokio::test]
async fn zb56_expiry_is_reaped_and_cleared_by_a_write_without_expiry() {
    let (ep, addr) = endpoint().await;
    let s = ep
        .attach_master("exp", Backend::Memory, Data::None)
        .await
        .unwrap();
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let mut clone = client.attach_clone("exp", CloneOptions::default());
    clone.synced(T).await.unwrap();
    s.put("short", 1u64, Some(Duration::from_millis(150)))
        .await
        .unwrap();
    s.put("kept", 1u64, Some(Duration::from_millis(150)))
        .await
        .unwrap();
    // Expires after the other two: by its expire, theirs (if any) have been reaped too.
    s.put("marker", 1u64, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    // A write without expiry clears the old one (Broker's observed behaviour).
    s.increment("kept", 1u64, None).await.unwrap();
    // The clone sees the inserts, the update, and expires for `short` and `marker` only.
    let seen = changes_until(&mut clone, "expire of marker", |c| {
        expired(c).contains(&Data::from("marker"))
    })
    .await;
    assert_eq!(
        expired(&seen),
        vec![Data::from("short"), Data::from("marker")]
    );
    assert_eq!(code(s.get("short").await), ErrorCode::NoSuchKey);
    assert_eq!(s.get("kept").await.unwrap(), Data::Count(2));
    assert_eq!(clone.get(&"kept".into()).unwrap(), Some(Data::Count(2)));
    assert_eq!(clone.get(&"short".into()).unwrap(), None);
    client.shutdown().await;
    ep.shutdown().await;
}

// One thread: nothing else runs between `attach_clone` and the first read below.
#[tokio::test(flavor = "current_thread")]
async fn zb57_zb58_zb62_clone_in_a_client_snapshot_then_ordered_updates() {
    let (ep, addr) = endpoint().await;
    let s = ep
        .attach_master("c", Backend::Memory, Data::None)
        .await
        .unwrap();
    for i in 0..10_000u64 {
        s.put(i, i, None).await.unwrap();
    }
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let mut clone = client.attach_clone("c", CloneOptions::default());
    // ZB-55: reads before the first snapshot are stale_data, never a wrong answer. The
    // test has not yielded since the attach, so no snapshot can have been applied yet.
    assert!(clone.is_empty());
    assert!(matches!(
        clone.get(&0u64.into()),
        Err(e) if e.code == ErrorCode::StaleData
    ));
    clone.synced(T).await.unwrap();
    assert_eq!(clone.len(), 10_000, "snapshot in several chunks");
    // Writes through the clone's connection go to the master (ZB-59).
    let w = clone.master();
    w.put(1u64, "one", None).await.unwrap();
    w.erase(2u64).await.unwrap();
    assert!(clone.await_idle(T).await);
    assert_eq!(clone.get(&1u64.into()).unwrap(), Some(Data::from("one")));
    assert_eq!(clone.get(&2u64.into()).unwrap(), None);
    // Change events carry old and new values (ZB-62).
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (changes, reset) = next_changes(&mut clone).await;
        assert!(!reset);
        seen.extend(
            changes
                .into_iter()
                .filter(|c| !matches!(c, Change::Insert { .. })),
        );
    }
    assert_eq!(
        seen,
        vec![
            Change::Update {
                key: 1u64.into(),
                old: 1u64.into(),
                value: "one".into(),
                expiry: None
            },
            Change::Erase { key: 2u64.into() }
        ]
    );
    // put_unique through the client (ZB-49) and a request the master rejects.
    assert!(!w.put_unique(1u64, 0u64, None).await.unwrap());
    assert_eq!(
        code(w.increment(1u64, 1u64, None).await),
        ErrorCode::TypeClash
    );
    assert_eq!(w.get(3u64).await.unwrap(), Data::Count(3));
    client.shutdown().await;
    ep.shutdown().await;
}

#[tokio::test]
async fn zb47_clone_without_master_retries_until_one_appears() {
    let (ep, addr) = endpoint().await;
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let mut clone = client.attach_clone(
        "later",
        CloneOptions {
            resync_interval_ms: 100.0,
            ..CloneOptions::default()
        },
    );
    match tokio::time::timeout(T, clone.next_event()).await.unwrap() {
        Some(CloneEvent::Error(e)) => assert_eq!(e.code, ErrorCode::NoSuchMaster),
        other => panic!("expected no_such_master, got {other:?}"),
    }
    let s = ep
        .attach_master("later", Backend::Memory, Data::None)
        .await
        .unwrap();
    s.put("k", "v", None).await.unwrap();
    // The Rust client drives the core's timers itself.
    clone.synced(T).await.unwrap();
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::from("v")));
    client.shutdown().await;
    ep.shutdown().await;
}

#[tokio::test]
async fn zb46_sqlite_master_survives_a_restart_with_expiries() {
    // Expires a few seconds after it is written: still there when the clone below takes its
    // snapshot, then expired in front of it.
    const SOON: Duration = Duration::from_secs(4);
    let dir = TempDir::new();
    let soon_written;
    {
        let (ep, _) = endpoint_in(&dir).await;
        let s = ep
            .attach_master("persist", Backend::Sqlite, Data::None)
            .await
            .unwrap();
        for i in 0..1000u64 {
            s.put(i, Data::Vector(vec![i.into(), "x".into()]), None)
                .await
                .unwrap();
        }
        s.put("gone", 1u64, Some(Duration::from_millis(1)))
            .await
            .unwrap();
        s.put("later", 1u64, Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        soon_written = std::time::Instant::now();
        s.put("soon", 1u64, Some(SOON)).await.unwrap();
        s.erase(5u64).await.unwrap();
        ep.shutdown().await;
    }
    assert!(dir.0.join("persist.sqlite").exists());
    let (ep, addr) = endpoint_in(&dir).await;
    let s = ep
        .attach_master("persist", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    assert_eq!(
        s.get(7u64).await.unwrap(),
        Data::Vector(vec![7u64.into(), "x".into()])
    );
    assert_eq!(code(s.get(5u64).await), ErrorCode::NoSuchKey);
    assert!(s.exists("later").await.unwrap());
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let mut clone = client.attach_clone("persist", CloneOptions::default());
    clone.synced(T).await.unwrap();
    assert!(
        soon_written.elapsed() < SOON,
        "restart and snapshot took over {SOON:?}: too slow for this test"
    );
    assert_eq!(clone.get(&"soon".into()).unwrap(), Some(Data::Count(1)));
    // The expiry survived the restart: `soon` expires at its time, seen by the clone.
    let seen = changes_until(&mut clone, "expire of soon", |c| {
        expired(c).contains(&Data::from("soon"))
    })
    .await;
    assert!(soon_written.elapsed() >= SOON, "expired early");
    assert!(!seen
        .iter()
        .any(|c| matches!(c, Change::Expire { key } if *key == Data::from("later"))));
    // `gone` expired while the gateway was down and goes first (expiries are reaped in time
    // order): gone from the master and from the clone, whether its snapshot had it or not.
    assert_eq!(clone.get(&"gone".into()).unwrap(), None);
    assert_eq!(clone.get(&"soon".into()).unwrap(), None);
    assert!(!s.exists("gone").await.unwrap());
    assert!(!s.exists("soon").await.unwrap());
    assert_eq!(clone.len(), 1000); // 999 numbers + "later"
    client.shutdown().await;
    let Data::Set(keys) = s.keys().await.unwrap() else {
        panic!()
    };
    assert_eq!(keys.len(), 1000);
    ep.shutdown().await;
}

#[tokio::test]
async fn zb44_zb46_backend_failures_are_typed_errors() {
    let dir = TempDir::new();
    let (ep, _) = endpoint_in(&dir).await;
    let bad_opts = Data::Table([("synchronous".into(), Data::enum_value("NOPE"))].into());
    assert_eq!(
        code(ep.attach_master("x", Backend::Sqlite, bad_opts).await),
        ErrorCode::BackendFailure
    );
    // A directory where the file should be cannot be opened.
    std::fs::create_dir_all(dir.0.join("dir.sqlite")).unwrap();
    assert_eq!(
        code(ep.attach_master("dir", Backend::Sqlite, Data::None).await),
        ErrorCode::BackendFailure
    );
    // A corrupt file: FAIL by default, recreated with failure_mode DELETE.
    std::fs::write(
        dir.0.join("bad.sqlite"),
        b"this is not a database, not at all....",
    )
    .unwrap();
    assert_eq!(
        code(ep.attach_master("bad", Backend::Sqlite, Data::None).await),
        ErrorCode::BackendFailure
    );
    let del = Data::Table(
        [(
            "failure_mode".into(),
            Data::enum_value("Broker::SQLITE_FAILURE_MODE_DELETE"),
        )]
        .into(),
    );
    let s = ep.attach_master("bad", Backend::Sqlite, del).await.unwrap();
    assert_eq!(code(s.get("k").await), ErrorCode::NoSuchKey);
    assert_eq!(
        code(ep.attach_master("", Backend::Memory, Data::None).await),
        ErrorCode::InvalidData
    );
    ep.shutdown().await;
}

#[tokio::test]
async fn zb44_client_masters_can_be_disabled() {
    let (ep, addr) = endpoint_with(|c| c.client_masters = false).await;
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let e = client
        .attach_master("m", Backend::Memory, Data::None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadMemberFunctionCall);
    assert!(ep.stores().is_empty());
    client.shutdown().await;
    ep.shutdown().await;
}

async fn peer(a: &Endpoint, b: std::net::SocketAddr) {
    a.peer_timeout("127.0.0.1", b.port(), None, T)
        .await
        .expect("peering");
}

#[tokio::test]
async fn zb58_master_on_a_clones_on_peered_b_and_zb44_master_exists() {
    let (a, a_addr) = endpoint().await;
    let (b, b_addr) = endpoint().await;
    peer(&b, a_addr).await;
    let m = a
        .attach_master("shared", Backend::Memory, Data::None)
        .await
        .unwrap();
    m.put("k", 1u64, None).await.unwrap();
    // ZB-44: B sees A's master in A's advert.
    let bs = b.probe();
    eventually("A's master advertised", move || {
        bs.master_elsewhere("shared")
    })
    .await;
    assert_eq!(
        code(b.attach_master("shared", Backend::Memory, Data::None).await),
        ErrorCode::MasterExists
    );
    // A client of B clones the store of A and writes through B.
    let client = broker_client::Client::connect(&url(b_addr)).await.unwrap();
    let mut clone = client.attach_clone("shared", CloneOptions::default());
    clone.synced(T).await.unwrap();
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::Count(1)));
    clone.master().increment("k", 41u64, None).await.unwrap();
    assert_eq!(m.get("k").await.unwrap(), Data::Count(42));
    assert!(clone.await_idle(T).await);
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::Count(42)));
    // Writes on A reach B's client.
    m.put("from-a", "hi", None).await.unwrap();
    changes_until(&mut clone, "insert of from-a", |seen| {
        seen.iter()
            .any(|c| matches!(c, Change::Insert { key, .. } if *key == Data::from("from-a")))
    })
    .await;
    assert_eq!(b.stores(), vec!["shared".to_owned()]);
    client.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn zb60_master_restart_is_a_reset_and_the_clone_keeps_its_cache_meanwhile() {
    let dir = TempDir::new();
    let (a, a_addr) = endpoint_in(&dir).await;
    let (b, b_addr) = endpoint().await;
    peer(&b, a_addr).await;
    let m = a
        .attach_master("r", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    m.put("k", 1u64, None).await.unwrap();
    let client = broker_client::Client::connect(&url(b_addr)).await.unwrap();
    let mut clone = client.attach_clone("r", CloneOptions::default());
    clone.synced(T).await.unwrap();
    // The master's gateway goes away: B's clone keeps answering from its cache (ZB-60).
    let mut statuses = b.make_status_subscriber(true);
    a.shutdown().await;
    expect_status(&mut statuses, broker_wasm::StatusCode::PeerLost).await;
    // B's relay tells the clone that the master is unreachable (its stale interval starts).
    let unreachable = async {
        loop {
            match clone.next_event().await {
                Some(CloneEvent::Error(e)) => return e,
                Some(_) => {}
                None => panic!("client closed"),
            }
        }
    };
    let e = tokio::time::timeout(T, unreachable)
        .await
        .expect("an error event within T");
    assert_eq!(e.code, ErrorCode::NoSuchMaster);
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::Count(1)));
    // A restarts on the same data (a new master instance); B peers again.
    let (a2, a2_addr) = endpoint_in(&dir).await;
    let m2 = a2
        .attach_master("r", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    m2.put("k", 2u64, None).await.unwrap();
    peer(&b, a2_addr).await;
    // The relay finds the new master; the clone gets a reset with the difference.
    let reset = async {
        loop {
            let (changes, reset) = next_batch(&mut clone).await;
            if reset {
                return changes;
            }
        }
    };
    let changes = tokio::time::timeout(T, reset)
        .await
        .expect("a reset within T");
    assert_eq!(
        changes,
        vec![Change::Update {
            key: "k".into(),
            old: 1u64.into(),
            value: 2u64.into(),
            expiry: None
        }]
    );
    client.shutdown().await;
    b.shutdown().await;
    a2.shutdown().await;
}

#[tokio::test]
async fn zb47_stale_interval_applies_when_the_gateway_is_gone() {
    let (ep, addr) = endpoint().await;
    ep.attach_master("st", Backend::Memory, Data::None)
        .await
        .unwrap()
        .put("k", 1u64, None)
        .await
        .unwrap();
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let mut clone = client.attach_clone(
        "st",
        CloneOptions {
            stale_interval_ms: 0.0,
            ..CloneOptions::default()
        },
    );
    clone.synced(T).await.unwrap();
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::Count(1)));
    ep.shutdown().await;
    // The client sees the connection end; with a stale interval of 0 the cache is stale as
    // soon as any time passed.
    let closed = client.clone();
    eventually("client closed", move || closed.is_closed()).await;
    assert_eq!(code(clone.get(&"k".into())), ErrorCode::StaleData);
}

#[tokio::test]
async fn zb46_sqlite_answers_reach_a_client_whose_queue_is_full() {
    // Answers of SQLite writes come from the writer thread; with a tiny outbound queue they
    // must wait for room, never be dropped (and never take the writer down).
    let dir = TempDir::new();
    let d = dir.0.clone();
    let (ep, addr) = endpoint_with(move |c: &mut Config| {
        c.data_dir = d;
        c.queue_size = 2;
    })
    .await;
    ep.attach_master("q", Backend::Sqlite, Data::None)
        .await
        .unwrap();
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let s = client.store("q");
    let puts: Vec<_> = (0..2000u64).map(|i| s.put(i, i, None)).collect();
    let answers = tokio::time::timeout(T, futures_util::future::join_all(puts))
        .await
        .expect("every put answered");
    for r in answers {
        r.unwrap();
    }
    // The writer is still alive.
    s.put("after", 1u64, None).await.unwrap();
    assert_eq!(s.get(1999u64).await.unwrap(), Data::Count(1999));
    client.shutdown().await;
    ep.shutdown().await;
}

/// The next optimistic-write event of `clone` (other events skipped).
async fn next_write(
    clone: &mut CloneStore,
) -> (Data, Option<Data>, broker_wasm::client::WriteState) {
    loop {
        match tokio::time::timeout(T, clone.next_event())
            .await
            .expect("an event in time")
        {
            Some(CloneEvent::Write { key, value, state }) => return (key, value, state),
            Some(_) => continue,
            None => panic!("the clone ended"),
        }
    }
}

#[tokio::test]
async fn optimistic_writes_of_a_rust_clone_show_at_once_confirm_and_roll_back() {
    use broker_wasm::client::WriteState;
    let (ep, addr) = endpoint_with(|c| c.store_max_value = 64).await;
    ep.attach_master("o", Backend::Memory, Data::None)
        .await
        .unwrap();
    let client = broker_client::Client::connect(&url(addr)).await.unwrap();
    let opts = CloneOptions {
        optimistic: true,
        ..CloneOptions::default()
    };
    let mut clone = client.attach_clone("o", opts);
    clone.synced(T).await.unwrap();
    let master = clone.master();
    let write = tokio::spawn(async move { master.put("k", 1u64, None).await });
    // Pending: in the clone's view before the master answered.
    let (key, value, state) = next_write(&mut clone).await;
    assert_eq!(
        (key, value, state),
        ("k".into(), Some(Data::Count(1)), WriteState::Pending)
    );
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::Count(1)));
    let (_, value, state) = next_write(&mut clone).await;
    assert_eq!(
        (value, state),
        (Some(Data::Count(1)), WriteState::Confirmed)
    );
    write.await.unwrap().unwrap();
    assert!(!clone.is_pending(&"k".into()));
    // Refused by the master: rolled back, the view as before.
    let master = clone.master();
    let big = tokio::spawn(async move { master.put("k", "x".repeat(100).as_str(), None).await });
    let (_, value, state) = next_write(&mut clone).await;
    assert_eq!(state, WriteState::Pending);
    assert!(matches!(value, Some(Data::String(_))));
    let (_, value, state) = next_write(&mut clone).await;
    assert_eq!(value, Some(Data::Count(1)));
    assert!(matches!(state, WriteState::RolledBack(e) if e.code == ErrorCode::InvalidData));
    assert_eq!(big.await.unwrap().unwrap_err().code, ErrorCode::InvalidData);
    assert_eq!(clone.get(&"k".into()).unwrap(), Some(Data::Count(1)));
    client.shutdown().await;
    ep.shutdown().await;
}
