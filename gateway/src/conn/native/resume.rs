//! The connection's side of resuming (see `crate::history`): the histories announced after
//! the welcome, and the replay a [`ClientMsg::Resume`](broker_wasm::protocol::ClientMsg)
//! asks for.

use broker_wasm::protocol::{Gap, GapReason, LoggedEntry, ServerMsg, Welcome};

use super::Session;
use crate::hub::encode_server_msg;
use crate::metrics::Metrics;

/// Entries per replay chunk, and the encoded bytes a chunk stops growing at (well under any
/// client's frame limit).
const CHUNK_ENTRIES: usize = 1024;
const CHUNK_BYTES: usize = 1 << 20;

impl Session {
    /// The welcome, and the histories when the gateway keeps any.
    pub(super) fn welcome(&self) {
        self.send(ServerMsg::Welcome(Welcome {
            endpoint: self.shared.id,
            version: crate::VERSION.into(),
            max_frame: self.shared.config.max_frame as u64,
        }));
        let histories = &self.shared.hub.histories;
        if !histories.is_empty() {
            self.send(ServerMsg::Histories {
                epoch: histories.epoch.clone(),
                prefixes: histories.prefixes(),
            });
        }
    }

    /// Replays what the client missed since `positions` (in the gateway's run `epoch`),
    /// for the prefixes it holds now; gaps where the history cannot.
    pub(super) fn resume(
        &self,
        instance: String,
        epoch: Option<String>,
        positions: Vec<(String, u64)>,
    ) {
        let hub = &self.shared.hub;
        hub.set_instance(self.id, &instance);
        if positions.is_empty() {
            return;
        }
        let metrics = &self.shared.metrics;
        Metrics::add(&metrics.resumes_total, 1);
        let same_epoch = epoch.as_deref() == Some(hub.histories.epoch.as_str());
        let mut out = Vec::new();
        for (prefix, from) in positions {
            let Some((history, log)) = hub.histories.by_prefix(&prefix) else {
                Metrics::add(&metrics.resume_gaps_total, 1);
                out.push(ServerMsg::Gap(Gap {
                    prefix,
                    missed: None,
                    reason: GapReason::NoHistory,
                }));
                continue;
            };
            let replay = hub.replay(self.id, log, same_epoch, from);
            if let Some(gap) = replay.gap {
                Metrics::add(&metrics.resume_gaps_total, 1);
                out.push(ServerMsg::Gap(gap));
            }
            Metrics::add(&metrics.replayed_total, replay.entries.len() as u64);
            let mut chunk: Vec<LoggedEntry> = Vec::new();
            let mut bytes = 0;
            for e in replay.entries {
                bytes += e.message.topic.len()
                    + broker_wasm::binary::to_vec(&e.message.data).map_or(0, |v| v.len());
                chunk.push(e);
                if chunk.len() == CHUNK_ENTRIES || bytes >= CHUNK_BYTES {
                    bytes = 0;
                    out.push(ServerMsg::Replay {
                        history,
                        entries: std::mem::take(&mut chunk),
                        head: None,
                    });
                }
            }
            out.push(ServerMsg::Replay {
                history,
                entries: chunk,
                head: Some(replay.head),
            });
        }
        // In order, each waiting for room: the queue may be full of live messages, which the
        // client holds back until the replay's last chunk.
        let (tx, encoding) = (self.tx.clone(), self.encoding);
        tokio::spawn(async move {
            for m in out {
                let Some(b) = encode_server_msg(encoding, &m).or_else(|| json_safe(encoding, m))
                else {
                    continue;
                };
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// A replay chunk JSON could not carry (a NaN somewhere): without the messages JSON cannot
/// carry, as live delivery leaves them out, so the chunk (and the end of the replay) still
/// goes out.
fn json_safe(encoding: broker_wasm::protocol::Encoding, m: ServerMsg) -> Option<bytes::Bytes> {
    let ServerMsg::Replay {
        history,
        entries,
        head,
    } = m
    else {
        return None;
    };
    let entries = entries
        .into_iter()
        .filter(|e| {
            let one = ServerMsg::Replay {
                history,
                entries: vec![e.clone()],
                head: None,
            };
            encode_server_msg(encoding, &one).is_some()
        })
        .collect();
    encode_server_msg(
        encoding,
        &ServerMsg::Replay {
            history,
            entries,
            head,
        },
    )
}
