//! End-to-end test harness: starts the real `broker-gateway` binary on 127.0.0.1:0, reads the
//! bound address it prints, and kills it when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let bin = gateway_bin();
        assert!(
            bin.exists(),
            "{} not found: build it with `cargo build -p gateway` (scripts/test.sh does)",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn broker-gateway");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the address line");
        let addr = line
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line from broker-gateway: {line:?}")
            });
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

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        #[cfg(unix)]
        {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        }
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
