//! The state every task of one endpoint holds: configuration, the hub, peering, stores,
//! namespaces, auth, the shutdown token and task tracker, and connection slots.
//!
//! Layer: above the hub, peering table, stores and namespaces (it holds them); below the
//! connection handlers, the link driver and dialer, the HTTP layer and [`crate::Endpoint`].

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use broker_wasm::protocol::{ErrorInfo, Publish};
use broker_wasm::{ErrorCode, NodeId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::hub::{Exclude, Hub};
use crate::metrics::Metrics;
use crate::peering::Peering;
use crate::store::Stores;
use crate::subscriber::Control;

/// State shared by every task of one endpoint.
#[derive(Debug)]
pub struct Shared {
    pub id: NodeId,
    pub config: Config,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub peering: Arc<Peering>,
    /// Master stores and relays (ZB-44..62).
    pub stores: Stores,
    /// Cancelled once, at shutdown; every task watches a child of it.
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Open WebSocket connections (clients and peers), for the connection limit.
    pub connections: AtomicUsize,
    /// Open WebSocket connections per remote address, for the per-address limit.
    pub(crate) per_address: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    pub(crate) listening: Mutex<Vec<SocketAddr>>,
    /// Data Broker namespaces (DB-01..25).
    pub namespaces: crate::namespace::Namespaces,
    /// Tokens and grants; open access unless configured.
    pub auth: crate::auth::Auth,
    /// TLS for every listener, when configured.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS for outgoing peerings (`--peer-ca`), when configured.
    pub(crate) peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// Uplinks to Zeek nodes: routing (what goes up) and their drivers (ZU-02..19).
    pub(crate) up: Arc<crate::uplink::route::UpRouter>,
    pub(crate) uplinks: crate::uplink::registry::Registry,
    /// In-process client connections ([`crate::Endpoint::connect_local`]), served once the
    /// first is asked for.
    pub(crate) local:
        std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>>,
}

/// One per-uplink series of `/metrics`: name, type, help, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&broker_wasm::protocol::UplinkInfo) -> u64,
);

impl Shared {
    /// The Prometheus text of `/metrics`.
    pub fn metrics_text(&self) -> String {
        let s = self;
        let (local, native, zeek) = s.hub.consumer_counts();
        let peers = s.peering.peers().len() as u64;
        let mut out = s.metrics.render(&[
            (
                "subscribers_local",
                "Subscribers of the embedding program.",
                local as u64,
            ),
            (
                "clients_native",
                "Native-protocol client sessions.",
                native as u64,
            ),
            (
                "clients_zeek",
                "Zeek JSON API client sessions.",
                zeek as u64,
            ),
            (
                "subscriptions",
                "Subscription prefixes held, over all consumers.",
                s.hub.subscriptions() as u64,
            ),
            (
                "queued_messages",
                "Messages waiting in consumer queues.",
                s.hub.queued() as u64,
            ),
            (
                "peers",
                "Direct peers, established or being connected.",
                peers,
            ),
            (
                "peers_connected",
                "Direct peers with an established link.",
                s.peering.direct_peers().len() as u64,
            ),
            (
                "stores_master",
                "Master stores held by this endpoint.",
                s.stores.masters().len() as u64,
            ),
            (
                "stores_relay",
                "Relays of master stores on other endpoints.",
                (s.stores
                    .names()
                    .len()
                    .saturating_sub(s.stores.masters().len())) as u64,
            ),
            (
                "peer_seq_windows",
                "Duplicate-suppression windows kept (one per origin seen from peers).",
                s.peering.seq_windows() as u64,
            ),
            (
                "reachable_endpoints",
                "Endpoints reachable through the peer graph.",
                s.peering.reachable().len() as u64,
            ),
            (
                "uplinks",
                "Uplinks to Zeek nodes (connected or not).",
                s.up.infos().len() as u64,
            ),
            (
                "ns_waiters",
                "Blocked namespace reads and gets waiting in this gateway.",
                s.namespaces.waiting_total() as u64,
            ),
        ]);
        self.uplink_metrics(&mut out);
        self.ns_backend_metrics(&mut out);
        self.history_metrics(&mut out);
        out
    }

    /// Per-history lines of `/metrics`, labelled with the prefix (`--history`).
    fn history_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let logs = &self.hub.histories.logs;
        if logs.is_empty() {
            return;
        }
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let counts: Vec<_> = logs
            .iter()
            .map(|l| (esc(&l.spec.prefix), l.counts()))
            .collect();
        let _ = writeln!(
            out,
            "# HELP broker_history_messages Messages kept in a history."
        );
        let _ = writeln!(out, "# TYPE broker_history_messages gauge");
        for (prefix, (kept, _)) in &counts {
            let _ = writeln!(out, "broker_history_messages{{prefix=\"{prefix}\"}} {kept}");
        }
        let _ = writeln!(
            out,
            "# HELP broker_history_evicted_total Messages a history dropped (count or age limit)."
        );
        let _ = writeln!(out, "# TYPE broker_history_evicted_total counter");
        for (prefix, (_, evicted)) in &counts {
            let _ = writeln!(
                out,
                "broker_history_evicted_total{{prefix=\"{prefix}\"}} {evicted}"
            );
        }
    }

    /// The namespace backend (RB-15): which one, and whether Redis answered last time.
    fn ns_backend_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let (kind, addr, up) = self.namespaces.backend();
        let addr = addr
            .unwrap_or_default()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let _ = writeln!(
            out,
            "# HELP broker_ns_backend_up 1 while the namespace backend answers (always 1 for the built-in one).\n\
             # TYPE broker_ns_backend_up gauge\n\
             broker_ns_backend_up{{backend=\"{kind}\",address=\"{addr}\"}} {}",
            u8::from(up)
        );
    }

    /// Per-uplink lines of `/metrics`, labelled with the uplink's URL (ZU-02).
    fn uplink_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let infos = self.up.infos();
        if infos.is_empty() {
            return;
        }
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let series: [Series; 5] = [
            (
                "uplink_up",
                "gauge",
                "1 while the uplink is connected to its Zeek node.",
                |i| u64::from(i.state == "connected"),
            ),
            (
                "uplink_received",
                "counter",
                "Messages this uplink received from Zeek.",
                |i| i.messages_in,
            ),
            (
                "uplink_sent",
                "counter",
                "Events this uplink sent up to Zeek.",
                |i| i.messages_out,
            ),
            (
                "uplink_zeek_errors",
                "counter",
                "Error objects Zeek answered this uplink with.",
                |i| i.errors,
            ),
            (
                "uplink_connects",
                "counter",
                "Connections of this uplink acknowledged by Zeek.",
                |i| i.connects,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP broker_{name} {help}");
            let _ = writeln!(out, "# TYPE broker_{name} {kind}");
            for i in &infos {
                let _ = writeln!(
                    out,
                    "broker_{name}{{url=\"{}\",zeek_endpoint=\"{}\",zeek_version=\"{}\"}} {}",
                    esc(&i.url),
                    esc(i.zeek_endpoint.as_deref().unwrap_or("")),
                    esc(i.zeek_version.as_deref().unwrap_or("")),
                    value(i)
                );
            }
        }
    }

    pub(crate) fn emit_error(&self, code: ErrorCode, context: impl Into<String>) {
        self.hub.error(code, context);
    }

    /// Called after any subscription change: re-advertise the filter to peers if it changed.
    /// What the uplinks send up to Zeek is part of what this endpoint wants from its peers.
    pub(crate) fn filter_changed(&self) {
        let mut filter = self.hub.filter();
        if !self.up.is_empty() {
            filter.extend(self.up.publish_prefixes());
            filter = broker_wasm::topic::normalize(filter);
        }
        self.peering.set_local_filter(filter);
    }

    /// A message from a client (or the API) entering this endpoint: local consumers, the
    /// peer graph and the uplinks to Zeek. Refused (and sent nowhere) when it falls under an
    /// uplink's publish prefix and is not a Zeek event (ZU-08).
    pub(crate) fn dispatch(
        &self,
        publish: &Publish,
        raw: Option<&[u8]>,
        exclude: Exclude,
    ) -> Result<(), ErrorInfo> {
        if !self.up.is_empty() {
            self.up.check(publish, &self.metrics)?;
        }
        self.hub.route(publish, raw, exclude);
        self.peering.originate(publish, None);
        if !self.up.is_empty() {
            self.up
                .offer(publish, crate::uplink::route::Origin::Local, &self.metrics);
        }
        Ok(())
    }

    /// A message from Zeek node `zeek` over an uplink (ZU-06): every local consumer and the
    /// peer graph, like a local publish, but never back up to Zeek (ZU-19).
    pub(crate) fn dispatch_from_zeek(&self, publish: &Publish, zeek: &str) {
        self.hub.route(publish, None, Exclude::None);
        self.peering.originate(publish, Some(zeek));
    }
}

impl Control for Shared {
    fn add_topics(&self, id: u64, topics: &[String]) {
        if self.hub.subscribe(id, topics) {
            self.filter_changed();
        }
    }
    fn remove_topics(&self, id: u64, topics: &[String]) {
        if self.hub.unsubscribe(id, topics) {
            self.filter_changed();
        }
    }
    fn close(&self, id: u64) {
        if self.hub.unregister(id) {
            self.filter_changed();
        }
    }
}

/// A reserved connection slot (total and per remote address), released when dropped: when
/// the connection ends, and also when the WebSocket upgrade never completes.
pub(crate) struct Slot {
    pub(crate) shared: Arc<Shared>,
    pub(crate) ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Relaxed);
        let mut per = self
            .shared
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}
