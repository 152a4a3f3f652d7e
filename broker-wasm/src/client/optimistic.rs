//! Optimistic writes of clones (`CloneOptions::optimistic`): a write through the clone shows
//! in its view at once, marked pending; the master's answer confirms it or rolls it back.
//!
//! The view is the replica with the pending writes applied on top, key by key, with the same
//! rules as the master ([`crate::store::mutate`]). It is recomputed when a write is made, when
//! an answer arrives and when a snapshot replaces the replica, not on every update: the
//! master's update for a write arrives just before its answer, and applying both would count
//! an increment twice. So between a concurrent writer's update and the answer to ours, the
//! view shows ours; at the answer it follows the master's order again.

use std::collections::BTreeMap;

#[allow(unused_imports)]
use super::*;
use crate::store::{is_mutation, key_and_expiry, mutate, Mutation};

/// What write `op` makes of its key's entry, by the master's rules. A write refused here (as
/// the master will refuse it) changes nothing.
fn step(op: &StoreOp, current: Option<Entry>) -> Option<Entry> {
    match mutate(op, current.as_ref().map(|e| &e.value)) {
        Ok(Mutation::Set(value)) => Some(Entry {
            value,
            expiry: current.and_then(|e| e.expiry),
        }),
        Ok(Mutation::Remove) => None,
        Ok(Mutation::Unchanged) | Err(_) => current,
    }
}

/// The pending writes of one clone and what they make of its keys.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Request id and operation, in the order made.
    writes: Vec<(u64, StoreOp)>,
    /// Keys whose view differs from the replica: `None` = removed.
    view: BTreeMap<Data, Option<Entry>>,
}

/// Where an optimistic write is ([`Event::Write`]).
#[derive(Debug, Clone, PartialEq)]
pub enum WriteState {
    /// Shown in the view, waiting for the master's answer.
    Pending,
    /// The master applied it.
    Confirmed,
    /// The master refused it (or it never got there): the view went back.
    RolledBack(ErrorInfo),
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Whether `key` has a write waiting for the master's answer.
    pub fn is_pending(&self, key: &Data) -> bool {
        self.writes
            .iter()
            .any(|(_, op)| key_and_expiry(op).is_some_and(|(k, _)| k == key))
    }

    /// Keys with writes waiting, in order.
    pub fn pending_keys(&self) -> Vec<Data> {
        let mut keys: Vec<Data> = self
            .writes
            .iter()
            .filter_map(|(_, op)| key_and_expiry(op).map(|(k, _)| k.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The view of `key`: `Some(v)` if the overlay decides it.
    pub fn get(&self, key: &Data) -> Option<Option<&Entry>> {
        self.view.get(key).map(Option::as_ref)
    }

    /// Adds a write made through the clone; the view of its key changes at once. Returns
    /// the key and its new view, if the write applies to one key.
    pub fn add(&mut self, replica: &Replica, id: u64, op: StoreOp) -> Option<(Data, Option<Data>)> {
        if !is_mutation(&op) {
            return None; // a read through the clone (`fetch`, `exists`)
        }
        let (key, _) = key_and_expiry(&op)?;
        let key = key.clone();
        let current = match self.view.get(&key) {
            Some(v) => v.clone(),
            None => replica.get(&key).cloned(),
        };
        let next = step(&op, current);
        self.writes.push((id, op));
        let shown = next.as_ref().map(|e| e.value.clone());
        self.view.insert(key.clone(), next);
        Some((key, shown))
    }

    /// The answer to request `id`, if it was a pending write: the key and its view now.
    pub fn settle(&mut self, replica: &Replica, id: u64) -> Option<(Data, Option<Data>)> {
        let at = self.writes.iter().position(|(i, _)| *i == id)?;
        let (_, op) = self.writes.remove(at);
        let key = key_and_expiry(&op)?.0.clone();
        self.recompute(replica, &key);
        let shown = match self.view.get(&key) {
            Some(v) => v.as_ref().map(|e| e.value.clone()),
            None => replica.get(&key).map(|e| e.value.clone()),
        };
        Some((key, shown))
    }

    /// The replica was replaced (a snapshot): every pending key again on top of it.
    pub fn rebase(&mut self, replica: &Replica) {
        for key in self.pending_keys() {
            self.recompute(replica, &key);
        }
    }

    fn recompute(&mut self, replica: &Replica, key: &Data) {
        let mut current = replica.get(key).cloned();
        let mut touched = false;
        for (_, op) in &self.writes {
            if key_and_expiry(op).is_some_and(|(k, _)| k == key) {
                touched = true;
                current = step(op, current);
            }
        }
        if touched {
            self.view.insert(key.clone(), current);
        } else {
            self.view.remove(key);
        }
    }

    /// Number of entries of the view of `replica`.
    pub fn len(&self, replica: &Replica) -> usize {
        let mut n = replica.len() as i64;
        for (k, v) in &self.view {
            match (replica.get(k).is_some(), v.is_some()) {
                (true, false) => n -= 1,
                (false, true) => n += 1,
                _ => {}
            }
        }
        n.max(0) as usize
    }

    /// The entries of the view of `replica`, in key order.
    pub fn iter<'a>(
        &'a self,
        replica: &'a Replica,
    ) -> impl Iterator<Item = (&'a Data, &'a Entry)> + 'a {
        use std::cmp::Ordering::*;
        let mut base = replica.entries().iter().peekable();
        let mut over = self.view.iter().peekable();
        std::iter::from_fn(move || loop {
            let order = match (base.peek(), over.peek()) {
                (None, None) => return None,
                (Some(_), None) => Less,
                (None, Some(_)) => Greater,
                (Some((b, _)), Some((o, _))) => (*b).cmp(*o),
            };
            if order == Less {
                return base.next();
            }
            if order == Equal {
                base.next();
            }
            // The overlay decides this key: shown, or removed (then the next one).
            if let Some((k, Some(e))) = over.next() {
                return Some((k, e));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{NodeId, StoreEntry};

    fn replica(pairs: &[(&str, u64)]) -> Replica {
        let mut r = Replica::new();
        let entries = pairs
            .iter()
            .map(|(k, v)| StoreEntry {
                key: (*k).into(),
                value: Data::Count(*v),
                expiry: None,
            })
            .collect();
        r.snapshot_chunk(NodeId([1; 16]), 1, entries, false);
        r
    }

    fn keys(o: &Overlay, r: &Replica) -> Vec<String> {
        o.iter(r).map(|(k, _)| format!("{k:?}")).collect()
    }

    #[test]
    fn the_view_is_the_replica_with_pending_writes_on_top() {
        let r = replica(&[("a", 1), ("c", 3)]);
        let mut o = Overlay::default();
        let inc = StoreOp::Increment {
            key: "a".into(),
            amount: Data::Count(2),
            expiry: None,
        };
        assert_eq!(o.add(&r, 1, inc), Some(("a".into(), Some(Data::Count(3)))));
        let put = StoreOp::Put {
            key: "b".into(),
            value: Data::Count(9),
            expiry: None,
        };
        o.add(&r, 2, put);
        o.add(&r, 3, StoreOp::Erase { key: "c".into() });
        // Reads are not writes.
        assert_eq!(o.add(&r, 4, StoreOp::Get { key: "a".into() }), None);
        assert!(!o.is_pending(&"x".into()));
        assert_eq!(o.len(&r), 2);
        assert_eq!(keys(&o, &r), keys_of(&["a", "b"]));
        assert_eq!(o.get(&"a".into()).unwrap().unwrap().value, Data::Count(3));
        // The master applied the increment (the replica has it) and answered: not twice.
        let r2 = replica(&[("a", 3), ("c", 3)]);
        assert_eq!(o.settle(&r2, 1), Some(("a".into(), Some(Data::Count(3)))));
        assert_eq!(o.get(&"a".into()), None, "no longer decided by the overlay");
        assert_eq!(o.pending_keys(), vec![Data::from("b"), Data::from("c")]);
        // A refused erase: back to the replica's value.
        assert_eq!(o.settle(&r2, 3), Some(("c".into(), Some(Data::Count(3)))));
        assert_eq!(o.len(&r2), 3);
    }

    fn keys_of(k: &[&str]) -> Vec<String> {
        k.iter().map(|k| format!("{:?}", Data::from(*k))).collect()
    }
}
