//! The last updates of a store (a master's, or a relay's from its master), kept so a clone
//! that comes back with a state (`AttachCloneSince`) gets only the updates since.

use std::collections::VecDeque;
use std::sync::Arc;

use broker_wasm::protocol::ServerMsg;
use broker_wasm::NodeId;

use super::{Feed, FeedItem};

/// Updates a store keeps for clones that come back (`AttachCloneSince`): the last
/// [`RECENT_UPDATES`], as the feed items they were sent as.
pub(crate) const RECENT_UPDATES: usize = 8192;

#[derive(Debug, Default)]
pub(crate) struct Recent {
    items: VecDeque<(u64, Arc<FeedItem>)>,
}

impl Recent {
    /// Keeps update `seq`; the kept ones stay contiguous (after a gap only what follows it).
    pub(crate) fn push(&mut self, seq: u64, item: Arc<FeedItem>) {
        if self.items.back().is_some_and(|(last, _)| seq != last + 1) {
            self.items.clear();
        }
        if self.items.len() == RECENT_UPDATES {
            self.items.pop_front();
        }
        self.items.push_back((seq, item));
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }

    /// A snapshot as of `seq` replaced the state (a relay's): what is kept stays valid up to
    /// there only if it reaches `seq` (else updates before `seq` would be missing).
    pub(crate) fn rebase(&mut self, seq: u64) {
        if self.items.back().is_none_or(|(last, _)| *last < seq) {
            self.items.clear();
        }
        let stale = self.items.partition_point(|(s, _)| *s <= seq);
        // Updates after the snapshot's seq belong to a stream the snapshot replaced.
        self.items.truncate(stale);
    }

    /// The updates after `seq` up to `current`, if every one of them is still here.
    pub(crate) fn since(&self, seq: u64, current: u64) -> Option<Vec<Arc<FeedItem>>> {
        if seq > current {
            return None;
        }
        if seq == current {
            return Some(Vec::new());
        }
        let first = self.items.front()?.0;
        if first > seq + 1 {
            return None;
        }
        let start = self.items.partition_point(|(s, _)| *s <= seq);
        Some(self.items.range(start..).map(|(_, i)| i.clone()).collect())
    }

    /// Serves a clone that holds `master`'s state as of `since` from `ours` (this store's
    /// master and seq): the updates since and `CloneCurrent`. False if it cannot (another
    /// master, updates gone) or the feed is full: the caller sends a snapshot.
    pub(crate) fn serve(
        &self,
        store: &str,
        ours: (NodeId, u64),
        since: (NodeId, u64),
        feed: &Feed,
    ) -> bool {
        if since.0 != ours.0 {
            return false;
        }
        let Some(items) = self.since(since.1, ours.1) else {
            return false;
        };
        let current = FeedItem::new(ServerMsg::CloneCurrent {
            store: store.to_owned(),
            master: ours.0,
            seq: ours.1,
        });
        items
            .into_iter()
            .chain(std::iter::once(current))
            .all(|i| feed.try_send(i).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64) -> Arc<FeedItem> {
        FeedItem::new(ServerMsg::StoreUpdate {
            store: "s".into(),
            seq,
            update: broker_wasm::protocol::StoreUpdate::Clear,
        })
    }

    fn seqs(r: &Recent, from: u64, current: u64) -> Option<Vec<u64>> {
        r.since(from, current).map(|v| {
            v.iter()
                .map(|i| match i.msg {
                    ServerMsg::StoreUpdate { seq, .. } => seq,
                    _ => 0,
                })
                .collect()
        })
    }

    #[test]
    fn kept_updates_stay_contiguous_and_reach_the_snapshot() {
        let mut r = Recent::default();
        for s in 2..=5 {
            r.push(s, item(s));
        }
        assert_eq!(seqs(&r, 1, 5), Some(vec![2, 3, 4, 5]));
        assert_eq!(seqs(&r, 3, 5), Some(vec![4, 5]));
        assert_eq!(seqs(&r, 5, 5), Some(vec![]));
        assert_eq!(seqs(&r, 0, 5), None, "update 1 is not kept");
        assert_eq!(seqs(&r, 6, 5), None, "from the future");
        // The same snapshot again (a relay asked twice): still valid up to it.
        r.rebase(5);
        assert_eq!(seqs(&r, 1, 5), Some(vec![2, 3, 4, 5]));
        // An older one: what came after it is dropped.
        r.rebase(3);
        assert_eq!(seqs(&r, 1, 3), Some(vec![2, 3]));
        // A newer one than what is kept: nothing reaches it.
        r.rebase(9);
        assert_eq!(seqs(&r, 1, 9), None);
        // A gap in the pushes: only what follows it.
        r.push(10, item(10));
        r.push(12, item(12));
        assert_eq!(seqs(&r, 9, 12), None);
        assert_eq!(seqs(&r, 11, 12), Some(vec![12]));
    }
}
