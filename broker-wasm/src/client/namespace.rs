//! The Data Broker client rules, once for every driver: the tokio client
//! (`gateway::namespace_client`) and the JS package (`js/lib/namespace.js` through the wasm
//! binding) both call these and keep only sockets, waiting and their language's types.
//!
//! - [`failure_code`]: how a failed request reads as a DBR code (DB-27).
//! - [`Call::settle`]: what a read/get answer means to the caller: the buffer-size check
//!   (DB-13) and cancel-then-restore (DB-25).
//! - [`TagTable`]: the tags of the asynchronous PyDBR calls (DB-23, DB-24).
//!
//! The PyDBR flag decoding and the scatter/gather split live beside the codes, in
//! [`crate::dbr`].

use crate::dbr::{self, DbrCode};
use crate::protocol::{Failure, NamespaceOp};
use crate::Data;

/// A failed namespace operation: a Data Broker error code (DB-27), context, and for
/// `DBR_ERR_UBUFFER` after a short buffer the value's full size (DB-13).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({}): {context}", code.message())]
pub struct NsError {
    pub code: DbrCode,
    pub context: String,
    /// For `DBR_ERR_UBUFFER`: the value's full size (DB-13).
    pub size: Option<u64>,
}

impl NsError {
    pub fn new(code: DbrCode, context: impl Into<String>) -> NsError {
        NsError {
            code,
            context: context.into(),
            size: None,
        }
    }

    /// A handle used after `detach` or `delete` (a stale handle in DBR).
    pub fn stale(namespace: &str) -> NsError {
        NsError::new(
            DbrCode::NsInval,
            format!("the handle of `{namespace}` was detached or deleted"),
        )
    }

    /// A read/get the caller cancelled (DB-25).
    pub fn cancelled() -> NsError {
        NsError::new(DbrCode::Cancelled, "the request was cancelled")
    }

    /// A value larger than the caller's buffer (DB-13), with its full size.
    pub fn short_buffer(size: u64) -> NsError {
        NsError {
            code: DbrCode::UBuffer,
            context: format!("the value has {size} bytes"),
            size: Some(size),
        }
    }
}

/// The DBR code of a failed namespace request (DB-27).
///
/// The gateway reports every namespace-level failure with its DBR number (refused tokens as
/// `DBR_ERR_NOAUTH`, bad values as `DBR_ERR_INVALID`, ...), so those keep their number; an
/// unknown number is `DBR_ERR_GENERIC`. A Broker-level failure means the request never got
/// an answer from the namespace service: in practice the connection closed before the
/// response arrived (`shutting_down`). That is the original's "connection to a storage
/// backend failed", `DBR_ERR_NOCONNECT`; `DBR_ERR_BE_GENERAL` stays for answers that make no
/// sense (a protocol error).
pub fn failure_code(failure: &Failure) -> DbrCode {
    match failure {
        Failure::Namespace { code, .. } => DbrCode::from_code(*code).unwrap_or(DbrCode::Generic),
        Failure::Broker(_) => DbrCode::NoConnect,
    }
}

impl From<&Failure> for NsError {
    fn from(failure: &Failure) -> NsError {
        let context = match failure {
            Failure::Namespace { context, .. } => context.clone(),
            Failure::Broker(e) => format!("{}: {}", e.code, e.context),
        };
        NsError::new(failure_code(failure), context)
    }
}

impl From<Failure> for NsError {
    fn from(failure: Failure) -> NsError {
        NsError::from(&failure)
    }
}

/// An answer that is not what the request asks for: a protocol error.
pub fn unexpected(what: impl std::fmt::Debug) -> NsError {
    NsError::new(DbrCode::BeGeneral, format!("unexpected response {what:?}"))
}

/// What the gateway answered to a namespace request, as far as the rules care (the value
/// itself stays with the driver, in its own language).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer<'a> {
    /// A value (`Response::Tuple`) of `size` bytes (DB-13 sizes).
    Tuple {
        size: u64,
    },
    /// Any other success.
    Done,
    Failed(&'a Failure),
}

/// What the driver does with an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    /// Hand the answer to the caller.
    Deliver,
    /// Fail with this error.
    Fail(NsError),
    /// The caller cancelled a get after the gateway had taken the value: put it back at the
    /// head of its queue ([`Call::restore`]), then fail with this error (`DBR_ERR_CANCELLED`)
    /// or with the restore's own failure.
    RestoreThenFail(NsError),
}

/// One namespace request from the caller's side: what the rules need to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `(namespace, key)` of a get: the queue a cancelled get restores.
    get: Option<(String, String)>,
    /// The caller's buffer size (DB-13).
    capacity: Option<u64>,
}

impl Call {
    pub fn new(op: &NamespaceOp) -> Call {
        match op {
            NamespaceOp::Get {
                ns, key, capacity, ..
            } => Call::with(Some((ns.clone(), key.clone())), *capacity),
            NamespaceOp::Read { capacity, .. } => Call::with(None, *capacity),
            _ => Call::with(None, None),
        }
    }

    /// A call of a get on `(namespace, key)` (or of another operation: `None`) with a buffer
    /// of `capacity` bytes; for drivers that do not hold a [`NamespaceOp`].
    pub fn with(get: Option<(String, String)>, capacity: Option<u64>) -> Call {
        Call { get, capacity }
    }

    /// The rules for an answer; `cancelled`: the caller gave up before it arrived.
    ///
    /// - A failure keeps its code ([`failure_code`]), even after a cancel: the gateway
    ///   answers a cancelled wait with `DBR_ERR_CANCELLED` itself, and one that timed out
    ///   first stays a timeout.
    /// - A value that arrived for a cancelled get goes back (DB-25): a cancelled get never
    ///   consumes anything. Any other success after a cancel is `DBR_ERR_CANCELLED`.
    /// - A value larger than the buffer is `DBR_ERR_UBUFFER` with its full size (DB-13).
    pub fn settle(&self, answer: Answer<'_>, cancelled: bool) -> Settle {
        match answer {
            Answer::Failed(f) => Settle::Fail(NsError::from(f)),
            Answer::Tuple { .. } if cancelled && self.get.is_some() => {
                Settle::RestoreThenFail(NsError::cancelled())
            }
            _ if cancelled => Settle::Fail(NsError::cancelled()),
            Answer::Tuple { size } if self.capacity.is_some_and(|c| size > c) => {
                Settle::Fail(NsError::short_buffer(size))
            }
            _ => Settle::Deliver,
        }
    }

    /// The operation that puts `value` back at the head of the queue a get took it from
    /// (`None` for other calls).
    pub fn restore(&self, value: Data) -> Option<NamespaceOp> {
        self.get.as_ref().map(|(ns, key)| NamespaceOp::Restore {
            ns: ns.clone(),
            key: key.clone(),
            value,
        })
    }
}

/// The tags of outstanding asynchronous calls (`putA`, `readA`, `getA`; DB-23): small
/// integers `0..POSTED_QUEUE_DEPTH` handed out round-robin, so a freed tag is reused as late
/// as possible. A slot holds whatever the driver needs to finish the call.
#[derive(Debug, Clone)]
pub struct TagTable<T> {
    slots: Vec<Option<T>>,
    next: usize,
}

impl<T> Default for TagTable<T> {
    fn default() -> Self {
        TagTable::with_depth(dbr::POSTED_QUEUE_DEPTH)
    }
}

impl<T> TagTable<T> {
    /// A table of `depth` tags.
    pub fn with_depth(depth: usize) -> TagTable<T> {
        TagTable {
            slots: (0..depth).map(|_| None).collect(),
            next: 0,
        }
    }

    /// Takes the next free tag for the slot `make` builds (called only if a tag is free);
    /// `DB_TAG_ERROR` when every tag is in use.
    pub fn post_with(&mut self, make: impl FnOnce() -> T) -> i64 {
        let n = self.slots.len();
        let Some(tag) = (0..n)
            .map(|i| (self.next + i) % n)
            .find(|t| self.slots[*t].is_none())
        else {
            return dbr::TAG_ERROR;
        };
        self.next = (tag + 1) % n;
        self.slots[tag] = Some(make());
        tag as i64
    }

    fn index(&self, tag: i64) -> Option<usize> {
        usize::try_from(tag).ok().filter(|t| *t < self.slots.len())
    }

    /// The slot of a tag in use; `None` for a free or out-of-range tag (`DBR_ERR_TAGERROR`).
    pub fn get_mut(&mut self, tag: i64) -> Option<&mut T> {
        let i = self.index(tag)?;
        self.slots[i].as_mut()
    }

    /// Frees a tag and gives its slot back; `None` for a free or out-of-range tag.
    pub fn take(&mut self, tag: i64) -> Option<T> {
        let i = self.index(tag)?;
        self.slots[i].take()
    }

    /// Tags in use.
    pub fn in_use(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorInfo, Wait};
    use crate::ErrorCode;

    fn get(capacity: Option<u64>) -> Call {
        Call::new(&NamespaceOp::Get {
            ns: "n".into(),
            key: "k".into(),
            wait: Wait::NoWait,
            capacity,
            partial: false,
        })
    }

    #[test]
    fn db27_failures_map_to_one_code() {
        let lost = Failure::Broker(ErrorInfo {
            code: ErrorCode::ShuttingDown,
            context: "the connection closed before the response arrived".into(),
        });
        assert_eq!(failure_code(&lost), DbrCode::NoConnect);
        let e = NsError::from(&lost);
        assert_eq!(e.code, DbrCode::NoConnect);
        assert!(e.context.starts_with("shutting_down: "), "{}", e.context);
        let ns = |code| Failure::Namespace {
            code,
            context: "c".into(),
        };
        assert_eq!(failure_code(&ns(14)), DbrCode::NoAuth);
        assert_eq!(failure_code(&ns(999)), DbrCode::Generic);
        assert_eq!(failure_code(&ns(-1)), DbrCode::Generic);
        assert_eq!(unexpected("x").code, DbrCode::BeGeneral);
    }

    #[test]
    fn db13_short_buffer_reports_the_full_size() {
        let call = get(Some(4));
        assert_eq!(
            call.settle(Answer::Tuple { size: 10 }, false),
            Settle::Fail(NsError::short_buffer(10))
        );
        assert_eq!(NsError::short_buffer(10).size, Some(10));
        assert_eq!(
            call.settle(Answer::Tuple { size: 4 }, false),
            Settle::Deliver
        );
        assert_eq!(
            get(None).settle(Answer::Tuple { size: 1 << 40 }, false),
            Settle::Deliver
        );
    }

    #[test]
    fn db25_a_cancelled_get_restores_what_it_took() {
        let call = get(Some(1));
        assert_eq!(
            call.settle(Answer::Tuple { size: 10 }, true),
            Settle::RestoreThenFail(NsError::cancelled())
        );
        assert_eq!(
            call.restore(Data::Count(1)),
            Some(NamespaceOp::Restore {
                ns: "n".into(),
                key: "k".into(),
                value: Data::Count(1)
            })
        );
        // A read takes nothing: no restore, just CANCELLED.
        let read = Call::new(&NamespaceOp::Read {
            ns: "n".into(),
            key: "k".into(),
            index: 0,
            wait: Wait::Forever,
            capacity: None,
            partial: false,
        });
        assert_eq!(
            read.settle(Answer::Tuple { size: 1 }, true),
            Settle::Fail(NsError::cancelled())
        );
        assert_eq!(read.restore(Data::Count(1)), None);
        // A failure keeps its code after a cancel.
        let timeout = Failure::Namespace {
            code: 5,
            context: "late".into(),
        };
        match call.settle(Answer::Failed(&timeout), true) {
            Settle::Fail(e) => assert_eq!(e.code, DbrCode::Timeout),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            call.settle(Answer::Done, true),
            Settle::Fail(NsError::cancelled())
        );
    }

    #[test]
    fn db23_tags_round_robin_and_run_out() {
        let mut t = TagTable::with_depth(3);
        assert_eq!(t.post_with(|| 'a'), 0);
        assert_eq!(t.post_with(|| 'b'), 1);
        assert_eq!(t.take(0), Some('a'));
        // Freed tags come back last.
        assert_eq!(t.post_with(|| 'c'), 2);
        assert_eq!(t.post_with(|| 'd'), 0);
        assert_eq!(t.post_with(|| unreachable!("no free tag")), dbr::TAG_ERROR);
        assert_eq!(t.in_use(), 3);
        for bad in [-1, 3, i64::MAX] {
            assert_eq!(t.get_mut(bad), None);
            assert_eq!(t.take(bad), None);
        }
        assert_eq!(t.take(1), Some('b'));
        assert_eq!(t.take(1), None);
        assert_eq!(TagTable::<()>::default().slots.len(), 1024);
    }
}
