//! Faults around client connections, against the gateway binary: clients that vanish without
//! a Close frame (dropped sockets, a killed client process) and clients that send half a
//! frame and stall. The gateway frees their connections (the connection gauges and the
//! per-address limit show it) and serves everyone else meanwhile.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker_client::Client;
use broker_wasm::protocol::{ClientMsg, Encoding, Hello};
use broker_wasm::Data;
use e2e::{raw, Gateway};

const T: Duration = Duration::from_secs(10);

/// A raw native connection that said hello; the welcome is read unless `read_welcome` is
/// false (closing a socket with unread data makes the kernel send a reset, not a FIN).
fn native_raw(addr: SocketAddr, read_welcome: bool) -> TcpStream {
    let mut s = raw::connect(addr, "/v1/broker", Some("broker.v1.bin"));
    let hello = Encoding::Binary
        .encode(&[ClientMsg::Hello(Hello {
            client: "raw".into(),
            token: None,
            statuses: false,
        })])
        .unwrap();
    raw::send(&mut s, 2, &hello).unwrap();
    if read_welcome {
        let (opcode, _) = raw::recv(&mut s).expect("welcome");
        assert_eq!(opcode, 2, "a binary frame");
    }
    s
}

/// A raw Zeek JSON API connection that completed its handshake.
fn zeek_raw(addr: SocketAddr) -> TcpStream {
    let mut s = raw::connect(addr, broker_wasm::zeek_json::PATH, None);
    raw::send(&mut s, 1, br#"["/zeek/faults"]"#).unwrap();
    let (opcode, ack) = raw::recv(&mut s).expect("ack");
    assert_eq!(opcode, 1);
    assert!(String::from_utf8_lossy(&ack).contains("ack"), "{ack:?}");
    s
}

/// Publishes on `from` until `sub` receives it: the gateway still routes between them.
async fn still_routes(from: &Client, sub: &mut broker_client::Subscriber, n: u64) {
    from.publish("/faults/x", Data::Count(n)).await.unwrap();
    let (topic, data) = sub.get_timeout(T).await.unwrap().expect("delivered");
    assert_eq!((topic.as_str(), data), ("/faults/x", Data::Count(n)));
}

/// Kills the child process when dropped (also when the test fails).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Not a test on its own: the client process that
/// `clients_vanishing_without_close_are_freed` starts and kills.
#[test]
#[ignore = "a client process for clients_vanishing_without_close_are_freed"]
fn client_process() {
    let Ok(addr) = std::env::var("E2E_CLIENT_OF") else {
        return;
    };
    let _conn = native_raw(addr.parse().unwrap(), true);
    println!("ready");
    std::io::stdout().flush().unwrap();
    // Idle until killed.
    loop {
        std::thread::park();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_without_close_are_freed() {
    let gw = Gateway::start(&["--max-connections-per-address", "8"]);
    let url = format!("ws://{}", gw.addr);
    let a = Client::connect(&url).await.unwrap();
    let b = Client::connect(&url).await.unwrap();
    let mut sub = a.make_subscriber(["/faults"]);
    a.flush().await.unwrap();

    // Six more connections reach the limit of eight from this address.
    let mut raws: Vec<TcpStream> = (0..5).map(|i| native_raw(gw.addr, i % 2 == 0)).collect();
    raws.push(zeek_raw(gw.addr));
    gw.wait_metric("connections_native", T, |n| n == 7);
    assert_eq!(gw.metric("connections_zeek"), 1);
    assert!(
        raw::try_connect(gw.addr, "/v1/broker", None)
            .unwrap()
            .is_none(),
        "the per-address limit holds"
    );

    // They vanish: no Close frame, the sockets just close (FIN, or a reset for those with
    // unread data).
    drop(raws);
    gw.wait_metric("connections_native", T, |n| n == 2);
    gw.wait_metric("connections_zeek", T, |n| n == 0);
    still_routes(&b, &mut sub, 1).await;

    // A client process killed with SIGKILL.
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "client_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("E2E_CLIENT_OF", gw.addr.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = child.0.stdout.take().unwrap();
    assert!(
        raw::wait_line(out, "ready", T),
        "the client process connected within {T:?}"
    );
    assert_eq!(gw.metric("connections_native"), 3);
    drop(child); // SIGKILL
    gw.wait_metric("connections_native", T, |n| n == 2);

    // Every slot is free again: six new connections are admitted, a seventh is not.
    let again: Vec<TcpStream> = (0..6).map(|_| native_raw(gw.addr, true)).collect();
    assert!(raw::try_connect(gw.addr, "/v1/broker", None)
        .unwrap()
        .is_none());
    assert_eq!(gw.metric("connections_native"), 8);
    drop(again);
    gw.wait_metric("connections_native", T, |n| n == 2);
    still_routes(&b, &mut sub, 2).await;
    assert_eq!(gw.metric("connections_rejected_total"), 2);
    a.shutdown().await;
    b.shutdown().await;
    assert!(gw.terminate());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_frame_then_silence_is_closed_by_the_idle_timeout() {
    let gw = Gateway::start(&["--ping-interval", "0.2", "--idle-timeout", "1"]);
    let url = format!("ws://{}", gw.addr);
    let a = Client::connect(&url).await.unwrap();
    let b = Client::connect(&url).await.unwrap();
    let mut sub = a.make_subscriber(["/faults"]);
    a.flush().await.unwrap();

    // A native client and a Zeek API client each announce a 1,000-byte frame, send ten
    // bytes of it and stall (they neither send nor read any more).
    let mut native = native_raw(gw.addr, true);
    let mut zeek = zeek_raw(gw.addr);
    for (s, opcode) in [(&mut native, 2), (&mut zeek, 1)] {
        s.write_all(&raw::frame_header(opcode, 1000)).unwrap();
        s.write_all(&[b' '; 10]).unwrap();
    }
    // A third one goes silent between frames (a client whose host vanished).
    let mut silent = native_raw(gw.addr, true);
    assert_eq!(gw.metric("connections_native"), 4);

    // The gateway is not stuck on them: the others are served meanwhile.
    still_routes(&b, &mut sub, 1).await;

    // Each is closed within the idle timeout (plus slack for a loaded machine).
    let closed = tokio::task::spawn_blocking(move || {
        [&mut native, &mut zeek, &mut silent]
            .map(|s| raw::closed_within(s, Duration::from_secs(15)))
    })
    .await
    .unwrap();
    assert_eq!(
        closed, [true; 3],
        "native, zeek, silent closed by the gateway"
    );
    gw.wait_metric("connections_native", T, |n| n == 2);
    gw.wait_metric("connections_zeek", T, |n| n == 0);
    assert_eq!(gw.metric("idle_disconnects_total"), 3);

    // Well-behaved clients answer the pings: idle for several timeouts, they stay.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(gw.metric("connections_native"), 2);
    assert_eq!(gw.metric("idle_disconnects_total"), 3);
    still_routes(&b, &mut sub, 2).await;
    a.shutdown().await;
    b.shutdown().await;
    assert!(gw.terminate());
}
