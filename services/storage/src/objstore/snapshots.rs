//! Snapshot copies in the object store: where they go, how they get there (every file, the
//! manifest last, through the [`Uploader`] so that nothing is lost when the store is down),
//! how a copy is confirmed, how old copies are pruned, and how a copy comes back (every file
//! checked against its checksum).
//!
//! Key of one file: `collections/<collection>/snapshots/<snapshot id>/<file>`; on a node of
//! a cluster, whose object store the other nodes share, `<collection>` is
//! `<node id>/<local name>` (two nodes hold copies of one shard under one local name).

use super::error::ObjectStoreError;
use super::layer::ObjectLayer;
use super::store::ObjectStore;
use super::upload::{UploadOutcome, Uploader};
use crate::error::{FieldProblem, Result, StorageError};
use crate::fsutil::sync_dir;
use crate::snapshot::{self, MANIFEST, SnapshotFile};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// The object key of one snapshot file.
pub fn object_key(collection: &str, snapshot_id: &str, file: &str) -> String {
    format!("collections/{collection}/snapshots/{snapshot_id}/{file}")
}

/// The object layer as the (blocking) engine sees it: snapshot copies up and down.
#[derive(Clone)]
pub struct SnapshotStore {
    /// Retries and breaker around the configured store: every get, list and delete.
    store: Arc<dyn ObjectStore>,
    /// Every put: to the store, or to the dead-letter queue when the store fails.
    uploader: Uploader,
    /// The runtime the object layer's async calls run on (the engine's callers block).
    runtime: tokio::runtime::Handle,
    /// A node of a cluster: its id, which qualifies its collections' keys.
    node: Option<String>,
}

impl SnapshotStore {
    /// Over a running object layer; calls are driven on `runtime`.
    pub fn new(layer: &ObjectLayer, runtime: tokio::runtime::Handle) -> Self {
        SnapshotStore {
            store: layer.store.clone(),
            uploader: layer.uploader.clone(),
            runtime,
            node: None,
        }
    }

    /// The same, for node `node` of a cluster: its copies are kept apart from the other
    /// nodes' in the shared store.
    pub fn for_node(self, node: &str) -> Self {
        SnapshotStore {
            node: Some(node.to_string()),
            ..self
        }
    }

    /// The name `name`'s keys are made from.
    fn qualified(&self, name: &str) -> String {
        match &self.node {
            Some(n) => format!("{n}/{name}"),
            None => name.to_string(),
        }
    }

    /// Upload every file of the snapshot `id` in `dir` (the manifest last) unless the store
    /// already has it, then confirm each with its size. Returns the files. Blocking.
    pub fn upload_and_confirm(
        &self,
        name: &str,
        dir: &Path,
        id: &str,
    ) -> Result<Vec<SnapshotFile>> {
        let name = &self.qualified(name);
        let files = snapshot::list_files(dir)?;
        let uploader = self.uploader.clone();
        let (name, dir, id) = (name.to_string(), dir.to_path_buf(), id.to_string());
        let fs2 = files.clone();
        self.runtime.block_on(async move {
            upload(&uploader, &name, &dir, &id, &fs2).await?;
            for f in &fs2 {
                let key = object_key(&name, &id, &f.name);
                if !uploader.is_confirmed(&key, Some(f.size_bytes)).await? {
                    return Err(StorageError::NotConfirmed { key });
                }
            }
            Ok(())
        })?;
        Ok(files)
    }

    /// Upload the snapshot `id` in `dir` in the background (the local copy stays). Once the
    /// store has every file, `uploaded(bytes)` is called, and then copies older than the
    /// newest `keep` are removed, except the one `keep_also()` names (the copy a cold
    /// collection is restored from).
    pub fn upload_in_background(
        &self,
        name: &str,
        dir: &Path,
        id: &str,
        keep: usize,
        uploaded: impl FnOnce(u64) -> Option<Option<String>> + Send + 'static,
    ) {
        let name = &self.qualified(name);
        let Ok(files) = snapshot::list_files(dir) else {
            return;
        };
        let (store, uploader) = (self.store.clone(), self.uploader.clone());
        let (name, dir, id) = (name.to_string(), dir.to_path_buf(), id.to_string());
        self.runtime.spawn(async move {
            match upload(&uploader, &name, &dir, &id, &files).await {
                Ok(true) => {
                    // `None`: the collection is gone; `Some(cold)`: keep `cold` too.
                    let Some(cold) = uploaded(files.iter().map(|f| f.size_bytes).sum()) else {
                        return;
                    };
                    match prune(store.as_ref(), &name, keep, &id, cold.as_deref()).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(collection = %name, objects = n, keep, "old snapshots removed from the object store")
                        }
                        Err(e) => {
                            tracing::warn!(collection = %name, error = %e, "old snapshots not removed from the object store; retried after the next upload")
                        }
                    }
                }
                Ok(false) => {
                    tracing::warn!(collection = %name, snapshot = %id, "snapshot upload queued in the dead-letter queue")
                }
                Err(e) => {
                    tracing::warn!(collection = %name, snapshot = %id, error = %e, "snapshot upload failed")
                }
            }
        });
    }

    /// Whether the object store has every file of the local snapshot `id` in `dir`.
    pub async fn is_confirmed(&self, name: &str, dir: &Path, id: &str) -> bool {
        let name = &self.qualified(name);
        let Ok(files) = snapshot::list_files(dir) else {
            return false;
        };
        for f in files {
            let key = object_key(name, id, &f.name);
            match self.uploader.is_confirmed(&key, Some(f.size_bytes)).await {
                Ok(true) => {}
                _ => return false,
            }
        }
        true
    }

    /// Download the copy `id` of `name` (its `files`) into the directory `into`, which is
    /// created, then check every file against its size and SHA-256 and sync the directory.
    /// Blocking.
    pub fn download(
        &self,
        name: &str,
        id: &str,
        files: &[SnapshotFile],
        into: &Path,
    ) -> Result<()> {
        let name = &self.qualified(name);
        if into.exists() {
            fs::remove_dir_all(into)?;
        }
        fs::create_dir_all(into)?;
        let (store, name, id) = (self.store.clone(), name.to_string(), id.to_string());
        let (files2, into2) = (files.to_vec(), into.to_path_buf());
        self.runtime.block_on(async move {
            for f in &files2 {
                let key = object_key(&name, &id, &f.name);
                store.get_to_file(&key, &into2.join(&f.name)).await?;
            }
            Ok::<_, ObjectStoreError>(())
        })?;
        for f in files {
            verify_download(&into.join(&f.name), f)?;
        }
        sync_dir(into)?;
        Ok(())
    }
}

impl SnapshotStore {
    /// Fetch the object `key` (as given: not a snapshot file's key) into the file `into`,
    /// for a restore from the object store. A key the store does not have is NOT_FOUND; a
    /// malformed one (`..`, empty segments) INVALID_ARGUMENT. Blocking.
    pub fn fetch(&self, key: &str, into: &Path) -> Result<u64> {
        super::store::validate_key(super::error::Operation::Get, key)
            .map_err(|e| StorageError::InvalidField(FieldProblem::ObjectKey(e.to_string())))?;
        let (store, k, into) = (self.store.clone(), key.to_string(), into.to_path_buf());
        self.runtime
            .block_on(async move { store.get_to_file(&k, &into).await })
            .map_err(|e| match e.kind() {
                super::error::ErrorKind::NotFound => StorageError::ObjectNotFound(key.to_string()),
                _ => e.into(),
            })
    }
}

/// Check a downloaded file against its size and SHA-256.
fn verify_download(path: &Path, f: &SnapshotFile) -> Result<()> {
    let bytes = fs::read(path)?;
    if bytes.len() as u64 != f.size_bytes || hex::encode(Sha256::digest(&bytes)) != f.sha256 {
        return Err(StorageError::DownloadMismatch {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            expected_size: f.size_bytes,
        });
    }
    Ok(())
}

/// Upload the files of a snapshot (manifest last), skipping those the store already has.
/// `Ok(true)`: all uploaded; `Ok(false)`: some went to the DLQ.
async fn upload(
    uploader: &Uploader,
    name: &str,
    dir: &Path,
    id: &str,
    files: &[SnapshotFile],
) -> Result<bool> {
    let mut all = true;
    // The manifest goes last so that a complete manifest in the store means a complete copy.
    let (manifest, rest): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.name == MANIFEST);
    for f in rest.into_iter().chain(manifest) {
        let key = object_key(name, id, &f.name);
        if matches!(
            uploader.is_confirmed(&key, Some(f.size_bytes)).await,
            Ok(true)
        ) {
            continue;
        }
        match uploader
            .upload(
                name,
                &key,
                super::dlq::UploadSource::File(dir.join(&f.name)),
            )
            .await?
        {
            UploadOutcome::Uploaded { .. } => {}
            UploadOutcome::Queued { .. } => all = false,
        }
    }
    Ok(all)
}

/// Remove from the object store every snapshot of `collection` except the newest `keep`
/// (by id, which orders by WAL sequence), `uploaded` (just confirmed) and `cold` (the copy a
/// cold collection is restored from). Each snapshot loses its manifest first, so an
/// interrupted removal leaves an incomplete snapshot that nothing restores from, never a
/// manifest naming missing files. Returns the objects deleted.
pub async fn prune(
    store: &dyn ObjectStore,
    collection: &str,
    keep: usize,
    uploaded: &str,
    cold: Option<&str>,
) -> std::result::Result<usize, ObjectStoreError> {
    let prefix = format!("collections/{collection}/snapshots/");
    let objects = store.list(&prefix).await?;
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in objects {
        if let Some((id, _file)) = o.key[prefix.len()..].split_once('/') {
            by_id.entry(id.to_string()).or_default().push(o.key.clone());
        }
    }
    let newest: Vec<String> = by_id.keys().rev().take(keep.max(1)).cloned().collect();
    let manifest_suffix = format!("/{MANIFEST}");
    let mut deleted = 0;
    for (id, mut keys) in by_id {
        if newest.contains(&id) || id == uploaded || Some(id.as_str()) == cold {
            continue;
        }
        keys.sort_by_key(|k| !k.ends_with(&manifest_suffix));
        for k in keys {
            store.delete(&k).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prune_remote_keeps_the_newest_the_uploaded_and_the_cold_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::local::LocalDirStore::open(dir.path()).unwrap();
        let ids = ["001-a", "002-b", "003-c", "004-d", "005-e"];
        for id in ids {
            for f in ["seg-1.bin", MANIFEST] {
                store
                    .put(&object_key("c", id, f), bytes::Bytes::from_static(b"x"))
                    .await
                    .unwrap();
            }
        }
        // Another collection whose name shares the prefix is not touched.
        store
            .put(
                &object_key("c2", "001-a", MANIFEST),
                bytes::Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
        let n = prune(&store, "c", 2, "003-c", Some("001-a")).await.unwrap();
        assert_eq!(n, 2, "002-b: its two files");
        let left: Vec<String> = store
            .list("collections/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        let mut ids_left: Vec<&str> = left
            .iter()
            .filter_map(|k| k.strip_prefix("collections/c/snapshots/"))
            .map(|k| k.split_once('/').unwrap().0)
            .collect();
        ids_left.dedup();
        assert_eq!(ids_left, ["001-a", "003-c", "004-d", "005-e"]);
        assert!(left.contains(&object_key("c2", "001-a", MANIFEST)));
        // 003-c was kept only as the one just uploaded.
        assert_eq!(
            prune(&store, "c", 2, "005-e", Some("001-a")).await.unwrap(),
            2
        );
        assert_eq!(
            prune(&store, "c", 2, "005-e", Some("001-a")).await.unwrap(),
            0
        );
    }
}
