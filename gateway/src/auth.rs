//! Authentication and authorisation: who a connection is (its token) and what it may do (its
//! grants).
//!
//! Without `--auth-file` and JWT keys every connection may do everything (open access, the
//! default for a gateway on 127.0.0.1). With them, a connection presents a token and gets the
//! grants of that token; one without a token gets the file's `anonymous` grants (none unless
//! the file says so). Tokens travel where browsers can put them: in the native protocol's
//! hello, or as a WebSocket subprotocol `broker-token.<TOKEN>` (the Zeek JSON API and peers);
//! native programs may also send `Authorization: Bearer <TOKEN>`.
//!
//! Two kinds of token:
//! - opaque strings listed in the auth file with their grants;
//! - JWTs (HS256 with a shared secret, or RS256/ES256 with a public key) whose claim
//!   `grants` holds the grants and whose `exp` bounds the connection's life.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use broker_wasm::dbr::DbrCode;
use broker_wasm::protocol::{ErrorInfo, Failure, NamespaceOp, Request};
use broker_wasm::ErrorCode;

use crate::config::Config;

/// The subprotocol prefix that carries a token: `broker-token.<TOKEN>`.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "broker-token.";

/// What a token allows. Topic grants are prefixes (`"zeek/"` allows `zeek/event/x`; `""`
/// allows every topic). Store and namespace grants are names: exact, a prefix ending in `*`
/// (`"sensor-*"`), or `"*"` for all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// Topic prefixes this connection may publish to.
    pub publish: Vec<String>,
    /// Topic prefixes this connection may subscribe to (a subscription must lie inside one).
    pub subscribe: Vec<String>,
    /// Stores whose clones it may attach and which it may query.
    pub store_read: Vec<String>,
    /// Stores it may modify.
    pub store_write: Vec<String>,
    /// Stores it may create as masters on the gateway.
    pub store_master: Vec<String>,
    /// Namespaces it may create.
    pub ns_create: Vec<String>,
    /// Namespaces it may put into.
    pub ns_put: Vec<String>,
    /// Namespaces it may attach, query, read, test and list keys of.
    pub ns_read: Vec<String>,
    /// Namespaces it may take values from (get, remove).
    pub ns_get: Vec<String>,
    /// Namespaces it may move values out of and into.
    pub ns_move: Vec<String>,
    /// Namespaces it may delete.
    pub ns_delete: Vec<String>,
    /// Whether it may connect as a peering gateway (`/v1/peer`).
    pub peer: bool,
    /// Whether it may make this gateway peer and unpeer (`peer`/`unpeer` requests).
    pub admin: bool,
}

fn any() -> Vec<String> {
    vec!["*".into()]
}

impl Grants {
    /// Everything: what every connection has without authentication configured.
    pub fn everything() -> Grants {
        Grants {
            publish: vec![String::new()],
            subscribe: vec![String::new()],
            store_read: any(),
            store_write: any(),
            store_master: any(),
            ns_create: any(),
            ns_put: any(),
            ns_read: any(),
            ns_get: any(),
            ns_move: any(),
            ns_delete: any(),
            peer: true,
            admin: true,
        }
    }

    /// May publish to `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| topic.starts_with(p.as_str()))
    }

    /// May subscribe to `prefix` (it lies inside a granted prefix).
    pub fn can_subscribe(&self, prefix: &str) -> bool {
        self.subscribe
            .iter()
            .any(|p| prefix.starts_with(p.as_str()))
    }
}

/// True if the name pattern `pattern` covers `name`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// True if one of `patterns` covers `name`.
pub fn allowed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| name_matches(p, name))
}

/// An authenticated connection: a name for logs and its grants.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's name (`name` in the auth file, `sub` of a JWT), or `anonymous`.
    pub name: String,
    pub grants: Grants,
    /// When the token stops being valid (a JWT's `exp`); the connection is closed then.
    pub expires: Option<SystemTime>,
}

impl Identity {
    /// How long until the token expires; `None` if it never does.
    pub fn remaining(&self) -> Option<Duration> {
        self.expires.map(|e| {
            e.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }
}

/// The text of the last error a connection gets when its token expires.
pub(crate) const EXPIRED: &str = "the token expired; closing";

/// Ends a connection when its token expires (a JWT's `exp`): queues `note` (the connection's
/// encoding of an `unauthorized` error) and cancels `stop`. Nothing for tokens that never
/// expire or when `stop` comes first.
pub(crate) fn end_at_expiry(
    who: &Identity,
    stop: &tokio_util::sync::CancellationToken,
    tx: &tokio::sync::mpsc::Sender<bytes::Bytes>,
    note: impl FnOnce() -> Option<bytes::Bytes> + Send + 'static,
) {
    let Some(left) = who.remaining() else { return };
    let (stop, tx) = (stop.clone(), tx.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(left) => {}
            _ = stop.cancelled() => return,
        }
        if let Some(b) = note() {
            let _ = tx.send(b).await;
        }
        stop.cancel();
    });
}

/// One entry of the auth file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: String,
    #[serde(default)]
    grants: Grants,
}

/// The auth file: `{"anonymous": {grants}, "tokens": [{"name", "token", "grants"}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    anonymous: Grants,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

/// Claims of a JWT this gateway accepts.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    exp: u64,
    #[serde(default)]
    grants: Grants,
}

struct Jwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// The gateway's authentication: open, or tokens from a file and/or JWT keys.
pub struct Auth {
    tokens: HashMap<String, Arc<Identity>>,
    anonymous: Arc<Identity>,
    jwt: Vec<Jwt>,
    enabled: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.enabled)
            .field("tokens", &self.tokens.len())
            .field("jwt_keys", &self.jwt.len())
            .finish()
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, AuthError> {
    std::fs::read(path)
        .map_err(|e| AuthError(format!("cannot read the {what} {}: {e}", path.display())))
}

impl Auth {
    /// Open access: every connection may do everything.
    pub fn open() -> Auth {
        Auth {
            tokens: HashMap::new(),
            anonymous: Arc::new(Identity {
                name: "anonymous".into(),
                grants: Grants::everything(),
                expires: None,
            }),
            jwt: Vec::new(),
            enabled: false,
        }
    }

    /// Loads what the configuration names (`--auth-file`, `--auth-jwt-secret-file`,
    /// `--auth-jwt-public-key`); open access when it names nothing.
    pub fn load(config: &Config) -> Result<Auth, AuthError> {
        let mut auth = Auth::open();
        if !config.auth_configured() {
            return Ok(auth);
        }
        auth.enabled = true;
        auth.anonymous = Arc::new(Identity {
            name: "anonymous".into(),
            grants: Grants::default(),
            expires: None,
        });
        if let Some(path) = &config.auth_file {
            let file: AuthFile = serde_json::from_slice(&read(path, "auth file")?)
                .map_err(|e| AuthError(format!("auth file {}: {e}", path.display())))?;
            auth.anonymous = Arc::new(Identity {
                name: "anonymous".into(),
                grants: file.anonymous,
                expires: None,
            });
            for t in file.tokens {
                if t.token.len() < 16 {
                    return Err(AuthError(format!(
                        "auth file {}: the token of {:?} is shorter than 16 characters",
                        path.display(),
                        t.name
                    )));
                }
                let id = Arc::new(Identity {
                    name: t.name,
                    grants: t.grants,
                    expires: None,
                });
                if auth.tokens.insert(t.token, id).is_some() {
                    return Err(AuthError(format!(
                        "auth file {}: a token is listed twice",
                        path.display()
                    )));
                }
            }
        }
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        if let Some(path) = &config.auth_jwt_secret_file {
            let secret = read(path, "JWT secret file")?;
            let secret = secret.trim_ascii();
            if secret.len() < 32 {
                return Err(AuthError(format!(
                    "JWT secret file {}: the secret must have at least 32 bytes",
                    path.display()
                )));
            }
            auth.jwt.push(Jwt {
                key: DecodingKey::from_secret(secret),
                validation: Validation::new(Algorithm::HS256),
            });
        }
        if let Some(path) = &config.auth_jwt_public_key {
            let pem = read(path, "JWT public key")?;
            let bad = |e: jsonwebtoken::errors::Error| {
                AuthError(format!("JWT public key {}: {e}", path.display()))
            };
            // An RSA or an EC (P-256) key in PEM.
            let (key, alg) = match DecodingKey::from_rsa_pem(&pem) {
                Ok(k) => (k, Algorithm::RS256),
                Err(_) => (
                    DecodingKey::from_ec_pem(&pem).map_err(bad)?,
                    Algorithm::ES256,
                ),
            };
            auth.jwt.push(Jwt {
                key,
                validation: Validation::new(alg),
            });
        }
        for j in &mut auth.jwt {
            j.validation.set_required_spec_claims(&["exp"]);
            j.validation.validate_aud = false;
            j.validation.leeway = 30;
            j.validation.validate_nbf = true;
        }
        Ok(auth)
    }

    /// Who presents `token` (`None`: no token). Fails for an unknown, malformed or expired
    /// token; without authentication configured every token is accepted and ignored.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Arc<Identity>, AuthError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(self.anonymous.clone());
        };
        if !self.enabled {
            return Ok(self.anonymous.clone());
        }
        if let Some(id) = self.tokens.get(token) {
            return Ok(id.clone());
        }
        if self.jwt.is_empty() || token.split('.').count() != 3 {
            return Err(AuthError("unknown token".into()));
        }
        let mut last = None;
        for j in &self.jwt {
            match jsonwebtoken::decode::<Claims>(token, &j.key, &j.validation) {
                Ok(data) => {
                    let c = data.claims;
                    return Ok(Arc::new(Identity {
                        name: c.sub.unwrap_or_else(|| "jwt".into()),
                        grants: c.grants,
                        expires: Some(UNIX_EPOCH + Duration::from_secs(c.exp)),
                    }));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(AuthError(match last {
            Some(e) => format!("invalid token: {e}"),
            None => "invalid token".into(),
        }))
    }
}

/// Why `request` is not allowed to a connection with `grants`; `None` if it is. Store and
/// endpoint requests are refused with Broker's code `unauthorized`, namespace requests with
/// `DBR_ERR_NOAUTH` (DB-32).
pub fn check_request(grants: &Grants, request: &Request) -> Option<Failure> {
    let broker = |what: String| {
        Some(Failure::Broker(ErrorInfo {
            code: ErrorCode::Unauthorized,
            context: format!("not allowed: {what}"),
        }))
    };
    let ns = |what: &str, name: &str| {
        Some(Failure::Namespace {
            code: DbrCode::NoAuth as i32,
            context: format!("not allowed: {what} namespace {name:?}"),
        })
    };
    match request {
        Request::Peer { .. } | Request::Unpeer { .. } if !grants.admin => {
            broker("peering requests (grant `admin`)".into())
        }
        Request::ZeekUplink(_) | Request::ZeekUnlink { .. } if !grants.admin => {
            broker("changing zeek uplinks (grant `admin`)".into())
        }
        Request::Peer { .. }
        | Request::Unpeer { .. }
        | Request::ZeekUplink(_)
        | Request::ZeekUnlink { .. } => None,
        Request::Peers | Request::PeerSubscriptions | Request::Stores | Request::ZeekUplinks => {
            None
        }
        Request::AttachMaster { store, .. } if !allowed(&grants.store_master, store) => broker(
            format!("creating master store {store:?} (grant `store_master`)"),
        ),
        Request::AttachClone { store }
        | Request::AttachCloneSince { store, .. }
        | Request::DetachClone { store }
            if !allowed(&grants.store_read, store) =>
        {
            broker(format!("reading store {store:?} (grant `store_read`)"))
        }
        Request::Store { store, op } => {
            let read = !broker_wasm::store::is_mutation(op);
            if read && !allowed(&grants.store_read, store) {
                broker(format!("reading store {store:?} (grant `store_read`)"))
            } else if !read && !allowed(&grants.store_write, store) {
                broker(format!("writing store {store:?} (grant `store_write`)"))
            } else {
                None
            }
        }
        Request::AttachMaster { .. }
        | Request::AttachClone { .. }
        | Request::AttachCloneSince { .. }
        | Request::DetachClone { .. } => None,
        Request::Namespace(op) => match op {
            NamespaceOp::Create { name, .. } if !allowed(&grants.ns_create, name) => {
                ns("creating", name)
            }
            NamespaceOp::Delete { name } if !allowed(&grants.ns_delete, name) => {
                ns("deleting", name)
            }
            NamespaceOp::Attach { name } | NamespaceOp::Query { name }
                if !allowed(&grants.ns_read, name) =>
            {
                ns("reading", name)
            }
            NamespaceOp::Read { ns: name, .. }
            | NamespaceOp::TestKey { ns: name, .. }
            | NamespaceOp::Directory { ns: name, .. }
            | NamespaceOp::Iterate { ns: name, .. }
                if !allowed(&grants.ns_read, name) =>
            {
                ns("reading", name)
            }
            NamespaceOp::Put { ns: name, .. } | NamespaceOp::Restore { ns: name, .. }
                if !allowed(&grants.ns_put, name) =>
            {
                ns("putting into", name)
            }
            NamespaceOp::Get { ns: name, .. } | NamespaceOp::Remove { ns: name, .. }
                if !allowed(&grants.ns_get, name) =>
            {
                ns("taking from", name)
            }
            NamespaceOp::Move { from, to, .. } => {
                if !allowed(&grants.ns_move, from) {
                    ns("moving out of", from)
                } else if !allowed(&grants.ns_move, to) {
                    ns("moving into", to)
                } else {
                    None
                }
            }
            _ => None,
        },
    }
}

/// True if a connection with `grants` may see the namespace `name` in a listing.
pub fn may_list_namespace(grants: &Grants, name: &str) -> bool {
    [
        &grants.ns_read,
        &grants.ns_put,
        &grants.ns_get,
        &grants.ns_move,
        &grants.ns_create,
        &grants.ns_delete,
    ]
    .iter()
    .any(|p| allowed(p, name))
}

/// The token in a WebSocket upgrade request: a `broker-token.<TOKEN>` subprotocol, or an
/// `Authorization: Bearer <TOKEN>` header. Returns the token and, for the subprotocol form,
/// the protocol to echo back (browsers fail a handshake whose offered protocols all go
/// unanswered).
pub fn token_of_request(headers: &axum::http::HeaderMap) -> (Option<String>, Option<String>) {
    for v in headers.get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(v) = v.to_str() else { continue };
        for p in v.split(',').map(str::trim) {
            if let Some(t) = p.strip_prefix(TOKEN_SUBPROTOCOL_PREFIX) {
                return (Some(t.to_owned()), Some(p.to_owned()));
            }
        }
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    (bearer, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        assert!(name_matches("*", "anything"));
        assert!(name_matches("sensor-*", "sensor-1"));
        assert!(!name_matches("sensor-*", "sensor"));
        assert!(name_matches("jobs", "jobs"));
        assert!(!name_matches("jobs", "jobs2"));
    }

    #[test]
    fn topic_grants_are_prefixes() {
        let g = Grants {
            publish: vec!["demo/".into()],
            subscribe: vec!["demo/".into()],
            ..Grants::default()
        };
        assert!(g.can_publish("demo/x"));
        assert!(!g.can_publish("demox"));
        assert!(g.can_subscribe("demo/a/"));
        // A wider subscription would reach topics outside the grant.
        assert!(!g.can_subscribe("demo"));
        assert!(!g.can_subscribe(""));
        assert!(Grants::everything().can_subscribe(""));
    }
}
