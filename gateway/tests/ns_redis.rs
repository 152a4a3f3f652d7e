//! Namespaces on Redis shared by several gateways (RB-10..16), against a real `redis-server`
//! and a real 3-node Redis Cluster started on free ports by the tests. The DB-xx suites run
//! on Redis too (`namespaces.rs`, `namespaces_ops.rs`, module `redis`).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use broker_client::namespace::{GetOptions, Namespace};
use broker_wasm::dbr::DbrCode;
use broker_wasm::Data;
use common::ns::{client, code, s, NOWAIT};
use common::redis::{free_port, RedisCluster, RedisServer, Scratch};
use common::{endpoint_with, url};
use gateway::Endpoint;

const T: Duration = Duration::from_secs(10);

/// A gateway whose namespaces live at `backend`.
async fn gateway(backend: &str) -> (Endpoint, String) {
    let b = backend.to_owned();
    let (ep, addr) = endpoint_with(move |c| c.ns_backend = Some(b)).await;
    (ep, url(addr))
}

async fn forever(ns: &Namespace, key: &str) -> Data {
    tokio::time::timeout(T, ns.get_with(key, GetOptions::forever()))
        .await
        .expect("served in time")
        .expect("a value")
        .value
}

/// Two gateways on one Redis: a namespace created through A is there for B, a get waiting
/// on B is woken by a put through A, and each value goes to exactly one of the getters on
/// both gateways.
async fn two_gateways_share_one_tuple_space(backend: &str) {
    let (a, url_a) = gateway(backend).await;
    let (b, url_b) = gateway(backend).await;
    let (ca, cb) = (client(&url_a).await, client(&url_b).await);
    let jobs_a = ca.create_namespace("jobs", 0, vec![]).await.unwrap();
    let jobs_b = cb.attach_namespace("jobs").await.unwrap();
    assert_eq!(jobs_b.query().await.unwrap().refcount, 2);

    // A get waiting on B, woken by a put through A.
    let waiting = tokio::spawn({
        let jobs_b = jobs_b.clone();
        async move { forever(&jobs_b, "task").await }
    });
    common::eventually("the get waits on B", || {
        b.probe().namespace_waiters("jobs", "task") == 1
    })
    .await;
    let started = Instant::now();
    jobs_a.put("task", s("build")).await.unwrap();
    assert_eq!(waiting.await.unwrap(), s("build"));
    eprintln!("cross-gateway handoff: {:?}", started.elapsed());

    // Ten getters, five per gateway, twenty values: each value exactly once.
    let mut getters = Vec::new();
    for i in 0..10 {
        let c = client(if i % 2 == 0 { &url_a } else { &url_b }).await;
        let ns = c.attach_namespace("jobs").await.unwrap();
        getters.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..2 {
                got.push(forever(&ns, "many").await);
            }
            drop(c);
            got
        }));
    }
    for i in 0..20u64 {
        let via = if i % 2 == 0 { &jobs_a } else { &jobs_b };
        via.put("many", Data::Count(i)).await.unwrap();
    }
    let mut all = Vec::new();
    for g in getters {
        all.extend(g.await.unwrap());
    }
    let distinct: BTreeSet<Data> = all.iter().cloned().collect();
    assert_eq!(all.len(), 20);
    assert_eq!(distinct, (0..20u64).map(Data::Count).collect());
    assert_eq!(
        code(jobs_a.get_with("many", NOWAIT()).await),
        DbrCode::Unavail
    );

    // FIFO per tuple name, put through A and taken through B.
    for i in 0..100u64 {
        jobs_a.put("fifo", Data::Count(i)).await.unwrap();
    }
    for i in 0..100u64 {
        assert_eq!(jobs_b.get("fifo").await.unwrap(), Data::Count(i));
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn rb10_rb12_two_gateways_share_one_tuple_space_on_redis() {
    let redis = RedisServer::start();
    two_gateways_share_one_tuple_space(&redis.url()).await;
}

#[tokio::test]
async fn rb10_rb12_two_gateways_share_one_tuple_space_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    two_gateways_share_one_tuple_space(&cluster.url()).await;
}

/// RB-11: a namespace's keys carry its escaped name as a hash tag: one slot, no way for a
/// name to reach another namespace's keys.
#[tokio::test]
async fn rb11_key_layout_in_redis() {
    let redis = RedisServer::start();
    let (ep, u) = gateway(&redis.url()).await;
    let c = client(&u).await;
    let ns = c
        .create_namespace("a}b:c", 3, vec!["g1".into()])
        .await
        .unwrap();
    ns.put("x:meta", s("v")).await.unwrap();
    let mut keys: Vec<String> = redis
        .command(&["KEYS", "*"])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "dbr:spaces",
            "dbr:{a%7Db%3Ac}:att",
            "dbr:{a%7Db%3Ac}:meta",
            "dbr:{a%7Db%3Ac}:names",
            "dbr:{a%7Db%3Ac}:t:x%3Ameta",
        ],
        "{}",
        redis.command(&["KEYS", "*"])
    );
    ep.shutdown().await;
}

/// RB-11: a get that may take any value is a plain `LPOP`, which leaves the emptied tuple's
/// name in the names set; directory, iterate and query never show it, and reading the set
/// drops it. A value larger than the reader's buffer still stays (DB-13, the script).
#[tokio::test]
async fn rb11_names_of_tuples_emptied_by_a_plain_pop_do_not_show() {
    let redis = RedisServer::start();
    let (ep, u) = gateway(&redis.url()).await;
    let c = client(&u).await;
    let ns = c.create_namespace("pops", 0, vec![]).await.unwrap();
    for k in ["a", "b", "c"] {
        ns.put(k, s("value")).await.unwrap();
    }
    ns.put("b", s("second")).await.unwrap();
    assert_eq!(ns.get_with("a", NOWAIT()).await.unwrap().value, s("value"));
    assert_eq!(ns.get_with("b", NOWAIT()).await.unwrap().value, s("value"));
    // The raw set still names "a" (popped empty without a script).
    let members = redis.command(&["SMEMBERS", "dbr:{pops}:names"]);
    assert!(members.lines().any(|l| l == "a"), "{members}");
    assert_eq!(ns.directory("*", 100).await.unwrap(), vec!["b", "c"]);
    let q = ns.query().await.unwrap();
    assert_eq!((q.tuple_names, q.total_values), (2, 2));
    let members = redis.command(&["SMEMBERS", "dbr:{pops}:names"]);
    assert!(!members.lines().any(|l| l == "a"), "{members}");
    // A new value of an emptied tuple is listed again; a too-small buffer does not take it.
    ns.put("a", s("again")).await.unwrap();
    let small = GetOptions {
        capacity: Some(2),
        ..NOWAIT()
    };
    assert_eq!(code(ns.get_with("a", small).await), DbrCode::UBuffer);
    assert_eq!(ns.directory("*", 100).await.unwrap(), vec!["a", "b", "c"]);
    assert_eq!(ns.get_with("a", NOWAIT()).await.unwrap().value, s("again"));
    ep.shutdown().await;
}

/// `rediss://` (TLS) with the Redis server's certificate authority from `--ns-backend-ca`;
/// without it the certificate is refused with a typed error, within the timeout; a CA with a
/// plain `redis://` URL is a configuration error.
#[tokio::test]
async fn rb10_rediss_with_the_servers_ca() {
    let certs = Scratch::new("redis-tls");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (crt, key) = (certs.0.join("redis.crt"), certs.0.join("redis.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&key, signing_key.serialize_pem()).unwrap();
    let tls_port = free_port(false).to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        crt.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
    ]);
    let tls_url = format!("rediss://127.0.0.1:{tls_port}");

    let (backend, ca) = (tls_url.clone(), crt.clone());
    let (ep, u) = endpoint_with(move |c| {
        c.ns_backend = Some(backend);
        c.ns_backend_ca = Some(ca);
    })
    .await;
    let c = client(&url(u)).await;
    let ns = c.create_namespace("secure", 0, vec![]).await.unwrap();
    ns.put("k", s("over tls")).await.unwrap();
    // It is in this Redis (seen through the harness's plain port).
    assert_eq!(redis.command(&["LLEN", "dbr:{secure}:t:k"]).trim(), "1");
    assert_eq!(
        ns.get_with("k", NOWAIT()).await.unwrap().value,
        s("over tls")
    );

    // Without the CA the system's roots do not know this certificate.
    let (ep2, u2) = gateway(&tls_url).await;
    let c2 = client(&u2).await;
    let refused = tokio::time::timeout(Duration::from_secs(15), c2.attach_namespace("secure"))
        .await
        .expect("answered within the timeout");
    assert_eq!(code(refused), DbrCode::NoConnect);

    let mut config = gateway::Config::embedded();
    config.ns_backend = Some(redis.url());
    config.ns_backend_ca = Some(crt);
    let err = Endpoint::try_new(config).expect_err("a CA needs rediss://");
    assert!(err.to_string().contains("rediss://"), "{err}");
    ep.shutdown().await;
    ep2.shutdown().await;
}

/// RB-14: attachments recorded for a gateway whose lease ran out (it crashed) do not count;
/// a marked namespace goes once the live ones detach.
#[tokio::test]
async fn rb14_attachments_of_a_crashed_gateway_do_not_pin_the_count() {
    let redis = RedisServer::start();
    let (ep, u) = gateway(&redis.url()).await;
    let c = client(&u).await;
    let ns = c.create_namespace("leased", 0, vec![]).await.unwrap();
    // A gateway that died holding three attachments, its lease over (expiry 1 ms).
    redis.command(&["HSET", "dbr:{leased}:att", "dead-gateway", "3:1"]);
    // And one still alive (expiry far ahead) would count.
    assert_eq!(ns.query().await.unwrap().refcount, 1);
    ns.delete().await.unwrap();
    assert_eq!(
        code(c.attach_namespace("leased").await),
        DbrCode::Unavail,
        "deleted at the last live detach"
    );
    assert_eq!(redis.command(&["EXISTS", "dbr:{leased}:meta"]).trim(), "0");
    ep.shutdown().await;
}

/// RB-15: with Redis gone, requests fail with a code within their timeout (none hangs);
/// once it is back, the gateway works again by itself.
#[tokio::test]
async fn rb15_redis_down_fails_typed_and_comes_back() {
    let mut redis = RedisServer::start();
    let (ep, u) = gateway(&redis.url()).await;
    // Before any namespace is used, /metrics says where they live and that Redis answers.
    common::eventually("backend up at start", || {
        backend_up(&ep) == (redis.url(), 1)
    })
    .await;
    let c = client(&u).await;
    let ns = c.create_namespace("flaky", 0, vec![]).await.unwrap();
    ns.put("k", s("before")).await.unwrap();
    redis.kill();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(15), ns.put("k", s("during")))
        .await
        .expect("no hang")
        .expect_err("Redis is down");
    assert!(
        matches!(err.code, DbrCode::NoConnect | DbrCode::BeGeneral),
        "{err:?}"
    );
    eprintln!("failed after {:?}: {err:?}", started.elapsed());
    assert_eq!(backend_up(&ep), (redis.url(), 0));
    redis.restart();
    // The data of a killed Redis without persistence is gone; the namespace must be made
    // again, and the gateway reconnects by itself.
    let mut again = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match c.create_namespace("flaky2", 0, vec![]).await {
            Ok(n) => {
                again = Some(n);
                break;
            }
            Err(e) => assert!(
                matches!(e.code, DbrCode::NoConnect | DbrCode::BeGeneral),
                "{e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("the gateway works again after Redis is back");
    again.put("k", s("after")).await.unwrap();
    assert_eq!(again.get("k").await.unwrap(), s("after"));
    assert_eq!(backend_up(&ep), (redis.url(), 1));
    ep.shutdown().await;
}

/// The address and state of `broker_ns_backend_up{backend="redis",address=...}`.
fn backend_up(ep: &Endpoint) -> (String, u64) {
    let text = ep.metrics_text();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("broker_ns_backend_up{backend=\"redis\",address=\""))
        .unwrap_or_else(|| panic!("no redis backend in\n{text}"));
    let (address, value) = line.split_once("\"} ").expect("address and value");
    (address.to_owned(), value.parse().expect("a number"))
}

/// RB-13: a move between namespaces in different slots of a cluster (two scripts on two
/// nodes) moves every value in order; a move whose gateway died after taking the values out
/// of the source is finished by the next gateway that attaches the source.
#[tokio::test]
async fn rb13_move_across_slots_loses_nothing() {
    let cluster = RedisCluster::start(3);
    let (ep, u) = gateway(&cluster.url()).await;
    // Two namespaces on different nodes.
    let (src_name, dst_name) = ("from", "to-1");
    assert_ne!(
        cluster.port_for_key(&format!("dbr:{{{src_name}}}:meta")),
        cluster.port_for_key(&format!("dbr:{{{dst_name}}}:meta")),
        "pick names on different nodes"
    );
    let c = client(&u).await;
    let src = c.create_namespace(src_name, 0, vec![]).await.unwrap();
    let dst = c.create_namespace(dst_name, 0, vec![]).await.unwrap();
    for i in 0..100u64 {
        src.put("q", Data::Count(i)).await.unwrap();
    }
    src.move_to("q", &dst).await.unwrap();
    assert_eq!(code(src.get_with("q", NOWAIT()).await), DbrCode::Unavail);
    for i in 0..100u64 {
        assert_eq!(dst.get("q").await.unwrap(), Data::Count(i));
    }
    let journal_port = cluster.port_for_key("dbr:{from}:journal");
    let node = cluster
        .nodes()
        .iter()
        .find(|n| n.port() == journal_port)
        .unwrap();
    assert_eq!(node.command(&["HLEN", "dbr:{from}:journal"]).trim(), "0");

    // A gateway died after step 1: the values sit in the source's journal, recorded 60 s ago.
    src.put("lost", s("one")).await.unwrap();
    src.put("lost", s("two")).await.unwrap();
    let stored: Vec<String> = node
        .command(&["LRANGE", "dbr:{from}:t:lost", "0", "-1"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(stored.len(), 2);
    node.command(&["RENAME", "dbr:{from}:t:lost", "dbr:{from}:moving:m1"]);
    node.command(&["SREM", "dbr:{from}:names", "lost"]);
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 60_000;
    node.command(&[
        "HSET",
        "dbr:{from}:journal",
        "m1",
        &format!("{dst_name}\u{1f}lost\u{1f}{old}"),
    ]);
    // The next attach of the source finishes the move.
    let other = client(&u).await;
    let _again = other.attach_namespace(src_name).await.unwrap();
    assert_eq!(forever(&dst, "lost").await, s("one"));
    assert_eq!(forever(&dst, "lost").await, s("two"));
    common::eventually("the journal entry is gone", || {
        node.command(&["HLEN", "dbr:{from}:journal"]).trim() == "0"
    })
    .await;
    ep.shutdown().await;
}

/// RB-15 under load: four clients put without pause while Redis (with an fsync'ed append
/// log) is killed and started again. Every put answers within its timeout, with success or a
/// code; every acknowledged value is there afterwards.
#[tokio::test]
async fn rb15_redis_restarted_under_load_loses_no_acknowledged_put() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let (ep, u) = gateway(&redis.url()).await;
    let owner = client(&u).await;
    owner.create_namespace("load", 0, vec![]).await.unwrap();
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (acks, fails) = (
        std::sync::Arc::new(AtomicU64::new(0)),
        std::sync::Arc::new(AtomicU64::new(0)),
    );
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let c = client(&u).await;
        let ns = c.attach_namespace("load").await.unwrap();
        let (stop, acks, fails) = (stop.clone(), acks.clone(), fails.clone());
        writers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0u64);
            let mut i = 0u64;
            while !stop.load(Relaxed) {
                let put = ns.put(format!("w{w}"), Data::Count(i));
                match tokio::time::timeout(Duration::from_secs(10), put).await {
                    Ok(Ok(())) => {
                        acked.push(i);
                        acks.fetch_add(1, Relaxed);
                    }
                    Ok(Err(e)) => {
                        assert!(
                            matches!(e.code, DbrCode::NoConnect | DbrCode::BeGeneral),
                            "{e:?}"
                        );
                        failed += 1;
                        fails.fetch_add(1, Relaxed);
                        // Redis is away: do not spin.
                        tokio::task::yield_now().await;
                    }
                    Err(_) => panic!("a put hung past its timeout"),
                }
                i += 1;
            }
            (c, ns, acked, failed)
        }));
    }
    // Puts go through; Redis goes away (puts fail with a code); Redis is back (puts go
    // through again).
    common::eventually("100 puts", || acks.load(Relaxed) >= 100).await;
    redis.kill();
    common::eventually("puts failing", || fails.load(Relaxed) >= 1).await;
    redis.restart();
    let before = acks.load(Relaxed);
    common::eventually("100 puts after the restart", || {
        acks.load(Relaxed) >= before + 100
    })
    .await;
    stop.store(true, Relaxed);
    let mut total_failed = 0;
    for (w, writer) in writers.into_iter().enumerate() {
        let (_c, ns, acked, failed) = writer.await.unwrap();
        total_failed += failed;
        assert!(!acked.is_empty(), "writer {w} got puts through");
        // Everything acknowledged is there, in order (a put applied whose answer was lost
        // may be there too).
        let mut present = Vec::new();
        while let Ok(t) = ns.get_with(format!("w{w}"), NOWAIT()).await {
            let Data::Count(i) = t.value else {
                panic!("{t:?}")
            };
            present.push(i);
        }
        let present_set: BTreeSet<u64> = present.iter().copied().collect();
        for i in &acked {
            assert!(
                present_set.contains(i),
                "writer {w}: acknowledged put {i} lost"
            );
        }
        assert!(present.windows(2).all(|p| p[0] < p[1]), "writer {w}: order");
    }
    eprintln!("puts that failed with a code while Redis was away: {total_failed}");
    ep.shutdown().await;
}
