//! Uplinks: this endpoint as a *client* of Zeek nodes' WebSocket API (ZU-01..20). A Zeek node
//! never connects out (ZU-02), so the gateway dials it, subscribes to the configured topic
//! prefixes, delivers what Zeek sends like a local publish, sends events under the publish
//! prefixes up, and mirrors Zeek's `&publish_on_change` tables as read-only `zeek:` stores.
//!
//! [`route`] is what routing consults (low floor); [`driver`] runs the connections.

pub(crate) mod driver;
pub(crate) mod registry;
pub(crate) mod route;
pub mod table;

use std::sync::Arc;

use broker_wasm::protocol::UplinkSpec;
use broker_wasm::topic::validate_user_topic;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::http;

use crate::state::Shared;

/// The path of Zeek's WebSocket API (ZU-03).
pub const ZEEK_PATH: &str = "/v1/messages/json";

/// True if `name` is a valid `X-Application-Name` (ZU-09).
pub fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-/_.=:*@".contains(&c))
}

/// An uplink URL in canonical form: `ws://` or `wss://` with a host, Zeek's path added when
/// there is none.
pub fn normalize_url(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("ws" | "wss") => {}
        _ => return Err(format!("{url:?}: the URL must start with ws:// or wss://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?}: the URL has no host"));
    }
    if uri.path().is_empty() || uri.path() == "/" {
        return Ok(format!("{}{ZEEK_PATH}", url.trim_end_matches('/')));
    }
    Ok(url.to_owned())
}

/// Checks a spec and puts its URL in canonical form ([`normalize_url`]).
pub fn normalize(mut spec: UplinkSpec) -> Result<UplinkSpec, String> {
    spec.url = normalize_url(&spec.url)?;
    if spec.subscribe.is_empty() && spec.publish.is_empty() {
        return Err("an uplink needs topics to subscribe to or to publish under".into());
    }
    for t in spec.subscribe.iter().chain(&spec.publish) {
        validate_user_topic(t).map_err(|e| format!("topic {t:?}: {e}"))?;
    }
    for (name, value) in &spec.headers {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not an HTTP header name"))?;
        http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not valid in HTTP"))?;
    }
    if let Some(a) = &spec.app_name {
        if !valid_app_name(a) {
            return Err(format!(
                "application name {a:?} must match [-/_.=:*@a-zA-Z0-9]+ (ZU-09)"
            ));
        }
    }
    Ok(spec)
}

/// Parses `--zeek-header` values, `Name: value`.
pub fn parse_header(h: &str) -> Result<(String, String), String> {
    let (n, v) = h
        .split_once(':')
        .ok_or_else(|| format!("--zeek-header {h:?} is not 'Name: value'"))?;
    Ok((n.trim().to_owned(), v.trim().to_owned()))
}

/// The uplinks the configuration names (`--zeek` and the options that go with it).
pub fn configured(config: &crate::config::Config) -> Result<Vec<UplinkSpec>, String> {
    let headers = config
        .zeek_headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<Vec<_>, _>>()?;
    config
        .zeek
        .iter()
        .map(|url| {
            normalize(UplinkSpec {
                url: url.clone(),
                subscribe: config.zeek_subscribe.clone(),
                publish: config.zeek_publish.clone(),
                headers: headers.clone(),
                app_name: Some(config.zeek_app_name.clone()).filter(|a| !a.is_empty()),
            })
        })
        .collect()
}

/// Adds the uplink `spec` (or changes the one to the same URL) and starts connecting; the
/// spec is checked first. A changed spec reconnects without losing messages (ZU-05).
pub(crate) fn start(shared: &Arc<Shared>, spec: UplinkSpec) -> Result<(), String> {
    let spec = normalize(spec)?;
    if shared.shutdown.is_cancelled() {
        return Err("the endpoint is shutting down".into());
    }
    let tls = if spec.url.starts_with("wss:") {
        Some(match &shared.config.zeek_ca {
            Some(ca) => broker_client::tls::client_config(ca)?,
            None => broker_client::tls::system_roots()?,
        })
    } else {
        None
    };
    let mut map = shared.uplinks.lock();
    if let Some(e) = map.get(&spec.url) {
        if !e.cancel.is_cancelled() {
            e.status.set_spec(spec.clone());
            shared.up.upsert(&e.status, spec.publish.clone());
            e.spec.send_replace(spec);
            drop(map);
            shared.filter_changed();
            return Ok(());
        }
    }
    let status = route::UplinkStatus::new(spec.clone());
    shared.up.upsert(&status, spec.publish.clone());
    let cancel = shared.shutdown.child_token();
    let (spec_tx, spec_rx) = watch::channel(spec.clone());
    map.insert(
        spec.url.clone(),
        registry::Entry {
            status: status.clone(),
            cancel: cancel.clone(),
            spec: spec_tx,
        },
    );
    drop(map);
    shared.filter_changed();
    tracing::info!(url = spec.url, "zeek uplink added");
    shared
        .tasks
        .spawn(driver::run(shared.clone(), status, spec_rx, cancel, tls));
    Ok(())
}

/// Ends the uplink to `url`; false if there is none.
pub(crate) fn stop(shared: &Shared, url: &str) -> bool {
    let url = normalize_url(url).unwrap_or_else(|_| url.to_owned());
    let Some(e) = shared.uplinks.lock().remove(&url) else {
        return false;
    };
    e.cancel.cancel();
    shared.up.remove(&url);
    shared.filter_changed();
    shared.peering.set_local_uplinks(shared.up.adverts());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> UplinkSpec {
        UplinkSpec {
            url: url.into(),
            subscribe: vec!["zeek/".into()],
            publish: vec![],
            headers: vec![],
            app_name: None,
        }
    }

    #[test]
    fn zu03_urls_get_zeeks_path_and_bad_specs_are_refused() {
        assert_eq!(
            normalize(spec("ws://127.0.0.1:27759")).unwrap().url,
            "ws://127.0.0.1:27759/v1/messages/json"
        );
        assert_eq!(
            normalize(spec("wss://zeek.example/")).unwrap().url,
            "wss://zeek.example/v1/messages/json"
        );
        assert_eq!(
            normalize(spec("ws://h:1/proxy/zeek")).unwrap().url,
            "ws://h:1/proxy/zeek"
        );
        assert!(normalize(spec("http://h:1/")).is_err());
        assert!(normalize(spec("not a url")).is_err());
        let mut s = spec("ws://h:1");
        s.app_name = Some("bad name".into());
        assert!(normalize(s).unwrap_err().contains("ZU-09"));
        let mut s = spec("ws://h:1");
        s.headers = vec![("Bad Header".into(), "x".into())];
        assert!(normalize(s).is_err());
        let mut s = spec("ws://h:1");
        s.subscribe.clear();
        assert!(normalize(s).is_err());
    }

    #[test]
    fn zu09_application_names() {
        assert!(valid_app_name("broker-gateway/1.0@host:a=b*c_d"));
        assert!(!valid_app_name(""));
        assert!(!valid_app_name("a b"));
        assert_eq!(
            parse_header("Authorization: Basic eDp5").unwrap(),
            ("Authorization".into(), "Basic eDp5".into())
        );
        assert!(parse_header("nocolon").is_err());
    }
}
