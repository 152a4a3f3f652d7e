//! Helpers of the namespace tests (`namespaces.rs`, `namespaces_ops.rs`).

use std::path::PathBuf;

use broker_client::namespace::{GetOptions, NsError};
use broker_client::Client;
use broker_wasm::dbr::DbrCode;
use broker_wasm::Data;
use gateway::Endpoint;

use super::{endpoint_with, eventually, url};

/// A fresh data directory under the system's temp dir (removed by the guard).
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("ns-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn gateway_in(dir: &TempDir) -> (Endpoint, String) {
    let d = dir.0.clone();
    let (ep, addr) = endpoint_with(move |c| {
        c.data_dir = d;
        c.ns_max_value = 1024 * 1024;
    })
    .await;
    (ep, url(addr))
}

pub async fn client(url: &str) -> Client {
    Client::connect(url).await.unwrap()
}

pub fn code<T: std::fmt::Debug>(r: Result<T, NsError>) -> DbrCode {
    r.expect_err("an error").code
}

pub fn s(v: &str) -> Data {
    Data::String(v.as_bytes().to_vec())
}

pub const NOWAIT: fn() -> GetOptions = GetOptions::nowait;

pub async fn waiting(ep: &Endpoint, ns: &str, key: &str, n: usize) {
    eventually(&format!("{n} waiters on {ns}/{key}"), || {
        ep.probe().namespace_waiters(ns, key) == n
    })
    .await;
}
