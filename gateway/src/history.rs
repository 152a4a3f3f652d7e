//! Bounded histories of the messages under the prefixes the operator names
//! (`--history PREFIX=COUNT[,SECONDS]`), so a client that lost its connection for a moment gets
//! what it missed (README, "Resume after a reconnect").
//!
//! Each history numbers its messages from 1 (`seq`) within an epoch: a random name for this
//! run of the gateway, so a position from before a restart is told apart. A message belongs
//! to the history with the longest prefix that covers its topic. The hub appends a message
//! and hands it to the consumers under the history's lock, so every connection sees a
//! history's messages in `seq` order. A resuming client sends its last `seq` per prefix; it
//! gets the retained messages after it that match its subscriptions (its own publishes left
//! out), or a gap when the history no longer reaches back that far or the epoch differs.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use broker_wasm::protocol::{Gap, GapReason, LoggedEntry, Publish};

/// One `--history` flag: `PREFIX=COUNT[,SECONDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySpec {
    pub prefix: String,
    /// Messages kept at most.
    pub count: usize,
    /// How long a message is kept at most (none: until `count` pushes it out).
    pub max_age: Option<Duration>,
}

impl FromStr for HistorySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<HistorySpec, String> {
        let usage = || format!("expected PREFIX=COUNT[,SECONDS], got {s:?}");
        let (prefix, rest) = s.rsplit_once('=').ok_or_else(usage)?;
        let (count, secs) = match rest.split_once(',') {
            Some((c, t)) => (c, Some(t)),
            None => (rest, None),
        };
        broker_wasm::topic::validate_user_topic(prefix)
            .map_err(|e| format!("history prefix {prefix:?}: {e}"))?;
        let count: usize = count.trim().parse().map_err(|_| usage())?;
        if count == 0 {
            return Err(format!("history {prefix:?}: COUNT must be at least 1"));
        }
        let max_age = match secs {
            None => None,
            Some(t) => {
                let secs: f64 = t.trim().parse().map_err(|_| usage())?;
                if !(secs > 0.0 && secs.is_finite()) {
                    return Err(format!("history {prefix:?}: SECONDS must be positive"));
                }
                Some(Duration::from_secs_f64(secs))
            }
        };
        Ok(HistorySpec {
            prefix: prefix.to_owned(),
            count,
            max_age,
        })
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    at: Instant,
    message: Arc<Publish>,
    /// The publishing client's instance (see `ClientMsg::Resume`), if a client published it.
    origin: Option<Arc<str>>,
}

#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    /// The `seq` of the next message.
    next: u64,
    evicted: u64,
}

/// One history.
#[derive(Debug)]
pub struct Log {
    pub spec: HistorySpec,
    ring: Mutex<Ring>,
}

/// What a resume gets from one history.
#[derive(Debug)]
pub struct Replay {
    pub gap: Option<Gap>,
    pub entries: Vec<LoggedEntry>,
    /// The history's newest `seq` when the replay was taken.
    pub head: u64,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next position: the caller delivers the message with it, then calls
    /// [`Appending::push`] (the lock is held in between, so delivery follows `seq` order).
    pub fn begin(&self) -> Appending<'_> {
        let ring = self.lock();
        Appending { log: self, ring }
    }

    /// Messages and bytes-free size now: (retained, evicted so far).
    pub fn counts(&self) -> (usize, u64) {
        let mut ring = self.lock();
        self.expire(&mut ring, Instant::now());
        (ring.entries.len(), ring.evicted)
    }

    fn expire(&self, ring: &mut Ring, now: Instant) {
        while ring.entries.len() > self.spec.count {
            ring.entries.pop_front();
            ring.evicted += 1;
        }
        if let Some(age) = self.spec.max_age {
            while ring
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > age)
            {
                ring.entries.pop_front();
                ring.evicted += 1;
            }
        }
    }

    /// What a client at `from` (in `epoch`: `same_epoch`) missed, among the messages that
    /// match `prefixes` and did not come from `instance`.
    pub fn replay(
        &self,
        same_epoch: bool,
        from: u64,
        prefixes: &[String],
        instance: &str,
    ) -> Replay {
        let mut ring = self.lock();
        self.expire(&mut ring, Instant::now());
        let head = ring.next - 1;
        let (from, mut gap) = if same_epoch && from <= head {
            (from, None)
        } else {
            // Another run of the gateway (or a position it never gave): from the start.
            let gap = Gap {
                prefix: self.spec.prefix.clone(),
                missed: None,
                reason: GapReason::Restart,
            };
            (0, Some(gap))
        };
        let oldest = ring.entries.front().map_or(ring.next, |e| e.seq);
        if oldest > from + 1 && gap.is_none() {
            gap = Some(Gap {
                prefix: self.spec.prefix.clone(),
                missed: Some(oldest - from - 1),
                reason: GapReason::Evicted,
            });
        }
        // Entries are in seq order: skip to the first after `from`.
        let start = ring.entries.partition_point(|e| e.seq <= from);
        let entries = ring
            .entries
            .range(start..)
            .filter(|e| e.origin.as_deref() != Some(instance))
            .filter(|e| prefixes.iter().any(|p| e.message.topic.starts_with(p)))
            .map(|e| LoggedEntry {
                seq: e.seq,
                message: (*e.message).clone(),
            })
            .collect();
        Replay { gap, entries, head }
    }
}

/// A message being appended to a history (see [`Log::begin`]).
#[derive(Debug)]
pub struct Appending<'a> {
    log: &'a Log,
    ring: MutexGuard<'a, Ring>,
}

impl Appending<'_> {
    /// The message's position.
    pub fn seq(&self) -> u64 {
        self.ring.next
    }

    /// Keeps the message (and drops what the limits say must go).
    pub fn push(mut self, message: Arc<Publish>, origin: Option<Arc<str>>) {
        let seq = self.ring.next;
        self.ring.next += 1;
        let now = Instant::now();
        self.ring.entries.push_back(Entry {
            seq,
            at: now,
            message,
            origin,
        });
        self.log.expire(&mut self.ring, now);
    }
}

/// Every history of an endpoint.
#[derive(Debug)]
pub struct Histories {
    /// Names this run of the gateway (random).
    pub epoch: String,
    pub logs: Vec<Log>,
}

impl Histories {
    pub fn new(specs: &[HistorySpec]) -> Histories {
        Histories {
            epoch: format!("{:016x}", rand::random::<u64>()),
            logs: specs
                .iter()
                .map(|spec| Log {
                    spec: spec.clone(),
                    ring: Mutex::new(Ring {
                        entries: VecDeque::new(),
                        next: 1,
                        evicted: 0,
                    }),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// The prefixes, by history index.
    pub fn prefixes(&self) -> Vec<String> {
        self.logs.iter().map(|l| l.spec.prefix.clone()).collect()
    }

    /// The history `topic` belongs to (the longest covering prefix), with its index.
    pub fn log_for(&self, topic: &str) -> Option<(u32, &Log)> {
        self.logs
            .iter()
            .enumerate()
            .filter(|(_, l)| topic.starts_with(l.spec.prefix.as_str()))
            .max_by_key(|(_, l)| l.spec.prefix.len())
            .map(|(i, l)| (i as u32, l))
    }

    /// The history of exactly `prefix`.
    pub fn by_prefix(&self, prefix: &str) -> Option<(u32, &Log)> {
        self.logs
            .iter()
            .enumerate()
            .find(|(_, l)| l.spec.prefix == prefix)
            .map(|(i, l)| (i as u32, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_wasm::Data;

    fn spec(s: &str) -> HistorySpec {
        s.parse().unwrap()
    }

    fn publish(topic: &str, n: u64) -> Arc<Publish> {
        Arc::new(Publish {
            topic: topic.into(),
            data: Data::Count(n),
        })
    }

    #[test]
    fn specs_parse_and_refuse() {
        assert_eq!(
            spec("/zeek=1000,60"),
            HistorySpec {
                prefix: "/zeek".into(),
                count: 1000,
                max_age: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(spec("/a=5").max_age, None);
        // An empty prefix keeps everything.
        assert_eq!(spec("=5").prefix, "");
        for bad in ["/a", "/a=0", "/a=x", "/a=5,0", "/a=5,-1", "/a=5,x"] {
            assert!(bad.parse::<HistorySpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let h = Histories::new(&[spec("/z=5"), spec("/z/conn=5")]);
        assert_eq!(h.log_for("/z/conn/x").unwrap().0, 1);
        assert_eq!(h.log_for("/z/dns").unwrap().0, 0);
        assert!(h.log_for("/other").is_none());
    }

    #[test]
    fn replay_filters_and_reports_evicted_gaps() {
        let h = Histories::new(&[spec("/h=3")]);
        let log = &h.logs[0];
        for n in 1..=5 {
            let origin = (n == 4).then(|| Arc::from("me"));
            log.begin()
                .push(publish(if n == 2 { "/h/b" } else { "/h/a" }, n), origin);
        }
        // 1 and 2 are gone; 3..=5 kept; 4 is the resuming client's own.
        let r = log.replay(true, 1, &["/h/a".to_string()], "me");
        assert_eq!(r.head, 5);
        assert_eq!(r.gap.as_ref().unwrap().missed, Some(1));
        assert_eq!(r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 5]);
        let r = log.replay(true, 3, &["/h".to_string()], "other");
        assert!(r.gap.is_none());
        assert_eq!(r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        // Another epoch: a restart gap, everything retained.
        let r = log.replay(false, 3, &["/h".to_string()], "x");
        assert_eq!(r.gap.unwrap().reason, GapReason::Restart);
        assert_eq!(r.entries.len(), 3);
        assert_eq!(log.counts(), (3, 2));
    }

    #[test]
    fn old_messages_expire() {
        let h = Histories::new(&[spec("/h=100,0.05")]);
        let log = &h.logs[0];
        log.begin().push(publish("/h/a", 1), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.counts().0 > 0 {
            assert!(Instant::now() < deadline, "not expired");
            std::thread::sleep(Duration::from_millis(10));
        }
        let r = log.replay(true, 0, &["/h".to_string()], "x");
        assert_eq!(r.gap.unwrap().reason, GapReason::Evicted);
    }
}
