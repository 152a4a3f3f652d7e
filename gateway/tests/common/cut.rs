//! A TCP relay between a client and a gateway that can cut the connections passing through it
//! (a network blip: the gateway keeps running, the client's connection dies).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct CutProxy {
    pub addr: SocketAddr,
    current: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl CutProxy {
    /// Relays 127.0.0.1:0 to `target`.
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let current = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (cur, st) = (current.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
                    _ = st.cancelled() => return,
                };
                let cut = cur.lock().unwrap().clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.cancelled() => {}
                        _ = st.cancelled() => {}
                    }
                    // Dropping both streams closes them.
                });
            }
        });
        CutProxy {
            addr,
            current,
            stop,
        }
    }

    /// Cuts every connection open now; new ones go through.
    pub fn cut(&self) {
        let mut cur = self.current.lock().unwrap();
        cur.cancel();
        *cur = CancellationToken::new();
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.current.lock().unwrap().cancel();
    }
}
