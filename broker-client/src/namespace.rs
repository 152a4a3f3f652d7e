//! Namespaces from Rust (DB-01..28): an idiomatic [`Namespace`] handle over
//! [`Client::request`], and [`dbr`], the PyDBR function names and argument order for code
//! ported from the IBM Data Broker.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use broker_client::namespace::GetOptions;
//! use broker_client::Client;
//! let client = Client::connect("ws://127.0.0.1:9999").await?;
//! let ns = client.create_namespace("jobs", 0, vec![]).await?;
//! ns.put("todo", "build").await?;
//! let job = ns.get("todo").await?; // blocks up to 5 s (DB-15)
//! let next = ns.get_with("todo", GetOptions::forever()).await; // waits until a put
//! ns.delete().await?;
//! # drop((job, next)); Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use broker_wasm::client::namespace::{Answer, Call, Settle};
use broker_wasm::dbr::{self as codes, DbrCode};
use broker_wasm::protocol::{NamespaceInfo, NamespaceOp, Request, Response, Wait};
use broker_wasm::{Data, Timespan};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientError};

/// A failed namespace operation: a Data Broker error code (DB-27) and context. The rules
/// that make these (failure codes, DB-13, DB-25) live in the core,
/// [`broker_wasm::client::namespace`], shared with the JS client.
pub use broker_wasm::client::namespace::NsError;

impl From<ClientError> for NsError {
    fn from(e: ClientError) -> NsError {
        match e {
            ClientError::Failed(f) => NsError::from(f),
            other => NsError::new(DbrCode::NoConnect, other.to_string()),
        }
    }
}

/// How a `read` or `get` behaves (DB-11..15).
#[derive(Debug, Clone)]
pub struct GetOptions {
    /// How long to wait for a missing value (default: 5 s, `DBR_TIMEOUT_DEFAULT`).
    pub wait: Wait,
    /// Element to read, 0 = oldest (reads only).
    pub index: u64,
    /// The caller's buffer size: larger values fail with UBUFFER and stay queued (DB-13).
    pub capacity: Option<u64>,
    /// With a capacity: report the full size (and the part that fits) instead of failing.
    pub partial: bool,
    /// Cancels the wait; a cancelled get never consumes a value (DB-25).
    pub cancel: Option<CancellationToken>,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            wait: Wait::Timeout(span(Duration::from_secs(codes::TIMEOUT_DEFAULT_SECS))),
            index: 0,
            capacity: None,
            partial: false,
            cancel: None,
        }
    }
}

impl GetOptions {
    /// Fail at once with UNAVAIL if there is no value (`DBR_FLAGS_NOWAIT`).
    pub fn nowait() -> GetOptions {
        GetOptions {
            wait: Wait::NoWait,
            ..Default::default()
        }
    }
    /// Wait until a value arrives or the request is cancelled.
    pub fn forever() -> GetOptions {
        GetOptions {
            wait: Wait::Forever,
            ..Default::default()
        }
    }
    /// Wait up to `d`, then fail with TIMEOUT.
    pub fn timeout(d: Duration) -> GetOptions {
        GetOptions {
            wait: Wait::Timeout(span(d)),
            ..Default::default()
        }
    }
}

/// A value from `read`/`get` with its size (DB-13).
#[derive(Debug, Clone, PartialEq)]
pub struct Tuple {
    pub value: Data,
    pub size: u64,
}

/// A duration as a Broker timespan (saturating).
pub fn span(d: Duration) -> Timespan {
    Timespan(d.as_nanos().min(i64::MAX as u128) as i64)
}

fn unexpected(r: Response) -> NsError {
    broker_wasm::client::namespace::unexpected(r)
}

impl Client {
    /// Names of every namespace of the gateway, sorted (not in the Data Broker API).
    pub async fn namespaces(&self) -> Result<Vec<String>, NsError> {
        match self.request(Request::Namespace(NamespaceOp::List)).await? {
            Response::Names { names, .. } => Ok(names),
            other => Err(NsError::new(
                DbrCode::Generic,
                format!("unexpected response {other:?}"),
            )),
        }
    }

    /// Creates a namespace and attaches this connection to it (DB-01). `level` 4 or 5
    /// (`PERMANENT_*`) keeps it in SQLite, others in memory (DB-07).
    pub async fn create_namespace(
        &self,
        name: impl Into<String>,
        level: u8,
        groups: Vec<String>,
    ) -> Result<Namespace, NsError> {
        let name = name.into();
        let r = self
            .request(Request::Namespace(NamespaceOp::Create {
                name: name.clone(),
                level,
                groups,
            }))
            .await?;
        Namespace::from_response(self, name, r)
    }

    /// Attaches to an existing namespace (DB-03); each attach counts once.
    pub async fn attach_namespace(&self, name: impl Into<String>) -> Result<Namespace, NsError> {
        let name = name.into();
        let r = self
            .request(Request::Namespace(NamespaceOp::Attach {
                name: name.clone(),
            }))
            .await?;
        Namespace::from_response(self, name, r)
    }

    /// One namespace operation, with DB-27 errors.
    pub async fn namespace_op(&self, op: NamespaceOp) -> Result<Response, NsError> {
        Ok(self.request(Request::Namespace(op)).await?)
    }
}

/// An attached namespace. Cloning shares the attachment; `detach` or `delete` ends it for
/// every clone (later calls fail with NSINVAL locally, as a stale handle does in DBR).
#[derive(Debug, Clone)]
pub struct Namespace {
    client: Client,
    name: String,
    valid: Arc<AtomicBool>,
}

impl Namespace {
    fn from_response(client: &Client, name: String, r: Response) -> Result<Namespace, NsError> {
        match r {
            Response::Namespace(_) => Ok(Namespace {
                client: client.clone(),
                name,
                valid: Arc::new(AtomicBool::new(true)),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// False after `detach` or `delete`.
    pub fn is_valid(&self) -> bool {
        self.valid.load(Relaxed)
    }

    fn check(&self) -> Result<(), NsError> {
        if self.is_valid() {
            Ok(())
        } else {
            Err(NsError::stale(&self.name))
        }
    }

    async fn op(&self, op: NamespaceOp) -> Result<Response, NsError> {
        self.check()?;
        self.client.namespace_op(op).await
    }

    /// Appends `value` to the FIFO of `key` (DB-10).
    pub async fn put(&self, key: impl Into<String>, value: impl Into<Data>) -> Result<(), NsError> {
        self.op(NamespaceOp::Put {
            ns: self.name.clone(),
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(drop)
    }

    /// The oldest value of `key`, left in place; waits up to 5 s (DB-11).
    pub async fn read(&self, key: impl Into<String>) -> Result<Data, NsError> {
        Ok(self.read_with(key, GetOptions::default()).await?.value)
    }

    /// Removes and returns the oldest value of `key`; waits up to 5 s (DB-12).
    pub async fn get(&self, key: impl Into<String>) -> Result<Data, NsError> {
        Ok(self.get_with(key, GetOptions::default()).await?.value)
    }

    /// `read` with options (index, wait, capacity, cancellation).
    pub async fn read_with(
        &self,
        key: impl Into<String>,
        opts: GetOptions,
    ) -> Result<Tuple, NsError> {
        let op = NamespaceOp::Read {
            ns: self.name.clone(),
            key: key.into(),
            index: opts.index,
            wait: opts.wait,
            capacity: opts.capacity,
            partial: opts.partial,
        };
        self.fetch(op, opts.cancel).await
    }

    /// `get` with options (wait, capacity, cancellation).
    pub async fn get_with(
        &self,
        key: impl Into<String>,
        opts: GetOptions,
    ) -> Result<Tuple, NsError> {
        let op = NamespaceOp::Get {
            ns: self.name.clone(),
            key: key.into(),
            wait: opts.wait,
            capacity: opts.capacity,
            partial: opts.partial,
        };
        self.fetch(op, opts.cancel).await
    }

    /// A read or get; the core's rules decide what the answer means (DB-13, DB-25).
    async fn fetch(
        &self,
        op: NamespaceOp,
        cancel: Option<CancellationToken>,
    ) -> Result<Tuple, NsError> {
        self.check()?;
        let call = Call::new(&op);
        let (r, cancelled) = match cancel {
            None => (self.client.request(Request::Namespace(op)).await, false),
            Some(token) => {
                let request = Request::Namespace(op);
                let r = self.client.request_cancellable(request, &token).await;
                (r, token.is_cancelled())
            }
        };
        let r = match r {
            Ok(r) => Ok(r),
            Err(ClientError::Failed(f)) => Err(f),
            Err(other) => return Err(other.into()),
        };
        let answer = match &r {
            Ok(Response::Tuple { size, .. }) => Answer::Tuple { size: *size },
            Ok(_) => Answer::Done,
            Err(f) => Answer::Failed(f),
        };
        match (call.settle(answer, cancelled), r) {
            (Settle::Deliver, Ok(Response::Tuple { value, size })) => Ok(Tuple { value, size }),
            (Settle::Deliver, Ok(other)) => Err(unexpected(other)),
            (Settle::RestoreThenFail(e), Ok(Response::Tuple { value, .. })) => {
                if let Some(restore) = call.restore(value) {
                    self.op(restore).await?;
                }
                Err(e)
            }
            (Settle::Fail(e) | Settle::RestoreThenFail(e), _) => Err(e),
            (Settle::Deliver, Err(f)) => Err(NsError::from(f)),
        }
    }

    /// Deletes every value of `key` (DB-17); UNAVAIL if there is none.
    pub async fn remove(&self, key: impl Into<String>) -> Result<(), NsError> {
        self.op(NamespaceOp::Remove {
            ns: self.name.clone(),
            key: key.into(),
        })
        .await
        .map(drop)
    }

    /// Moves the whole queue of `key` to `to`, atomically (DB-18).
    pub async fn move_to(&self, key: impl Into<String>, to: &Namespace) -> Result<(), NsError> {
        to.check()?;
        self.op(NamespaceOp::Move {
            from: self.name.clone(),
            key: key.into(),
            to: to.name.clone(),
        })
        .await
        .map(drop)
    }

    /// True if `key` has a value; never waits, never consumes (DB-22).
    pub async fn test_key(&self, key: impl Into<String>) -> Result<bool, NsError> {
        match self
            .op(NamespaceOp::TestKey {
                ns: self.name.clone(),
                key: key.into(),
            })
            .await?
        {
            Response::Bool(b) => Ok(b),
            other => Err(unexpected(other)),
        }
    }

    /// Names matching a glob `pattern` (empty = `*`), at most `limit` (0 = all) (DB-20).
    pub async fn directory(&self, pattern: &str, limit: u64) -> Result<Vec<String>, NsError> {
        match self
            .op(NamespaceOp::Directory {
                ns: self.name.clone(),
                pattern: pattern.into(),
                limit,
            })
            .await?
        {
            Response::Names { names, .. } => Ok(names),
            other => Err(unexpected(other)),
        }
    }

    /// One page of matching names after `after`, in name order; `true` when it is the last
    /// (DB-21).
    pub async fn iterate_page(
        &self,
        pattern: &str,
        after: Option<String>,
        limit: u64,
    ) -> Result<(Vec<String>, bool), NsError> {
        match self
            .op(NamespaceOp::Iterate {
                ns: self.name.clone(),
                pattern: pattern.into(),
                after,
                limit,
            })
            .await?
        {
            Response::Names { names, done } => Ok((names, done)),
            other => Err(unexpected(other)),
        }
    }

    /// The namespace's state (DB-06).
    pub async fn query(&self) -> Result<NamespaceInfo, NsError> {
        match self
            .op(NamespaceOp::Query {
                name: self.name.clone(),
            })
            .await?
        {
            Response::Namespace(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    /// Gives up this attachment (DB-04); the data stays unless the namespace is marked.
    pub async fn detach(&self) -> Result<(), NsError> {
        let r = self
            .op(NamespaceOp::Detach {
                name: self.name.clone(),
            })
            .await;
        self.valid.store(false, Relaxed);
        r.map(drop)
    }

    /// Marks the namespace for deletion and detaches (DB-05): `Ok` if it is gone, NSBUSY if
    /// other attachments keep it until they detach. The handle is unusable afterwards.
    pub async fn delete(&self) -> Result<(), NsError> {
        let r = self
            .op(NamespaceOp::Delete {
                name: self.name.clone(),
            })
            .await;
        self.valid.store(false, Relaxed);
        r.map(drop)
    }
}

/// The PyDBR API (DB-28) for ported code: the same function names, argument order and
/// return shapes (`(value, code)` pairs, integer codes, tags), over one [`Client`].
/// Divergences from PyDBR: values are typed [`Data`] (no pickle), no NUL padding, failed
/// reads update `buffer_size` (DB-29), and buffers default to unlimited.
pub mod dbr {
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
        pub fn put_a(
            &self,
            handle: &Handle,
            value: impl Into<Data>,
            name: &str,
            _group: &str,
        ) -> i64 {
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
        pub async fn remove(
            &self,
            handle: &Handle,
            _group: &str,
            name: &str,
            _template: &str,
        ) -> i32 {
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

    fn finish(
        r: Result<super::Tuple, NsError>,
        buffer_size: Option<&mut u64>,
    ) -> (Option<Data>, i32) {
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
}
