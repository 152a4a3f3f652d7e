//! Answers of namespace operations that may wait for the database: where each goes.

use tokio::sync::oneshot;

use super::Reply;

/// Where an answer goes: a waiting task, or a function that delivers it.
pub(super) enum Answer {
    Channel(oneshot::Sender<Reply>),
    Call(Box<dyn FnOnce(Reply) + Send>),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Answer::Channel(_) => "Answer::Channel",
            Answer::Call(_) => "Answer::Call",
        })
    }
}

impl Answer {
    /// Delivers `reply`; gives it back if a channel's receiver is gone.
    pub(super) fn send(self, reply: Reply) -> Result<(), Reply> {
        match self {
            Answer::Channel(tx) => tx.send(reply),
            Answer::Call(f) => {
                f(reply);
                Ok(())
            }
        }
    }
}

/// An answer held until the writes before it are committed.
#[derive(Debug)]
pub(super) struct Deferred {
    pub(super) tx: Answer,
    pub(super) reply: Reply,
    /// For a value a waiting `get` took: its (namespace, tuple name), to put it back if the
    /// getter went away before the answer.
    pub(super) taken_from: Option<(String, String)>,
}
