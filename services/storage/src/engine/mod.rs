//! The engine: every collection of this storage node, and what is done with them.
//!
//! - [`catalog`]: create, delete and list collections; [`Engine::lookup`], the one way a
//!   request reaches a collection (in memory, or the load it needs first).
//! - [`recovery`]: start-up (snapshots loaded, WALs replayed; warm and cold ones left out).
//! - [`tiering`]: moves between hot, warm and cold, as [`crate::tier::plan`] decides.
//! - [`workers`]: the background threads (graph builder, maintenance, tier policy, WAL
//!   flusher) and [`Engine::shutdown`].

pub mod catalog;
mod recovery;
mod tiering;
mod workers;

use crate::collection::{BuildQueue, Collection, CollectionOptions};
use crate::error::{Result, StorageError};
use crate::objstore::snapshots::SnapshotStore;
use crate::snapshot::{self, SnapshotManifest};
use crate::tier::{Slot, TierOptions};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How the engine stores and maintains collections.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    pub collection: CollectionOptions,
    /// Snapshot every collection that changed this often (`None`: only on demand).
    pub snapshot_interval: Option<Duration>,
    /// Check for merges to do this often (`None`: only on demand).
    pub compaction_interval: Option<Duration>,
    /// Take a checkpoint of a collection whose WAL holds more than this many bytes (0: only
    /// after graph builds, merges and scheduled snapshots): what a restart replays.
    pub checkpoint_wal_bytes: u64,
    /// Memory budget and idle times of the tiers.
    pub tiers: TierOptions,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            collection: CollectionOptions::default(),
            snapshot_interval: Some(Duration::from_secs(300)),
            compaction_interval: Some(Duration::from_secs(2)),
            checkpoint_wal_bytes: 64 << 20,
            tiers: TierOptions::default(),
        }
    }
}

/// All collections of this storage node, durable under `<data_dir>/collections/<name>/`.
///
/// [`Engine::new`] is cheap and leaves the engine recovering (every call but `list` answers
/// UNAVAILABLE); [`Engine::recover`] loads snapshots, replays WALs and starts the background
/// workers (graph builder, snapshots, compaction, interval fsync).
pub struct Engine {
    opts: EngineOptions,
    /// Every collection by name, in any tier.
    collections: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Alias → collection, durable in `<data_dir>/aliases.json`.
    aliases: RwLock<BTreeMap<String, String>>,
    /// Snapshot copies in the object store (set by the service before recovery).
    objects: OnceLock<SnapshotStore>,
    /// Recovery is done; until then every call but `list` answers UNAVAILABLE.
    ready: AtomicBool,
    /// Serializes create and delete (directory work) without blocking lookups.
    ddl: Mutex<()>,
    /// The graph builder's queue, given to every collection loaded.
    builder: Mutex<Option<BuildQueue>>,
    /// Tells the worker threads to stop.
    stop: Arc<AtomicBool>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// Prefix of a collection directory being removed (a crash mid-delete leaves one; recovery
/// removes it).
const DELETED_PREFIX: &str = ".deleted-";

impl Engine {
    pub fn new(opts: EngineOptions) -> Arc<Self> {
        Arc::new(Self {
            opts,
            collections: RwLock::new(BTreeMap::new()),
            aliases: RwLock::new(BTreeMap::new()),
            objects: OnceLock::new(),
            ready: AtomicBool::new(false),
            ddl: Mutex::new(()),
            builder: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            workers: Mutex::new(Vec::new()),
        })
    }

    /// New engine over `data_dir`, recovered and ready (tests, tools).
    pub fn open(opts: EngineOptions) -> Result<Arc<Self>> {
        let e = Self::new(opts);
        e.recover()?;
        Ok(e)
    }

    /// Wire in the object layer (before [`Engine::recover`]): snapshots are then uploaded
    /// and collections can go cold.
    pub fn set_objects(&self, objects: SnapshotStore) {
        let _ = self.objects.set(objects);
    }

    pub fn objects(&self) -> Option<&SnapshotStore> {
        self.objects.get()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    fn collections_dir(&self) -> PathBuf {
        self.opts.data_dir.join("collections")
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn check_ready(&self) -> Result<()> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(StorageError::Recovering)
        }
    }

    /// Give a freshly loaded collection the background graph builder.
    fn attach_builder(&self, c: &Arc<Collection>) {
        if let Some(queue) = &*self.builder.lock() {
            c.set_builder(queue.clone());
        }
    }

    /// Snapshot a hot collection now and upload the snapshot in the background (the local
    /// copy stays: the collection is still hot).
    pub fn snapshot_collection(&self, c: &Arc<Collection>) -> Result<SnapshotManifest> {
        let m = c.snapshot()?;
        self.upload_snapshot(c, &m.id);
        Ok(m)
    }

    /// Upload the local snapshot `id` of `c` in the background (local pruning leaves it
    /// alone meanwhile); once the object store has it, record its size and prune older
    /// copies (never the one a cold collection needs).
    fn upload_snapshot(&self, c: &Collection, id: &str) {
        let Some(objects) = self.objects() else {
            return;
        };
        let name = &c.spec().name;
        let Ok(slot) = self.slot(name) else { return };
        let pin = c.pin_snapshot(id);
        let dir = snapshot::snapshots_dir(&slot.dir).join(id);
        let slot = Arc::downgrade(&slot);
        objects.upload_in_background(
            name,
            &dir,
            id,
            self.opts.collection.snapshot_keep,
            move |bytes| {
                let _pin = pin;
                let s = slot.upgrade()?;
                s.set_uploaded(bytes);
                let cold = s.info.lock().cold.as_ref().map(|c| c.snapshot_id.clone());
                Some(cold)
            },
        );
    }
}

/// Run blocking engine work off the async threads, in the caller's span and request (so that
/// its steps are traced, or not, as the request is).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let scope = akidb_instrumentation::context::RequestScope::current();
    tokio::task::spawn_blocking(move || scope.in_scope(f))
        .await
        .map_err(|e| StorageError::WorkerFailed(format!("worker task failed: {e}")))?
}

/// Run `f` with `engine` on the blocking pool, in the caller's span and request.
pub async fn with_engine<T: Send + 'static>(
    engine: &Arc<Engine>,
    f: impl FnOnce(&Arc<Engine>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let engine = engine.clone();
    blocking(move || f(&engine)).await
}
