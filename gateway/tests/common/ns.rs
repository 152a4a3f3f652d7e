//! Helpers of the namespace tests (`namespaces.rs`, `namespaces_ops.rs`).

use std::path::PathBuf;

use broker_client::namespace::{GetOptions, NsError};
use broker_client::Client;
use broker_wasm::dbr::DbrCode;
use broker_wasm::Data;
use gateway::Endpoint;

use super::{endpoint_with, eventually, url};

/// Where the namespaces of a test live: the built-in backend, or a real `redis-server`
/// started for the test (RB-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Builtin,
    Redis,
}

/// A fresh data directory under the system's temp dir (removed by the guard), and the Redis
/// server of a test on the Redis backend (stopped by the guard).
pub struct TempDir(pub PathBuf, pub Option<super::redis::RedisServer>);
impl TempDir {
    pub fn new(backend: Backend) -> TempDir {
        let p = std::env::temp_dir().join(format!("ns-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        let redis = (backend == Backend::Redis).then(super::redis::RedisServer::start);
        TempDir(p, redis)
    }

    /// The `--ns-backend` URL of this test, if it uses Redis.
    pub fn ns_backend(&self) -> Option<String> {
        self.1.as_ref().map(|r| r.url())
    }
}

/// Runs each named test body (`async fn name(backend: Backend)`) once per backend, as
/// `builtin::name` and `redis::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod builtin {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Builtin).await
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Redis).await
            })*
        }
    };
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn gateway_in(dir: &TempDir) -> (Endpoint, String) {
    let d = dir.0.clone();
    let backend = dir.ns_backend();
    let (ep, addr) = endpoint_with(move |c| {
        c.data_dir = d;
        c.ns_max_value = 1024 * 1024;
        c.ns_backend = backend;
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
