//! Python values <-> Broker data, as the table of Broker's Python bindings maps them: `None`,
//! `bool`, `broker.Count`, `int` (integer), `float`, `str`, `ipaddress` addresses and networks,
//! `broker.Port`, `datetime.datetime` (timestamp), `datetime.timedelta` (timespan),
//! `broker.Enum`, `set`, `dict` (table) and `tuple` (vector; a `list` converts to a vector too).

use broker_wasm::data::{Address, Port, Protocol, Subnet};
use broker_wasm::{Data, Timespan, Timestamp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};

/// The Python classes and helpers conversion needs, looked up once per process.
struct Names {
    count: Py<PyAny>,
    port: Py<PyAny>,
    enum_: Py<PyAny>,
    timestamp_ns: Py<PyAny>,
    timestamp_from_ns: Py<PyAny>,
    timespan_ns: Py<PyAny>,
    timespan_from_ns: Py<PyAny>,
    ip_address: Py<PyAny>,
    ip_network: Py<PyAny>,
    base_address: Py<PyAny>,
    base_network: Py<PyAny>,
    datetime: Py<PyAny>,
    timedelta: Py<PyAny>,
    mapping: Py<PyAny>,
}

fn names(py: Python<'_>) -> PyResult<&Names> {
    static NAMES: PyOnceLock<Names> = PyOnceLock::new();
    NAMES.get_or_try_init(py, || {
        // The pure-Python half of the package defines the wrapper classes and helpers.
        let b = py.import("broker")?;
        let ip = py.import("ipaddress")?;
        let dt = py.import("datetime")?;
        let get = |m: &Bound<'_, PyModule>, n: &str| m.getattr(n).map(Bound::unbind);
        Ok(Names {
            count: get(&b, "Count")?,
            port: get(&b, "Port")?,
            enum_: get(&b, "Enum")?,
            timestamp_ns: get(&b, "_timestamp_ns")?,
            timestamp_from_ns: get(&b, "_timestamp_from_ns")?,
            timespan_ns: get(&b, "_timespan_ns")?,
            timespan_from_ns: get(&b, "_timespan_from_ns")?,
            ip_address: get(&ip, "ip_address")?,
            ip_network: get(&ip, "ip_network")?,
            base_address: get(&ip, "_BaseAddress")?,
            base_network: get(&ip, "_BaseNetwork")?,
            datetime: get(&dt, "datetime")?,
            timedelta: get(&dt, "timedelta")?,
            mapping: get(&py.import("collections.abc")?, "Mapping")?,
        })
    })
}

fn collect<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>) -> PyResult<Vec<Data>> {
    items.map(|x| to_data(&x)).collect()
}

/// Python -> Broker data. The common types are tried first, by their concrete type.
pub fn to_data(v: &Bound<'_, PyAny>) -> PyResult<Data> {
    let py = v.py();
    if v.is_none() {
        return Ok(Data::None);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Data::Boolean(b.is_true()));
    }
    if v.cast::<PyInt>().is_ok() {
        let n: i64 = v.extract().map_err(|_| {
            PyValueError::new_err("an int out of the 64-bit range; use broker.Count for counts")
        })?;
        return Ok(Data::Integer(n));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Data::Real(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Data::String(s.to_str()?.as_bytes().to_vec()));
    }
    if let Ok(s) = v.cast::<PyBytes>() {
        return Ok(Data::String(s.as_bytes().to_vec()));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return collect(t.iter()).map(Data::Vector);
    }
    if let Ok(l) = v.cast::<PyList>() {
        return collect(l.iter()).map(Data::Vector);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        return d
            .iter()
            .map(|(k, x)| Ok((to_data(&k)?, to_data(&x)?)))
            .collect::<PyResult<_>>()
            .map(Data::Table);
    }
    if let Ok(s) = v.cast::<PySet>() {
        return Ok(Data::Set(collect(s.iter())?.into_iter().collect()));
    }
    if let Ok(s) = v.cast::<PyFrozenSet>() {
        return Ok(Data::Set(collect(s.iter())?.into_iter().collect()));
    }
    if let Ok(d) = v.cast::<crate::PyData>() {
        return Ok(d.get().data.clone());
    }
    let n = names(py)?;
    if v.is_instance(n.count.bind(py))? {
        let c: u64 = v.getattr("value")?.extract()?;
        return Ok(Data::Count(c));
    }
    if v.is_instance(n.port.bind(py))? {
        let number: u16 = v.getattr("number")?.extract()?;
        let proto: u8 = v.getattr("protocol")?.extract()?;
        let protocol = Protocol::from_code(proto)
            .ok_or_else(|| PyValueError::new_err(format!("unknown port protocol {proto}")))?;
        return Ok(Data::Port(Port::new(number, protocol)));
    }
    if v.is_instance(n.enum_.bind(py))? {
        let name: String = v.getattr("name")?.extract()?;
        return Ok(Data::Enum(name));
    }
    if v.is_instance(n.base_address.bind(py))? {
        let text: String = v.str()?.extract()?;
        let a: Address = text
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        return Ok(Data::Address(a));
    }
    if v.is_instance(n.base_network.bind(py))? {
        let text: String = v.str()?.extract()?;
        let s: Subnet = text
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        return Ok(Data::Subnet(s));
    }
    if v.is_instance(n.datetime.bind(py))? {
        let ns: i64 = n.timestamp_ns.bind(py).call1((v,))?.extract()?;
        return Ok(Data::Timestamp(Timestamp(ns)));
    }
    if v.is_instance(n.timedelta.bind(py))? {
        let ns: i64 = n.timespan_ns.bind(py).call1((v,))?.extract()?;
        return Ok(Data::Timespan(Timespan(ns)));
    }
    if v.is_instance(n.mapping.bind(py))? {
        let items = v.call_method0("items")?;
        let mut t = std::collections::BTreeMap::new();
        for pair in items.try_iter()? {
            let (k, x): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
            t.insert(to_data(&k)?, to_data(&x)?);
        }
        return Ok(Data::Table(t));
    }
    Err(PyTypeError::new_err(format!(
        "cannot convert {} to Broker data",
        v.get_type().name()?
    )))
}

/// Broker data -> Python.
pub fn to_py(py: Python<'_>, d: &Data) -> PyResult<Py<PyAny>> {
    Ok(match d {
        Data::None => py.None(),
        Data::Boolean(x) => PyBool::new(py, *x).to_owned().into_any().unbind(),
        Data::Count(c) => names(py)?.count.bind(py).call1((*c,))?.unbind(),
        Data::Integer(i) => i.into_pyobject(py)?.into_any().unbind(),
        Data::Real(r) => r.into_pyobject(py)?.into_any().unbind(),
        Data::String(s) => match std::str::from_utf8(s) {
            Ok(s) => PyString::new(py, s).into_any().unbind(),
            Err(_) => PyBytes::new(py, s).into_any().unbind(),
        },
        Data::Address(a) => names(py)?
            .ip_address
            .bind(py)
            .call1((a.to_string(),))?
            .unbind(),
        Data::Subnet(s) => names(py)?
            .ip_network
            .bind(py)
            .call1((s.to_string(),))?
            .unbind(),
        Data::Port(p) => names(py)?
            .port
            .bind(py)
            .call1((p.number, p.protocol as u8))?
            .unbind(),
        Data::Timestamp(t) => names(py)?
            .timestamp_from_ns
            .bind(py)
            .call1((t.0,))?
            .unbind(),
        Data::Timespan(t) => names(py)?.timespan_from_ns.bind(py).call1((t.0,))?.unbind(),
        Data::Enum(e) => names(py)?.enum_.bind(py).call1((e.as_str(),))?.unbind(),
        Data::Set(s) => {
            let out = PySet::empty(py)?;
            for x in s {
                out.add(to_py(py, x)?)?;
            }
            out.into_any().unbind()
        }
        Data::Table(t) => {
            let out = PyDict::new(py);
            for (k, v) in t {
                out.set_item(to_py(py, k)?, to_py(py, v)?)?;
            }
            out.into_any().unbind()
        }
        Data::Vector(v) => {
            let items = v
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any().unbind()
        }
    })
}
