//! Server plumbing every service shares: the instrumented tonic builder, reflection and the
//! shutdown signal.

use crate::grpc::ServerLayer;
use std::time::Duration;
use tower::layer::util::{Identity, Stack};

/// A tonic server with AkiDB's instrumentation and transport settings (no Nagle, HTTP/2
/// keep-alive so dead peers are noticed).
pub fn builder() -> tonic::transport::Server<Stack<ServerLayer, Identity>> {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(ServerLayer)
}

/// The accepted connections of `listener`, with Nagle off. `Server::tcp_nodelay` only applies
/// when tonic binds the socket itself; with `serve_with_incoming` each service must set it,
/// or small responses wait for the peer's delayed ACK (40 ms on Linux).
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// gRPC server reflection for the `akidb.v1` API and `grpc.health.v1`.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(akidb_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// What [`channel`] returns: a cloneable, `Send + Sync` gRPC transport, so that a client
/// built on it can live in a tonic service (whose handlers must be `Sync`).
pub type Channel = crate::grpc::ClientService<tonic::transport::Channel>;

/// A channel to another AkiDB service: lazy connect (a peer that is down does not fail
/// start-up), no Nagle, keep-alive, a connect timeout, and the client layer.
pub fn channel(
    endpoint: &str,
    connect_timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    let ch = tonic::transport::Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(tower::Layer::layer(&crate::grpc::ClientLayer, ch))
}

/// Resolves when the service must stop ([`shutdown_signal`], as [`run_until_signal`] passes it).
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// What every service's `main_with` does: set up telemetry for `component`, bind the gRPC and
/// metrics addresses, run until SIGINT/SIGTERM, then flush traces.
pub async fn run_until_signal<F, Fut>(
    component: crate::Component,
    telemetry: &crate::TelemetryArgs,
    grpc_addr: std::net::SocketAddr,
    metrics_addr: std::net::SocketAddr,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(tokio::net::TcpListener, tokio::net::TcpListener, Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let guard = crate::init(component, telemetry)?;
    crate::idle_poll::start(Duration::from_micros(telemetry.idle_poll_us));
    let grpc = tokio::net::TcpListener::bind(grpc_addr).await?;
    let metrics = tokio::net::TcpListener::bind(metrics_addr).await?;
    let res = run(grpc, metrics, Box::pin(shutdown_signal())).await;
    guard.shutdown().await;
    res
}
