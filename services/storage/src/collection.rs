//! One durable collection: its WAL, its segments, snapshots and compaction.
//!
//! Write path: under the collection's write-order lock a batch is appended to the WAL (which
//! assigns its sequence number) and applied to the in-memory state, so state and log agree
//! on the order; the writer then waits for the group-committed fsync and only then returns.
//! A write can therefore be visible to searches a moment before it is acknowledged, never the
//! other way round.
//!
//! Background work never holds the state lock while it computes: graph builds and merges
//! read immutable sealed segments, then swap the result in under a short write lock. Both
//! run in steps and are abandoned when the service stops (they run again after the
//! restart); each finished one is made durable at once by a checkpoint (a snapshot that
//! hard-links the files of unchanged segments from the previous one), so a restart never
//! builds a graph again that was built before.

use crate::distance::{normalize, normalize_cosine};
use crate::error::{Result, StorageError};
use crate::filter::Filter;
use crate::fsutil::{now_ms, sync_dir, write_atomic};
use crate::index::{BuildControl, Graph};
use crate::merge::{MergePolicy, SegmentShape};
use crate::model::*;
use crate::named::{NamedColumn, NamedGraph};
use crate::quantize::Codes;
use crate::segment::{
    Appendable, Index, Keys, Loc, Payloads, Sealed, SearchTuning, SegmentData, State,
};
use crate::snapshot::{self, Capture, CapturedSegment, SnapshotManifest};
use crate::store::CollectionStore;
use crate::store::{Hit, Include, ScrollParams, SearchInfo, SearchParams};
use crate::validate;
use crate::vecfile;
use crate::vectors::Vectors;
use crate::wal::{Wal, WalOp, WalOptions, WalStatus};
use akidb_instrumentation::metrics;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

pub const SPEC_FILE: &str = "collection.json";

#[derive(Debug, Clone, Copy)]
pub struct CollectionOptions {
    pub wal: WalOptions,
    /// The appendable segment is sealed (and a graph built) at this many points.
    pub segment_max_points: usize,
    pub tuning: SearchTuning,
    /// Snapshots kept on disk.
    pub snapshot_keep: usize,
    /// Which sealed segments are merged (its `base_points` is `segment_max_points`).
    pub merge: MergePolicy,
    /// Seal an appendable segment idle this long (`None`: only at `segment_max_points`).
    pub seal_idle: Option<Duration>,
    /// ... when it holds at least this many points.
    pub seal_idle_min_points: usize,
}

impl Default for CollectionOptions {
    fn default() -> Self {
        Self {
            wal: WalOptions::default(),
            segment_max_points: 20_000,
            tuning: SearchTuning::default(),
            snapshot_keep: 2,
            merge: MergePolicy::default(),
            seal_idle: Some(Duration::from_secs(2)),
            seal_idle_min_points: 1000,
        }
    }
}

/// A graph to build: which collection and which sealed segment.
pub type BuildJob = (std::sync::Weak<Collection>, u64);

/// Where collections send the graph builds of their sealed segments (the engine's builder
/// thread), with the count of builds sent and not yet finished: merges wait while it is
/// above zero, since points without a graph are searched exactly and merges only make
/// searches cheaper.
#[derive(Clone)]
pub struct BuildQueue {
    tx: Sender<BuildJob>,
    unfinished: Arc<AtomicUsize>,
}

/// The builder's end of a [`BuildQueue`]: closed once every queue clone is dropped.
pub struct BuildJobs {
    rx: Receiver<BuildJob>,
    unfinished: Arc<AtomicUsize>,
}

impl BuildQueue {
    pub fn new() -> (Self, BuildJobs) {
        let (tx, rx) = std::sync::mpsc::channel();
        let unfinished = Arc::new(AtomicUsize::new(0));
        let jobs = BuildJobs {
            rx,
            unfinished: unfinished.clone(),
        };
        (BuildQueue { tx, unfinished }, jobs)
    }
    fn send(&self, job: BuildJob) {
        self.unfinished.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(job).is_err() {
            self.unfinished.fetch_sub(1, Ordering::AcqRel);
        }
    }
    fn busy(&self) -> bool {
        self.unfinished.load(Ordering::Acquire) > 0
    }
}

impl BuildJobs {
    /// The next job; `None` once every queue is dropped.
    pub fn recv(&self) -> Option<BuildJob> {
        self.rx.recv().ok()
    }
    /// The builder finished (or skipped) a job it received.
    pub fn finished(&self) {
        self.unfinished.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompactReport {
    pub segments_before: u64,
    pub segments_after: u64,
    pub tombstones_removed: u64,
}

pub struct Collection {
    /// Handle to itself, for background jobs.
    me: std::sync::Weak<Collection>,
    spec: CollectionSpec,
    dir: PathBuf,
    opts: CollectionOptions,
    wal: Wal,
    /// Serializes writers so that WAL order and apply order are the same.
    order: Mutex<()>,
    state: RwLock<State>,
    /// One graph build per collection at a time (background builder, snapshot, compaction).
    build_lock: Mutex<()>,
    /// One snapshot or compaction per collection at a time.
    maint_lock: Mutex<()>,
    builder: Mutex<Option<BuildQueue>>,
    /// Sequence number of the newest snapshot.
    snapshot_seq: AtomicU64,
    /// Set when the collection is dropped: background work skips it.
    pub(crate) deleted: AtomicBool,
    /// Set when the service stops: builds and merges in progress are abandoned.
    stopping: AtomicBool,
    /// One merge per collection at a time.
    merge_lock: Mutex<()>,
    /// Snapshots being uploaded: pruning leaves them alone (id → uploads in flight).
    pinned: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    /// Random, non-zero, fixed for the life of this in-memory object: a collection that is
    /// re-created, reloaded or served by a restarted process gets another one, so a cached
    /// (epoch, version) pair can never be confused with a later state of the same name.
    epoch: u64,
    /// Unix milliseconds of the last applied write, for sealing an idle appendable segment.
    last_write_ms: AtomicU64,
}

/// The codes of `data`'s vectors for the collection's quantization, learned from its live
/// slots (`None` without quantization).
fn quantize(spec: &CollectionSpec, data: &SegmentData, deleted: &[bool]) -> Option<Codes> {
    Codes::build(
        spec.quantization,
        spec.metric,
        spec.dimension as usize,
        data.vectors.all(),
        data.len(),
        &|o| !deleted[o],
    )
}

/// The codes of named column `col` for its vector's quantization (`v`), learned from the rows
/// of live slots (`None` without quantization). A graph over the column indexes its rows.
fn quantize_named(v: &VectorSpec, col: &NamedColumn, deleted: &[bool]) -> Option<Codes> {
    Codes::build(
        v.quantization,
        v.metric,
        col.dim(),
        col.values(),
        col.slots().len(),
        &|r| col.slot(r).is_some_and(|o| !deleted[o]),
    )
}

/// Write `spec` as the spec of the collection in `dir` (atomically).
pub fn save_spec(dir: &Path, spec: &CollectionSpec) -> Result<()> {
    let json = serde_json::to_vec_pretty(spec).expect("spec serializes");
    write_atomic(&dir.join(SPEC_FILE), &json)?;
    Ok(())
}

impl Collection {
    /// Create a new, empty collection in `dir` (which must not exist yet).
    pub fn create(dir: &Path, spec: CollectionSpec, opts: CollectionOptions) -> Result<Arc<Self>> {
        fs::create_dir_all(dir)?;
        save_spec(dir, &spec)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let (wal, _) = Wal::open(&dir.join("wal"), opts.wal, 0, |_, _| Ok(()), |_, _| {})?;
        let mut state = State::new(spec.clone());
        if spec.on_disk {
            state.vectors_dir = Some(vecfile::reset_dir(dir)?);
        }
        Ok(Self::assemble(dir, spec, opts, wal, Some(state), 0))
    }

    fn assemble(
        dir: &Path,
        spec: CollectionSpec,
        opts: CollectionOptions,
        wal: Wal,
        state: Option<State>,
        snapshot_seq: u64,
    ) -> Arc<Self> {
        let state = state.unwrap_or_else(|| State::new(spec.clone()));
        Arc::new_cyclic(|me| Collection {
            me: me.clone(),
            spec,
            dir: dir.to_path_buf(),
            opts,
            wal,
            order: Mutex::new(()),
            state: RwLock::new(state),
            build_lock: Mutex::new(()),
            maint_lock: Mutex::new(()),
            builder: Mutex::new(None),
            snapshot_seq: AtomicU64::new(snapshot_seq),
            deleted: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            merge_lock: Mutex::new(()),
            pinned: Arc::default(),
            epoch: rand::random::<u64>() | 1,
            last_write_ms: AtomicU64::new(now_ms()),
        })
    }

    /// Open an existing collection: load its newest snapshot (graphs included), then replay
    /// the WAL after it. `progress` gets (WAL bytes read, WAL bytes total).
    pub fn open(
        dir: &Path,
        opts: CollectionOptions,
        progress: impl FnMut(u64, u64),
    ) -> Result<Arc<Self>> {
        let spec_path = dir.join(SPEC_FILE);
        let spec: CollectionSpec = serde_json::from_slice(&fs::read(&spec_path)?).map_err(|e| {
            StorageError::Unreadable {
                what: "collection spec",
                path: spec_path.clone(),
                reason: e.to_string(),
            }
        })?;
        let stale = snapshot::clean_temp(dir)?;
        if stale > 0 {
            tracing::info!(collection = %spec.name, stale, "removed unfinished snapshot directories");
        }
        let mut state = State::new(spec.clone());
        if spec.on_disk {
            state.vectors_dir = Some(vecfile::reset_dir(dir)?);
        }
        let mut snapshot_seq = 0;
        if let Some((path, _)) = snapshot::list(dir)?.pop() {
            let start = Instant::now();
            let loaded = snapshot::load(&path, state.vectors_dir.as_deref())?;
            snapshot_seq = loaded.manifest.sequence;
            state.applied_seq = loaded.manifest.sequence;
            state.next_segment_id = loaded.manifest.next_segment_id;
            let mut have_app = false;
            for s in loaded.segments {
                if s.appendable {
                    state.app_id = s.data.id;
                    let live = s.deleted.iter().filter(|d| !**d).count();
                    state.app = Appendable {
                        alive: s.deleted.iter().map(|d| !d).collect(),
                        data: s.data,
                        live,
                    };
                    have_app = true;
                } else {
                    let id = s.data.id;
                    let mut sealed =
                        Sealed::new(Arc::new(s.data), s.deleted, s.graph.map(Arc::new));
                    sealed.codes = s.codes.map(Arc::new);
                    sealed.named_graphs = s.named_graphs;
                    if sealed.graph.is_some() && sealed.codes.is_none() {
                        // Quantization without codes in the snapshot: encode them now.
                        sealed.codes = quantize(&spec, &sealed.data, &sealed.deleted).map(Arc::new);
                    }
                    sealed.default_ef = match (&sealed.graph, s.default_ef) {
                        (Some(_), Some(ef)) => Some(ef),
                        // Written before graphs were calibrated: measure it once now.
                        (Some(g), None) => {
                            let deleted = &sealed.deleted;
                            let codes = sealed.codes.as_deref();
                            Some(g.calibrate(sealed.data.vectors.all(), codes, &|o| !deleted[o]))
                        }
                        (None, _) => None,
                    };
                    state.sealed.insert(id, sealed);
                }
            }
            if !have_app {
                state.app_id = state.next_segment_id;
                state.next_segment_id += 1;
            }
            state.reindex();
            tracing::info!(collection = %spec.name, snapshot = %path.display(), points = state.point_count(), elapsed_ms = start.elapsed().as_millis() as u64, "snapshot loaded");
        }
        let max = opts.segment_max_points;
        let (wal, report) = Wal::open(
            &dir.join("wal"),
            opts.wal,
            state.applied_seq,
            |seq, op| {
                match op {
                    WalOp::Upsert(points) => state.apply_upsert(points),
                    WalOp::Delete(keys) => {
                        state.apply_delete(&keys);
                    }
                    WalOp::Payloads(changes) => {
                        state.apply_payloads(changes);
                    }
                }
                state.applied_seq = seq;
                if state.app.data.len() >= max {
                    state.seal();
                }
                Ok(())
            },
            progress,
        )?;
        tracing::info!(collection = %spec.name, replayed = report.records, torn_tails = report.torn_tails, corrupt = report.corrupt_records, sequence = report.last_seq, "WAL replayed");
        Ok(Self::assemble(
            dir,
            spec,
            opts,
            wal,
            Some(state),
            snapshot_seq,
        ))
    }

    pub fn spec(&self) -> &CollectionSpec {
        &self.spec
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Send future graph builds to a background builder, and queue the pending ones.
    pub fn set_builder(&self, queue: BuildQueue) {
        for seg in self.state.read().unindexed() {
            queue.send((self.me.clone(), seg));
        }
        *self.builder.lock() = Some(queue);
    }

    fn enqueue_build(&self, seg: u64) {
        if let Some(queue) = &*self.builder.lock() {
            queue.send((self.me.clone(), seg));
        }
    }

    /// Graph builds sent to the builder are not all finished (this collection's or others').
    fn builds_unfinished(&self) -> bool {
        self.builder.lock().as_ref().is_some_and(BuildQueue::busy)
    }

    /// Build the graph of sealed segment `seg` if it still needs one.
    pub fn build_graph(&self, seg: u64) -> Result<bool> {
        let _b = self.build_lock.lock();
        let (data, deleted) = {
            let st = self.state.read();
            match st.sealed.get(&seg) {
                Some(s) if s.graph.is_none() => (s.data.clone(), s.deleted.clone()),
                _ => return Ok(false),
            }
        };
        let Some(index) = self.build_over(&data, &deleted, Work::Segment) else {
            return Ok(false);
        };
        let installed = self.state.write().install_index(seg, index);
        Ok(installed)
    }

    /// Abandon builds and merges in progress, and start no new ones (the service stops).
    pub fn stop_background_work(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The graph over `data`'s live slots, the codes of a quantized collection and the
    /// calibrated `ef` ([`Graph::calibrate`]), or `None` when the build was abandoned.
    fn build_over(&self, data: &SegmentData, deleted: &[bool], work: Work) -> Option<Index> {
        let _span = akidb_instrumentation::context::step_span(|| {
            tracing::info_span!("index.build", collection = %self.spec.name, points = data.len(), work = work.label())
        })
        .entered();
        let start = Instant::now();
        let dim = self.spec.dimension as usize;
        // `hnsw_rs` builds over float32: float16 vectors are widened for the build (exactly:
        // the graph sees the values searches see) and the copy is dropped after it.
        let all = data.vectors.to_f32();
        let items: Vec<(&[f32], usize)> = (0..data.len())
            .filter(|&o| !deleted[o])
            .map(|o| (&all[o * dim..(o + 1) * dim], o))
            .collect();
        let control = Building { c: self, work };
        let g = Graph::build_with(
            self.spec.metric,
            self.spec.m as usize,
            self.spec.ef_construction as usize,
            dim,
            &items,
            &control,
        );
        control.progress(0, 0);
        let secs = start.elapsed().as_secs_f64();
        let points = items.len();
        drop(items);
        drop(all);
        let Some(g) = g else {
            tracing::info!(collection = %self.spec.name, points, seconds = secs, work = work.label(), "HNSW graph build abandoned; it runs again after the restart");
            return None;
        };
        let t = Instant::now();
        let q = self.spec.quantization;
        let codes = quantize(&self.spec, data, deleted);
        let quantization_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ef = g.calibrate(data.vectors.all(), codes.as_ref(), &|o| !deleted[o]);
        let calibration = t.elapsed().as_secs_f64();
        let named = self.build_named(data, deleted, &control)?;
        // The build, quantizer training and calibration freed their scratch memory.
        crate::allocator::release_free_heap();
        metrics().index_build_duration.observe(secs);
        tracing::info!(collection = %self.spec.name, points, seconds = secs, work = work.label(), ef, calibration_seconds = calibration, quantization = q.as_str(), quantization_seconds, "HNSW graph built");
        Some(Index {
            graph: Arc::new(g),
            codes: codes.map(Arc::new),
            default_ef: ef,
            named,
        })
    }

    /// The graph of each named vector over the live slots of `data` that have one, with its
    /// calibrated `ef`; `None` when the build was abandoned.
    fn build_named(
        &self,
        data: &SegmentData,
        deleted: &[bool],
        control: &dyn BuildControl,
    ) -> Option<BTreeMap<String, NamedGraph>> {
        let mut graphs = BTreeMap::new();
        for (name, v) in &self.spec.vectors {
            let Some(col) = data.named.column(name) else {
                continue;
            };
            // The graph indexes the column's rows (of live slots); a search maps them back.
            let live = |r: usize| col.slot(r).is_some_and(|o| !deleted[o]);
            let dim = col.dim();
            // Float16 rows are widened for the build, as the unnamed vector's are.
            let all = col.to_f32();
            let items: Vec<(&[f32], usize)> = (0..col.slots().len())
                .filter(|&r| live(r))
                .map(|r| (&all[r * dim..(r + 1) * dim], r))
                .collect();
            if items.is_empty() || dim != v.dimension as usize {
                continue;
            }
            let start = Instant::now();
            let g = Graph::build_with(
                v.metric,
                v.m as usize,
                v.ef_construction as usize,
                dim,
                &items,
                control,
            )?;
            let points = items.len();
            drop(items);
            drop(all);
            let codes = quantize_named(v, col, deleted);
            let ef = g.calibrate(col.values(), codes.as_ref(), &live);
            tracing::info!(collection = %self.spec.name, vector = %name, points, seconds = start.elapsed().as_secs_f64(), ef, quantization = v.quantization.as_str(), "HNSW graph of a named vector built");
            graphs.insert(
                name.clone(),
                NamedGraph {
                    graph: Arc::new(g),
                    default_ef: ef,
                    codes: codes.map(Arc::new),
                },
            );
        }
        Some(graphs)
    }

    /// Build every missing graph now (snapshots, tests).
    pub fn build_pending(&self) -> Result<()> {
        let pending = self.state.read().unindexed();
        for seg in pending {
            self.build_graph(seg)?;
        }
        Ok(())
    }

    /// Seal the appendable segment now; its graph is built in the background (or by
    /// [`Collection::build_pending`]).
    pub fn seal(&self) -> Option<u64> {
        self.seal_counted().map(|(id, _)| id)
    }

    /// [`Collection::seal`], also returning the live points the new segment holds.
    fn seal_counted(&self) -> Option<(u64, usize)> {
        let _o = self.order.lock();
        let (id, live) = {
            let mut st = self.state.write();
            let live = st.app.live;
            (st.seal()?, live)
        };
        self.enqueue_build(id);
        Some((id, live))
    }

    /// Seal the appendable segment when it holds at least `min_points` and nothing was
    /// written for `idle`: a collection that stopped growing gets its graph instead of being
    /// scanned exactly for ever.
    pub fn seal_if_idle(&self, idle: Duration, min_points: usize) -> Option<u64> {
        if !self.unwritten_for(idle) {
            return None;
        }
        if self.state.read().app.data.len() < min_points.max(1) {
            return None;
        }
        self.seal()
    }

    /// Nothing was written to the collection for `d`.
    fn unwritten_for(&self, d: Duration) -> bool {
        now_ms().saturating_sub(self.last_write_ms.load(Ordering::Acquire)) >= d.as_millis() as u64
    }

    pub(crate) fn builder_slot(&self) -> parking_lot::MutexGuard<'_, Option<BuildQueue>> {
        self.builder.lock()
    }

    pub fn wal_status(&self) -> WalStatus {
        self.wal.status()
    }

    pub fn wal_options(&self) -> WalOptions {
        self.wal.options()
    }

    pub fn snapshot_sequence(&self) -> u64 {
        self.snapshot_seq.load(Ordering::Acquire)
    }

    pub fn applied_sequence(&self) -> u64 {
        self.state.read().applied_seq
    }

    pub fn flush_wal(&self) -> Result<()> {
        self.wal.flush()
    }

    /// (points pending a graph, sealed segments, segments with a graph, memory by kind).
    pub fn gauges(&self) -> (u64, u64, u64, (u64, u64, u64)) {
        let st = self.state.read();
        let indexed = st.sealed.values().filter(|s| s.graph.is_some()).count() as u64;
        (
            st.pending_points() as u64,
            st.sealed.len() as u64,
            indexed,
            st.memory_bytes(),
        )
    }

    /// Take a snapshot now, every graph built first; returns its manifest. The WAL before
    /// it is then deleted.
    pub fn snapshot(&self) -> Result<SnapshotManifest> {
        self.build_pending()?;
        self.checkpoint()
    }

    /// Take a snapshot of the collection as it is (segments still waiting for a graph are
    /// saved without one and queued again at load), then delete the WAL before it. The
    /// files of sealed segments unchanged since the previous snapshot are hard-linked from
    /// it, so a checkpoint costs the appendable segment and what changed, not the
    /// collection.
    pub fn checkpoint(&self) -> Result<SnapshotManifest> {
        let _m = self.maint_lock.lock();
        let span = akidb_instrumentation::context::step_span(
            || tracing::info_span!("snapshot", collection = %self.spec.name),
        );
        let _e = span.enter();
        let start = Instant::now();
        let res = self.snapshot_inner();
        let m = metrics();
        match &res {
            Ok(man) => {
                m.snapshots.with_label_values(&["success"]).inc();
                m.snapshot_duration.observe(start.elapsed().as_secs_f64());
                m.snapshot_last_success
                    .set(man.created_unix_ms as f64 / 1000.0);
                tracing::info!(collection = %self.spec.name, id = %man.id, sequence = man.sequence, points = man.point_count, bytes = man.size_bytes(), "snapshot written");
            }
            Err(e) => {
                m.snapshots.with_label_values(&["error"]).inc();
                tracing::error!(collection = %self.spec.name, error = %e, "snapshot failed");
            }
        }
        res
    }

    fn snapshot_inner(&self) -> Result<SnapshotManifest> {
        let cap = {
            let _o = self.order.lock();
            self.wal.rotate()?;
            let st = self.state.read();
            let mut app = SegmentData::new(st.app_id, self.spec.datatype);
            for off in 0..st.app.data.len() {
                if st.app.alive[off] {
                    app.sparse.copy_row(app.len(), &st.app.data.sparse, off);
                    app.named.copy_row(app.len(), &st.app.data.named, off);
                    app.keys.push(st.app.data.keys.get(off).into_owned());
                    app.vectors.push_row(st.app.data.vector(st.dim, off));
                    app.payloads.push(st.app.data.payloads.get(off).clone());
                }
            }
            let n = app.len();
            let mut segments: Vec<CapturedSegment> = st
                .sealed
                .values()
                .map(|s| CapturedSegment {
                    data: s.data.clone(),
                    deleted: s.deleted.clone(),
                    graph: s.graph.clone(),
                    default_ef: s.default_ef,
                    codes: s.codes.clone(),
                    named_graphs: s.named_graphs.clone(),
                    appendable: false,
                })
                .collect();
            segments.push(CapturedSegment {
                data: Arc::new(app),
                deleted: vec![false; n],
                graph: None,
                default_ef: None,
                codes: None,
                named_graphs: BTreeMap::new(),
                appendable: true,
            });
            Capture {
                spec: self.spec.clone(),
                sequence: st.applied_seq,
                point_count: st.point_count() as u64,
                next_segment_id: st.next_segment_id,
                segments,
            }
        };
        let (_, manifest) = snapshot::write(&self.dir, &cap)?;
        self.snapshot_seq.store(cap.sequence, Ordering::Release);
        self.wal.truncate_upto(cap.sequence)?;
        let pinned = self.pinned.lock().keys().cloned().collect();
        snapshot::prune(&self.dir, self.opts.snapshot_keep, &pinned)?;
        Ok(manifest)
    }

    /// Keep the local snapshot `id` from being pruned until the guard is dropped (while it
    /// is uploaded).
    pub fn pin_snapshot(&self, id: &str) -> SnapshotPin {
        *self.pinned.lock().entry(id.to_string()).or_default() += 1;
        SnapshotPin {
            pinned: self.pinned.clone(),
            id: id.to_string(),
        }
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotManifest>> {
        Ok(snapshot::list(&self.dir)?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    /// The segments the next merge rewrites ([`crate::merge::plan`]): of the sealed segments
    /// that have their graph (or no live point left), so that merges and the graph builder
    /// never work on the same segment.
    fn compaction_plan(&self, st: &State) -> Vec<u64> {
        let shapes: Vec<SegmentShape> = st
            .sealed
            .iter()
            .filter(|(_, s)| s.graph.is_some() || s.live() == 0)
            .map(|(&id, s)| SegmentShape {
                id,
                slots: s.data.len(),
                live: s.live(),
            })
            .collect();
        let policy = MergePolicy {
            base_points: self.opts.segment_max_points,
            ..self.opts.merge
        };
        let quiet = self
            .opts
            .merge
            .quiet_after
            .is_some_and(|d| self.unwritten_for(d));
        crate::merge::plan(&shapes, &policy, quiet)
    }

    pub fn needs_compaction(&self) -> bool {
        !self.compaction_plan(&self.state.read()).is_empty()
    }

    /// Apply the merge policy once: merge the segments of a full size tier, or rewrite one
    /// with many tombstones. Runs off the state lock; abandoned when the service stops.
    pub fn compact(&self) -> Result<CompactReport> {
        let _m = self.merge_lock.lock();
        let _span = akidb_instrumentation::context::step_span(
            || tracing::info_span!("compaction", collection = %self.spec.name),
        )
        .entered();
        let start = Instant::now();
        let res = self.compact_inner();
        let m = metrics();
        match &res {
            Ok(r) if r.segments_before != r.segments_after || r.tombstones_removed > 0 => {
                m.compactions.with_label_values(&["success"]).inc();
                m.compaction_duration.observe(start.elapsed().as_secs_f64());
                tracing::info!(collection = %self.spec.name, before = r.segments_before, after = r.segments_after, tombstones = r.tombstones_removed, "compacted");
            }
            Ok(_) => m.compactions.with_label_values(&["noop"]).inc(),
            Err(e) => {
                m.compactions.with_label_values(&["error"]).inc();
                tracing::error!(collection = %self.spec.name, error = %e, "compaction failed");
            }
        }
        res
    }

    fn compact_inner(&self) -> Result<CompactReport> {
        let dim = self.spec.dimension as usize;
        // The segments to merge as they are now; their points never change, only their
        // tombstones, and points deleted or moved meanwhile are tombstoned at the swap.
        let (plan, before, sources, vectors_dir) = {
            let st = self.state.read();
            let plan = self.compaction_plan(&st);
            let before = st.sealed.len() as u64 + 1;
            let sources: Vec<(u64, Arc<SegmentData>, Vec<bool>)> = plan
                .iter()
                .map(|id| {
                    let s = &st.sealed[id];
                    (*id, s.data.clone(), s.deleted.clone())
                })
                .collect();
            (plan, before, sources, st.vectors_dir.clone())
        };
        if plan.is_empty() {
            return Ok(CompactReport {
                segments_before: before,
                segments_after: before,
                tombstones_removed: 0,
            });
        }
        let live = || {
            sources.iter().flat_map(|(id, s, deleted)| {
                deleted
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| !**d)
                    .map(move |(off, _)| (*id, s, off))
            })
        };
        let n = live().count();
        let mut data = SegmentData {
            keys: Keys::with_capacity(n),
            payloads: Payloads::with_capacity(n),
            ..SegmentData::new(0, self.spec.datatype)
        };
        let mut origins = Vec::with_capacity(n);
        for (seg, s, off) in live() {
            data.sparse.copy_row(data.len(), &s.sparse, off);
            data.named.copy_row(data.len(), &s.named, off);
            data.keys.push(s.keys.get(off).into_owned());
            data.payloads.push(s.payloads.get(off).clone());
            origins.push(Loc {
                seg,
                off: off as u32,
            });
        }
        data.named.shrink_to_fit();
        let rows = live().map(|(_, s, off)| s.vector(dim, off));
        data.vectors = match &vectors_dir {
            // Streamed into the file: a merge never holds its output's vectors on the heap.
            Some(d) => Vectors::Mapped(Arc::new(vecfile::write(
                &d.join(vecfile::live_name(0)),
                self.spec.datatype,
                dim,
                rows,
            )?)),
            None => Vectors::collect(self.spec.datatype, n * dim, rows),
        };
        drop(sources);
        let graph = if data.is_empty() {
            None
        } else {
            let Some(index) = self.build_over(&data, &vec![false; data.len()], Work::Merge) else {
                return Ok(CompactReport {
                    segments_before: before,
                    segments_after: before,
                    tombstones_removed: 0,
                });
            };
            Some(index)
        };
        let (removed, after) = {
            let mut st = self.state.write();
            let removed = st.replace_segments(&plan, data, &origins, graph);
            (removed, st.sealed.len() as u64 + 1)
        };
        Ok(CompactReport {
            segments_before: before,
            segments_after: after,
            tombstones_removed: removed,
        })
    }

    fn commit(&self, seq: u64) -> Result<()> {
        self.wal.wait_durable(seq)
    }
}

/// What a graph build is for (the `work` label of its metrics and logs).
#[derive(Debug, Clone, Copy)]
enum Work {
    /// A newly sealed segment's first graph.
    Segment,
    /// The graph of segments merged into one.
    Merge,
}

impl Work {
    fn label(self) -> &'static str {
        match self {
            Work::Segment => "segment",
            Work::Merge => "merge",
        }
    }
}

/// A build of `c`'s: abandoned when the service stops or the collection is dropped; its
/// progress in `akidb_index_build_points`.
struct Building<'a> {
    c: &'a Collection,
    work: Work,
}

impl Building<'_> {
    fn stopped(&self) -> bool {
        self.c.stopping.load(Ordering::Acquire) || self.c.deleted.load(Ordering::Acquire)
    }
}

impl BuildControl for Building<'_> {
    fn abandoned(&self) -> bool {
        // A merge pauses between its steps while first graphs are waiting to be built: they
        // would otherwise share the cores with it (and wait behind its rayon jobs).
        if matches!(self.work, Work::Merge) {
            while !self.stopped() && self.c.builds_unfinished() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.stopped()
    }
    fn progress(&self, inserted: usize, total: usize) {
        let g = &metrics().index_build_points;
        g.with_label_values(&[self.work.label(), "inserted"])
            .set(inserted as i64);
        g.with_label_values(&[self.work.label(), "total"])
            .set(total as i64);
    }
}

/// Keeps a local snapshot from being pruned while it is uploaded
/// ([`Collection::pin_snapshot`]).
pub struct SnapshotPin {
    pinned: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    id: String,
}

impl Drop for SnapshotPin {
    fn drop(&mut self) {
        let mut p = self.pinned.lock();
        if let Some(n) = p.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                p.remove(&self.id);
            }
        }
    }
}

impl Collection {
    /// Log and apply validated, normalized points, the writers' lock (`order`) held by the
    /// caller; a segment this seals is queued for its build. Returns the record's sequence
    /// number (durable once [`Collection::commit`] returns).
    fn log_upsert(&self, points: Vec<PointRecord>) -> Result<u64> {
        let op = WalOp::Upsert(points);
        let body = op.encode();
        let WalOp::Upsert(points) = op else {
            unreachable!()
        };
        let seq = self.wal.append(&body)?;
        let sealed = {
            let mut st = self.state.write();
            st.apply_upsert(points);
            self.applied(&mut st, seq)
        };
        if let Some(id) = sealed {
            self.enqueue_build(id);
        }
        Ok(seq)
    }

    /// Normalize the cosine vectors of validated points (the unnamed one and named ones), as
    /// they are logged and applied.
    fn normalize(&self, points: &mut [PointRecord]) {
        for p in points {
            normalize_cosine(&self.spec, &mut p.vector, &mut p.named);
        }
    }

    /// [`CollectionStore::set_payloads`], the writers' lock (`order`) held by the caller.
    fn set_payloads_in_order(&self, payloads: Vec<(PointKey, Payload)>) -> Result<(u64, u64)> {
        let span = akidb_instrumentation::context::step_span(
            || tracing::info_span!("wal.commit", collection = %self.spec.name, payloads = payloads.len()),
        );
        let _e = span.enter();
        let payloads: Vec<_> = {
            let st = self.state.read();
            payloads
                .into_iter()
                .filter(|(k, _)| st.ids.contains_key(k))
                .collect()
        };
        if payloads.is_empty() {
            return Ok((0, self.state.read().applied_seq));
        }
        let op = WalOp::Payloads(payloads);
        let seq = self.wal.append(&op.encode())?;
        let WalOp::Payloads(payloads) = op else {
            unreachable!()
        };
        let (n, sealed) = {
            let mut st = self.state.write();
            let n = st.apply_payloads(payloads);
            (n, self.applied(&mut st, seq))
        };
        if let Some(id) = sealed {
            self.enqueue_build(id);
        }
        self.commit(seq)?;
        Ok((n, seq))
    }

    /// After a write at `seq` was applied to `st`: the sequence and write time recorded, and
    /// the appendable segment sealed once full (its id, for the builder).
    fn applied(&self, st: &mut State, seq: u64) -> Option<u64> {
        st.applied_seq = seq;
        self.last_write_ms.store(now_ms(), Ordering::Release);
        if st.app.data.len() >= self.opts.segment_max_points {
            st.seal()
        } else {
            None
        }
    }
}

impl CollectionStore for Collection {
    fn flush(&self, wait_indexed: bool) -> Result<u64> {
        let sealed = self.seal_counted().map_or(0, |(_, live)| live as u64);
        if wait_indexed {
            self.build_pending()?;
        }
        Ok(sealed)
    }

    fn stats(&self) -> CollectionStats {
        let st = self.state.read();
        CollectionStats {
            spec: self.spec.clone(),
            point_count: st.point_count() as u64,
            indexed_point_count: st
                .sealed
                .values()
                .filter(|s| s.graph.is_some())
                .map(|s| s.live() as u64)
                .sum(),
            segment_count: st.sealed.len() as u64 + 1,
            version: st.applied_seq,
            tier: Tier::Hot,
        }
    }

    fn upsert(&self, mut points: Vec<PointRecord>) -> Result<u64> {
        validate::points(&self.spec, &points)?;
        self.normalize(&mut points);
        let span = akidb_instrumentation::context::step_span(
            || tracing::info_span!("wal.commit", collection = %self.spec.name, points = points.len()),
        );
        let _e = span.enter();
        let seq = {
            let _o = self.order.lock();
            self.log_upsert(points)?
        };
        self.commit(seq)?;
        Ok(seq)
    }

    fn update_vectors(&self, updates: &[VectorUpdate]) -> Result<(u64, u64)> {
        validate::vector_updates(&self.spec, updates)?;
        // The vectors given are normalized as an upsert's; those kept already are.
        let mut updates = updates.to_vec();
        for u in &mut updates {
            normalize_cosine(
                &self.spec,
                u.vector.as_deref_mut().unwrap_or(&mut []),
                &mut u.named,
            );
        }
        let span = akidb_instrumentation::context::step_span(
            || tracing::info_span!("wal.commit", collection = %self.spec.name, vector_updates = updates.len()),
        );
        let _e = span.enter();
        let (n, seq) = {
            // Resolved under the writers' lock: the points logged are the ones applied.
            let _o = self.order.lock();
            let points = self.resolve_vectors(&updates)?;
            (points.len() as u64, self.log_upsert(points)?)
        };
        self.commit(seq)?;
        Ok((n, seq))
    }

    fn delete(&self, keys: &[PointKey], filter: Option<&Filter>) -> Result<(u64, u64)> {
        let span = akidb_instrumentation::context::step_span(
            || tracing::info_span!("wal.commit", collection = %self.spec.name, delete = true),
        );
        let _e = span.enter();
        let seq = {
            let _o = self.order.lock();
            let victims = self.state.read().named(keys, filter);
            if victims.is_empty() {
                return Ok((0, self.state.read().applied_seq));
            }
            let seq = self.wal.append(&WalOp::Delete(victims.clone()).encode())?;
            let mut st = self.state.write();
            let n = st.apply_delete(&victims);
            st.applied_seq = seq;
            self.last_write_ms.store(now_ms(), Ordering::Release);
            (seq, n)
        };
        self.commit(seq.0)?;
        Ok((seq.1, seq.0))
    }

    fn update_payload(
        &self,
        keys: &[PointKey],
        filter: Option<&Filter>,
        change: &PayloadChange,
    ) -> Result<(u64, u64)> {
        // Resolved under the writers' lock: the payloads logged are the ones applied.
        let _o = self.order.lock();
        let payloads = self.state.read().resolve_payloads(keys, filter, change);
        self.set_payloads_in_order(payloads)
    }

    fn resolve_payloads(
        &self,
        keys: &[PointKey],
        filter: Option<&Filter>,
        change: &PayloadChange,
    ) -> Result<Vec<(PointKey, Payload)>> {
        Ok(self.state.read().resolve_payloads(keys, filter, change))
    }

    fn set_payloads(&self, payloads: Vec<(PointKey, Payload)>) -> Result<(u64, u64)> {
        let _o = self.order.lock();
        self.set_payloads_in_order(payloads)
    }

    fn search(&self, params: &SearchParams) -> Result<(Vec<Hit>, SearchInfo)> {
        let st = self.state.read();
        let (hits, mut info) = match &params.sparse {
            Some((name, q)) => st.search_sparse(name, q, params),
            None => {
                let mut q = params.vector.clone();
                if params.metric(&self.spec) == Metric::Cosine {
                    normalize(&mut q);
                }
                st.search(&q, params, &self.opts.tuning)
            }
        };
        // Read under the same lock as the search: the result is exactly that version's.
        info.version = st.applied_seq;
        info.epoch = self.epoch;
        Ok((hits, info))
    }

    fn version_token(&self) -> Option<(u64, u64)> {
        Some((self.epoch, self.state.read().applied_seq))
    }

    fn get(&self, keys: &[PointKey], include: Include) -> Result<Vec<StoredPoint>> {
        let st = self.state.read();
        Ok(keys.iter().filter_map(|k| st.stored(k, include)).collect())
    }

    fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        Ok(self.state.read().count(filter))
    }

    fn scroll(&self, params: &ScrollParams) -> Result<(Vec<StoredPoint>, Option<PointKey>)> {
        Ok(self.state.read().scroll(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Condition, Match};
    use crate::memory::MemoryCollection;
    use crate::snapshot::SegmentEntry;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    fn spec(metric: Metric) -> CollectionSpec {
        let named = |dimension, metric| VectorSpec {
            dimension,
            metric,
            m: 8,
            ef_construction: 64,
            datatype: Datatype::Float32,
            quantization: Quantization::None,
        };
        CollectionSpec {
            sparse_vectors: ["text".to_string(), "other".to_string()].into(),
            vectors: [
                ("img".to_string(), named(5, Metric::L2)),
                ("txt".to_string(), named(3, Metric::Cosine)),
            ]
            .into(),
            ..CollectionSpec::for_test("t", 8, metric, 64)
        }
    }

    /// A random sparse vector over indices 0..40 (weights -1..2), ascending.
    fn random_sparse(rng: &mut impl Rng, max_len: usize) -> SparseVector {
        let mut indices: Vec<u32> = (0..rng.random_range(1..=max_len))
            .map(|_| rng.random_range(0..40))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let values = indices
            .iter()
            .map(|_| rng.random_range(-1.0f32..2.0))
            .collect();
        SparseVector { indices, values }
    }

    fn opts(seg: usize) -> CollectionOptions {
        CollectionOptions {
            segment_max_points: seg,
            ..Default::default()
        }
    }

    fn color_filter(c: &str) -> Filter {
        Filter {
            must: vec![Condition::Field {
                key: "color".into(),
                path: vec!["color".into()],
                matcher: Match::Keyword(c.into()),
            }],
            ..Default::default()
        }
    }

    fn random_batch(rng: &mut impl Rng, n: usize, max_id: u64) -> Vec<PointRecord> {
        (0..n)
            .map(|_| {
                let id = rng.random_range(0..max_id);
                let colors = ["red", "green", "blue"];
                PointRecord {
                    key: if id % 7 == 0 {
                        PointKey::Uuid(format!("00000000-0000-4000-8000-{id:012}"))
                    } else {
                        PointKey::Num(id)
                    },
                    vector: (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                    payload: json!({"color": colors[rng.random_range(0..3)], "n": rng.random_range(0..10)})
                        .as_object()
                        .unwrap()
                        .clone(),
                    // Two in three points carry `text`, one in four `other`.
                    sparse: {
                        let mut sv = SparseVectors::new();
                        if rng.random_range(0..3) != 0 {
                            sv.insert("text".into(), random_sparse(rng, 8));
                        }
                        if rng.random_range(0..4) == 0 {
                            sv.insert("other".into(), random_sparse(rng, 8));
                        }
                        sv
                    },
                    // One in two points carries `img`, one in three `txt`.
                    named: {
                        let mut nv = NamedVectors::new();
                        for (name, dim, one_in) in [("img", 5, 2), ("txt", 3, 3)] {
                            if rng.random_range(0..one_in) == 0 {
                                let v = (0..dim).map(|_| rng.random_range(-1.0f32..1.0));
                                nv.insert(name.into(), v.collect());
                            }
                        }
                        nv
                    },
                }
            })
            .collect()
    }

    fn exact(q: Vec<f32>, k: usize, filter: Option<Filter>) -> SearchParams {
        SearchParams {
            vector: q,
            k,
            filter,
            ef: None,
            oversampling: None,
            include: Include::ALL,
            exact: true,
            sparse: None,
            vector_name: None,
        }
    }

    /// Everything observable must equal the oracle.
    fn assert_same(c: &dyn CollectionStore, o: &MemoryCollection, rng: &mut impl Rng) {
        assert_eq!(c.count(None).unwrap(), o.count(None).unwrap());
        let red = color_filter("red");
        assert_eq!(c.count(Some(&red)).unwrap(), o.count(Some(&red)).unwrap());
        let all = ScrollParams {
            limit: 100_000,
            include: Include::ALL,
            ..Default::default()
        };
        let (a, _) = c.scroll(&all).unwrap();
        let (b, _) = o.scroll(&all).unwrap();
        assert_eq!(a.len(), b.len());
        if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
            assert_eq!(x, y);
        }
        for _ in 0..5 {
            let q: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            for f in [None, Some(red.clone())] {
                let (h1, _) = c.search(&exact(q.clone(), 10, f.clone())).unwrap();
                let (h2, _) = o.search(&exact(q.clone(), 10, f.clone())).unwrap();
                let k1: Vec<_> = h1.iter().map(|h| &h.key).collect();
                let k2: Vec<_> = h2.iter().map(|h| &h.key).collect();
                assert_eq!(k1, k2);
                // Through the graphs (walking the codes of a quantized collection), with an
                // ef and oversampling that cover every segment: the same points with the
                // same scores: candidates are rescored with the stored vectors.
                let wide = SearchParams {
                    exact: false,
                    ef: Some(400),
                    oversampling: Some(16.0),
                    ..exact(q.clone(), 10, f.clone())
                };
                let (h3, info) = c.search(&wide).unwrap();
                let got: Vec<_> = h3.iter().map(|h| &h.key).collect();
                assert_eq!(got, k2, "graph search ({info:?})");
                // (Float16 kernels may round the last bit differently from the oracle's.)
                for (a, b) in h3.iter().zip(&h2) {
                    assert!((a.score - b.score).abs() <= 1e-5 * b.score.abs().max(1.0));
                }
                // Sparse: the pruned search through each sealed segment's inverted index
                // returns what scoring every point does.
                let sq = random_sparse(rng, 6);
                for name in ["text", "other"] {
                    let p = SearchParams {
                        vector: vec![],
                        sparse: Some((name.into(), sq.clone())),
                        ..exact(vec![], 10, f.clone())
                    };
                    let (h1, _) = c.search(&p).unwrap();
                    let (h2, _) = o.search(&p).unwrap();
                    let k1: Vec<_> = h1.iter().map(|h| (&h.key, h.score)).collect();
                    let k2: Vec<_> = h2.iter().map(|h| (&h.key, h.score)).collect();
                    assert_eq!(k1, k2, "sparse `{name}` {sq:?}");
                    assert_eq!(h1, h2);
                }
                // Named dense vectors: exactly, and through each sealed segment's graph of
                // the name (which holds only the points that carry it).
                for (name, dim) in [("img", 5), ("txt", 3)] {
                    let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                    let p = SearchParams {
                        vector_name: Some(name.into()),
                        ..exact(q, 10, f.clone())
                    };
                    let (want, _) = o.search(&p).unwrap();
                    let (h1, _) = c.search(&p).unwrap();
                    // The same points (with their vectors), scores within float16 kernels'
                    // rounding of the last bit.
                    let same = |got: &[Hit], how: &str| {
                        let keys = |h: &[Hit]| h.iter().map(|h| h.key.clone()).collect::<Vec<_>>();
                        assert_eq!(keys(got), keys(&want), "named `{name}` {how}");
                        for (a, b) in got.iter().zip(&want) {
                            assert!((a.score - b.score).abs() <= 1e-5 * b.score.abs().max(1.0));
                            assert_eq!((&a.named, &a.payload), (&b.named, &b.payload));
                        }
                    };
                    same(&h1, "exact");
                    let wide = SearchParams {
                        exact: false,
                        ef: Some(400),
                        oversampling: Some(16.0),
                        ..p
                    };
                    let (h2, info) = c.search(&wide).unwrap();
                    same(&h2, &format!("through the graphs ({info:?})"));
                }
            }
        }
    }

    #[test]
    fn recovery_equals_memory_oracle() {
        use Quantization::{Binary, Int8, None as Plain};
        let cases = [Metric::Cosine, Metric::L2, Metric::Dot]
            .into_iter()
            .flat_map(|m| [(m, Datatype::Float32), (m, Datatype::Float16)])
            .flat_map(|(m, d)| [(m, d, Plain), (m, d, Int8), (m, d, Binary)])
            .filter(|&(m, _, q)| !(m == Metric::L2 && q == Binary))
            .flat_map(|(m, d, q)| [(m, d, q, false), (m, d, q, true)]);
        for (metric, datatype, quantization, on_disk) in cases {
            eprintln!("{metric:?} {datatype:?} {quantization:?} on disk {on_disk}");
            // The named vectors are kept and quantized as the unnamed one (`img`, of L2, with
            // int8 codes when the collection's are binary).
            let spec = |metric| {
                let mut s = CollectionSpec {
                    datatype,
                    quantization,
                    on_disk,
                    ..spec(metric)
                };
                for (name, v) in s.vectors.iter_mut() {
                    v.datatype = datatype;
                    v.quantization = match (name.as_str(), quantization) {
                        ("img", Binary) => Int8,
                        (_, q) => q,
                    };
                }
                s
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t");
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            // The oracle stores what the datatype keeps (float16: rounded components), so
            // search, Get and Scroll must agree exactly through the WAL and snapshots.
            let oracle = MemoryCollection::new(spec(metric));
            let c = Collection::create(&path, spec(metric), opts(40)).unwrap();
            for round in 0..60 {
                let n = rng.random_range(1..20);
                let b = random_batch(&mut rng, n, 300);
                c.upsert(b.clone()).unwrap();
                oracle.upsert(b).unwrap();
                if round % 5 == 4 {
                    let keys: Vec<PointKey> = (0..5)
                        .map(|_| PointKey::Num(rng.random_range(0..300)))
                        .collect();
                    let (n1, _) = c.delete(&keys, None).unwrap();
                    let (n2, _) = oracle.delete(&keys, None).unwrap();
                    assert_eq!(n1, n2);
                }
                if round % 4 == 1 {
                    // Payload changes by ids and by filter, of every kind; the vectors stay.
                    let keys: Vec<PointKey> = (0..6)
                        .map(|_| PointKey::Num(rng.random_range(0..300)))
                        .collect();
                    let change = match round / 4 % 4 {
                        0 => PayloadChange::Set(
                            json!({"color": "green", "tag": round})
                                .as_object()
                                .unwrap()
                                .clone(),
                        ),
                        1 => PayloadChange::DeleteKeys(vec!["n".into(), "nested.x".into()]),
                        2 => PayloadChange::Overwrite(
                            json!({"color": "blue", "nested": {"x": 1, "y": 2}})
                                .as_object()
                                .unwrap()
                                .clone(),
                        ),
                        _ => PayloadChange::Clear,
                    };
                    let f = color_filter(["red", "blue"][round % 2]);
                    let filter = (round % 3 == 0).then_some(&f);
                    let a = c.update_payload(&keys, filter, &change).unwrap();
                    let b = oracle.update_payload(&keys, filter, &change).unwrap();
                    assert_eq!(a.0, b.0, "{change:?}");
                }
                if round % 6 == 2 {
                    // Vector updates of existing points: one of each kind, or several.
                    let existing: Vec<PointKey> = oracle
                        .scroll(&ScrollParams {
                            limit: 1000,
                            ..Default::default()
                        })
                        .unwrap()
                        .0
                        .into_iter()
                        .map(|p| p.key)
                        .collect();
                    let updates: Vec<VectorUpdate> = (0..4)
                        .map(|i| {
                            let key = existing[rng.random_range(0..existing.len())].clone();
                            let mut v = |d: usize| -> Vec<f32> {
                                (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect()
                            };
                            VectorUpdate {
                                vector: (i % 2 == 0).then(|| v(8)),
                                named: match i {
                                    1 => [("img".to_string(), v(5))].into(),
                                    3 => [("txt".to_string(), v(3)), ("img".to_string(), v(5))]
                                        .into(),
                                    _ => NamedVectors::new(),
                                },
                                sparse: match i {
                                    2 => [("other".to_string(), random_sparse(&mut rng, 5))].into(),
                                    _ => SparseVectors::new(),
                                },
                                key,
                            }
                        })
                        .collect();
                    // What each point must hold after, worked out here from before.
                    let keys: Vec<PointKey> = updates.iter().map(|u| u.key.clone()).collect();
                    let mut want: std::collections::HashMap<PointKey, StoredPoint> = c
                        .get(&keys, Include::ALL)
                        .unwrap()
                        .into_iter()
                        .map(|p| (p.key.clone(), p))
                        .collect();
                    for u in &updates {
                        let w = want.get_mut(&u.key).unwrap();
                        if let Some(v) = &u.vector {
                            w.vector = Some(v.clone());
                        }
                        w.named.extend(u.named.clone());
                        w.sparse.extend(u.sparse.clone());
                    }
                    let a = c.update_vectors(&updates).unwrap();
                    let b = oracle.update_vectors(&updates).unwrap();
                    assert_eq!(a.0, b.0);
                    // Directions compared (cosine vectors are stored normalized), within
                    // float16's rounding.
                    let same = |a: &[f32], b: &[f32]| {
                        let unit = |v: &[f32]| {
                            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-30);
                            v.iter().map(|x| x / n).collect::<Vec<f32>>()
                        };
                        let (a, b) = (unit(a), unit(b));
                        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-2)
                    };
                    for p in c.get(&keys, Include::ALL).unwrap() {
                        let w = &want[&p.key];
                        assert_eq!((&p.payload, &p.sparse), (&w.payload, &w.sparse));
                        assert!(same(p.vector.as_ref().unwrap(), w.vector.as_ref().unwrap()));
                        assert!(p.named.keys().eq(w.named.keys()));
                        assert!(p.named.iter().all(|(n, v)| same(v, &w.named[n])));
                    }
                    // A point that does not exist: refused, nothing changed.
                    let mut bad = updates.clone();
                    bad[1].key = PointKey::Num(999_999);
                    let version = c.applied_sequence();
                    let err = c.update_vectors(&bad).unwrap_err();
                    assert!(matches!(err, StorageError::PointNotFound { .. }), "{err}");
                    assert_eq!(c.applied_sequence(), version);
                }
                if round == 30 {
                    let f = color_filter("green");
                    let (n1, _) = c.delete(&[], Some(&f)).unwrap();
                    let (n2, _) = oracle.delete(&[], Some(&f)).unwrap();
                    assert_eq!(n1, n2);
                }
                match round {
                    20 => c.build_pending().unwrap(),
                    25 => {
                        c.snapshot().unwrap();
                    }
                    45 => {
                        c.compact().unwrap();
                    }
                    _ => {}
                }
            }
            // Quantized collections walk codes in every segment with a graph (built, merged
            // and reloaded alike).
            let coded = |c: &Collection| {
                let st = c.state.read();
                let with_graph: Vec<_> = st.sealed.values().filter(|s| s.graph.is_some()).collect();
                assert!(!with_graph.is_empty());
                let coded = with_graph.iter().all(|s| {
                    s.codes.as_ref().map(|c| c.kind())
                        == Some(quantization).filter(|q| !q.is_none())
                });
                // On disk: every sealed segment's vectors are in a mapped file.
                let mapped = st
                    .sealed
                    .values()
                    .all(|s| s.data.vectors.mapped().is_some() == on_disk);
                // Named vectors have their own graphs (built, merged and reloaded alike), with
                // codes of their own quantization, and rows in their datatype.
                let named = with_graph.iter().any(|s| {
                    s.named_graphs.contains_key("img") && s.named_graphs.contains_key("txt")
                });
                let named_coded = with_graph.iter().all(|s| {
                    s.named_graphs.iter().all(|(n, g)| {
                        g.codes.as_ref().map(|c| c.kind())
                            == Some(st.spec.vectors[n].quantization).filter(|q| !q.is_none())
                            && s.data.named.column(n).unwrap().datatype() == datatype
                    })
                });
                coded && mapped && named && named_coded
            };
            assert_same(&*c, &oracle, &mut rng);
            assert!(c.stats().segment_count > 2);
            assert!(coded(&c));
            drop(c);
            let c = Collection::open(&path, opts(40), |_, _| {}).unwrap();
            assert!(coded(&c));
            assert_same(&*c, &oracle, &mut rng);
            // And once more after a snapshot, with the WAL behind it truncated; the codes of
            // quantized named vectors are in it (loaded, not encoded again).
            let m = c.snapshot().unwrap();
            let named_codes = m
                .segments
                .iter()
                .flat_map(|e| e.named_graphs.values())
                .map(|g| g.codes_file.is_some())
                .collect::<Vec<_>>();
            assert!(!named_codes.is_empty());
            assert!(named_codes.iter().all(|&c| c != quantization.is_none()));
            let b = random_batch(&mut rng, 10, 300);
            c.upsert(b.clone()).unwrap();
            oracle.upsert(b).unwrap();
            drop(c);
            let c = Collection::open(&path, opts(40), |_, _| {}).unwrap();
            assert_same(&*c, &oracle, &mut rng);
        }
    }

    /// A snapshot whose segments hold a named vector the collection does not declare with
    /// that dimension does not load (a later write of a valid vector could not join the
    /// column); a log record's undeclared or wrong-length named vectors are dropped on replay.
    #[test]
    fn named_columns_must_match_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        // `img` walked through int8 codes.
        let mut quantized = spec(Metric::L2);
        quantized.vectors.get_mut("img").unwrap().quantization = Quantization::Int8;
        let c = Collection::create(&path, quantized, opts(100)).unwrap();
        let pts: Vec<PointRecord> = (0..10u64)
            .map(|i| PointRecord {
                key: PointKey::Num(i),
                vector: vec![i as f32; 8],
                payload: Payload::new(),
                sparse: Default::default(),
                named: [("img".to_string(), vec![1.0, 2.0, 3.0, 4.0, i as f32])].into(),
            })
            .collect();
        c.upsert(pts).unwrap();
        c.seal();
        c.build_pending().unwrap();
        c.snapshot().unwrap();
        // The snapshot holds the codes built with the graph, and loads them as they were.
        let built: Vec<Arc<Codes>> = c
            .state
            .read()
            .sealed
            .values()
            .filter_map(|s| s.named_graphs.get("img")?.codes.clone())
            .collect();
        assert_eq!(built.len(), 1);
        let (snap, _) = snapshot::list(&path).unwrap().pop().unwrap();
        let loaded = snapshot::load(&snap, None).unwrap();
        let codes = loaded
            .segments
            .iter()
            .find_map(|s| s.named_graphs.get("img")?.codes.clone())
            .unwrap();
        assert_eq!(*codes, *built[0]);
        // A quantized named vector's graph without its codes does not load.
        let m = snap.join(snapshot::MANIFEST);
        let good = fs::read(&m).unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        for s in v["segments"].as_array_mut().unwrap() {
            if let Some(g) = s.get_mut("named_graphs").and_then(|n| n.get_mut("img")) {
                g.as_object_mut().unwrap().remove("codes_file").unwrap();
            }
        }
        fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = snapshot::load(&snap, None).err().unwrap().to_string();
        assert!(err.contains("without its codes"), "{err}");
        fs::write(&m, &good).unwrap();
        // Replayed state: a record naming `img` with 3 components and an undeclared `zz`.
        c.state.write().apply_upsert(vec![PointRecord {
            key: PointKey::Num(3),
            vector: vec![0.0; 8],
            payload: Payload::new(),
            sparse: Default::default(),
            named: [
                ("img".to_string(), vec![1.0, 2.0, 3.0]),
                ("zz".to_string(), vec![1.0]),
            ]
            .into(),
        }]);
        let got = c.get(&[PointKey::Num(3)], Include::ALL).unwrap();
        assert!(got[0].named.is_empty(), "{got:?}");
        drop(c);
        let (snap, _) = snapshot::list(&path).unwrap().pop().unwrap();
        let m = snap.join(snapshot::MANIFEST);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&m).unwrap()).unwrap();
        v["collection"]["vectors"]["img"]["dimension"] = json!(4);
        fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = snapshot::load(&snap, None).err().unwrap().to_string();
        assert!(err.contains("does not declare"), "{err}");
        // Nor one whose named vector the collection keeps in another datatype.
        v["collection"]["vectors"]["img"]["dimension"] = json!(5);
        v["collection"]["vectors"]["img"]["datatype"] = json!("Float16");
        fs::write(&m, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = snapshot::load(&snap, None).err().unwrap().to_string();
        assert!(err.contains("5 float32 components"), "{err}");
    }

    #[test]
    fn float16_snapshot_holds_half_size_vectors_and_reloads_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let spec16 = CollectionSpec {
            datatype: Datatype::Float16,
            ..spec(Metric::L2)
        };
        let c = Collection::create(&path, spec16.clone(), opts(100)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let pts: Vec<PointRecord> = (0..250u64)
            .map(|i| PointRecord {
                key: PointKey::Num(i),
                vector: (0..8).map(|_| rng.random_range(-300.0f32..300.0)).collect(),
                payload: Payload::new(),
                sparse: Default::default(),
                named: Default::default(),
            })
            .collect();
        c.upsert(pts.clone()).unwrap();
        // Out of the float16 range: refused, nothing written.
        let mut big = pts[0].clone();
        big.vector[3] = 70_000.0;
        let err = c.upsert(vec![big]).unwrap_err();
        assert!(
            matches!(err, StorageError::OutsideFloat16 { index: 3, .. }),
            "{err}"
        );
        let rounded = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&x| crate::distance::f16_to_f32(crate::distance::f32_to_f16(x)))
                .collect()
        };
        let got = c.get(&[PointKey::Num(7)], Include::VECTOR).unwrap();
        assert_eq!(got[0].vector.as_deref(), Some(&rounded(&pts[7].vector)[..]));
        let m = c.snapshot().unwrap();
        assert_eq!(m.format, 3);
        assert_eq!(m.collection.datatype, Datatype::Float16);
        let snap = snapshot::list(&path).unwrap().pop().unwrap().0;
        for e in &m.segments {
            let bytes = fs::read(snap.join(&e.points_file)).unwrap();
            assert_eq!(&bytes[..8], b"AKSEG02\0");
        }
        let sealed = m.segments.iter().find(|e| !e.appendable).unwrap();
        let size = m
            .files
            .iter()
            .find(|f| f.name == sealed.points_file)
            .unwrap()
            .size_bytes;
        // Header, then per point: key, 8 × 2 bytes of vector, tombstone, payload length.
        let n = 250;
        assert_eq!(size, 8 + 8 + 8 + 4 + 1 + n * (9 + 16 + 1 + 4));
        let q = vec![1.5f32; 8];
        let before = c.search(&exact(q.clone(), 10, None)).unwrap().0;
        drop(c);
        let c = Collection::open(&path, opts(100), |_, _| {}).unwrap();
        assert_eq!(c.spec().datatype, Datatype::Float16);
        assert_eq!(c.search(&exact(q, 10, None)).unwrap().0, before);
        assert_eq!(c.stats().point_count, 250);
        // A damaged float16 segment file is refused by its checksum.
        drop(c);
        let p = snap.join(&sealed.points_file);
        let mut bytes = fs::read(&p).unwrap();
        bytes[200] ^= 0x40;
        fs::write(&p, bytes).unwrap();
        let err = Collection::open(&path, opts(100), |_, _| {}).err().unwrap();
        assert!(
            matches!(err, StorageError::ChecksumMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn graph_search_sees_tombstones_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collection::create(&dir.path().join("t"), spec(Metric::L2), opts(1000)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let pts: Vec<PointRecord> = (0..500u64)
            .map(|i| PointRecord {
                key: PointKey::Num(i),
                vector: (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                payload: Payload::new(),
                sparse: Default::default(),
                named: Default::default(),
            })
            .collect();
        c.upsert(pts.clone()).unwrap();
        c.seal().unwrap();
        c.build_pending().unwrap();
        assert_eq!(c.stats().indexed_point_count, 500);
        // Delete point 3 and move point 4 far away: neither may come back near its old place.
        c.delete(&[PointKey::Num(3)], None).unwrap();
        let mut moved = pts[4].clone();
        moved.vector = vec![100.0; 8];
        c.upsert(vec![moved]).unwrap();
        for probe in [3usize, 4] {
            let params = SearchParams {
                exact: false,
                ..exact(pts[probe].vector.clone(), 5, None)
            };
            let (hits, info) = c.search(&params).unwrap();
            assert_eq!(hits.len(), 5);
            assert!(info.points_graph > 0);
            assert!(hits.iter().all(|h| h.key != PointKey::Num(probe as u64)));
        }
    }

    /// Upsert `pts` into both, in batches of `batch` (a segment is sealed after a batch).
    fn upsert_in(
        c: &Collection,
        o: Option<&MemoryCollection>,
        pts: Vec<PointRecord>,
        batch: usize,
    ) {
        for b in pts.chunks(batch) {
            c.upsert(b.to_vec()).unwrap();
            if let Some(o) = o {
                o.upsert(b.to_vec()).unwrap();
            }
        }
    }

    fn points(from: u64, n: u64, rng: &mut impl Rng) -> Vec<PointRecord> {
        (from..from + n)
            .map(|i| PointRecord {
                key: PointKey::Num(i),
                vector: (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
                payload: Payload::new(),
                sparse: Default::default(),
                named: Default::default(),
            })
            .collect()
    }

    fn on_disk(metric: Metric) -> CollectionSpec {
        CollectionSpec {
            quantization: Quantization::Int8,
            on_disk: true,
            payload_indexes: Default::default(),
            ..spec(metric)
        }
    }

    /// A vector file that cannot be written (here: `vectors/` is gone) leaves the sealed
    /// segment's vectors on the heap; nothing is lost.
    #[test]
    fn a_vector_file_that_cannot_be_written_leaves_the_vectors_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let c = Collection::create(&path, on_disk(Metric::L2), opts(1000)).unwrap();
        fs::remove_dir_all(path.join("vectors")).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let pts = points(0, 30, &mut rng);
        c.upsert(pts.clone()).unwrap();
        assert!(c.seal().is_some());
        assert!(
            c.state
                .read()
                .sealed
                .values()
                .all(|s| s.data.vectors.mapped().is_none())
        );
        let keys: Vec<PointKey> = pts.iter().map(|p| p.key.clone()).collect();
        let got = c.get(&keys, Include::VECTOR).unwrap();
        for (g, p) in got.iter().zip(&pts) {
            assert_eq!(g.vector.as_deref(), Some(&p.vector[..]));
        }
    }

    /// A snapshot's vector file that fails its checksum, or a manifest entry that disagrees
    /// with its points file on where the vectors are, stops the load with the damage named.
    #[test]
    fn damaged_vector_files_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let c = Collection::create(&path, on_disk(Metric::L2), opts(20)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        c.upsert(points(0, 50, &mut rng)).unwrap();
        c.snapshot().unwrap();
        drop(c);
        let snap = snapshot::list(&path).unwrap().pop().unwrap().0;
        let m = snapshot::read_manifest(&snap).unwrap();
        let vec_file = m
            .segments
            .iter()
            .find_map(|e| e.vectors_file.clone())
            .expect("sealed segments keep their vectors in files");
        let original = fs::read(snap.join(&vec_file)).unwrap();
        let mut flipped = original.clone();
        *flipped.last_mut().unwrap() ^= 1;
        fs::write(snap.join(&vec_file), &flipped).unwrap();
        assert!(matches!(
            Collection::open(&path, opts(20), |_, _| {}),
            Err(StorageError::ChecksumMismatch { .. })
        ));
        fs::write(snap.join(&vec_file), &original).unwrap();
        let mut m2 = m.clone();
        m2.segments.iter_mut().for_each(|e| e.vectors_file = None);
        fs::write(
            snap.join(snapshot::MANIFEST),
            serde_json::to_vec(&m2).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            Collection::open(&path, opts(20), |_, _| {}),
            Err(StorageError::Damaged { .. })
        ));
        fs::write(
            snap.join(snapshot::MANIFEST),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        let c = Collection::open(&path, opts(20), |_, _| {}).unwrap();
        assert_eq!(c.count(None).unwrap(), 50);
    }

    /// A checkpoint hard-links the files of sealed segments unchanged since the previous
    /// snapshot, rewrites those with new tombstones, and keeps a pinned snapshot from being
    /// pruned; what it saved reloads exactly.
    #[test]
    fn checkpoints_reuse_unchanged_segments_and_keep_pinned_snapshots() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let c = Collection::create(&path, spec(Metric::L2), opts(100)).unwrap();
        let oracle = MemoryCollection::new(spec(Metric::L2));
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        upsert_in(&c, Some(&oracle), points(0, 350, &mut rng), 50);
        c.build_pending().unwrap();
        let m1 = c.checkpoint().unwrap();
        let pin = c.pin_snapshot(&m1.id);
        let ino = |m: &SnapshotManifest, name: &str| {
            fs::metadata(snapshot::snapshots_dir(&path).join(&m.id).join(name))
                .unwrap()
                .ino()
        };
        let sealed = |m: &SnapshotManifest| -> Vec<SegmentEntry> {
            m.segments
                .iter()
                .filter(|e| !e.appendable)
                .cloned()
                .collect()
        };
        assert_eq!(sealed(&m1).len(), 3);
        assert!(sealed(&m1).iter().all(|e| e.graph_file.is_some()));

        // New points only: every sealed file is the same file.
        let more = points(350, 20, &mut rng);
        c.upsert(more.clone()).unwrap();
        oracle.upsert(more).unwrap();
        let m2 = c.checkpoint().unwrap();
        for e in sealed(&m1) {
            assert_eq!(ino(&m1, &e.points_file), ino(&m2, &e.points_file));
            let g = e.graph_file.as_deref().unwrap();
            assert_eq!(ino(&m1, g), ino(&m2, g));
        }
        // A delete in the first segment: its points file is written again, not the others.
        c.delete(&[PointKey::Num(5)], None).unwrap();
        oracle.delete(&[PointKey::Num(5)], None).unwrap();
        let m3 = c.checkpoint().unwrap();
        let (first, rest) = sealed(&m3)
            .split_first()
            .map(|(a, b)| (a.clone(), b.to_vec()))
            .unwrap();
        assert_eq!(first.tombstones, Some(1));
        assert_ne!(ino(&m2, &first.points_file), ino(&m3, &first.points_file));
        let g = first.graph_file.as_deref().unwrap();
        assert_ne!(
            ino(&m2, g),
            ino(&m3, g),
            "graph file written with its segment"
        );
        for e in rest {
            assert_eq!(ino(&m2, &e.points_file), ino(&m3, &e.points_file));
        }
        // Kept: the newest two, and the pinned first one.
        let ids = |_: ()| -> Vec<String> {
            snapshot::list(&path)
                .unwrap()
                .into_iter()
                .map(|(_, m)| m.id)
                .collect()
        };
        assert_eq!(ids(()), vec![m1.id.clone(), m2.id.clone(), m3.id.clone()]);
        drop(pin);
        let m4 = c.checkpoint().unwrap();
        assert_eq!(ids(()), vec![m3.id.clone(), m4.id.clone()]);
        drop(c);
        let c = Collection::open(&path, opts(100), |_, _| {}).unwrap();
        assert_eq!(c.stats().indexed_point_count, 299);
        assert_same(&*c, &oracle, &mut rng);
    }

    /// A collection at `path` of 400 points written in batches of 50 into segments of 50,
    /// all with their graph (eight sealed segments of one tier), mirrored in `oracle`.
    fn eight_indexed_segments(
        path: &Path,
        oracle: Option<&MemoryCollection>,
        seed: u64,
    ) -> (Arc<Collection>, rand::rngs::StdRng) {
        let c = Collection::create(path, spec(Metric::L2), opts(50)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        upsert_in(&c, oracle, points(0, 400, &mut rng), 50);
        c.build_pending().unwrap();
        (c, rng)
    }

    /// Stopping abandons a graph build: the segment stays without a graph, searched
    /// exactly, and no merge starts either.
    #[test]
    fn stopping_abandons_builds_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let (c, mut rng) = eight_indexed_segments(&dir.path().join("t"), None, 2);
        assert!(c.needs_compaction(), "eight segments of one tier");
        c.upsert(points(400, 50, &mut rng)).unwrap();
        c.stop_background_work();
        c.build_pending().unwrap();
        assert_eq!(c.stats().indexed_point_count, 400);
        let before = c.stats().segment_count;
        let r = c.compact().unwrap();
        assert_eq!((r.segments_before, r.segments_after), (before, before));
        let (hits, info) = c
            .search(&SearchParams {
                exact: false,
                ..exact(vec![0.0; 8], 5, None)
            })
            .unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(info.points_exact, 50);
    }

    /// Merges follow the size tiers: eight base segments become two of the next tier, and
    /// every result stays equal to the oracle's.
    #[test]
    fn merges_follow_the_size_tiers() {
        let dir = tempfile::tempdir().unwrap();
        let oracle = MemoryCollection::new(spec(Metric::L2));
        let (c, mut rng) = eight_indexed_segments(&dir.path().join("t"), Some(&oracle), 4);
        assert_eq!(c.stats().segment_count, 9);
        let mut merges = 0;
        while c.needs_compaction() {
            c.compact().unwrap();
            merges += 1;
        }
        assert_eq!(merges, 2);
        assert_eq!(c.stats().segment_count, 3);
        assert_eq!(c.stats().indexed_point_count, 400);
        assert_same(&*c, &oracle, &mut rng);
    }

    /// A merge waits while graph builds sent to the builder are unfinished, and goes on
    /// once they are.
    #[test]
    fn merges_wait_for_unfinished_graph_builds() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = eight_indexed_segments(&dir.path().join("t"), None, 6);
        assert!(c.needs_compaction());
        let before = c.stats().segment_count;
        let (queue, jobs) = BuildQueue::new();
        c.set_builder(queue);
        // A build the builder has not finished (it has not even taken it).
        c.enqueue_build(1);
        let merging = {
            let c = c.clone();
            std::thread::spawn(move || c.compact().unwrap())
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !merging.is_finished(),
            "the merge went on beside a pending build"
        );
        assert_eq!(c.stats().segment_count, before);
        assert!(jobs.recv().is_some());
        jobs.finished();
        let r = merging.join().unwrap();
        assert!(r.segments_after < r.segments_before, "{r:?}");
    }

    /// A build sent after the builder is gone (its end dropped at shutdown) is not counted
    /// as unfinished: merges never wait for it.
    #[test]
    fn builds_sent_to_a_closed_queue_are_not_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let c = Collection::create(&dir.path().join("t"), spec(Metric::L2), opts(50)).unwrap();
        let (queue, jobs) = BuildQueue::new();
        c.set_builder(queue);
        drop(jobs);
        c.enqueue_build(1);
        assert!(!c.builds_unfinished());
    }

    /// A collection without writes for `quiet_after` merges all its segments into one (under
    /// the cap); every result stays equal to the oracle's.
    #[test]
    fn a_quiet_collection_ends_in_one_segment() {
        let dir = tempfile::tempdir().unwrap();
        let quiet = CollectionOptions {
            merge: MergePolicy {
                quiet_after: Some(Duration::ZERO),
                ..MergePolicy::default()
            },
            ..opts(50)
        };
        let c = Collection::create(&dir.path().join("t"), spec(Metric::L2), quiet).unwrap();
        let oracle = MemoryCollection::new(spec(Metric::L2));
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        upsert_in(&c, Some(&oracle), points(0, 230, &mut rng), 50);
        c.seal();
        c.build_pending().unwrap();
        assert_eq!(c.stats().segment_count, 6);
        while c.needs_compaction() {
            c.compact().unwrap();
        }
        assert_eq!(
            c.stats().segment_count,
            2,
            "one sealed segment and the appendable one"
        );
        assert_eq!(c.stats().indexed_point_count, 230);
        assert_same(&*c, &oracle, &mut rng);
    }

    #[test]
    fn snapshot_restart_loads_graphs_without_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let c = Collection::create(&path, spec(Metric::Cosine), opts(100)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..10 {
            c.upsert(random_batch(&mut rng, 50, 1_000_000)).unwrap();
        }
        let m = c.snapshot().unwrap();
        let indexed = c.stats().indexed_point_count;
        assert!(indexed > 0);
        let files = snapshot::list_files(&snapshot::list(&path).unwrap()[0].0).unwrap();
        assert!(files.iter().any(|f| f.name.ends_with(".graph")));
        assert!(files.iter().all(|f| f.sha256.len() == 64));
        assert_eq!(m.sequence, 10);
        drop(c);
        // No builder is attached: any graph present after open came from the snapshot.
        let c = Collection::open(&path, opts(100), |_, _| {}).unwrap();
        assert_eq!(c.stats().indexed_point_count, indexed);
        assert_eq!(c.wal_status().last_sequence, 10);
        assert_eq!(c.stats().version, 10);
    }

    #[test]
    fn format_1_snapshot_with_hnsw_rs_dumps_loads_without_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let c = Collection::create(&path, spec(Metric::L2), opts(200)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..8 {
            c.upsert(random_batch(&mut rng, 100, 1_000_000)).unwrap();
        }
        c.snapshot().unwrap();
        let indexed = c.stats().indexed_point_count;
        assert!(indexed > 0);
        let q: Vec<f32> = (0..8).map(|i| i as f32 * 0.1 - 0.3).collect();
        let want = c.search(&exact(q.clone(), 10, None)).unwrap().0;
        drop(c);
        // Rewrite the snapshot as format 1 wrote it: hnsw_rs dumps instead of graph files.
        let snap = snapshot::list(&path).unwrap().pop().unwrap().0;
        let loaded = snapshot::load(&snap, None).unwrap();
        let mut m = snapshot::read_manifest(&snap).unwrap();
        m.format = 1;
        for (e, seg) in m.segments.iter_mut().zip(&loaded.segments) {
            let Some(name) = e.graph_file.take() else {
                continue;
            };
            fs::remove_file(snap.join(&name)).unwrap();
            m.files.retain(|f| f.name != name);
            let all = seg.data.vectors.to_f32();
            let items: Vec<(&[f32], usize)> = (0..seg.data.len())
                .filter(|&o| !seg.deleted[o])
                .map(|o| (&all[o * 8..(o + 1) * 8], o))
                .collect();
            let base = format!("seg-{}", e.id);
            for f in crate::index::dump_hnsw_rs(Metric::L2, 8, 64, &items, &snap, &base) {
                m.files.push(snapshot::checksum(&snap.join(&f), f).unwrap());
            }
            e.graph = Some(base);
        }
        assert!(m.segments.iter().any(|e| e.graph.is_some()));
        fs::write(
            snap.join(snapshot::MANIFEST),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
        // No builder is attached: the graphs come from the converted dumps.
        let c = Collection::open(&path, opts(200), |_, _| {}).unwrap();
        assert_eq!(c.stats().indexed_point_count, indexed);
        let got = c
            .search(&SearchParams {
                exact: false,
                ef: Some(64),
                ..exact(q, 10, None)
            })
            .unwrap();
        assert!(got.1.points_graph > 0);
        let same = got
            .0
            .iter()
            .filter(|h| want.iter().any(|w| w.key == h.key))
            .count();
        assert!(same >= 9, "{same} of 10");
        // The next snapshot is written in format 2.
        let m2 = c.snapshot().unwrap();
        assert_eq!(m2.format, 2);
        assert!(m2.files.iter().any(|f| f.name.ends_with(".graph")));
        assert!(!m2.files.iter().any(|f| f.name.contains(".hnsw.")));
    }
}
