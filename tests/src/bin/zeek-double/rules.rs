//! Zeek's rules for what a WebSocket client sends (`WebSocket.cc`: `Process(WebSocketOpen)`,
//! `HandleSubscriptions`, `HandleEvent`), with its exact error texts.

use broker_wasm::{Data, Event};
use serde_json::{json, Value};

use crate::decl::Decls;

pub const PATH: &str = "/v1/messages/json";
pub const BAD_URI: &str = "Invalid URI - use /v1/messages/json";
pub const BAD_APP: &str = "Invalid X-Application-Name";
const DECODE_FAILED: &str = "failed to decode JSON object";
const NO_TOPIC: &str = "no topic in top-level JSON object";
const NO_EVENT: &str = "failed to create Zeek event";
/// Broker's `topic::reserved`: a topic that is this string counts as no topic.
const RESERVED_TOPIC: &str = "<$>";
/// `{"type":"error","code":...,"context":...}`, in Zeek's key order.
pub fn error_text(code: &str, context: &str) -> String {
    let q = |s: &str| Value::from(s).to_string();
    format!(
        r#"{{"type":"error","code":{},"context":{}}}"#,
        q(code),
        q(context)
    )
}

pub fn error_value(code: &str, context: &str) -> Value {
    json!({"type": "error", "code": code, "context": context})
}

/// Zeek's check of `X-Application-Name`: ASCII letters, digits and `-/_.=:*@`.
pub fn good_app_name(name: &str) -> bool {
    name.bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/_-.=:*@".contains(&c))
}

/// The handshake: a JSON array of strings (Zeek's contexts otherwise).
pub fn subscriptions(text: &str) -> Result<Vec<String>, &'static str> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return Err("subscriptions not an array");
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err("individual subscription not a string"),
        })
        .collect()
}

/// Checks a data message the way Zeek's `HandleEvent` does: Broker decodes the value (the
/// `type` member is not looked at), then the topic must be there, then the value must be an
/// event that is declared with matching arguments. Ok: (topic, event name, parsed message).
pub fn check_event(decls: &Decls, text: &str) -> Result<(String, String, Value), &'static str> {
    let message: Value = serde_json::from_str(text).map_err(|_| DECODE_FAILED)?;
    if !message.is_object() {
        return Err(DECODE_FAILED);
    }
    let data: Data = serde::Deserialize::deserialize(&message).map_err(|_| DECODE_FAILED)?;
    let topic = match message.get("topic") {
        Some(Value::String(t)) if t != RESERVED_TOPIC => t.clone(),
        _ => return Err(NO_TOPIC),
    };
    let event = Event::from_data(&data).map_err(|_| NO_EVENT)?;
    if !decls.accepts(&event.name, &event.args) {
        return Err(NO_EVENT);
    }
    Ok((topic, event.name, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_and_errors() {
        assert!(good_app_name("broker-gateway/1.0@host:x=*_."));
        assert!(
            good_app_name(""),
            "Zeek checks each character; none is fine"
        );
        assert!(!good_app_name("has space"));
        assert!(!good_app_name("ünï"));
        assert_eq!(
            error_text("invalid_uri", BAD_URI),
            r#"{"type":"error","code":"invalid_uri","context":"Invalid URI - use /v1/messages/json"}"#
        );
        assert_eq!(
            subscriptions(r#"["a",1]"#),
            Err("individual subscription not a string")
        );
        assert_eq!(subscriptions("[\"a\""), Err("subscriptions not an array"));
        assert_eq!(subscriptions("[]"), Ok(vec![]));
    }
}
