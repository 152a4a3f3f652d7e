//! Namespaces kept in Redis (RB-10..15), shared by every gateway started with the same
//! `--ns-backend`: one script per operation on the keys of one namespace ([`keys`],
//! [`scripts`]), attachments counted per gateway with leases (RB-14), blocked gets served by
//! waiters inside each gateway that a put's wake-up or a periodic re-poll retries (RB-12).
//!
//! Layer: beside the built-in namespaces (floor 1); the `redis` crate does the protocol,
//! connection management and cluster routing.

pub(crate) mod backend;
pub(crate) mod keys;
pub(crate) mod scripts;
pub(crate) mod spaces;

use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::{Failure, NamespaceInfo};
use broker_wasm::Data;
use redis::Value;

use super::failure;
use keys::Keys;

/// How long a gateway's attachments count without renewal (RB-14); renewed every third.
pub(crate) const LEASE_MS: u64 = 30_000;

/// Where the namespaces live: one server or a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

/// The parsed `--ns-backend` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `redis://` or `rediss://`.
    Single(String),
    /// `redis+cluster://H1:P1,H2:P2,...` (or `rediss+cluster://`): one URL per seed node.
    Cluster(Vec<String>),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL (redis://HOST:PORT)"))?;
        match scheme {
            "redis" | "rediss" => Ok(Target::Single(url.to_owned())),
            "redis+cluster" | "rediss+cluster" => {
                let base = scheme.trim_end_matches("+cluster");
                let (hosts, tail) = match rest.split_once('/') {
                    Some((h, t)) => (h, format!("/{t}")),
                    None => (rest, String::new()),
                };
                let (auth, hosts) = match hosts.rsplit_once('@') {
                    Some((a, h)) => (format!("{a}@"), h),
                    None => (String::new(), hosts),
                };
                let nodes: Vec<String> = hosts
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{base}://{auth}{h}{tail}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(format!("{url:?} names no cluster node"));
                }
                Ok(Target::Cluster(nodes))
            }
            other => Err(format!(
                "unknown scheme {other:?}: use redis://, rediss:// or redis+cluster://"
            )),
        }
    }
}

/// A Redis failure as the Data Broker reports it (RB-15): the connection is
/// `DBR_ERR_NOCONNECT`, anything else `DBR_ERR_BE_GENERAL`, with the cause.
pub(crate) fn redis_failure(e: &redis::RedisError) -> Failure {
    let code = if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        DbrCode::NoConnect
    } else {
        DbrCode::BeGeneral
    };
    failure(code, format!("redis: {e}"))
}

/// The scripts, loaded once per gateway (`EVALSHA`, falling back to `EVAL` after a flush).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub create: redis::Script,
    pub attach: redis::Script,
    pub query: redis::Script,
    pub detach: redis::Script,
    pub renew: redis::Script,
    pub put: redis::Script,
    pub take: redis::Script,
    pub remove: redis::Script,
    pub names: redis::Script,
    pub move_out: redis::Script,
    pub move_in: redis::Script,
    pub move_done: redis::Script,
}

impl Default for Scripts {
    fn default() -> Scripts {
        let s = |body| redis::Script::new(&scripts::text(body));
        Scripts {
            create: s(scripts::CREATE),
            attach: s(scripts::ATTACH),
            query: s(scripts::QUERY),
            detach: s(scripts::DETACH),
            renew: s(scripts::RENEW),
            put: s(scripts::PUT),
            take: s(scripts::TAKE),
            remove: s(scripts::REMOVE),
            names: s(scripts::NAMES),
            move_out: s(scripts::MOVE_OUT),
            move_in: s(scripts::MOVE_IN),
            move_done: s(scripts::MOVE_DONE),
        }
    }
}

/// Runs `script` with `keys` and `args` on `conn`.
pub(crate) async fn invoke(
    conn: &Conn,
    script: &redis::Script,
    keys: &[String],
    args: &[&[u8]],
) -> Result<Value, Failure> {
    let mut inv = script.prepare_invoke();
    for k in keys {
        inv.key(k);
    }
    for a in args {
        inv.arg(*a);
    }
    let r = match conn.clone() {
        Conn::Single(mut c) => inv.invoke_async(&mut c).await,
        Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
    };
    r.map_err(|e| redis_failure(&e))
}

/// The status word and the rest of a script's answer (`{'OK', ...}`).
pub(crate) fn answer(v: Value) -> Result<(String, Vec<Value>), Failure> {
    let Value::Array(mut items) = v else {
        return Err(failure(
            DbrCode::BeGeneral,
            format!("redis: unexpected answer {v:?}"),
        ));
    };
    if items.is_empty() {
        return Err(failure(DbrCode::BeGeneral, "redis: empty answer"));
    }
    let head = items.remove(0);
    let word = match head {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        other => {
            return Err(failure(
                DbrCode::BeGeneral,
                format!("redis: unexpected status {other:?}"),
            ))
        }
    };
    Ok((word, items))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn int_of(v: &Value) -> u64 {
    match v {
        Value::Int(i) => (*i).max(0) as u64,
        other => text_of(other).parse().unwrap_or(0),
    }
}

/// Groups are stored joined by the unit separator.
pub(crate) const GROUP_SEP: char = '\u{1f}';

/// A namespace's info from the `{'OK', level, groups, marked, live, names, values}` answer.
pub(crate) fn info(name: &str, rest: &[Value]) -> NamespaceInfo {
    let get = |i: usize| rest.get(i).cloned().unwrap_or(Value::Nil);
    let groups = text_of(&get(1));
    NamespaceInfo {
        name: name.to_owned(),
        level: int_of(&get(0)) as u8,
        groups: if groups.is_empty() {
            Vec::new()
        } else {
            groups.split(GROUP_SEP).map(str::to_owned).collect()
        },
        marked_for_delete: text_of(&get(2)) == "1",
        refcount: int_of(&get(3)),
        tuple_names: int_of(&get(4)),
        total_values: int_of(&get(5)),
    }
}

/// A value as stored: `"<size>:<binary encoding>"` (see [`scripts`]).
pub(crate) fn encode_value(value: &Data) -> Result<Vec<u8>, Failure> {
    let size = broker_wasm::dbr::value_size(value);
    let body = broker_wasm::binary::to_vec(value)
        .map_err(|e| failure(DbrCode::Invalid, format!("cannot encode the value: {e}")))?;
    let mut out = format!("{size}:").into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// The value of a stored `"<size>:<encoding>"`.
pub(crate) fn decode_value(stored: &[u8]) -> Result<Data, Failure> {
    let bad = || failure(DbrCode::BeGeneral, "redis: a stored value is not ours");
    let colon = stored.iter().position(|b| *b == b':').ok_or_else(bad)?;
    broker_wasm::binary::from_slice(&stored[colon + 1..]).map_err(|_| bad())
}

/// The keys a script on namespace `ns` names first: meta, att, names, tuple prefix.
pub(crate) fn space_keys(k: &Keys) -> Vec<String> {
    vec![k.meta(), k.att(), k.names(), k.tuple_prefix()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rb10_backend_urls() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379").unwrap(),
            Target::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            Target::parse("redis+cluster://a:1,b:2/?protocol=resp3").unwrap(),
            Target::Cluster(vec![
                "redis://a:1/?protocol=resp3".into(),
                "redis://b:2/?protocol=resp3".into()
            ])
        );
        assert_eq!(
            Target::parse("rediss+cluster://:pw@a:1,b:2").unwrap(),
            Target::Cluster(vec!["rediss://:pw@a:1".into(), "rediss://:pw@b:2".into()])
        );
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("redis+cluster://").is_err());
        assert!(Target::parse("localhost:6379").is_err());
    }

    #[test]
    fn rb11_values_keep_their_size_for_the_buffer_check() {
        let v = Data::String(b"hello".to_vec());
        let stored = encode_value(&v).unwrap();
        assert!(stored.starts_with(b"5:"));
        assert_eq!(decode_value(&stored).unwrap(), v);
        assert!(decode_value(b"no colon").is_err());
    }
}
