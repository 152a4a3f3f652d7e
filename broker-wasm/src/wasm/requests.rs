//! Request arguments from JS objects, for `ClientCore`: the endpoint requests
//! (`peers`, `peer`, `namespace`, `attachMaster`, ...), store operations and namespace
//! operations.

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;

use super::convert::{conversion_error, from_js};
use crate::protocol::{Backend, NamespaceOp, Request, StoreOp, Wait};
use crate::Timespan;

pub(super) fn get(args: &JsValue, name: &str) -> JsValue {
    Reflect::get(args, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// A required value argument.
fn data_arg(args: &JsValue, op: &str, name: &str) -> Result<crate::Data, JsValue> {
    let v = get(args, name);
    if v.is_undefined() {
        return Err(conversion_error(format!("{op}: `{name}` is required")));
    }
    from_js(&v)
}

/// An optional relative expiry in seconds.
fn expiry_arg(args: &JsValue, op: &str) -> Result<Option<Timespan>, JsValue> {
    let v = get(args, "expiry");
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(s) if s.is_finite() && s >= 0.0 && s * 1e9 < i64::MAX as f64 => {
            Ok(Some(Timespan((s * 1e9).round() as i64)))
        }
        _ => Err(conversion_error(format!(
            "{op}: `expiry` must be a non-negative number of seconds"
        ))),
    }
}

/// A store operation from its JS name and an argument object.
pub(super) fn store_op(op: &str, args: &JsValue) -> Result<StoreOp, JsValue> {
    let key = || data_arg(args, op, "key");
    Ok(match op {
        "put" => StoreOp::Put {
            key: key()?,
            value: data_arg(args, op, "value")?,
            expiry: expiry_arg(args, op)?,
        },
        "putUnique" => StoreOp::PutUnique {
            key: key()?,
            value: data_arg(args, op, "value")?,
            expiry: expiry_arg(args, op)?,
        },
        "erase" => StoreOp::Erase { key: key()? },
        "clear" => StoreOp::Clear,
        "increment" | "decrement" => {
            let amount = match get(args, "amount") {
                a if a.is_undefined() => crate::Data::Count(1),
                a => from_js(&a)?,
            };
            let (key, expiry) = (key()?, expiry_arg(args, op)?);
            if op == "increment" {
                StoreOp::Increment {
                    key,
                    amount,
                    expiry,
                }
            } else {
                StoreOp::Decrement {
                    key,
                    amount,
                    expiry,
                }
            }
        }
        "append" => StoreOp::Append {
            key: key()?,
            value: data_arg(args, op, "value")?,
            expiry: expiry_arg(args, op)?,
        },
        "insertInto" => StoreOp::InsertInto {
            key: key()?,
            index: data_arg(args, op, "index")?,
            value: match get(args, "value") {
                v if v.is_undefined() => None,
                v => Some(from_js(&v)?),
            },
            expiry: expiry_arg(args, op)?,
        },
        "removeFrom" => StoreOp::RemoveFrom {
            key: key()?,
            index: data_arg(args, op, "index")?,
            expiry: expiry_arg(args, op)?,
        },
        "push" => StoreOp::Push {
            key: key()?,
            value: data_arg(args, op, "value")?,
            expiry: expiry_arg(args, op)?,
        },
        "pop" => StoreOp::Pop {
            key: key()?,
            expiry: expiry_arg(args, op)?,
        },
        "get" => StoreOp::Get { key: key()? },
        "exists" => StoreOp::Exists { key: key()? },
        "keys" => StoreOp::Keys,
        "getIndexFromValue" => StoreOp::GetIndexFromValue {
            key: key()?,
            index: data_arg(args, op, "index")?,
        },
        "awaitIdle" => StoreOp::AwaitIdle,
        other => {
            return Err(conversion_error(format!(
                "unknown store operation `{other}`"
            )))
        }
    })
}

/// A request from its kind and an argument object: `peers`, `peerSubscriptions`, `peer`
/// (`{host, port, retryMs}`), `unpeer` (`{host, port}`), `namespace` (`{op, ...}`, see
/// [`namespace_op`]), `stores`, `attachMaster` (`{store, backend, options}`).
pub(super) fn request(kind: &str, args: &JsValue) -> Result<Request, JsValue> {
    let host = || {
        Reflect::get(args, &"host".into())
            .ok()
            .and_then(|h| h.as_string())
    };
    let port = || {
        Reflect::get(args, &"port".into())
            .ok()
            .and_then(|p| p.as_f64())
            .filter(|p| p.fract() == 0.0 && (0.0..=65535.0).contains(p))
            .map(|p| p as u16)
    };
    let bad = |what: &str| conversion_error(format!("{kind}: {what}"));
    Ok(match kind {
        "peers" => Request::Peers,
        "peerSubscriptions" => Request::PeerSubscriptions,
        "peer" => {
            let retry = Reflect::get(args, &"retryMs".into())
                .ok()
                .and_then(|r| r.as_f64())
                .filter(|r| *r > 0.0)
                .map(|ms| Timespan((ms * 1e6) as i64));
            Request::Peer {
                host: host().ok_or_else(|| bad("`host` must be a string"))?,
                port: port().ok_or_else(|| bad("`port` must be 0..65535"))?,
                retry,
            }
        }
        "unpeer" => Request::Unpeer {
            host: host().ok_or_else(|| bad("`host` must be a string"))?,
            port: port().ok_or_else(|| bad("`port` must be 0..65535"))?,
        },
        "namespace" => Request::Namespace(namespace_op(args)?),
        "stores" => Request::Stores,
        "attachMaster" => {
            let store = get(args, "store")
                .as_string()
                .ok_or_else(|| bad("`store` must be a string"))?;
            let backend = match get(args, "backend").as_string().as_deref() {
                None | Some("sqlite") => Backend::Sqlite,
                Some("memory") => Backend::Memory,
                Some(other) => return Err(bad(&format!("unknown backend `{other}`"))),
            };
            let options = match get(args, "options") {
                o if o.is_undefined() || o.is_null() => crate::Data::None,
                o => from_js(&o)?,
            };
            Request::AttachMaster {
                store,
                backend,
                options,
            }
        }
        "zeekUplink" => {
            let strings = |k: &str| -> Result<Vec<String>, JsValue> {
                let v = get(args, k);
                if v.is_undefined() || v.is_null() {
                    return Ok(Vec::new());
                }
                if !js_sys::Array::is_array(&v) {
                    return Err(bad(&format!("`{k}` must be an array of strings")));
                }
                js_sys::Array::from(&v)
                    .iter()
                    .map(|t| {
                        t.as_string()
                            .ok_or_else(|| bad(&format!("`{k}` must be an array of strings")))
                    })
                    .collect()
            };
            let headers = match get(args, "headers") {
                h if h.is_undefined() || h.is_null() => Vec::new(),
                h => js_sys::Object::entries(&js_sys::Object::from(h))
                    .iter()
                    .map(|pair| {
                        let pair = js_sys::Array::from(&pair);
                        match (pair.get(0).as_string(), pair.get(1).as_string()) {
                            (Some(n), Some(v)) => Ok((n, v)),
                            _ => Err(bad("`headers` must map names to strings")),
                        }
                    })
                    .collect::<Result<_, _>>()?,
            };
            let subscribe = match get(args, "subscribe") {
                v if v.is_undefined() => vec!["zeek/".to_owned()],
                _ => strings("subscribe")?,
            };
            Request::ZeekUplink(crate::protocol::UplinkSpec {
                url: get(args, "url")
                    .as_string()
                    .ok_or_else(|| bad("`url` must be a string"))?,
                subscribe,
                publish: strings("publish")?,
                headers,
                app_name: get(args, "appName").as_string(),
            })
        }
        "zeekUnlink" => Request::ZeekUnlink {
            url: get(args, "url")
                .as_string()
                .ok_or_else(|| bad("`url` must be a string"))?,
        },
        "zeekUplinks" => Request::ZeekUplinks,
        other => return Err(conversion_error(format!("unknown request `{other}`"))),
    })
}

/// A namespace operation from `{op, ...}` (DB-01..22): `op` is `create` (`name, level,
/// groups`), `attach`/`detach`/`delete`/`query` (`name`), `put`/`restore` (`ns, key, value`),
/// `read` (`ns, key, index, wait, capacity, partial`), `get` (same without `index`),
/// `remove`/`testKey` (`ns, key`), `move` (`from, key, to`), `directory` (`ns, pattern,
/// limit`), `iterate` (`ns, pattern, after, limit`). `wait` is `"nowait"`, `"forever"` or a
/// number of milliseconds.
fn namespace_op(args: &JsValue) -> Result<NamespaceOp, JsValue> {
    let get = |k: &str| Reflect::get(args, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let op = get("op").as_string().unwrap_or_default();
    let bad = |what: &str| conversion_error(format!("namespace {op}: {what}"));
    let string = |k: &str| {
        get(k)
            .as_string()
            .ok_or_else(|| bad(&format!("`{k}` must be a string")))
    };
    let number = |k: &str, default: u64| -> Result<u64, JsValue> {
        let v = get(k);
        if v.is_undefined() || v.is_null() {
            return Ok(default);
        }
        v.as_f64()
            .filter(|n| n.fract() == 0.0 && *n >= 0.0)
            .map(|n| n as u64)
            .ok_or_else(|| bad(&format!("`{k}` must be a non-negative integer")))
    };
    let capacity = || -> Result<Option<u64>, JsValue> {
        let v = get("capacity");
        if v.is_undefined() || v.is_null() {
            Ok(None)
        } else {
            number("capacity", 0).map(Some)
        }
    };
    let wait = || -> Result<Wait, JsValue> {
        let w = get("wait");
        if let Some(s) = w.as_string() {
            return match s.as_str() {
                "nowait" => Ok(Wait::NoWait),
                "forever" => Ok(Wait::Forever),
                _ => Err(bad(
                    "`wait` must be \"nowait\", \"forever\" or milliseconds",
                )),
            };
        }
        match w.as_f64() {
            Some(ms) if ms.is_infinite() && ms > 0.0 => Ok(Wait::Forever),
            Some(ms) if ms.is_finite() => Ok(Wait::Timeout(Timespan((ms.max(0.0) * 1e6) as i64))),
            _ => Err(bad(
                "`wait` must be \"nowait\", \"forever\" or milliseconds",
            )),
        }
    };
    Ok(match op.as_str() {
        "create" => {
            let groups = get("groups");
            let groups = if groups.is_undefined() || groups.is_null() {
                Vec::new()
            } else {
                Array::from(&groups)
                    .iter()
                    .map(|g| g.as_string().ok_or_else(|| bad("groups must be strings")))
                    .collect::<Result<_, _>>()?
            };
            NamespaceOp::Create {
                name: string("name")?,
                level: u8::try_from(number("level", 0)?).map_err(|_| bad("bad `level`"))?,
                groups,
            }
        }
        "attach" => NamespaceOp::Attach {
            name: string("name")?,
        },
        "detach" => NamespaceOp::Detach {
            name: string("name")?,
        },
        "delete" => NamespaceOp::Delete {
            name: string("name")?,
        },
        "query" => NamespaceOp::Query {
            name: string("name")?,
        },
        "list" => NamespaceOp::List,
        "put" => NamespaceOp::Put {
            ns: string("ns")?,
            key: string("key")?,
            value: from_js(&get("value"))?,
        },
        "restore" => NamespaceOp::Restore {
            ns: string("ns")?,
            key: string("key")?,
            value: from_js(&get("value"))?,
        },
        "read" => NamespaceOp::Read {
            ns: string("ns")?,
            key: string("key")?,
            index: number("index", 0)?,
            wait: wait()?,
            capacity: capacity()?,
            partial: get("partial").is_truthy(),
        },
        "get" => NamespaceOp::Get {
            ns: string("ns")?,
            key: string("key")?,
            wait: wait()?,
            capacity: capacity()?,
            partial: get("partial").is_truthy(),
        },
        "remove" => NamespaceOp::Remove {
            ns: string("ns")?,
            key: string("key")?,
        },
        "testKey" => NamespaceOp::TestKey {
            ns: string("ns")?,
            key: string("key")?,
        },
        "move" => NamespaceOp::Move {
            from: string("from")?,
            key: string("key")?,
            to: string("to")?,
        },
        "directory" => NamespaceOp::Directory {
            ns: string("ns")?,
            pattern: get("pattern").as_string().unwrap_or_default(),
            limit: number("limit", 0)?,
        },
        "iterate" => NamespaceOp::Iterate {
            ns: string("ns")?,
            pattern: get("pattern").as_string().unwrap_or_default(),
            after: get("after").as_string(),
            limit: number("limit", 0)?,
        },
        other => return Err(conversion_error(format!("unknown namespace op `{other}`"))),
    })
}
