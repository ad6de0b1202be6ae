//! AkiDB telemetry service: the aggregator. It scrapes every service's `/metrics`, re-exposes
//! the series at `/federate`, and evaluates the SLOs of `observability/slo.yaml` (as
//! `akidb_slo_*` metrics and `akidb.v1.TelemetryService`).
//!
//! - [`aggregator`]: the scrape loop and its state ([`aggregator::Aggregator`]), the gRPC API
//!   ([`aggregator::TelemetryApi`]); under it `scrape` (the HTTP fetch), `federate` (the
//!   `/federate` exposition), `slo` (slo.yaml and the SLO math), `duration`.
//! - [`config`]: the service's flags ([`TelemetryConfig`]).
//! - [`run`]: the service, started and stopped through
//!   [`akidb_instrumentation::lifecycle`] like every other.
//!
//! The instrumentation every service links (this one too) is the `akidb-instrumentation`
//! crate.

pub mod aggregator;
pub mod config;

pub use config::TelemetryConfig;

use aggregator::{Aggregator, TelemetryApi};
use akidb_auth::args::Mode;
use akidb_instrumentation::Component;
use akidb_instrumentation::lifecycle::{Service, Serving};
use akidb_proto::v1::telemetry_service_server::TelemetryServiceServer;
use std::sync::Arc;
use std::time::Duration;

/// Run the telemetry service on already-bound listeners until told to stop: gRPC
/// (TelemetryService, health, reflection), `/metrics` and `/federate` on the HTTP port, and
/// the scrape loop.
pub async fn run(config: TelemetryConfig, on: Serving) -> anyhow::Result<()> {
    let (slos, source) = config.load_slos()?;
    tracing::info!(slo_file = %source, slos = slos.slos.len(), "SLOs loaded");
    if config.scrape_timeout > config.scrape_interval {
        tracing::warn!(
            timeout = ?config.scrape_timeout,
            interval = ?config.scrape_interval,
            "scrape timeout longer than the interval; using the interval"
        );
    }
    let aggregator = Arc::new(
        Aggregator::new(
            config.scrape_targets.0.clone(),
            slos,
            config.effective_timeout(),
        )
        .with_scrape_token(config.auth.metrics_token()?.as_deref()),
    );
    let mut service = Service::new(Component::Telemetry, on.shutdown).await;
    service
        .health()
        .set_serving::<TelemetryServiceServer<TelemetryApi>>()
        .await;
    service
        .health()
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let http_addr = on.http.local_addr()?;
    let listening = [on.grpc.local_addr()?, on.http.local_addr()?];
    let access =
        akidb_auth::args::protect(&mut service, &config.auth, Mode::Internal, &listening)?.access;
    service.serve_http(on.http, Some(aggregator.router()), access);
    if let Some(endpoints) = config.etcd.as_deref().filter(|e| !e.trim().is_empty()) {
        let etcd = akidb_cluster::Etcd::new(endpoints, Duration::from_secs(2))?;
        let stop = tokio_util::sync::CancellationToken::new();
        let view = akidb_cluster::view::ClusterView::start(etcd, stop.clone());
        let agg = Arc::clone(&aggregator);
        service.spawn("storage discovery", move |stopped| async move {
            tokio::pin!(stopped);
            loop {
                if view.synced() {
                    agg.set_discovered("storage", discovered(&view));
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            stop.cancel();
        });
    }
    let scraper = Arc::clone(&aggregator);
    let interval = config.scrape_interval;
    service.spawn("scrape", move |stopped| scraper.run(interval, stopped));
    tracing::info!(
        grpc = %on.grpc.local_addr()?,
        http = %http_addr,
        targets = aggregator.targets().len(),
        interval = ?config.scrape_interval,
        "telemetry serving"
    );
    let max = config.listen.max_message_bytes;
    let routes = tonic::service::Routes::new(
        TelemetryServiceServer::new(TelemetryApi {
            aggregator: Arc::clone(&aggregator),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max),
    );
    service
        .run(on.grpc, routes, async { Ok(()) }, || async {})
        .await
}

/// The storage nodes registered in etcd, as scrape targets (`https://` when this process has
/// a CA, as every call between the services).
fn discovered(view: &akidb_cluster::view::ClusterView) -> Vec<aggregator::Target> {
    let tls = akidb_instrumentation::tls::client();
    view.nodes()
        .into_iter()
        .filter_map(|n| {
            let addr = n.metrics_addr?;
            aggregator::Target::new("storage", &tls.url(&addr))
                .map_err(|e| tracing::warn!(node = %n.id, error = %e, "node registered with a metrics address that cannot be scraped"))
                .ok()
        })
        .collect()
}
