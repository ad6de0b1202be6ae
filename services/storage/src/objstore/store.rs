//! The object store seam: the trait every store implements, and the rules for keys.

use super::error::{ObjectStoreError, Operation, Result};
use crate::fsutil::write_atomic;
use async_trait::async_trait;
use bytes::Bytes;
use std::fmt;
use std::path::Path;

/// Temp files of the local store's in-progress puts live here, under its root, so that a
/// rename into place is atomic (same file system) and listings never see them; reserved as
/// a key prefix in every store.
pub const TMP_DIR: &str = ".akidb-tmp";

/// What `head` and `list` report about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// An object store. Implementations are cheap to share (`Arc<dyn ObjectStore>`).
///
/// Keys are `/`-separated relative paths (see [`validate_key`]); every implementation rejects
/// an invalid key with [`ObjectStoreError::Permanent`] so that both behave the same.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Store `data` under `key`, replacing any object there. Atomic: a reader sees the old
    /// object or the new one, never a part of it.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;

    /// Store `data` under `key` only if no object is there: a create-only conditional put
    /// (S3's `If-None-Match: *`, a hard link in the local directory). `Ok(true)`: created;
    /// `Ok(false)`: an object was there already and is left as it was. Of two calls on one
    /// key, exactly one gets `Ok(true)`. After an ambiguous failure (a timeout) a retry may
    /// find the caller's own object: callers tell theirs apart by its content. At most one
    /// part (`--s3-part-size`): larger data is `Permanent`.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool>;

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
    if key.split('/').next() == Some(TMP_DIR) {
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
