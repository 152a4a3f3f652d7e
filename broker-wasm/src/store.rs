//! Data store semantics shared by masters and clones (ZB-48..62).
//!
//! [`mutate`] is what a master does to one key for one operation; [`Replica`] is the state of
//! a clone (snapshot, then updates in sequence order, with the change events of ZB-62). Both are
//! pure: the gateway's master adds time, persistence and fan-out, the client core adds the
//! wire.

use std::collections::BTreeMap;

use crate::codes::ErrorCode;
use crate::data::{Data, Timespan, Timestamp};
use crate::protocol::{ErrorInfo, NodeId, StoreEntry, StoreOp, StoreUpdate};

/// Why an operation failed, with Broker's error code.
pub type StoreError = ErrorInfo;

fn err(code: ErrorCode, context: impl Into<String>) -> StoreError {
    ErrorInfo {
        code,
        context: context.into(),
    }
}

fn clash(what: impl Into<String>) -> StoreError {
    err(ErrorCode::TypeClash, what)
}

/// What a mutating operation does to its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Store this value (insert or overwrite).
    Set(Data),
    /// Remove the key.
    Remove,
    /// Nothing changes (e.g. `put_unique` on an existing key, `erase` of an absent key).
    Unchanged,
}

/// Applies one mutating operation to the current value of its key (`None` = absent). `clear`
/// and the read operations are not per-key and are rejected here with `LogicError`.
///
/// The semantics follow Broker (ZB-48..54) with the spec's recommendations: type clashes are
/// errors the caller sees, arithmetic overflow is an error instead of wrapping, vectors get
/// positional `insert_into`/`remove_from`, and operations on an absent key that have nothing to
/// work on (`decrement`, `remove_from`, `pop`) report `no_such_key`.
pub fn mutate(op: &StoreOp, current: Option<&Data>) -> Result<Mutation, StoreError> {
    use Mutation::*;
    match op {
        StoreOp::Put { value, .. } => Ok(Set(value.clone())),
        StoreOp::PutUnique { value, .. } => Ok(match current {
            Some(_) => Unchanged,
            None => Set(value.clone()),
        }),
        StoreOp::Erase { .. } => Ok(if current.is_some() { Remove } else { Unchanged }),
        StoreOp::Increment { amount, .. } => match current {
            Some(v) => add(v, amount, 1).map(Set),
            None => add(&zero_of(amount)?, amount, 1).map(Set),
        },
        StoreOp::Decrement { amount, .. } => match current {
            Some(v) => add(v, amount, -1).map(Set),
            None => Err(err(ErrorCode::NoSuchKey, "decrement of an absent key")),
        },
        StoreOp::Append { value, .. } => {
            let Data::String(tail) = value else {
                return Err(clash(format!(
                    "append needs a string, got {}",
                    value.data_type().name()
                )));
            };
            match current {
                None => Ok(Set(Data::String(tail.clone()))),
                Some(Data::String(s)) => {
                    let mut s = s.clone();
                    s.extend_from_slice(tail);
                    Ok(Set(Data::String(s)))
                }
                Some(other) => Err(clash(format!("append to a {}", other.data_type().name()))),
            }
        }
        StoreOp::InsertInto { index, value, .. } => insert_into(current, index, value.as_ref()),
        StoreOp::RemoveFrom { index, .. } => match current {
            None => Err(err(ErrorCode::NoSuchKey, "remove_from an absent key")),
            Some(Data::Set(s)) => {
                let mut s = s.clone();
                s.remove(index);
                Ok(Set(Data::Set(s)))
            }
            Some(Data::Table(t)) => {
                let mut t = t.clone();
                t.remove(index);
                Ok(Set(Data::Table(t)))
            }
            Some(Data::Vector(v)) => {
                let i = vector_index(index, v.len(), false)?;
                let mut v = v.clone();
                v.remove(i);
                Ok(Set(Data::Vector(v)))
            }
            Some(other) => Err(clash(format!(
                "remove_from on a {}",
                other.data_type().name()
            ))),
        },
        StoreOp::Push { value, .. } => match current {
            None => Ok(Set(Data::Vector(vec![value.clone()]))),
            Some(Data::Vector(v)) => {
                let mut v = v.clone();
                v.push(value.clone());
                Ok(Set(Data::Vector(v)))
            }
            Some(Data::Set(s)) => {
                let mut s = s.clone();
                s.insert(value.clone());
                Ok(Set(Data::Set(s)))
            }
            Some(Data::Table(t)) => match value {
                Data::Vector(kv) if kv.len() == 2 => {
                    let mut t = t.clone();
                    t.insert(kv[0].clone(), kv[1].clone());
                    Ok(Set(Data::Table(t)))
                }
                Data::Vector(_) => Err(err(
                    ErrorCode::InvalidData,
                    "push onto a table needs a [key, value] pair",
                )),
                other => Err(clash(format!(
                    "push onto a table needs a [key, value] vector, got {}",
                    other.data_type().name()
                ))),
            },
            Some(other) => Err(clash(format!("push onto a {}", other.data_type().name()))),
        },
        StoreOp::Pop { .. } => match current {
            None => Err(err(ErrorCode::NoSuchKey, "pop from an absent key")),
            Some(Data::Vector(v)) => {
                let mut v = v.clone();
                v.pop();
                Ok(Set(Data::Vector(v)))
            }
            Some(other) => Err(clash(format!("pop from a {}", other.data_type().name()))),
        },
        StoreOp::Clear
        | StoreOp::Get { .. }
        | StoreOp::GetIndexFromValue { .. }
        | StoreOp::Exists { .. }
        | StoreOp::Keys
        | StoreOp::AwaitIdle => Err(err(ErrorCode::LogicError, "not a per-key mutation")),
    }
}

/// The key and relative expiry of a per-key operation.
pub fn key_and_expiry(op: &StoreOp) -> Option<(&Data, Option<Timespan>)> {
    match op {
        StoreOp::Put { key, expiry, .. }
        | StoreOp::PutUnique { key, expiry, .. }
        | StoreOp::Increment { key, expiry, .. }
        | StoreOp::Decrement { key, expiry, .. }
        | StoreOp::Append { key, expiry, .. }
        | StoreOp::InsertInto { key, expiry, .. }
        | StoreOp::RemoveFrom { key, expiry, .. }
        | StoreOp::Push { key, expiry, .. }
        | StoreOp::Pop { key, expiry } => Some((key, *expiry)),
        StoreOp::Erase { key }
        | StoreOp::Get { key }
        | StoreOp::GetIndexFromValue { key, .. }
        | StoreOp::Exists { key } => Some((key, None)),
        StoreOp::Clear | StoreOp::Keys | StoreOp::AwaitIdle => None,
    }
}

/// True for operations that change the store.
pub fn is_mutation(op: &StoreOp) -> bool {
    !matches!(
        op,
        StoreOp::Get { .. }
            | StoreOp::GetIndexFromValue { .. }
            | StoreOp::Exists { .. }
            | StoreOp::Keys
            | StoreOp::AwaitIdle
    )
}

fn zero_of(amount: &Data) -> Result<Data, StoreError> {
    Ok(match amount {
        Data::Count(_) => Data::Count(0),
        Data::Integer(_) => Data::Integer(0),
        Data::Real(_) => Data::Real(0.0),
        Data::Timespan(_) => Data::Timespan(Timespan(0)),
        other => {
            return Err(clash(format!(
                "increment by a {}",
                other.data_type().name()
            )))
        }
    })
}

/// `value + sign * amount` for the pairs of ZB-51; overflow is an error.
fn add(value: &Data, amount: &Data, sign: i8) -> Result<Data, StoreError> {
    let overflow = || err(ErrorCode::InvalidData, "arithmetic overflow");
    Ok(match (value, amount) {
        (Data::Count(v), Data::Count(a)) => Data::Count(if sign > 0 {
            v.checked_add(*a).ok_or_else(overflow)?
        } else {
            v.checked_sub(*a).ok_or_else(overflow)?
        }),
        (Data::Integer(v), Data::Integer(a)) => Data::Integer(if sign > 0 {
            v.checked_add(*a).ok_or_else(overflow)?
        } else {
            v.checked_sub(*a).ok_or_else(overflow)?
        }),
        (Data::Real(v), Data::Real(a)) => Data::Real(if sign > 0 { v + a } else { v - a }),
        (Data::Timespan(v), Data::Timespan(a)) => Data::Timespan(Timespan(if sign > 0 {
            v.0.checked_add(a.0).ok_or_else(overflow)?
        } else {
            v.0.checked_sub(a.0).ok_or_else(overflow)?
        })),
        (Data::Timestamp(v), Data::Timespan(a)) => Data::Timestamp(Timestamp(if sign > 0 {
            v.0.checked_add(a.0).ok_or_else(overflow)?
        } else {
            v.0.checked_sub(a.0).ok_or_else(overflow)?
        })),
        (v, a) => {
            return Err(clash(format!(
                "{} a {} by a {}",
                if sign > 0 { "increment" } else { "decrement" },
                v.data_type().name(),
                a.data_type().name()
            )))
        }
    })
}

/// A vector position from a count or a non-negative integer; `end_ok` allows `len` (insert).
fn vector_index(index: &Data, len: usize, end_ok: bool) -> Result<usize, StoreError> {
    let i = match index {
        Data::Count(c) => usize::try_from(*c).unwrap_or(usize::MAX),
        Data::Integer(i) if *i >= 0 => usize::try_from(*i).unwrap_or(usize::MAX),
        Data::Integer(_) => return Err(clash("negative vector index")),
        other => {
            return Err(clash(format!(
                "a vector index must be a count or integer, got {}",
                other.data_type().name()
            )))
        }
    };
    if i < len || (end_ok && i == len) {
        Ok(i)
    } else {
        Err(err(
            ErrorCode::NoSuchKey,
            format!("index {i} out of range for a vector of {len}"),
        ))
    }
}

fn insert_into(
    current: Option<&Data>,
    index: &Data,
    value: Option<&Data>,
) -> Result<Mutation, StoreError> {
    match (current, value) {
        (None, None) => Ok(Mutation::Set(Data::Set([index.clone()].into()))),
        (None, Some(v)) => Ok(Mutation::Set(Data::Table(
            [(index.clone(), v.clone())].into(),
        ))),
        (Some(Data::Set(s)), None) => {
            let mut s = s.clone();
            s.insert(index.clone());
            Ok(Mutation::Set(Data::Set(s)))
        }
        (Some(Data::Table(t)), Some(v)) => {
            let mut t = t.clone();
            t.insert(index.clone(), v.clone());
            Ok(Mutation::Set(Data::Table(t)))
        }
        (Some(Data::Vector(vec)), Some(v)) => {
            let i = vector_index(index, vec.len(), true)?;
            let mut vec = vec.clone();
            vec.insert(i, v.clone());
            Ok(Mutation::Set(Data::Vector(vec)))
        }
        (Some(Data::Set(_)), Some(_)) => Err(clash("insert_into a set takes no value")),
        (Some(Data::Table(_)), None) => Err(clash("insert_into a table needs a value")),
        (Some(Data::Vector(_)), None) => Err(clash("insert_into a vector needs a value")),
        (Some(other), _) => Err(clash(format!("insert_into a {}", other.data_type().name()))),
    }
}

/// `get_index_from_value` (ZB-55): set membership, table lookup, vector position.
pub fn index_of(value: &Data, index: &Data) -> Result<Data, StoreError> {
    match value {
        Data::Set(s) => Ok(Data::Boolean(s.contains(index))),
        Data::Table(t) => t
            .get(index)
            .cloned()
            .ok_or_else(|| err(ErrorCode::NoSuchKey, "no such index in the table")),
        Data::Vector(v) => Ok(v[vector_index(index, v.len(), false)?].clone()),
        other => Err(clash(format!(
            "get_index_from_value on a {}",
            other.data_type().name()
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Clones

/// A change applied to a replica (ZB-62).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Insert {
        key: Data,
        value: Data,
        expiry: Option<Timestamp>,
    },
    Update {
        key: Data,
        old: Data,
        value: Data,
        expiry: Option<Timestamp>,
    },
    Erase {
        key: Data,
    },
    Expire {
        key: Data,
    },
}

/// An entry of a replica.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Data,
    pub expiry: Option<Timestamp>,
}

/// What applying a snapshot or update did.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// The master is a different one than before (restart, failover): the application may
    /// want to know that the whole store was replaced (ZB-60).
    pub reset: bool,
    /// The replica just became (or is again) in sync.
    pub synced: bool,
}

/// Why an update could not be applied: the replica needs a new snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub expected: u64,
    pub got: u64,
}

/// A replica's state as a durable clone keeps it (see [`Replica::export`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SavedReplica {
    pub master: NodeId,
    pub seq: u64,
    pub entries: Vec<StoreEntry>,
}

/// Snapshot entries received so far, in arrival (key) order.
type Incoming = Vec<(Data, Entry)>;

/// The local state of a clone: entries as of master update `seq` (ZB-58).
#[derive(Debug, Default, Clone)]
pub struct Replica {
    entries: BTreeMap<Data, Entry>,
    master: Option<NodeId>,
    seq: u64,
    synced: bool,
    /// Waiting for the updates since `seq` and `CloneCurrent` (an `AttachCloneSince`).
    catching_up: bool,
    /// Entries of a snapshot still arriving in chunks (in key order, as masters send them;
    /// the map is built in bulk from them at the end).
    incoming: Option<(NodeId, u64, Incoming)>,
}

impl Replica {
    pub fn new() -> Replica {
        Replica::default()
    }

    /// True once a full snapshot was applied and no gap was seen since.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The master this replica follows, once known.
    pub fn master(&self) -> Option<NodeId> {
        self.master
    }

    /// The sequence number of the last applied update.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &Data) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn entries(&self) -> &BTreeMap<Data, Entry> {
        &self.entries
    }

    /// Marks the replica out of sync (connection lost, gap): reads still answer from the cache
    /// until the application's stale interval says otherwise.
    pub fn unsync(&mut self) {
        self.synced = false;
        self.catching_up = false;
        self.incoming = None;
    }

    /// Where this replica is, if it holds a master's state (to ask for the updates since,
    /// `AttachCloneSince`); from then on updates in order are applied until
    /// [`Replica::caught_up`].
    pub fn begin_catch_up(&mut self) -> Option<(NodeId, u64)> {
        let master = self.master?;
        self.synced = false;
        self.incoming = None;
        self.catching_up = true;
        Some((master, self.seq))
    }

    /// The gateway says the replica is now in sync with `master` as of `seq`; a mismatch is
    /// a [`Gap`] (the replica needs a snapshot).
    pub fn caught_up(&mut self, master: NodeId, seq: u64) -> Result<Applied, Gap> {
        if !self.catching_up || self.master != Some(master) || self.seq != seq {
            self.catching_up = false;
            return Err(Gap {
                expected: self.seq,
                got: seq,
            });
        }
        self.catching_up = false;
        self.synced = true;
        Ok(Applied {
            synced: true,
            ..Applied::default()
        })
    }

    /// The replica's state, to keep (a durable clone): master, seq and every entry. `None`
    /// unless in sync.
    pub fn export(&self) -> Option<SavedReplica> {
        let master = self.master.filter(|_| self.synced)?;
        Some(SavedReplica {
            master,
            seq: self.seq,
            entries: self
                .entries
                .iter()
                .map(|(k, e)| StoreEntry {
                    key: k.clone(),
                    value: e.value.clone(),
                    expiry: e.expiry,
                })
                .collect(),
        })
    }

    /// Restores a kept state: readable at once, not in sync until the gateway brings it up
    /// to date ([`Replica::begin_catch_up`]) or sends a snapshot.
    pub fn import(&mut self, saved: SavedReplica) {
        self.entries = saved
            .entries
            .into_iter()
            .map(|e| {
                (
                    e.key,
                    Entry {
                        value: e.value,
                        expiry: e.expiry,
                    },
                )
            })
            .collect();
        self.master = Some(saved.master);
        self.seq = saved.seq;
        self.synced = false;
        self.catching_up = false;
        self.incoming = None;
    }

    /// One chunk of a snapshot; the last chunk (`more == false`) replaces the entries and
    /// yields the difference as changes (ZB-62).
    pub fn snapshot_chunk(
        &mut self,
        master: NodeId,
        seq: u64,
        entries: Vec<StoreEntry>,
        more: bool,
    ) -> Applied {
        self.snapshot_chunk_with(master, seq, entries, more, true)
    }

    /// Like [`Replica::snapshot_chunk`]; without `diff` the changes are not computed (a clone
    /// nobody watches skips the work for big stores).
    pub fn snapshot_chunk_with(
        &mut self,
        master: NodeId,
        seq: u64,
        entries: Vec<StoreEntry>,
        more: bool,
        diff: bool,
    ) -> Applied {
        let fresh = match &self.incoming {
            Some((m, s, _)) => *m != master || *s != seq,
            None => true,
        };
        if fresh {
            self.incoming = Some((master, seq, Vec::new()));
        }
        let Some((_, _, buf)) = self.incoming.as_mut() else {
            return Applied::default();
        };
        buf.reserve(entries.len());
        for e in entries {
            buf.push((
                e.key,
                Entry {
                    value: e.value,
                    expiry: e.expiry,
                },
            ));
        }
        if more {
            return Applied::default();
        }
        let Some((master, seq, new)) = self.incoming.take() else {
            return Applied::default();
        };
        // Sorted input builds the tree in one pass; duplicates keep the last entry.
        let new: BTreeMap<Data, Entry> = new.into_iter().collect();
        let reset = self.master.is_some_and(|m| m != master);
        let old = std::mem::replace(&mut self.entries, new);
        let mut changes = Vec::new();
        if !diff {
            self.master = Some(master);
            self.seq = seq;
            self.synced = true;
            self.catching_up = false;
            return Applied {
                changes,
                reset,
                synced: true,
            };
        }
        for k in old.keys() {
            if !self.entries.contains_key(k) {
                changes.push(Change::Erase { key: k.clone() });
            }
        }
        for (k, e) in &self.entries {
            match old.get(k) {
                None => changes.push(Change::Insert {
                    key: k.clone(),
                    value: e.value.clone(),
                    expiry: e.expiry,
                }),
                Some(o) if o != e => changes.push(Change::Update {
                    key: k.clone(),
                    old: o.value.clone(),
                    value: e.value.clone(),
                    expiry: e.expiry,
                }),
                Some(_) => {}
            }
        }
        self.master = Some(master);
        self.seq = seq;
        self.synced = true;
        self.catching_up = false;
        Applied {
            changes,
            reset,
            synced: true,
        }
    }

    /// Applies update `seq`. Updates must come in order: anything else is a [`Gap`] and the
    /// replica stays as it was (and out of sync) until a new snapshot arrives.
    pub fn update(&mut self, seq: u64, update: StoreUpdate) -> Result<Vec<Change>, Gap> {
        if !(self.synced || self.catching_up) || self.incoming.is_some() {
            // Updates before (or during) a snapshot belong to an older stream.
            return Ok(Vec::new());
        }
        if seq <= self.seq {
            return Ok(Vec::new()); // a duplicate
        }
        if seq != self.seq + 1 && self.catching_up {
            // The feed this catch-up replaced: what the new one sends comes in order.
            return Ok(Vec::new());
        }
        if seq != self.seq + 1 {
            self.synced = false;
            return Err(Gap {
                expected: self.seq + 1,
                got: seq,
            });
        }
        self.seq = seq;
        Ok(self.apply(update))
    }

    fn apply(&mut self, update: StoreUpdate) -> Vec<Change> {
        match update {
            StoreUpdate::Insert { key, value, expiry }
            | StoreUpdate::Update {
                key, value, expiry, ..
            } => {
                let old = self.entries.insert(
                    key.clone(),
                    Entry {
                        value: value.clone(),
                        expiry,
                    },
                );
                vec![match old {
                    None => Change::Insert { key, value, expiry },
                    Some(o) => Change::Update {
                        key,
                        old: o.value,
                        value,
                        expiry,
                    },
                }]
            }
            StoreUpdate::Erase { key } => match self.entries.remove(&key) {
                Some(_) => vec![Change::Erase { key }],
                None => Vec::new(),
            },
            StoreUpdate::Expire { key } => match self.entries.remove(&key) {
                Some(_) => vec![Change::Expire { key }],
                None => Vec::new(),
            },
            StoreUpdate::Clear => std::mem::take(&mut self.entries)
                .into_keys()
                .map(|key| Change::Erase { key })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: Data) -> StoreOp {
        StoreOp::Put {
            key: "k".into(),
            value: v,
            expiry: None,
        }
    }
    fn inc(a: Data) -> StoreOp {
        StoreOp::Increment {
            key: "k".into(),
            amount: a,
            expiry: None,
        }
    }
    fn code(r: Result<Mutation, StoreError>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn zb48_zb49_put_and_put_unique() {
        assert_eq!(
            mutate(&put(1u64.into()), None),
            Ok(Mutation::Set(1u64.into()))
        );
        let pu = StoreOp::PutUnique {
            key: "k".into(),
            value: 2u64.into(),
            expiry: None,
        };
        assert_eq!(mutate(&pu, Some(&1u64.into())), Ok(Mutation::Unchanged));
        assert_eq!(mutate(&pu, None), Ok(Mutation::Set(2u64.into())));
    }

    #[test]
    fn zb51_increment_type_table() {
        let c = |n| Data::Count(n);
        assert_eq!(mutate(&inc(c(2)), Some(&c(5))), Ok(Mutation::Set(c(7))));
        assert_eq!(
            mutate(&inc(Data::Integer(-3)), Some(&Data::Integer(1))),
            Ok(Mutation::Set(Data::Integer(-2)))
        );
        assert_eq!(
            mutate(&inc(Data::Real(0.5)), Some(&Data::Real(1.0))),
            Ok(Mutation::Set(Data::Real(1.5)))
        );
        assert_eq!(
            mutate(&inc(Timespan(5).into()), Some(&Timestamp(10).into())),
            Ok(Mutation::Set(Timestamp(15).into()))
        );
        // Absent key: zero of the amount's type.
        assert_eq!(mutate(&inc(c(3)), None), Ok(Mutation::Set(c(3))));
        assert_eq!(
            mutate(&inc(Timespan(2).into()), None),
            Ok(Mutation::Set(Timespan(2).into()))
        );
        // Clashes reach the caller.
        assert_eq!(
            code(mutate(&inc(Data::Integer(1)), Some(&c(5)))),
            ErrorCode::TypeClash
        );
        assert_eq!(
            code(mutate(&inc(c(1)), Some(&"s".into()))),
            ErrorCode::TypeClash
        );
        assert_eq!(code(mutate(&inc("s".into()), None)), ErrorCode::TypeClash);
        // Overflow is an error, not a wrap.
        assert_eq!(
            code(mutate(&inc(c(1)), Some(&c(u64::MAX)))),
            ErrorCode::InvalidData
        );
        let dec = StoreOp::Decrement {
            key: "k".into(),
            amount: c(6),
            expiry: None,
        };
        assert_eq!(code(mutate(&dec, Some(&c(5)))), ErrorCode::InvalidData);
        assert_eq!(code(mutate(&dec, None)), ErrorCode::NoSuchKey);
        assert_eq!(mutate(&dec, Some(&c(9))), Ok(Mutation::Set(c(3))));
    }

    #[test]
    fn zb52_append() {
        let app = |v: Data| StoreOp::Append {
            key: "k".into(),
            value: v,
            expiry: None,
        };
        assert_eq!(
            mutate(&app("b".into()), Some(&"a".into())),
            Ok(Mutation::Set("ab".into()))
        );
        assert_eq!(
            mutate(&app("b".into()), None),
            Ok(Mutation::Set("b".into()))
        );
        assert_eq!(code(mutate(&app(5u64.into()), None)), ErrorCode::TypeClash);
        assert_eq!(
            code(mutate(&app("x".into()), Some(&1u64.into()))),
            ErrorCode::TypeClash
        );
    }

    #[test]
    fn zb53_insert_into_remove_from() {
        let ins = |i: Data, v: Option<Data>| StoreOp::InsertInto {
            key: "k".into(),
            index: i,
            value: v,
            expiry: None,
        };
        let rem = |i: Data| StoreOp::RemoveFrom {
            key: "k".into(),
            index: i,
            expiry: None,
        };
        let set = Data::Set([Data::Count(1)].into());
        assert_eq!(
            mutate(&ins(2u64.into(), None), Some(&set)),
            Ok(Mutation::Set(Data::Set(
                [Data::Count(1), Data::Count(2)].into()
            )))
        );
        assert_eq!(
            mutate(&ins(2u64.into(), None), None),
            Ok(Mutation::Set(Data::Set([Data::Count(2)].into())))
        );
        assert_eq!(
            mutate(&ins("a".into(), Some(1u64.into())), None),
            Ok(Mutation::Set(Data::Table(
                [("a".into(), 1u64.into())].into()
            )))
        );
        // Falsy values are values (no Python `if value:` quirk).
        assert_eq!(
            mutate(&ins("a".into(), Some(0u64.into())), None),
            Ok(Mutation::Set(Data::Table(
                [("a".into(), 0u64.into())].into()
            )))
        );
        // Vectors: positional.
        let v = Data::Vector(vec![1u64.into(), 3u64.into()]);
        assert_eq!(
            mutate(&ins(1u64.into(), Some(2u64.into())), Some(&v)),
            Ok(Mutation::Set(Data::Vector(vec![
                1u64.into(),
                2u64.into(),
                3u64.into()
            ])))
        );
        assert_eq!(
            mutate(&rem(Data::Integer(0)), Some(&v)),
            Ok(Mutation::Set(Data::Vector(vec![3u64.into()])))
        );
        assert_eq!(
            code(mutate(&rem(5u64.into()), Some(&v))),
            ErrorCode::NoSuchKey
        );
        assert_eq!(
            code(mutate(&rem(Data::Integer(-1)), Some(&v))),
            ErrorCode::TypeClash
        );
        assert_eq!(
            code(mutate(&ins(1u64.into(), None), Some(&v))),
            ErrorCode::TypeClash
        );
        let t = Data::Table([("a".into(), 1u64.into())].into());
        assert_eq!(
            code(mutate(&ins("b".into(), None), Some(&t))),
            ErrorCode::TypeClash
        );
        assert_eq!(
            mutate(&rem("a".into()), Some(&t)),
            Ok(Mutation::Set(Data::Table(Default::default())))
        );
        assert_eq!(
            code(mutate(&rem("a".into()), Some(&"s".into()))),
            ErrorCode::TypeClash
        );
        assert_eq!(code(mutate(&rem("a".into()), None)), ErrorCode::NoSuchKey);
    }

    #[test]
    fn zb54_push_pop() {
        let push = |v: Data| StoreOp::Push {
            key: "k".into(),
            value: v,
            expiry: None,
        };
        let pop = StoreOp::Pop {
            key: "k".into(),
            expiry: None,
        };
        assert_eq!(
            mutate(&push(1u64.into()), None),
            Ok(Mutation::Set(Data::Vector(vec![1u64.into()])))
        );
        let t = Data::Table(Default::default());
        assert_eq!(
            code(mutate(&push(1u64.into()), Some(&t))),
            ErrorCode::TypeClash
        );
        assert_eq!(
            code(mutate(&push(Data::Vector(vec![1u64.into()])), Some(&t))),
            ErrorCode::InvalidData
        );
        assert_eq!(
            mutate(&pop, Some(&Data::Vector(vec![1u64.into(), 2u64.into()]))),
            Ok(Mutation::Set(Data::Vector(vec![1u64.into()])))
        );
        assert_eq!(
            mutate(&pop, Some(&Data::Vector(vec![]))),
            Ok(Mutation::Set(Data::Vector(vec![])))
        );
        assert_eq!(code(mutate(&pop, None)), ErrorCode::NoSuchKey);
    }

    #[test]
    fn zb55_get_index_from_value() {
        let set = Data::Set([Data::Count(1)].into());
        assert_eq!(index_of(&set, &1u64.into()), Ok(Data::Boolean(true)));
        assert_eq!(index_of(&set, &2u64.into()), Ok(Data::Boolean(false)));
        let v = Data::Vector(vec!["a".into()]);
        assert_eq!(index_of(&v, &Data::Integer(0)), Ok("a".into()));
        assert_eq!(
            index_of(&v, &1u64.into()).unwrap_err().code,
            ErrorCode::NoSuchKey
        );
        assert_eq!(
            index_of(&"abc".into(), &0u64.into()).unwrap_err().code,
            ErrorCode::TypeClash
        );
    }

    fn entry(k: &str, v: u64) -> StoreEntry {
        StoreEntry {
            key: k.into(),
            value: v.into(),
            expiry: None,
        }
    }

    #[test]
    fn zb58_replica_snapshot_updates_gap_and_reset() {
        let a = NodeId([1; 16]);
        let b = NodeId([2; 16]);
        let mut r = Replica::new();
        // Chunked snapshot: nothing visible until the last chunk.
        assert!(r
            .snapshot_chunk(a, 5, vec![entry("x", 1)], true)
            .changes
            .is_empty());
        let ap = r.snapshot_chunk(a, 5, vec![entry("y", 2)], false);
        assert_eq!(ap.changes.len(), 2);
        assert!(ap.synced && !ap.reset);
        assert_eq!(r.len(), 2);
        // In-order update.
        let ch = r
            .update(
                6,
                StoreUpdate::Update {
                    key: "x".into(),
                    old: 1u64.into(),
                    value: 3u64.into(),
                    expiry: None,
                },
            )
            .unwrap();
        assert!(
            matches!(&ch[0], Change::Update { old, value, .. } if *old == Data::Count(1) && *value == Data::Count(3))
        );
        // Duplicate ignored, gap detected.
        assert_eq!(r.update(6, StoreUpdate::Clear), Ok(vec![]));
        assert_eq!(
            r.update(8, StoreUpdate::Clear),
            Err(Gap {
                expected: 7,
                got: 8
            })
        );
        assert!(!r.is_synced());
        assert_eq!(r.len(), 2, "cache kept while out of sync");
        // A new master: reset plus a diff.
        let ap = r.snapshot_chunk(b, 1, vec![entry("x", 3), entry("z", 9)], false);
        assert!(ap.reset);
        assert_eq!(
            ap.changes,
            vec![
                Change::Erase { key: "y".into() },
                Change::Insert {
                    key: "z".into(),
                    value: 9u64.into(),
                    expiry: None
                }
            ]
        );
        assert_eq!(r.update(2, StoreUpdate::Clear).unwrap().len(), 2);
        assert!(r.is_empty());
    }
}
