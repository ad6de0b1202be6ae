//! The catalog: create, delete and list collections, their aliases, and the one way a request
//! reaches a collection ([`Engine::lookup`], which resolves an alias).

use super::{DELETED_PREFIX, Engine};
use crate::archive;
use crate::collection::{Collection, SPEC_FILE, SnapshotPin};
use crate::error::{FieldProblem, Result, StorageError};
use crate::fsutil::{Sums, sync_dir, write_atomic};
use crate::model::{CollectionSpec, CollectionStats, Tier};
use crate::snapshot::{self, MANIFEST, SnapshotManifest};
use crate::store::CollectionStore;
use crate::tier::Slot;
use crate::validate;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The aliases, in the data directory.
const ALIASES_FILE: &str = "aliases.json";

/// A collection a request can use now, and how it got there.
pub struct Access {
    pub collection: Arc<Collection>,
    /// The tier the collection was in when the request came.
    pub served: Tier,
    /// Whether it had to be loaded.
    pub loaded: bool,
}

/// What [`Engine::lookup`] found.
pub enum Lookup {
    /// In memory: use it.
    Hot(Access),
    /// Warm or cold: it must be loaded first, which blocks (disk, object store): call
    /// [`Loader::load`] off the async threads.
    Unloaded(Loader),
}

/// The pending load of a warm or cold collection.
pub struct Loader {
    engine: Arc<Engine>,
    slot: Arc<Slot>,
}

impl Loader {
    /// Bring the collection into memory (fetching it first if cold). Blocking.
    pub fn load(self) -> Result<Access> {
        let (collection, served, loaded) = self.engine.load(&self.slot)?;
        Ok(Access {
            collection,
            served,
            loaded,
        })
    }
}

impl Lookup {
    /// The collection, loaded if need be, on this thread. Blocking.
    pub fn get(self) -> Result<Access> {
        match self {
            Lookup::Hot(a) => Ok(a),
            Lookup::Unloaded(l) => l.load(),
        }
    }
}

impl Engine {
    /// The one way a read or a write reaches a collection: hot, or the load it needs. Marks
    /// the collection used (the tier policy demotes idle ones).
    pub fn lookup(self: &Arc<Self>, name: &str) -> Result<Lookup> {
        let slot = self.slot(name)?;
        slot.touch();
        Ok(match slot.loaded() {
            Some(collection) => Lookup::Hot(Access {
                collection,
                served: Tier::Hot,
                loaded: false,
            }),
            None => Lookup::Unloaded(Loader {
                engine: self.clone(),
                slot,
            }),
        })
    }

    /// The catalog entry of a collection in any tier (status, pinning, snapshots); a request
    /// for its data goes through [`Engine::lookup`].
    pub fn slot(&self, name: &str) -> Result<Arc<Slot>> {
        validate::name(name)?;
        self.check_ready()?;
        let target = self.aliases.read().get(name).cloned();
        self.collections
            .read()
            .get(target.as_deref().unwrap_or(name))
            .cloned()
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))
    }

    /// Every alias (alias → collection).
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.aliases.read().clone()
    }

    /// Apply an UpdateAliases call (`akidb_proto::aliases::apply`): every action or none,
    /// durable before it answers. Returns the aliases after it.
    pub fn update_aliases(
        &self,
        actions: &[akidb_proto::v1::AliasAction],
    ) -> std::result::Result<BTreeMap<String, String>, tonic::Status> {
        self.check_ready()?;
        let _d = self.ddl.lock();
        let mut next = self.aliases();
        {
            let collections = self.collections.read();
            akidb_proto::aliases::apply(&mut next, |c| collections.contains_key(c), actions)?;
        }
        self.save_aliases(&next)?;
        *self.aliases.write() = next.clone();
        Ok(next)
    }

    fn save_aliases(&self, aliases: &BTreeMap<String, String>) -> Result<()> {
        let json = serde_json::to_vec(aliases).expect("a map of strings serializes");
        write_atomic(&self.opts.data_dir.join(ALIASES_FILE), &json)?;
        Ok(())
    }

    /// Read the aliases saved (none when the file is missing).
    pub(super) fn load_aliases(&self) -> Result<()> {
        let p = self.opts.data_dir.join(ALIASES_FILE);
        let aliases = match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StorageError::Unreadable {
                what: "aliases",
                path: p,
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        *self.aliases.write() = aliases;
        Ok(())
    }

    /// Every catalog entry.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.collections.read().values().cloned().collect()
    }

    /// Every hot collection.
    pub fn all(&self) -> Vec<Arc<Collection>> {
        self.collections
            .read()
            .values()
            .filter_map(|s| s.loaded())
            .collect()
    }

    /// Stats of a collection without loading it.
    pub fn stats(&self, name: &str) -> Result<CollectionStats> {
        Ok(self.slot(name)?.stats())
    }

    pub fn list(&self) -> Vec<CollectionStats> {
        self.slots().iter().map(|s| s.stats()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.collections.read().keys().cloned().collect()
    }

    /// A new collection may take `name`: no collection or alias has it.
    fn check_free(&self, name: &str) -> Result<()> {
        if self.collections.read().contains_key(name) {
            return Err(StorageError::CollectionExists(name.to_string()));
        }
        if let Some(target) = self.aliases.read().get(name) {
            return Err(StorageError::NameIsAlias {
                name: name.to_string(),
                collection: target.clone(),
            });
        }
        Ok(())
    }

    pub fn create(&self, spec: CollectionSpec) -> Result<CollectionStats> {
        validate::spec(&spec)?;
        self.check_ready()?;
        let _d = self.ddl.lock();
        let dir = self.new_dir(&spec.name)?;
        let c = Collection::create(&dir, spec, self.opts.collection)?;
        self.add_hot(&c)
    }

    /// The directory of a new collection `name` (the caller holds the DDL lock): the name
    /// free, a directory a crash left under it removed.
    fn new_dir(&self, name: &str) -> Result<PathBuf> {
        self.check_free(name)?;
        let dir = self.collections_dir().join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        Ok(dir)
    }

    /// A new collection, loaded, into the catalog as hot (the caller holds the DDL lock).
    fn add_hot(&self, c: &Arc<Collection>) -> Result<CollectionStats> {
        self.attach_builder(c);
        let stats = c.stats();
        let slot = Slot::hot(c.clone(), c.spec().pinned);
        slot.persist()?;
        self.collections.write().insert(c.spec().name.clone(), slot);
        self.refresh_gauges();
        Ok(stats)
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        validate::name(name)?;
        self.check_ready()?;
        let _d = self.ddl.lock();
        if !self.collections.read().contains_key(name) {
            return Err(StorageError::CollectionNotFound(name.to_string()));
        }
        // Its aliases go first: a crash after this leaves the collection without them.
        let mut aliases = self.aliases();
        let before = aliases.len();
        aliases.retain(|_, c| c != name);
        if aliases.len() != before {
            self.save_aliases(&aliases)?;
            *self.aliases.write() = aliases;
        }
        let slot = self
            .collections
            .write()
            .remove(name)
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))?;
        if let Some(c) = slot.unload_for_delete() {
            c.deleted.store(true, Ordering::Release);
        }
        // Rename first: a crash mid-removal leaves a `.deleted-` directory, cleaned on start.
        let root = self.collections_dir();
        let grave = root.join(format!("{DELETED_PREFIX}{name}-{}", std::process::id()));
        fs::rename(&slot.dir, &grave)?;
        sync_dir(&root)?;
        fs::remove_dir_all(&grave)?;
        self.refresh_gauges();
        Ok(())
    }
}

impl Engine {
    /// The local snapshot of `name` to send (DownloadSnapshot): `id`, else the newest, or
    /// with `create` a new one; kept from pruning while the returned pin lives. Blocking
    /// (a warm or cold collection is loaded; `create` takes a snapshot).
    pub fn snapshot_to_send(
        self: &Arc<Self>,
        name: &str,
        id: &str,
        create: bool,
    ) -> Result<(SnapshotPin, PathBuf, SnapshotManifest)> {
        let c = self.lookup(name)?.get()?.collection;
        let m = if create {
            self.snapshot_collection(&c)?
        } else {
            let mut all = c.snapshots()?;
            let found = if id.is_empty() {
                all.pop()
            } else {
                // Compared with the ids listed, never joined to a path.
                all.into_iter().find(|m| m.id == id)
            };
            found.ok_or_else(|| match id {
                "" => StorageError::NoSnapshotYet(c.spec().name.clone()),
                _ => StorageError::SnapshotNotFound {
                    collection: c.spec().name.clone(),
                    id: id.to_string(),
                },
            })?
        };
        let pin = c.pin_snapshot(&m.id);
        let dir = snapshot::snapshots_dir(c.dir()).join(&m.id);
        // Pruned between the listing and the pin: the caller may ask again.
        snapshot::read_manifest(&dir)?;
        Ok((pin, dir, m))
    }

    /// A new collection `name` from the snapshot archive `input` ([`crate::archive`]),
    /// which must have the SHA-256 `expected_sha256` when that is not empty. The archive is
    /// unpacked into a directory of its own under the collections directory (every entry
    /// checked), its snapshot is loaded once to prove it whole, and only then is the
    /// directory renamed into place and the collection opened. A refused archive leaves
    /// nothing behind (and a crash midway, a `.tmp` directory recovery removes). Blocking.
    pub fn restore(
        &self,
        name: &str,
        expected_sha256: &str,
        input: impl Read,
    ) -> Result<(CollectionStats, SnapshotManifest, Sums)> {
        self.check_restore(name, expected_sha256)?;
        self.restore_checked(name, expected_sha256, input)
    }

    /// [`Engine::restore`] from the archive at `key` in the object store (fetched into a
    /// temp file under the collections directory first, removed after).
    pub fn restore_from_store(
        &self,
        name: &str,
        expected_sha256: &str,
        key: &str,
    ) -> Result<(CollectionStats, SnapshotManifest, Sums)> {
        self.check_restore(name, expected_sha256)?;
        let objects = self.objects().ok_or(StorageError::NoObjectStore)?;
        let file = self
            .collections_dir()
            .join(format!(".upload-{}.tmp", uuid::Uuid::new_v4().simple()));
        let res = objects
            .fetch(key, &file)
            .and_then(|_| self.restore_checked(name, expected_sha256, fs::File::open(&file)?));
        let _ = fs::remove_file(&file);
        res
    }

    /// What a restore checks before it reads anything.
    fn check_restore(&self, name: &str, expected_sha256: &str) -> Result<()> {
        validate::name(name)?;
        let sha = expected_sha256;
        if !sha.is_empty() && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(FieldProblem::Sha256(sha.to_string()).into());
        }
        self.check_ready()?;
        self.check_free(name)
    }

    fn restore_checked(
        &self,
        name: &str,
        expected_sha256: &str,
        input: impl Read,
    ) -> Result<(CollectionStats, SnapshotManifest, Sums)> {
        let root = self.collections_dir();
        let tmp = root.join(format!(".restore-{}.tmp", uuid::Uuid::new_v4().simple()));
        let res = self.restore_into(&tmp, name, expected_sha256, input);
        if let Err(e) = &res {
            let _ = fs::remove_dir_all(&tmp);
            tracing::warn!(collection = %name, error = %e, "snapshot restore refused");
        }
        res
    }

    fn restore_into(
        &self,
        tmp: &Path,
        name: &str,
        expected_sha256: &str,
        input: impl Read,
    ) -> Result<(CollectionStats, SnapshotManifest, Sums)> {
        fs::create_dir(tmp)?;
        let incoming = tmp.join("incoming");
        let (mut m, sum) = archive::unpack(input, &incoming)?;
        if !expected_sha256.is_empty() && !expected_sha256.eq_ignore_ascii_case(&sum.sha256) {
            return Err(StorageError::InvalidArchive(format!(
                "its SHA-256 is {}, the request expects {expected_sha256}",
                sum.sha256
            )));
        }
        let spec = CollectionSpec {
            name: name.to_string(),
            ..m.collection.clone()
        };
        validate::spec(&spec)
            .map_err(|e| StorageError::InvalidArchive(format!("its collection spec: {e}")))?;
        // Every segment decoded and checked (graphs, codes, vector files), then let go.
        drop(
            snapshot::load(&incoming, None)
                .map_err(|e| StorageError::InvalidArchive(e.to_string()))?,
        );
        m.collection = spec.clone();
        let json = serde_json::to_vec_pretty(&m).expect("manifest serializes");
        write_atomic(&incoming.join(MANIFEST), &json)?;
        let snaps = snapshot::snapshots_dir(tmp);
        fs::create_dir(&snaps)?;
        fs::rename(&incoming, snaps.join(&m.id))?;
        sync_dir(&snaps)?;
        crate::collection::save_spec(tmp, &spec)?;
        let d = self.ddl.lock();
        let dir = self.new_dir(name)?;
        fs::rename(tmp, &dir)?;
        sync_dir(&self.collections_dir())?;
        let c = Collection::open(&dir, self.opts.collection, |_, _| {}).inspect_err(|_| {
            let _ = fs::remove_dir_all(&dir);
        })?;
        let stats = self.add_hot(&c)?;
        drop(d);
        self.upload_snapshot(&c, &m.id);
        tracing::info!(collection = %name, snapshot = %m.id, points = stats.point_count, bytes = sum.size_bytes, "collection restored from a snapshot archive");
        Ok((stats, m, sum))
    }
}

/// The spec of the collection in `dir`.
pub(super) fn read_spec(dir: &std::path::Path) -> Result<CollectionSpec> {
    let p = dir.join(SPEC_FILE);
    serde_json::from_slice(&fs::read(&p)?).map_err(|e| StorageError::Unreadable {
        what: "collection spec",
        path: p,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineOptions;
    use crate::model::Metric;
    use akidb_proto::v1 as pb;

    fn create(alias: &str, collection: &str) -> pb::AliasAction {
        pb::AliasAction::create(alias, collection)
    }

    fn search(e: &Arc<Engine>, name: &str, q: &[f32]) -> Vec<crate::store::Hit> {
        let c = e.lookup(name).unwrap().get().unwrap().collection;
        let params = crate::store::SearchParams {
            vector: q.to_vec(),
            k: 10,
            filter: None,
            ef: None,
            oversampling: None,
            include: crate::store::Include {
                payload: true,
                vector: false,
            },
            exact: false,
            sparse: None,
            vector_name: None,
        };
        c.search(&params).unwrap().0
    }

    #[test]
    fn a_restored_collection_answers_as_its_source_and_survives_a_restart() {
        use crate::model::{PointKey, PointRecord};
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(EngineOptions::new(dir.path())).unwrap();
        e.create(CollectionSpec::for_test("src", 4, Metric::Cosine, 32))
            .unwrap();
        let c = e.lookup("src").unwrap().get().unwrap().collection;
        let point = |i: u64| PointRecord {
            key: PointKey::Num(i),
            vector: vec![(i % 13) as f32, (i % 5) as f32, 1.0, (i % 3) as f32],
            payload: serde_json::json!({"i": i}).as_object().unwrap().clone(),
            sparse: Default::default(),
            named: Default::default(),
        };
        c.upsert((0..3000).map(point).collect()).unwrap();
        c.flush(true).unwrap();
        let (pin, snap_dir, _) = e.snapshot_to_send("src", "", true).unwrap();
        let mut archive = Vec::new();
        let sent = archive::write(&snap_dir, &mut archive).unwrap();
        drop(pin);
        // A refused restore leaves the catalog and the collections directory as they were.
        let names_before = fs::read_dir(e.collections_dir()).unwrap().count();
        let wrong_sha = "0".repeat(64);
        for (name, sha, bytes, code) in [
            (
                "copy",
                wrong_sha.as_str(),
                &archive[..],
                tonic::Code::InvalidArgument,
            ),
            (
                "copy",
                "",
                &archive[..archive.len() / 3],
                tonic::Code::InvalidArgument,
            ),
            ("src", "", &archive[..], tonic::Code::AlreadyExists),
            ("../x", "", &archive[..], tonic::Code::InvalidArgument),
        ] {
            let err = e.restore(name, sha, bytes).unwrap_err();
            assert_eq!(tonic::Status::from(err).code(), code, "{name} {sha}");
            assert_eq!(e.names(), ["src"]);
            assert_eq!(
                fs::read_dir(e.collections_dir()).unwrap().count(),
                names_before
            );
        }
        let (stats, m, got) = e.restore("copy", &sent.sha256, &archive[..]).unwrap();
        assert_eq!(got, sent);
        assert_eq!(
            (stats.point_count, m.collection.name.as_str()),
            (3000, "copy")
        );
        let queries: Vec<Vec<f32>> = (0..20)
            .map(|i| vec![i as f32, (i * 7 % 11) as f32, 0.5, 1.0])
            .collect();
        let answers = |e: &Arc<Engine>, name: &str| -> Vec<_> {
            queries.iter().map(|q| search(e, name, q)).collect()
        };
        let expected = answers(&e, "src");
        assert_eq!(answers(&e, "copy"), expected);
        // It takes writes, and a restart keeps both the restored points and the new ones.
        let copy = e.lookup("copy").unwrap().get().unwrap().collection;
        copy.upsert(vec![point(5000)]).unwrap();
        drop((c, copy));
        e.shutdown();
        drop(e);
        let e = Engine::open(EngineOptions::new(dir.path())).unwrap();
        let copy = e.lookup("copy").unwrap().get().unwrap().collection;
        assert_eq!(copy.count(None).unwrap(), 3001);
        assert_eq!(copy.spec().name, "copy");
        assert_eq!(
            e.snapshot_to_send("copy", "", false)
                .unwrap()
                .2
                .collection
                .name,
            "copy"
        );
    }

    #[test]
    fn aliases_resolve_survive_a_restart_and_go_with_their_collection() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(EngineOptions::new(dir.path())).unwrap();
        for name in ["old", "new"] {
            e.create(CollectionSpec::for_test(name, 2, Metric::L2, 16))
                .unwrap();
        }
        e.update_aliases(&[create("a", "old"), create("b", "new")])
            .unwrap();
        assert_eq!(e.slot("a").unwrap().stats().spec.name, "old");
        // A collection may not take an alias's name; a refused call changes nothing.
        let err = e
            .create(CollectionSpec::for_test("a", 2, Metric::L2, 16))
            .unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::AlreadyExists);
        let before = e.aliases();
        let delete = pb::AliasAction::delete("a");
        assert!(
            e.update_aliases(&[delete.clone(), create("a", "nope")])
                .is_err()
        );
        assert_eq!(e.aliases(), before);
        // The swap, then a restart keeps it.
        e.update_aliases(&[delete, create("a", "new")]).unwrap();
        drop(e);
        let e = Engine::open(EngineOptions::new(dir.path())).unwrap();
        assert_eq!(e.slot("a").unwrap().stats().spec.name, "new");
        // Deleting a collection deletes its aliases, durably; an alias is not deleted as one.
        assert!(e.delete("a").is_err());
        e.delete("new").unwrap();
        assert!(e.aliases().is_empty());
        drop(e);
        let e = Engine::open(EngineOptions::new(dir.path())).unwrap();
        assert!(e.aliases().is_empty());
        assert!(matches!(
            e.slot("a"),
            Err(StorageError::CollectionNotFound(_))
        ));
    }
}
