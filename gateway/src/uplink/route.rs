//! What the routing core needs to know of the uplinks to Zeek nodes (ZU-18, ZU-19): which
//! topics go up to which Zeek, over which connection, and which topics each connected uplink
//! takes from its Zeek. The connection driver ([`super::driver`]) keeps it current.
//!
//! Layer: beside the hub (it only holds queues and counters); the peering table and the
//! endpoint's dispatch consult it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use broker_wasm::protocol::{ErrorInfo, Publish, UplinkAdvert, UplinkInfo, UplinkSpec};
use broker_wasm::zeek::EventRef;
use broker_wasm::{zeek_json, ErrorCode};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// State and counters of one uplink, shared by its driver, the router and `/metrics`.
#[derive(Debug)]
pub struct UplinkStatus {
    pub url: String,
    inner: Mutex<StatusInner>,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub errors: AtomicU64,
    pub refused: AtomicU64,
    /// Publishes that found the uplink disconnected or its queue full.
    pub unsent: AtomicU64,
    pub connects: AtomicU64,
}

#[derive(Debug, Clone)]
struct StatusInner {
    spec: UplinkSpec,
    state: &'static str,
    endpoint: Option<String>,
    version: Option<String>,
    last_error: Option<String>,
}

impl UplinkStatus {
    pub fn new(spec: UplinkSpec) -> Arc<UplinkStatus> {
        Arc::new(UplinkStatus {
            url: spec.url.clone(),
            inner: Mutex::new(StatusInner {
                spec,
                state: "connecting",
                endpoint: None,
                version: None,
                last_error: None,
            }),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_spec(&self, spec: UplinkSpec) {
        self.lock().spec = spec;
    }

    pub fn set_state(&self, state: &'static str) {
        self.lock().state = state;
    }

    pub fn set_connected(&self, endpoint: &str, version: &str) {
        let mut s = self.lock();
        s.state = "connected";
        s.endpoint = Some(endpoint.to_owned());
        s.version = Some(version.to_owned());
    }

    pub fn set_error(&self, text: impl Into<String>) {
        self.lock().last_error = Some(text.into());
    }

    pub fn info(&self) -> UplinkInfo {
        let s = self.lock().clone();
        UplinkInfo {
            url: self.url.clone(),
            state: s.state.into(),
            zeek_endpoint: s.endpoint,
            zeek_version: s.version,
            subscribe: s.spec.subscribe,
            publish: s.spec.publish,
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            errors: self.errors.load(Relaxed),
            refused: self.refused.load(Relaxed),
            connects: self.connects.load(Relaxed),
            last_error: s.last_error,
        }
    }
}

/// The Zeek node behind an ack's endpoint id: Zeek names each WebSocket client's endpoint
/// `<node id>-websocket-<n>` (ZU-04), so two clients of one node see the same node id.
/// Anything else (another gateway's API) is taken whole.
pub fn zeek_node(endpoint: &str) -> &str {
    match endpoint.rfind("-websocket-") {
        Some(i) if i > 0 => &endpoint[..i],
        _ => endpoint,
    }
}

/// True if `topic` starts with one of `prefixes`.
pub fn covered(prefixes: &[String], topic: &str) -> bool {
    prefixes.iter().any(|p| topic.starts_with(p.as_str()))
}

/// One uplink as the router sees it.
#[derive(Debug)]
struct Target {
    status: Arc<UplinkStatus>,
    publish: Vec<String>,
    /// While connected: the Zeek node, the topics it sends us, and the connection's queue.
    live: Option<Live>,
}

#[derive(Debug, Clone)]
struct Live {
    zeek: String,
    subscribe: Vec<String>,
    tx: mpsc::Sender<Bytes>,
}

/// Where a message offered to the uplinks came from.
#[allow(missing_debug_implementations)]
pub enum Origin<'a> {
    /// Published on this endpoint (a client, the API): it goes up from here.
    Local,
    /// From a peer: it goes up from here only if `elected(zeek, topic)` says this endpoint is
    /// the one that sends it to that Zeek node.
    Peer(&'a dyn Fn(&str, &str) -> bool),
}

/// The uplinks of one endpoint, keyed by URL.
#[derive(Debug, Default)]
pub struct UpRouter {
    targets: RwLock<Vec<Target>>,
}

impl UpRouter {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Target>> {
        self.targets.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Target>> {
        self.targets.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or updates the uplink of `status` (its publish prefixes may change at any time).
    pub fn upsert(&self, status: &Arc<UplinkStatus>, publish: Vec<String>) {
        let mut t = self.write();
        match t.iter_mut().find(|t| t.status.url == status.url) {
            Some(t) => {
                t.publish = publish;
                t.status = status.clone();
            }
            None => t.push(Target {
                status: status.clone(),
                publish,
                live: None,
            }),
        }
    }

    pub fn remove(&self, url: &str) {
        self.write().retain(|t| t.status.url != url);
    }

    /// The uplink `url` is connected to Zeek node `zeek`, which sends it `subscribe`; what goes
    /// up is queued in `tx`.
    pub fn connected(
        &self,
        url: &str,
        zeek: &str,
        subscribe: Vec<String>,
        tx: mpsc::Sender<Bytes>,
    ) {
        if let Some(t) = self.write().iter_mut().find(|t| t.status.url == url) {
            t.live = Some(Live {
                zeek: zeek.to_owned(),
                subscribe,
                tx,
            });
        }
    }

    pub fn disconnected(&self, url: &str) {
        if let Some(t) = self.write().iter_mut().find(|t| t.status.url == url) {
            t.live = None;
        }
    }

    /// Every uplink's publish prefixes: part of what this endpoint wants from its peers.
    pub fn publish_prefixes(&self) -> Vec<String> {
        self.read()
            .iter()
            .flat_map(|t| t.publish.iter().cloned())
            .collect()
    }

    /// The connected uplinks, for this endpoint's advert.
    pub fn adverts(&self) -> Vec<UplinkAdvert> {
        let mut v: Vec<UplinkAdvert> = self
            .read()
            .iter()
            .filter_map(|t| {
                t.live.as_ref().map(|l| UplinkAdvert {
                    zeek: l.zeek.clone(),
                    subscribe: l.subscribe.clone(),
                    publish: t.publish.clone(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.zeek.cmp(&b.zeek));
        v
    }

    /// True if a connected uplink of this endpoint takes `topic` from Zeek node `zeek` itself.
    pub fn receives(&self, zeek: &str, topic: &str) -> bool {
        self.read().iter().any(|t| {
            t.live
                .as_ref()
                .is_some_and(|l| l.zeek == zeek && covered(&l.subscribe, topic))
        })
    }

    /// Why `publish` may not be published here: it falls under a publish prefix of an uplink
    /// and is not a Zeek event, which Zeek would refuse (ZU-08).
    pub fn check(&self, publish: &Publish, metrics: &Metrics) -> Result<(), ErrorInfo> {
        let targets = self.read();
        let Some(t) = targets.iter().find(|t| covered(&t.publish, &publish.topic)) else {
            return Ok(());
        };
        match EventRef::from_data(&publish.data) {
            Ok(_) => Ok(()),
            Err(e) => {
                t.status.refused.fetch_add(1, Relaxed);
                Metrics::add(&metrics.uplink_refused_total, 1);
                Err(ErrorInfo {
                    code: ErrorCode::ReadOnly,
                    context: format!(
                        "{:?} goes up to Zeek ({}), which takes only events: {e}; not published",
                        publish.topic, t.status.url
                    ),
                })
            }
        }
    }

    /// Sends `publish` up every uplink whose publish prefixes cover its topic (ZU-18).
    /// Messages that came from Zeek are never offered (ZU-19).
    pub fn offer(&self, publish: &Publish, origin: Origin<'_>, metrics: &Metrics) {
        let targets = self.read();
        let mut is_event: Option<bool> = None;
        let mut text: Option<Option<Bytes>> = None;
        for t in targets.iter() {
            if !covered(&t.publish, &publish.topic) {
                continue;
            }
            let Some(live) = &t.live else {
                // Another endpoint's uplink may carry it; this one cannot.
                if matches!(origin, Origin::Local) {
                    t.status.unsent.fetch_add(1, Relaxed);
                    Metrics::add(&metrics.uplink_unsent_total, 1);
                }
                continue;
            };
            if let Origin::Peer(elected) = &origin {
                if !elected(&live.zeek, &publish.topic) {
                    continue;
                }
            }
            if !*is_event.get_or_insert_with(|| EventRef::from_data(&publish.data).is_ok()) {
                t.status.refused.fetch_add(1, Relaxed);
                Metrics::add(&metrics.uplink_refused_total, 1);
                continue;
            }
            let Some(bytes) = text
                .get_or_insert_with(|| {
                    zeek_json::data_message(&publish.topic, &publish.data)
                        .ok()
                        .map(Bytes::from)
                })
                .clone()
            else {
                t.status.refused.fetch_add(1, Relaxed);
                Metrics::add(&metrics.uplink_refused_total, 1);
                continue;
            };
            if live.tx.try_send(bytes).is_ok() {
                t.status.messages_out.fetch_add(1, Relaxed);
                Metrics::add(&metrics.uplink_messages_out_total, 1);
            } else {
                t.status.unsent.fetch_add(1, Relaxed);
                Metrics::add(&metrics.uplink_unsent_total, 1);
            }
        }
    }

    /// Every uplink's state.
    pub fn infos(&self) -> Vec<UplinkInfo> {
        let mut v: Vec<UplinkInfo> = self.read().iter().map(|t| t.status.info()).collect();
        v.sort_by(|a, b| a.url.cmp(&b.url));
        v
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zu04_zeek_node_strips_the_per_client_suffix() {
        assert_eq!(
            zeek_node("d955d990-ad8a-5ed4-8bc5-bee252d4a2e6-websocket-0"),
            "d955d990-ad8a-5ed4-8bc5-bee252d4a2e6"
        );
        assert_eq!(zeek_node("zeek-websocket-12"), "zeek");
        assert_eq!(
            zeek_node("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
        );
        assert_eq!(zeek_node("-websocket-1"), "-websocket-1");
    }
}
