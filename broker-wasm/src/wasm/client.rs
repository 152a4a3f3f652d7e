//! `ClientCore` for JavaScript: the sans-I/O client state machine of [`crate::client`], with
//! values converted to and from JS natively (no JSON round trip per message). The package's
//! `Endpoint` owns the WebSocket and drives this object: frames in, events and frames out,
//! one batch of events per frame.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::convert::{conversion_error, encode_js_into, from_js, to_js, with_key};
use crate::client::{ClientCore, CloneOptions, Event};
use crate::protocol::{
    Backend, Encoding, EndpointInfo, Failure, NamespaceOp, PeerInfo, Request, Response, StoreOp,
    Wait,
};
use crate::store::Change;
use crate::Timespan;

fn obj(pairs: &[(&'static str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        with_key(k, |key| Reflect::set(&o, key, v)).ok();
    }
    o.into()
}

fn endpoint_js(e: &Option<EndpointInfo>) -> Vec<(&'static str, JsValue)> {
    let Some(e) = e else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(n) = e.node {
        out.push(("node", JsValue::from_str(&n.to_string())));
    }
    if let Some(net) = &e.network {
        out.push(("address", JsValue::from_str(&net.address)));
        out.push(("port", JsValue::from_f64(f64::from(net.port))));
    }
    out
}

fn peer_js(p: &PeerInfo) -> JsValue {
    let mut pairs = endpoint_js(&Some(p.endpoint.clone()));
    let status = serde_json::to_value(p.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    pairs.push(("status", JsValue::from_str(&status)));
    pairs.push(("outbound", JsValue::from_bool(p.outbound)));
    obj(&pairs)
}

fn response_js(r: &Response) -> JsValue {
    match r {
        Response::Done => JsValue::UNDEFINED,
        Response::Bool(b) => JsValue::from_bool(*b),
        Response::Value(d) => to_js(d),
        Response::Tuple { value, size } => obj(&[
            ("value", to_js(value)),
            ("size", JsValue::from_f64(*size as f64)),
        ]),
        Response::Names { names, done } => obj(&[
            (
                "names",
                names
                    .iter()
                    .map(|n| JsValue::from_str(n))
                    .collect::<Array>()
                    .into(),
            ),
            ("done", JsValue::from_bool(*done)),
        ]),
        Response::Peers(p) => p.iter().map(peer_js).collect::<Array>().into(),
        Response::Topics(t) => t
            .iter()
            .map(|n| JsValue::from_str(n))
            .collect::<Array>()
            .into(),
        Response::Namespace(info) => serde_wasm_json(info),
    }
}

fn serde_wasm_json<T: serde::Serialize>(v: &T) -> JsValue {
    serde_json::to_string(v)
        .ok()
        .and_then(|s| js_sys::JSON::parse(&s).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

fn event_js(e: Event) -> JsValue {
    match e {
        Event::Connected(w) => obj(&[
            ("type", with_key("connected", JsValue::clone)),
            ("endpoint", JsValue::from_str(&w.endpoint.to_string())),
            ("version", JsValue::from_str(&w.version)),
            ("maxFrame", JsValue::from_f64(w.max_frame as f64)),
        ]),
        Event::Disconnected => obj(&[("type", with_key("disconnected", JsValue::clone))]),
        Event::Message {
            subscribers,
            publish,
        } => obj(&[
            ("type", with_key("message", JsValue::clone)),
            (
                "subscribers",
                subscribers
                    .iter()
                    .map(|s| JsValue::from_f64(f64::from(*s)))
                    .collect::<Array>()
                    .into(),
            ),
            ("topic", JsValue::from_str(&publish.topic)),
            ("value", to_js(&publish.data)),
        ]),
        Event::Status(s) => {
            let mut pairs = vec![
                ("type", with_key("status", JsValue::clone)),
                ("code", JsValue::from_str(s.code.name())),
                ("codeNumber", JsValue::from_f64(f64::from(s.code.code()))),
                ("message", JsValue::from_str(&s.message)),
            ];
            pairs.extend(endpoint_js(&s.endpoint));
            obj(&pairs)
        }
        Event::Error(e) => obj(&[
            ("type", with_key("error", JsValue::clone)),
            ("code", JsValue::from_str(e.code.name())),
            ("codeNumber", JsValue::from_f64(f64::from(e.code.code()))),
            ("context", JsValue::from_str(&e.context)),
        ]),
        Event::Response { id, result } => match result {
            Ok(r) => obj(&[
                ("type", with_key("response", JsValue::clone)),
                ("id", JsValue::from_f64(id as f64)),
                ("ok", true.into()),
                ("value", response_js(&r)),
            ]),
            Err(Failure::Broker(e)) => obj(&[
                ("type", with_key("response", JsValue::clone)),
                ("id", JsValue::from_f64(id as f64)),
                ("ok", false.into()),
                ("code", JsValue::from_str(e.code.name())),
                ("context", JsValue::from_str(&e.context)),
            ]),
            Err(Failure::Namespace { code, context }) => obj(&[
                ("type", with_key("response", JsValue::clone)),
                ("id", JsValue::from_f64(id as f64)),
                ("ok", false.into()),
                ("code", JsValue::from_f64(f64::from(code))),
                ("context", JsValue::from_str(&context)),
            ]),
        },
        Event::Pong { nonce } => obj(&[
            ("type", with_key("pong", JsValue::clone)),
            ("nonce", JsValue::from_f64(nonce as f64)),
        ]),
        Event::StoreChanges {
            store,
            changes,
            reset,
            synced,
        } => obj(&[
            ("type", with_key("store", JsValue::clone)),
            ("store", JsValue::from_str(&store)),
            (
                "changes",
                changes.iter().map(change_js).collect::<Array>().into(),
            ),
            ("reset", reset.into()),
            ("synced", synced.into()),
        ]),
        Event::StoreError {
            store,
            error,
            permanent,
        } => obj(&[
            ("type", with_key("storeError", JsValue::clone)),
            ("store", JsValue::from_str(&store)),
            ("code", JsValue::from_str(error.code.name())),
            ("context", JsValue::from_str(&error.context)),
            ("permanent", permanent.into()),
        ]),
    }
}

/// Seconds since the epoch as a JS number, or undefined.
fn expiry_js(t: Option<crate::Timestamp>) -> JsValue {
    match t {
        Some(t) => to_js(&crate::Data::Timestamp(t)),
        None => JsValue::UNDEFINED,
    }
}

fn change_js(c: &Change) -> JsValue {
    match c {
        Change::Insert { key, value, expiry } => obj(&[
            ("type", with_key("insert", JsValue::clone)),
            ("key", to_js(key)),
            ("value", to_js(value)),
            ("expiry", expiry_js(*expiry)),
        ]),
        Change::Update {
            key,
            old,
            value,
            expiry,
        } => obj(&[
            ("type", with_key("update", JsValue::clone)),
            ("key", to_js(key)),
            ("old", to_js(old)),
            ("value", to_js(value)),
            ("expiry", expiry_js(*expiry)),
        ]),
        Change::Erase { key } => obj(&[
            ("type", with_key("erase", JsValue::clone)),
            ("key", to_js(key)),
        ]),
        Change::Expire { key } => obj(&[
            ("type", with_key("expire", JsValue::clone)),
            ("key", to_js(key)),
        ]),
    }
}

fn get(args: &JsValue, name: &str) -> JsValue {
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
fn store_op(op: &str, args: &JsValue) -> Result<StoreOp, JsValue> {
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

fn store_err(e: crate::protocol::ErrorInfo) -> JsValue {
    super::js_error(e.code, e.context)
}

/// A frame's events as one array. Messages, by far the most common event, are flattened to
/// three entries each, `subscriber, topic, value` (the subscriber a number, or an array of
/// numbers when several match), which saves an object per message; every other event is an
/// object with a `type`. Topics repeat, so the last topic's JS string is reused.
fn events_js(events: Vec<Event>, last_topic: &mut Option<(String, JsValue)>) -> Array {
    let out = Array::new();
    for e in events {
        match e {
            Event::Message {
                subscribers,
                publish,
            } => {
                let subs: JsValue = match subscribers.as_slice() {
                    [one] => JsValue::from_f64(f64::from(*one)),
                    many => many
                        .iter()
                        .map(|s| JsValue::from_f64(f64::from(*s)))
                        .collect::<Array>()
                        .into(),
                };
                let topic = match last_topic {
                    Some((t, js)) if *t == publish.topic => js.clone(),
                    _ => {
                        let js = JsValue::from_str(&publish.topic);
                        *last_topic = Some((publish.topic.clone(), js.clone()));
                        js
                    }
                };
                out.push(&subs);
                out.push(&topic);
                out.push(&to_js(&publish.data));
            }
            other => {
                out.push(&event_js(other));
            }
        }
    }
    out
}

fn topic_err(e: crate::topic::TopicError) -> JsValue {
    super::js_error(crate::ErrorCode::InvalidTopicKey, e.to_string())
}

/// The client state machine, for the package's `Endpoint`.
#[wasm_bindgen(js_name = ClientCore)]
#[derive(Debug)]
pub struct WasmClient {
    core: ClientCore,
    last_topic: Option<(String, JsValue)>,
    /// Reused buffer for encoding published values.
    scratch: Vec<u8>,
}

#[wasm_bindgen(js_class = ClientCore)]
impl WasmClient {
    /// A client speaking the binary (`json = false`) or JSON encoding.
    #[wasm_bindgen(constructor)]
    pub fn new(json: bool, name: String) -> WasmClient {
        let encoding = if json {
            Encoding::Json
        } else {
            Encoding::Binary
        };
        WasmClient {
            core: ClientCore::new(encoding, name),
            last_topic: None,
            scratch: Vec::new(),
        }
    }

    /// The WebSocket subprotocol to offer.
    #[wasm_bindgen(getter)]
    pub fn subprotocol(&self) -> String {
        self.core.encoding().subprotocol().to_owned()
    }

    #[wasm_bindgen(js_name = setToken)]
    pub fn set_token(&mut self, token: Option<String>) {
        self.core.set_token(token);
    }

    #[wasm_bindgen(js_name = setStatuses)]
    pub fn set_statuses(&mut self, statuses: bool) {
        self.core.set_statuses(statuses);
    }

    /// True between the welcome and the end of the connection.
    #[wasm_bindgen(getter, js_name = isOpen)]
    pub fn is_open(&self) -> bool {
        self.core.is_open()
    }

    /// The socket opened: queues the hello and every subscription.
    #[wasm_bindgen(js_name = onOpen)]
    pub fn on_open(&mut self) {
        self.core.on_open();
    }

    /// The socket closed: events for failed requests, then `disconnected`.
    #[wasm_bindgen(js_name = onClose)]
    pub fn on_close(&mut self) -> Array {
        self.core.set_now(js_sys::Date::now());
        events_js(self.core.on_close(), &mut self.last_topic)
    }

    /// Queues a publish of a JS value (see the mapping table); throws on values with no
    /// Broker type or out of range.
    pub fn publish(&mut self, topic: String, value: &JsValue) -> Result<(), JsValue> {
        if self.core.encoding() == Encoding::Binary {
            // Straight from the JS value to bytes: no Data tree to build and free.
            self.scratch.clear();
            encode_js_into(value, &mut self.scratch, 0)?;
            return self
                .core
                .publish_encoded(&topic, &self.scratch)
                .map_err(topic_err);
        }
        let data = from_js(value)?;
        self.core.publish(topic, data).map_err(topic_err)
    }

    /// Queues `[[topic, value], ...]` in order; all or nothing.
    #[wasm_bindgen(js_name = publishBatch)]
    pub fn publish_batch(&mut self, items: &Array) -> Result<(), JsValue> {
        let binary = self.core.encoding() == Encoding::Binary;
        let mut encoded = Vec::with_capacity(items.length() as usize);
        let mut values = Vec::new();
        for item in items.iter() {
            let pair: Array = item
                .dyn_into()
                .map_err(|_| conversion_error("publishBatch takes [topic, value] pairs"))?;
            let topic = pair
                .get(0)
                .as_string()
                .ok_or_else(|| conversion_error("publishBatch: a topic must be a string"))?;
            crate::topic::validate_user_topic(&topic).map_err(topic_err)?;
            if binary {
                let mut bytes = Vec::new();
                encode_js_into(&pair.get(1), &mut bytes, 0)?;
                encoded.push((topic, bytes));
            } else {
                values.push((topic, from_js(&pair.get(1))?));
            }
        }
        // Everything converted: queue it all (all or nothing).
        for (topic, bytes) in encoded {
            self.core
                .publish_encoded(&topic, &bytes)
                .map_err(topic_err)?;
        }
        for (topic, data) in values {
            self.core.publish(topic, data).map_err(topic_err)?;
        }
        Ok(())
    }

    /// A new local subscriber; returns its id.
    #[wasm_bindgen(js_name = addSubscriber)]
    pub fn add_subscriber(&mut self, topics: Vec<String>) -> Result<u32, JsValue> {
        self.core.add_subscriber(&topics).map_err(topic_err)
    }

    #[wasm_bindgen(js_name = addTopics)]
    pub fn add_topics(&mut self, id: u32, topics: Vec<String>) -> Result<(), JsValue> {
        self.core.add_topics(id, &topics).map_err(topic_err)
    }

    #[wasm_bindgen(js_name = removeTopics)]
    pub fn remove_topics(&mut self, id: u32, topics: Vec<String>) {
        self.core.remove_topics(id, &topics);
    }

    #[wasm_bindgen(js_name = removeSubscriber)]
    pub fn remove_subscriber(&mut self, id: u32) {
        self.core.remove_subscriber(id);
    }

    /// The prefixes the gateway is asked to send.
    pub fn subscriptions(&self) -> Vec<String> {
        self.core.subscriptions()
    }

    /// Queues a request and returns its id. `kind`: `peers`, `peerSubscriptions`,
    /// `peer` (`{host, port, retryMs}`), `unpeer` (`{host, port}`), `namespace` (`{op, ...}`,
    /// see `namespace_op`).
    pub fn request(&mut self, kind: &str, args: &JsValue) -> Result<f64, JsValue> {
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
        let request = match kind {
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
            other => return Err(conversion_error(format!("unknown request `{other}`"))),
        };
        Ok(self.core.request(request) as f64)
    }

    /// Asks the gateway to cancel request `id` (a blocked namespace read/get); its response
    /// still arrives (CANCELLED, or the result sent before the cancel arrived).
    pub fn cancel(&mut self, id: f64) {
        self.core.cancel(id as u64);
    }

    /// Queues a ping; a `pong` event with the returned nonce follows everything sent before.
    pub fn ping(&mut self) -> f64 {
        self.core.ping() as f64
    }

    /// Messages queued for the next frame.
    #[wasm_bindgen(getter)]
    pub fn queued(&self) -> u32 {
        self.core.queued() as u32
    }

    /// Everything queued as one frame (bytes; UTF-8 JSON text for the JSON encoding), or
    /// `undefined`.
    #[wasm_bindgen(js_name = takeFrame)]
    pub fn take_frame(&mut self) -> Option<Vec<u8>> {
        self.core.take_frame()
    }

    // -----------------------------------------------------------------------------------------
    // Stores

    /// Starts a clone (ZB-47). Intervals in seconds: `resyncInterval` (10),
    /// `staleInterval` (300; negative = never stale), `mutationBufferInterval` (120).
    #[wasm_bindgen(js_name = attachClone)]
    pub fn attach_clone(&mut self, store: &str, opts: &JsValue) {
        self.core.set_now(js_sys::Date::now());
        let mut o = CloneOptions::default();
        let secs = |name: &str| get(opts, name).as_f64().filter(|v| v.is_finite());
        if let Some(v) = secs("resyncInterval") {
            o.resync_interval_ms = v * 1000.0;
        }
        if let Some(v) = secs("staleInterval") {
            o.stale_interval_ms = v * 1000.0;
        }
        if let Some(v) = secs("mutationBufferInterval") {
            o.mutation_buffer_interval_ms = v * 1000.0;
        }
        self.core.attach_clone(store, o);
    }

    /// Whether the clone reports changes (off: only `synced`/`reset` events).
    #[wasm_bindgen(js_name = setCloneChanges)]
    pub fn set_clone_changes(&mut self, store: &str, on: bool) {
        self.core.set_clone_changes(store, on);
    }

    #[wasm_bindgen(js_name = detachClone)]
    pub fn detach_clone(&mut self, store: &str) {
        self.core.detach_clone(store);
    }

    /// A clone's value for `key`, or undefined; throws `stale_data` (ZB-55).
    #[wasm_bindgen(js_name = cloneGet)]
    pub fn clone_get(&mut self, store: &str, key: &JsValue) -> Result<JsValue, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let key = from_js(key)?;
        Ok(match self.core.clone_get(store, &key).map_err(store_err)? {
            Some(e) => to_js(&e.value),
            None => JsValue::UNDEFINED,
        })
    }

    /// A clone's expiry for `key` (a Timestamp), or undefined.
    #[wasm_bindgen(js_name = cloneExpiry)]
    pub fn clone_expiry(&mut self, store: &str, key: &JsValue) -> Result<JsValue, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let key = from_js(key)?;
        Ok(expiry_js(
            self.core
                .clone_get(store, &key)
                .map_err(store_err)?
                .and_then(|e| e.expiry),
        ))
    }

    #[wasm_bindgen(js_name = cloneHas)]
    pub fn clone_has(&mut self, store: &str, key: &JsValue) -> Result<bool, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let key = from_js(key)?;
        Ok(self
            .core
            .clone_get(store, &key)
            .map_err(store_err)?
            .is_some())
    }

    /// Number of entries of a clone (0 before the first snapshot).
    #[wasm_bindgen(js_name = cloneSize)]
    pub fn clone_size(&self, store: &str) -> usize {
        self.core.clone_replica(store).map(|r| r.len()).unwrap_or(0)
    }

    /// A clone's keys in order, from `start` (index), at most `limit` of them.
    #[wasm_bindgen(js_name = cloneKeys)]
    pub fn clone_keys(
        &mut self,
        store: &str,
        start: usize,
        limit: usize,
    ) -> Result<Array, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let r = self.core.clone_replica(store).map_err(store_err)?;
        Ok(r.entries()
            .keys()
            .skip(start)
            .take(limit)
            .map(to_js)
            .collect())
    }

    /// A clone's `[key, value]` pairs in key order, from `start`, at most `limit`.
    #[wasm_bindgen(js_name = cloneEntries)]
    pub fn clone_entries(
        &mut self,
        store: &str,
        start: usize,
        limit: usize,
    ) -> Result<Array, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let r = self.core.clone_replica(store).map_err(store_err)?;
        Ok(r.entries()
            .iter()
            .skip(start)
            .take(limit)
            .map(|(k, e)| {
                let pair = Array::new();
                pair.push(&to_js(k));
                pair.push(&to_js(&e.value));
                JsValue::from(pair)
            })
            .collect())
    }

    /// `get_index_from_value` on a clone's local value (ZB-55): undefined if the key is
    /// absent or the index is not there; throws `type_clash` for non-containers.
    #[wasm_bindgen(js_name = cloneIndex)]
    pub fn clone_index(
        &mut self,
        store: &str,
        key: &JsValue,
        index: &JsValue,
    ) -> Result<JsValue, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let (key, index) = (from_js(key)?, from_js(index)?);
        let Some(e) = self.core.clone_get(store, &key).map_err(store_err)? else {
            return Ok(JsValue::UNDEFINED);
        };
        match crate::store::index_of(&e.value, &index) {
            Ok(v) => Ok(to_js(&v)),
            Err(e) if e.code == crate::ErrorCode::NoSuchKey => Ok(JsValue::UNDEFINED),
            Err(e) => Err(store_err(e)),
        }
    }

    /// True when the clone is in sync and no request of this client is in flight.
    #[wasm_bindgen(js_name = cloneIdle)]
    pub fn clone_idle(&self, store: &str) -> bool {
        self.core.clone_idle(store)
    }

    /// Why the gateway refused the clone for good (an error with `code` and `message`), or
    /// undefined: such a clone does not try again.
    #[wasm_bindgen(js_name = cloneRefusal)]
    pub fn clone_refusal(&self, store: &str) -> JsValue {
        match self.core.clone_refusal(store) {
            Some(e) => store_err(e.clone()),
            None => JsValue::UNDEFINED,
        }
    }

    #[wasm_bindgen(js_name = cloneSynced)]
    pub fn clone_synced(&self, store: &str) -> bool {
        self.core
            .clone_replica(store)
            .is_ok_and(crate::store::Replica::is_synced)
    }

    /// Queues a store operation (`put`, `putUnique`, `erase`, `clear`, `increment`,
    /// `decrement`, `append`, `insertInto`, `removeFrom`, `push`, `pop`, `get`, `exists`,
    /// `keys`, `getIndexFromValue`, `awaitIdle`) with `{key, value, amount, index, expiry}`;
    /// returns the request id.
    #[wasm_bindgen(js_name = storeRequest)]
    pub fn store_request(&mut self, store: &str, op: &str, args: &JsValue) -> Result<f64, JsValue> {
        self.core.set_now(js_sys::Date::now());
        let op = store_op(op, args)?;
        self.core
            .store_request(store, op)
            .map(|id| id as f64)
            .map_err(store_err)
    }

    /// Runs the clone timers (retries, buffered-write timeouts); returns events.
    pub fn tick(&mut self) -> Array {
        events_js(self.core.tick(js_sys::Date::now()), &mut self.last_topic)
    }

    #[wasm_bindgen(getter, js_name = needsTick)]
    pub fn needs_tick(&self) -> bool {
        self.core.needs_tick()
    }

    /// Handles a frame; returns its events.
    #[wasm_bindgen(js_name = onFrame)]
    pub fn on_frame(&mut self, bytes: &[u8]) -> Result<Array, JsValue> {
        self.core.set_now(js_sys::Date::now());
        self.core
            .on_frame(bytes)
            .map(|events| events_js(events, &mut self.last_topic))
            .map_err(super::decode_err)
    }

    /// Handles a text (JSON) frame; returns its events.
    #[wasm_bindgen(js_name = onText)]
    pub fn on_text(&mut self, text: &str) -> Result<Array, JsValue> {
        self.on_frame(text.as_bytes())
    }
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

/// Encodes a JS value (see the mapping table) in the binary value encoding.
#[wasm_bindgen(js_name = encodeJs)]
pub fn encode_js(value: &JsValue) -> Result<Vec<u8>, JsValue> {
    let mut out = Vec::new();
    encode_js_into(value, &mut out, 0)?;
    Ok(out)
}

/// Decodes a binary value into a JS value.
#[wasm_bindgen(js_name = decodeJs)]
pub fn decode_js(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let data: crate::Data = crate::binary::from_slice(bytes).map_err(super::decode_err)?;
    Ok(to_js(&data))
}

/// A JS value as Broker's typed JSON.
#[wasm_bindgen(js_name = jsToTypedJson)]
pub fn js_to_typed_json(value: &JsValue) -> Result<String, JsValue> {
    let data = from_js(value)?;
    crate::zeek_json::encode_value(&data).map_err(super::encode_err)
}

/// Broker's typed JSON as a JS value.
#[wasm_bindgen(js_name = typedJsonToJs)]
pub fn typed_json_to_js(json: &str) -> Result<JsValue, JsValue> {
    let data = crate::zeek_json::decode_value(json.as_bytes()).map_err(super::decode_err)?;
    Ok(to_js(&data))
}
