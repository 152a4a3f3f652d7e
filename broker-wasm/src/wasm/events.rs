//! The core's events as JS values, for `ClientCore` (the package's `Endpoint` dispatches
//! them): connection changes, statuses, errors, request answers, clone changes. Messages are
//! flattened (see [`events_js`]).

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::convert::{to_js, with_key};
use crate::client::{Event, Position, WriteState};
use crate::protocol::{EndpointInfo, Failure, GapReason, PeerInfo, Response};
use crate::store::Change;

pub(super) fn obj(pairs: &[(&'static str, JsValue)]) -> JsValue {
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
        Response::Uplinks(u) => serde_wasm_json(u),
    }
}

/// A [`Position`] as JS: `{epoch: string | null, offsets: {prefix: seq}}`.
pub(super) fn position_js(p: &Position) -> JsValue {
    let offsets = Object::new();
    for (prefix, seq) in &p.offsets {
        Reflect::set(
            &offsets,
            &JsValue::from_str(prefix),
            &JsValue::from_f64(*seq as f64),
        )
        .ok();
    }
    obj(&[
        (
            "epoch",
            p.epoch.as_deref().map_or(JsValue::NULL, JsValue::from_str),
        ),
        ("offsets", offsets.into()),
    ])
}

/// The inverse of [`position_js`]; a malformed position is a `TypeError`-like error.
pub(super) fn position_from_js(v: &JsValue) -> Result<Position, JsValue> {
    let bad = |what: &str| JsValue::from(js_sys::Error::new(&format!("position: {what}")));
    let epoch = Reflect::get(v, &JsValue::from_str("epoch")).map_err(|_| bad("not an object"))?;
    let epoch = if epoch.is_null() || epoch.is_undefined() {
        None
    } else {
        Some(
            epoch
                .as_string()
                .ok_or_else(|| bad("epoch is not a string"))?,
        )
    };
    let offsets = Reflect::get(v, &JsValue::from_str("offsets")).map_err(|_| bad("no offsets"))?;
    let mut out = std::collections::BTreeMap::new();
    if !offsets.is_undefined() && !offsets.is_null() {
        let entries = Object::entries(
            offsets
                .dyn_ref::<Object>()
                .ok_or_else(|| bad("offsets is not an object"))?,
        );
        for pair in entries.iter() {
            let pair = Array::from(&pair);
            let prefix = pair.get(0).as_string().unwrap_or_default();
            let seq = pair
                .get(1)
                .as_f64()
                .filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= 9_007_199_254_740_991.0)
                .ok_or_else(|| bad("an offset is not a non-negative integer"))?;
            out.insert(prefix, seq as u64);
        }
    }
    Ok(Position {
        epoch,
        offsets: out,
    })
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
        Event::Gap(g) => {
            let reason = match g.reason {
                GapReason::Restart => "restart",
                GapReason::Evicted => "evicted",
                GapReason::NoHistory => "no_history",
            };
            let missed = g
                .missed
                .map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64));
            let message = match g.missed {
                Some(n) => format!(
                    "{n} messages under {} could not be replayed ({reason})",
                    g.prefix
                ),
                None => format!("messages under {} may be missing ({reason})", g.prefix),
            };
            obj(&[
                ("type", with_key("gap", JsValue::clone)),
                ("code", JsValue::from_str("gap")),
                ("prefix", JsValue::from_str(&g.prefix)),
                ("missed", missed),
                ("reason", JsValue::from_str(reason)),
                ("message", JsValue::from_str(&message)),
            ])
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
        Event::Write {
            store,
            id,
            key,
            value,
            state,
        } => {
            let mut pairs = vec![
                ("type", with_key("storeWrite", JsValue::clone)),
                ("store", JsValue::from_str(&store)),
                ("id", JsValue::from_f64(id as f64)),
                ("key", to_js(&key)),
                ("value", value.as_ref().map_or(JsValue::UNDEFINED, to_js)),
            ];
            let state = match state {
                WriteState::Pending => "pending",
                WriteState::Confirmed => "confirmed",
                WriteState::RolledBack(e) => {
                    pairs.push(("code", JsValue::from_str(e.code.name())));
                    pairs.push(("message", JsValue::from_str(&e.context)));
                    "rollback"
                }
            };
            pairs.push(("state", JsValue::from_str(state)));
            obj(&pairs)
        }
    }
}

/// Seconds since the epoch as a JS number, or undefined.
pub(super) fn expiry_js(t: Option<crate::Timestamp>) -> JsValue {
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

/// A frame's events as one array. Messages, by far the most common event, are flattened to
/// three entries each, `subscriber, topic, value` (the subscriber a number, or an array of
/// numbers when several match), which saves an object per message; every other event is an
/// object with a `type`. Topics repeat, so the last topic's JS string is reused.
pub(super) fn events_js(events: Vec<Event>, last_topic: &mut Option<(String, JsValue)>) -> Array {
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
