//! Data Broker namespaces in the gateway (DB-01..25, design decision 6): a registry of named
//! tuple spaces, each holding a FIFO of typed values per tuple name, with reference counts
//! and the delete mark, blocking `read`/`get` served by server-side waiters, atomic `move`,
//! and glob `directory`/iterator.
//!
//! Every operation runs under one mutex (the namespaces' single writer), so each is atomic
//! with respect to all clients: a value is popped by exactly one `get`, a `move` is never
//! observed half-done. Values live in memory; namespaces of a `PERMANENT_*` level are also
//! written through to SQLite (`<data-dir>/namespaces.sqlite3`, WAL, `synchronous=NORMAL`)
//! before the operation is acknowledged, and are loaded back at start.
//!
//! Waiting: a blocked `read`/`get` registers a waiter for its (namespace, name). A `put`
//! (or `move`, `restore`) serves the waiters of that name: every waiting reader whose index
//! exists gets a copy, then waiting getters, oldest first, each pop one value. A waiter is
//! removed under the same lock by its timeout or cancellation, so a getter that timed out
//! or was cancelled never consumes a value (DB-15, DB-25).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::protocol::{Failure, NamespaceInfo, NamespaceOp, Response, Wait};
use broker_wasm::Data;
use rusqlite::{params, Connection};
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

/// File name of the SQLite database under the data directory.
pub const DB_FILE: &str = "namespaces.sqlite3";

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
}

#[derive(Debug)]
struct Space {
    level: u8,
    groups: Vec<String>,
    refcount: u64,
    marked: bool,
    persistent: bool,
    /// Tuple name -> FIFO of (sequence number in SQLite, value). Never holds empty queues.
    tuples: BTreeMap<String, VecDeque<(i64, Data)>>,
    total_values: u64,
    next_seq: i64,
}

impl Space {
    fn info(&self, name: &str) -> NamespaceInfo {
        NamespaceInfo {
            name: name.to_owned(),
            level: self.level,
            groups: self.groups.clone(),
            refcount: self.refcount,
            marked_for_delete: self.marked,
            tuple_names: self.tuples.len() as u64,
            total_values: self.total_values,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum WaitKind {
    Read(u64),
    Get,
}

#[derive(Debug)]
struct Waiter {
    session: u64,
    id: u64,
    kind: WaitKind,
    capacity: Option<u64>,
    partial: bool,
    tx: oneshot::Sender<Reply>,
}

#[derive(Debug, Default)]
struct State {
    spaces: HashMap<String, Space>,
    /// Namespace -> tuple name -> waiters in arrival order.
    waiters: HashMap<String, HashMap<String, VecDeque<Waiter>>>,
    /// (session, request id) -> (namespace, tuple name) of a registered waiter.
    /// Ordered, so one connection's waiters are a range (limit and release).
    by_request: BTreeMap<(u64, u64), (String, String)>,
    /// Session -> namespace -> attachments held by that session.
    attached: HashMap<u64, HashMap<String, u64>>,
    db: Option<Connection>,
}

/// The namespaces of one endpoint.
#[derive(Debug)]
pub struct Namespaces {
    state: Mutex<State>,
    data_dir: PathBuf,
    max_value: u64,
    /// Most blocked reads/gets one connection may have waiting.
    max_waiters: usize,
}

type Res<T> = Result<T, Failure>;

fn sql_err(e: rusqlite::Error) -> Failure {
    failure(DbrCode::BeGeneral, format!("SQLite: {e}"))
}

fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS ns_spaces(
             name TEXT PRIMARY KEY, level INTEGER NOT NULL, groups TEXT NOT NULL,
             marked INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE IF NOT EXISTS ns_tuples(
             ns TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB NOT NULL,
             PRIMARY KEY(ns, key, seq)) WITHOUT ROWID;",
    )?;
    Ok(db)
}

fn check_name(what: &str, name: &str, code: DbrCode) -> Res<()> {
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

/// The answer for a value that does not fit the client's buffer (DB-13), or `None` if it fits.
fn too_big(value: &Data, capacity: Option<u64>, partial: bool) -> Option<Reply> {
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

impl State {
    fn space(&self, ns: &str) -> Res<&Space> {
        self.spaces
            .get(ns)
            .ok_or_else(|| failure(DbrCode::NsInval, format!("no namespace `{ns}`")))
    }

    fn attachments(&self, session: u64, ns: &str) -> u64 {
        self.attached
            .get(&session)
            .and_then(|m| m.get(ns))
            .copied()
            .unwrap_or(0)
    }

    /// The namespace, if it exists and this session holds it (a live handle).
    fn held(&self, session: u64, ns: &str) -> Res<&Space> {
        let space = self.space(ns)?;
        if self.attachments(session, ns) == 0 {
            return Err(failure(
                DbrCode::NsInval,
                format!("namespace `{ns}` is not attached by this connection"),
            ));
        }
        Ok(space)
    }

    fn db(&mut self, data_dir: &Path) -> Res<&Connection> {
        if self.db.is_none() {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                failure(
                    DbrCode::NoConnect,
                    format!("cannot create {}: {e}", data_dir.display()),
                )
            })?;
            let db = open_db(&data_dir.join(DB_FILE)).map_err(|e| {
                failure(DbrCode::NoConnect, format!("cannot open the database: {e}"))
            })?;
            self.db = Some(db);
        }
        Ok(self.db.as_ref().expect("opened above"))
    }

    fn attach_session(&mut self, session: u64, ns: &str) {
        *self
            .attached
            .entry(session)
            .or_default()
            .entry(ns.to_owned())
            .or_default() += 1;
    }

    /// Drops one attachment of `session`; false if it held none.
    fn release_session_ref(&mut self, session: u64, ns: &str) -> bool {
        let Some(m) = self.attached.get_mut(&session) else {
            return false;
        };
        let Some(n) = m.get_mut(ns) else { return false };
        *n -= 1;
        if *n == 0 {
            m.remove(ns);
            if m.is_empty() {
                self.attached.remove(&session);
            }
        }
        true
    }

    /// One global detach (DB-04); deletes the namespace when the count reaches 0 and it is
    /// marked. True if it was deleted.
    fn detach_one(&mut self, ns: &str) -> Res<bool> {
        let Some(space) = self.spaces.get_mut(ns) else {
            return Ok(false);
        };
        space.refcount = space.refcount.saturating_sub(1);
        if space.refcount > 0 || !space.marked {
            return Ok(false);
        }
        if space.persistent {
            if let Some(db) = self.db.as_mut() {
                let tx = db.transaction().map_err(sql_err)?;
                tx.execute("DELETE FROM ns_tuples WHERE ns = ?1", [ns])
                    .map_err(sql_err)?;
                tx.execute("DELETE FROM ns_spaces WHERE name = ?1", [ns])
                    .map_err(sql_err)?;
                tx.commit().map_err(sql_err)?;
            }
        }
        self.spaces.remove(ns);
        // Waiters of a deleted namespace fail; their handles are stale.
        if let Some(keys) = self.waiters.remove(ns) {
            for (_, list) in keys {
                for w in list {
                    self.by_request.remove(&(w.session, w.id));
                    let _ = w.tx.send(Err(failure(
                        DbrCode::NsInval,
                        format!("namespace `{ns}` was deleted"),
                    )));
                }
            }
        }
        Ok(true)
    }

    fn push(&mut self, ns: &str, key: &str, value: Data, front: bool) -> Res<()> {
        let space = self.spaces.get_mut(ns).expect("checked by the caller");
        let seq = if front {
            space
                .tuples
                .get(key)
                .and_then(|q| q.front())
                .map_or(space.next_seq, |(s, _)| s - 1)
        } else {
            space.next_seq
        };
        if space.persistent {
            let bytes = broker_wasm::binary::to_vec(&value)
                .map_err(|e| failure(DbrCode::Invalid, e.to_string()))?;
            let db = self
                .db
                .as_ref()
                .ok_or_else(|| failure(DbrCode::NoConnect, "no database"))?;
            db.prepare_cached("INSERT INTO ns_tuples(ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![ns, key, seq, bytes]))
                .map_err(sql_err)?;
        }
        let space = self.spaces.get_mut(ns).expect("checked by the caller");
        if !front || seq == space.next_seq {
            space.next_seq = seq + 1;
        }
        let q = match space.tuples.get_mut(key) {
            Some(q) => q,
            None => space.tuples.entry(key.to_owned()).or_default(),
        };
        if front {
            q.push_front((seq, value));
        } else {
            q.push_back((seq, value));
        }
        space.total_values += 1;
        Ok(())
    }

    /// Pops the head of a non-empty queue.
    fn pop(&mut self, ns: &str, key: &str) -> Res<Data> {
        let space = self.spaces.get(ns).expect("checked by the caller");
        let seq = space.tuples.get(key).and_then(|q| q.front()).map(|t| t.0);
        let Some(seq) = seq else {
            return Err(failure(DbrCode::Unavail, "empty"));
        };
        if space.persistent {
            let db = self
                .db
                .as_ref()
                .ok_or_else(|| failure(DbrCode::NoConnect, "no database"))?;
            db.prepare_cached("DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2 AND seq = ?3")
                .and_then(|mut s| s.execute(params![ns, key, seq]))
                .map_err(sql_err)?;
        }
        let space = self.spaces.get_mut(ns).expect("checked by the caller");
        let q = space.tuples.get_mut(key).expect("non-empty");
        let (_, value) = q.pop_front().expect("non-empty");
        if q.is_empty() {
            space.tuples.remove(key);
        }
        space.total_values -= 1;
        Ok(value)
    }

    fn peek(&self, ns: &str, key: &str, index: u64) -> Option<&Data> {
        self.spaces
            .get(ns)?
            .tuples
            .get(key)?
            .get(usize::try_from(index).ok()?)
            .map(|t| &t.1)
    }

    /// Read or get now if possible: `None` if the value is not there (yet).
    fn take(
        &mut self,
        ns: &str,
        key: &str,
        kind: WaitKind,
        capacity: Option<u64>,
        partial: bool,
    ) -> Option<Reply> {
        let index = match kind {
            WaitKind::Read(i) => i,
            WaitKind::Get => 0,
        };
        let value = self.peek(ns, key, index)?;
        if let Some(r) = too_big(value, capacity, partial) {
            return Some(r);
        }
        Some(match kind {
            WaitKind::Read(_) => {
                let size = dbr::value_size(value);
                Ok(Response::Tuple {
                    value: value.clone(),
                    size,
                })
            }
            WaitKind::Get => self.pop(ns, key).map(|value| Response::Tuple {
                size: dbr::value_size(&value),
                value,
            }),
        })
    }

    /// Serves the waiters of (ns, key) after values arrived.
    fn serve(&mut self, ns: &str, key: &str) {
        let Some(mut list) = self.waiters.get_mut(ns).and_then(|m| m.remove(key)) else {
            return;
        };
        // Readers first: every waiting reader whose element exists gets a copy.
        let mut rest = VecDeque::with_capacity(list.len());
        while let Some(w) = list.pop_front() {
            if let WaitKind::Read(_) = w.kind {
                if w.tx.is_closed() {
                    self.by_request.remove(&(w.session, w.id));
                    continue;
                }
                if let Some(reply) = self.take(ns, key, w.kind, w.capacity, w.partial) {
                    self.by_request.remove(&(w.session, w.id));
                    let _ = w.tx.send(reply);
                    continue;
                }
            }
            rest.push_back(w);
        }
        // Then getters, oldest first, one value each.
        let mut list = rest;
        let mut rest = VecDeque::with_capacity(list.len());
        while let Some(w) = list.pop_front() {
            if let WaitKind::Get = w.kind {
                if w.tx.is_closed() {
                    self.by_request.remove(&(w.session, w.id));
                    continue;
                }
                if let Some(reply) = self.take(ns, key, w.kind, w.capacity, w.partial) {
                    self.by_request.remove(&(w.session, w.id));
                    if let Err(Ok(Response::Tuple { value, .. })) = w.tx.send(reply) {
                        // The receiver went away in the meantime: never lose the value.
                        let _ = self.push(ns, key, value, true);
                    }
                    continue;
                }
            }
            rest.push_back(w);
        }
        if !rest.is_empty() {
            self.waiters
                .entry(ns.to_owned())
                .or_default()
                .insert(key.to_owned(), rest);
        } else if let Some(m) = self.waiters.get(ns) {
            if m.is_empty() {
                self.waiters.remove(ns);
            }
        }
    }

    fn remove_waiter(&mut self, session: u64, id: u64) -> Option<Waiter> {
        let (ns, key) = self.by_request.remove(&(session, id))?;
        let m = self.waiters.get_mut(&ns)?;
        let list = m.get_mut(&key)?;
        let pos = list
            .iter()
            .position(|w| w.session == session && w.id == id)?;
        let w = list.remove(pos);
        if list.is_empty() {
            m.remove(&key);
            if m.is_empty() {
                self.waiters.remove(&ns);
            }
        }
        w
    }

    fn names(&self, ns: &str, pattern: &str, after: Option<&str>, limit: u64) -> Response {
        let space = &self.spaces[ns];
        let limit = if limit == 0 { u64::MAX } else { limit };
        let pattern = if pattern.is_empty() { "*" } else { pattern };
        let range = match after {
            Some(a) => space
                .tuples
                .range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => space.tuples.range::<str, _>(..),
        };
        let mut names = Vec::new();
        let mut done = true;
        for (name, _) in range {
            if !glob_match(pattern.as_bytes(), name.as_bytes()) {
                continue;
            }
            if names.len() as u64 == limit {
                done = false;
                break;
            }
            names.push(name.clone());
        }
        Response::Names { names, done }
    }
}

impl Namespaces {
    /// The namespaces of an endpoint whose persistent state lives in `data_dir` (opened when
    /// the first persistent namespace is created, or at start if the database exists).
    pub fn new(data_dir: PathBuf, max_value: u64, max_waiters: usize) -> Namespaces {
        let mut state = State::default();
        let path = data_dir.join(DB_FILE);
        if path.exists() {
            match open_db(&path).and_then(|db| load(&db).map(|spaces| (db, spaces))) {
                Ok((db, spaces)) => {
                    state.spaces = spaces;
                    state.db = Some(db);
                }
                Err(e) => tracing::error!(path = %path.display(), "cannot load namespaces: {e}"),
            }
        }
        Namespaces {
            state: Mutex::new(state),
            data_dir,
            max_value,
            max_waiters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names of all namespaces.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().spaces.keys().cloned().collect();
        v.sort();
        v
    }

    /// Requests waiting for a value of (ns, key) now (for tests and the dashboard).
    pub fn waiting(&self, ns: &str, key: &str) -> usize {
        self.lock()
            .waiters
            .get(ns)
            .and_then(|m| m.get(key))
            .map_or(0, VecDeque::len)
    }

    /// Runs one operation for request `id` of connection `session`.
    pub fn submit(&self, session: u64, id: u64, op: NamespaceOp) -> Outcome {
        match self.run(session, id, op) {
            Ok(o) => o,
            Err(f) => Outcome::Done(Err(f)),
        }
    }

    fn run(&self, session: u64, id: u64, op: NamespaceOp) -> Res<Outcome> {
        let done = |r: Response| Ok(Outcome::Done(Ok(r)));
        let mut st = self.lock();
        match op {
            NamespaceOp::Create {
                name,
                level,
                groups,
            } => {
                check_name("a namespace name", &name, DbrCode::NsInval)?;
                if level >= dbr::PERST_MAX {
                    return Err(failure(
                        DbrCode::Invalid,
                        format!("persistence level {level} is not 0..=5"),
                    ));
                }
                if st.spaces.contains_key(&name) {
                    return Err(failure(
                        DbrCode::Exists,
                        format!("namespace `{name}` exists"),
                    ));
                }
                let persistent = dbr::level_persists(level);
                if persistent {
                    let groups_json = serde_json::to_string(&groups).unwrap_or_default();
                    st.db(&self.data_dir)?
                        .execute(
                            "INSERT INTO ns_spaces(name, level, groups, marked) VALUES (?1, ?2, ?3, 0)",
                            params![name, level, groups_json],
                        )
                        .map_err(sql_err)?;
                }
                let space = Space {
                    level,
                    groups,
                    refcount: 1,
                    marked: false,
                    persistent,
                    tuples: BTreeMap::new(),
                    total_values: 0,
                    next_seq: 1,
                };
                let info = space.info(&name);
                st.spaces.insert(name.clone(), space);
                st.attach_session(session, &name);
                done(Response::Namespace(info))
            }
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
            NamespaceOp::Delete { name } => {
                let persistent = st.held(session, &name)?.persistent;
                if persistent {
                    st.db(&self.data_dir)?
                        .execute("UPDATE ns_spaces SET marked = 1 WHERE name = ?1", [&name])
                        .map_err(sql_err)?;
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
            NamespaceOp::Query { name } => done(Response::Namespace(st.space(&name)?.info(&name))),
            NamespaceOp::List => {
                let mut names: Vec<String> = st.spaces.keys().cloned().collect();
                names.sort();
                done(Response::Names { names, done: true })
            }
            NamespaceOp::Put { ns, key, value } => {
                st.held(session, &ns)?;
                check_name("a tuple name", &key, DbrCode::Invalid)?;
                let size = dbr::value_size(&value);
                if size > self.max_value {
                    return Err(failure(
                        DbrCode::NoMemory,
                        format!(
                            "the value has {size} bytes, the limit is {}",
                            self.max_value
                        ),
                    ));
                }
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
                &mut st,
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
                &mut st,
                session,
                id,
                ns,
                key,
                WaitKind::Get,
                wait,
                capacity,
                partial,
            ),
            NamespaceOp::Remove { ns, key } => {
                let persistent = st.held(session, &ns)?.persistent;
                if !st.spaces[&ns].tuples.contains_key(&key) {
                    return Err(failure(DbrCode::Unavail, format!("no tuple `{key}`")));
                }
                if persistent {
                    st.db(&self.data_dir)?
                        .execute(
                            "DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2",
                            [&ns, &key],
                        )
                        .map_err(sql_err)?;
                }
                let space = st.spaces.get_mut(&ns).expect("held");
                if let Some(q) = space.tuples.remove(&key) {
                    space.total_values -= q.len() as u64;
                }
                done(Response::Done)
            }
            NamespaceOp::Move { from, key, to } => {
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
                    let values: Vec<(i64, Vec<u8>)> = st.spaces[&from].tuples[&key]
                        .iter()
                        .map(|(s, v)| (*s, broker_wasm::binary::to_vec(v).unwrap_or_default()))
                        .collect();
                    let db = st.db(&self.data_dir)?;
                    let tx = db.unchecked_transaction().map_err(sql_err)?;
                    if src_p && dst_p {
                        tx.execute(
                            "UPDATE ns_tuples SET ns = ?1 WHERE ns = ?2 AND key = ?3",
                            [&to, &from, &key],
                        )
                        .map_err(sql_err)?;
                    } else if src_p {
                        tx.execute(
                            "DELETE FROM ns_tuples WHERE ns = ?1 AND key = ?2",
                            [&from, &key],
                        )
                        .map_err(sql_err)?;
                    } else {
                        for (seq, bytes) in &values {
                            tx.execute(
                                "INSERT INTO ns_tuples(ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)",
                                params![to, key, seq, bytes],
                            )
                            .map_err(sql_err)?;
                        }
                    }
                    tx.commit().map_err(sql_err)?;
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
        let timeout = match wait {
            Wait::NoWait => {
                return Err(failure(DbrCode::Unavail, format!("no tuple `{key}`")));
            }
            Wait::Timeout(t) if t.0 <= 0 => {
                return Err(failure(DbrCode::Timeout, format!("no tuple `{key}`")));
            }
            Wait::Timeout(t) => Some(Duration::from_nanos(t.0 as u64)),
            Wait::Forever => None,
        };
        let held = st
            .by_request
            .range((session, 0)..=(session, u64::MAX))
            .count();
        if held >= self.max_waiters && !st.by_request.contains_key(&(session, id)) {
            return Err(failure(
                DbrCode::NoMemory,
                format!(
                    "{held} blocked requests are waiting on this connection (limit {})",
                    self.max_waiters
                ),
            ));
        }
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
        self.lock().remove_waiter(session, id).is_some()
    }

    /// Cancels a waiting request (DB-25): it answers CANCELLED and never consumes a value.
    /// Nothing happens if it is not waiting (already answered, or not a blocking request).
    pub fn cancel(&self, session: u64, id: u64) {
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

fn load(db: &Connection) -> rusqlite::Result<HashMap<String, Space>> {
    let mut spaces = HashMap::new();
    let mut stmt = db.prepare("SELECT name, level, groups, marked FROM ns_spaces")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u8>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    let mut purge = Vec::new();
    for row in rows {
        let (name, level, groups, marked) = row?;
        if marked {
            // Marked for deletion and, after a restart, attached by nobody: deleted now.
            purge.push(name);
            continue;
        }
        spaces.insert(
            name,
            Space {
                level,
                groups: serde_json::from_str(&groups).unwrap_or_default(),
                refcount: 0,
                marked: false,
                persistent: true,
                tuples: BTreeMap::new(),
                total_values: 0,
                next_seq: 1,
            },
        );
    }
    for name in purge {
        db.execute("DELETE FROM ns_tuples WHERE ns = ?1", [&name])?;
        db.execute("DELETE FROM ns_spaces WHERE name = ?1", [&name])?;
    }
    let mut stmt = db.prepare("SELECT ns, key, seq, value FROM ns_tuples ORDER BY ns, key, seq")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let ns: String = r.get(0)?;
        let key: String = r.get(1)?;
        let seq: i64 = r.get(2)?;
        let bytes: Vec<u8> = r.get(3)?;
        let Ok(value) = broker_wasm::binary::from_slice::<Data>(&bytes) else {
            tracing::warn!(ns, key, seq, "skipping an undecodable value");
            continue;
        };
        let Some(space) = spaces.get_mut(&ns) else {
            continue;
        };
        space.tuples.entry(key).or_default().push_back((seq, value));
        space.total_values += 1;
        space.next_seq = space.next_seq.max(seq + 1);
    }
    Ok(spaces)
}

/// Redis `SCAN MATCH` glob rules (DB-19) over bytes: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`
/// and `\` escaping the next character; the pattern matches the whole name.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < pattern.len() {
            if pattern[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            if let Some(next) = match_one(pattern, pi, s[si]) {
                pi = next;
                si += 1;
                continue;
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < pattern.len() && pattern[pi] == b'*' {
        pi += 1;
    }
    pi == pattern.len()
}

/// If the single-character token at `p[pi..]` matches `c`, the index after the token.
fn match_one(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    match p[pi] {
        b'?' => Some(pi + 1),
        b'\\' if pi + 1 < p.len() => (p[pi + 1] == c).then_some(pi + 2),
        b'[' => {
            let mut i = pi + 1;
            let negate = i < p.len() && p[i] == b'^';
            if negate {
                i += 1;
            }
            let mut matched = false;
            while i < p.len() && p[i] != b']' {
                if p[i] == b'\\' && i + 1 < p.len() {
                    i += 1;
                    matched |= p[i] == c;
                } else if i + 2 < p.len() && p[i + 1] == b'-' {
                    let (mut lo, mut hi) = (p[i], p[i + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    matched |= (lo..=hi).contains(&c);
                    i += 2;
                } else {
                    matched |= p[i] == c;
                }
                i += 1;
            }
            let next = (i + 1).min(p.len());
            (matched != negate).then_some(next)
        }
        other => (other == c).then_some(pi + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

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
