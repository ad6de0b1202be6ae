//! The local directory object store: one file per object, the embedded default.

use super::error::{ObjectStoreError, Operation, Result};
use super::store::{ObjectMeta, ObjectStore, TMP_DIR, local_file_error, validate_key};
use crate::fsutil::sync_dir;
use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Objects as files under a root directory; key `a/b/c` is the file `<root>/a/b/c`.
///
/// A put writes a temp file, fsyncs it, renames it into place and fsyncs the directory, so an
/// object is either absent, the old version or the complete new one, also after a crash.
/// Leftover temp files from a crash are removed by [`LocalDirStore::open`].
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    /// Use (and create) the directory `root`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            // Temp files were never acknowledged; a crash mid-put leaves them behind.
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(LocalDirStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, op: Operation, key: &str) -> Result<PathBuf> {
        validate_key(op, key)?;
        Ok(self.root.join(key))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Write `data` to a temp file (fsynced), then `place` it at the key's path; the temp file
    /// is removed when anything fails.
    async fn put_with<T: Send + 'static>(
        &self,
        key: &str,
        data: Bytes,
        place: impl FnOnce(&Path, &Path) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let op = Operation::Put;
        let dst = self.path_of(op, key)?;
        let tmp = self.tmp_path();
        let k = key.to_string();
        blocking(op, key, move || {
            let res = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&data)?;
                f.sync_all()?;
                drop(f);
                place(&tmp, &dst)
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res.map_err(|e| match ObjectStoreError::from_io(op, &k, &e) {
                // ENOENT while writing means the store directory itself is gone.
                ObjectStoreError::NotFound { .. } => ObjectStoreError::permanent(op, &k, e),
                other => other,
            })
        })
        .await
    }

    /// Move a complete, fsynced temp file to `dst` and make the rename durable.
    fn commit(tmp: &Path, dst: &Path) -> std::io::Result<()> {
        let dir = dst.parent().expect("object path has a parent");
        std::fs::create_dir_all(dir)?;
        std::fs::rename(tmp, dst)?;
        sync_dir(dir)
    }
}

async fn blocking<T: Send + 'static>(
    op: Operation,
    key: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ObjectStoreError::permanent(op, key, format!("I/O task failed: {e}")))?
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectMeta>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let rel = match path.strip_prefix(root) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let Some(rel) = rel.to_str() else { continue };
        let key = rel.replace(std::path::MAIN_SEPARATOR, "/");
        if key == TMP_DIR {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            // Descend only where keys below could still match the prefix.
            let dir_key = format!("{key}/");
            if dir_key.starts_with(prefix) || prefix.starts_with(&dir_key) {
                walk(root, &path, prefix, out)?;
            }
        } else if ft.is_file() && key.starts_with(prefix) {
            out.push(ObjectMeta {
                key,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalDirStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.put_with(key, data, Self::commit).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        self.put_with(key, data, |tmp, dst| {
            let dir = dst.parent().expect("object path has a parent");
            std::fs::create_dir_all(dir)?;
            // A link, unlike a rename, never replaces what is there: of two puts, one links
            // and the other finds the object.
            let created = match std::fs::hard_link(tmp, dst) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e),
            };
            std::fs::remove_file(tmp)?;
            if created {
                sync_dir(dir)?;
            }
            Ok(created)
        })
        .await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64> {
        let op = Operation::Put;
        let dst = self.path_of(op, key)?;
        let tmp = self.tmp_path();
        let src = path.to_path_buf();
        let k = key.to_string();
        blocking(op, key, move || {
            let mut from = std::fs::File::open(&src).map_err(|e| local_file_error(&k, &src, &e))?;
            let res = (|| {
                let mut to = std::fs::File::create(&tmp)?;
                let n = std::io::copy(&mut from, &mut to)?;
                to.sync_all()?;
                drop(to);
                Self::commit(&tmp, &dst)?;
                Ok(n)
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res.map_err(
                |e: std::io::Error| match ObjectStoreError::from_io(op, &k, &e) {
                    ObjectStoreError::NotFound { .. } => ObjectStoreError::permanent(op, &k, e),
                    other => other,
                },
            )
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let op = Operation::Get;
        let path = self.path_of(op, key)?;
        let k = key.to_string();
        blocking(op, key, move || {
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| ObjectStoreError::from_io(op, &k, &e))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let op = Operation::Head;
        let path = self.path_of(op, key)?;
        let k = key.to_string();
        blocking(op, key, move || match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(ObjectMeta {
                key: k,
                size: m.len(),
            }),
            Ok(_) => Err(ObjectStoreError::not_found(k)),
            Err(e) => Err(ObjectStoreError::from_io(op, &k, &e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let op = Operation::List;
        let root = self.root.clone();
        let p = prefix.to_string();
        blocking(op, prefix, move || {
            let mut out = Vec::new();
            walk(&root, &root, &p, &mut out).map_err(|e| {
                match ObjectStoreError::from_io(op, &p, &e) {
                    ObjectStoreError::NotFound { .. } => ObjectStoreError::permanent(op, &p, e),
                    other => other,
                }
            })?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let op = Operation::Delete;
        let path = self.path_of(op, key)?;
        let k = key.to_string();
        blocking(op, key, move || match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir).map_err(|e| ObjectStoreError::from_io(op, &k, &e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ObjectStoreError::from_io(op, &k, &e)),
        })
        .await
    }

    fn describe(&self) -> String {
        format!("dir {}", self.root.display())
    }

    fn is_remote(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::error::ErrorKind;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn put_if_absent_creates_once_among_racing_puts() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(LocalDirStore::open(dir.path()).unwrap());
        for round in 0..20 {
            let key = format!("log/{round:04}");
            let tasks: Vec<_> = (0..8u8)
                .map(|i| {
                    let (s, key) = (s.clone(), key.clone());
                    tokio::spawn(async move {
                        (
                            i,
                            s.put_if_absent(&key, Bytes::from(vec![i; 64]))
                                .await
                                .unwrap(),
                        )
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                let (i, created) = t.await.unwrap();
                if created {
                    winners.push(i);
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            // The object is the winner's, whole.
            assert_eq!(&s.get(&key).await.unwrap()[..], &[winners[0]; 64][..]);
        }
        assert!(
            !s.put_if_absent("log/0000", Bytes::from_static(b"x"))
                .await
                .unwrap()
        );
        // No temp file is left behind by the losers.
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
        assert_eq!(s.list("").await.unwrap().len(), 20);
    }

    #[tokio::test]
    async fn put_get_head_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDirStore::open(dir.path()).unwrap();
        s.put("a/b/one", Bytes::from_static(b"1")).await.unwrap();
        s.put("a/two", Bytes::from_static(b"22")).await.unwrap();
        s.put("b/three", Bytes::from_static(b"333")).await.unwrap();
        // Replacing is atomic and complete.
        s.put("a/two", Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(&s.get("a/two").await.unwrap()[..], b"two");
        assert_eq!(s.head("b/three").await.unwrap().size, 3);
        assert!(s.exists("a/b/one").await.unwrap());
        assert!(
            !s.exists("a/b").await.unwrap(),
            "a directory is not an object"
        );
        let keys: Vec<_> = s
            .list("a/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(keys, ["a/b/one", "a/two"]);
        let all: Vec<_> = s
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(all, ["a/b/one", "a/two", "b/three"]);
        let partial: Vec<_> = s
            .list("a/t")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(partial, ["a/two"]);
        s.delete("a/two").await.unwrap();
        s.delete("a/two").await.unwrap(); // idempotent
        assert_eq!(
            s.get("a/two").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(s.head("zzz").await.unwrap_err().kind(), ErrorKind::NotFound);
        // No temp files left behind, and none listed.
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn put_file_and_get_to_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDirStore::open(&dir.path().join("objects")).unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        assert_eq!(s.put_file("snap/x", &src).await.unwrap(), 100_000);
        let dst = dir.path().join("dst.bin");
        assert_eq!(s.get_to_file("snap/x", &dst).await.unwrap(), 100_000);
        assert_eq!(std::fs::read(&dst).unwrap(), vec![7u8; 100_000]);
        let missing = s
            .put_file("snap/y", &dir.path().join("nope"))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Permanent, "{missing}");
    }

    #[tokio::test]
    async fn invalid_keys_are_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDirStore::open(dir.path()).unwrap();
        for key in [
            "",
            "/abs",
            "a//b",
            "../up",
            "a/./b",
            "a\\b",
            ".akidb-tmp/x",
            "a/",
        ] {
            let e = s.put(key, Bytes::new()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Permanent, "{key:?}: {e}");
        }
    }

    #[tokio::test]
    async fn open_removes_leftover_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalDirStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(TMP_DIR).join("crashed"), b"partial").unwrap();
        s.put("k", Bytes::from_static(b"v")).await.unwrap();
        let s = LocalDirStore::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
        assert_eq!(&s.get("k").await.unwrap()[..], b"v");
    }
}
