//! The uplinks of one endpoint by URL: each one's driver task (cancel token, the spec it
//! follows) and its status.
//!
//! Layer: data only; [`super::start`] and [`super::stop`] keep it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use broker_wasm::protocol::UplinkSpec;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::route::UplinkStatus;

#[derive(Debug)]
pub(crate) struct Entry {
    pub status: Arc<UplinkStatus>,
    pub cancel: CancellationToken,
    /// The spec the driver follows; a change makes it reconnect (ZU-05).
    pub spec: watch::Sender<UplinkSpec>,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
