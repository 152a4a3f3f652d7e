//! Store handles (Broker's `broker.Store`): a master held by this endpoint, or a clone of a
//! master here or on a peer. Writes go to the master and wait for its answer; a clone reads
//! its local replica, as Broker's clones do.

use std::sync::Mutex;
use std::time::Duration;

use broker_wasm::protocol::{Response, StoreOp};
use broker_wasm::Data;
use pyo3::prelude::*;

use crate::{convert, err, runtime};

/// How long `await_idle` waits without a timeout (Broker's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

enum Handle {
    Master(gateway::Store),
    Clone {
        clone: gateway::CloneStore,
        master: gateway::Store,
    },
}

impl Handle {
    /// Where writes and (for masters) reads go.
    fn master(&self) -> &gateway::Store {
        match self {
            Handle::Master(m) | Handle::Clone { master: m, .. } => m,
        }
    }
}

/// A store handle; `reset()` releases it.
#[pyclass(module = "broker._broker")]
pub(crate) struct Store {
    name: String,
    handle: Mutex<Option<std::sync::Arc<Handle>>>,
}

impl Store {
    pub(crate) fn master(store: gateway::Store) -> Store {
        Store {
            name: store.name().to_owned(),
            handle: Mutex::new(Some(std::sync::Arc::new(Handle::Master(store)))),
        }
    }

    pub(crate) fn clone_of(mut clone: gateway::CloneStore) -> Store {
        // Python reads the replica and awaits idleness; nobody reads the event stream, so it
        // is closed instead of growing.
        clone.ignore_events();
        let master = clone.master();
        Store {
            name: clone.name().to_owned(),
            handle: Mutex::new(Some(std::sync::Arc::new(Handle::Clone { clone, master }))),
        }
    }

    fn handle(&self) -> PyResult<std::sync::Arc<Handle>> {
        self.handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| err(format!("store {} was reset", self.name)))
    }

    /// Runs a write on the master and waits for its answer.
    fn write(&self, py: Python<'_>, op: StoreOp) -> PyResult<Response> {
        let h = self.handle()?;
        py.detach(|| runtime().block_on(h.master().op(op)))
            .map_err(store_err)
    }

    /// A write of `(key, value, expiry)`: `make` builds the operation from the converted
    /// arguments.
    fn write_kv(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
        make: fn(Data, Data, Option<broker_wasm::Timespan>) -> StoreOp,
    ) -> PyResult<Response> {
        let op = make(data(key)?, data(value)?, self::expiry(expiry)?);
        self.write(py, op)
    }

    /// The value of `key`: from the replica of a clone, from the master otherwise; `None` if
    /// absent (or, as with Broker, if the read failed).
    fn lookup(&self, py: Python<'_>, key: Data) -> PyResult<Option<Data>> {
        let h = self.handle()?;
        Ok(match &*h {
            Handle::Clone { clone, .. } => clone.get(&key).ok().flatten(),
            Handle::Master(m) => py.detach(|| runtime().block_on(m.get(key))).ok(),
        })
    }
}

fn store_err(e: broker_wasm::store::StoreError) -> PyErr {
    crate::broker_error(e.code, e.context)
}

/// An expiry in seconds (a number or a `timedelta`), as Broker's Python API takes it.
fn expiry(e: Option<&Bound<'_, PyAny>>) -> PyResult<Option<broker_wasm::Timespan>> {
    let e = match e {
        None => None,
        Some(x) if x.is_none() => None,
        Some(x) if x.hasattr("total_seconds")? => {
            Some(x.call_method0("total_seconds")?.extract::<f64>()?)
        }
        Some(x) => Some(x.extract::<f64>()?),
    };
    match e {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => {
            Ok(Some(broker_wasm::Timespan((s * 1e9).round() as i64)))
        }
        Some(s) => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "expiry must be a non-negative number of seconds, not {s}"
        ))),
    }
}

fn data(x: &Bound<'_, PyAny>) -> PyResult<Data> {
    convert::to_data(x)
}

#[pymethods]
impl Store {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Whether this handle is a clone.
    fn is_clone(&self) -> PyResult<bool> {
        Ok(matches!(&*self.handle()?, Handle::Clone { .. }))
    }

    fn exists(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.lookup(py, data(key)?)?.is_some())
    }

    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.lookup(py, data(key)?)?
            .map(|d| convert::to_py(py, &d))
            .transpose()
    }

    /// Set membership, table lookup or vector element of the value at `key`; `None` if there
    /// is none.
    fn get_index_from_value(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let (key, index) = (data(key)?, data(index)?);
        let found = match &*self.handle()? {
            Handle::Clone { clone, .. } => clone
                .get(&key)
                .ok()
                .flatten()
                .and_then(|v| broker_wasm::store::index_of(&v, &index).ok()),
            Handle::Master(m) => py
                .detach(|| runtime().block_on(m.get_index_from_value(key, index)))
                .ok(),
        };
        found.map(|d| convert::to_py(py, &d)).transpose()
    }

    /// Every key, as a set.
    fn keys(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let keys = match &*self.handle()? {
            Handle::Clone { clone, .. } => {
                Data::Set(clone.keys().unwrap_or_default().into_iter().collect())
            }
            Handle::Master(m) => py
                .detach(|| runtime().block_on(m.keys()))
                .map_err(store_err)?,
        };
        convert::to_py(py, &keys)
    }

    #[pyo3(signature = (key, value, expiry = None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write_kv(py, key, value, expiry, |key, value, expiry| StoreOp::Put {
            key,
            value,
            expiry,
        })
        .map(drop)
    }

    /// Puts unless `key` exists; whether it did.
    #[pyo3(signature = (key, value, expiry = None))]
    fn put_unique(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let answer = self.write_kv(py, key, value, expiry, |key, value, expiry| {
            StoreOp::PutUnique { key, value, expiry }
        })?;
        match answer {
            Response::Bool(b) => Ok(b),
            other => Err(err(format!("unexpected answer {other:?}"))),
        }
    }

    fn erase(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let op = StoreOp::Erase { key: data(key)? };
        self.write(py, op).map(drop)
    }

    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.write(py, StoreOp::Clear).map(drop)
    }

    #[pyo3(signature = (key, amount, expiry = None))]
    fn increment(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write_kv(py, key, amount, expiry, |key, amount, expiry| {
            StoreOp::Increment {
                key,
                amount,
                expiry,
            }
        })
        .map(drop)
    }

    #[pyo3(signature = (key, amount, expiry = None))]
    fn decrement(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write_kv(py, key, amount, expiry, |key, amount, expiry| {
            StoreOp::Decrement {
                key,
                amount,
                expiry,
            }
        })
        .map(drop)
    }

    #[pyo3(signature = (key, s, expiry = None))]
    fn append(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        s: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write_kv(py, key, s, expiry, |key, value, expiry| StoreOp::Append {
            key,
            value,
            expiry,
        })
        .map(drop)
    }

    #[pyo3(signature = (key, index, value = None, expiry = None))]
    fn insert_into(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let op = StoreOp::InsertInto {
            key: data(key)?,
            index: data(index)?,
            value: value.map(data).transpose()?,
            expiry: self::expiry(expiry)?,
        };
        self.write(py, op).map(drop)
    }

    #[pyo3(signature = (key, index, expiry = None))]
    fn remove_from(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let op = StoreOp::RemoveFrom {
            key: data(key)?,
            index: data(index)?,
            expiry: self::expiry(expiry)?,
        };
        self.write(py, op).map(drop)
    }

    #[pyo3(signature = (key, value, expiry = None))]
    fn push(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write_kv(py, key, value, expiry, |key, value, expiry| StoreOp::Push {
            key,
            value,
            expiry,
        })
        .map(drop)
    }

    #[pyo3(signature = (key, expiry = None))]
    fn pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let op = StoreOp::Pop {
            key: data(key)?,
            expiry: self::expiry(expiry)?,
        };
        self.write(py, op).map(drop)
    }

    /// Waits until the store has no work pending, at most `timeout` seconds (default 15):
    /// a master has applied every write sent before; a clone is in sync and its writes were
    /// applied. False on timeout.
    #[pyo3(signature = (timeout = None))]
    fn await_idle(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let t = timeout.map_or(IDLE_TIMEOUT, |t| Duration::from_secs_f64(t.max(0.0)));
        let h = self.handle()?;
        Ok(py.detach(|| {
            runtime().block_on(async {
                match &*h {
                    Handle::Clone { clone, .. } => clone.await_idle(t).await,
                    Handle::Master(m) => tokio::time::timeout(t, m.await_idle())
                        .await
                        .is_ok_and(|r| r.is_ok()),
                }
            })
        }))
    }

    /// Releases the handle; later calls fail.
    fn reset(&self) {
        self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
