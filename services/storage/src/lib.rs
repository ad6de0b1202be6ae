//! AkiDB storage service.
//!
//! - [`model`], [`filter`], [`distance`]: the domain (points, payloads, filters, metrics).
//! - [`store`]: the [`store::CollectionStore`] trait the engine implements per collection.
//! - [`memory`]: the exact in-memory reference collection.
//! - [`engine`]: the catalog of collections and input validation.
//! - [`server`], [`convert`]: the gRPC layer.

pub mod breaker;
pub mod config;
pub mod convert;
pub mod distance;
pub mod dlq;
pub mod engine;
pub mod error;
pub mod filter;
pub mod memory;
pub mod model;
pub mod objstore;
pub mod server;
pub mod store;
pub mod upload;

use akidb_proto::v1::storage_service_server::StorageServiceServer;
use akidb_telemetry::{Component, TelemetryArgs};
pub use config::StorageConfig;
use std::future::Future;
use std::sync::Arc;

/// Largest gRPC message storage accepts (a 1,000-point batch of 1536-d vectors is ~6 MB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Run the storage service on already-bound listeners until `shutdown` resolves; in-flight
/// requests finish first.
pub async fn run(
    config: StorageConfig,
    grpc: tokio::net::TcpListener,
    metrics_listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_not_serving::<StorageServiceServer<server::StorageApi>>()
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let engine = Arc::new(engine::Engine::new());
    tracing::info!(data_dir = %config.data_dir.display(), "storage engine ready");
    let api = server::StorageApi { engine };
    reporter
        .set_serving::<StorageServiceServer<server::StorageApi>>()
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_task = tokio::spawn(akidb_telemetry::metrics::serve_metrics(metrics_listener, {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }));
    let svc = StorageServiceServer::new(api)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tracing::info!(grpc = %grpc.local_addr()?, "storage serving");
    akidb_telemetry::server::builder()
        .add_service(health)
        .add_service(akidb_telemetry::server::reflection()?)
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            shutdown,
        )
        .await?;
    let _ = stop_tx.send(true);
    let _ = metrics_task.await;
    tracing::info!("storage stopped");
    Ok(())
}

/// Bind, init telemetry and run until SIGINT/SIGTERM: what `main` and `akidb serve storage` do.
pub async fn main_with(config: StorageConfig, telemetry: TelemetryArgs) -> anyhow::Result<()> {
    let guard = akidb_telemetry::init(Component::Storage, &telemetry)?;
    let grpc = tokio::net::TcpListener::bind(config.grpc_addr).await?;
    let metrics = tokio::net::TcpListener::bind(config.metrics_addr).await?;
    let res = run(
        config,
        grpc,
        metrics,
        akidb_telemetry::server::shutdown_signal(),
    )
    .await;
    guard.shutdown().await;
    res
}
