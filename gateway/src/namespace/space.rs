//! The tuple-space rules (DB-01..25): namespaces with their reference counts and delete
//! mark, a FIFO of values per tuple name, and the waiters of blocked `read`/`get`, served in
//! arrival order. Persistent namespaces write through [`super::persist`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, Weak};

use broker_wasm::dbr::{self, DbrCode};
use broker_wasm::protocol::{NamespaceInfo, Response};
use broker_wasm::Data;
use tokio::sync::oneshot;

use super::answer::{Answer, Deferred};
use super::persist::{Db, PutBack};
use super::{failure, too_big, Reply, Res};

#[derive(Debug)]
pub(super) struct Space {
    pub(super) level: u8,
    pub(super) groups: Vec<String>,
    pub(super) refcount: u64,
    pub(super) marked: bool,
    pub(super) persistent: bool,
    /// Tuple name -> FIFO of (sequence number in SQLite, value). Never holds empty queues.
    pub(super) tuples: BTreeMap<String, VecDeque<(i64, Data)>>,
    pub(super) total_values: u64,
    pub(super) next_seq: i64,
}

impl Space {
    /// A new, empty namespace with one attachment (its creator's).
    pub(super) fn new(level: u8, groups: Vec<String>) -> Space {
        Space {
            level,
            groups,
            refcount: 1,
            marked: false,
            persistent: broker_wasm::dbr::level_persists(level),
            tuples: BTreeMap::new(),
            total_values: 0,
            next_seq: 1,
        }
    }

    /// A persistent namespace loaded at start: attached by nobody yet.
    pub(super) fn from_stored(stored: super::persist::Stored) -> Space {
        let mut space = Space::new(stored.level, stored.groups);
        space.refcount = 0;
        space.persistent = true;
        for (key, seq, value) in stored.values {
            space.tuples.entry(key).or_default().push_back((seq, value));
            space.total_values += 1;
            space.next_seq = space.next_seq.max(seq + 1);
        }
        space
    }

    pub(super) fn info(&self, name: &str) -> NamespaceInfo {
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
pub(super) enum WaitKind {
    Read(u64),
    Get,
}

#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) session: u64,
    pub(super) id: u64,
    pub(super) kind: WaitKind,
    pub(super) capacity: Option<u64>,
    pub(super) partial: bool,
    pub(super) tx: oneshot::Sender<Reply>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) spaces: HashMap<String, Space>,
    /// Namespace -> tuple name -> waiters in arrival order.
    pub(super) waiters: HashMap<String, HashMap<String, VecDeque<Waiter>>>,
    /// (session, request id) -> (namespace, tuple name) of a registered waiter.
    /// Ordered, so one connection's waiters are a range (limit and release).
    pub(super) by_request: BTreeMap<(u64, u64), (String, String)>,
    /// Session -> namespace -> attachments held by that session.
    pub(super) attached: HashMap<u64, HashMap<String, u64>>,
    pub(super) db: Option<Db>,
    /// This state, for the writer thread the database starts.
    pub(super) me: Weak<Mutex<State>>,
}

impl State {
    pub(super) fn space(&self, ns: &str) -> Res<&Space> {
        self.spaces
            .get(ns)
            .ok_or_else(|| failure(DbrCode::NsInval, format!("no namespace `{ns}`")))
    }

    pub(super) fn attachments(&self, session: u64, ns: &str) -> u64 {
        self.attached
            .get(&session)
            .and_then(|m| m.get(ns))
            .copied()
            .unwrap_or(0)
    }

    /// The namespace, if it exists and this session holds it (a live handle).
    pub(super) fn held(&self, session: u64, ns: &str) -> Res<&Space> {
        let space = self.space(ns)?;
        if self.attachments(session, ns) == 0 {
            return Err(failure(
                DbrCode::NsInval,
                format!("namespace `{ns}` is not attached by this connection"),
            ));
        }
        Ok(space)
    }

    /// The database, opened on first use.
    pub(super) fn db(&mut self, data_dir: &Path) -> Res<&mut Db> {
        if self.db.is_none() {
            self.db = Some(Db::start(Db::open(data_dir)?, put_back(self.me.clone()))?);
        }
        Ok(self.db.as_mut().expect("opened above"))
    }

    /// Whether writes are not committed yet.
    pub(super) fn writes_pending(&self) -> bool {
        self.db.as_ref().is_some_and(Db::writes_pending)
    }

    /// Answers `tx` now, or once the writes made so far are committed. `taken_from`: the
    /// value a waiting getter took from (ns, key), put back in front if the getter is gone.
    pub(super) fn answer(&mut self, tx: Answer, reply: Reply, taken_from: Option<(&str, &str)>) {
        match &self.db {
            Some(db) if db.writes_pending() => db.after(Deferred {
                tx,
                reply,
                taken_from: taken_from.map(|(n, k)| (n.to_owned(), k.to_owned())),
            }),
            _ => {
                if let (Err(Ok(Response::Tuple { value, .. })), Some((ns, key))) =
                    (tx.send(reply), taken_from)
                {
                    // The receiver went away in the meantime: never lose the value.
                    let _ = self.push(ns, key, value, true);
                }
            }
        }
    }

    /// A value whose getter went away before its answer goes back in front of its tuple
    /// (if the namespace is still there), and serves waiters.
    pub(super) fn put_back(&mut self, ns: &str, key: &str, value: Data) {
        if self.spaces.contains_key(ns) {
            let _ = self.push(ns, key, value, true);
            self.serve(ns, key);
        }
    }

    pub(super) fn attach_session(&mut self, session: u64, ns: &str) {
        *self
            .attached
            .entry(session)
            .or_default()
            .entry(ns.to_owned())
            .or_default() += 1;
    }

    /// Drops one attachment of `session`; false if it held none.
    pub(super) fn release_session_ref(&mut self, session: u64, ns: &str) -> bool {
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
    pub(super) fn detach_one(&mut self, ns: &str) -> Res<bool> {
        let Some(space) = self.spaces.get_mut(ns) else {
            return Ok(false);
        };
        space.refcount = space.refcount.saturating_sub(1);
        if space.refcount > 0 || !space.marked {
            return Ok(false);
        }
        if space.persistent {
            if let Some(db) = self.db.as_mut() {
                db.delete_space(ns)?;
            }
        }
        self.spaces.remove(ns);
        // Waiters of a deleted namespace fail; their handles are stale.
        if let Some(keys) = self.waiters.remove(ns) {
            for (_, list) in keys {
                for w in list {
                    self.by_request.remove(&(w.session, w.id));
                    self.answer(
                        Answer::Channel(w.tx),
                        Err(failure(
                            DbrCode::NsInval,
                            format!("namespace `{ns}` was deleted"),
                        )),
                        None,
                    );
                }
            }
        }
        Ok(true)
    }

    pub(super) fn push(&mut self, ns: &str, key: &str, value: Data, front: bool) -> Res<()> {
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
            self.db
                .as_mut()
                .ok_or_else(|| failure(DbrCode::NoConnect, "no database"))?
                .insert(ns, key, seq, &value)?;
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
    pub(super) fn pop(&mut self, ns: &str, key: &str) -> Res<Data> {
        let space = self.spaces.get(ns).expect("checked by the caller");
        let seq = space.tuples.get(key).and_then(|q| q.front()).map(|t| t.0);
        let Some(seq) = seq else {
            return Err(failure(DbrCode::Unavail, "empty"));
        };
        if space.persistent {
            self.db
                .as_mut()
                .ok_or_else(|| failure(DbrCode::NoConnect, "no database"))?
                .delete_value(ns, key, seq)?;
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

    pub(super) fn peek(&self, ns: &str, key: &str, index: u64) -> Option<&Data> {
        self.spaces
            .get(ns)?
            .tuples
            .get(key)?
            .get(usize::try_from(index).ok()?)
            .map(|t| &t.1)
    }

    /// Read or get now if possible: `None` if the value is not there (yet).
    pub(super) fn take(
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
    pub(super) fn serve(&mut self, ns: &str, key: &str) {
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
                    self.answer(Answer::Channel(w.tx), reply, None);
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
                    self.answer(Answer::Channel(w.tx), reply, Some((ns, key)));
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

    pub(super) fn remove_waiter(&mut self, session: u64, id: u64) -> Option<Waiter> {
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

    pub(super) fn names(
        &self,
        ns: &str,
        pattern: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Response {
        let space = &self.spaces[ns];
        let range = match after {
            Some(a) => space
                .tuples
                .range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => space.tuples.range::<str, _>(..),
        };
        super::page(range.map(|(name, _)| name.as_str()), pattern, limit)
    }
}

/// What the database's writer calls for a value whose getter went away before its answer:
/// [`State::put_back`] on `state`, if it is still there.
pub(super) fn put_back(state: Weak<Mutex<State>>) -> PutBack {
    Box::new(move |ns, key, value| {
        if let Some(state) = state.upgrade() {
            super::lock(&state).put_back(ns, key, value);
        }
    })
}
