//! Resuming pub/sub after a reconnect: where the client is in the gateway's histories, the
//! [`ClientMsg::Resume`] it sends on every connection, and putting replayed and live messages
//! back in order so each arrives exactly once.
//!
//! A gateway started with `--history PREFIX=COUNT` numbers the messages under `PREFIX`
//! ([`ServerMsg::Logged`]). The client keeps the last number per history prefix. After a
//! reconnect it sends them; the gateway replays what came since ([`ServerMsg::Replay`], in
//! chunks), while live messages of that history may already be arriving: those wait here
//! until the replay's last chunk, then go out unless the replay had them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::{ClientMsg, Gap, GapReason, LoggedEntry, Publish};

/// Where a client is in a gateway's histories: the gateway's epoch (new at every start) and
/// the last position received per history prefix. Give it to a new client to resume after
/// the application's own restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub epoch: Option<String>,
    pub offsets: BTreeMap<String, u64>,
}

/// The resume state of one client (across its connections).
#[derive(Debug, Default)]
pub(crate) struct Resume {
    /// Names this client to the gateway; `None`: no resume messages are sent.
    instance: Option<String>,
    position: Position,
    /// The current gateway's epoch and history prefixes (by index), once it said them.
    gateway: Option<(String, Vec<String>)>,
    /// Prefixes whose positions went out in this connection's resume.
    sent: BTreeSet<String>,
    /// Histories being replayed: live messages that came meanwhile, in order.
    waiting: HashMap<u32, Vec<(u64, Publish)>>,
    /// This connection sent its resume.
    asked: bool,
}

impl Resume {
    pub fn set_instance(&mut self, instance: String) {
        self.instance = Some(instance);
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    pub fn set_position(&mut self, position: Position) {
        self.position = position;
    }

    /// The resume message of a new connection (after the hello and the subscriptions), if
    /// this client has positions to resume from. Without, it waits for the gateway's
    /// histories ([`Resume::on_histories`]): a gateway without histories (or from before
    /// them) never gets a message it does not know.
    pub fn on_open(&mut self) -> Option<ClientMsg> {
        self.gateway = None;
        self.waiting.clear();
        self.asked = false;
        if self.position.offsets.is_empty() {
            return None;
        }
        self.begin()
    }

    /// Resumes from `position` now (the subscriptions to replay are those held now).
    pub fn resume_from(&mut self, position: Position) -> Option<ClientMsg> {
        self.position = position;
        self.begin()
    }

    fn begin(&mut self) -> Option<ClientMsg> {
        let instance = self.instance.clone()?;
        self.asked = true;
        self.sent = self.position.offsets.keys().cloned().collect();
        let msg = ClientMsg::Resume {
            instance,
            epoch: self.position.epoch.clone(),
            positions: self
                .position
                .offsets
                .iter()
                .map(|(p, s)| (p.clone(), *s))
                .collect(),
        };
        if self.gateway.is_some() {
            self.await_replays();
        }
        Some(msg)
    }

    pub fn on_close(&mut self) {
        // Live messages held back are not counted as received: the next resume asks again.
        self.waiting.clear();
    }

    /// The gateway's histories. Those this client asked to resume wait for their replay;
    /// a client that has not sent its resume yet sends it now (naming itself, so its own
    /// publishes are not replayed to it).
    pub fn on_histories(&mut self, epoch: String, prefixes: Vec<String>) -> Option<ClientMsg> {
        self.gateway = Some((epoch, prefixes));
        if !self.asked {
            return self.begin();
        }
        self.await_replays();
        None
    }

    /// The positions just sent, against the gateway's histories: their live messages wait
    /// for the replay; positions of another epoch start again (the gateway replays its
    /// history from the start).
    fn await_replays(&mut self) {
        let Some((epoch, prefixes)) = &self.gateway else {
            return;
        };
        if self.position.epoch.as_ref().is_some_and(|e| e != epoch) {
            for p in &self.sent {
                self.position.offsets.insert(p.clone(), 0);
            }
        }
        self.position.epoch = Some(epoch.clone());
        for (i, p) in prefixes.iter().enumerate() {
            if self.sent.contains(p) {
                self.waiting.entry(i as u32).or_default();
            }
        }
        self.sent.clear();
    }

    /// Counts `seq` as received in `history` if it is new.
    fn advance(&mut self, history: u32, seq: u64) -> bool {
        let Some(prefix) = self
            .gateway
            .as_ref()
            .and_then(|(_, p)| p.get(history as usize))
        else {
            return true;
        };
        let last = self.position.offsets.entry(prefix.clone()).or_insert(0);
        if seq > *last {
            *last = seq;
            true
        } else {
            false
        }
    }

    /// A live message: delivered now, held back during its history's replay, or dropped as
    /// a duplicate of one already delivered.
    pub fn on_logged(&mut self, history: u32, seq: u64, message: Publish) -> Option<Publish> {
        if let Some(held) = self.waiting.get_mut(&history) {
            held.push((seq, message));
            return None;
        }
        self.advance(history, seq).then_some(message)
    }

    /// A chunk of a replay: the messages not delivered before, and at its end the live ones
    /// held back meanwhile.
    pub fn on_replay(
        &mut self,
        history: u32,
        entries: Vec<LoggedEntry>,
        head: Option<u64>,
        out: &mut Vec<Publish>,
    ) {
        for e in entries {
            if self.advance(history, e.seq) {
                out.push(e.message);
            }
        }
        if head.is_some() {
            for (seq, message) in self.waiting.remove(&history).unwrap_or_default() {
                if self.advance(history, seq) {
                    out.push(message);
                }
            }
        }
    }

    /// A gap the gateway reported: a prefix without history is forgotten.
    pub fn on_gap(&mut self, gap: &Gap) {
        if gap.reason == GapReason::NoHistory {
            self.position.offsets.remove(&gap.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Data;

    fn msg(n: u64) -> Publish {
        Publish {
            topic: "/h/x".into(),
            data: Data::Count(n),
        }
    }

    fn counts(v: &[Publish]) -> Vec<u64> {
        v.iter()
            .map(|p| match p.data {
                Data::Count(n) => n,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn replay_and_live_interleaved_arrive_once_in_order() {
        let mut r = Resume::default();
        r.set_instance("i".into());
        // A first connection: nothing to resume; the resume (naming the client) goes out
        // once the gateway says it keeps histories.
        assert!(r.on_open().is_none());
        let Some(ClientMsg::Resume { positions, .. }) =
            r.on_histories("e1".into(), vec!["/h".into()])
        else {
            panic!()
        };
        assert!(positions.is_empty());
        for n in 1..=3 {
            assert_eq!(r.on_logged(0, n, msg(n)), Some(msg(n)));
        }
        r.on_close();
        // Reconnect: positions go out; live 6 and 7 arrive before the replay of 4..=6 ends.
        let Some(ClientMsg::Resume {
            positions, epoch, ..
        }) = r.on_open()
        else {
            panic!()
        };
        assert_eq!(positions, vec![("/h".to_string(), 3)]);
        assert_eq!(epoch.as_deref(), Some("e1"));
        assert_eq!(
            r.on_histories("e1".into(), vec!["/h".into()]),
            None,
            "sent already"
        );
        assert_eq!(r.on_logged(0, 6, msg(6)), None);
        let mut out = Vec::new();
        r.on_replay(
            0,
            vec![LoggedEntry {
                seq: 4,
                message: msg(4),
            }],
            None,
            &mut out,
        );
        assert_eq!(r.on_logged(0, 7, msg(7)), None);
        let rest = [5, 6].map(|n| LoggedEntry {
            seq: n,
            message: msg(n),
        });
        r.on_replay(0, rest.to_vec(), Some(6), &mut out);
        assert_eq!(counts(&out), vec![4, 5, 6, 7]);
        assert_eq!(r.on_logged(0, 8, msg(8)), Some(msg(8)));
        assert_eq!(r.position().offsets["/h"], 8);
    }

    #[test]
    fn another_epoch_starts_the_history_again() {
        let mut r = Resume::default();
        r.set_instance("i".into());
        r.set_position(Position {
            epoch: Some("old".into()),
            offsets: [("/h".to_string(), 500)].into(),
        });
        r.on_open();
        r.on_histories("new".into(), vec!["/h".into()]);
        let mut out = Vec::new();
        let e = |n| LoggedEntry {
            seq: n,
            message: msg(n),
        };
        r.on_replay(0, vec![e(1), e(2)], Some(2), &mut out);
        assert_eq!(counts(&out), vec![1, 2]);
        assert_eq!(r.position().epoch.as_deref(), Some("new"));
    }

    #[test]
    fn resume_from_a_saved_position_on_an_open_connection() {
        let mut r = Resume::default();
        r.set_instance("i".into());
        assert!(r.on_open().is_none());
        assert!(r
            .on_histories("e".into(), vec!["/a".into(), "/h".into()])
            .is_some());
        let saved = Position {
            epoch: Some("e".into()),
            offsets: [("/h".to_string(), 2)].into(),
        };
        assert!(r.resume_from(saved).is_some());
        // History 1 waits for its replay; history 0 does not.
        assert_eq!(r.on_logged(1, 9, msg(9)), None);
        assert_eq!(r.on_logged(0, 1, msg(1)), Some(msg(1)));
        let mut out = Vec::new();
        let e = |n| LoggedEntry {
            seq: n,
            message: msg(n),
        };
        r.on_replay(1, vec![e(3), e(9)], Some(9), &mut out);
        assert_eq!(counts(&out), vec![3, 9]);
    }

    #[test]
    fn without_an_instance_nothing_is_sent() {
        let mut r = Resume::default();
        assert!(r.on_open().is_none());
        assert!(r.on_histories("e".into(), vec!["/h".into()]).is_none());
        assert_eq!(r.on_logged(0, 1, msg(1)), Some(msg(1)));
    }
}
