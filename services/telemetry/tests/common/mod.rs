//! Helpers of the telemetry service's tests.
#![allow(dead_code)]

use akidb_instrumentation::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A process's metrics that a test can replace (a restart) while the server keeps serving.
pub type Exposed = Arc<Mutex<Arc<Metrics>>>;

/// Serve `GET /metrics` from `metrics`; returns the address and a stop switch.
pub async fn serve_fixture(metrics: Exposed) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = Arc::clone(&metrics.lock().unwrap());
            async move { m.render() }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr, tx)
}
