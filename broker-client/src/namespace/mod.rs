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

pub mod dbr;
