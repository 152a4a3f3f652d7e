//! The PyDBR API (DB-28) for ported code: the same function names, argument order and
//! return shapes (`(value, code)` pairs, integer codes, tags), over one [`Client`].
//! Divergences from PyDBR: values are typed [`Data`] (no pickle), no NUL padding, failed
//! reads update `buffer_size` (DB-29), and buffers default to unlimited.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use broker_wasm::client::namespace::TagTable;
use broker_wasm::dbr::{self as codes, DbrCode, FetchFlags};
use broker_wasm::Data;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{GetOptions, Namespace, NsError};
use crate::client::Client;

pub use broker_wasm::dbr::{
    error_message, error_name, FLAGS_MAX as DBR_FLAGS_MAX, FLAGS_NONE as DBR_FLAGS_NONE,
    FLAGS_NOWAIT as DBR_FLAGS_NOWAIT, FLAGS_PARTIAL as DBR_FLAGS_PARTIAL,
    TAG_ERROR as DB_TAG_ERROR,
};

/// A namespace handle (`DBR_Handle_t`).
pub type Handle = Namespace;
/// An iterator position; `None` is `DBR_ITERATOR_NEW` / `DBR_ITERATOR_DONE`.
pub type Iter = Option<String>;

fn code(r: Result<(), NsError>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.code.code(),
    }
}

type Outcome = Result<Option<super::Tuple>, NsError>;

#[derive(Debug)]
struct Slot {
    rx: oneshot::Receiver<Outcome>,
    cancel: CancellationToken,
}

/// The process-local context of the original library: open handles by name, the tag
/// table, the timeout (`DBR_TIMEOUT`).
#[derive(Debug)]
pub struct Dbr {
    client: Client,
    /// Blocking timeout for `read`/`get` without NOWAIT; `None` waits forever
    /// (`DBR_TIMEOUT=0`). Default 5 s.
    pub timeout: Option<Duration>,
    handles: Mutex<HashMap<String, Handle>>,
    tags: Mutex<TagTable<Slot>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// PyDBR's `getErrorCode`: the `DBR_*` name.
pub fn get_error_code(code: i32) -> &'static str {
    error_name(code)
}

/// PyDBR's `getErrorMessage`: the original's message.
pub fn get_error_message(code: i32) -> &'static str {
    error_message(code)
}

impl Dbr {
    pub fn new(client: Client) -> Dbr {
        Dbr {
            client,
            timeout: Some(Duration::from_secs(codes::TIMEOUT_DEFAULT_SECS)),
            handles: Mutex::new(HashMap::new()),
            tags: Mutex::new(TagTable::default()),
        }
    }

    /// The options of a read or get (`get`), blocking or `asynchronous`, from PyDBR
    /// flags (decoded by the core, DB-11, DB-14, DB-15).
    fn opts(&self, flags: u64, get: bool, asynchronous: bool, cap: Option<u64>) -> GetOptions {
        let f = FetchFlags::decode(flags, get);
        GetOptions {
            wait: f.wait(self.timeout.map(super::span), asynchronous),
            index: f.index,
            capacity: cap,
            partial: f.partial,
            cancel: None,
        }
    }

    /// `dbrCreate`: a handle, or `None` (the original's NULL) on any failure.
    pub async fn create(&self, name: &str, level: u8, groups: &[&str]) -> Option<Handle> {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        let h = self
            .client
            .create_namespace(name, level, groups)
            .await
            .ok()?;
        lock(&self.handles).insert(name.into(), h.clone());
        Some(h)
    }

    /// `dbrAttach`: a handle, or `None`.
    pub async fn attach(&self, name: &str) -> Option<Handle> {
        let h = self.client.attach_namespace(name).await.ok()?;
        lock(&self.handles).insert(name.into(), h.clone());
        Some(h)
    }

    /// `dbrDelete`: only for a namespace this context holds (else NSINVAL); NSBUSY
    /// if others are still attached (the deletion then happens at their detach).
    pub async fn delete(&self, name: &str) -> i32 {
        let h = lock(&self.handles).remove(name);
        match h {
            Some(h) => code(h.delete().await),
            None => DbrCode::NsInval.code(),
        }
    }

    /// `dbrDetach`.
    pub async fn detach(&self, handle: &Handle) -> i32 {
        if !handle.is_valid() {
            return DbrCode::NsInval.code();
        }
        lock(&self.handles).remove(handle.name());
        code(handle.detach().await)
    }

    /// `dbrQuery`: the code and (diverging from the original, which never fills it) the
    /// real state.
    pub async fn query(
        &self,
        handle: &Handle,
    ) -> (i32, Option<broker_wasm::protocol::NamespaceInfo>) {
        match handle.query().await {
            Ok(i) if handle.is_valid() => (0, Some(i)),
            Ok(_) => (DbrCode::NsInval.code(), None),
            Err(e) => (e.code.code(), None),
        }
    }

    /// `dbrPut` (the group is ignored, DB-07).
    pub async fn put(
        &self,
        handle: &Handle,
        value: impl Into<Data>,
        name: &str,
        _group: &str,
    ) -> i32 {
        code(handle.put(name, value).await)
    }

    /// `dbrRead`: `(value, code)`; `buffer_size` is in/out as in PyDBR (capacity in, the
    /// value's size out; with PARTIAL also on UBUFFER).
    pub async fn read(
        &self,
        handle: &Handle,
        name: &str,
        _template: &str,
        _group: &str,
        flags: u64,
        buffer_size: Option<&mut u64>,
    ) -> (Option<Data>, i32) {
        let cap = buffer_size.as_deref().copied();
        let r = handle
            .read_with(name, self.opts(flags, false, false, cap))
            .await;
        finish(r, buffer_size)
    }

    /// `dbrGet`: like `read`, and removes the value; a value that does not fit stays
    /// queued (DB-13, a deliberate fix).
    pub async fn get(
        &self,
        handle: &Handle,
        name: &str,
        _template: &str,
        _group: &str,
        flags: u64,
        buffer_size: Option<&mut u64>,
    ) -> (Option<Data>, i32) {
        let cap = buffer_size.as_deref().copied();
        let r = handle
            .get_with(name, self.opts(flags, true, false, cap))
            .await;
        finish(r, buffer_size)
    }

    fn post<F>(&self, f: impl FnOnce(CancellationToken) -> F) -> i64
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        lock(&self.tags).post_with(|| {
            let cancel = CancellationToken::new();
            let (tx, rx) = oneshot::channel();
            let job = f(cancel.clone());
            tokio::spawn(async move {
                let _ = tx.send(job.await);
            });
            Slot { rx, cancel }
        })
    }

    /// `dbrPutA`: a tag (0..1023) or `DB_TAG_ERROR`.
    pub fn put_a(&self, handle: &Handle, value: impl Into<Data>, name: &str, _group: &str) -> i64 {
        let (h, value, name) = (handle.clone(), value.into(), name.to_owned());
        self.post(move |_| async move { h.put(name, value).await.map(|()| None) })
    }

    /// `dbrReadA`: never times out; completes when a value arrives, or is cancelled.
    pub fn read_a(
        &self,
        handle: &Handle,
        name: &str,
        _template: &str,
        _group: &str,
        flags: u64,
    ) -> i64 {
        let (h, name) = (handle.clone(), name.to_owned());
        let mut opts = self.opts(flags, false, true, None);
        self.post(move |cancel| {
            opts.cancel = Some(cancel);
            async move { h.read_with(name, opts).await.map(Some) }
        })
    }

    /// `dbrGetA`: like `read_a`; a cancelled `get_a` never consumes a value.
    pub fn get_a(
        &self,
        handle: &Handle,
        name: &str,
        _template: &str,
        _group: &str,
        flags: u64,
    ) -> i64 {
        let (h, name) = (handle.clone(), name.to_owned());
        let mut opts = self.opts(flags, true, true, None);
        self.post(move |cancel| {
            opts.cancel = Some(cancel);
            async move { h.get_with(name, opts).await.map(Some) }
        })
    }

    /// `dbrTest`: INPROGRESS, or the final code (the tag is then free); TAGERROR for a
    /// free or out-of-range tag.
    pub fn test(&self, tag: i64) -> i32 {
        self.test_value(tag).0
    }

    /// `dbrTest` that also hands over the value of a completed `read_a`/`get_a`.
    pub fn test_value(&self, tag: i64) -> (i32, Option<Data>) {
        let mut tags = lock(&self.tags);
        let Some(s) = tags.get_mut(tag) else {
            return (DbrCode::TagError.code(), None);
        };
        match s.rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => (DbrCode::InProgress.code(), None),
            Err(oneshot::error::TryRecvError::Closed) => {
                tags.take(tag);
                (DbrCode::Generic.code(), None)
            }
            Ok(r) => {
                tags.take(tag);
                match r {
                    Ok(t) => (0, t.map(|t| t.value)),
                    Err(e) => (e.code.code(), None),
                }
            }
        }
    }

    /// Waits until a posted request completes and frees its tag: `(code, value)`, what
    /// a loop over `test` gives, without polling.
    pub async fn wait(&self, tag: i64) -> (i32, Option<Data>) {
        let slot = lock(&self.tags).take(tag);
        let Some(s) = slot else {
            return (DbrCode::TagError.code(), None);
        };
        match s.rx.await {
            Ok(Ok(t)) => (0, t.map(|t| t.value)),
            Ok(Err(e)) => (e.code.code(), None),
            Err(_) => (DbrCode::Generic.code(), None),
        }
    }

    /// `dbrCancel`: stops the request (the gateway drops the waiter; a value taken in
    /// the race goes back to the head of its queue) and frees the tag.
    pub fn cancel(&self, tag: i64) -> i32 {
        let slot = lock(&self.tags).take(tag);
        match slot {
            Some(s) => {
                s.cancel.cancel();
                0
            }
            None => DbrCode::TagError.code(),
        }
    }

    /// `dbrCancel` that returns once the request has ended: a value a cancelled `getA` took
    /// in the race is back in its namespace by then, so an operation issued next sees it
    /// ([`Dbr::cancel`] returns at once and the value comes back a moment later).
    pub async fn cancel_wait(&self, tag: i64) -> i32 {
        let slot = lock(&self.tags).take(tag);
        match slot {
            Some(s) => {
                s.cancel.cancel();
                // Whatever the outcome, the tag is gone; only the waiting matters.
                let _ = s.rx.await;
                0
            }
            None => DbrCode::TagError.code(),
        }
    }

    /// `dbrTestKey`.
    pub async fn test_key(&self, handle: &Handle, name: &str) -> i32 {
        match handle.test_key(name).await {
            Ok(true) => 0,
            Ok(false) => DbrCode::Unavail.code(),
            Err(e) => e.code.code(),
        }
    }

    /// `dbrDirectory`: `(names, size of the newline-separated list, code)`; `count` caps
    /// the names (0 = all, diverging from the original's BE_POST), the list is cut to
    /// `size` bytes.
    pub async fn directory(
        &self,
        handle: &Handle,
        template: &str,
        _group: &str,
        count: u64,
        size: usize,
    ) -> (Vec<String>, usize, i32) {
        match handle.directory(template, count).await {
            Ok(names) => {
                let (list, len) = codes::directory_list(&names, Some(size));
                (list, len, 0)
            }
            Err(e) => (vec![String::new()], 0, e.code.code()),
        }
    }

    /// `dbrIterator`: `(name, next)`; at the end `(None, None)` (`DBR_ITERATOR_DONE`).
    pub async fn iterator(
        &self,
        handle: &Handle,
        iterator: Iter,
        _group: &str,
        template: &str,
    ) -> (Option<String>, Iter) {
        match handle.iterate_page(template, iterator, 1).await {
            Ok((names, _)) => match names.into_iter().next() {
                Some(n) => (Some(n.clone()), Some(n)),
                None => (None, None),
            },
            Err(_) => (None, None),
        }
    }

    /// `dbrMove` (atomic here).
    pub async fn r#move(
        &self,
        src: &Handle,
        _src_group: &str,
        name: &str,
        _template: &str,
        dst: &Handle,
        _dst_group: &str,
    ) -> i32 {
        code(src.move_to(name, dst).await)
    }

    /// `dbrRemove`.
    pub async fn remove(&self, handle: &Handle, _group: &str, name: &str, _template: &str) -> i32 {
        code(handle.remove(name).await)
    }

    /// `dbrPut_gather` (DB-26): the parts concatenated into one binary value; no parts
    /// is INVALID.
    pub async fn put_gather(
        &self,
        handle: &Handle,
        parts: &[&[u8]],
        name: &str,
        _group: &str,
    ) -> i32 {
        match codes::gather(parts) {
            Ok(value) => code(handle.put(name, value).await),
            Err(c) => c.code(),
        }
    }

    /// `dbrRead_scatter` (DB-26): one value spread over pieces of `sizes[i]` bytes, in
    /// order. A value longer than all pieces is UBUFFER. The flags keep their meaning
    /// (the original inverted NOWAIT here).
    pub async fn read_scatter(
        &self,
        handle: &Handle,
        sizes: &[usize],
        name: &str,
        _template: &str,
        _group: &str,
        flags: u64,
    ) -> (Vec<Vec<u8>>, i32) {
        self.scatter(false, handle, sizes, name, flags).await
    }

    /// `dbrGet_scatter` (DB-26): like `read_scatter`, and removes the value (a value
    /// that does not fit stays queued).
    pub async fn get_scatter(
        &self,
        handle: &Handle,
        sizes: &[usize],
        name: &str,
        _template: &str,
        _group: &str,
        flags: u64,
    ) -> (Vec<Vec<u8>>, i32) {
        self.scatter(true, handle, sizes, name, flags).await
    }

    async fn scatter(
        &self,
        get: bool,
        handle: &Handle,
        sizes: &[usize],
        name: &str,
        flags: u64,
    ) -> (Vec<Vec<u8>>, i32) {
        let (capacity, flags) = match codes::scatter_request(sizes, flags) {
            Ok(plan) => plan,
            Err(c) => return (Vec::new(), c.code()),
        };
        let opts = self.opts(flags, get, false, Some(capacity));
        let r = if get {
            handle.get_with(name, opts).await
        } else {
            handle.read_with(name, opts).await
        };
        let bytes = match r {
            Ok(t) => codes::value_bytes(&t.value),
            Err(e) => return (Vec::new(), e.code.code()),
        };
        let pieces = codes::scatter(&bytes, sizes)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        (pieces, 0)
    }

    /// `dbrAddUnits`: not implemented (DB-08).
    pub fn add_units(&self, _handle: &Handle, _units: &[&str]) -> i32 {
        DbrCode::NotImpl.code()
    }

    /// `dbrRemoveUnits`: not implemented (DB-08).
    pub fn remove_units(&self, _handle: &Handle, _units: &[&str]) -> i32 {
        DbrCode::NotImpl.code()
    }
}

fn finish(r: Result<super::Tuple, NsError>, buffer_size: Option<&mut u64>) -> (Option<Data>, i32) {
    match r {
        Ok(t) => {
            if let Some(b) = buffer_size {
                *b = t.size;
            }
            (Some(t.value), 0)
        }
        Err(e) => {
            if let (Some(b), Some(size)) = (buffer_size, e.size) {
                *b = size;
            }
            (None, e.code.code())
        }
    }
}
