//! The Data Broker side of the binding, for the package's `namespace.js`: the code tables
//! (DB-27; the JS package keeps no copy) and the client rules of
//! [`crate::client::namespace`] and [`crate::dbr`] applied to JS values, so the JS client
//! and the Rust client follow one definition.

use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use super::convert::from_js;
use super::events::obj;
use crate::client::namespace::{Answer, Call, NsError, Settle};
use crate::codes::ErrorCode;
use crate::dbr::{self, FetchFlags, CODES};
use crate::protocol::{ErrorInfo, Failure, Wait};

fn field(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A JS number as a code: integers in range as they are, anything else out of range.
fn code_arg(code: &JsValue) -> i32 {
    code.as_f64()
        .filter(|c| c.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(c))
        .map_or(-1, |c| c as i32)
}

/// A JS number as a size or count: negative and NaN are 0, fractions are cut.
fn size_arg(v: f64) -> u64 {
    v.max(0.0) as u64
}

/// `[number, name, message]` of the 24 Data Broker error codes (DB-27), in order; the
/// sentinel `DBR_ERR_MAXERROR` reads "Unknown Error".
#[wasm_bindgen(js_name = dbrCodes)]
pub fn dbr_codes() -> Array {
    CODES
        .iter()
        .map(|(code, name, message)| {
            let row = Array::new();
            row.push(&JsValue::from_f64(f64::from(code.code())));
            row.push(&JsValue::from_str(name));
            row.push(&JsValue::from_str(message));
            JsValue::from(row)
        })
        .collect()
}

/// `[number, name]` of Broker's error codes (ZB-22), in order: the `code` of a `BrokerError`
/// is one of these names.
#[wasm_bindgen(js_name = errorCodes)]
pub fn error_codes() -> Array {
    ErrorCode::ALL
        .iter()
        .map(|c| {
            let row = Array::new();
            row.push(&JsValue::from_f64(f64::from(c.code())));
            row.push(&JsValue::from_str(c.name()));
            JsValue::from(row)
        })
        .collect()
}

/// PyDBR's `getErrorCode`: the `DBR_*` name of a code, "Unknown Error" outside 0..22 (and for
/// anything that is not an integer).
#[wasm_bindgen(js_name = dbrErrorName)]
pub fn dbr_error_name(code: &JsValue) -> String {
    dbr::error_name(code_arg(code)).to_owned()
}

/// `dbrGet_error` / PyDBR's `getErrorMessage`: the original's message, "Unknown Error" outside
/// 0..22.
#[wasm_bindgen(js_name = dbrErrorMessage)]
pub fn dbr_error_message(code: &JsValue) -> String {
    dbr::error_message(code_arg(code)).to_owned()
}

/// The options of a PyDBR read or get (`get`) from its flags (DB-11, DB-14, DB-15):
/// `{wait, index, partial}`, `wait` as a namespace request takes it (`"nowait"`, `"forever"`
/// or milliseconds). `timeoutSecs` is `DBR_TIMEOUT` (0 = forever); `asynchronous` calls
/// (`readA`/`getA`) never time out.
#[wasm_bindgen(js_name = dbrFetchOptions)]
pub fn dbr_fetch_options(flags: f64, get: bool, timeout_secs: f64, asynchronous: bool) -> JsValue {
    let f = FetchFlags::decode(size_arg(flags), get);
    let wait = match f.wait(dbr::timeout_from_secs(timeout_secs), asynchronous) {
        Wait::NoWait => JsValue::from_str("nowait"),
        Wait::Forever => JsValue::from_str("forever"),
        Wait::Timeout(t) => JsValue::from_f64(t.0 as f64 / 1e6),
    };
    obj(&[
        ("wait", wait),
        ("index", JsValue::from_f64(f.index as f64)),
        ("partial", JsValue::from_bool(f.partial)),
    ])
}

fn error_js(e: NsError, restore: bool) -> JsValue {
    obj(&[
        ("errno", JsValue::from_f64(f64::from(e.code.code()))),
        ("context", JsValue::from_str(&e.context)),
        (
            "size",
            e.size
                .map_or(JsValue::UNDEFINED, |s| JsValue::from_f64(s as f64)),
        ),
        ("restore", JsValue::from_bool(restore)),
    ])
}

/// The failure of a `response` event: a number is a DBR code, a string a Broker code name.
fn failure_of(event: &JsValue) -> Failure {
    let code = field(event, "code");
    let context = field(event, "context").as_string().unwrap_or_default();
    match code.as_f64() {
        Some(n) => Failure::Namespace {
            code: code_arg(&JsValue::from_f64(n)),
            context,
        },
        None => Failure::Broker(ErrorInfo {
            code: code
                .as_string()
                .and_then(|n| ErrorCode::from_name(&n))
                .unwrap_or(ErrorCode::Unspecified),
            context,
        }),
    }
}

/// What the answer `event` (a `response` event of `ClientCore`) to the namespace request
/// `args` (`{op, ns, key, capacity, ...}`) means, by the core's rules (DB-13, DB-25, DB-27):
/// `undefined` to hand `event.value` to the caller, or `{errno, context, size, restore}` to
/// fail with that code, after putting `event.value.value` back at the head of
/// `args.ns`/`args.key` (op `restore`) when `restore` is set. `cancelled`: the caller gave
/// up before the answer arrived.
#[wasm_bindgen(js_name = dbrSettle)]
pub fn dbr_settle(args: &JsValue, event: &JsValue, cancelled: bool) -> JsValue {
    let op = field(args, "op").as_string().unwrap_or_default();
    let capacity = field(args, "capacity").as_f64().map(size_arg);
    let get = (op == "get").then(|| {
        let s = |k| field(args, k).as_string().unwrap_or_default();
        (s("ns"), s("key"))
    });
    let call = Call::with(get, capacity);
    let failure;
    let answer = if field(event, "ok").is_truthy() {
        let size = field(&field(event, "value"), "size").as_f64();
        match size {
            Some(s) if op == "get" || op == "read" => Answer::Tuple { size: size_arg(s) },
            _ => Answer::Done,
        }
    } else {
        failure = failure_of(event);
        Answer::Failed(&failure)
    };
    match call.settle(answer, cancelled) {
        Settle::Deliver => JsValue::UNDEFINED,
        Settle::Fail(e) => error_js(e, false),
        Settle::RestoreThenFail(e) => error_js(e, true),
    }
}

fn sizes_arg(sizes: &JsValue) -> Vec<usize> {
    if !Array::is_array(sizes) {
        return Vec::new();
    }
    Array::from(sizes)
        .iter()
        .map(|n| n.as_f64().map_or(0, |n| size_arg(n) as usize))
        .collect()
}

/// DB-26: a scatter read/get into pieces of `sizes[i]` bytes: `{code, capacity, flags}`,
/// the request to make (code 0) or `DBR_ERR_INVALID` (no pieces).
#[wasm_bindgen(js_name = dbrScatterRequest)]
pub fn dbr_scatter_request(sizes: &JsValue, flags: f64) -> JsValue {
    match dbr::scatter_request(&sizes_arg(sizes), size_arg(flags)) {
        Ok((capacity, flags)) => obj(&[
            ("code", JsValue::from_f64(0.0)),
            ("capacity", JsValue::from_f64(capacity as f64)),
            ("flags", JsValue::from_f64(flags as f64)),
        ]),
        Err(c) => obj(&[("code", JsValue::from_f64(f64::from(c.code())))]),
    }
}

/// DB-26: a value spread over pieces of `sizes[i]` bytes (`Uint8Array`s), in order: a
/// string's bytes, or the binary encoding of any other value.
#[wasm_bindgen(js_name = dbrScatter)]
pub fn dbr_scatter(value: &JsValue, sizes: &JsValue) -> Result<Array, JsValue> {
    let bytes = dbr::value_bytes(&from_js(value)?);
    Ok(dbr::scatter(&bytes, &sizes_arg(sizes))
        .into_iter()
        .map(|piece| JsValue::from(Uint8Array::from(piece)))
        .collect())
}

/// DB-26: the parts of a gather put (`Uint8Array`s or strings) as one `Uint8Array`;
/// `undefined` for no parts (`DBR_ERR_INVALID`).
#[wasm_bindgen(js_name = dbrGather)]
pub fn dbr_gather(parts: &JsValue) -> JsValue {
    if !Array::is_array(parts) {
        return JsValue::UNDEFINED;
    }
    let parts: Vec<Vec<u8>> = Array::from(parts)
        .iter()
        .map(|p| match p.dyn_ref::<Uint8Array>() {
            Some(b) => b.to_vec(),
            None => p.as_string().unwrap_or_default().into_bytes(),
        })
        .collect();
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    match dbr::gather(&slices) {
        Ok(crate::Data::String(b)) => Uint8Array::from(b.as_slice()).into(),
        _ => JsValue::UNDEFINED,
    }
}

/// DB-20 as PyDBR returns it: `[names, bytes]`, the names joined by newlines and cut to
/// `size` bytes (never inside a character; `undefined` = no limit), split again, and the
/// byte length of the cut list.
#[wasm_bindgen(js_name = dbrDirectoryList)]
pub fn dbr_directory_list(names: Vec<String>, size: JsValue) -> Array {
    let size = size.as_f64().map(|s| size_arg(s) as usize);
    let (list, len) = dbr::directory_list(&names, size);
    let out = Array::new();
    out.push(&list.iter().map(|n| JsValue::from_str(n)).collect::<Array>());
    out.push(&JsValue::from_f64(len as f64));
    out
}
