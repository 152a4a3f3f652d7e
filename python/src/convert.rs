//! Python values <-> Broker data, as the table of Broker's Python bindings maps them: `None`,
//! `bool`, `broker.Count`, `int` (integer), `float`, `str`, `ipaddress` addresses and networks,
//! `broker.Port`, `datetime.datetime` (timestamp), `datetime.timedelta` (timespan),
//! `broker.Enum`, `set`, `dict` (table) and `tuple` (vector; a `list` converts to a vector too).

use broker_wasm::data::{Address, Port, Protocol, Subnet};
use broker_wasm::{Data, Timespan, Timestamp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};

/// The pure-Python half of the package, which defines the wrapper classes and helpers.
fn broker(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("broker")
}

fn class_of<'py>(py: Python<'py>, module: &str, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import(module)?.getattr(name)
}

/// Python -> Broker data.
pub fn to_data(v: &Bound<'_, PyAny>) -> PyResult<Data> {
    let py = v.py();
    if v.is_none() {
        return Ok(Data::None);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Data::Boolean(b.is_true()));
    }
    if let Ok(d) = v.cast::<crate::PyData>() {
        return Ok(d.get().data.clone());
    }
    let b = broker(py)?;
    if v.is_instance(&b.getattr("Count")?)? {
        let n: u64 = v.getattr("value")?.extract()?;
        return Ok(Data::Count(n));
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
    if v.is_instance(&b.getattr("Port")?)? {
        let number: u16 = v.getattr("number")?.extract()?;
        let proto: u8 = v.getattr("protocol")?.extract()?;
        let protocol = Protocol::from_code(proto)
            .ok_or_else(|| PyValueError::new_err(format!("unknown port protocol {proto}")))?;
        return Ok(Data::Port(Port::new(number, protocol)));
    }
    if v.is_instance(&b.getattr("Enum")?)? {
        let name: String = v.getattr("name")?.extract()?;
        return Ok(Data::Enum(name));
    }
    let ipaddress = py.import("ipaddress")?;
    if v.is_instance(&ipaddress.getattr("_BaseAddress")?)? {
        let text: String = v.str()?.extract()?;
        let a: Address = text
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        return Ok(Data::Address(a));
    }
    if v.is_instance(&ipaddress.getattr("_BaseNetwork")?)? {
        let text: String = v.str()?.extract()?;
        let s: Subnet = text
            .parse()
            .map_err(|e| PyValueError::new_err(format!("{e}")))?;
        return Ok(Data::Subnet(s));
    }
    if v.is_instance(&class_of(py, "datetime", "datetime")?)? {
        let ns: i64 = b.getattr("_timestamp_ns")?.call1((v,))?.extract()?;
        return Ok(Data::Timestamp(Timestamp(ns)));
    }
    if v.is_instance(&class_of(py, "datetime", "timedelta")?)? {
        let ns: i64 = b.getattr("_timespan_ns")?.call1((v,))?.extract()?;
        return Ok(Data::Timespan(Timespan(ns)));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| to_data(&x))
            .collect::<PyResult<_>>()
            .map(Data::Vector);
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l
            .iter()
            .map(|x| to_data(&x))
            .collect::<PyResult<_>>()
            .map(Data::Vector);
    }
    if let Ok(s) = v.cast::<PySet>() {
        return s
            .iter()
            .map(|x| to_data(&x))
            .collect::<PyResult<_>>()
            .map(Data::Set);
    }
    if let Ok(s) = v.cast::<PyFrozenSet>() {
        return s
            .iter()
            .map(|x| to_data(&x))
            .collect::<PyResult<_>>()
            .map(Data::Set);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        return d
            .iter()
            .map(|(k, x)| Ok((to_data(&k)?, to_data(&x)?)))
            .collect::<PyResult<_>>()
            .map(Data::Table);
    }
    if v.is_instance(&class_of(py, "collections.abc", "Mapping")?)? {
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
    let b = broker(py)?;
    Ok(match d {
        Data::None => py.None(),
        Data::Boolean(x) => PyBool::new(py, *x).to_owned().into_any().unbind(),
        Data::Count(n) => b.getattr("Count")?.call1((*n,))?.unbind(),
        Data::Integer(i) => i.into_pyobject(py)?.into_any().unbind(),
        Data::Real(r) => r.into_pyobject(py)?.into_any().unbind(),
        Data::String(s) => match std::str::from_utf8(s) {
            Ok(s) => PyString::new(py, s).into_any().unbind(),
            Err(_) => PyBytes::new(py, s).into_any().unbind(),
        },
        Data::Address(a) => py
            .import("ipaddress")?
            .getattr("ip_address")?
            .call1((a.to_string(),))?
            .unbind(),
        Data::Subnet(s) => py
            .import("ipaddress")?
            .getattr("ip_network")?
            .call1((s.to_string(),))?
            .unbind(),
        Data::Port(p) => b
            .getattr("Port")?
            .call1((p.number, p.protocol as u8))?
            .unbind(),
        Data::Timestamp(t) => b.getattr("_timestamp_from_ns")?.call1((t.0,))?.unbind(),
        Data::Timespan(t) => b.getattr("_timespan_from_ns")?.call1((t.0,))?.unbind(),
        Data::Enum(e) => b.getattr("Enum")?.call1((e.as_str(),))?.unbind(),
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
