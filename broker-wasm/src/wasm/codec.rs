//! The codec functions: values between typed JSON, JS values and the binary encoding;
//! frames between JSON and binary; Zeek WebSocket API data messages.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{encode_js_into, from_js, to_js};
use super::{decode_err, encode_err, js_error};
use crate::codes::ErrorCode;
use crate::protocol::{self, ClientMsg, PeerMsg, ServerMsg, DEFAULT_MAX_FRAME};
use crate::{binary, zeek_json, Data};

/// Encodes a value given in Broker's typed JSON (`{"@data-type":"count","data":1}`) into the
/// compact binary value encoding.
///
/// ```js
/// const bytes = encodeValue('{"@data-type":"count","data":18446744073709551615}');
/// ```
#[wasm_bindgen(js_name = encodeValue)]
pub fn encode_value(json: &str) -> Result<Vec<u8>, JsValue> {
    let data = zeek_json::decode_value(json.as_bytes()).map_err(decode_err)?;
    binary::to_vec(&data).map_err(encode_err)
}

/// Decodes a binary value into Broker's typed JSON.
#[wasm_bindgen(js_name = decodeValue)]
pub fn decode_value(bytes: &[u8]) -> Result<String, JsValue> {
    let data: Data = binary::from_slice(bytes).map_err(decode_err)?;
    zeek_json::encode_value(&data).map_err(encode_err)
}

/// Renders a value given in typed JSON in Broker's debug text form (`(1, 1, (ping, (x)))`).
#[wasm_bindgen(js_name = valueToString)]
pub fn value_to_string(json: &str) -> Result<String, JsValue> {
    let data = zeek_json::decode_value(json.as_bytes()).map_err(decode_err)?;
    Ok(data.to_string())
}

fn reencode<M: Serialize + DeserializeOwned>(
    input: &[u8],
    from: protocol::Encoding,
    to: protocol::Encoding,
) -> Result<Vec<u8>, JsValue> {
    let msgs: Vec<M> = from.decode(input, DEFAULT_MAX_FRAME).map_err(decode_err)?;
    to.encode(&msgs).map_err(encode_err)
}

fn convert_frame(
    kind: &str,
    input: &[u8],
    from: protocol::Encoding,
    to: protocol::Encoding,
) -> Result<Vec<u8>, JsValue> {
    if !cfg!(feature = "json-frames") {
        // Said before touching a message type, so the build carries none of their codecs.
        return Err(js_error(
            ErrorCode::InvalidData,
            protocol::NO_JSON_FRAMES.to_owned(),
        ));
    }
    match kind {
        "client" => reencode::<ClientMsg>(input, from, to),
        "server" => reencode::<ServerMsg>(input, from, to),
        "peer" => reencode::<PeerMsg>(input, from, to),
        _ => Err(js_error(
            ErrorCode::InvalidData,
            format!("unknown frame kind `{kind}` (expected client, server or peer)"),
        )),
    }
}

/// Converts a frame from its JSON form (`{"v":1,"messages":[...]}`) to the binary encoding.
/// `kind` is the direction: `"client"`, `"server"` or `"peer"`.
#[wasm_bindgen(js_name = frameFromJson)]
pub fn frame_from_json(kind: &str, json: &str) -> Result<Vec<u8>, JsValue> {
    convert_frame(
        kind,
        json.as_bytes(),
        protocol::Encoding::Json,
        protocol::Encoding::Binary,
    )
}

/// Converts a binary frame to its JSON form.
#[wasm_bindgen(js_name = frameToJson)]
pub fn frame_to_json(kind: &str, bytes: &[u8]) -> Result<String, JsValue> {
    let out = convert_frame(
        kind,
        bytes,
        protocol::Encoding::Binary,
        protocol::Encoding::Json,
    )?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// Builds a Zeek WebSocket API data message from a topic and a value in typed JSON.
#[wasm_bindgen(js_name = zeekDataMessage)]
pub fn zeek_data_message(topic: &str, value_json: &str) -> Result<String, JsValue> {
    let data = zeek_json::decode_value(value_json.as_bytes()).map_err(decode_err)?;
    zeek_json::data_message(topic, &data).map_err(encode_err)
}

/// Checks and normalises a Zeek WebSocket API data message (as received from a client); the
/// error carries Broker's code and context (ZB-41).
#[wasm_bindgen(js_name = parseZeekDataMessage)]
pub fn parse_zeek_data_message(text: &str) -> Result<String, JsValue> {
    let p = zeek_json::decode_data_message(text.as_bytes(), 1)
        .map_err(|e| js_error(e.code, e.context))?;
    zeek_json::data_message(&p.topic, &p.data).map_err(encode_err)
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
    let data: crate::Data = binary::from_slice(bytes).map_err(decode_err)?;
    Ok(to_js(&data))
}

/// The order of two values in the binary value encoding, as a clone orders its keys: -1, 0
/// or 1 (the shared worker's tabs keep their mirrors of clones in key order with it).
#[wasm_bindgen(js_name = compareEncoded)]
pub fn compare_encoded(a: &[u8], b: &[u8]) -> Result<i32, JsValue> {
    let a: crate::Data = binary::from_slice(a).map_err(decode_err)?;
    let b: crate::Data = binary::from_slice(b).map_err(decode_err)?;
    Ok(a.cmp(&b) as i32)
}

/// A JS value as Broker's typed JSON.
#[wasm_bindgen(js_name = jsToTypedJson)]
pub fn js_to_typed_json(value: &JsValue) -> Result<String, JsValue> {
    let data = from_js(value)?;
    zeek_json::encode_value(&data).map_err(encode_err)
}

/// Broker's typed JSON as a JS value.
#[wasm_bindgen(js_name = typedJsonToJs)]
pub fn typed_json_to_js(json: &str) -> Result<JsValue, JsValue> {
    let data = zeek_json::decode_value(json.as_bytes()).map_err(decode_err)?;
    Ok(to_js(&data))
}
