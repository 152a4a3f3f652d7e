//! The gateway of the in-process benchmarks: `Config::embedded()` as `configure` leaves it,
//! listening on 127.0.0.1:0, on a tokio runtime of its own (2 worker threads, as the gateway
//! binary has on this kind of machine) in a thread of its own. Its threads are named `gateway`,
//! so a profile tells them from the clients' (`perf report --comm gateway`).

use std::net::SocketAddr;

use gateway::{Config, Endpoint};

/// Starts the gateway; it runs until the program ends.
pub fn start(configure: impl FnOnce(&mut Config) + Send + 'static) -> (SocketAddr, Endpoint) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway")
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut config = Config::embedded();
            configure(&mut config);
            let ep = Endpoint::new(config);
            let addr = ep.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
            tx.send((addr, ep)).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}
