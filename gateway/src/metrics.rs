//! Counters and gauges, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $kind:ident $name:ident,)*) => {
        /// Process-wide counters (monotonic) and gauges (current values).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// The Prometheus text exposition of every metric.
            pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
                let mut out = String::new();
                $(
                    let help = concat!($($doc),*).trim();
                    let name = concat!("broker_", stringify!($name));
                    let _ = writeln!(out, "# HELP {name} {help}");
                    let _ = writeln!(out, "# TYPE {name} {}", stringify!($kind));
                    let _ = writeln!(out, "{name} {}", self.$name.load(Relaxed));
                )*
                for (name, help, value) in extra {
                    let _ = writeln!(out, "# HELP broker_{name} {help}");
                    let _ = writeln!(out, "# TYPE broker_{name} gauge");
                    let _ = writeln!(out, "broker_{name} {value}");
                }
                out
            }
        }
    };
}

metrics! {
    /// Open WebSocket connections of native clients.
    gauge connections_native,
    /// Open WebSocket connections of Zeek JSON API clients.
    gauge connections_zeek,
    /// Connections accepted since start.
    counter connections_total,
    /// Connections refused because the connection limit was reached.
    counter connections_rejected_total,
    /// Messages received from clients and peers.
    counter messages_in_total,
    /// Messages delivered to consumers (clients, subscribers, peer links).
    counter messages_out_total,
    /// WebSocket messages (frames of the native protocol) received.
    counter frames_in_total,
    /// WebSocket messages sent.
    counter frames_out_total,
    /// Bytes received in WebSocket messages.
    counter bytes_in_total,
    /// Bytes sent in WebSocket messages.
    counter bytes_out_total,
    /// Messages dropped because a consumer's queue was full.
    counter dropped_total,
    /// Resumes of clients that came back with a position in the histories (`--history`).
    counter resumes_total,
    /// Gaps reported to resuming clients (gateway restarted, history too short, no history).
    counter resume_gaps_total,
    /// Messages replayed from the histories to resuming clients.
    counter replayed_total,
    /// Consumers disconnected because their queue was full.
    counter slow_disconnects_total,
    /// Malformed or refused frames and messages (each answered with an error).
    counter errors_total,
    /// Duplicate messages suppressed on peer links.
    counter duplicates_total,
    /// Store operations answered by master stores of this endpoint.
    counter store_ops_total,
    /// Store updates replicated by master stores (one per change, however many clones).
    counter store_updates_total,
    /// Clones that came back with a state the store could bring up to date with the updates
    /// since (no snapshot sent).
    counter store_clone_catchups_total,
    /// Clones re-attached with a fresh snapshot because they fell behind.
    counter store_resyncs_total,
    /// Connections refused for an unknown, malformed or expired token, or a foreign Origin.
    counter auth_failures_total,
    /// Operations refused because the connection's grants do not allow them.
    counter denied_total,
    /// Store writes refused because the value exceeds --store-max-value.
    counter store_value_rejected_total,
    /// Times a connection was paused because it sent more than --max-bytes-rate.
    counter throttled_total,
    /// Connections (clients and peers) closed because they sent nothing within the idle
    /// timeout.
    counter idle_disconnects_total,
    /// SQLite files of master stores opened (each store's file is opened once, however many
    /// attaches race for it).
    counter store_files_opened_total,
    /// Store requests (operations and attaches) of clients and peers, and namespace requests
    /// a Redis backend still has to answer, not answered yet.
    gauge store_requests_in_flight,
    /// Times a connection stopped being read because it had --max-store-requests store (or
    /// Redis namespace) requests in flight (backpressure).
    counter store_backpressure_total,
    /// Duplicate-suppression windows reset because a peer-forwarded sequence number was far
    /// behind or invalid for its origin.
    counter peer_seq_resets_total,
    /// Redundant connections between two gateways closed (one link per pair survives).
    counter peer_redundant_total,
    /// Messages received from Zeek nodes over uplinks (ZU-06).
    counter uplink_messages_in_total,
    /// Events sent up to Zeek nodes over uplinks (ZU-18).
    counter uplink_messages_out_total,
    /// `error` objects Zeek nodes answered uplinks with (ZU-08).
    counter uplink_errors_total,
    /// Publishes under an uplink's publish prefixes refused here: not a Zeek event (ZU-08).
    counter uplink_refused_total,
    /// Events for an uplink that was disconnected or whose queue was full.
    counter uplink_unsent_total,
    /// Uplink connections established (acknowledged by Zeek).
    counter uplink_connects_total,
    /// Messages from Zeek that reached this endpoint over two paths and were delivered once
    /// (ZU-19).
    counter uplink_duplicates_total,
    /// Changes of Zeek tables applied to `zeek:` stores (ZU-17).
    counter uplink_table_changes_total,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
