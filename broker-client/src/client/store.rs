//! The Rust API of stores (ZB-44..62): [`Store`] runs operations on a master (any store
//! through a [`Client`] connection, or one held in the same process, such as a master of the
//! gateway's embedded `Endpoint`); [`CloneStore`] is a replica in a client with local reads
//! and change events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use broker_wasm::protocol::{ErrorInfo, Failure, Request, Response, StoreOp};
use broker_wasm::{Data, ErrorCode, Timespan};

pub use broker_wasm::store::StoreError;

use super::{Client, ClientError};

fn error(code: ErrorCode, context: impl Into<String>) -> StoreError {
    ErrorInfo {
        code,
        context: context.into(),
    }
}

/// The answer of a [`StoreTarget`] to one operation.
pub type OpFuture = Pin<Box<dyn Future<Output = Result<Response, StoreError>> + Send>>;

/// Where a [`Store`] handle runs its operations when it is not a client's: a master in the
/// same process (the gateway's embedded `Endpoint` implements it for its masters).
pub trait StoreTarget: Send + Sync {
    /// Hands `op` to the master at once (so operations keep their order) and resolves with
    /// its answer.
    fn op(&self, op: StoreOp) -> OpFuture;
}

/// A handle that runs operations on a store's master: through a client connection to a
/// gateway, or directly for a master held in the same process. Cheap to clone. The master
/// answers in arrival order, so a read after a write on the same handle sees the write
/// (ZB-59); with the SQLite backend a mutation resolves once it is committed.
///
/// ```no_run
/// # async fn demo(client: broker_client::Client) -> Result<(), broker_client::StoreError> {
/// use broker_wasm::Data;
/// let users = client.store("users");
/// users.put("alice", 1u64, None).await?;
/// users.increment("alice", 1u64, None).await?;
/// assert_eq!(users.get("alice").await?, Data::Count(2));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    name: String,
    target: Target,
}

#[derive(Clone)]
enum Target {
    Local(Arc<dyn StoreTarget>),
    Remote(Client),
    /// Through a clone of the client: its optimistic writes show in the clone at once.
    Clone(Client),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name).finish()
    }
}

fn span(expiry: Option<Duration>) -> Option<Timespan> {
    expiry.map(|d| Timespan(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
}

impl Store {
    /// Operations on store `name` through `target` (a master in this process).
    pub fn local(name: &str, target: Arc<dyn StoreTarget>) -> Store {
        Store {
            name: name.to_owned(),
            target: Target::Local(target),
        }
    }

    /// Operations on store `name` through a client connection (its master may be on that
    /// gateway or on one of its peers).
    pub fn remote(client: &Client, name: &str) -> Store {
        Store {
            name: name.to_owned(),
            target: Target::Remote(client.clone()),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs any store operation (the wire form of every method below).
    pub async fn op(&self, op: StoreOp) -> Result<Response, StoreError> {
        match &self.target {
            Target::Local(target) => target.op(op).await,
            Target::Remote(client) => client
                .request(Request::Store {
                    store: self.name.clone(),
                    op,
                })
                .await
                .map_err(|e| match e {
                    ClientError::Failed(Failure::Broker(e)) => e,
                    other => error(other.code(), other.to_string()),
                }),
            Target::Clone(client) => {
                client
                    .clone_write(&self.name, op)
                    .await
                    .map_err(|e| match e {
                        ClientError::Failed(Failure::Broker(e)) => e,
                        other => error(other.code(), other.to_string()),
                    })
            }
        }
    }

    async fn done(&self, op: StoreOp) -> Result<(), StoreError> {
        self.op(op).await.map(|_| ())
    }

    async fn value(&self, op: StoreOp) -> Result<Data, StoreError> {
        match self.op(op).await? {
            Response::Value(v) => Ok(v),
            Response::Bool(b) => Ok(Data::Boolean(b)),
            other => Err(error(
                ErrorCode::LogicError,
                format!("unexpected {other:?}"),
            )),
        }
    }

    /// Inserts or overwrites; `expiry` is relative to now (ZB-48).
    pub async fn put(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::Put {
            key: key.into(),
            value: value.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// Inserts only if absent; true if inserted (ZB-49).
    pub async fn put_unique(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<bool, StoreError> {
        match self
            .op(StoreOp::PutUnique {
                key: key.into(),
                value: value.into(),
                expiry: span(expiry),
            })
            .await?
        {
            Response::Bool(b) => Ok(b),
            other => Err(error(
                ErrorCode::LogicError,
                format!("unexpected {other:?}"),
            )),
        }
    }

    /// Removes a key; absent keys are fine (ZB-50).
    pub async fn erase(&self, key: impl Into<Data>) -> Result<(), StoreError> {
        self.done(StoreOp::Erase { key: key.into() }).await
    }

    /// Removes every key (ZB-50).
    pub async fn clear(&self) -> Result<(), StoreError> {
        self.done(StoreOp::Clear).await
    }

    /// Adds `amount` (ZB-51); type clashes and overflow are errors.
    pub async fn increment(
        &self,
        key: impl Into<Data>,
        amount: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::Increment {
            key: key.into(),
            amount: amount.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// Subtracts `amount` (ZB-51).
    pub async fn decrement(
        &self,
        key: impl Into<Data>,
        amount: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::Decrement {
            key: key.into(),
            amount: amount.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// Appends to a string (ZB-52).
    pub async fn append(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::Append {
            key: key.into(),
            value: value.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// Adds to a set (`value` None), sets a table entry, or inserts into a vector at a
    /// position (ZB-53).
    pub async fn insert_into(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
        value: Option<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::InsertInto {
            key: key.into(),
            index: index.into(),
            value,
            expiry: span(expiry),
        })
        .await
    }

    /// Removes a set element, a table entry or a vector position (ZB-53).
    pub async fn remove_from(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::RemoveFrom {
            key: key.into(),
            index: index.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// Appends to a vector (ZB-54).
    pub async fn push(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::Push {
            key: key.into(),
            value: value.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// Removes the last element of a vector (ZB-54).
    pub async fn pop(
        &self,
        key: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.done(StoreOp::Pop {
            key: key.into(),
            expiry: span(expiry),
        })
        .await
    }

    /// The value of a key, or `no_such_key` (ZB-55).
    pub async fn get(&self, key: impl Into<Data>) -> Result<Data, StoreError> {
        self.value(StoreOp::Get { key: key.into() }).await
    }

    /// Whether a key exists (ZB-55).
    pub async fn exists(&self, key: impl Into<Data>) -> Result<bool, StoreError> {
        Ok(self.value(StoreOp::Exists { key: key.into() }).await? == Data::Boolean(true))
    }

    /// Every key, as a set (ZB-55).
    pub async fn keys(&self) -> Result<Data, StoreError> {
        self.value(StoreOp::Keys).await
    }

    /// An element of a container value (ZB-55).
    pub async fn get_index_from_value(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
    ) -> Result<Data, StoreError> {
        self.value(StoreOp::GetIndexFromValue {
            key: key.into(),
            index: index.into(),
        })
        .await
    }

    /// Resolves once every write before it is durable (ZB-61).
    pub async fn await_idle(&self) -> Result<(), StoreError> {
        self.done(StoreOp::AwaitIdle).await
    }
}

/// What a clone observed (ZB-62).
#[derive(Debug, Clone, PartialEq)]
pub enum CloneEvent {
    /// A snapshot or updates were applied. `reset`: the master is a different instance than
    /// before (it restarted), and `changes` is the difference to the old state.
    Changes {
        changes: Vec<broker_wasm::store::Change>,
        reset: bool,
        synced: bool,
    },
    /// Attaching failed, or the master was lost. After `no_such_master` the clone tries again
    /// after its resync interval; after a final refusal (`unauthorized`, `invalid_data`: see
    /// [`CloneStore::refusal`]) it does not.
    Error(StoreError),
    /// An optimistic write (`CloneOptions::optimistic`): made, confirmed or rolled back;
    /// `value` is the clone's view of `key` now.
    Write {
        key: Data,
        value: Option<Data>,
        state: broker_wasm::client::WriteState,
    },
}

/// A replica of a store inside a [`Client`] (ZB-47, ZB-58): reads are local, writes go to
/// the master and show up here when its update comes back (no read-your-writes, ZB-59).
#[derive(Debug)]
pub struct CloneStore {
    pub(crate) name: String,
    pub(crate) client: Client,
    pub(crate) events: tokio::sync::mpsc::UnboundedReceiver<CloneEvent>,
}

impl CloneStore {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Operations on the master through this clone's connection. With
    /// [`CloneOptions::optimistic`](broker_wasm::client::CloneOptions), its writes show in
    /// this clone at once, pending until the master answers ([`CloneEvent::Write`]).
    pub fn master(&self) -> Store {
        Store {
            name: self.name.clone(),
            target: Target::Clone(self.client.clone()),
        }
    }

    /// Whether `key` has an optimistic write waiting for the master's answer.
    pub fn is_pending(&self, key: &Data) -> bool {
        self.client.with_core(|c| c.clone_pending(&self.name, key))
    }

    /// The local value of `key` (`Ok(None)` if absent); `stale_data` before the first
    /// snapshot or after the stale interval without a master (ZB-55).
    pub fn get(&self, key: &Data) -> Result<Option<Data>, StoreError> {
        self.client.with_core(|c| {
            c.clone_get(&self.name, key)
                .map(|e| e.map(|e| e.value.clone()))
        })
    }

    /// Every local key, in order.
    pub fn keys(&self) -> Result<Vec<Data>, StoreError> {
        self.client.with_core(|c| {
            c.clone_entries(&self.name)
                .map(|it| it.map(|(k, _)| k.clone()).collect())
        })
    }

    /// Number of local entries.
    pub fn len(&self) -> usize {
        self.client
            .with_core(|c| c.clone_len(&self.name).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why the gateway refused this clone for good (e.g. `unauthorized`: the token lacks
    /// `store_read`), if it did. Such a clone does not try again; [`Client::attach_clone`]
    /// anew to retry.
    pub fn refusal(&self) -> Option<StoreError> {
        self.client
            .with_core(|c| c.clone_refusal(&self.name).cloned())
    }

    /// Stops the event stream: events from now on are dropped instead of queued (for a user
    /// that only reads the replica and awaits idleness). [`CloneStore::next_event`] then
    /// answers `None` and [`CloneStore::synced`] `shutting_down`; use
    /// [`CloneStore::await_idle`].
    pub fn ignore_events(&mut self) {
        self.events.close();
        while self.events.try_recv().is_ok() {}
    }

    /// The next event, or `None` once the client closed.
    pub async fn next_event(&mut self) -> Option<CloneEvent> {
        self.events.recv().await
    }

    /// Waits until the clone is in sync with its master, at most `timeout` (then
    /// `request_timeout`). A final refusal (see [`CloneStore::refusal`]) fails at once with its
    /// own code, also when it came before this call.
    pub async fn synced(&mut self, timeout: Duration) -> Result<(), StoreError> {
        let wait = async {
            loop {
                let state = self
                    .client
                    .with_core(|c| match c.clone_refusal(&self.name) {
                        Some(e) => Err(e.clone()),
                        None => Ok(c
                            .clone_replica(&self.name)
                            .is_ok_and(broker_wasm::store::Replica::is_synced)),
                    });
                if state? {
                    return Ok(());
                }
                match self.events.recv().await {
                    Some(CloneEvent::Changes { synced: true, .. }) => return Ok(()),
                    Some(_) => {}
                    None => return Err(error(ErrorCode::ShuttingDown, "the client closed")),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(error(
                    ErrorCode::RequestTimeout,
                    "clone not in sync in time",
                ))
            })
    }

    /// Broker's `await_idle` for a clone (ZB-61): resolves when the clone is in sync and this
    /// client has no request in flight; then the master has applied every write sent before.
    /// Changes that arrive meanwhile stay queued for [`CloneStore::next_event`].
    pub async fn await_idle(&self, timeout: Duration) -> bool {
        let name = self.name.clone();
        let client = self.client.clone();
        let wait = async move {
            loop {
                // A ping round trip: everything sent before it was processed by the master's
                // gateway, and the updates it caused were queued before the pong.
                if client.flush().await.is_err() {
                    return false;
                }
                let activity = client.activity();
                let (idle, refused) =
                    client.with_core(|c| (c.clone_idle(&name), c.clone_refusal(&name).is_some()));
                if idle || refused {
                    return idle;
                }
                activity.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}
