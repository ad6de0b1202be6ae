//! AkiDB storage service.
//!
//! - [`model`], [`filter`], [`distance`]: the domain (points, payloads, filters, metrics).
//! - [`store`]: the [`store::CollectionStore`] trait the engine implements per collection.
//! - [`memory`]: the exact in-memory reference collection (the test oracle).
//! - [`engine`]: the durable catalog of collections, input validation, background workers.
//! - [`collection`]: one durable collection: WAL + segments, snapshots, compaction.
//! - [`wal`]: the segmented, checksummed, group-committed write-ahead log.
//! - [`segment`]: in-memory segments (appendable + sealed), id map, payload index, search.
//! - [`index`]: HNSW graphs: built, searched, encoded for snapshots (flat neighbour lists).
//! - [`snapshot`]: point-in-time copies of a collection with checksummed manifests.
//! - [`server`], [`admin`], [`convert`]: the gRPC layer.

pub mod admin;
pub mod breaker;
pub mod collection;
pub mod config;
pub mod convert;
pub mod distance;
pub mod dlq;
pub mod engine;
pub mod error;
pub mod filter;
pub mod index;
pub mod memory;
pub mod model;
pub mod objstore;
pub mod segment;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod tier;
pub mod upload;
pub mod wal;

use crate::objstore::ObjectStore as _;
use akidb_instrumentation::lifecycle::Service;
use akidb_instrumentation::{Component, TelemetryArgs};
use akidb_proto::v1::admin_service_server::AdminServiceServer;
use akidb_proto::v1::storage_service_server::StorageServiceServer;
pub use config::StorageConfig;
use std::future::Future;

/// Largest gRPC message storage accepts (a 1,000-point batch of 1536-d vectors is ~6 MB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Run the storage service on already-bound listeners until `shutdown` resolves; in-flight
/// requests finish first.
///
/// The gRPC server (health first) starts before the engine recovers, so that health checks
/// see NOT_SERVING while snapshots load and WALs replay; it turns SERVING once recovery is
/// done. A recovery error (e.g. a corrupt WAL in strict mode) stops the server and is
/// returned.
pub async fn run(
    config: StorageConfig,
    grpc: tokio::net::TcpListener,
    metrics_listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut service = Service::new(Component::Storage, shutdown).await;
    let health = service.health().clone();
    health
        .set_not_serving::<StorageServiceServer<server::StorageApi>>()
        .await;
    let engine = engine::Engine::new(config.engine_options());
    let objects = upload::ObjectLayer::start(&config.objects, &config.data_dir).await?;
    tracing::info!(store = %objects.store.describe(), remote = objects.is_remote(), "object layer started");
    engine.set_objects(tier::Objects {
        store: objects.store.clone(),
        uploader: objects.uploader.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let objects = std::sync::Arc::new(objects);
    let api = server::StorageApi {
        engine: engine.clone(),
    };
    let admin_api = admin::AdminApi {
        engine: engine.clone(),
        objects: objects.clone(),
    };
    service.serve_http(metrics_listener, None);
    let routes = tonic::service::Routes::new(
        StorageServiceServer::new(api)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(AdminServiceServer::new(admin_api));
    tracing::info!(grpc = %grpc.local_addr()?, data_dir = %config.data_dir.display(), "storage listening; recovering");

    // Starting: recover (snapshots, WAL replay) while health says NOT_SERVING.
    let e2 = engine.clone();
    let starting = async move {
        match tokio::task::spawn_blocking(move || e2.recover()).await? {
            Ok(()) => {
                health
                    .set_serving::<StorageServiceServer<server::StorageApi>>()
                    .await;
                health
                    .set_service_status("", tonic_health::ServingStatus::Serving)
                    .await;
                tracing::info!("storage serving");
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("storage recovery failed: {e}")),
        }
    };
    // Stopping: once in-flight requests are done, stop the workers, flush every WAL, and
    // stop the dead-letter queue's worker.
    let stopping = move || async move {
        let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
        match std::sync::Arc::try_unwrap(objects) {
            Ok(layer) => layer.shutdown().await,
            Err(_) => {
                tracing::warn!("object layer still in use at shutdown; DLQ entries stay on disk")
            }
        }
    };
    service.run(grpc, routes, starting, stopping).await
}

/// Bind, init telemetry and run until SIGINT/SIGTERM: what `main` and `akidb serve storage` do.
pub async fn main_with(config: StorageConfig, telemetry: TelemetryArgs) -> anyhow::Result<()> {
    configure_allocator();
    let (grpc_addr, metrics_addr) = (config.grpc_addr, config.metrics_addr);
    akidb_instrumentation::lifecycle::run_until_signal(
        Component::Storage,
        &telemetry,
        grpc_addr,
        metrics_addr,
        |grpc, metrics, stop| run(config, grpc, metrics, stop),
    )
    .await
}

/// glibc malloc settings for the storage process, unless the operator set their own
/// (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`):
///
/// - at most one arena per core (glibc allows 8 per core): every thread that allocates may
///   otherwise get an arena of its own, and each keeps freed pages of its own;
/// - a fixed mmap threshold of 256 KiB: glibc raises the threshold to the size of each large
///   block freed (up to 32 MiB), after which a segment's vectors, a snapshot file being read
///   or a request of several MiB come from the heap and stay there once freed. Fixed, every
///   block that large is its own mapping and goes back to the system when freed.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |k: &str| std::env::var_os(k).is_some();
        if set("GLIBC_TUNABLES") {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only changes allocator parameters; it is called before the
        // service allocates its working set.
        unsafe {
            if !set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, cores.clamp(1, 64) as libc::c_int);
            }
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            }
        }
    }
}

/// Give the allocator's free pages back to the system, after a large structure was freed
/// (a graph build's `hnsw_rs` structure, a demoted collection): glibc's malloc keeps them
/// otherwise, and the process would stay at its peak.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused memory of the allocator to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
