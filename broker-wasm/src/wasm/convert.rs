//! JS values <-> Broker data (design decision 8), in one place.
//!
//! | Broker | JS received | JS accepted on publish |
//! |---|---|---|
//! | none | `null` | `null`, `undefined` |
//! | boolean | `boolean` | `boolean` |
//! | count | `Count` (`.value` is a `bigint`) | `Count` |
//! | integer | `bigint` | `bigint` within int64 |
//! | real | `number` | `number` |
//! | string | `string`; `Uint8Array` if not UTF-8 | `string`, `Uint8Array` |
//! | address | `Address` | `Address` |
//! | subnet | `Subnet` | `Subnet` |
//! | port | `Port` | `Port` |
//! | timestamp | `Timestamp` (`.ns` bigint) | `Timestamp`, `Date` |
//! | timespan | `Timespan` (`.ns` bigint) | `Timespan` |
//! | enum value | `EnumValue` | `EnumValue` |
//! | set | `Set` | `Set` |
//! | table | `Map` | `Map` |
//! | vector | `Array` | `Array` |
//! | Zeek event | `Array` (wrap with `Event.fromValue`) | `Event` |
//!
//! The classes live in the package's `values.js`, which registers constructors here once
//! ([`register_value_classes`]); instances carry a `__broker` tag naming their type.

use std::cell::RefCell;

use js_sys::{Array, BigInt, Function, Map, Object, Reflect, Set, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::data::{Address, Data, Port, Protocol, Subnet, Timespan, Timestamp};
use crate::zeek::Event;

/// Deepest nesting converted (the codecs' limit).
const MAX_DEPTH: usize = 60;

#[derive(Debug)]
struct Classes {
    count: Function,
    address: Function,
    subnet: Function,
    port: Function,
    timestamp: Function,
    timespan: Function,
    enum_value: Function,
    /// Optional classifier: one call tells the common kinds apart (see [`classify`]).
    kind: Option<Function>,
    /// Optional: a `Count` from a JS number (for counts up to 2^53).
    count_number: Option<Function>,
}

thread_local! {
    static CLASSES: RefCell<Option<Classes>> = const { RefCell::new(None) };
}

fn factory(obj: &JsValue, name: &str) -> Result<Function, JsValue> {
    Reflect::get(obj, &name.into())?
        .dyn_into::<Function>()
        .map_err(|_| {
            JsValue::from_str(&format!(
                "registerValueClasses: `{name}` must be a function"
            ))
        })
}

/// Registers the constructors of the value classes: an object with functions `count(bigint)`,
/// `address(text)`, `subnet(text)`, `port(number, protocol)`, `timestamp(bigint ns)`,
/// `timespan(bigint ns)`, `enumValue(name)`. The package calls this once at load.
#[wasm_bindgen(js_name = registerValueClasses)]
pub fn register_value_classes(factories: &JsValue) -> Result<(), JsValue> {
    let classes = Classes {
        count: factory(factories, "count")?,
        address: factory(factories, "address")?,
        subnet: factory(factories, "subnet")?,
        port: factory(factories, "port")?,
        timestamp: factory(factories, "timestamp")?,
        timespan: factory(factories, "timespan")?,
        enum_value: factory(factories, "enumValue")?,
        kind: factory(factories, "kind").ok(),
        count_number: factory(factories, "countNumber").ok(),
    };
    CLASSES.with(|c| *c.borrow_mut() = Some(classes));
    Ok(())
}

/// Why a JS value could not become Broker data.
pub(crate) fn conversion_error(message: impl Into<String>) -> JsValue {
    super::js_error(crate::codes::ErrorCode::ConversionFailed, message.into())
}

thread_local! {
    /// JS strings for property names, made once: turning a Rust `&str` into a JS string
    /// crosses the boundary and decodes UTF-8, which would dominate small conversions.
    static KEYS: RefCell<std::collections::HashMap<&'static str, JsValue>> =
        RefCell::new(std::collections::HashMap::new());
}

/// Runs `f` with the cached JS string for `key`.
pub(crate) fn with_key<R>(key: &'static str, f: impl FnOnce(&JsValue) -> R) -> R {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let k = keys.entry(key).or_insert_with(|| JsValue::from_str(key));
        f(k)
    })
}

fn get(obj: &JsValue, key: &'static str) -> JsValue {
    with_key(key, |k| Reflect::get(obj, k).unwrap_or(JsValue::UNDEFINED))
}

fn get_str(obj: &JsValue, key: &'static str, what: &str) -> Result<String, JsValue> {
    get(obj, key)
        .as_string()
        .ok_or_else(|| conversion_error(format!("{what}: `{key}` must be a string")))
}

fn get_bigint_i64(obj: &JsValue, key: &'static str, what: &str) -> Result<i64, JsValue> {
    let v = get(obj, key);
    if !v.is_bigint() {
        return Err(conversion_error(format!(
            "{what}: `{key}` must be a bigint"
        )));
    }
    i64::try_from(v)
        .map_err(|_| conversion_error(format!("{what}: `{key}` is out of the int64 range")))
}

/// Converts a JS value to Broker data.
pub(crate) fn from_js(value: &JsValue) -> Result<Data, JsValue> {
    from_js_at(value, 0)
}

/// Kind codes of the registered classifier: each boundary call costs, and one call to a JS
/// function that looks at `typeof` replaces a chain of up to eight checks.
const KIND_NONE: u8 = 0;
const KIND_FALSE: u8 = 1;
const KIND_TRUE: u8 = 2;
const KIND_NUMBER: u8 = 3;
const KIND_STRING: u8 = 4;
const KIND_BIGINT: u8 = 5;
const KIND_ARRAY: u8 = 6;
const KIND_COUNT: u8 = 7;

fn classify(value: &JsValue) -> Option<u8> {
    CLASSES.with(|c| {
        let c = c.borrow();
        let kind = c.as_ref()?.kind.as_ref()?;
        // The classifier returns a small number; read it without an out-parameter.
        Some(kind.call1(&JsValue::NULL, value).ok()?.unchecked_into_f64() as u8)
    })
}

fn integer(value: &JsValue) -> Result<Data, JsValue> {
    i64::try_from(value.clone())
        .map(Data::Integer)
        .map_err(|_| {
            conversion_error(
            "a bigint outside the int64 range cannot be an integer; use new Count(n) for 0..2^64-1",
        )
        })
}

fn vector(value: &JsValue, depth: usize) -> Result<Data, JsValue> {
    let arr: &Array = value.unchecked_ref();
    let mut out = Vec::with_capacity(arr.length() as usize);
    for v in arr.iter() {
        out.push(from_js_at(&v, depth + 1)?);
    }
    Ok(Data::Vector(out))
}

fn count(obj: &JsValue) -> Result<Data, JsValue> {
    let v = get(obj, "value");
    if !v.is_bigint() {
        return Err(conversion_error("Count: `value` must be a bigint"));
    }
    u64::try_from(v)
        .map(Data::Count)
        .map_err(|_| conversion_error("Count: out of the 0..2^64-1 range"))
}

fn from_js_at(value: &JsValue, depth: usize) -> Result<Data, JsValue> {
    if depth > MAX_DEPTH {
        return Err(conversion_error(format!(
            "value nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match classify(value) {
        Some(KIND_NONE) => return Ok(Data::None),
        Some(KIND_FALSE) => return Ok(Data::Boolean(false)),
        Some(KIND_TRUE) => return Ok(Data::Boolean(true)),
        // The classifier saw a number: read it without the checked accessor's out-parameter.
        Some(KIND_NUMBER) => return Ok(Data::Real(value.unchecked_into_f64())),
        Some(KIND_STRING) => {
            return Ok(Data::String(
                value.as_string().unwrap_or_default().into_bytes(),
            ))
        }
        Some(KIND_BIGINT) => return integer(value),
        Some(KIND_ARRAY) => return vector(value, depth),
        Some(KIND_COUNT) => return count(value),
        // Anything else (or no classifier): the general checks below.
        _ => {}
    }
    if value.is_null() || value.is_undefined() {
        return Ok(Data::None);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Data::Boolean(b));
    }
    if let Some(n) = value.as_f64() {
        return Ok(Data::Real(n));
    }
    if value.is_bigint() {
        return integer(value);
    }
    if let Some(s) = value.as_string() {
        return Ok(Data::String(s.into_bytes()));
    }
    if !value.is_object() {
        return Err(conversion_error(format!("{value:?} has no Broker type")));
    }
    // Most objects are arrays or the package's value classes: check those first.
    if !Array::is_array(value) {
        if let Some(tag) = get(value, "__broker").as_string() {
            return tagged(value, &tag, depth);
        }
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(Data::String(bytes.to_vec()));
    }
    if Array::is_array(value) {
        return vector(value, depth);
    }
    if let Some(set) = value.dyn_ref::<Set>() {
        let mut out = crate::data::Set::new();
        let mut err = None;
        set.for_each(&mut |v, _, _| {
            if err.is_some() {
                return;
            }
            match from_js_at(&v, depth + 1) {
                Ok(d) => {
                    if let Some(dup) = out.replace(d) {
                        err = Some(conversion_error(format!(
                            "the Set holds two elements equal as Broker data: {dup}"
                        )));
                    }
                }
                Err(e) => err = Some(e),
            }
        });
        return err.map_or(Ok(Data::Set(out)), Err);
    }
    if let Some(map) = value.dyn_ref::<Map>() {
        let mut out = crate::data::Table::new();
        let mut err = None;
        map.for_each(&mut |v, k| {
            if err.is_some() {
                return;
            }
            match (from_js_at(&k, depth + 1), from_js_at(&v, depth + 1)) {
                (Ok(k), Ok(v)) => match out.entry(k) {
                    std::collections::btree_map::Entry::Occupied(o) => {
                        err = Some(conversion_error(format!(
                            "the Map holds two keys equal as Broker data: {}",
                            o.key()
                        )));
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(v);
                    }
                },
                (Err(e), _) | (_, Err(e)) => err = Some(e),
            }
        });
        return err.map_or(Ok(Data::Table(out)), Err);
    }
    if let Some(date) = value.dyn_ref::<js_sys::Date>() {
        let ms = date.get_time();
        if !ms.is_finite() {
            return Err(conversion_error("an invalid Date cannot be a timestamp"));
        }
        return Ok(Data::Timestamp(Timestamp(
            (ms as i64).saturating_mul(1_000_000),
        )));
    }
    Err(conversion_error(
        "plain objects have no Broker type: use a Map for a table, or the package's value classes",
    ))
}

/// Instances of the package's value classes.
fn tagged(obj: &JsValue, tag: &str, depth: usize) -> Result<Data, JsValue> {
    Ok(match tag {
        "count" => count(obj)?,
        "address" => Data::Address(
            get_str(obj, "text", "Address")?
                .parse::<Address>()
                .map_err(|e| conversion_error(e.to_string()))?,
        ),
        "subnet" => Data::Subnet(
            get_str(obj, "text", "Subnet")?
                .parse::<Subnet>()
                .map_err(|e| conversion_error(e.to_string()))?,
        ),
        "port" => {
            let number = get(obj, "number")
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (0.0..=65535.0).contains(n));
            let number = number
                .ok_or_else(|| conversion_error("Port: `number` must be an integer in 0..65535"))?;
            let protocol = match get_str(obj, "protocol", "Port")?.as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "icmp" => Protocol::Icmp,
                "?" | "unknown" => Protocol::Unknown,
                other => {
                    return Err(conversion_error(format!(
                        "Port: unknown protocol `{other}`"
                    )))
                }
            };
            Data::Port(Port::new(number as u16, protocol))
        }
        "timestamp" => Data::Timestamp(Timestamp(get_bigint_i64(obj, "ns", "Timestamp")?)),
        "timespan" => Data::Timespan(Timespan(get_bigint_i64(obj, "ns", "Timespan")?)),
        "enum" => Data::Enum(get_str(obj, "name", "EnumValue")?),
        "event" => {
            let name = get_str(obj, "name", "Event")?;
            let args = get(obj, "args");
            let Data::Vector(args) = from_js_at(&args, depth + 1)? else {
                return Err(conversion_error("Event: `args` must be an array"));
            };
            let mut event = Event::new(name, args);
            let meta = get(obj, "metadata");
            if !meta.is_undefined() && !meta.is_null() {
                let Data::Vector(entries) = from_js_at(&meta, depth + 1)? else {
                    return Err(conversion_error(
                        "Event: `metadata` must be an array of [key, value]",
                    ));
                };
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    match e {
                        Data::Vector(kv) if kv.len() == 2 => {
                            let key = match &kv[0] {
                                Data::Count(k) => *k,
                                Data::Integer(k) if *k >= 0 => *k as u64,
                                Data::Real(k) if k.fract() == 0.0 && *k >= 0.0 => *k as u64,
                                _ => {
                                    return Err(conversion_error(
                                        "Event: metadata keys are non-negative integers",
                                    ))
                                }
                            };
                            out.push((key, kv[1].clone()));
                        }
                        _ => {
                            return Err(conversion_error(
                                "Event: metadata entries are [key, value] pairs",
                            ))
                        }
                    }
                }
                event.metadata = Some(out);
            }
            // Validate like a received event would be.
            Event::from_data(&event.to_data())
                .map_err(|e| conversion_error(format!("Event: {e}")))?;
            event.to_data()
        }
        other => return Err(conversion_error(format!("unknown value class `{other}`"))),
    })
}

/// Appends the binary value encoding of a JS value to `out` without building a [`Data`]
/// for the common kinds (null, booleans, numbers, strings, bigints, arrays, `Count`); other
/// values go through [`from_js`]. The bytes are exactly `binary::to_vec(&from_js(value))`.
pub(crate) fn encode_js_into(
    value: &JsValue,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), JsValue> {
    use crate::binary::{write_signed, write_varint};
    use crate::data::DataType;
    if depth > MAX_DEPTH {
        return Err(conversion_error(format!(
            "value nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match classify(value) {
        Some(KIND_NONE) => out.push(DataType::None as u8),
        Some(KIND_FALSE) => out.extend_from_slice(&[DataType::Boolean as u8, 0]),
        Some(KIND_TRUE) => out.extend_from_slice(&[DataType::Boolean as u8, 1]),
        Some(KIND_NUMBER) => {
            out.push(DataType::Real as u8);
            out.extend_from_slice(&value.unchecked_into_f64().to_le_bytes());
        }
        Some(KIND_STRING) => {
            let s = value.as_string().unwrap_or_default();
            out.push(DataType::String as u8);
            write_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Some(KIND_BIGINT) => {
            let Data::Integer(i) = integer(value)? else {
                unreachable!("integer() makes integers")
            };
            out.push(DataType::Integer as u8);
            write_signed(out, i);
        }
        Some(KIND_ARRAY) => {
            let arr: &Array = value.unchecked_ref();
            out.push(DataType::Vector as u8);
            write_varint(out, u64::from(arr.length()));
            for v in arr.iter() {
                encode_js_into(&v, out, depth + 1)?;
            }
        }
        Some(KIND_COUNT) => {
            let Data::Count(n) = count(value)? else {
                unreachable!("count() makes counts")
            };
            out.push(DataType::Count as u8);
            write_varint(out, n);
        }
        _ => {
            let data = from_js_at(value, depth)?;
            crate::binary::to_writer(out, &data).map_err(super::encode_err)?;
        }
    }
    Ok(())
}

/// Converts Broker data to a JS value.
pub(crate) fn to_js(data: &Data) -> JsValue {
    CLASSES.with(|c| {
        let c = c.borrow();
        to_js_with(data, c.as_ref())
    })
}

/// Largest integer a JS number holds exactly (2^53).
const MAX_SAFE: u64 = 1 << 53;

/// Longest string kept in [`STRINGS`].
const MAX_CACHED: usize = 32;
/// Slots of [`STRINGS`] (a power of two).
const STRING_SLOTS: usize = 512;

/// A string's bytes and the JS string made of them.
type CachedString = (Box<[u8]>, JsValue);

thread_local! {
    /// Short strings made recently, by a hash of their bytes (one per slot, the last one
    /// wins). Received values repeat the same short strings (a protocol, a state, an enum-like
    /// field), and making a JS string from wasm memory costs a TextDecoder call each time
    /// (the largest single cost of receiving such values in a browser); a hit costs a hash and
    /// a comparison.
    static STRINGS: RefCell<Vec<Option<CachedString>>> = RefCell::new(vec![None; STRING_SLOTS]);
}

/// The JS string of a short valid UTF-8 `bytes`, from [`STRINGS`] or made and kept there;
/// `None` for a longer or non-UTF-8 one.
fn short_string(bytes: &[u8]) -> Option<JsValue> {
    if bytes.len() > MAX_CACHED {
        return None;
    }
    // FNV-1a: a few cycles for these lengths.
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let slot = (h as usize) & (STRING_SLOTS - 1);
    STRINGS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((k, v)) = &cache[slot] {
            if **k == *bytes {
                return Some(v.clone());
            }
        }
        let s = JsValue::from_str(std::str::from_utf8(bytes).ok()?);
        cache[slot] = Some((bytes.into(), s.clone()));
        Some(s)
    })
}

fn call1(f: &Function, a: JsValue) -> JsValue {
    f.call1(&JsValue::NULL, &a).unwrap_or(JsValue::UNDEFINED)
}

fn to_js_with(data: &Data, c: Option<&Classes>) -> JsValue {
    // Without registered classes (the codec used on its own), tagged plain objects stand in.
    let tagged = |tag: &str, key: &str, v: JsValue| -> JsValue {
        let o = Object::new();
        let _ = Reflect::set(&o, &"__broker".into(), &tag.into());
        let _ = Reflect::set(&o, &key.into(), &v);
        o.into()
    };
    match data {
        Data::None => JsValue::NULL,
        Data::Boolean(b) => JsValue::from_bool(*b),
        Data::Count(n) => match c {
            Some(Classes {
                count_number: Some(f),
                ..
            }) if *n <= MAX_SAFE => call1(f, JsValue::from_f64(*n as f64)),
            Some(c) => call1(&c.count, BigInt::from(*n).into()),
            None => tagged("count", "value", BigInt::from(*n).into()),
        },
        Data::Integer(i) => BigInt::from(*i).into(),
        Data::Real(r) => JsValue::from_f64(*r),
        Data::String(bytes) => {
            short_string(bytes).unwrap_or_else(|| match std::str::from_utf8(bytes) {
                Ok(s) => JsValue::from_str(s),
                Err(_) => Uint8Array::from(bytes.as_slice()).into(),
            })
        }
        Data::Address(a) => match c {
            Some(c) => call1(&c.address, a.to_string().into()),
            None => tagged("address", "text", a.to_string().into()),
        },
        Data::Subnet(s) => match c {
            Some(c) => call1(&c.subnet, s.to_string().into()),
            None => tagged("subnet", "text", s.to_string().into()),
        },
        Data::Port(p) => match c {
            Some(c) => c
                .port
                .call2(
                    &JsValue::NULL,
                    &JsValue::from_f64(f64::from(p.number)),
                    &p.protocol.as_str().into(),
                )
                .unwrap_or(JsValue::UNDEFINED),
            None => {
                let o = tagged("port", "number", JsValue::from_f64(f64::from(p.number)));
                let _ = Reflect::set(&o, &"protocol".into(), &p.protocol.as_str().into());
                o
            }
        },
        Data::Timestamp(t) => match c {
            Some(c) => call1(&c.timestamp, BigInt::from(t.0).into()),
            None => tagged("timestamp", "ns", BigInt::from(t.0).into()),
        },
        Data::Timespan(t) => match c {
            Some(c) => call1(&c.timespan, BigInt::from(t.0).into()),
            None => tagged("timespan", "ns", BigInt::from(t.0).into()),
        },
        Data::Enum(e) => match c {
            Some(c) => call1(&c.enum_value, e.as_str().into()),
            None => tagged("enum", "name", e.as_str().into()),
        },
        Data::Set(s) => {
            let out = Set::new(&JsValue::UNDEFINED);
            for d in s {
                out.add(&to_js_with(d, c));
            }
            out.into()
        }
        Data::Table(t) => {
            let out = Map::new();
            for (k, v) in t {
                out.set(&to_js_with(k, c), &to_js_with(v, c));
            }
            out.into()
        }
        Data::Vector(v) => v.iter().map(|d| to_js_with(d, c)).collect::<Array>().into(),
    }
}
