//! RB-16: the harness that runs real Redis for the tests (`common/redis.rs`), tested itself:
//! a single `redis-server` on a free port that restarts on the same port, and a real 3-node
//! Redis Cluster joined with `redis-cli --cluster create`. Needs `redis-server` and
//! `redis-cli` (`scripts/ensure-tools.sh` installs them).

mod common;

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::redis::{self, RedisCluster, RedisServer, Reply};

/// Whether a process with this id exists (a reaped child does not).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn rb16_single_server_starts_answers_and_restarts_on_its_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(server.command(&["PING"]), "PONG");
    assert_eq!(server.command(&["SET", "k", "v 1\r\n"]), "OK");
    assert_eq!(server.command(&["GET", "k"]), "v 1\r\n");
    assert_eq!(
        server.query(&["GET", "missing"]).unwrap(),
        Reply::Bulk(None)
    );
    assert_eq!(server.command(&["RPUSH", "l", "a", "b"]), "2");
    assert_eq!(
        server.query(&["LRANGE", "l", "0", "-1"]).unwrap(),
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"a".to_vec())),
            Reply::Bulk(Some(b"b".to_vec()))
        ]))
    );
    // An error reply is a value of `query`, not an I/O error.
    assert!(matches!(
        server.query(&["LPOP", "k"]).unwrap(),
        Reply::Error(e) if e.starts_with("WRONGTYPE")
    ));
    // No persistence.
    assert_eq!(server.command(&["CONFIG", "GET", "save"]), "save\n");
    assert_eq!(
        server.command(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nno"
    );
    assert_eq!(
        server.command(&["CONFIG", "GET", "bind"]),
        "bind\n127.0.0.1"
    );

    let first_pid = server.pid().unwrap();
    server.restart();
    assert_eq!(server.port(), port, "restart keeps the port");
    assert_ne!(
        server.pid().unwrap(),
        first_pid,
        "restart runs a new process"
    );
    assert!(!process_exists(first_pid), "the old process is gone");
    assert_eq!(server.command(&["PING"]), "PONG");
    assert_eq!(
        server.query(&["GET", "k"]).unwrap(),
        Reply::Bulk(None),
        "the data is gone"
    );

    // A clean stop: nothing listens any more, then it comes back on the same port.
    let pid = server.pid().unwrap();
    server.stop();
    assert!(!server.is_running());
    assert!(!process_exists(pid));
    assert!(server.query(&["PING"]).is_err(), "a stopped server answers");
    assert!(server.log().contains("ready to exit"), "{}", server.log());
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["PING"]), "PONG");
    server.stop();
    server.stop(); // twice is fine
}

#[test]
fn rb16_killed_and_frozen_servers_behave_like_crashed_and_hung_ones() {
    let mut server = RedisServer::start();
    let port = server.port();

    // A crash: connections are refused until the restart.
    let pid = server.pid().unwrap();
    server.kill();
    assert!(!process_exists(pid));
    let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    server.restart();
    assert_eq!(server.command(&["SET", "k", "1"]), "OK");

    // A hang: the connection opens but nothing answers until it is thawed.
    server.freeze();
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(&redis::encode(&["GET", "k"])).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let err = redis::read_reply(&mut reader).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    server.thaw();
    stream.set_read_timeout(Some(redis::IO_TIMEOUT)).unwrap();
    assert_eq!(
        redis::read_reply(&mut reader).unwrap(),
        Reply::Bulk(Some(b"1".to_vec())),
        "the request sent while frozen is answered after the thaw"
    );
}

#[test]
fn rb16_restart_waits_while_its_port_is_taken() {
    let mut server = RedisServer::start();
    let port = server.port();
    server.kill();
    // Someone else holds the port for a moment; the restart keeps trying until it is free.
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(squatter);
    });
    let started = std::time::Instant::now();
    server.restart();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it did not wait"
    );
    release.join().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["PING"]), "PONG");

    // A frozen server still stops cleanly.
    server.freeze();
    let pid = server.pid().unwrap();
    let started = std::time::Instant::now();
    server.stop();
    assert!(!process_exists(pid));
    assert!(
        started.elapsed() < redis::IO_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn rb16_server_is_killed_when_the_test_panics() {
    let result = std::panic::catch_unwind(|| {
        let server = RedisServer::start();
        let pid = server.pid().unwrap();
        let port = server.port();
        assert_eq!(server.command(&["PING"]), "PONG");
        std::panic::panic_any((pid, port));
    });
    let (pid, port) = *result
        .unwrap_err()
        .downcast::<(u32, u16)>()
        .expect("the panic carries the pid");
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived the panic"
    );
    assert!(redis::query(port, &["PING"]).is_err());
}

#[test]
fn rb16_free_ports_leave_room_for_the_cluster_bus() {
    let ports: Vec<u16> = (0..20).map(|_| redis::free_port(true)).collect();
    for p in &ports {
        assert!(*p < 55536, "{p} + 10000 is no port");
        assert!(!ports.contains(&(p + 10000)));
    }
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
}

#[test]
fn rb16_three_node_cluster_is_ok_and_hash_tags_share_a_slot() {
    let cluster = RedisCluster::start(3);
    let ports = cluster.ports();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        cluster.url(),
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        )
    );

    for node in cluster.nodes() {
        assert_eq!(node.command(&["PING"]), "PONG");
        let info = node.command(&["CLUSTER", "INFO"]);
        assert_eq!(
            redis::info_field(&info, "cluster_state").as_deref(),
            Some("ok")
        );
        assert_eq!(
            redis::info_field(&info, "cluster_known_nodes").as_deref(),
            Some("3")
        );
        assert_eq!(node.command(&["CLUSTER", "NODES"]).lines().count(), 3);
        assert!(node
            .command(&["CONFIG", "GET", "cluster-node-timeout"])
            .ends_with("\n5000"));
    }

    // Keys sharing a {tag} share a slot (RB-06, RB-11); without the tag they need not.
    let slot = |key: &str| cluster.node(0).command(&["CLUSTER", "KEYSLOT", key]);
    assert_eq!(slot("dbr:{ns1}:meta"), slot("dbr:{ns1}:t:name"));
    assert_eq!(slot("dbr:{ns1}:meta"), slot("ns1"));
    assert_ne!(slot("dbr:{ns1}:meta"), slot("dbr:{ns2}:meta"));

    // Every node owns slots: the owner takes a write, the others redirect with MOVED.
    let mut owners = Vec::new();
    for i in 0..100 {
        let key = format!("{{ns{i}}}:k");
        let owner = cluster.port_for_key(&key);
        owners.push(owner);
        for &p in &ports {
            let reply = redis::query(p, &["SET", &key, "v"]).unwrap();
            if p == owner {
                assert_eq!(reply, Reply::Simple("OK".into()));
            } else {
                assert!(
                    matches!(&reply, Reply::Error(e) if e.starts_with("MOVED ")
                        && e.ends_with(&format!("127.0.0.1:{owner}"))),
                    "{reply:?}"
                );
            }
        }
    }
    for p in &ports {
        assert!(owners.contains(p), "node {p} owns none of 100 keys' slots");
    }
}

#[test]
fn rb16_cluster_node_restarts_on_its_port_and_rejoins() {
    let mut cluster = RedisCluster::start(3);
    let port = cluster.node(1).port();
    let key = (0..)
        .map(|i| format!("{{t{i}}}"))
        .find(|k| cluster.port_for_key(k) == port)
        .unwrap();
    assert_eq!(redis::command(port, &["SET", &key, "v"]), "OK");

    let old_pid = cluster.node(1).pid().unwrap();
    cluster.node_mut(1).restart();
    assert!(!process_exists(old_pid));
    assert_eq!(cluster.node(1).port(), port);
    cluster.wait_until_ok();
    assert_eq!(cluster.port_for_key(&key), port, "the node keeps its slots");
    assert_eq!(
        redis::query(port, &["GET", &key]).unwrap(),
        Reply::Bulk(None),
        "without its data"
    );
    let pids: Vec<u32> = cluster.nodes().iter().map(|n| n.pid().unwrap()).collect();
    drop(cluster);
    for pid in pids {
        assert!(
            !process_exists(pid),
            "redis-server {pid} outlived the cluster"
        );
    }
}
