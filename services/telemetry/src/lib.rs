//! AkiDB telemetry: the instrumentation every service shares, and the aggregator.
//!
//! - [`init`]: logs (`tracing`, text or JSON), OTLP traces and the metrics registry, from one
//!   [`TelemetryArgs`].
//! - [`metrics`]: the metric catalogue (docs/metrics.md) and the `/metrics` HTTP server.
//! - [`grpc`]: tower layers for every gRPC server and client: request metrics, W3C trace
//!   context extracted on the server and injected on the client.
//! - [`exemplar`]: trace ids of traced requests on histogram buckets (OpenMetrics).
//! - [`exposition`]: the text and OpenMetrics formats, parsed and written.
//! - [`server`]: shared gRPC server plumbing (health, reflection, shutdown signal).
//! - [`aggregator`], [`config`], [`run`], [`main_with`]: the telemetry service itself, which
//!   scrapes every service, serves `/federate` and evaluates the SLOs of
//!   `observability/slo.yaml` (as `akidb_slo_*` metrics and `akidb.v1.TelemetryService`).

pub mod aggregator;
pub mod config;
pub mod exemplar;
pub mod exposition;
pub mod grpc;
pub mod idle_poll;
pub mod init;
pub mod metrics;
pub mod server;

pub use config::TelemetryConfig;
pub use init::{TelemetryArgs, TelemetryGuard, init};
pub use metrics::{Component, metrics};
/// The metric types of the catalogue's handles, for services that keep a handle of their own.
pub use prometheus;

use aggregator::{Aggregator, TelemetryApi};
use akidb_proto::v1::telemetry_service_server::TelemetryServiceServer;
use std::future::Future;
use std::sync::Arc;

/// Run the telemetry service on already-bound listeners until `shutdown` resolves: gRPC
/// (TelemetryService, health, reflection) on `grpc`, `/metrics` and `/federate` on
/// `metrics_listener`, and the scrape loop.
pub async fn run(
    config: TelemetryConfig,
    grpc: tokio::net::TcpListener,
    metrics_listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (slos, source) = config.load_slos()?;
    tracing::info!(slo_file = %source, slos = slos.slos.len(), "SLOs loaded");
    if config.scrape_timeout > config.scrape_interval {
        tracing::warn!(
            timeout = ?config.scrape_timeout,
            interval = ?config.scrape_interval,
            "scrape timeout longer than the interval; using the interval"
        );
    }
    let aggregator = Arc::new(Aggregator::new(
        config.scrape_targets.0.clone(),
        slos,
        config.effective_timeout(),
    ));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<TelemetryServiceServer<TelemetryApi>>()
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let http_addr = metrics_listener.local_addr()?;
    let metrics_task = tokio::spawn(metrics::serve_http(
        metrics_listener,
        aggregator.router(),
        stopped(),
    ));
    let scrape_task = tokio::spawn(Arc::clone(&aggregator).run(config.scrape_interval, stopped()));
    tracing::info!(
        grpc = %grpc.local_addr()?,
        http = %http_addr,
        targets = aggregator.targets().len(),
        interval = ?config.scrape_interval,
        "telemetry serving"
    );
    let res = server::builder()
        .add_service(health)
        .add_service(server::reflection()?)
        .add_service(TelemetryServiceServer::new(TelemetryApi {
            aggregator: Arc::clone(&aggregator),
        }))
        .serve_with_incoming_shutdown(crate::server::incoming(grpc), shutdown)
        .await;
    let _ = stop_tx.send(true);
    let _ = scrape_task.await;
    let _ = metrics_task.await;
    tracing::info!("telemetry stopped");
    res?;
    Ok(())
}

/// Bind, init telemetry and run until SIGINT/SIGTERM: what `main` and `akidb serve telemetry`
/// do.
pub async fn main_with(config: TelemetryConfig, telemetry: TelemetryArgs) -> anyhow::Result<()> {
    let (grpc_addr, metrics_addr) = (config.grpc_addr, config.metrics_addr);
    server::run_until_signal(
        Component::Telemetry,
        &telemetry,
        grpc_addr,
        metrics_addr,
        |grpc, metrics, stop| run(config, grpc, metrics, stop),
    )
    .await
}
