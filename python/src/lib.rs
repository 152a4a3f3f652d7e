//! `broker._broker`: the native half of the Python package. The embeddable endpoint
//! (`gateway::Endpoint`) runs on a tokio runtime shared by the process; every blocking call
//! releases the GIL. Values convert between Python and Broker data here, with the classes the
//! pure-Python half (`broker/__init__.py`) defines for types Python lacks (`Count`, `Port`,
//! `Enum`).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod convert;
mod dbr;
mod store;

/// The process's runtime for every endpoint.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("broker")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn err(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

pyo3::create_exception!(
    _broker,
    BrokerError,
    PyRuntimeError,
    "An operation failed with a Broker error code: `code` (a `broker.EC` number), `context`."
);

/// A `BrokerError` carrying `code` and `context`.
fn broker_error(code: broker_wasm::ErrorCode, context: String) -> PyErr {
    let e = BrokerError::new_err(format!("{}: {context}", code.name()));
    Python::attach(|py| {
        let v = e.value(py);
        let _ = v.setattr("code", code.code());
        let _ = v.setattr("context", context);
    });
    e
}

/// An endpoint (Broker's `broker.Endpoint`): listens, peers, publishes, subscribes.
#[pyclass(module = "broker._broker")]
struct Endpoint {
    ep: gateway::Endpoint,
    /// The in-process client connection that holds this endpoint's clones (made with the
    /// first clone).
    local: Mutex<Option<gateway::Client>>,
}

#[pymethods]
impl Endpoint {
    #[new]
    fn new() -> Self {
        let _rt = runtime().enter();
        Endpoint {
            ep: gateway::Endpoint::new(gateway::Config::embedded()),
            local: Mutex::new(None),
        }
    }

    /// Listens on `host:port` (`""` = 127.0.0.1, port 0 = any free one); the bound port.
    #[pyo3(signature = (host = "", port = 0))]
    fn listen(&self, py: Python<'_>, host: &str, port: u16) -> PyResult<u16> {
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        let addr: std::net::SocketAddr = format!("{host}:{port}")
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{host}:{port}: {e}")))?;
        let ep = self.ep.clone();
        py.detach(|| runtime().block_on(ep.listen(addr)))
            .map(|a| a.port())
            .map_err(err)
    }

    /// Peers with `host:port` and waits for the outcome; `retry` seconds between attempts
    /// (0: one attempt). True once peered.
    #[pyo3(signature = (host, port, retry = 10.0))]
    fn peer(&self, py: Python<'_>, host: &str, port: u16, retry: f64) -> bool {
        let host = if host.is_empty() { "127.0.0.1" } else { host }.to_owned();
        let retry = (retry > 0.0).then(|| Duration::from_secs_f64(retry));
        let ep = self.ep.clone();
        py.detach(|| runtime().block_on(ep.peer(&host, port, retry)).is_ok())
    }

    /// Peers in the background.
    #[pyo3(signature = (host, port, retry = 10.0))]
    fn peer_nosync(&self, host: &str, port: u16, retry: f64) {
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        let _rt = runtime().enter();
        self.ep.peer_nosync(
            host,
            port,
            (retry > 0.0).then(|| Duration::from_secs_f64(retry)),
        );
    }

    /// Publishes `data` on `topic` (to peers and clients, not to this endpoint's own
    /// subscribers).
    fn publish(&self, topic: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = convert::to_data(data)?;
        let _rt = runtime().enter();
        self.ep.publish(topic, data).map_err(err)
    }

    fn make_subscriber(&self, topics: Vec<String>) -> Subscriber {
        let _rt = runtime().enter();
        Subscriber {
            sub: Mutex::new(self.ep.make_subscriber(topics)),
        }
    }

    fn node_id(&self) -> String {
        self.ep.node_id().to_string()
    }

    /// This endpoint's metrics in Prometheus' text format (what `/metrics` serves), e.g.
    /// `broker_dropped_total`: messages a full subscriber queue did not take.
    fn metrics_text(&self) -> String {
        self.ep.metrics_text()
    }

    /// Errors always, statuses when `statuses` (Broker's `make_status_subscriber`).
    fn make_status_subscriber(&self, statuses: bool) -> StatusSubscriber {
        let _rt = runtime().enter();
        StatusSubscriber {
            sub: Mutex::new(self.ep.make_status_subscriber(statuses)),
        }
    }

    /// Ends the peering with `host:port`; false if there is none.
    fn unpeer(&self, py: Python<'_>, host: &str, port: u16) -> bool {
        let host = if host.is_empty() { "127.0.0.1" } else { host }.to_owned();
        let ep = self.ep.clone();
        py.detach(|| runtime().block_on(ep.unpeer(&host, port)).is_ok())
    }

    /// Direct peers: `(node id or None, address or None, port or None, status, outbound)`.
    #[allow(clippy::type_complexity)]
    fn peers(&self) -> Vec<(Option<String>, Option<String>, Option<u16>, String, bool)> {
        self.ep
            .peers()
            .into_iter()
            .map(|p| {
                let net = p.endpoint.network;
                (
                    p.endpoint.node.map(|n| n.to_string()),
                    net.as_ref().map(|n| n.address.clone()),
                    net.map(|n| n.port),
                    format!("{:?}", p.status).to_lowercase(),
                    p.outbound,
                )
            })
            .collect()
    }

    /// The union of the direct peers' subscriptions.
    fn peer_subscriptions(&self) -> Vec<String> {
        self.ep.peer_subscriptions()
    }

    /// Waits until endpoint `node` is reachable, at most `timeout` seconds (`None`: 10 s).
    #[pyo3(signature = (node, timeout = None))]
    fn await_peer(&self, py: Python<'_>, node: &str, timeout: Option<f64>) -> PyResult<bool> {
        let node: broker_wasm::NodeId = node
            .parse()
            .map_err(|_| PyValueError::new_err(format!("{node:?} is not an endpoint id")))?;
        let t = Duration::from_secs_f64(timeout.unwrap_or(10.0).max(0.0));
        let ep = self.ep.clone();
        Ok(py.detach(|| runtime().block_on(ep.await_peer(node, t))))
    }

    /// Attaches (creates or opens) the master store `name`: `backend` 0 = memory,
    /// 1 = SQLite; `options` a dict of Broker's backend options (e.g. `{"path": ...}`).
    #[pyo3(signature = (name, backend = 0, options = None))]
    fn attach_master(
        &self,
        py: Python<'_>,
        name: &str,
        backend: u8,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<store::Store> {
        let backend = match backend {
            0 => broker_wasm::protocol::Backend::Memory,
            1 => broker_wasm::protocol::Backend::Sqlite,
            b => {
                return Err(PyValueError::new_err(format!(
                    "backend {b}: use broker.Backend.Memory or broker.Backend.SQLite"
                )))
            }
        };
        let options = match options {
            Some(o) if !o.is_none() => convert::to_data(o)?,
            _ => broker_wasm::Data::None,
        };
        let ep = self.ep.clone();
        let name = name.to_owned();
        py.detach(|| runtime().block_on(ep.attach_master(&name, backend, options)))
            .map(store::Store::master)
            .map_err(|e| broker_error(e.code, e.context))
    }

    /// A clone of the store `name`, mastered here or on a peer (also one peered later: the
    /// clone keeps looking for its master every `resync` seconds).
    #[pyo3(signature = (name, resync = 0.25))]
    fn attach_clone(&self, py: Python<'_>, name: &str, resync: f64) -> PyResult<store::Store> {
        let client = self.local_client(py)?;
        let opts = broker_wasm::client::CloneOptions {
            resync_interval_ms: (resync.max(0.01)) * 1000.0,
            ..Default::default()
        };
        let _rt = runtime().enter();
        Ok(store::Store::clone_of(client.attach_clone(name, opts)))
    }

    fn shutdown(&self, py: Python<'_>) {
        let ep = self.ep.clone();
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.detach(|| {
            runtime().block_on(async {
                if let Some(c) = local {
                    c.shutdown().await;
                }
                ep.shutdown().await
            })
        });
    }
}

impl Endpoint {
    /// The in-process client connection for clones, opened on first use.
    fn local_client(&self, py: Python<'_>) -> PyResult<gateway::Client> {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = local.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let ep = self.ep.clone();
        let c = py
            .detach(|| runtime().block_on(ep.connect_local(Default::default())))
            .map_err(err)?;
        *local = Some(c.clone());
        Ok(c)
    }
}

/// Messages as a list of `(topic, value)` tuples; a run of one topic shares one `str`.
fn messages<'py>(
    py: Python<'py>,
    msgs: Vec<(String, broker_wasm::Data)>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let list = pyo3::types::PyList::empty(py);
    let mut last: Option<(String, Bound<'py, pyo3::types::PyString>)> = None;
    for (topic, data) in msgs {
        let t = match &last {
            Some((s, t)) if *s == topic => t.clone(),
            _ => {
                let t = pyo3::types::PyString::new(py, &topic);
                last = Some((topic, t.clone()));
                t
            }
        };
        list.append((t, convert::to_py(py, &data)?))?;
    }
    Ok(list)
}

/// A subscriber: `(topic, value)` pairs.
#[pyclass(module = "broker._broker")]
struct Subscriber {
    sub: Mutex<gateway::Subscriber>,
}

impl Subscriber {
    fn lock(&self) -> std::sync::MutexGuard<'_, gateway::Subscriber> {
        self.sub.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Subscriber {
    /// The next message, waiting at most `timeout` seconds (`None`: forever); `None` after
    /// the timeout.
    #[pyo3(signature = (timeout = None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<(String, Py<PyAny>)>> {
        let got = py.detach(|| {
            let mut sub = self.lock();
            runtime().block_on(async {
                match timeout {
                    Some(t) => sub.get_timeout(Duration::from_secs_f64(t.max(0.0))).await,
                    None => sub.get().await.map(Some),
                }
            })
        });
        match got {
            Ok(Some((topic, data))) => Ok(Some((topic, convert::to_py(py, &data)?))),
            Ok(None) => Ok(None),
            Err(_) => Err(err("the endpoint was shut down")),
        }
    }

    /// Every message available now, without waiting.
    fn poll<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyList>> {
        let msgs = self.lock().poll();
        messages(py, msgs)
    }

    fn available(&self) -> usize {
        self.lock().available()
    }

    /// `n` messages, waiting at most `timeout` seconds in all (`None`: until there are `n`).
    #[pyo3(signature = (n, timeout = None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, pyo3::types::PyList>> {
        let got = py.detach(|| {
            let mut sub = self.lock();
            runtime().block_on(async {
                match timeout {
                    Some(t) => {
                        sub.get_many_timeout(n, Duration::from_secs_f64(t.max(0.0)))
                            .await
                    }
                    None => sub.get_many(n).await,
                }
            })
        });
        messages(py, got.map_err(|_| err("the endpoint was shut down"))?)
    }

    fn add_topic(&self, topic: String) {
        self.lock().add_topic(topic);
    }

    fn remove_topic(&self, topic: String) {
        self.lock().remove_topic(topic);
    }
}

/// Status and error events, as tuples the Python half turns into `Status` and `Error`:
/// `("status", code, message, node, address, port)` or `("error", code, context)`.
#[pyclass(module = "broker._broker")]
struct StatusSubscriber {
    sub: Mutex<gateway::StatusSubscriber>,
}

type StatusTuple = (
    &'static str,
    u8,
    String,
    Option<String>,
    Option<String>,
    Option<u16>,
);

fn status_tuple(e: gateway::StatusEvent) -> StatusTuple {
    match e {
        gateway::StatusEvent::Status(s) => {
            let (node, net) = match s.endpoint {
                Some(e) => (e.node.map(|n| n.to_string()), e.network),
                None => (None, None),
            };
            (
                "status",
                s.code.code(),
                s.message,
                node,
                net.as_ref().map(|n| n.address.clone()),
                net.map(|n| n.port),
            )
        }
        gateway::StatusEvent::Error(e) => ("error", e.code.code(), e.context, None, None, None),
        // A resume's gap (clients of gateways with `--history`): the prefix in the node slot.
        gateway::StatusEvent::Gap(g) => {
            let missed = g.missed.map_or("unknown".to_string(), |n| n.to_string());
            let text = format!(
                "gap under {} ({:?}): {missed} messages missed",
                g.prefix, g.reason
            );
            ("gap", 0, text, Some(g.prefix), None, None)
        }
    }
}

#[pymethods]
impl StatusSubscriber {
    #[pyo3(signature = (timeout = None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<StatusTuple>> {
        let got = py.detach(|| {
            let mut sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
            runtime().block_on(async {
                match timeout {
                    Some(t) => sub.get_timeout(Duration::from_secs_f64(t.max(0.0))).await,
                    None => sub.get().await.map(Some),
                }
            })
        });
        got.map(|e| e.map(status_tuple))
            .map_err(|_| err("the endpoint was shut down"))
    }

    fn poll(&self) -> Vec<StatusTuple> {
        let mut sub = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        sub.poll().into_iter().map(status_tuple).collect()
    }

    fn available(&self) -> usize {
        self.sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .available()
    }
}

/// A Broker value held natively (Broker's `broker.Data`): `str()` in Broker's notation,
/// `get_type()`, indexing of vectors and tables, and conversion to Python.
#[pyclass(
    module = "broker._broker",
    subclass,
    eq,
    hash,
    frozen,
    name = "Data",
    skip_from_py_object
)]
#[derive(PartialEq, Eq, Hash, Clone)]
struct PyData {
    data: broker_wasm::Data,
}

#[pymethods]
impl PyData {
    #[new]
    #[pyo3(signature = (x = None))]
    fn new(x: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(PyData {
            data: match x {
                Some(x) => convert::to_data(x)?,
                None => broker_wasm::Data::None,
            },
        })
    }

    fn __str__(&self) -> String {
        self.data.to_string()
    }

    fn __repr__(&self) -> String {
        self.data.to_string()
    }

    /// The type's number (`broker.Data.Type`).
    fn type_code(&self) -> u8 {
        self.data.data_type() as u8
    }

    fn __len__(&self) -> usize {
        match &self.data {
            broker_wasm::Data::Vector(v) => v.len(),
            broker_wasm::Data::Set(s) => s.len(),
            broker_wasm::Data::Table(t) => t.len(),
            _ => 0,
        }
    }

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<PyData> {
        use broker_wasm::Data as D;
        let found = match &self.data {
            D::Vector(v) => {
                let i: isize = key.extract()?;
                let i = if i < 0 { v.len() as isize + i } else { i };
                usize::try_from(i).ok().and_then(|i| v.get(i)).cloned()
            }
            D::Table(t) => t.get(&convert::to_data(key)?).cloned(),
            _ => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "only vectors and tables can be indexed",
                ))
            }
        };
        found
            .map(|data| PyData { data })
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.to_string()))
    }

    /// The elements of a vector or set, in order, as `Data`.
    fn elements(&self) -> Vec<PyData> {
        match &self.data {
            broker_wasm::Data::Vector(v) => v.iter().cloned().map(|data| PyData { data }).collect(),
            broker_wasm::Data::Set(s) => s.iter().cloned().map(|data| PyData { data }).collect(),
            _ => Vec::new(),
        }
    }

    /// The entries of a table, in order, as `Data` pairs.
    fn entries(&self) -> Vec<(PyData, PyData)> {
        match &self.data {
            broker_wasm::Data::Table(t) => t
                .iter()
                .map(|(k, v)| (PyData { data: k.clone() }, PyData { data: v.clone() }))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A vector's elements as `Data` (Broker's `as_vector`).
    fn as_vector(&self) -> Vec<PyData> {
        self.elements()
    }

    /// A set's elements as `Data`, printed as Broker prints a set (Broker's `as_set`).
    fn as_set<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("broker")?
            .getattr("_DataSet")?
            .call1((self.elements(),))
    }

    /// A table's entries as a dict of `Data` (Broker's `as_table`).
    fn as_table<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        for (k, v) in self.entries() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The Python value of this datum.
    fn to_python(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::to_py(py, &self.data)
    }
}

/// Broker's error codes: `(number, name)`.
#[pyfunction]
fn error_codes() -> Vec<(u8, &'static str)> {
    broker_wasm::ErrorCode::ALL
        .iter()
        .map(|c| (c.code(), c.name()))
        .collect()
}

#[pymodule]
fn _broker(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Endpoint>()?;
    m.add_class::<Subscriber>()?;
    m.add_class::<StatusSubscriber>()?;
    m.add_class::<PyData>()?;
    m.add_class::<store::Store>()?;
    m.add("BrokerError", m.py().get_type::<BrokerError>())?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    dbr::register(m)?;
    Ok(())
}
