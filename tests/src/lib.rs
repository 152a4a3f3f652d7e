//! End-to-end test harness: starts the real `broker-gateway` binary on 127.0.0.1:0, reads the
//! bound address it prints, and kills it when dropped (also when a test panics: the panic
//! unwinds through the drop). Every wait here has a deadline.

pub mod zeek_double;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a gateway may take to print its address, and to exit after SIGTERM.
pub const START_WITHIN: Duration = Duration::from_secs(30);
pub const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// Waits up to `within` for `child` to exit; `None` if it is still running.
pub fn wait_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` to completion with its output captured, like `Command::output`, but kills it
/// and panics if it is still running after `within`.
pub fn output_within(cmd: &mut Command, within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let Some(status) = wait_within(&mut child, within) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} still running after {within:?}: killed");
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Path of the gateway binary: `$BROKER_GATEWAY_BIN`, else `target/debug/broker-gateway` of
/// this workspace (`scripts/test.sh` builds it first).
pub fn gateway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BROKER_GATEWAY_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/broker-gateway")
}

/// A running gateway process.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
}

impl Gateway {
    /// Starts the gateway on 127.0.0.1:0 with extra flags and waits for its address line.
    pub fn start(args: &[&str]) -> Gateway {
        Gateway::start_on("127.0.0.1:0", args)
    }

    /// Starts the gateway listening on `listen` (e.g. the address of a gateway that was
    /// killed, to restart it on the same port) with extra flags.
    pub fn start_on(listen: &str, args: &[&str]) -> Gateway {
        let bin = gateway_bin();
        assert!(
            bin.exists(),
            "{} not found: build it with `cargo build -p gateway` (scripts/test.sh does)",
            bin.display()
        );
        // BROKER_TEST_LOG (e.g. `gateway=debug,warn`) shows the gateways' logs of a test.
        let mut child = Command::new(&bin)
            .args([
                "--listen",
                listen,
                "--log-level",
                &std::env::var("BROKER_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn broker-gateway");
        // Read the address line on a thread, so a gateway that hangs before printing it
        // cannot hang the test; on any failure the process is killed before the panic.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        let line = match rx.recv_timeout(START_WITHIN) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no address line from broker-gateway within {START_WITHIN:?}: {other:?}")
            }
        };
        let addr = line
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line from broker-gateway: {line:?}")
        };
        Gateway { child, addr }
    }

    /// A plain HTTP/1.1 GET: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("read response");
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("bad response: {head}"));
        (status, body.to_owned())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The value of `broker_<name>` in `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("broker_{name} ")))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .parse()
            .unwrap()
    }

    /// Polls `broker_<name>` until `cond` holds; panics after `within`.
    pub fn wait_metric(&self, name: &str, within: Duration, cond: impl Fn(u64) -> bool) -> u64 {
        let deadline = std::time::Instant::now() + within;
        loop {
            let v = self.metric(name);
            if cond(v) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "broker_{name} stayed at {v} for {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    /// A process still running after 10 s is killed (and counts as unclean).
    pub fn terminate(mut self) -> bool {
        #[cfg(unix)]
        {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        match wait_within(&mut self.child, EXIT_WITHIN) {
            Some(status) => status.success(),
            None => false, // killed by the drop
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare WebSocket client over a blocking `TcpStream`, for behaviour no well-behaved library
/// produces: vanishing without a Close frame, half a frame, silence.
pub mod raw {
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    /// Opens a WebSocket to `path` (offering `subprotocol`); panics unless the gateway answers
    /// 101. The handshake's response is consumed, nothing more.
    pub fn connect(addr: SocketAddr, path: &str, subprotocol: Option<&str>) -> TcpStream {
        let s = try_connect(addr, path, subprotocol).expect("connect");
        s.expect("HTTP 101")
    }

    /// Like [`connect`]; `Ok(None)` if the gateway refused the upgrade (e.g. 503).
    pub fn try_connect(
        addr: SocketAddr,
        path: &str,
        subprotocol: Option<&str>,
    ) -> io::Result<Option<TcpStream>> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        let proto = subprotocol
            .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{proto}\r\n"
        )?;
        // Read the response head byte by byte so nothing after it is consumed.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        Ok(head.starts_with("HTTP/1.1 101").then_some(s))
    }

    /// The header of a masked client frame (FIN set) announcing `len` payload bytes.
    pub fn frame_header(opcode: u8, len: usize) -> Vec<u8> {
        let mut h = vec![0x80 | opcode];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&(len as u64).to_be_bytes());
        }
        h.extend_from_slice(&[0, 0, 0, 0]); // mask key 0: the payload goes as is
        h
    }

    /// Sends one complete masked frame (opcode 2 = binary, 1 = text).
    pub fn send(s: &mut TcpStream, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut f = frame_header(opcode, payload.len());
        f.extend_from_slice(payload);
        s.write_all(&f)
    }

    /// Reads one server frame: (opcode, payload).
    pub fn recv(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        s.read_exact(&mut h)?;
        let len = match h[1] & 0x7F {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b)?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                s.read_exact(&mut b)?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload)?;
        Ok((h[0] & 0x0F, payload))
    }

    /// Reads (and discards) until the gateway ends the connection; true if it did within
    /// `within`, false on timeout.
    pub fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Reads a line-oriented stream until a line ending in `want` (e.g. a child test's
    /// "ready", printed after libtest's `test name ... `); false at its end or once `within`
    /// passed (the reading thread then ends with the stream, e.g. when its process is killed).
    pub fn wait_line(r: impl Read + Send + 'static, want: &str, within: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let want = want.to_owned();
        std::thread::spawn(move || {
            let found = BufReader::new(r)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.trim_end().ends_with(&want));
            let _ = tx.send(found);
        });
        rx.recv_timeout(within).unwrap_or(false)
    }
}
