//! The catalog: create, delete and list collections, their aliases, and the one way a request
//! reaches a collection ([`Engine::lookup`], which resolves an alias).

use super::{DELETED_PREFIX, Engine};
use crate::collection::{Collection, SPEC_FILE};
use crate::error::{Result, StorageError};
use crate::fsutil::{sync_dir, write_atomic};
use crate::model::{CollectionSpec, CollectionStats, Tier};
use crate::store::CollectionStore;
use crate::tier::Slot;
use crate::validate;
use std::collections::BTreeMap;
use std::fs;
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

    pub fn create(&self, spec: CollectionSpec) -> Result<CollectionStats> {
        validate::spec(&spec)?;
        self.check_ready()?;
        let _d = self.ddl.lock();
        if self.collections.read().contains_key(&spec.name) {
            return Err(StorageError::CollectionExists(spec.name));
        }
        if let Some(target) = self.aliases.read().get(&spec.name) {
            return Err(StorageError::NameIsAlias {
                name: spec.name,
                collection: target.clone(),
            });
        }
        let dir = self.collections_dir().join(&spec.name);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        let c = Collection::create(&dir, spec.clone(), self.opts.collection)?;
        self.attach_builder(&c);
        let stats = c.stats();
        let slot = Slot::hot(c, spec.pinned);
        slot.persist()?;
        self.collections.write().insert(spec.name, slot);
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
