//! Hot, warm and cold tiers.
//!
//! - *hot*: the collection is in memory ([`Collection`]) and serving.
//! - *warm*: its newest snapshot (plus any WAL tail) is on local disk; nothing in memory. The
//!   first access loads it.
//! - *cold*: the snapshot is only in the object store (the WAL tail, if any, stays local). The
//!   first access downloads it, checks every checksum, and loads it.
//!
//! Policy is separate from mechanism: [`plan`] looks at a picture of every collection and
//! returns [`Move`]s; the engine's tier worker applies them with [`Engine::promote`] and
//! [`Engine::demote`]. A collection being moved keeps answering from its old tier until the
//! move completes, and local files are removed only after the object store has confirmed
//! every file of the snapshot (a copy that went to the dead-letter queue is not confirmed:
//! the collection then stays warm).
//!
//! Each collection's tier survives a restart in `<collection>/tier.json`.

use crate::collection::{Collection, write_atomic};
use crate::engine::Engine;
use crate::error::{Result, StorageError};
use crate::model::{CollectionSpec, CollectionStats, Tier};
use crate::objstore::ObjectStore;
use crate::snapshot::{self, MANIFEST, SnapshotFile};
use crate::store::CollectionStore;
use crate::upload::{UploadOutcome, UploadSource, Uploader};
use akidb_instrumentation::metrics;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub const TIER_FILE: &str = "tier.json";

/// What drives demotion and promotion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierOptions {
    /// Memory the hot tier may use (0: unlimited).
    pub hot_memory_bytes: u64,
    /// Demote a hot collection to warm after this long without access.
    pub hot_idle: Option<Duration>,
    /// Demote a warm collection to cold after this long without access.
    pub warm_idle: Option<Duration>,
    /// How often the tier worker looks at the policy.
    pub interval: Duration,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            hot_memory_bytes: 0,
            hot_idle: None,
            warm_idle: None,
            interval: Duration::from_secs(1),
        }
    }
}

/// The object layer as the (blocking) engine sees it.
#[derive(Clone)]
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    pub uploader: Uploader,
    pub runtime: tokio::runtime::Handle,
}

/// The object key of one snapshot file.
pub fn object_key(collection: &str, snapshot_id: &str, file: &str) -> String {
    format!("collections/{collection}/snapshots/{snapshot_id}/{file}")
}

/// The confirmed copy of a snapshot in the object store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColdCopy {
    pub snapshot_id: String,
    /// Every file, the manifest last, with sizes and checksums.
    pub files: Vec<SnapshotFile>,
}

impl ColdCopy {
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }
}

/// Stats of a collection that is not in memory (as of its demotion).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsRecord {
    pub point_count: u64,
    pub indexed_point_count: u64,
    pub segment_count: u64,
    pub version: u64,
}

/// `tier.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TierRecord {
    pub tier: Tier,
    pub pinned: bool,
    #[serde(default)]
    pub cold: Option<ColdCopy>,
    #[serde(default)]
    pub stats: StatsRecord,
    #[serde(default)]
    pub last_access_unix_ms: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct SlotInfo {
    tier: Tier,
    moving_to: Option<Tier>,
    pinned: bool,
    cold: Option<ColdCopy>,
    stats: StatsRecord,
    /// Bytes of the newest snapshot the object store confirmed (0: none known).
    uploaded_bytes: u64,
}

/// One collection in any tier.
pub struct Slot {
    pub name: String,
    pub dir: PathBuf,
    pub spec: CollectionSpec,
    hot: RwLock<Option<Arc<Collection>>>,
    info: Mutex<SlotInfo>,
    last_access_ms: std::sync::atomic::AtomicU64,
    /// Serializes loads and demotions of this collection.
    moves: Mutex<()>,
}

/// A collection as the tier worker's policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub tier: Tier,
    pub pinned: bool,
    pub moving: bool,
    pub memory_bytes: u64,
    pub idle: Duration,
}

/// One move the policy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub name: String,
    pub to: Tier,
}

/// The policy: pinned collections go hot; idle ones cool down; if the hot tier is over its
/// budget, the least recently used unpinned hot collections go warm until it fits.
/// `cold_ok`: whether an object store is there to demote to cold.
pub fn plan(views: &[View], opts: &TierOptions, cold_ok: bool) -> Vec<Move> {
    let mut moves = Vec::new();
    let mut hot_total: u64 = views
        .iter()
        .filter(|v| v.tier == Tier::Hot)
        .map(|v| v.memory_bytes)
        .sum();
    for v in views.iter().filter(|v| !v.moving) {
        match (v.tier, v.pinned) {
            (Tier::Warm | Tier::Cold, true) => moves.push(Move {
                name: v.name.clone(),
                to: Tier::Hot,
            }),
            (Tier::Hot, false) if opts.hot_idle.is_some_and(|i| v.idle >= i) => {
                hot_total -= v.memory_bytes;
                moves.push(Move {
                    name: v.name.clone(),
                    to: Tier::Warm,
                });
            }
            (Tier::Warm, false) if cold_ok && opts.warm_idle.is_some_and(|i| v.idle >= i) => moves
                .push(Move {
                    name: v.name.clone(),
                    to: Tier::Cold,
                }),
            _ => {}
        }
    }
    if opts.hot_memory_bytes > 0 && hot_total > opts.hot_memory_bytes {
        let mut candidates: Vec<&View> = views
            .iter()
            .filter(|v| v.tier == Tier::Hot && !v.pinned && !v.moving)
            .filter(|v| !moves.iter().any(|m| m.name == v.name))
            .collect();
        // Least recently used first.
        candidates.sort_by(|a, b| b.idle.cmp(&a.idle).then(a.name.cmp(&b.name)));
        for v in candidates {
            if hot_total <= opts.hot_memory_bytes {
                break;
            }
            hot_total -= v.memory_bytes;
            moves.push(Move {
                name: v.name.clone(),
                to: Tier::Warm,
            });
        }
    }
    moves
}

/// How an access was served.
pub struct Access {
    pub collection: Arc<Collection>,
    /// The tier the collection was in when the request came.
    pub served: Tier,
    /// Whether it had to be loaded.
    pub loaded: bool,
}

/// What `TierStatus` reports for one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct TierStatus {
    pub name: String,
    pub tier: Tier,
    pub pinned: bool,
    pub bytes_in_memory: u64,
    pub bytes_on_disk: u64,
    pub bytes_in_object_store: u64,
    pub last_access_unix_ms: u64,
    pub moving_to: Option<Tier>,
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn memory_of(c: &Collection) -> u64 {
    let (_, _, _, (v, g, o)) = c.gauges();
    v + g + o
}

fn stats_record(s: &CollectionStats) -> StatsRecord {
    StatsRecord {
        point_count: s.point_count,
        indexed_point_count: s.indexed_point_count,
        segment_count: s.segment_count,
        version: s.version,
    }
}

fn obj_err(e: crate::objstore::ObjectStoreError) -> StorageError {
    StorageError::Unavailable(format!("object store: {e}"))
}

impl Slot {
    /// A hot slot around a loaded collection.
    pub fn hot(c: Arc<Collection>, pinned: bool) -> Arc<Slot> {
        let stats = stats_record(&c.stats());
        Arc::new(Slot {
            name: c.spec().name.clone(),
            dir: c.dir().to_path_buf(),
            spec: c.spec().clone(),
            hot: RwLock::new(Some(c)),
            info: Mutex::new(SlotInfo {
                tier: Tier::Hot,
                moving_to: None,
                pinned,
                cold: None,
                stats,
                uploaded_bytes: 0,
            }),
            last_access_ms: now_ms().into(),
            moves: Mutex::new(()),
        })
    }

    /// A warm or cold slot from its record.
    pub fn unloaded(dir: &Path, spec: CollectionSpec, rec: TierRecord) -> Arc<Slot> {
        let uploaded = rec.cold.as_ref().map_or(0, |c| c.size_bytes());
        Arc::new(Slot {
            name: spec.name.clone(),
            dir: dir.to_path_buf(),
            spec,
            hot: RwLock::new(None),
            info: Mutex::new(SlotInfo {
                tier: rec.tier,
                moving_to: None,
                pinned: rec.pinned,
                cold: rec.cold,
                stats: rec.stats,
                uploaded_bytes: uploaded,
            }),
            last_access_ms: rec.last_access_unix_ms.max(1).into(),
            moves: Mutex::new(()),
        })
    }

    /// The collection, if it is hot.
    pub fn loaded(&self) -> Option<Arc<Collection>> {
        self.hot.read().clone()
    }

    pub fn tier(&self) -> Tier {
        self.info.lock().tier
    }

    pub fn pinned(&self) -> bool {
        self.info.lock().pinned
    }

    pub fn touch(&self) {
        self.last_access_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn last_access_ms(&self) -> u64 {
        self.last_access_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stats without loading the collection.
    pub fn stats(&self) -> CollectionStats {
        if let Some(c) = self.loaded() {
            return c.stats();
        }
        let i = self.info.lock();
        CollectionStats {
            spec: CollectionSpec {
                pinned: i.pinned,
                ..self.spec.clone()
            },
            point_count: i.stats.point_count,
            indexed_point_count: i.stats.indexed_point_count,
            segment_count: i.stats.segment_count,
            version: i.stats.version,
            tier: i.tier,
        }
    }

    pub fn memory_bytes(&self) -> u64 {
        self.loaded().map_or(0, |c| memory_of(&c))
    }

    pub fn status(&self) -> TierStatus {
        let mem = self.memory_bytes();
        let i = self.info.lock();
        let disk = dir_size(&self.dir);
        TierStatus {
            name: self.name.clone(),
            tier: i.tier,
            pinned: i.pinned,
            bytes_in_memory: mem,
            bytes_on_disk: disk,
            bytes_in_object_store: i.uploaded_bytes,
            last_access_unix_ms: self.last_access_ms(),
            moving_to: i.moving_to,
        }
    }

    pub fn view(&self, now: u64) -> View {
        let mem = self.memory_bytes();
        let i = self.info.lock();
        View {
            name: self.name.clone(),
            tier: i.tier,
            pinned: i.pinned,
            moving: i.moving_to.is_some(),
            memory_bytes: mem,
            idle: Duration::from_millis(now.saturating_sub(self.last_access_ms())),
        }
    }

    fn record(&self) -> TierRecord {
        let i = self.info.lock();
        let stats = match self.loaded() {
            Some(c) => stats_record(&c.stats()),
            None => i.stats.clone(),
        };
        TierRecord {
            tier: i.tier,
            pinned: i.pinned,
            cold: i.cold.clone(),
            stats,
            last_access_unix_ms: self.last_access_ms(),
        }
    }

    /// Write `tier.json` durably.
    pub fn persist(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.record()).expect("tier record serializes");
        write_atomic(&self.dir.join(TIER_FILE), &json)
    }

    fn set_moving(&self, to: Option<Tier>) {
        self.info.lock().moving_to = to;
    }

    /// Record that the object store confirmed a snapshot of `bytes`.
    pub fn set_uploaded(&self, bytes: u64) {
        self.info.lock().uploaded_bytes = bytes;
    }

    /// Mark the slot dropped (delete).
    pub fn unload_for_delete(&self) -> Option<Arc<Collection>> {
        let _mv = self.moves.lock();
        self.hot.write().take()
    }
}

/// Read `<dir>/tier.json`; `None` when there is none (a collection from before tiers: hot).
pub fn read_record(dir: &Path) -> Result<Option<TierRecord>> {
    let p = dir.join(TIER_FILE);
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| StorageError::DataLoss(format!("{} is unreadable: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn verify_file(path: &Path, f: &SnapshotFile) -> Result<()> {
    let bytes = fs::read(path)?;
    if bytes.len() as u64 != f.size_bytes || hex::encode(Sha256::digest(&bytes)) != f.sha256 {
        return Err(StorageError::DataLoss(format!(
            "downloaded snapshot file {} does not match its checksum ({} bytes, expected {})",
            path.display(),
            bytes.len(),
            f.size_bytes
        )));
    }
    Ok(())
}

impl Engine {
    /// The object layer, if the service wired one in.
    fn objects_or_err(&self) -> Result<&Objects> {
        self.objects().ok_or_else(|| {
            StorageError::FailedPrecondition(
                "no object store is configured; the cold tier is not available".into(),
            )
        })
    }

    /// The collection for a read or write, loading it if it is warm or cold.
    /// [`Self::access`] when the collection is already in memory; `None` when serving it
    /// needs a load (which blocks, so callers run that off the async threads).
    pub fn access_if_hot(&self, name: &str) -> Result<Option<Access>> {
        let slot = self.slot(name)?;
        Ok(slot.loaded().map(|c| {
            slot.touch();
            Access {
                collection: c,
                served: Tier::Hot,
                loaded: false,
            }
        }))
    }

    pub fn access(&self, name: &str) -> Result<Access> {
        let slot = self.slot(name)?;
        slot.touch();
        if let Some(c) = slot.loaded() {
            return Ok(Access {
                collection: c,
                served: Tier::Hot,
                loaded: false,
            });
        }
        let (collection, served, loaded) = self.load(&slot)?;
        Ok(Access {
            collection,
            served,
            loaded,
        })
    }

    /// Bring a collection into memory (fetching it first if cold). Returns the collection,
    /// the tier it came from and whether a load was needed.
    fn load(&self, slot: &Arc<Slot>) -> Result<(Arc<Collection>, Tier, bool)> {
        let _mv = slot.moves.lock();
        if let Some(c) = slot.loaded() {
            return Ok((c, Tier::Hot, false));
        }
        let from = slot.tier();
        slot.set_moving(Some(Tier::Hot));
        let start = Instant::now();
        let res = (|| {
            if from == Tier::Cold {
                self.fetch_cold(slot)?;
            }
            let c = Collection::open(&slot.dir, self.options().collection, |_, _| {})?;
            self.attach_builder(&c);
            Ok::<_, StorageError>(c)
        })();
        slot.set_moving(None);
        let c = match res {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(collection = %slot.name, from = from.as_str(), error = %e, "loading collection failed");
                return Err(e);
            }
        };
        *slot.hot.write() = Some(c.clone());
        slot.info.lock().tier = Tier::Hot;
        slot.persist()?;
        let secs = start.elapsed().as_secs_f64();
        let m = metrics();
        akidb_instrumentation::exemplar::TracedHistogram::new(
            &m.tier_load_duration,
            &[from.as_str()],
        )
        .observe(secs);
        m.tier_promotions
            .with_label_values(&[from.as_str(), "hot"])
            .inc();
        tracing::info!(collection = %slot.name, from = from.as_str(), seconds = secs, "collection loaded into memory");
        self.refresh_gauges();
        Ok((c, from, true))
    }

    /// Download the cold copy into the local snapshot directory (checksums verified);
    /// the collection is warm afterwards.
    fn fetch_cold(&self, slot: &Arc<Slot>) -> Result<()> {
        let objects = self.objects_or_err()?.clone();
        let cold = slot.info.lock().cold.clone().ok_or_else(|| {
            StorageError::DataLoss(format!(
                "collection `{}` is cold but has no record of its object-store copy",
                slot.name
            ))
        })?;
        let root = snapshot::snapshots_dir(&slot.dir);
        let tmp = root.join(format!(".tmp-{}", cold.snapshot_id));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let name = slot.name.clone();
        let files = cold.files.clone();
        let t2 = tmp.clone();
        let id = cold.snapshot_id.clone();
        objects.runtime.block_on(async move {
            for f in &files {
                let key = object_key(&name, &id, &f.name);
                objects
                    .store
                    .get_to_file(&key, &t2.join(&f.name))
                    .await
                    .map_err(obj_err)?;
            }
            Ok::<_, StorageError>(())
        })?;
        for f in &cold.files {
            verify_file(&tmp.join(&f.name), f)?;
        }
        crate::wal::sync_dir(&tmp)?;
        let dst = root.join(&cold.snapshot_id);
        if dst.exists() {
            fs::remove_dir_all(&dst)?;
        }
        fs::rename(&tmp, &dst)?;
        crate::wal::sync_dir(&root)?;
        slot.info.lock().tier = Tier::Warm;
        slot.persist()?;
        metrics()
            .tier_promotions
            .with_label_values(&["cold", "warm"])
            .inc();
        Ok(())
    }

    /// Move a collection to a hotter tier: `Hot` loads it; `Warm` only fetches a cold one.
    pub fn promote(&self, name: &str, to: Tier) -> Result<TierStatus> {
        let slot = self.slot(name)?;
        match to {
            Tier::Hot => {
                slot.touch();
                self.load(&slot)?;
            }
            Tier::Warm => {
                let _mv = slot.moves.lock();
                if slot.tier() == Tier::Cold && slot.loaded().is_none() {
                    slot.set_moving(Some(Tier::Warm));
                    let r = self.fetch_cold(&slot);
                    slot.set_moving(None);
                    r?;
                }
            }
            Tier::Cold => {
                return Err(StorageError::InvalidArgument(
                    "promote targets HOT or WARM; use demote to move to COLD".into(),
                ));
            }
        }
        Ok(slot.status())
    }

    /// Move a collection to a colder tier. A pinned collection is not demoted.
    pub fn demote(&self, name: &str, to: Tier) -> Result<TierStatus> {
        let slot = self.slot(name)?;
        if slot.pinned() {
            return Err(StorageError::FailedPrecondition(format!(
                "collection `{name}` is pinned to the hot tier; unpin it first (`akidb admin tier unpin {name}`)"
            )));
        }
        match to {
            Tier::Hot => {
                return Err(StorageError::InvalidArgument(
                    "demote targets WARM or COLD".into(),
                ));
            }
            Tier::Warm => self.demote_to_warm(&slot)?,
            Tier::Cold => {
                self.objects_or_err()?;
                self.demote_to_warm(&slot)?;
                self.demote_to_cold(&slot)?;
            }
        }
        self.refresh_gauges();
        Ok(slot.status())
    }

    /// Snapshot a hot collection and drop it from memory. It answers from memory until the
    /// snapshot is written.
    fn demote_to_warm(&self, slot: &Arc<Slot>) -> Result<()> {
        let _mv = slot.moves.lock();
        let Some(c) = slot.loaded() else {
            return Ok(());
        };
        slot.set_moving(Some(Tier::Warm));
        if let Err(e) = self.snapshot_collection(&c) {
            slot.set_moving(None);
            return Err(e);
        }
        *c.builder_slot() = None;
        let stats = stats_record(&c.stats());
        *slot.hot.write() = None;
        // Requests that took the collection before the swap finish on it (their writes go
        // to its WAL, replayed at the next load); wait for them before anything reopens it.
        let waited = Instant::now();
        let mut warned = false;
        while Arc::strong_count(&c) > 1 {
            if !warned && waited.elapsed() > Duration::from_secs(5) {
                tracing::warn!(collection = %slot.name, "demotion waiting for in-flight requests");
                warned = true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let flushed = c.flush_wal();
        drop(c);
        {
            let mut i = slot.info.lock();
            i.tier = Tier::Warm;
            i.stats = stats;
            i.moving_to = None;
        }
        slot.persist()?;
        flushed?;
        metrics()
            .tier_demotions
            .with_label_values(&["hot", "warm"])
            .inc();
        // The collection's memory was freed: give the pages back.
        crate::release_free_heap();
        tracing::info!(collection = %slot.name, "collection demoted to warm");
        Ok(())
    }

    /// Upload the newest local snapshot, confirm every file, then remove the local
    /// snapshots. If any file only reached the DLQ the collection stays warm.
    fn demote_to_cold(&self, slot: &Arc<Slot>) -> Result<()> {
        let objects = self.objects_or_err()?.clone();
        if slot.tier() != Tier::Warm || slot.loaded().is_some() {
            return Ok(());
        }
        let Some((snap_dir, manifest)) = snapshot::list(&slot.dir)?.pop() else {
            return Err(StorageError::FailedPrecondition(format!(
                "collection `{}` has no local snapshot to move to the cold tier",
                slot.name
            )));
        };
        slot.set_moving(Some(Tier::Cold));
        let res = self.upload_and_confirm(&objects, &slot.name, &snap_dir, &manifest.id);
        let files = match res {
            Ok(f) => f,
            Err(e) => {
                slot.set_moving(None);
                tracing::warn!(collection = %slot.name, error = %e, "collection stays warm: the object store has not confirmed its snapshot");
                return Err(e);
            }
        };
        let _mv = slot.moves.lock();
        let still_same = slot.loaded().is_none()
            && slot.tier() == Tier::Warm
            && snapshot::list(&slot.dir)?
                .last()
                .is_some_and(|(_, m)| m.id == manifest.id);
        if !still_same {
            slot.set_moving(None);
            tracing::info!(collection = %slot.name, "cold demotion abandoned: the collection was used meanwhile");
            return Ok(());
        }
        let cold = ColdCopy {
            snapshot_id: manifest.id.clone(),
            files,
        };
        {
            let mut i = slot.info.lock();
            i.uploaded_bytes = cold.size_bytes();
            i.cold = Some(cold);
            i.tier = Tier::Cold;
            i.moving_to = None;
        }
        // The record first: a crash after it leaves extra local files, never a cold
        // collection without its copy.
        slot.persist()?;
        let snaps = snapshot::snapshots_dir(&slot.dir);
        fs::remove_dir_all(&snaps)?;
        if let Some(parent) = snaps.parent() {
            crate::wal::sync_dir(parent)?;
        }
        metrics()
            .tier_demotions
            .with_label_values(&["warm", "cold"])
            .inc();
        tracing::info!(collection = %slot.name, snapshot = %manifest.id, "collection demoted to cold");
        Ok(())
    }

    /// Upload every file of the snapshot in `dir` (the manifest last) unless the store
    /// already has it, then confirm each with its size. Returns the files.
    fn upload_and_confirm(
        &self,
        objects: &Objects,
        name: &str,
        dir: &Path,
        id: &str,
    ) -> Result<Vec<SnapshotFile>> {
        let files = snapshot::list_files(dir)?;
        let uploader = objects.uploader.clone();
        let (name, dir, id) = (name.to_string(), dir.to_path_buf(), id.to_string());
        let fs2 = files.clone();
        objects.runtime.block_on(async move {
            upload_snapshot(&uploader, &name, &dir, &id, &fs2).await?;
            for f in &fs2 {
                let key = object_key(&name, &id, &f.name);
                if !uploader
                    .is_confirmed(&key, Some(f.size_bytes))
                    .await
                    .map_err(obj_err)?
                {
                    return Err(StorageError::Unavailable(format!(
                        "object store has not confirmed `{key}`"
                    )));
                }
            }
            Ok(())
        })?;
        Ok(files)
    }

    /// Upload a fresh snapshot in the background (the warm copy stays local).
    pub fn schedule_upload(&self, name: &str, manifest_id: &str) {
        let Some(objects) = self.objects().cloned() else {
            return;
        };
        let Ok(slot) = self.slot(name) else { return };
        let dir = snapshot::snapshots_dir(&slot.dir).join(manifest_id);
        let Ok(files) = snapshot::list_files(&dir) else {
            return;
        };
        let id = manifest_id.to_string();
        let keep = self.options().collection.snapshot_keep;
        let slot = Arc::downgrade(&slot);
        objects.runtime.spawn(async move {
            let Some(name) = slot.upgrade().map(|s| s.name.clone()) else {
                return;
            };
            match upload_snapshot(&objects.uploader, &name, &dir, &id, &files).await {
                Ok(true) => {
                    let Some(s) = slot.upgrade() else { return };
                    s.set_uploaded(files.iter().map(|f| f.size_bytes).sum());
                    // Older copies go once this one is there; never the cold copy.
                    let cold = s.info.lock().cold.as_ref().map(|c| c.snapshot_id.clone());
                    drop(s);
                    match prune_remote(objects.store.as_ref(), &name, keep, &id, cold.as_deref())
                        .await
                    {
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

    /// Whether the object store has every file of this local snapshot.
    pub async fn snapshot_confirmed(objects: &Objects, name: &str, dir: &Path, id: &str) -> bool {
        let Ok(files) = snapshot::list_files(dir) else {
            return false;
        };
        for f in files {
            let key = object_key(name, id, &f.name);
            match objects
                .uploader
                .is_confirmed(&key, Some(f.size_bytes))
                .await
            {
                Ok(true) => {}
                _ => return false,
            }
        }
        true
    }

    /// Pin (always hot) or unpin a collection. Pinning loads it.
    pub fn pin(&self, name: &str, pinned: bool) -> Result<TierStatus> {
        let slot = self.slot(name)?;
        slot.info.lock().pinned = pinned;
        slot.persist()?;
        if pinned {
            slot.touch();
            self.load(&slot)?;
        }
        Ok(slot.status())
    }

    pub fn tier_status(&self, name: &str) -> Result<Vec<TierStatus>> {
        if name.is_empty() {
            Ok(self.slots().iter().map(|s| s.status()).collect())
        } else {
            Ok(vec![self.slot(name)?.status()])
        }
    }

    /// Memory of every hot collection.
    pub fn hot_memory_bytes(&self) -> u64 {
        self.slots().iter().map(|s| s.memory_bytes()).sum()
    }

    /// One round of the tier worker: plan, then apply.
    pub fn run_tier_policy(&self) {
        let now = now_ms();
        let views: Vec<View> = self.slots().iter().map(|s| s.view(now)).collect();
        let opts = self.options().tiers;
        let moves = plan(&views, &opts, self.objects().is_some());
        for mv in moves {
            let res = match mv.to {
                Tier::Hot => self.promote(&mv.name, Tier::Hot).map(|_| ()),
                to => self.demote(&mv.name, to).map(|_| ()),
            };
            let outcome = match &res {
                Ok(()) => "success",
                Err(StorageError::CollectionNotFound(_)) => continue,
                Err(e) => {
                    tracing::warn!(collection = %mv.name, to = mv.to.as_str(), error = %e, "tier move failed");
                    "failure"
                }
            };
            metrics()
                .worker_runs
                .with_label_values(&["tier", outcome])
                .inc();
        }
    }

    /// Per-tier gauges: collections and bytes.
    pub fn refresh_tier_gauges(&self) {
        let m = metrics();
        let mut count = [0i64; 3];
        let mut bytes = [0i64; 3];
        for s in self.slots() {
            let t = s.tier();
            let i = t as usize;
            count[i] += 1;
            bytes[i] += match t {
                Tier::Hot => s.memory_bytes(),
                Tier::Warm => dir_size(&snapshot::snapshots_dir(&s.dir)),
                Tier::Cold => s.info.lock().cold.as_ref().map_or(0, |c| c.size_bytes()),
            } as i64;
        }
        for t in [Tier::Hot, Tier::Warm, Tier::Cold] {
            m.collections
                .with_label_values(&[t.as_str()])
                .set(count[t as usize]);
            m.tier_bytes
                .with_label_values(&[t.as_str()])
                .set(bytes[t as usize]);
        }
        m.hot_memory_budget
            .set(self.options().tiers.hot_memory_bytes as i64);
    }
}

/// Upload the files of a snapshot (manifest last), skipping those the store already has.
/// Remove from the object store every snapshot of `collection` except the newest `keep`
/// (by id, which orders by WAL sequence), `uploaded` (just confirmed) and `cold` (the copy a
/// cold collection is restored from). Each snapshot loses its manifest first, so an
/// interrupted removal leaves an incomplete snapshot that nothing restores from, never a
/// manifest naming missing files. Returns the objects deleted.
pub async fn prune_remote(
    store: &dyn ObjectStore,
    collection: &str,
    keep: usize,
    uploaded: &str,
    cold: Option<&str>,
) -> std::result::Result<usize, crate::objstore::ObjectStoreError> {
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

/// `Ok(true)`: all uploaded; `Ok(false)`: some went to the DLQ.
async fn upload_snapshot(
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
            .upload(name, &key, UploadSource::File(dir.join(&f.name)))
            .await?
        {
            UploadOutcome::Uploaded { .. } => {}
            UploadOutcome::Queued { .. } => all = false,
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, tier: Tier, pinned: bool, mem: u64, idle_s: u64) -> View {
        View {
            name: name.into(),
            tier,
            pinned,
            moving: false,
            memory_bytes: mem,
            idle: Duration::from_secs(idle_s),
        }
    }

    fn mv(name: &str, to: Tier) -> Move {
        Move {
            name: name.into(),
            to,
        }
    }

    #[test]
    fn budget_demotes_least_recently_used_unpinned() {
        let opts = TierOptions {
            hot_memory_bytes: 100,
            ..Default::default()
        };
        let views = [
            v("a", Tier::Hot, false, 50, 10),
            v("b", Tier::Hot, true, 50, 100),
            v("c", Tier::Hot, false, 50, 50),
            v("d", Tier::Hot, false, 50, 1),
        ];
        assert_eq!(
            plan(&views, &opts, true),
            vec![mv("c", Tier::Warm), mv("a", Tier::Warm)]
        );
        let unlimited = TierOptions::default();
        assert!(plan(&views, &unlimited, true).is_empty());
    }

    #[test]
    fn idle_times_and_pins() {
        let opts = TierOptions {
            hot_idle: Some(Duration::from_secs(60)),
            warm_idle: Some(Duration::from_secs(600)),
            ..Default::default()
        };
        let views = [
            v("hot-idle", Tier::Hot, false, 1, 61),
            v("hot-busy", Tier::Hot, false, 1, 5),
            v("hot-pinned", Tier::Hot, true, 1, 10_000),
            v("warm-idle", Tier::Warm, false, 0, 601),
            v("warm-busy", Tier::Warm, false, 0, 100),
            v("cold-pinned", Tier::Cold, true, 0, 10_000),
        ];
        assert_eq!(
            plan(&views, &opts, true),
            vec![
                mv("hot-idle", Tier::Warm),
                mv("warm-idle", Tier::Cold),
                mv("cold-pinned", Tier::Hot)
            ]
        );
        // Without an object store nothing goes cold.
        assert_eq!(
            plan(&views, &opts, false),
            vec![mv("hot-idle", Tier::Warm), mv("cold-pinned", Tier::Hot)]
        );
        // A collection being moved is left alone.
        let mut moving = views[0].clone();
        moving.moving = true;
        assert!(plan(&[moving], &opts, true).is_empty());
    }

    #[tokio::test]
    async fn prune_remote_keeps_the_newest_the_uploaded_and_the_cold_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::objstore::LocalDirStore::open(dir.path()).unwrap();
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
        let n = prune_remote(&store, "c", 2, "003-c", Some("001-a"))
            .await
            .unwrap();
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
            prune_remote(&store, "c", 2, "005-e", Some("001-a"))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            prune_remote(&store, "c", 2, "005-e", Some("001-a"))
                .await
                .unwrap(),
            0
        );
    }
}
