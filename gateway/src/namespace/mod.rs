//! Data Broker namespaces in the gateway (DB-01..25, design decision 6): a registry of named
//! tuple spaces, each holding a FIFO of typed values per tuple name, with reference counts
//! and the delete mark, blocking `read`/`get` served by server-side waiters, atomic `move`,
//! and glob `directory`/iterator.
//!
//! Every operation runs under one mutex (the namespaces' single writer), so each is atomic
//! with respect to all clients: a value is popped by exactly one `get`, a `move` is never
//! observed half-done. Values live in memory; namespaces of a `PERMANENT_*` level are also
//! written through to SQLite (`<data-dir>/namespaces.sqlite3`, WAL, `synchronous=NORMAL`)
//! before the operation is acknowledged, and are loaded back at start. The writes are
//! committed in groups by one writer thread; while some are not committed yet, every answer
//! waits behind them (see [`persist`]).
//!
//! Waiting: a blocked `read`/`get` registers a waiter for its (namespace, name). A `put`
//! (or `move`, `restore`) serves the waiters of that name: every waiting reader whose index
//! exists gets a copy, then waiting getters, oldest first, each pop one value. A waiter is
//! removed under the same lock by its timeout or cancellation, so a getter that timed out
//! or was cancelled never consumes a value (DB-15, DB-25).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::protocol::{Failure, NamespaceOp, Response, Wait};
use broker_wasm::Data;
use tokio::sync::oneshot;

/// What a namespace request resolves to.
pub type Reply = Result<Response, Failure>;

/// A namespace failure with a `DBR_ERR_*` code.
pub fn failure(code: DbrCode, context: impl Into<String>) -> Failure {
    Failure::Namespace {
        code: code.code(),
        context: context.into(),
    }
}

mod answer;
pub(crate) mod glob;
mod persist;
pub(crate) mod redis_ns;
mod space;

use answer::Answer;
pub use persist::DB_FILE;
use space::{Space, State, WaitKind, Waiter};

/// The result of submitting an operation.
#[derive(Debug)]
pub enum Outcome {
    /// Answered at once.
    Done(Reply),
    /// Blocked: a waiter is registered. Await `rx`; after `timeout` call
    /// [`Namespaces::expire`] (which removes the waiter unless it was served meanwhile).
    Wait {
        rx: oneshot::Receiver<Reply>,
        timeout: Option<Duration>,
    },
    /// Decided later (the Redis backend): await it. Its first command went out when it was
    /// submitted, so a connection's operations reach Redis in the order it sent them.
    Later(Pending),
}

/// An operation under way in a backend; never another `Later` when it completes.
pub struct Pending(pub(crate) std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl std::future::Future for Pending {
    type Output = Outcome;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        self.0.as_mut().poll(cx)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The namespaces of one endpoint.
#[derive(Debug)]
pub struct Namespaces {
    state: Arc<Mutex<State>>,
    data_dir: PathBuf,
    max_value: u64,
    /// Most blocked reads/gets one connection may have waiting.
    max_waiters: usize,
    /// `--ns-backend redis://...`: every operation goes to Redis instead (RB-10).
    redis: Option<std::sync::Arc<redis_ns::backend::RedisBackend>>,
}

pub(crate) type Res<T> = Result<T, Failure>;

pub(crate) fn check_name(what: &str, name: &str, code: DbrCode) -> Res<()> {
    if name.is_empty() || name.len() > dbr::MAX_KEY_LEN {
        return Err(failure(
            code,
            format!(
                "{what} must have 1..={} bytes, not {}",
                dbr::MAX_KEY_LEN,
                name.len()
            ),
        ));
    }
    Ok(())
}

/// What `create` checks before anything is stored (DB-01, DB-02, DB-07): the name and the
/// persistence level.
pub(crate) fn check_create(name: &str, level: u8) -> Res<()> {
    check_name("a namespace name", name, DbrCode::NsInval)?;
    if level >= dbr::PERST_MAX {
        return Err(failure(
            DbrCode::Invalid,
            format!("persistence level {level} is not 0..=5"),
        ));
    }
    Ok(())
}

/// What `put` checks before anything is stored (DB-02, DB-08): the tuple name and the
/// value's size against `--ns-max-value`.
pub(crate) fn check_put(key: &str, value: &Data, max_value: u64) -> Res<()> {
    check_name("a tuple name", key, DbrCode::Invalid)?;
    let size = dbr::value_size(value);
    if size > max_value {
        return Err(failure(
            DbrCode::NoMemory,
            format!("the value has {size} bytes, the limit is {max_value}"),
        ));
    }
    Ok(())
}

/// One page of `directory`/iterate (DB-19, DB-20): of `sorted` names (those after the
/// cursor), the ones matching `pattern` (`""` = all), at most `limit` (0 = all).
pub(crate) fn page<'a>(
    sorted: impl Iterator<Item = &'a str>,
    pattern: &str,
    limit: u64,
) -> Response {
    let limit = if limit == 0 { u64::MAX } else { limit };
    let pattern = if pattern.is_empty() { "*" } else { pattern };
    let mut names = Vec::new();
    let mut done = true;
    for name in sorted {
        if !glob::glob_match(pattern.as_bytes(), name.as_bytes()) {
            continue;
        }
        if names.len() as u64 == limit {
            done = false;
            break;
        }
        names.push(name.to_owned());
    }
    Response::Names { names, done }
}

/// Whether connection `session` may register one more blocked request (`id`, unless it is
/// already waiting): DBR_ERR_NOMEMORY at `max` (`--ns-max-waiters`). `by_request` is ordered
/// by (session, request), so a connection's waiters are a range.
pub(crate) fn waiter_room<V>(
    by_request: &std::collections::BTreeMap<(u64, u64), V>,
    session: u64,
    id: u64,
    max: usize,
) -> Res<()> {
    let held = by_request.range((session, 0)..=(session, u64::MAX)).count();
    if held >= max && !by_request.contains_key(&(session, id)) {
        return Err(failure(
            DbrCode::NoMemory,
            format!("{held} blocked requests are waiting on this connection (limit {max})"),
        ));
    }
    Ok(())
}

/// How long a read/get that found nothing waits (`None`: forever); NOWAIT and a zero timeout
/// fail at once (DB-15, DB-16).
pub(crate) fn wait_timeout(wait: Wait, key: &str) -> Res<Option<Duration>> {
    match wait {
        Wait::NoWait => Err(failure(DbrCode::Unavail, format!("no tuple `{key}`"))),
        Wait::Timeout(t) if t.0 <= 0 => Err(failure(DbrCode::Timeout, format!("no tuple `{key}`"))),
        Wait::Timeout(t) => Ok(Some(Duration::from_nanos(t.0 as u64))),
        Wait::Forever => Ok(None),
    }
}

/// The answer for a value that does not fit the client's buffer (DB-13), or `None` if it fits.
pub(crate) fn too_big(value: &Data, capacity: Option<u64>, partial: bool) -> Option<Reply> {
    let size = dbr::value_size(value);
    match capacity {
        Some(cap) if size > cap => {
            if partial {
                // DB-13 with PARTIAL: the full size and what fits; the value stays queued.
                let head = match value {
                    Data::String(b) => Data::String(b[..cap as usize].to_vec()),
                    _ => Data::None,
                };
                Some(Ok(Response::Tuple { value: head, size }))
            } else {
                Some(Err(failure(
                    DbrCode::UBuffer,
                    format!("the value has {size} bytes, the buffer {cap}"),
                )))
            }
        }
        _ => None,
    }
}

impl Namespaces {
    /// The namespaces of an endpoint whose persistent state lives in `data_dir` (opened when
    /// the first persistent namespace is created, or at start if the database exists).
    pub fn new(data_dir: PathBuf, max_value: u64, max_waiters: usize) -> Namespaces {
        let state = Arc::new_cyclic(|me| {
            Mutex::new(State {
                me: me.clone(),
                ..State::default()
            })
        });
        {
            let mut st = lock(&state);
            match persist::Db::load_existing(&data_dir) {
                Some(Ok((db, stored))) => {
                    st.spaces = stored
                        .into_iter()
                        .map(|(name, s)| (name, Space::from_stored(s)))
                        .collect();
                    match persist::Db::start(db, space::put_back(Arc::downgrade(&state))) {
                        Ok(db) => st.db = Some(db),
                        Err(e) => tracing::error!("namespaces: {e:?}"),
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(dir = %data_dir.display(), "cannot load namespaces: {e}")
                }
                None => {}
            }
        }
        Namespaces {
            state,
            data_dir,
            max_value,
            max_waiters,
            redis: None,
        }
    }

    /// Namespaces kept in Redis at `url` (RB-10), shared with every gateway using it;
    /// `gw` names this gateway in attachment records (RB-14).
    pub(crate) fn redis(
        url: &str,
        access: redis_ns::backend::Access,
        gw: String,
        max_value: u64,
        max_waiters: usize,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Namespaces, String> {
        let backend = redis_ns::backend::RedisBackend::new(
            url,
            access,
            gw,
            max_value,
            max_waiters,
            shutdown,
        )?;
        let backend = std::sync::Arc::new(backend);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let b = backend.clone();
            rt.spawn(async move { b.check().await });
        }
        Ok(Namespaces {
            state: Arc::new(Mutex::new(State::default())),
            data_dir: PathBuf::new(),
            max_value,
            max_waiters,
            redis: Some(backend),
        })
    }

    /// `redis` and the backend's address when namespaces live in Redis; whether it answered
    /// the last operation.
    pub fn backend(&self) -> (&'static str, Option<String>, bool) {
        match &self.redis {
            Some(r) => (
                "redis",
                Some(r.describe()),
                r.up.load(std::sync::atomic::Ordering::Relaxed),
            ),
            None => ("builtin", None, true),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Names of all namespaces (with Redis: as last listed by a client).
    pub fn list(&self) -> Vec<String> {
        if let Some(r) = &self.redis {
            return r.list();
        }
        let mut v: Vec<String> = self.lock().spaces.keys().cloned().collect();
        v.sort();
        v
    }

    /// Requests waiting for a value of (ns, key) now (for tests and the dashboard).
    pub fn waiting(&self, ns: &str, key: &str) -> usize {
        if let Some(r) = &self.redis {
            return r.waiting(ns, key);
        }
        self.lock()
            .waiters
            .get(ns)
            .and_then(|m| m.get(key))
            .map_or(0, VecDeque::len)
    }

    /// Blocked reads/gets waiting in this gateway, over all namespaces.
    pub fn waiting_total(&self) -> usize {
        match &self.redis {
            Some(r) => r.waiting_total(),
            None => self.lock().by_request.len(),
        }
    }

    /// Runs one operation for request `id` of connection `session`.
    ///
    /// An answer that waits for a commit (persistent namespaces) goes to the function `call`
    /// makes (only then, under the namespaces' lock), called by the database's writer thread,
    /// and this returns `None`; without `call` it is an [`Outcome::Later`].
    pub(crate) fn submit<F>(
        &self,
        session: u64,
        id: u64,
        op: NamespaceOp,
        call: Option<F>,
    ) -> Option<Outcome>
    where
        F: FnOnce() -> Box<dyn FnOnce(Reply) + Send>,
    {
        if let Some(r) = &self.redis {
            return Some(r.submit(session, id, op));
        }
        let mut st = self.lock();
        let outcome = match self.run(&mut st, session, id, op) {
            Ok(o) => o,
            Err(f) => Outcome::Done(Err(f)),
        };
        if !st.writes_pending() {
            return Some(outcome);
        }
        // Group commit: the answer waits until the writes made so far are committed.
        match (outcome, call) {
            (Outcome::Done(reply), Some(call)) => {
                st.answer(Answer::Call(call()), reply, None);
                None
            }
            (Outcome::Done(reply), None) => {
                let (tx, rx) = oneshot::channel();
                st.answer(Answer::Channel(tx), reply, None);
                Some(Outcome::Later(Pending(Box::pin(async move {
                    Outcome::Done(rx.await.unwrap_or_else(|_| {
                        Err(failure(DbrCode::BeGeneral, "the namespaces stopped"))
                    }))
                }))))
            }
            (other, _) => Some(other),
        }
    }

    fn run(&self, st: &mut State, session: u64, id: u64, op: NamespaceOp) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        match op {
            NamespaceOp::Create {
                name,
                level,
                groups,
            } => self.create(st, session, name, level, groups),
            NamespaceOp::Attach { name } => {
                let Some(space) = st.spaces.get_mut(&name) else {
                    return Err(failure(DbrCode::Unavail, format!("no namespace `{name}`")));
                };
                space.refcount += 1;
                let info = space.info(&name);
                st.attach_session(session, &name);
                done(Response::Namespace(info))
            }
            NamespaceOp::Detach { name } => {
                st.held(session, &name)?;
                st.release_session_ref(session, &name);
                st.detach_one(&name)?;
                done(Response::Done)
            }
            NamespaceOp::Delete { name } => self.delete(st, session, name),
            NamespaceOp::Query { name } => done(Response::Namespace(st.space(&name)?.info(&name))),
            NamespaceOp::List => {
                let mut names: Vec<String> = st.spaces.keys().cloned().collect();
                names.sort();
                done(Response::Names { names, done: true })
            }
            NamespaceOp::Put { ns, key, value } => {
                st.held(session, &ns)?;
                check_put(&key, &value, self.max_value)?;
                st.push(&ns, &key, value, false)?;
                st.serve(&ns, &key);
                done(Response::Done)
            }
            NamespaceOp::Restore { ns, key, value } => {
                st.held(session, &ns)?;
                check_name("a tuple name", &key, DbrCode::Invalid)?;
                st.push(&ns, &key, value, true)?;
                st.serve(&ns, &key);
                done(Response::Done)
            }
            NamespaceOp::Read {
                ns,
                key,
                index,
                wait,
                capacity,
                partial,
            } => self.wait_for(
                st,
                session,
                id,
                ns,
                key,
                WaitKind::Read(index),
                wait,
                capacity,
                partial,
            ),
            NamespaceOp::Get {
                ns,
                key,
                wait,
                capacity,
                partial,
            } => self.wait_for(
                st,
                session,
                id,
                ns,
                key,
                WaitKind::Get,
                wait,
                capacity,
                partial,
            ),
            NamespaceOp::Remove { ns, key } => self.remove(st, session, ns, key),
            NamespaceOp::Move { from, key, to } => self.move_key(st, session, from, key, to),
            NamespaceOp::TestKey { ns, key } => {
                let space = st.held(session, &ns)?;
                done(Response::Bool(space.tuples.contains_key(&key)))
            }
            NamespaceOp::Directory { ns, pattern, limit } => {
                if !st.spaces.contains_key(&ns) {
                    return Err(failure(DbrCode::Unavail, format!("no namespace `{ns}`")));
                }
                st.held(session, &ns)?;
                done(st.names(&ns, &pattern, None, limit))
            }
            NamespaceOp::Iterate {
                ns,
                pattern,
                after,
                limit,
            } => {
                if !st.spaces.contains_key(&ns) {
                    return Err(failure(DbrCode::Unavail, format!("no namespace `{ns}`")));
                }
                st.held(session, &ns)?;
                done(st.names(&ns, &pattern, after.as_deref(), limit))
            }
        }
    }

    fn create(
        &self,
        st: &mut State,
        session: u64,
        name: String,
        level: u8,
        groups: Vec<String>,
    ) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        check_create(&name, level)?;
        if st.spaces.contains_key(&name) {
            return Err(failure(
                DbrCode::Exists,
                format!("namespace `{name}` exists"),
            ));
        }
        let space = Space::new(level, groups);
        if space.persistent {
            st.db(&self.data_dir)?
                .create_space(&name, level, &space.groups)?;
        }
        let info = space.info(&name);
        st.spaces.insert(name.clone(), space);
        st.attach_session(session, &name);
        done(Response::Namespace(info))
    }

    fn delete(&self, st: &mut State, session: u64, name: String) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        let persistent = st.held(session, &name)?.persistent;
        if persistent {
            st.db(&self.data_dir)?.mark(&name)?;
        }
        st.spaces.get_mut(&name).expect("held").marked = true;
        st.release_session_ref(session, &name);
        if st.detach_one(&name)? {
            done(Response::Done)
        } else {
            Err(failure(
                DbrCode::NsBusy,
                format!("namespace `{name}` is marked for deletion and still attached"),
            ))
        }
    }

    fn remove(&self, st: &mut State, session: u64, ns: String, key: String) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        let persistent = st.held(session, &ns)?.persistent;
        if !st.spaces[&ns].tuples.contains_key(&key) {
            return Err(failure(DbrCode::Unavail, format!("no tuple `{key}`")));
        }
        if persistent {
            st.db(&self.data_dir)?.delete_key(&ns, &key)?;
        }
        let space = st.spaces.get_mut(&ns).expect("held");
        if let Some(q) = space.tuples.remove(&key) {
            space.total_values -= q.len() as u64;
        }
        done(Response::Done)
    }

    /// `move` (DB-18): atomic, in one transaction when either side persists.
    fn move_key(
        &self,
        st: &mut State,
        session: u64,
        from: String,
        key: String,
        to: String,
    ) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        if from == to {
            // DB-18: same handle, nothing checked.
            return done(Response::Done);
        }
        let src_p = st.held(session, &from)?.persistent;
        let dst_p = st.held(session, &to)?.persistent;
        if !st.spaces[&from].tuples.contains_key(&key) {
            return Err(failure(DbrCode::Unavail, format!("no tuple `{key}`")));
        }
        if st.spaces[&to].tuples.contains_key(&key) {
            return Err(failure(
                DbrCode::Exists,
                format!("tuple `{key}` exists in `{to}`"),
            ));
        }
        if src_p || dst_p {
            // One transaction: all values or none (DB-18, diverging from the
            // original's three steps).
            let values = st.spaces[&from].tuples[&key].clone();
            st.db(&self.data_dir)?
                .move_key((&from, src_p), (&to, dst_p), &key, values.iter())?;
        }
        let src = st.spaces.get_mut(&from).expect("held");
        let q = src.tuples.remove(&key).expect("checked");
        src.total_values -= q.len() as u64;
        let dst = st.spaces.get_mut(&to).expect("held");
        let last = q.back().map_or(0, |t| t.0);
        dst.next_seq = dst.next_seq.max(last + 1);
        dst.total_values += q.len() as u64;
        dst.tuples.insert(key.clone(), q);
        st.serve(&to, &key);
        done(Response::Done)
    }

    #[allow(clippy::too_many_arguments)]
    fn wait_for(
        &self,
        st: &mut State,
        session: u64,
        id: u64,
        ns: String,
        key: String,
        kind: WaitKind,
        wait: Wait,
        capacity: Option<u64>,
        partial: bool,
    ) -> Res<Outcome> {
        st.held(session, &ns)?;
        check_name("a tuple name", &key, DbrCode::Invalid)?;
        if let Some(reply) = st.take(&ns, &key, kind, capacity, partial) {
            return Ok(Outcome::Done(reply));
        }
        let timeout = wait_timeout(wait, &key)?;
        waiter_room(&st.by_request, session, id, self.max_waiters)?;
        let (tx, rx) = oneshot::channel();
        if let Some(old) = st.remove_waiter(session, id) {
            // A client reusing an id of a request still waiting: the old one is cancelled.
            let _ = old
                .tx
                .send(Err(failure(DbrCode::Cancelled, "request id reused")));
        }
        st.by_request
            .insert((session, id), (ns.clone(), key.clone()));
        st.waiters
            .entry(ns)
            .or_default()
            .entry(key)
            .or_default()
            .push_back(Waiter {
                session,
                id,
                kind,
                capacity,
                partial,
                tx,
            });
        Ok(Outcome::Wait { rx, timeout })
    }

    /// The waiter's time is up: true if it was still waiting (and is now gone, so it answers
    /// TIMEOUT); false if it was served or cancelled meanwhile (its receiver holds the answer).
    pub fn expire(&self, session: u64, id: u64) -> bool {
        if let Some(r) = &self.redis {
            return r.expire(session, id);
        }
        self.lock().remove_waiter(session, id).is_some()
    }

    /// Cancels a waiting request (DB-25): it answers CANCELLED and never consumes a value.
    /// Nothing happens if it is not waiting (already answered, or not a blocking request).
    pub fn cancel(&self, session: u64, id: u64) {
        if let Some(r) = &self.redis {
            return r.cancel(session, id);
        }
        let w = self.lock().remove_waiter(session, id);
        if let Some(w) = w {
            let _ = w.tx.send(Err(failure(
                DbrCode::Cancelled,
                "the request was cancelled",
            )));
        }
    }

    /// A connection ended: its waiters go away and its attachments are released (DB-33),
    /// which may complete a pending delete.
    pub fn release_session(&self, session: u64) {
        if let Some(r) = &self.redis {
            return r.release_session(session);
        }
        let mut st = self.lock();
        let ids: Vec<u64> = st
            .by_request
            .range((session, 0)..=(session, u64::MAX))
            .map(|((_, id), _)| *id)
            .collect();
        for id in ids {
            st.remove_waiter(session, id);
        }
        if let Some(held) = st.attached.remove(&session) {
            for (ns, n) in held {
                for _ in 0..n {
                    if let Err(e) = st.detach_one(&ns) {
                        tracing::warn!(ns, "releasing a namespace failed: {e:?}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob::glob_match;

    #[test]
    fn db19_redis_glob_rules() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(m("*", ""));
        assert!(m("*", "abc"));
        assert!(m("a*", "abc"));
        assert!(!m("a*", "bac"));
        assert!(m("*c", "abc"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[ab]x", "bx"));
        assert!(!m("[^ab]x", "bx"));
        assert!(m("[^ab]x", "cx"));
        assert!(m("k[0-9]", "k7"));
        assert!(m("k[9-0]", "k7"));
        assert!(!m("k[0-9]", "ka"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("[\\]]", "]"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b*", "xxbxxaxx"));
        assert!(m("key-*", "key-1"));
        assert!(!m("abc", "abcd"));
    }
}
