//! A TCP proxy between a client and a server (S3) that a test switches between passing,
//! refusing and delaying connections: outages and slowness without touching the server.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Forward.
    Pass,
    /// Accept and close at once (the client sees the connection reset/closed).
    Refuse,
    /// Hold new connections this long before forwarding (a black hole for short timeouts).
    Delay(Duration),
}

/// Forwards 127.0.0.1:<port> to `upstream`. Changing the mode cuts every open connection, so
/// pooled keep-alive connections see the new mode too. Stops on drop.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listen on a free loopback port, in [`Mode::Pass`].
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Pass);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let m = *rx.borrow_and_update();
                    match m {
                        Mode::Refuse => return,
                        Mode::Delay(d) => {
                            tokio::select! {
                                _ = tokio::time::sleep(d) => {}
                                _ = rx.changed() => return,
                            }
                        }
                        Mode::Pass => {}
                    }
                    let Ok(mut out) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, mode, task }
    }

    /// Switch mode; open connections are cut.
    pub fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
