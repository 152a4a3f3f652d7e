//! The Redis backend's operations (RB-10..14): what `Namespaces::submit` does for a gateway
//! whose namespaces live in Redis. Atomicity comes from the scripts; this side keeps what
//! belongs to connections of this gateway: which namespaces each one attached, and the
//! waiters of its blocked reads and gets.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::protocol::{NamespaceOp, Response, Wait};
use broker_wasm::Data;
use redis::Value;
use tokio::sync::{mpsc, oneshot};

use super::keys::{Keys, SPACES};
use super::{
    answer, decode_value, encode_value, info, invoke, space_keys, Conn, Scripts, GROUP_SEP,
    LEASE_MS,
};
use crate::namespace::{
    check_create, check_name, check_put, failure, page, too_big, wait_timeout, waiter_room,
    Outcome, Reply, Res,
};

/// How often waiters are retried without a wake-up (lost wake-ups, RB-12).
const REPOLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Read(u64),
    Get,
}

#[derive(Debug)]
struct Waiter {
    session: u64,
    id: u64,
    kind: Kind,
    capacity: Option<u64>,
    partial: bool,
    tx: oneshot::Sender<Reply>,
}

#[derive(Debug, Default)]
struct Local {
    /// session -> namespace -> attachments.
    attached: HashMap<u64, HashMap<String, u64>>,
    /// (namespace, tuple name) -> waiters, oldest first.
    waiters: HashMap<(String, String), VecDeque<Waiter>>,
    /// (session, request) -> where it waits; ordered, so a session's requests are a range.
    by_request: BTreeMap<(u64, u64), (String, String)>,
    /// Tuples whose waiters are being retried, and those to retry once more after that.
    retrying: HashSet<(String, String)>,
    again: HashSet<(String, String)>,
    /// Requests cancelled before their waiter was registered (the cancel overtook the
    /// request, which was still asking Redis): they answer CANCELLED instead of waiting.
    cancelled: HashSet<(u64, u64)>,
}

impl Local {
    fn count(&self, session: u64, ns: &str) -> u64 {
        self.attached
            .get(&session)
            .and_then(|m| m.get(ns))
            .copied()
            .unwrap_or(0)
    }

    /// The namespaces some connection here has attached, sorted.
    fn attached_spaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .attached
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// This gateway's attachments of `ns`, over all its connections.
    fn total(&self, ns: &str) -> u64 {
        self.attached.values().filter_map(|m| m.get(ns)).sum()
    }

    fn held(&self, session: u64, ns: &str) -> Res<()> {
        if self.count(session, ns) == 0 {
            return Err(failure(
                DbrCode::NsInval,
                format!("namespace `{ns}` is not attached by this connection"),
            ));
        }
        Ok(())
    }

    fn add(&mut self, session: u64, ns: &str, delta: i64) {
        let m = self.attached.entry(session).or_default();
        let c = m.entry(ns.to_owned()).or_default();
        *c = c.saturating_add_signed(delta);
        if *c == 0 {
            m.remove(ns);
        }
        if m.is_empty() {
            self.attached.remove(&session);
        }
    }

    fn remove_waiter(&mut self, session: u64, id: u64) -> Option<Waiter> {
        let at = self.by_request.remove(&(session, id))?;
        let list = self.waiters.get_mut(&at)?;
        let i = list
            .iter()
            .position(|w| w.session == session && w.id == id)?;
        let w = list.remove(i);
        if list.is_empty() {
            self.waiters.remove(&at);
        }
        w
    }
}

/// The namespaces of a gateway, in Redis.
#[derive(Debug)]
pub(crate) struct RedisSpaces {
    conn: Conn,
    /// This gateway's id in attachment records.
    gw: String,
    /// `PUBLISH`, or `SPUBLISH` on a cluster.
    publish: &'static str,
    scripts: Scripts,
    max_value: u64,
    max_waiters: usize,
    local: Mutex<Local>,
    /// Wake-up channels to listen on (namespace per channel), for the listener task.
    wake: mpsc::UnboundedSender<()>,
}

impl RedisSpaces {
    pub(crate) fn new(
        conn: Conn,
        gw: String,
        max_value: u64,
        max_waiters: usize,
    ) -> (Arc<RedisSpaces>, mpsc::UnboundedReceiver<()>) {
        let publish = match conn {
            Conn::Single(_) => "PUBLISH",
            Conn::Cluster(_) => "SPUBLISH",
        };
        let (wake, woken) = mpsc::unbounded_channel();
        let this = Arc::new(RedisSpaces {
            conn,
            gw,
            publish,
            scripts: Scripts::default(),
            max_value,
            max_waiters,
            local: Mutex::default(),
            wake,
        });
        (this, woken)
    }

    fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Namespaces that have waiters here: the wake-up channels to listen on.
    pub(crate) fn wanted_channels(&self) -> Vec<(String, String)> {
        let mut seen: Vec<String> = self
            .lock()
            .waiters
            .keys()
            .map(|(ns, _)| ns.clone())
            .collect();
        seen.sort();
        seen.dedup();
        seen.into_iter()
            .map(|ns| (Keys::new(&ns).wake(), ns))
            .collect()
    }

    /// Blocked requests waiting for (ns, key) here.
    pub(crate) fn waiting(&self, ns: &str, key: &str) -> usize {
        self.lock()
            .waiters
            .get(&(ns.to_owned(), key.to_owned()))
            .map_or(0, VecDeque::len)
    }

    /// Blocked requests waiting here, over all namespaces.
    pub(crate) fn waiting_total(&self) -> usize {
        self.lock().by_request.len()
    }

    /// Every (namespace, tuple) with waiters here.
    pub(crate) fn waited_for(&self) -> Vec<(String, String)> {
        self.lock().waiters.keys().cloned().collect()
    }

    /// Whether Redis answers a `PING`.
    pub(crate) async fn ping(&self) -> bool {
        self.command::<String>(&redis::cmd("PING")).await.is_ok()
    }

    /// Namespace names (from the `dbr:spaces` set).
    pub(crate) async fn list(&self) -> Res<Vec<String>> {
        let mut c = self.conn.clone();
        let mut names: Vec<String> = match &mut c {
            Conn::Single(c) => redis::cmd("SMEMBERS").arg(SPACES).query_async(c).await,
            Conn::Cluster(c) => redis::cmd("SMEMBERS").arg(SPACES).query_async(c).await,
        }
        .map_err(|e| super::redis_failure(&e))?;
        names.sort();
        Ok(names)
    }

    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Res<T> {
        let r = match self.conn.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        };
        r.map_err(|e| super::redis_failure(&e))
    }

    /// Runs one operation for request `id` of connection `session`.
    pub(crate) async fn run(self: &Arc<Self>, session: u64, id: u64, op: NamespaceOp) -> Outcome {
        match self.op(session, id, op).await {
            Ok(o) => o,
            Err(f) => Outcome::Done(Err(f)),
        }
    }

    async fn op(self: &Arc<Self>, session: u64, id: u64, op: NamespaceOp) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        let lease = LEASE_MS.to_string();
        match op {
            NamespaceOp::Create {
                name,
                level,
                groups,
            } => {
                check_create(&name, level)?;
                let k = Keys::new(&name);
                let joined = groups.join(&GROUP_SEP.to_string());
                let level_s = level.to_string();
                let args: [&[u8]; 4] = [
                    level_s.as_bytes(),
                    joined.as_bytes(),
                    self.gw.as_bytes(),
                    lease.as_bytes(),
                ];
                let v = invoke(&self.conn, &self.scripts.create, &space_keys(&k), &args).await?;
                let (word, rest) = answer(v)?;
                if word == "EXISTS" {
                    return Err(failure(
                        DbrCode::Exists,
                        format!("namespace `{name}` exists"),
                    ));
                }
                self.lock().add(session, &name, 1);
                self.command::<i64>(redis::cmd("SADD").arg(SPACES).arg(&name))
                    .await?;
                done(Response::Namespace(info(&name, &rest)))
            }
            NamespaceOp::Attach { name } => {
                let k = Keys::new(&name);
                let args: [&[u8]; 2] = [self.gw.as_bytes(), lease.as_bytes()];
                let v = invoke(&self.conn, &self.scripts.attach, &space_keys(&k), &args).await?;
                let (word, rest) = answer(v)?;
                if word == "UNAVAIL" {
                    return Err(failure(DbrCode::Unavail, format!("no namespace `{name}`")));
                }
                self.lock().add(session, &name, 1);
                // Moves out of it that a dead gateway left half done (RB-13).
                let this = self.clone();
                let ns = name.clone();
                tokio::spawn(async move { this.recover_moves_of(&ns).await });
                done(Response::Namespace(info(&name, &rest)))
            }
            NamespaceOp::Detach { name } => {
                self.lock().held(session, &name)?;
                self.lock().add(session, &name, -1);
                self.detach_one(&name, false).await?;
                done(Response::Done)
            }
            NamespaceOp::Delete { name } => {
                self.lock().held(session, &name)?;
                self.lock().add(session, &name, -1);
                if self.detach_one(&name, true).await? {
                    done(Response::Done)
                } else {
                    Err(failure(
                        DbrCode::NsBusy,
                        format!("namespace `{name}` is marked for deletion and still attached"),
                    ))
                }
            }
            NamespaceOp::Query { name } => {
                let k = Keys::new(&name);
                let v = invoke(&self.conn, &self.scripts.query, &space_keys(&k), &[]).await?;
                let (word, rest) = answer(v)?;
                if word == "UNAVAIL" {
                    return Err(failure(DbrCode::NsInval, format!("no namespace `{name}`")));
                }
                done(Response::Namespace(info(&name, &rest)))
            }
            NamespaceOp::List => done(Response::Names {
                names: self.list().await?,
                done: true,
            }),
            NamespaceOp::Put { ns, key, value } => {
                self.lock().held(session, &ns)?;
                check_put(&key, &value, self.max_value)?;
                self.push(&ns, &key, &value, false).await?;
                done(Response::Done)
            }
            NamespaceOp::Restore { ns, key, value } => {
                self.lock().held(session, &ns)?;
                check_name("a tuple name", &key, DbrCode::Invalid)?;
                self.push(&ns, &key, &value, true).await?;
                done(Response::Done)
            }
            NamespaceOp::Read {
                ns,
                key,
                index,
                wait,
                capacity,
                partial,
            } => {
                self.fetch(
                    session,
                    id,
                    ns,
                    key,
                    Kind::Read(index),
                    wait,
                    capacity,
                    partial,
                )
                .await
            }
            NamespaceOp::Get {
                ns,
                key,
                wait,
                capacity,
                partial,
            } => {
                self.fetch(session, id, ns, key, Kind::Get, wait, capacity, partial)
                    .await
            }
            NamespaceOp::Remove { ns, key } => {
                self.lock().held(session, &ns)?;
                let k = Keys::new(&ns);
                let keys = [k.meta(), k.names(), k.tuple(&key)];
                let v = invoke(&self.conn, &self.scripts.remove, &keys, &[key.as_bytes()]).await?;
                match answer(v)?.0.as_str() {
                    "OK" => done(Response::Done),
                    "UNAVAIL" => Err(failure(DbrCode::Unavail, format!("no tuple `{key}`"))),
                    _ => Err(gone(&ns)),
                }
            }
            NamespaceOp::Move { from, key, to } => {
                if from == to {
                    return done(Response::Done);
                }
                self.lock().held(session, &from)?;
                self.lock().held(session, &to)?;
                self.move_key(&from, &key, &to).await?;
                done(Response::Done)
            }
            NamespaceOp::TestKey { ns, key } => {
                self.lock().held(session, &ns)?;
                let n: i64 = self
                    .command(redis::cmd("EXISTS").arg(Keys::new(&ns).tuple(&key)))
                    .await?;
                done(Response::Bool(n > 0))
            }
            NamespaceOp::Directory { ns, pattern, limit } => {
                self.names(session, &ns, &pattern, None, limit).await
            }
            NamespaceOp::Iterate {
                ns,
                pattern,
                after,
                limit,
            } => {
                self.names(session, &ns, &pattern, after.as_deref(), limit)
                    .await
            }
        }
    }

    /// Gives up one attachment of this gateway (`mark`: delete first); true if the
    /// namespace is gone now.
    async fn detach_one(&self, name: &str, mark: bool) -> Res<bool> {
        let k = Keys::new(name);
        let lease = LEASE_MS.to_string();
        let args: [&[u8]; 3] = [
            self.gw.as_bytes(),
            lease.as_bytes(),
            if mark { b"1" } else { b"0" },
        ];
        let v = invoke(&self.conn, &self.scripts.detach, &space_keys(&k), &args).await?;
        match answer(v)?.0.as_str() {
            "DELETED" => {
                self.command::<i64>(redis::cmd("SREM").arg(SPACES).arg(name))
                    .await?;
                Ok(true)
            }
            "OK" => Ok(false),
            _ => Err(gone(name)),
        }
    }

    async fn push(self: &Arc<Self>, ns: &str, key: &str, value: &Data, head: bool) -> Res<()> {
        self.put_script(ns, key, value, head).await?;
        // Waiters here are served before the put is answered (as with the built-in backend),
        // without a round trip through the wake-up channel.
        self.retry_now(ns.to_owned(), key.to_owned()).await;
        Ok(())
    }

    /// The `PUT` script: appends `value` (or puts it back at the head) and publishes the
    /// wake-up; `NSINVAL` if the namespace is gone.
    async fn put_script(&self, ns: &str, key: &str, value: &Data, head: bool) -> Res<()> {
        let k = Keys::new(ns);
        let keys = [k.meta(), k.names(), k.tuple(key)];
        let stored = encode_value(value)?;
        let wake = k.wake();
        let args: [&[u8]; 5] = [
            key.as_bytes(),
            &stored,
            wake.as_bytes(),
            if head { b"head" } else { b"tail" },
            self.publish.as_bytes(),
        ];
        let v = invoke(&self.conn, &self.scripts.put, &keys, &args).await?;
        if answer(v)?.0 != "OK" {
            return Err(gone(ns));
        }
        Ok(())
    }

    /// One attempt to read or take a value: `Ok(None)` if there is none.
    async fn take(
        &self,
        ns: &str,
        key: &str,
        kind: Kind,
        capacity: Option<u64>,
        partial: bool,
    ) -> Res<Option<Reply>> {
        let k = Keys::new(ns);
        let keys = [k.meta(), k.names(), k.tuple(key)];
        if capacity.is_none() {
            // Any value fits: a plain LPOP / LINDEX (atomic on its own, and much cheaper
            // for Redis than a script). Nothing there: the script tells whether the
            // namespace still exists.
            let cmd = match kind {
                Kind::Get => redis::cmd("LPOP").arg(&keys[2]).to_owned(),
                Kind::Read(i) => redis::cmd("LINDEX").arg(&keys[2]).arg(i).to_owned(),
            };
            if let Some(stored) = self.command::<Option<Vec<u8>>>(&cmd).await? {
                let value = decode_value(&stored)?;
                let size = dbr::value_size(&value);
                return Ok(Some(Ok(Response::Tuple { value, size })));
            }
        }
        let (what, index) = match kind {
            Kind::Read(i) => ("read", i.to_string()),
            Kind::Get => ("get", "0".to_owned()),
        };
        let cap = capacity.map_or("-1".to_owned(), |c| c.to_string());
        let args: [&[u8]; 4] = [
            what.as_bytes(),
            index.as_bytes(),
            cap.as_bytes(),
            key.as_bytes(),
        ];
        let v = invoke(&self.conn, &self.scripts.take, &keys, &args).await?;
        let (word, rest) = answer(v)?;
        let stored = || match rest.first() {
            Some(Value::BulkString(b)) => decode_value(b),
            _ => Err(failure(DbrCode::BeGeneral, "redis: a value is missing")),
        };
        match word.as_str() {
            "NONE" => Ok(None),
            "OK" => {
                let value = stored()?;
                let size = dbr::value_size(&value);
                Ok(Some(Ok(Response::Tuple { value, size })))
            }
            "BIG" => Ok(too_big(&stored()?, capacity, partial)),
            _ => Err(gone(ns)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        self: &Arc<Self>,
        session: u64,
        id: u64,
        ns: String,
        key: String,
        kind: Kind,
        wait: Wait,
        capacity: Option<u64>,
        partial: bool,
    ) -> Res<Outcome> {
        self.lock().held(session, &ns)?;
        check_name("a tuple name", &key, DbrCode::Invalid)?;
        if let Some(reply) = self.take(&ns, &key, kind, capacity, partial).await? {
            return Ok(Outcome::Done(reply));
        }
        let timeout = wait_timeout(wait, &key)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            waiter_room(&st.by_request, session, id, self.max_waiters)?;
            if let Some(old) = st.remove_waiter(session, id) {
                let _ = old
                    .tx
                    .send(Err(failure(DbrCode::Cancelled, "request id reused")));
            }
            if st.cancelled.remove(&(session, id)) {
                return Err(failure(DbrCode::Cancelled, "the request was cancelled"));
            }
            let at = (ns.clone(), key.clone());
            st.by_request.insert((session, id), at.clone());
            st.waiters.entry(at).or_default().push_back(Waiter {
                session,
                id,
                kind,
                capacity,
                partial,
                tx,
            });
        }
        let _ = self.wake.send(());
        // A value may have arrived between the attempt and the registration.
        self.retry(ns, key);
        Ok(Outcome::Wait { rx, timeout })
    }

    /// Serves the waiters of (ns, key) from what Redis holds, in the background (see
    /// [`RedisSpaces::retry_now`]).
    pub(crate) fn retry(self: &Arc<Self>, ns: String, key: String) {
        let this = self.clone();
        tokio::spawn(async move { this.retry_now(ns, key).await });
    }

    /// Serves the waiters of (ns, key) from what Redis holds: readers first, then getters
    /// oldest first, one value each, until none is left. One retry per tuple runs at a time;
    /// a request for another while it runs makes it go round once more.
    pub(crate) async fn retry_now(self: &Arc<Self>, ns: String, key: String) {
        let at = (ns, key);
        {
            let mut st = self.lock();
            if !st.waiters.contains_key(&at) {
                return;
            }
            if !st.retrying.insert(at.clone()) {
                st.again.insert(at);
                return;
            }
        }
        loop {
            self.serve(&at.0, &at.1).await;
            let mut st = self.lock();
            if !st.again.remove(&at) {
                st.retrying.remove(&at);
                break;
            }
        }
    }

    async fn serve(&self, ns: &str, key: &str) {
        let at = (ns.to_owned(), key.to_owned());
        for getters in [false, true] {
            loop {
                // The oldest waiter of this pass, still in the list while Redis is asked.
                let next = {
                    let st = self.lock();
                    st.waiters.get(&at).and_then(|l| {
                        l.iter()
                            .find(|w| matches!(w.kind, Kind::Get) == getters)
                            .map(|w| (w.session, w.id, w.kind, w.capacity, w.partial))
                    })
                };
                let Some((session, id, kind, capacity, partial)) = next else {
                    break;
                };
                let reply = match self.take(ns, key, kind, capacity, partial).await {
                    Ok(Some(r)) => r,
                    // Nothing there (or Redis failed: the waiter stays until its timeout).
                    Ok(None) | Err(_) => break,
                };
                let waiter = self.lock().remove_waiter(session, id);
                match (waiter, reply) {
                    (Some(w), reply) => {
                        if let Err(Ok(Response::Tuple { value, .. })) = w.tx.send(reply) {
                            if getters {
                                // The receiver went away meanwhile: never lose the value.
                                let _ = self.put_back(ns, key, &value).await;
                            }
                        }
                    }
                    // Cancelled or timed out while Redis answered: a taken value goes back
                    // to the head, so a cancelled get never consumes (DB-25).
                    (None, Ok(Response::Tuple { value, .. })) if getters => {
                        let _ = self.put_back(ns, key, &value).await;
                    }
                    (None, _) => {}
                }
            }
        }
    }

    async fn put_back(&self, ns: &str, key: &str, value: &Data) -> Res<()> {
        self.put_script(ns, key, value, true).await
    }

    /// RB-13: a move in three steps, each atomic in its namespace's slot; after a crash
    /// between them the values are in the source's journal (step 1 done) or in both (step 2
    /// done): never lost, at worst twice.
    async fn move_key(self: &Arc<Self>, from: &str, key: &str, to: &str) -> Res<()> {
        let (src, dst) = (Keys::new(from), Keys::new(to));
        let exists: i64 = self
            .command(redis::cmd("EXISTS").arg(dst.tuple(key)))
            .await?;
        if exists > 0 {
            return Err(failure(
                DbrCode::Exists,
                format!("tuple `{key}` exists in `{to}`"),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let record = format!("{to}{GROUP_SEP}{key}");
        let keys = [
            src.meta(),
            src.names(),
            src.tuple(key),
            src.moving(&id),
            src.journal(),
        ];
        let args: [&[u8]; 3] = [key.as_bytes(), id.as_bytes(), record.as_bytes()];
        let v = invoke(&self.conn, &self.scripts.move_out, &keys, &args).await?;
        let values = match v {
            Value::Array(items) if !matches!(items.first(), Some(Value::BulkString(b)) if b == b"UNAVAIL" || b == b"NSINVAL") => {
                items
            }
            other => {
                return match answer(other)?.0.as_str() {
                    "UNAVAIL" => Err(failure(DbrCode::Unavail, format!("no tuple `{key}`"))),
                    _ => Err(gone(from)),
                }
            }
        };
        let values: Vec<Vec<u8>> = values
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect();
        let arrived = self.move_in(&dst, to, key, &values).await;
        let target = if arrived.is_ok() {
            None
        } else {
            // The destination went away: the values go back where they were.
            Some(self.move_in(&src, from, key, &values).await)
        };
        let done_keys = [src.moving(&id), src.journal()];
        invoke(
            &self.conn,
            &self.scripts.move_done,
            &done_keys,
            &[id.as_bytes()],
        )
        .await?;
        match (arrived, target) {
            (Ok(()), _) => {
                self.retry(to.to_owned(), key.to_owned());
                Ok(())
            }
            (Err(e), _) => Err(e),
        }
    }

    async fn move_in(&self, k: &Keys, ns: &str, key: &str, values: &[Vec<u8>]) -> Res<()> {
        let keys = [k.meta(), k.names(), k.tuple(key)];
        let wake = k.wake();
        let mut args: Vec<&[u8]> = vec![key.as_bytes(), wake.as_bytes(), self.publish.as_bytes()];
        args.extend(values.iter().map(Vec::as_slice));
        let v = invoke(&self.conn, &self.scripts.move_in, &keys, &args).await?;
        if answer(v)?.0 == "OK" {
            Ok(())
        } else {
            Err(gone(ns))
        }
    }

    async fn names(
        &self,
        session: u64,
        ns: &str,
        pattern: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Res<Outcome> {
        let k = Keys::new(ns);
        let keys = [k.meta(), k.names(), k.tuple_prefix()];
        let (word, rest) = answer(invoke(&self.conn, &self.scripts.names, &keys, &[]).await?)?;
        if word != "OK" {
            return Err(failure(DbrCode::Unavail, format!("no namespace `{ns}`")));
        }
        self.lock().held(session, ns)?;
        let mut all: Vec<String> = match rest.into_iter().next() {
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(|n| match n {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        all.sort();
        let after_cursor = all
            .iter()
            .map(String::as_str)
            .filter(|n| after.is_none_or(|a| *n > a));
        Ok(Outcome::Done(Ok(page(after_cursor, pattern, limit))))
    }

    /// The waiter's time is up: true if it was still waiting.
    pub(crate) fn expire(&self, session: u64, id: u64) -> bool {
        self.lock().remove_waiter(session, id).is_some()
    }

    /// Cancels a waiting request (DB-25); one still asking Redis is cancelled when it would
    /// start to wait.
    pub(crate) fn cancel(&self, session: u64, id: u64) {
        let mut st = self.lock();
        match st.remove_waiter(session, id) {
            Some(w) => {
                drop(st);
                let _ = w.tx.send(Err(failure(
                    DbrCode::Cancelled,
                    "the request was cancelled",
                )));
            }
            None => {
                st.cancelled.insert((session, id));
            }
        }
    }

    /// Request `id` of `session` has its outcome: a cancel that came for it is spent.
    pub(crate) fn settled(&self, session: u64, id: u64) {
        self.lock().cancelled.remove(&(session, id));
    }

    /// A connection ended: its waiters go and its attachments are given up.
    pub(crate) async fn release_session(&self, session: u64) {
        let held = {
            let mut st = self.lock();
            let ids: Vec<(u64, u64)> = st
                .by_request
                .range((session, 0)..=(session, u64::MAX))
                .map(|(k, _)| *k)
                .collect();
            for (s, id) in ids {
                st.remove_waiter(s, id);
            }
            st.cancelled.retain(|(s, _)| *s != session);
            st.attached.remove(&session).unwrap_or_default()
        };
        for (ns, n) in held {
            for _ in 0..n {
                if let Err(e) = self.detach_one(&ns, false).await {
                    tracing::warn!(ns, "releasing a namespace in redis failed: {e:?}");
                }
            }
        }
    }

    /// Renews this gateway's attachment leases (RB-14); run every third of the lease.
    pub(crate) async fn renew(&self) {
        let counts: Vec<(String, u64)> = {
            let st = self.lock();
            st.attached_spaces()
                .into_iter()
                .map(|ns| {
                    let n = st.total(&ns);
                    (ns, n)
                })
                .collect()
        };
        let lease = LEASE_MS.to_string();
        for (ns, n) in counts {
            let n = n.to_string();
            let args: [&[u8]; 3] = [self.gw.as_bytes(), n.as_bytes(), lease.as_bytes()];
            if let Err(e) = invoke(
                &self.conn,
                &self.scripts.renew,
                &[Keys::new(&ns).att()],
                &args,
            )
            .await
            {
                tracing::warn!(ns, "renewing the attachment lease failed: {e:?}");
            }
        }
    }

    /// RB-13: finishes the moves out of the namespaces attached here whose gateway died
    /// between the steps (journal entries older than a lease): the values go on to their
    /// destination (or back, if it is gone). A move that had arrived before the crash
    /// arrives twice.
    pub(crate) async fn recover_moves(self: &Arc<Self>) {
        let attached = self.lock().attached_spaces();
        for from in attached {
            self.recover_moves_of(&from).await;
        }
    }

    /// [`RedisSpaces::recover_moves`] for the moves out of `from`.
    pub(crate) async fn recover_moves_of(&self, from: &str) {
        let from = from.to_owned();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        {
            let src = Keys::new(&from);
            let entries: Vec<(String, String)> =
                match self.command(redis::cmd("HGETALL").arg(src.journal())).await {
                    Ok(e) => e,
                    Err(_) => return,
                };
            for (id, record) in entries {
                let mut parts = record.split(GROUP_SEP);
                let (Some(to), Some(key), Some(at)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                // Redis' clock wrote `at`; gateways' clocks may differ a little, the lease
                // is long.
                if at.parse::<u64>().map_or(true, |t| t + LEASE_MS > now_ms) {
                    continue;
                }
                let values: Vec<Vec<u8>> = match self
                    .command(redis::cmd("LRANGE").arg(src.moving(&id)).arg(0).arg(-1))
                    .await
                {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                let arrived = self.move_in(&Keys::new(to), to, key, &values).await;
                if arrived.is_err() && self.move_in(&src, &from, key, &values).await.is_err() {
                    continue;
                }
                let done_keys = [src.moving(&id), src.journal()];
                let _ = invoke(
                    &self.conn,
                    &self.scripts.move_done,
                    &done_keys,
                    &[id.as_bytes()],
                )
                .await;
                tracing::warn!(from, to, key, "finished a move whose gateway died (RB-13)");
            }
        }
    }

    /// Retries every waiter here (lost wake-ups, RB-12); run every [`REPOLL`].
    pub(crate) fn repoll(self: &Arc<Self>) {
        for (ns, key) in self.waited_for() {
            self.retry(ns, key);
        }
    }
}

fn gone(ns: &str) -> broker_wasm::protocol::Failure {
    failure(
        DbrCode::NsInval,
        format!("namespace `{ns}` no longer exists"),
    )
}

/// The re-poll interval, for the background task.
pub(crate) fn repoll_every() -> Duration {
    REPOLL
}
