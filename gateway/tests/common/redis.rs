//! Real Redis servers for tests (RB-16): a single `redis-server` or a Redis Cluster of real
//! `redis-server --cluster-enabled yes` processes, each on a free port of 127.0.0.1, in a
//! scratch directory of its own, without persistence. Nothing here is a mock.
//!
//! Every process is killed and reaped when its owner is dropped, so also when a test fails
//! or panics (unwinding runs `Drop`). A test process that is itself killed with SIGKILL
//! cannot clean up; `pgrep -a redis-server` shows what such a run left behind.
//!
//! The binaries are `$REDIS_SERVER_BIN` and `$REDIS_CLI_BIN`, else `redis-server` and
//! `redis-cli` on `PATH` (`scripts/ensure-tools.sh` installs Debian's). The harness talks to
//! Redis over plain `std::net::TcpStream` RESP ([`query`], [`command`]), so the tests need no
//! Redis client crate.
//!
//! Free ports: the kernel picks one (bind 127.0.0.1:0, read the port, close the listener),
//! which leaves a short window in which another process can take it. A server that then fails
//! with "Address already in use" is started again on a new port, and the harness only
//! accepts a server whose `INFO` names the process it started, so a stranger on the port is
//! never mistaken for ours. Ports handed out stay reserved inside the test process, so two
//! tests of one binary never race each other for a port.
//!
//! Every wait has a deadline and polls; none sleeps a fixed time.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a server may take to answer after it was spawned (also after a restart).
pub const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long forming a cluster may take, from the first spawn to `cluster_state:ok` on all.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// Connect, read and write timeout of one RESP exchange.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The cluster node timeout the nodes are started with (milliseconds).
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 5000;
/// Redis Cluster's bus port is the client port plus this.
const BUS_OFFSET: u16 = 10000;
const POLL: Duration = Duration::from_millis(10);
/// Fresh ports tried before giving up on "Address already in use".
const PORT_ATTEMPTS: usize = 20;

// ---------------------------------------------------------------------------------------
// Binaries

/// `$REDIS_SERVER_BIN`, else `redis-server` on `PATH`; panics with a hint when missing.
pub fn redis_server_bin() -> PathBuf {
    find_bin("REDIS_SERVER_BIN", "redis-server")
}

/// `$REDIS_CLI_BIN`, else `redis-cli` on `PATH`; panics with a hint when missing.
pub fn redis_cli_bin() -> PathBuf {
    find_bin("REDIS_CLI_BIN", "redis-cli")
}

fn find_bin(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{var}={} is not a file (unset it to use `{name}` from PATH; \
             scripts/ensure-tools.sh installs Debian's redis-server and redis-cli)",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "`{name}` not found on PATH and {var} is not set: the Redis tests run a real \
         redis-server; scripts/ensure-tools.sh installs Debian's redis-server (with redis-cli)"
    );
}

// ---------------------------------------------------------------------------------------
// Ports

/// Ports (and cluster bus ports) handed out in this test process.
static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn reserved() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    RESERVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port of 127.0.0.1 that was free a moment ago and is not handed out in this process.
/// With `bus`, `port + 10000` was free too (Redis Cluster's bus port), so `port < 55536`.
pub fn free_port(bus: bool) -> u16 {
    for _ in 0..10_000 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        let mut taken = reserved();
        if taken.contains(&port) {
            continue;
        }
        if bus {
            let Some(bus_port) = port.checked_add(BUS_OFFSET) else {
                continue;
            };
            if taken.contains(&bus_port)
                || TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port)).is_err()
            {
                continue;
            }
            taken.insert(bus_port);
        }
        taken.insert(port);
        return port;
    }
    panic!("found no free port on 127.0.0.1 (bus port too: {bus})");
}

fn release_port(port: u16, bus: bool) {
    let mut taken = reserved();
    taken.remove(&port);
    if bus {
        taken.remove(&(port + BUS_OFFSET));
    }
}

// ---------------------------------------------------------------------------------------
// RESP over a plain TcpStream

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl fmt::Display for Reply {
    /// Like `redis-cli --no-raw` without the decoration: strings as they are, nil as
    /// `(nil)`, array elements one a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Simple(s) | Reply::Error(s) => f.write_str(s),
            Reply::Int(n) => write!(f, "{n}"),
            Reply::Bulk(Some(b)) => f.write_str(&String::from_utf8_lossy(b)),
            Reply::Bulk(None) | Reply::Array(None) => f.write_str("(nil)"),
            Reply::Array(Some(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}

/// Sends one command to `127.0.0.1:port` on a fresh connection and reads its reply (an
/// error reply is `Ok(Reply::Error(..))`; I/O failures and timeouts are `Err`).
pub fn query(port: u16, args: &[&str]) -> io::Result<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    stream.write_all(&encode(args))?;
    read_reply(&mut BufReader::new(stream))
}

/// [`query`] for commands that must succeed: panics on I/O failures and error replies, and
/// returns the reply as text (see [`Reply`]'s `Display`).
pub fn command(port: u16, args: &[&str]) -> String {
    match query(port, args) {
        Ok(Reply::Error(e)) => panic!("Redis on port {port} answered {args:?} with error: {e}"),
        Ok(reply) => reply.to_string(),
        Err(e) => panic!("Redis on port {port}: {args:?} failed: {e}"),
    }
}

/// The RESP encoding of a command (an array of bulk strings).
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one RESP2 reply.
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_first().ok_or_else(|| bad("empty RESP line"))?;
    let text = String::from_utf8_lossy(rest).into_owned();
    let len = || -> io::Result<i64> {
        text.parse()
            .map_err(|_| bad(&format!("bad RESP length {text:?}")))
    };
    Ok(match kind {
        b'+' => Reply::Simple(text.clone()),
        b'-' => Reply::Error(text.clone()),
        b':' => Reply::Int(len()?),
        b'$' => match usize::try_from(len()?) {
            Err(_) => Reply::Bulk(None),
            Ok(n) => {
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(bad("bulk string without CRLF"));
                }
                buf.truncate(n);
                Reply::Bulk(Some(buf))
            }
        },
        b'*' => match usize::try_from(len()?) {
            Err(_) => Reply::Array(None),
            Ok(n) => Reply::Array(Some(
                (0..n)
                    .map(|_| read_reply(r))
                    .collect::<io::Result<Vec<_>>>()?,
            )),
        },
        other => return Err(bad(&format!("unknown RESP type byte {:?}", *other as char))),
    })
}

fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside a RESP line",
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// The value of `field` in an `INFO` or `CLUSTER INFO` text (`field:value` lines).
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == field).then(|| v.trim().to_string())
    })
}

// ---------------------------------------------------------------------------------------
// Processes and scratch directories

/// A scratch directory under the system's temp dir, removed on drop.
#[derive(Debug)]
/// A directory of its own under the system's temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("{what}-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A spawned process that is killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why one launch did not give a server.
enum LaunchError {
    /// The port (or the cluster bus port) was taken: try another one.
    PortInUse,
}

/// Waits for `child` to exit, up to `deadline`.
fn wait_exit(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------
// One server

/// A real `redis-server` on `127.0.0.1:port()`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// Whether `port + 10000` is reserved too (cluster nodes).
    bus: bool,
    /// Arguments after the harness's own (`--port`, `--bind`, `--dir`, no persistence).
    extra: Vec<String>,
    /// `None` while stopped. Declared before `dir` so it is killed before the dir goes.
    proc: Option<Proc>,
    dir: Scratch,
    /// Where this run's part of the log starts (the log is appended over restarts).
    log_from: u64,
}

impl RedisServer {
    /// A server with no persistence on a free port; panics if it does not answer within
    /// [`START_DEADLINE`].
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Like [`start`](Self::start), with more `redis-server` arguments (for example
    /// `["--requirepass", "secret"]`); they are used again by [`restart`](Self::restart).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        RedisServer::start_inner(extra.iter().map(|s| s.to_string()).collect(), false)
    }

    /// A server with `--cluster-enabled yes` and its own `nodes.conf`, not yet in a cluster.
    fn start_cluster_node() -> RedisServer {
        RedisServer::start_inner(Vec::new(), true)
    }

    fn start_inner(extra: Vec<String>, cluster: bool) -> RedisServer {
        let dir = Scratch::new("redis-test");
        let mut extra = extra;
        if cluster {
            let conf = dir.0.join("nodes.conf");
            extra.extend([
                "--cluster-enabled".to_string(),
                "yes".to_string(),
                "--cluster-config-file".to_string(),
                conf.display().to_string(),
                "--cluster-node-timeout".to_string(),
                CLUSTER_NODE_TIMEOUT_MS.to_string(),
            ]);
        }
        let mut server = RedisServer {
            port: 0,
            bus: cluster,
            extra,
            proc: None,
            dir,
            log_from: 0,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port(cluster);
            match server.launch() {
                Ok(()) => return server,
                Err(LaunchError::PortInUse) => {
                    // Someone outside this process took the port: keep it reserved (so it
                    // is not tried again) and take another. A node that failed to bind may
                    // have written a nodes.conf naming the old port.
                    let _ = fs::remove_file(server.dir.0.join("nodes.conf"));
                }
            }
        }
        panic!("redis-server found its port taken {PORT_ATTEMPTS} times in a row");
    }

    /// Spawns `redis-server` on `self.port` and waits until it answers as the process it
    /// is. Panics on any failure other than a taken port.
    fn launch(&mut self) -> Result<(), LaunchError> {
        assert!(
            self.proc.is_none(),
            "redis-server on {} already runs",
            self.port
        );
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        self.log_from = log.metadata().map(|m| m.len()).unwrap_or(0);
        let bin = redis_server_bin();
        let child = Command::new(&bin)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        // From here on the child is killed on every way out, panics included.
        let mut proc = Proc(child);
        let pid = proc.0.id().to_string();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let status = proc
                .0
                .try_wait()
                .unwrap_or_else(|e| panic!("wait for redis-server: {e}"));
            if let Some(status) = status {
                let log = self.log();
                if log.contains("Address already in use") {
                    return Err(LaunchError::PortInUse);
                }
                panic!(
                    "redis-server on port {} exited ({status}) before answering PING; \
                     its log:\n{log}",
                    self.port
                );
            }
            // PING answered, and by the process we started (not a stranger on the port).
            if matches!(query(self.port, &["PING"]), Ok(Reply::Simple(ref s)) if s == "PONG") {
                if let Ok(info) = query(self.port, &["INFO", "server"]) {
                    if info_field(&info.to_string(), "process_id").as_deref() == Some(&*pid) {
                        self.proc = Some(proc);
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "redis-server on port {} did not answer PING within {START_DEADLINE:?}; \
                     its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process runs (it may also have died on its own).
    pub fn is_running(&mut self) -> bool {
        match &mut self.proc {
            Some(p) => matches!(p.0.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.0.id())
    }

    /// Sends one command ([`command`]): panics on I/O failures and error replies.
    pub fn command(&self, args: &[&str]) -> String {
        command(self.port, args)
    }

    /// Sends one command ([`query`]).
    pub fn query(&self, args: &[&str]) -> io::Result<Reply> {
        query(self.port, args)
    }

    /// A clean stop, like a service manager's: `SHUTDOWN NOSAVE` (the server closes every
    /// connection; a frozen server is thawed first), then waits for the exit; SIGKILL if it has not exited within
    /// [`START_DEADLINE`]. Nothing happens when it is already stopped.
    pub fn stop(&mut self) {
        if self.proc.is_none() {
            return;
        }
        self.thaw(); // a frozen server could not shut down
        let Some(mut proc) = self.proc.take() else {
            return;
        };
        // The connection closes without a reply when the shutdown succeeds.
        let _ = query(self.port, &["SHUTDOWN", "NOSAVE"]);
        let deadline = Instant::now() + START_DEADLINE;
        if !matches!(wait_exit(&mut proc.0, deadline), Ok(Some(_))) {
            eprintln!(
                "redis-server on port {} did not stop within {START_DEADLINE:?}; killing it",
                self.port
            );
        }
        drop(proc); // kills (if still needed) and reaps
    }

    /// A crash: SIGKILL, then reaps the process. Nothing happens when it is already stopped.
    pub fn kill(&mut self) {
        drop(self.proc.take());
    }

    /// Stops the server if it runs (see [`kill`](Self::kill)) and starts it again on the
    /// SAME port with the same arguments; the data is gone (no persistence), a cluster
    /// node keeps its `nodes.conf` (its id, slots and peers). Panics if the port stays taken
    /// or the server does not answer within [`START_DEADLINE`].
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(LaunchError::PortInUse) if Instant::now() < deadline => {
                    std::thread::sleep(POLL * 10);
                }
                Err(LaunchError::PortInUse) => panic!(
                    "port {} stayed taken for {START_DEADLINE:?}; redis-server cannot restart \
                     on it",
                    self.port
                ),
            }
        }
    }

    /// Stops the process without ending it (SIGSTOP): connections stay open and commands
    /// get no answer, like a server that hangs. [`thaw`](Self::thaw) resumes it; drop kills
    /// it either way.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a [`freeze`](Self::freeze)d server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.pid().expect("redis-server is not running");
        let status = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill {sig} {pid}: {e}"));
        assert!(status.success(), "kill {sig} {pid}: {status}");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.0.join("redis.log")
    }

    /// This run's log (stdout and stderr of the process since its last start).
    pub fn log(&self) -> String {
        read_from(&self.log_path(), self.log_from)
    }

    /// The server's working directory (its `nodes.conf` lives there in a cluster).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        release_port(self.port, self.bus);
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

// ---------------------------------------------------------------------------------------
// A cluster

/// A real Redis Cluster: `n` primaries without replicas, joined with
/// `redis-cli --cluster create`, every node killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) cluster-enabled servers on free ports (bus port = port +
    /// 10000, free too), joins them and waits until every node reports `cluster_state:ok`
    /// and knows all `n` nodes. Panics with the logs after [`CLUSTER_DEADLINE`].
    pub fn start(n: usize) -> RedisCluster {
        assert!(
            n >= 3,
            "a Redis Cluster needs at least 3 primaries, asked for {n}"
        );
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        let cluster = RedisCluster {
            nodes: (0..n).map(|_| RedisServer::start_cluster_node()).collect(),
        };
        cluster.create(deadline);
        cluster.wait_ok(deadline);
        cluster
    }

    /// `redis-cli --cluster create` over all nodes, with the deadline.
    fn create(&self, deadline: Instant) {
        let out_path = self.nodes[0].dir().join("cluster-create.log");
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", out_path.display()));
        let cli = redis_cli_bin();
        let child = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|s| format!("127.0.0.1:{}", s.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup output file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", cli.display()));
        let mut proc = Proc(child);
        let status =
            wait_exit(&mut proc.0, deadline).unwrap_or_else(|e| panic!("wait for redis-cli: {e}"));
        let output = read_from(&out_path, 0);
        match status {
            Some(s) if s.success() => {}
            Some(s) => panic!(
                "redis-cli --cluster create failed ({s}); its output:\n{output}\n{}",
                self.logs()
            ),
            None => panic!(
                "redis-cli --cluster create did not finish within {CLUSTER_DEADLINE:?}; \
                 its output:\n{output}\n{}",
                self.logs()
            ),
        }
    }

    /// Until every node reports `cluster_state:ok`, all slots assigned and all nodes known.
    fn wait_ok(&self, deadline: Instant) {
        let n = self.nodes.len().to_string();
        loop {
            let infos: Vec<String> = self
                .nodes
                .iter()
                .map(|s| match s.query(&["CLUSTER", "INFO"]) {
                    Ok(r) => r.to_string(),
                    Err(e) => format!("(error: {e})"),
                })
                .collect();
            let ok = infos.iter().all(|info| {
                info_field(info, "cluster_state").as_deref() == Some("ok")
                    && info_field(info, "cluster_slots_assigned").as_deref() == Some("16384")
                    && info_field(info, "cluster_known_nodes").as_deref() == Some(&*n)
            });
            if ok {
                return;
            }
            if Instant::now() >= deadline {
                let states: Vec<_> = self
                    .nodes
                    .iter()
                    .zip(&infos)
                    .map(|(s, info)| format!("port {}:\n{info}", s.port()))
                    .collect();
                panic!(
                    "the cluster was not ok on every node within {CLUSTER_DEADLINE:?}:\n{}\n{}",
                    states.join("\n"),
                    self.logs()
                );
            }
            std::thread::sleep(POLL * 5);
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Node `i` (its `command`, `kill`, `restart`, ...; a restarted node keeps its
    /// `nodes.conf` and rejoins, without its data).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Waits (up to [`CLUSTER_DEADLINE`]) until every node is back to `cluster_state:ok`,
    /// for example after a node was restarted.
    pub fn wait_until_ok(&self) {
        self.wait_ok(Instant::now() + CLUSTER_DEADLINE);
    }

    /// The port of the node that serves `key`'s slot (from `CLUSTER SLOTS` of node 0).
    pub fn port_for_key(&self, key: &str) -> u16 {
        let slot: i64 = self.nodes[0]
            .command(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("CLUSTER KEYSLOT answers an integer");
        let slots = self.nodes[0]
            .query(&["CLUSTER", "SLOTS"])
            .expect("CLUSTER SLOTS");
        let Reply::Array(Some(ranges)) = slots else {
            panic!("CLUSTER SLOTS answered {slots:?}");
        };
        for range in ranges {
            if let Reply::Array(Some(r)) = range {
                if let [Reply::Int(lo), Reply::Int(hi), Reply::Array(Some(primary)), ..] = &r[..] {
                    if (*lo..=*hi).contains(&slot) {
                        if let Some(Reply::Int(port)) = primary.get(1) {
                            return u16::try_from(*port).expect("port fits u16");
                        }
                    }
                }
            }
        }
        panic!("no node serves slot {slot} of {key:?}");
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|s| format!("--- log of node on port {}:\n{}", s.port(), s.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
