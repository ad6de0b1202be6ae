//! The catalog: create, delete and list collections, and the one way a request reaches a
//! collection ([`Engine::lookup`]).

use super::{DELETED_PREFIX, Engine};
use crate::collection::{Collection, SPEC_FILE};
use crate::error::{Result, StorageError};
use crate::fsutil::sync_dir;
use crate::model::{CollectionSpec, CollectionStats, Tier};
use crate::store::CollectionStore;
use crate::tier::Slot;
use crate::validate;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))
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
