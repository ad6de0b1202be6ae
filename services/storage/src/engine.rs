//! The catalog of collections and the checks every write and search passes first.

use crate::collection::{BuildJob, Collection, CollectionOptions, SPEC_FILE};
use crate::error::{Result, StorageError};
use crate::model::*;
use crate::store::CollectionStore;
use crate::tier::{self, Objects, Slot, TierOptions, TierRecord};
use crate::wal::{self, FsyncPolicy};
use akidb_instrumentation::metrics;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

pub const MAX_DIMENSION: u32 = 65_536;
pub const MAX_K: usize = 10_000;
pub const MAX_NAME_LEN: usize = 64;

/// Accepts `[A-Za-z0-9_-]{1,64}`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "collection name must be 1 to {MAX_NAME_LEN} characters, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(StorageError::InvalidArgument(format!(
            "collection name `{}` has the character {c:?}; use only letters, digits, `_` and `-`",
            name.escape_default()
        )));
    }
    Ok(())
}

pub fn validate_spec(spec: &CollectionSpec) -> Result<()> {
    validate_name(&spec.name)?;
    if spec.dimension == 0 || spec.dimension > MAX_DIMENSION {
        return Err(StorageError::InvalidArgument(format!(
            "dimension must be between 1 and {MAX_DIMENSION}, got {}",
            spec.dimension
        )));
    }
    if !(2..=256).contains(&spec.m) {
        return Err(StorageError::InvalidArgument(format!(
            "HNSW m must be between 2 and 256, got {}",
            spec.m
        )));
    }
    if !(4..=4096).contains(&spec.ef_construction) {
        return Err(StorageError::InvalidArgument(format!(
            "HNSW ef_construction must be between 4 and 4096, got {}",
            spec.ef_construction
        )));
    }
    Ok(())
}

/// Check a vector against a collection's dimension; `what` names it in the message.
pub fn validate_vector(
    spec: &CollectionSpec,
    v: &[f32],
    what: &dyn std::fmt::Display,
) -> Result<()> {
    if v.len() != spec.dimension as usize {
        return Err(StorageError::InvalidArgument(format!(
            "{what}: vector has {} components but collection `{}` has dimension {}",
            v.len(),
            spec.name,
            spec.dimension
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(StorageError::InvalidArgument(format!(
            "{what}: component {i} is {}; vectors must be finite",
            v[i]
        )));
    }
    Ok(())
}

pub fn validate_points(spec: &CollectionSpec, points: &[PointRecord]) -> Result<()> {
    if points.is_empty() {
        return Err(StorageError::InvalidArgument(
            "upsert batch is empty; send at least one point".into(),
        ));
    }
    for p in points {
        validate_vector(spec, &p.vector, &format_args!("point {}", p.key))?;
        // Cosine vectors are stored normalized (components within ±1): always in range.
        if spec.datatype == Datatype::Float16
            && spec.metric != Metric::Cosine
            && let Some(i) = p.vector.iter().position(|&x| !crate::distance::fits_f16(x))
        {
            return Err(StorageError::InvalidArgument(format!(
                "point {}: component {i} is {}, outside the float16 range of collection `{}` (±{}); scale the vectors or create the collection with datatype FLOAT32",
                p.key,
                p.vector[i],
                spec.name,
                crate::distance::F16_MAX
            )));
        }
    }
    Ok(())
}

pub fn validate_search(spec: &CollectionSpec, params: &SearchParams) -> Result<()> {
    if params.k == 0 || params.k > MAX_K {
        return Err(StorageError::InvalidArgument(format!(
            "k must be between 1 and {MAX_K}, got {}",
            params.k
        )));
    }
    if let Some(ef) = params.ef
        && (ef == 0 || ef > 100_000)
    {
        return Err(StorageError::InvalidArgument(format!(
            "ef must be between 1 and 100000, got {ef}"
        )));
    }
    validate_vector(spec, &params.vector, &"query")?;
    if let Some(f) = &params.filter {
        f.validate()?;
    }
    Ok(())
}

/// How the engine stores and maintains collections.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    pub collection: CollectionOptions,
    /// Snapshot every collection that changed this often (`None`: only on demand).
    pub snapshot_interval: Option<Duration>,
    /// Check for compaction work this often (`None`: only on demand).
    pub compaction_interval: Option<Duration>,
    /// Memory budget and idle times of the tiers.
    pub tiers: TierOptions,
}

impl EngineOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            collection: CollectionOptions::default(),
            snapshot_interval: Some(Duration::from_secs(300)),
            compaction_interval: Some(Duration::from_secs(30)),
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
    collections: RwLock<BTreeMap<String, Arc<Slot>>>,
    objects: std::sync::OnceLock<Objects>,
    ready: AtomicBool,
    /// Serializes create and delete (directory work) without blocking lookups.
    ddl: Mutex<()>,
    builder: Mutex<Option<Sender<BuildJob>>>,
    stop: Arc<AtomicBool>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

const DELETED_PREFIX: &str = ".deleted-";

impl Engine {
    pub fn new(opts: EngineOptions) -> Arc<Self> {
        Arc::new(Self {
            opts,
            collections: RwLock::new(BTreeMap::new()),
            objects: std::sync::OnceLock::new(),
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
    pub fn set_objects(&self, objects: Objects) {
        let _ = self.objects.set(objects);
    }

    pub fn objects(&self) -> Option<&Objects> {
        self.objects.get()
    }

    /// The slot of a collection in any tier.
    pub fn slot(&self, name: &str) -> Result<Arc<Slot>> {
        validate_name(name)?;
        self.check_ready()?;
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::CollectionNotFound(name.to_string()))
    }

    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.collections.read().values().cloned().collect()
    }

    /// Give a freshly loaded collection the background graph builder.
    pub(crate) fn attach_builder(&self, c: &Arc<Collection>) {
        if let Some(tx) = &*self.builder.lock() {
            c.set_builder(tx.clone());
        }
    }

    /// Snapshot a hot collection now and upload the snapshot in the background.
    pub fn snapshot_collection(
        &self,
        c: &Arc<Collection>,
    ) -> Result<crate::snapshot::SnapshotManifest> {
        let m = c.snapshot()?;
        self.schedule_upload(&c.spec().name, &m.id);
        Ok(m)
    }

    /// Stats of a collection without loading it.
    pub fn stats(&self, name: &str) -> Result<CollectionStats> {
        Ok(self.slot(name)?.stats())
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
            Err(StorageError::Unavailable(
                "storage is recovering its WAL; retry in a moment".into(),
            ))
        }
    }

    /// Load every collection (snapshot, then WAL) and start the background workers.
    pub fn recover(self: &Arc<Self>) -> Result<()> {
        let m = metrics();
        m.wal_recovering.set(1);
        m.wal_replay_progress.set(0.0);
        let res = self.recover_inner();
        m.wal_recovering.set(0);
        res?;
        m.wal_replay_progress.set(1.0);
        self.start_workers();
        self.ready.store(true, Ordering::Release);
        self.refresh_gauges();
        Ok(())
    }

    fn recover_inner(&self) -> Result<()> {
        let start = Instant::now();
        let root = self.collections_dir();
        fs::create_dir_all(&root)?;
        let mut dirs = Vec::new();
        for e in fs::read_dir(&root)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(DELETED_PREFIX) || name.ends_with(".tmp") {
                fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path))?;
                continue;
            }
            if !path.join(SPEC_FILE).exists() {
                tracing::warn!(dir = %path.display(), "removing a collection directory whose creation never finished");
                fs::remove_dir_all(&path)?;
                continue;
            }
            dirs.push((name, path));
        }
        dirs.sort();
        let total: u64 = dirs
            .iter()
            .flat_map(|(_, p)| wal::list_segments(&p.join("wal")).unwrap_or_default())
            .map(|(_, p)| fs::metadata(p).map_or(0, |m| m.len()))
            .sum::<u64>()
            .max(1);
        let mut before = 0u64;
        for (name, path) in dirs {
            let rec = tier::read_record(&path)?;
            if let Some(rec) = rec.filter(|r| r.tier != crate::model::Tier::Hot) {
                let spec = read_spec(&path)?;
                let mut rec: TierRecord = rec;
                let has_local = !crate::snapshot::list(&path)?.is_empty();
                if rec.tier == crate::model::Tier::Warm && !has_local && rec.cold.is_some() {
                    rec.tier = crate::model::Tier::Cold;
                }
                tracing::info!(collection = %name, tier = rec.tier.as_str(), "collection not loaded (not hot)");
                self.collections
                    .write()
                    .insert(name, Slot::unloaded(&path, spec, rec));
                continue;
            }
            let pinned = match tier::read_record(&path)? {
                Some(r) => r.pinned,
                None => read_spec(&path)?.pinned,
            };
            let mut last = 0;
            let c = Collection::open(&path, self.opts.collection, |done, _| {
                last = done;
                metrics()
                    .wal_replay_progress
                    .set((before + done) as f64 / total as f64);
            })?;
            before += last;
            self.collections.write().insert(name, Slot::hot(c, pinned));
        }
        tracing::info!(
            collections = self.collections.read().len(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            simd = crate::distance::kernel_name(),
            "storage recovered"
        );
        Ok(())
    }

    fn start_workers(self: &Arc<Self>) {
        let (tx, rx) = std::sync::mpsc::channel::<BuildJob>();
        for c in self.all() {
            c.set_builder(tx.clone());
        }
        *self.builder.lock() = Some(tx);
        let mut workers = self.workers.lock();
        workers.push(
            std::thread::Builder::new()
                .name("akidb-index-builder".into())
                .spawn(move || {
                    while let Ok((coll, seg)) = rx.recv() {
                        let Some(c) = coll.upgrade() else { continue };
                        if c.deleted.load(Ordering::Acquire) {
                            continue;
                        }
                        let outcome = match c.build_graph(seg) {
                            Ok(_) => "success",
                            Err(e) => {
                                tracing::error!(collection = %c.spec().name, segment = seg, error = %e, "graph build failed");
                                "failure"
                            }
                        };
                        metrics()
                            .worker_runs
                            .with_label_values(&["index_builder", outcome])
                            .inc();
                    }
                })
                .expect("spawn builder thread"),
        );
        let me = Arc::downgrade(self);
        let stop = self.stop.clone();
        workers.push(
            std::thread::Builder::new()
                .name("akidb-maintenance".into())
                .spawn(move || maintenance_loop(me, stop))
                .expect("spawn maintenance thread"),
        );
        let me = Arc::downgrade(self);
        let stop = self.stop.clone();
        let every = self.opts.tiers.interval.max(Duration::from_millis(10));
        workers.push(
            std::thread::Builder::new()
                .name("akidb-tiers".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(every);
                        let Some(e) = me.upgrade() else { return };
                        e.run_tier_policy();
                    }
                })
                .expect("spawn tier thread"),
        );
        if let FsyncPolicy::Interval(every) = self.opts.collection.wal.fsync {
            let me = Arc::downgrade(self);
            let stop = self.stop.clone();
            workers.push(
                std::thread::Builder::new()
                    .name("akidb-wal-flusher".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Acquire) {
                            std::thread::sleep(every);
                            let Some(e) = me.upgrade() else { return };
                            for c in e.all() {
                                if let Err(err) = c.flush_wal() {
                                    tracing::error!(collection = %c.spec().name, error = %err, "WAL flush failed");
                                }
                            }
                        }
                    })
                    .expect("spawn flusher thread"),
            );
        }
    }

    /// Stop the workers and flush every WAL.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        *self.builder.lock() = None;
        for c in self.all() {
            *c.builder_slot() = None;
            let _ = c.flush_wal();
        }
        let workers: Vec<_> = self.workers.lock().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }

    /// Every hot collection.
    pub fn all(&self) -> Vec<Arc<Collection>> {
        self.collections
            .read()
            .values()
            .filter_map(|s| s.loaded())
            .collect()
    }

    pub fn create(&self, spec: CollectionSpec) -> Result<CollectionStats> {
        validate_spec(&spec)?;
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

    /// The collection for a read or write (loaded if warm or cold).
    pub fn get(&self, name: &str) -> Result<Arc<dyn CollectionStore>> {
        Ok(self.collection(name)?)
    }

    /// The collection for a read or write (loaded if warm or cold).
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        Ok(self.access(name)?.collection)
    }

    pub fn list(&self) -> Vec<CollectionStats> {
        self.slots().iter().map(|s| s.stats()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.collections.read().keys().cloned().collect()
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        validate_name(name)?;
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
        wal::sync_dir(&root)?;
        fs::remove_dir_all(&grave)?;
        self.refresh_gauges();
        Ok(())
    }

    /// Update the engine-wide gauges (segments, pending points, memory, collections).
    pub fn refresh_gauges(&self) {
        let m = metrics();
        let (mut pending, mut sealed, mut indexed) = (0, 0, 0);
        let (mut vectors, mut graphs, mut other) = (0, 0, 0);
        let all = self.all();
        for c in &all {
            let (p, s, i, (v, g, o)) = c.gauges();
            pending += p;
            sealed += s;
            indexed += i;
            vectors += v;
            graphs += g;
            other += o;
        }
        m.indexing_pending_points.set(pending as i64);
        m.segments
            .with_label_values(&["appendable"])
            .set(all.len() as i64);
        m.segments
            .with_label_values(&["sealed"])
            .set((sealed - indexed) as i64);
        m.segments
            .with_label_values(&["indexed"])
            .set(indexed as i64);
        m.memory_bytes
            .with_label_values(&["vectors"])
            .set(vectors as i64);
        m.memory_bytes
            .with_label_values(&["hnsw"])
            .set(graphs as i64);
        m.memory_bytes
            .with_label_values(&["payload_index"])
            .set(other as i64);
        self.refresh_tier_gauges();
    }
}

fn maintenance_loop(engine: std::sync::Weak<Engine>, stop: Arc<AtomicBool>) {
    let tick = Duration::from_millis(200);
    let mut last_snapshot = Instant::now();
    let mut last_compaction = Instant::now();
    let mut last_gauges = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(tick);
        let Some(e) = engine.upgrade() else { return };
        if let Some(idle) = e.opts.collection.seal_idle {
            for c in e.all() {
                if !c.deleted.load(Ordering::Acquire) {
                    c.seal_if_idle(idle, e.opts.collection.seal_idle_min_points);
                }
            }
        }
        if last_gauges.elapsed() >= Duration::from_secs(1) {
            e.refresh_gauges();
            last_gauges = Instant::now();
        }
        if e.opts
            .snapshot_interval
            .is_some_and(|i| last_snapshot.elapsed() >= i)
        {
            for c in e.all() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                if c.deleted.load(Ordering::Acquire)
                    || c.applied_sequence() == c.snapshot_sequence()
                {
                    continue;
                }
                let outcome = if e.snapshot_collection(&c).is_ok() {
                    "success"
                } else {
                    "failure"
                };
                metrics()
                    .worker_runs
                    .with_label_values(&["snapshot", outcome])
                    .inc();
            }
            last_snapshot = Instant::now();
        }
        if e.opts
            .compaction_interval
            .is_some_and(|i| last_compaction.elapsed() >= i)
        {
            for c in e.all() {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                if c.deleted.load(Ordering::Acquire) || !c.needs_compaction() {
                    continue;
                }
                let outcome = if c.compact().is_ok() {
                    "success"
                } else {
                    "failure"
                };
                metrics()
                    .worker_runs
                    .with_label_values(&["compaction", outcome])
                    .inc();
            }
            last_compaction = Instant::now();
        }
    }
}

fn read_spec(dir: &std::path::Path) -> Result<CollectionSpec> {
    let p = dir.join(SPEC_FILE);
    serde_json::from_slice(&fs::read(&p)?)
        .map_err(|e| StorageError::DataLoss(format!("{} is unreadable: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_is_validated_with_an_actionable_message() {
        use akidb_proto::v1 as pb;
        let req = |datatype: i32| pb::CreateCollectionRequest {
            name: "c".into(),
            dimension: 4,
            metric: pb::Metric::L2 as i32,
            datatype,
            ..Default::default()
        };
        let spec = crate::convert::spec_from_pb(&req(0)).unwrap();
        assert_eq!(spec.datatype, Datatype::Float32);
        let spec = crate::convert::spec_from_pb(&req(pb::VectorDatatype::Float16 as i32)).unwrap();
        assert_eq!(spec.datatype, Datatype::Float16);
        let err = crate::convert::spec_from_pb(&req(9)).unwrap_err();
        assert!(matches!(err, StorageError::InvalidArgument(_)));
        assert!(err.to_string().contains("FLOAT32 or FLOAT16"), "{err}");
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::InvalidArgument
        );
        let status = akidb_proto::validate::create_collection(&req(9)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("FLOAT32 or FLOAT16"));
        assert!(akidb_proto::validate::create_collection(&req(2)).is_ok());
        // Float16 range on write; cosine vectors are normalized, so never out of range.
        let mut spec = spec;
        let p = |x: f32| PointRecord {
            key: PointKey::Num(1),
            vector: vec![x, 0.0, 0.0, 0.0],
            payload: Payload::new(),
        };
        assert!(validate_points(&spec, &[p(65504.0)]).is_ok());
        let err = validate_points(&spec, &[p(-1e6)]).unwrap_err().to_string();
        assert!(
            err.contains("float16 range") && err.contains("FLOAT32"),
            "{err}"
        );
        spec.metric = Metric::Cosine;
        assert!(validate_points(&spec, &[p(-1e6)]).is_ok());
    }

    #[test]
    fn names() {
        assert!(validate_name("a-b_C9").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_name(&"a".repeat(64)).is_ok());
    }
}
