//! Uploads to the object store that never lose data.
//!
//! [`Uploader::upload`] tries the [`super::breaker::ResilientStore`] (retries, breaker); when that still
//! fails the data goes to the [`super::dlq::Dlq`] and the call returns [`UploadOutcome::Queued`]: the
//! object is safe on local disk but **not yet in the object store**, so the caller must not
//! drop its own copy on the strength of it. Confirmation comes later through
//! [`Uploader::is_confirmed`] or a `DlqEvent::Uploaded` from `Dlq::subscribe`.

use super::dlq::{Dlq, DlqError, UploadSource};
use super::error::{ObjectStoreError, Operation};
use super::store::ObjectStore;
use std::sync::Arc;

/// How an upload ended.
#[derive(Debug, Clone)]
pub enum UploadOutcome {
    /// The object store has the object.
    Uploaded { bytes: u64 },
    /// The store failed; the data is durable in the DLQ (`id`) and will be retried in the
    /// background. Not yet in the object store.
    Queued { id: String, error: ObjectStoreError },
}

impl UploadOutcome {
    /// Whether the object store has confirmed the object.
    pub fn is_uploaded(&self) -> bool {
        matches!(self, UploadOutcome::Uploaded { .. })
    }
}

/// The upload failed and could not be queued either: the caller still owns the only copy.
#[derive(Debug, thiserror::Error)]
#[error("upload of `{key}` failed ({upload}) and could not be queued: {dlq}")]
pub struct UploadError {
    pub key: String,
    pub upload: ObjectStoreError,
    pub dlq: DlqError,
}

/// Uploads through the resilient store, falling back to the DLQ.
#[derive(Debug, Clone)]
pub struct Uploader {
    store: Arc<dyn ObjectStore>,
    dlq: Arc<Dlq>,
}

impl Uploader {
    /// `store` should be the [`super::breaker::ResilientStore`]; `dlq` should retry into the same store.
    pub fn new(store: Arc<dyn ObjectStore>, dlq: Arc<Dlq>) -> Self {
        Uploader { store, dlq }
    }

    /// Upload `source` to `key`. `collection` labels the DLQ entry ("" if none).
    ///
    /// If an older upload of `key` is still waiting in the DLQ, this one is queued behind it
    /// (superseding it) instead of racing it, so the store ends with the newest data.
    pub async fn upload(
        &self,
        collection: &str,
        key: &str,
        source: UploadSource,
    ) -> Result<UploadOutcome, UploadError> {
        let result = if self.dlq.contains_key(key) {
            Err(ObjectStoreError::transient(
                Operation::Put,
                key,
                "an older upload of this key is waiting in the dead-letter queue",
            ))
        } else {
            match &source {
                UploadSource::Bytes(b) => {
                    let n = b.len() as u64;
                    self.store.put(key, b.clone()).await.map(|()| n)
                }
                UploadSource::File(p) => self.store.put_file(key, p).await,
            }
        };
        match result {
            Ok(bytes) => Ok(UploadOutcome::Uploaded { bytes }),
            Err(error) => match self.dlq.enqueue(collection, key, source, &error).await {
                Ok(entry) => Ok(UploadOutcome::Queued {
                    id: entry.id,
                    error,
                }),
                Err(dlq) => Err(UploadError {
                    key: key.to_string(),
                    upload: error,
                    dlq,
                }),
            },
        }
    }

    /// Whether `key` is in the object store and no upload of it is pending in the DLQ; with
    /// `size`, the stored object must also have that size.
    pub async fn is_confirmed(
        &self,
        key: &str,
        size: Option<u64>,
    ) -> Result<bool, ObjectStoreError> {
        if self.dlq.contains_key(key) {
            return Ok(false);
        }
        match self.store.head(key).await {
            Ok(meta) => Ok(size.is_none_or(|s| s == meta.size)),
            Err(ObjectStoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn dlq(&self) -> &Arc<Dlq> {
        &self.dlq
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::breaker::{Breaker, BreakerConfig, ResilientStore, RetryConfig};
    use crate::objstore::dlq::DlqConfig;
    use crate::objstore::fault::{Fault, FaultStore};
    use bytes::Bytes;
    use std::path::Path;

    async fn setup(dir: &Path) -> (Arc<FaultStore>, Uploader) {
        let inner = Arc::new(FaultStore::new());
        let store = Arc::new(ResilientStore::new(
            inner.clone(),
            Breaker::new(BreakerConfig::default()),
            RetryConfig {
                attempts: 2,
                base_ms: 1,
                max_ms: 1,
            },
        ));
        let dlq = Dlq::open(dir, DlqConfig::default(), store.clone())
            .await
            .unwrap();
        (inner, Uploader::new(store, dlq))
    }

    #[tokio::test]
    async fn uploads_or_queues() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, up) = setup(dir.path()).await;
        let out = up
            .upload("c", "c/1", UploadSource::Bytes(Bytes::from_static(b"one")))
            .await
            .unwrap();
        assert!(out.is_uploaded());
        assert!(up.is_confirmed("c/1", Some(3)).await.unwrap());
        assert!(!up.is_confirmed("c/1", Some(4)).await.unwrap());

        inner.set(Fault::Down);
        let out = up
            .upload("c", "c/2", UploadSource::Bytes(Bytes::from_static(b"two")))
            .await
            .unwrap();
        let UploadOutcome::Queued { id, error } = out else {
            panic!("expected queued")
        };
        assert!(error.is_transient());
        assert_eq!(up.dlq().get(&id).await.unwrap().collection, "c");
        inner.set(Fault::None);
        assert!(!up.is_confirmed("c/2", None).await.unwrap());

        // While c/2 waits in the DLQ, a newer upload of c/2 queues behind it.
        let out = up
            .upload(
                "c",
                "c/2",
                UploadSource::Bytes(Bytes::from_static(b"two-v2")),
            )
            .await
            .unwrap();
        assert!(!out.is_uploaded());
        assert_eq!(up.dlq().depth(), 1);
        up.dlq()
            .retry(crate::objstore::dlq::Target::All)
            .await
            .unwrap();
        assert_eq!(inner.object("c/2").unwrap(), Bytes::from_static(b"two-v2"));
        assert!(up.is_confirmed("c/2", Some(6)).await.unwrap());
    }

    #[tokio::test]
    async fn permanent_failures_are_queued_too() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, up) = setup(dir.path()).await;
        inner.set(Fault::Denied);
        let out = up
            .upload("", "k", UploadSource::Bytes(Bytes::from_static(b"x")))
            .await
            .unwrap();
        assert!(
            matches!(out, UploadOutcome::Queued { ref error, .. } if error.kind() == crate::objstore::error::ErrorKind::Permanent)
        );
    }

    #[tokio::test]
    async fn missing_source_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_inner, up) = setup(dir.path()).await;
        let e = up
            .upload("", "k", UploadSource::File(dir.path().join("nope")))
            .await
            .unwrap_err();
        assert!(matches!(e.dlq, DlqError::Source { .. }), "{e}");
    }
}
