//! The native half of `dbr_module` (PyDBR): one gateway connection with the Data Broker
//! context of `broker_client::namespace::dbr::Dbr` (handles, tag table, timeout). The
//! pure-Python half encodes values (UTF-8 for `str`, pickle otherwise), keeps the
//! connection per process and reconnects; here every call returns PyDBR's integer codes
//! (never raises for a Data Broker failure), releases the GIL while it waits, and has a
//! deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use broker_client::broker_wasm::dbr::DbrCode;
use broker_client::broker_wasm::Data;
use broker_client::namespace::dbr::{self, Dbr, Handle};
use broker_client::Client;
use pyo3::exceptions::PyConnectionError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::runtime;

/// Extra time a blocking call gets beyond its Data Broker timeout before the client gives
/// up on the gateway (it answers TIMEOUT itself when the timeout expires).
const GRACE: Duration = Duration::from_secs(10);
/// Deadline of a call that never waits for a value (create, put, directory, ...).
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `f` on the shared runtime without the GIL, at most `deadline` (`None`: no limit);
/// `late` is the answer when the deadline passes.
fn block<T: Send>(
    py: Python<'_>,
    deadline: Option<Duration>,
    late: T,
    f: impl Future<Output = T> + Send,
) -> T {
    py.detach(|| {
        runtime().block_on(async {
            match deadline {
                Some(d) => tokio::time::timeout(d, f).await.unwrap_or(late),
                None => f.await,
            }
        })
    })
}

fn timeout_code() -> i32 {
    DbrCode::Timeout.code()
}

/// A value as PyDBR hands it over: the bytes of a binary value (the Python half decodes
/// them), or the Python value of a typed one another client stored.
fn value_to_py(py: Python<'_>, d: &Data) -> PyResult<Py<PyAny>> {
    match d {
        Data::String(b) => Ok(PyBytes::new(py, b).into_any().unbind()),
        other => crate::convert::to_py(py, other),
    }
}

/// A namespace handle (`DBR_Handle_t`) of one connection.
#[pyclass(module = "broker._broker", frozen)]
struct DbrHandle {
    h: Handle,
}

#[pymethods]
impl DbrHandle {
    #[getter]
    fn name(&self) -> &str {
        self.h.name()
    }

    /// False after `detach` or `delete`.
    #[getter]
    fn valid(&self) -> bool {
        self.h.is_valid()
    }
}

/// One connection to a gateway with its Data Broker context.
#[pyclass(module = "broker._broker", frozen)]
struct DbrContext {
    dbr: Arc<Dbr>,
    client: Client,
}

impl DbrContext {
    /// The deadline of a read or get that may wait for the context's timeout.
    fn wait_deadline(&self, flags: u64) -> Option<Duration> {
        if flags & dbr::DBR_FLAGS_NOWAIT != 0 {
            return Some(CALL_DEADLINE);
        }
        self.dbr.timeout.map(|t| t + GRACE)
    }
}

#[pymethods]
impl DbrContext {
    /// Connects to the gateway at `url` (`ws://` or `wss://`) within `connect_timeout`
    /// seconds; `timeout` is the blocking read/get timeout in seconds (`DBR_TIMEOUT`, 0 =
    /// wait forever). Raises `ConnectionError` when the gateway cannot be reached.
    #[new]
    #[pyo3(signature = (url, timeout = 5.0, connect_timeout = 10.0))]
    fn new(py: Python<'_>, url: &str, timeout: f64, connect_timeout: f64) -> PyResult<Self> {
        let url = url.to_owned();
        let limit = Duration::from_secs_f64(connect_timeout.max(0.0));
        let connected = py.detach(|| {
            runtime().block_on(async {
                tokio::time::timeout(limit, Client::connect(&url))
                    .await
                    .map_err(|_| format!("no connection to {url} within {limit:?}"))?
                    .map_err(|e| e.to_string())
            })
        });
        let client = connected.map_err(PyConnectionError::new_err)?;
        let mut dbr = Dbr::new(client.clone());
        dbr.timeout = (timeout > 0.0).then(|| Duration::from_secs_f64(timeout));
        Ok(DbrContext {
            dbr: Arc::new(dbr),
            client,
        })
    }

    /// True once the connection ended (the next call should reconnect).
    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Closes the connection.
    fn close(&self, py: Python<'_>) {
        let client = self.client.clone();
        block(py, Some(CALL_DEADLINE), (), async move {
            client.shutdown().await
        });
    }

    /// `dbrCreate`: a handle, or `None` (the original's NULL).
    fn create(
        &self,
        py: Python<'_>,
        name: &str,
        level: u8,
        groups: Vec<String>,
    ) -> Option<DbrHandle> {
        let d = self.dbr.clone();
        block(py, Some(CALL_DEADLINE), None, async move {
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            d.create(name, level, &groups).await
        })
        .map(|h| DbrHandle { h })
    }

    /// `dbrAttach`: a handle, or `None`.
    fn attach(&self, py: Python<'_>, name: &str) -> Option<DbrHandle> {
        let d = self.dbr.clone();
        block(py, Some(CALL_DEADLINE), None, async move {
            d.attach(name).await
        })
        .map(|h| DbrHandle { h })
    }

    /// `dbrDelete` through one attachment: marks the namespace and detaches it; NSBUSY
    /// while others are attached (the deletion then happens at their detach).
    fn delete(&self, py: Python<'_>, handle: &DbrHandle) -> i32 {
        let h = handle.h.clone();
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            match h.delete().await {
                Ok(()) => 0,
                Err(e) => e.code.code(),
            }
        })
    }

    /// `dbrDetach`.
    fn detach(&self, py: Python<'_>, handle: &DbrHandle) -> i32 {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            d.detach(&h).await
        })
    }

    /// `dbrQuery`: the code and, on success, `(refcount, tuple names, values, marked)`.
    fn query(&self, py: Python<'_>, handle: &DbrHandle) -> (i32, Option<(u64, u64, u64, bool)>) {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        let (code, info) = block(
            py,
            Some(CALL_DEADLINE),
            (timeout_code(), None),
            async move { d.query(&h).await },
        );
        (
            code,
            info.map(|i| {
                (
                    i.refcount,
                    i.tuple_names,
                    i.total_values,
                    i.marked_for_delete,
                )
            }),
        )
    }

    /// `dbrPut` of an encoded value.
    fn put(&self, py: Python<'_>, handle: &DbrHandle, value: Vec<u8>, name: &str) -> i32 {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            d.put(&h, Data::String(value), name, "").await
        })
    }

    /// `dbrRead` (`get` false) or `dbrGet`: `(value, code, size)`. `capacity` is the
    /// caller's buffer (`None`: any size); `size` the value's size in bytes, also on
    /// UBUFFER.
    #[pyo3(signature = (handle, name, flags, capacity = None, get = false))]
    fn fetch(
        &self,
        py: Python<'_>,
        handle: &DbrHandle,
        name: &str,
        flags: u64,
        capacity: Option<u64>,
        get: bool,
    ) -> PyResult<(Option<Py<PyAny>>, i32, Option<u64>)> {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        let deadline = self.wait_deadline(flags);
        let (value, code, size) = block(py, deadline, (None, timeout_code(), None), async move {
            let mut size = capacity;
            let (value, code) = if get {
                d.get(&h, name, "", "", flags, size.as_mut()).await
            } else {
                d.read(&h, name, "", "", flags, size.as_mut()).await
            };
            (value, code, size)
        });
        let value = value.map(|v| value_to_py(py, &v)).transpose()?;
        Ok((value, code, size))
    }

    /// `dbrPutA`: a tag, or -1 (`DB_TAG_ERROR`).
    fn put_a(&self, handle: &DbrHandle, value: Vec<u8>, name: &str) -> i64 {
        let _rt = runtime().enter();
        self.dbr.put_a(&handle.h, Data::String(value), name, "")
    }

    /// `dbrReadA` (`get` false) or `dbrGetA`: a tag, or -1.
    #[pyo3(signature = (handle, name, flags, get = false))]
    fn fetch_a(&self, handle: &DbrHandle, name: &str, flags: u64, get: bool) -> i64 {
        let _rt = runtime().enter();
        if get {
            self.dbr.get_a(&handle.h, name, "", "", flags)
        } else {
            self.dbr.read_a(&handle.h, name, "", "", flags)
        }
    }

    /// `dbrTest`: `(code, value of a completed readA/getA)`.
    fn test(&self, py: Python<'_>, tag: i64) -> PyResult<(i32, Option<Py<PyAny>>)> {
        let (code, value) = self.dbr.test_value(tag);
        Ok((code, value.map(|v| value_to_py(py, &v)).transpose()?))
    }

    /// `dbrCancel`.
    fn cancel(&self, py: Python<'_>, tag: i64) -> i32 {
        let d = self.dbr.clone();
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            d.cancel_wait(tag).await
        })
    }

    /// `dbrTestKey`.
    fn test_key(&self, py: Python<'_>, handle: &DbrHandle, name: &str) -> i32 {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            d.test_key(&h, name).await
        })
    }

    /// `dbrDirectory`: `(names, size, code)`.
    fn directory(
        &self,
        py: Python<'_>,
        handle: &DbrHandle,
        template: &str,
        count: u64,
        size: usize,
    ) -> (Vec<String>, usize, i32) {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        let late = (vec![String::new()], 0, timeout_code());
        block(py, Some(CALL_DEADLINE), late, async move {
            d.directory(&h, template, "", count, size).await
        })
    }

    /// `dbrIterator`: `(name, next position)`; `(None, None)` at the end. `code` tells an
    /// error from the end.
    fn iterator(
        &self,
        py: Python<'_>,
        handle: &DbrHandle,
        after: Option<String>,
        template: &str,
    ) -> (Option<String>, Option<String>, i32) {
        let h = handle.h.clone();
        let late = (None, None, timeout_code());
        block(py, Some(CALL_DEADLINE), late, async move {
            match h.iterate_page(template, after, 1).await {
                Ok((names, _)) => match names.into_iter().next() {
                    Some(n) => (Some(n.clone()), Some(n), 0),
                    None => (None, None, 0),
                },
                Err(e) => (None, None, e.code.code()),
            }
        })
    }

    /// `dbrMove`.
    #[pyo3(name = "move")]
    fn move_(&self, py: Python<'_>, src: &DbrHandle, name: &str, dst: &DbrHandle) -> i32 {
        let (d, s, t) = (self.dbr.clone(), src.h.clone(), dst.h.clone());
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            d.r#move(&s, "", name, "", &t, "").await
        })
    }

    /// `dbrRemove`.
    fn remove(&self, py: Python<'_>, handle: &DbrHandle, name: &str) -> i32 {
        let (d, h) = (self.dbr.clone(), handle.h.clone());
        block(py, Some(CALL_DEADLINE), timeout_code(), async move {
            d.remove(&h, "", name, "").await
        })
    }
}

/// `(code, name, message)` of every Data Broker error code, `DBR_SUCCESS` to
/// `DBR_ERR_MAXERROR` (whose message is `getErrorMessage`'s "Unknown Error").
#[pyfunction]
fn dbr_error_codes() -> Vec<(i32, &'static str, &'static str)> {
    (0..=DbrCode::MaxError.code())
        .filter_map(DbrCode::from_code)
        .map(|c| (c.code(), c.name(), dbr::get_error_message(c.code())))
        .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DbrContext>()?;
    m.add_class::<DbrHandle>()?;
    m.add_function(wrap_pyfunction!(dbr_error_codes, m)?)?;
    Ok(())
}
