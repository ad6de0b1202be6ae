//! Object storage: the seam every upload to and fetch from the cold tier goes through.
//!
//! - [`ObjectStore`]: the trait (put, get, head, list, delete), like raft-engine's
//!   `FileSystem` under all of its I/O. Errors are typed ([`ObjectStoreError`]) and classified
//!   from HTTP status codes and I/O error kinds, never from message text.
//! - [`LocalDirStore`]: a directory on local disk, the embedded default.
//! - [`S3Store`]: S3 (or MinIO, moto, ...) through `minio-rsc`.
//! - [`ObjectStoreConfig`] and [`open`]: flags and environment, and the constructor that picks
//!   one of the two.
//!
//! Resilience (retries, circuit breaker) wraps any store from outside: see
//! [`crate::breaker::ResilientStore`]. Uploads that still fail go to [`crate::dlq`].

mod config;
mod local;
mod s3;

#[cfg(test)]
pub(crate) mod fault;

pub use config::{ObjectStoreConfig, Secret};
pub use local::LocalDirStore;
pub use s3::{S3Settings, S3Store};

use async_trait::async_trait;
use bytes::Bytes;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The object store operations, as the `operation` label of `akidb_s3_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Put,
    Get,
    Head,
    List,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Put,
        Operation::Get,
        Operation::Head,
        Operation::List,
        Operation::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::Get => "get",
            Operation::Head => "head",
            Operation::List => "list",
            Operation::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `head` and `list` report about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// The class of an [`ObjectStoreError`], for matching without fields and as a log/metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    Transient,
    NotFound,
    Permanent,
    BreakerOpen,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Permanent => "permanent",
            ErrorKind::BreakerOpen => "breaker_open",
        }
    }
}

/// A failed object store call.
///
/// Classification is done where the error is born, from structured facts only: the HTTP
/// status code, the `reqwest` error class (connect, timeout, body), the S3 error *code*
/// field, or the `std::io::ErrorKind`. `detail` is for people and is never inspected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjectStoreError {
    /// The store did not answer, or answered "try again later": a timeout, a refused or reset
    /// connection, HTTP 408, 429 or 5xx, a full or failing local disk. Retrying may succeed;
    /// [`crate::breaker::ResilientStore`] retries these and counts them as breaker failures.
    #[error("object store {op} of `{key}` failed (transient; retrying may succeed): {detail}")]
    Transient {
        op: Operation,
        key: String,
        detail: String,
    },
    /// The object does not exist (HTTP 404 on get/head, `ENOENT` in the local directory).
    /// The store answered, so this is not a breaker failure.
    #[error("object `{key}` not found in the object store")]
    NotFound { key: String },
    /// The request cannot succeed as sent: an invalid key, access denied, a missing bucket,
    /// any other 4xx, an unparseable answer. Not retried and not a breaker failure (the store
    /// is up; the request or the configuration is wrong).
    #[error("object store {op} of `{key}` failed: {detail}")]
    Permanent {
        op: Operation,
        key: String,
        detail: String,
    },
    /// The circuit breaker is open: the call failed fast without reaching the store.
    #[error(transparent)]
    BreakerOpen(#[from] crate::breaker::BreakerOpen),
}

impl ObjectStoreError {
    pub fn transient(op: Operation, key: impl Into<String>, detail: impl fmt::Display) -> Self {
        ObjectStoreError::Transient {
            op,
            key: key.into(),
            detail: detail.to_string(),
        }
    }

    pub fn permanent(op: Operation, key: impl Into<String>, detail: impl fmt::Display) -> Self {
        ObjectStoreError::Permanent {
            op,
            key: key.into(),
            detail: detail.to_string(),
        }
    }

    pub fn not_found(key: impl Into<String>) -> Self {
        ObjectStoreError::NotFound { key: key.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            ObjectStoreError::Transient { .. } => ErrorKind::Transient,
            ObjectStoreError::NotFound { .. } => ErrorKind::NotFound,
            ObjectStoreError::Permanent { .. } => ErrorKind::Permanent,
            ObjectStoreError::BreakerOpen(_) => ErrorKind::BreakerOpen,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Classify a local I/O error (local directory store, reading a file to upload) by kind.
    pub fn from_io(op: Operation, key: &str, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => ObjectStoreError::not_found(key),
            K::PermissionDenied
            | K::InvalidInput
            | K::InvalidData
            | K::ReadOnlyFilesystem
            | K::IsADirectory
            | K::NotADirectory
            | K::DirectoryNotEmpty
            | K::InvalidFilename
            | K::FileTooLarge
            | K::Unsupported
            | K::AlreadyExists => ObjectStoreError::permanent(op, key, e),
            // Full disk, quota, EIO, interrupted, timed out, ...: may clear up.
            _ => ObjectStoreError::transient(op, key, e),
        }
    }
}

impl From<ObjectStoreError> for crate::error::StorageError {
    fn from(e: ObjectStoreError) -> Self {
        use crate::error::StorageError;
        match &e {
            ObjectStoreError::Transient { .. } | ObjectStoreError::BreakerOpen(_) => {
                StorageError::Unavailable(e.to_string())
            }
            ObjectStoreError::NotFound { .. } => StorageError::DataLoss(e.to_string()),
            ObjectStoreError::Permanent { .. } => StorageError::Internal(e.to_string()),
        }
    }
}

pub type Result<T, E = ObjectStoreError> = std::result::Result<T, E>;

/// An object store. Implementations are cheap to share (`Arc<dyn ObjectStore>`).
///
/// Keys are `/`-separated relative paths (see [`validate_key`]); every implementation rejects
/// an invalid key with [`ObjectStoreError::Permanent`] so that both behave the same.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Store `data` under `key`, replacing any object there. Atomic: a reader sees the old
    /// object or the new one, never a part of it.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Store the contents of the local file `path` under `key`; returns the bytes stored.
    /// Large files go up in parts without being read whole into memory (where supported).
    /// A missing or unreadable local file is `Permanent`.
    async fn put_file(&self, key: &str, path: &Path) -> Result<u64> {
        let data = tokio::fs::read(path)
            .await
            .map_err(|e| local_file_error(key, path, &e))?;
        let len = data.len() as u64;
        self.put(key, Bytes::from(data)).await?;
        Ok(len)
    }

    /// The whole object.
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Write the object to the local file `path` atomically (temp file, fsync, rename);
    /// returns its size. Where supported the object is streamed, not held in memory.
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64> {
        let data = self.get(key).await?;
        let len = data.len() as u64;
        let path = path.to_path_buf();
        let k = key.to_string();
        tokio::task::spawn_blocking(move || write_atomic(&path, &data))
            .await
            .map_err(|e| ObjectStoreError::permanent(Operation::Get, &k, e))?
            .map_err(|e| ObjectStoreError::from_io(Operation::Get, &k, &e))
            .map_err(|e| match e {
                // ENOENT here is the destination directory, not the object.
                ObjectStoreError::NotFound { key } => ObjectStoreError::permanent(
                    Operation::Get,
                    key,
                    "destination directory does not exist",
                ),
                other => other,
            })?;
        Ok(len)
    }

    /// Size of the object; `NotFound` when there is none.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Whether the object exists.
    async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(ObjectStoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every object whose key starts with `prefix` (plain string prefix; `""` lists all),
    /// sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Remove the object. Idempotent: removing a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Where the objects go, for logs and status (`s3://bucket at http://host:9000`,
    /// `dir /var/lib/akidb/objects`). Never contains credentials.
    fn describe(&self) -> String;

    /// Whether the store is remote (S3) rather than a local directory.
    fn is_remote(&self) -> bool;
}

/// Longest key accepted (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Check that `key` is a relative `/`-separated path: not empty, at most 1024 bytes, no empty,
/// `.` or `..` segment, no leading `/`, no backslash or control character, and not under the
/// reserved `.akidb-tmp/` prefix.
pub fn validate_key(op: Operation, key: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(ObjectStoreError::permanent(
            op,
            key,
            format!("invalid key: {why}"),
        ))
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad("longer than 1024 bytes");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control character or backslash");
    }
    for seg in key.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return bad("empty, `.` or `..` path segment");
        }
    }
    if key.split('/').next() == Some(local::TMP_DIR) {
        return bad("reserved prefix");
    }
    Ok(())
}

/// The error for a local file (the source of an upload) that cannot be read.
pub(crate) fn local_file_error(key: &str, path: &Path, e: &std::io::Error) -> ObjectStoreError {
    ObjectStoreError::permanent(
        Operation::Put,
        key,
        format!("cannot read local file {}: {e}", path.display()),
    )
}

/// Write `data` to `path` atomically: a temp file in the same directory, fsync, rename over
/// `path`, fsync the directory. Blocking.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// fsync a directory so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
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
