//! The object layer wired from its flags: the store (S3 or a local directory), retries and
//! the breaker around it, the dead-letter queue and its retry worker, and the uploader.

use super::breaker::{Breaker, BreakerConfig, BreakerStatus, ResilientStore, RetryConfig};
use super::config::ObjectStoreConfig;
use super::dlq::{Dlq, DlqConfig};
use super::local::LocalDirStore;
use super::s3::{S3Settings, S3Store};
use super::store::ObjectStore;
use super::upload::Uploader;
use std::path::Path;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every object-layer flag: store, retries, breaker, DLQ.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObjectLayerConfig {
    #[command(flatten)]
    pub store: ObjectStoreConfig,
    #[command(flatten)]
    pub retry: RetryConfig,
    #[command(flatten)]
    pub breaker: BreakerConfig,
    #[command(flatten)]
    pub dlq: DlqConfig,
}

/// The running object layer: what the tier code and AdminService use.
#[derive(Debug)]
pub struct ObjectLayer {
    /// Retries + breaker around the configured store; use it for every get/list/delete.
    pub store: Arc<ResilientStore>,
    pub dlq: Arc<Dlq>,
    pub uploader: Uploader,
    cancel: CancellationToken,
    worker: JoinHandle<()>,
}

impl ObjectLayer {
    /// Open the store (`<data_dir>/objects` or S3), the breaker, the DLQ (`<data_dir>/dlq`)
    /// and start the DLQ retry worker.
    pub async fn start(cfg: &ObjectLayerConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let raw = open(&cfg.store, data_dir).await?;
        let breaker = Breaker::new(cfg.breaker.clone());
        let store = Arc::new(ResilientStore::new(raw, breaker, cfg.retry.clone()));
        let dlq_dir = cfg.dlq.dir.clone().unwrap_or_else(|| data_dir.join("dlq"));
        let dlq = Dlq::open(&dlq_dir, cfg.dlq.clone(), store.clone()).await?;
        let cancel = CancellationToken::new();
        let worker = dlq.spawn_retry_worker(cancel.clone());
        let uploader = Uploader::new(store.clone(), dlq.clone());
        Ok(ObjectLayer {
            store,
            dlq,
            uploader,
            cancel,
            worker,
        })
    }

    pub fn breaker(&self) -> &Arc<Breaker> {
        self.store.breaker()
    }

    /// For AdminService `BreakerGet` (with `remote` = [`ObjectLayer::is_remote`]).
    pub fn breaker_status(&self) -> BreakerStatus {
        self.breaker().status()
    }

    /// Whether an S3 endpoint is configured (false: local directory store).
    pub fn is_remote(&self) -> bool {
        self.store.is_remote()
    }

    /// Stop the DLQ worker (it finishes the upload in progress). Queued entries stay on disk.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.worker.await;
    }
}

/// Open the configured object store: S3 when an endpoint is set, else the local directory
/// (`config.local_dir`, default `<data_dir>/objects`).
///
/// For S3 the bucket is created if missing. If the store cannot be reached at start-up the
/// store is still returned (uploads then go to the DLQ) and bucket creation is retried in the
/// background; a permanent failure (bad credentials, invalid bucket name) is an error.
pub async fn open(
    config: &ObjectStoreConfig,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    match &config.endpoint {
        None => {
            let dir = config
                .local_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("objects"));
            let store = LocalDirStore::open(&dir)?;
            tracing::info!(store = %store.describe(), "object store: local directory");
            Ok(Arc::new(store))
        }
        Some(_) => {
            let store = Arc::new(S3Store::new(S3Settings::from_config(config)?)?);
            tracing::info!(store = %store.describe(), "object store: S3");
            match store.ensure_bucket().await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "object store unreachable at start-up; uploads will queue in the DLQ and the bucket check is retried in the background");
                    let s = store.clone();
                    tokio::spawn(async move { s.ensure_bucket_until_ok().await });
                }
                Err(e) => {
                    return Err(anyhow::anyhow!(e).context("object store bucket check failed"));
                }
            }
            Ok(store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::dlq::UploadSource;
    use bytes::Bytes;

    #[tokio::test]
    async fn object_layer_local_default() {
        let dir = tempfile::tempdir().unwrap();
        let layer = ObjectLayer::start(&ObjectLayerConfig::default(), dir.path())
            .await
            .unwrap();
        assert!(!layer.is_remote());
        let out = layer
            .uploader
            .upload("", "a/b", UploadSource::Bytes(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        assert!(out.is_uploaded());
        assert!(dir.path().join("objects/a/b").exists());
        assert_eq!(&layer.store.get("a/b").await.unwrap()[..], b"hi");
        assert_eq!(
            layer.breaker_status().state,
            crate::objstore::error::BreakerState::Closed
        );
        layer.shutdown().await;
    }
}
