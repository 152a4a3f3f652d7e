//! The stdin commands (JSON lines) and what they answer on stdout.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::{BurstPlan, Hub, Prepared};

/// How long a client told to close (`close`) may take to answer before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Reads stdin lines on a thread; the channel ends at EOF (or a read error).
pub fn stdin_lines() -> UnboundedReceiver<String> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the commands until stdin ends.
pub async fn run(hub: Arc<Hub>, mut lines: UnboundedReceiver<String>) {
    while let Some(line) = lines.recv().await {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let result = serde_json::from_str::<Value>(line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|cmd| command(&hub, &cmd));
        if let Err(text) = result {
            hub.out
                .emit(json!({"event": "error", "text": text, "line": line}));
        }
    }
}

fn field<'a>(cmd: &'a Value, key: &str) -> Result<&'a Value, String> {
    cmd.get(key).ok_or_else(|| format!("missing `{key}`"))
}

fn str_field<'a>(cmd: &'a Value, key: &str) -> Result<&'a str, String> {
    field(cmd, key)?
        .as_str()
        .ok_or_else(|| format!("`{key}` must be a string"))
}

fn u64_field(cmd: &Value, key: &str, default: Option<u64>) -> Result<u64, String> {
    match (cmd.get(key), default) {
        (None | Some(Value::Null), Some(d)) => Ok(d),
        (Some(v), _) => v
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a non-negative integer")),
        (None, None) => Err(format!("missing `{key}`")),
    }
}

/// The optional `client` of a command.
fn client_field(cmd: &Value) -> Result<Option<u64>, String> {
    match cmd.get("client") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| "`client` must be a client number".to_owned()),
    }
}

fn command(hub: &Arc<Hub>, cmd: &Value) -> Result<(), String> {
    let name = str_field(cmd, "cmd")?;
    match name {
        "publish" => {
            let m = prepare(field(cmd, "message")?)?;
            let k = hub.deliver(&m.topic, &m.text, None);
            hub.out.emit(json!({"event": "published", "delivered": k}));
        }
        "raw" => {
            let text = Utf8Bytes::from(str_field(cmd, "text")?.to_owned());
            let k = hub.send_raw(&text, client_field(cmd)?);
            hub.out.emit(json!({"event": "sent", "delivered": k}));
        }
        "on_connect" => {
            let messages = field(cmd, "messages")?
                .as_array()
                .ok_or("`messages` must be an array")?
                .iter()
                .map(prepare)
                .collect::<Result<Vec<_>, _>>()?;
            let k = messages.len();
            hub.set_on_connect(messages);
            hub.out
                .emit(json!({"event": "on_connect_set", "messages": k}));
        }
        "kick" => {
            let k = hub.kick(client_field(cmd)?);
            hub.out.emit(json!({"event": "kicked", "clients": k}));
        }
        "close" => {
            let code = u16::try_from(u64_field(cmd, "code", Some(1001))?)
                .map_err(|_| "`code` must fit 16 bits")?;
            let reason = match cmd.get("reason") {
                None | Some(Value::Null) => "Terminating",
                Some(_) => str_field(cmd, "reason")?,
            };
            let closing = hub.close(code, reason, client_field(cmd)?);
            hub.out
                .emit(json!({"event": "closing", "clients": closing.len()}));
            let hub = hub.clone();
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_GRACE).await;
                for n in closing {
                    hub.kick(Some(n));
                }
            });
        }
        "burst" => {
            let topic = str_field(cmd, "topic")?;
            let name = str_field(cmd, "name")?;
            let count = u64_field(cmd, "count", None)?;
            let rate = u64_field(cmd, "rate", Some(0))?;
            let mut plan = burst_plan(topic, name, count, rate);
            plan.precise = cmd["precise"].as_bool().unwrap_or(false);
            let plan = Arc::new(plan);
            let start = Instant::now();
            let done = hub.burst(topic, &plan);
            let hub = hub.clone();
            tokio::spawn(async move {
                let clients = done.len();
                let mut frames = 0u64;
                let mut least = if clients == 0 { 0 } else { u64::MAX };
                for rx in done {
                    let sent = rx.await.unwrap_or(0);
                    frames += sent;
                    least = least.min(sent);
                }
                hub.out.emit(json!({
                    "event": "burst_done",
                    "sent": least,
                    "clients": clients,
                    "frames": frames,
                    "seconds": start.elapsed().as_secs_f64(),
                }));
            });
        }
        "clients" => {
            hub.out
                .emit(json!({"event": "clients", "clients": hub.list()}));
        }
        "stats" => hub.out.emit(hub.stats()),
        other => return Err(format!("unknown command `{other}`")),
    }
    Ok(())
}

/// A message to send: a JSON object (written in Broker's key order) or a string holding the
/// exact text; either way it needs a string `topic`.
fn prepare(message: &Value) -> Result<Prepared, String> {
    let (text, parsed) = match message {
        Value::String(text) => {
            let parsed: Value =
                serde_json::from_str(text).map_err(|e| format!("message text is not JSON: {e}"))?;
            (text.clone(), parsed)
        }
        Value::Object(_) => (broker_json(message), message.clone()),
        _ => return Err("a message is a JSON object or its text".into()),
    };
    let topic = parsed
        .get("topic")
        .and_then(Value::as_str)
        .ok_or("the message has no string `topic`")?
        .to_owned();
    Ok(Prepared {
        topic,
        text: text.into(),
    })
}

/// The position of a member in Broker's JSON objects: data messages (`type`, `topic`,
/// `@data-type`, `data`), errors (`type`, `code`, `context`), acks (`type`, `endpoint`,
/// `version`), table entries (`key`, `value`); other members follow, sorted.
fn rank(key: &str) -> usize {
    const ORDER: [&str; 10] = [
        "type",
        "topic",
        "code",
        "context",
        "endpoint",
        "version",
        "@data-type",
        "data",
        "key",
        "value",
    ];
    ORDER.iter().position(|k| *k == key).unwrap_or(ORDER.len())
}

/// Compact JSON of `v` as Broker writes it: members in Broker's order, reals with six
/// decimals (`%f`).
pub fn broker_json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut members: Vec<_> = m.iter().collect();
            members.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Number(n) if n.is_f64() => {
            out.push_str(&format!("{:.6}", n.as_f64().unwrap_or_default()));
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The event `name(count i, time now)` on `topic`, cut around the count and the timestamp.
pub fn burst_plan(topic: &str, name: &str, count: u64, rate: u64) -> BurstPlan {
    let q = |s: &str| Value::from(s).to_string();
    BurstPlan {
        head: format!(
            concat!(
                r#"{{"type":"data-message","topic":{},"@data-type":"vector","data":["#,
                r#"{{"@data-type":"count","data":1}},{{"@data-type":"count","data":1}},"#,
                r#"{{"@data-type":"vector","data":[{{"@data-type":"string","data":{}}},"#,
                r#"{{"@data-type":"vector","data":[{{"@data-type":"count","data":"#
            ),
            q(topic),
            q(name)
        ),
        mid: r#"},{"@data-type":"timestamp","data":""#,
        tail: r#""}]}]}]}"#,
        count,
        rate,
        precise: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_wasm::{Data, Event};

    #[test]
    fn burst_plan_matches_brokers_encoding() {
        let plan = burst_plan("/t", "tick", 1, 0);
        let text = format!(
            "{}7{}2025-01-02T03:04:05.006{}",
            plan.head, plan.mid, plan.tail
        );
        let ts = broker_wasm::timefmt::parse_timestamp("2025-01-02T03:04:05.006").unwrap();
        let ev = Event::new("tick", vec![Data::Count(7), Data::Timestamp(ts)]);
        assert_eq!(
            text,
            broker_wasm::zeek_json::data_message("/t", &ev.to_data()).unwrap()
        );
    }

    #[test]
    fn broker_order() {
        let v = json!({"data": 1.5, "@data-type": "real", "topic": "/t", "type": "data-message"});
        assert_eq!(
            broker_json(&v),
            r#"{"type":"data-message","topic":"/t","@data-type":"real","data":1.500000}"#
        );
        let v = json!({"value": {"data": 1, "@data-type": "count"}, "key": {"data": "a", "@data-type": "string"}});
        assert_eq!(
            broker_json(&v),
            r#"{"key":{"@data-type":"string","data":"a"},"value":{"@data-type":"count","data":1}}"#
        );
    }
}
