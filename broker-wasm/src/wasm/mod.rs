//! The JavaScript boundary (wasm32 only). Everything else in the crate is plain Rust.
//!
//! Values and frames cross as bytes (`Uint8Array`) or as JSON text, never as JS numbers, so
//! 64-bit counts and integers keep every bit: JS code never runs `JSON.parse` on them.
//! Errors are JS `Error` objects named `BrokerError` with a stable `code` property holding
//! Broker's error-code name (e.g. `deserialization_failed`).
//!
//! One file per exported type or group of functions:
//! - `client_core`: the `ClientCore` class (the sans-I/O client the `Endpoint` drives), with
//!   `events` (its events as JS values) and `requests` (request arguments from JS objects).
//! - `codec`: value, frame and Zeek-message conversions (`encodeValue`, `frameToJson`, ...).
//! - `convert`: JS values <-> Broker data (`registerValueClasses`).
//! - `dbr`: the Data Broker code tables and client rules for `namespace.js` (`dbrCodes`,
//!   `dbrSettle`, ...); `dbr_tags`: the `DbrTags` class (PyDBR tags).
//! - here: errors, `version`, `reconnectDelayMs`.

mod client_core;
mod codec;
mod convert;
mod dbr;
mod dbr_tags;
mod events;
mod requests;

use std::fmt::Display;

use wasm_bindgen::prelude::*;

use crate::codes::ErrorCode;
use crate::error::{DecodeError, EncodeError};

pub(crate) fn js_error(code: ErrorCode, message: impl Display) -> JsValue {
    let e = js_sys::Error::new(&message.to_string());
    e.set_name("BrokerError");
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&e, &"code".into(), &code.name().into());
    e.into()
}

pub(crate) fn decode_err(e: DecodeError) -> JsValue {
    js_error(e.code(), e)
}

pub(crate) fn encode_err(e: EncodeError) -> JsValue {
    js_error(e.code(), e)
}

/// Milliseconds to wait before reconnect attempt `attempt` (0-based): exponential from
/// 100 ms, capped at `cap_ms`, with jitter from `random` in [0, 1).
#[wasm_bindgen(js_name = reconnectDelayMs)]
pub fn reconnect_delay_ms(attempt: u32, cap_ms: f64, random: f64) -> f64 {
    crate::client::reconnect_delay_ms(attempt, cap_ms.max(0.0) as u64, random) as f64
}

/// The version of the core (and of this package).
#[wasm_bindgen]
pub fn version() -> String {
    crate::VERSION.to_owned()
}
