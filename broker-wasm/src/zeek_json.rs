//! Zeek Broker's WebSocket JSON API, v1 (ZB-36..43): the handshake, the ack, data messages
//! in both directions and error messages, byte for byte as Broker writes them.
//!
//! ```text
//! client: ["/topic/a", "/topic/b"]
//! server: {"type":"ack","endpoint":"<uuid>","version":"<version>"}
//! both:   {"type":"data-message","topic":"/foo","@data-type":"count","data":1}
//! server: {"type":"error","code":"deserialization_failed","context":"input #1 ..."}
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Serialize;
use thiserror::Error;

use crate::codes::ErrorCode;
use crate::data::Data;
use crate::error::{DecodeError, EncodeError};
use crate::protocol::Publish;
use crate::serde_data::{Payload, TypedSlot};

/// The URL path of the API.
pub const PATH: &str = "/v1/messages/json";

/// An error to report to a client as `{"type":"error","code":...,"context":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {context}")]
pub struct ZeekError {
    pub code: ErrorCode,
    pub context: String,
}

impl ZeekError {
    fn deserialization(context: String) -> ZeekError {
        ZeekError {
            code: ErrorCode::DeserializationFailed,
            context,
        }
    }
}

/// Encodes a single value as `{"@data-type":...,"data":...}`.
pub fn encode_value(data: &Data) -> Result<String, EncodeError> {
    Ok(serde_json::to_string(data)?)
}

/// Decodes a single value.
pub fn decode_value(input: &[u8]) -> Result<Data, DecodeError> {
    Ok(serde_json::from_slice(input)?)
}

/// Appends `{"type":"data-message","topic":...,"@data-type":...,"data":...}` to `out`.
pub fn encode_data_message(topic: &str, data: &Data, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let r = (|| -> Result<(), serde_json::Error> {
        out.extend_from_slice(br#"{"type":"data-message","topic":"#);
        serde_json::to_writer(&mut *out, topic)?;
        out.extend_from_slice(br#","@data-type":""#);
        out.extend_from_slice(data.data_type().name().as_bytes());
        out.extend_from_slice(br#"","data":"#);
        serde_json::to_writer(&mut *out, &Payload(data))?;
        out.push(b'}');
        Ok(())
    })();
    r.map_err(|e| {
        out.truncate(start);
        EncodeError::from(e)
    })
}

/// The data message for `topic` and `data`.
pub fn data_message(topic: &str, data: &Data) -> Result<String, EncodeError> {
    let mut out = Vec::new();
    encode_data_message(topic, data, &mut out)?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

#[derive(Serialize)]
struct Ack<'a> {
    r#type: &'static str,
    endpoint: &'a str,
    version: &'a str,
}

/// `{"type":"ack","endpoint":...,"version":...}`.
pub fn ack(endpoint: &str, version: &str) -> String {
    serde_json::to_string(&Ack {
        r#type: "ack",
        endpoint,
        version,
    })
    .expect("strings serialize")
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    r#type: &'static str,
    code: &'static str,
    context: &'a str,
}

#[derive(Serialize)]
struct HandshakeErrorOut<'a> {
    r#type: &'static str,
    code: &'static str,
    context: &'a str,
    message: &'a str,
}

/// `{"type":"error","code":...,"context":...}`.
pub fn error(code: ErrorCode, context: &str) -> String {
    serde_json::to_string(&ErrorOut {
        r#type: "error",
        code: code.name(),
        context,
    })
    .expect("strings serialize")
}

/// A handshake error: like [`error`], plus a `message` member with the same text for
/// clients written against Zeek 8, which uses that key (ZB-37).
pub fn handshake_error(err: &ZeekError) -> String {
    serde_json::to_string(&HandshakeErrorOut {
        r#type: "error",
        code: err.code.name(),
        context: &err.context,
        message: &err.context,
    })
    .expect("strings serialize")
}

/// The client's handshake: a JSON array of subscription prefixes.
pub fn handshake(topics: &[&str]) -> String {
    serde_json::to_string(topics).expect("strings serialize")
}

/// Decodes the client's first message, an array of topic strings (ZB-37).
pub fn decode_handshake(input: &[u8]) -> Result<Vec<String>, ZeekError> {
    let value: serde_json::Value = serde_json::from_slice(input).map_err(|e| {
        ZeekError::deserialization(format!("handshake contained malformed JSON -> {e}"))
    })?;
    let serde_json::Value::Array(items) = value else {
        return Err(ZeekError::deserialization(
            "subscriptions not an array".into(),
        ));
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ZeekError::deserialization(
                "individual subscription not a string".into(),
            )),
        })
        .collect()
}

/// Decodes data message number `n` (1-based, counted after the handshake) from a client,
/// with Broker's error contexts (ZB-41): `input #n contained malformed JSON -> ...`,
/// `input #n expected a JSON object`, `input #n contained invalid data -> ...`.
pub fn decode_data_message(input: &[u8], n: u64) -> Result<Publish, ZeekError> {
    let first = input.iter().find(|b| !b.is_ascii_whitespace());
    let result = serde_json::from_slice::<DataMessage>(input);
    match result {
        Ok(DataMessage(p)) => Ok(p),
        Err(e) if e.is_syntax() || e.is_eof() => Err(ZeekError::deserialization(format!(
            "input #{n} contained malformed JSON -> {e}"
        ))),
        Err(_) if first != Some(&b'{') => Err(ZeekError::deserialization(format!(
            "input #{n} expected a JSON object"
        ))),
        Err(e) => Err(ZeekError::deserialization(format!(
            "input #{n} contained invalid data -> {e}"
        ))),
    }
}

/// What a client of the API receives.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Ack { endpoint: String, version: String },
    Data(Publish),
    Error { code: String, context: String },
}

/// [`decode_server_message`] of text already known to be UTF-8 (a WebSocket text frame), which
/// spares the second check of every string.
pub fn decode_server_text(input: &str) -> Result<ServerMessage, DecodeError> {
    if let Ok(DataMessage(p)) = serde_json::from_str::<DataMessage>(input) {
        return Ok(ServerMessage::Data(p));
    }
    decode_server_message(input.as_bytes())
}

/// Decodes a message sent by a server (for clients of the API and tests). Data messages,
/// by far the most frequent, are read in one pass straight into [`Data`].
pub fn decode_server_message(input: &[u8]) -> Result<ServerMessage, DecodeError> {
    if let Ok(DataMessage(p)) = serde_json::from_slice::<DataMessage>(input) {
        return Ok(ServerMessage::Data(p));
    }
    let value: serde_json::Value = serde_json::from_slice(input)?;
    let text = |key: &str| -> Result<String, DecodeError> {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| DecodeError::Invalid(format!("missing string member `{key}`")))
    };
    match value.get("type").and_then(|t| t.as_str()) {
        Some("ack") => Ok(ServerMessage::Ack {
            endpoint: text("endpoint")?,
            version: text("version")?,
        }),
        Some("error") => Ok(ServerMessage::Error {
            code: text("code")?,
            context: text("context").or_else(|_| text("message"))?,
        }),
        Some("data-message") => {
            let DataMessage(p) = serde_json::from_slice(input)?;
            Ok(ServerMessage::Data(p))
        }
        _ => Err(DecodeError::Invalid("unknown message type".into())),
    }
}

struct DataMessage(Publish);

impl<'de> de::Deserialize<'de> for DataMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DataMessage, D::Error> {
        d.deserialize_map(DataMessageVisitor)
    }
}

struct DataMessageVisitor;

impl<'de> Visitor<'de> for DataMessageVisitor {
    type Value = DataMessage;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a data-message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataMessage, A::Error> {
        let mut slot = TypedSlot::default();
        let mut topic: Option<String> = None;
        let mut seen_type = false;
        while let Some(key) = map.next_key::<Cow<str>>()? {
            match key.as_ref() {
                "type" => {
                    let t: Cow<str> = map.next_value()?;
                    if t != "data-message" {
                        return Err(de::Error::custom(format!("unexpected message type `{t}`")));
                    }
                    seen_type = true;
                }
                "topic" => {
                    if topic.is_some() {
                        return Err(de::Error::duplicate_field("topic"));
                    }
                    topic = Some(map.next_value()?);
                }
                "@data-type" => slot.on_type(&mut map)?,
                "data" => slot.on_data(&mut map)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_type {
            return Err(de::Error::missing_field("type"));
        }
        let topic = topic.ok_or_else(|| de::Error::missing_field("topic"))?;
        Ok(DataMessage(Publish {
            topic,
            data: slot.finish()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zu06_server_messages_decode_the_same_from_text_and_bytes() {
        let ev =
            crate::zeek::Event::new("Test::e", vec![Data::Count(1), Data::String("é\"x".into())]);
        let msgs = [
            data_message("zeek/x", &ev.to_data()).unwrap(),
            ack(
                "d955d990-ad8a-5ed4-8bc5-bee252d4a2e6-websocket-0",
                "8.0.0-dev.684",
            ),
            error(
                ErrorCode::DeserializationFailed,
                "failed to create Zeek event",
            ),
        ];
        for m in &msgs {
            assert_eq!(
                decode_server_text(m).unwrap(),
                decode_server_message(m.as_bytes()).unwrap(),
                "{m}"
            );
        }
        assert_eq!(
            decode_server_text(&msgs[0]).unwrap(),
            ServerMessage::Data(Publish {
                topic: "zeek/x".into(),
                data: ev.to_data()
            })
        );
        assert!(decode_server_text("{").is_err());
        assert!(decode_server_text(r#"{"type":"other"}"#).is_err());
    }

    #[test]
    fn zb37_handshake() {
        assert_eq!(decode_handshake(br#"["/test"]"#).unwrap(), ["/test"]);
        assert_eq!(decode_handshake(b"[]").unwrap(), Vec::<String>::new());
        assert_eq!(decode_handshake(br#"["", ""]"#).unwrap(), ["", ""]);
        let e = decode_handshake(br#"{"a":1}"#).unwrap_err();
        assert_eq!(
            (e.code, e.context.as_str()),
            (
                ErrorCode::DeserializationFailed,
                "subscriptions not an array"
            )
        );
        let e = decode_handshake(br#"[1, "/x"]"#).unwrap_err();
        assert_eq!(e.context, "individual subscription not a string");
        assert_eq!(
            handshake_error(&e),
            r#"{"type":"error","code":"deserialization_failed","context":"individual subscription not a string","message":"individual subscription not a string"}"#
        );
    }

    #[test]
    fn zb41_error_contexts() {
        let e = decode_data_message(b"How is it going?", 1).unwrap_err();
        assert!(
            e.context.starts_with("input #1 contained malformed JSON"),
            "{}",
            e.context
        );
        let e = decode_data_message(b"[1,2]", 2).unwrap_err();
        assert_eq!(e.context, "input #2 expected a JSON object");
        let e = decode_data_message(
            br#"{"topic":"/test","@data-type":"phone","data":"555-0123"}"#,
            3,
        )
        .unwrap_err();
        assert!(
            e.context.starts_with("input #3 contained invalid data"),
            "{}",
            e.context
        );
        let e = decode_data_message(
            br#"{"type":"data-message","@data-type":"count","data":1}"#,
            4,
        )
        .unwrap_err();
        assert!(e.context.contains("topic"), "{}", e.context);
    }

    #[test]
    fn zb38_data_message_any_key_order() {
        let p = decode_data_message(
            br#"{"data":1,"topic":"/a","@data-type":"count","type":"data-message"}"#,
            1,
        )
        .unwrap();
        assert_eq!(
            p,
            Publish {
                topic: "/a".into(),
                data: Data::Count(1)
            }
        );
        assert_eq!(
            data_message("/foo/bar", &Data::Count(1)).unwrap(),
            r#"{"type":"data-message","topic":"/foo/bar","@data-type":"count","data":1}"#
        );
    }
}
