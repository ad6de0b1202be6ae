//! The engine's background threads, started once recovery is done and stopped by
//! [`Engine::shutdown`]:
//!
//! - `akidb-index-builder`: builds the HNSW graph of each sealed segment, in order, and
//!   makes each durable at once with a checkpoint (merges pause while it has work: points
//!   without a graph are searched exactly);
//! - `akidb-maintenance`: seals idle appendable segments, refreshes gauges, takes scheduled
//!   snapshots (then uploads them) and a checkpoint of a collection whose WAL has grown past
//!   `checkpoint_wal_bytes` (so a restart replays at most that much);
//! - `akidb-merger`: merges segments as [`crate::merge::plan`] says (and rewrites those with
//!   many tombstones), one merge at a time, each made durable with a checkpoint;
//! - `akidb-tiers`: runs the tier policy ([`crate::tier::plan`]) and applies its moves;
//! - `akidb-wal-flusher` (with `--fsync interval=<ms>` only): fsyncs every WAL on its timer.

use super::Engine;
use crate::collection::{BuildQueue, Collection};
use crate::wal::FsyncPolicy;
use akidb_instrumentation::metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

impl Engine {
    pub(super) fn start_workers(self: &Arc<Self>) {
        let (queue, jobs) = BuildQueue::new();
        for c in self.all() {
            c.set_builder(queue.clone());
        }
        *self.builder.lock() = Some(queue);
        // Ends when the engine and every collection dropped their queue (shutdown).
        self.spawn_worker("akidb-index-builder", move |_, stop| {
            while let Some((coll, seg)) = jobs.recv() {
                if stop.load(Ordering::Acquire) {
                    // Stopping: what is left is built again after the restart.
                    break;
                }
                build_one(coll, seg);
                jobs.finished();
            }
        });
        self.spawn_worker("akidb-maintenance", maintenance_loop);
        if let Some(every) = self.opts.compaction_interval {
            self.spawn_worker("akidb-merger", move |me, stop| {
                every_until_stopped(every, &me, &stop, |e| e.merge_until_done(&stop))
            });
        }
        let every = self.opts.tiers.interval.max(Duration::from_millis(10));
        self.spawn_worker("akidb-tiers", move |me, stop| {
            every_until_stopped(every, &me, &stop, |e| e.run_tier_policy())
        });
        if let FsyncPolicy::Interval(every) = self.opts.collection.wal.fsync {
            self.spawn_worker("akidb-wal-flusher", move |me, stop| {
                every_until_stopped(every, &me, &stop, |e| {
                    for c in e.all() {
                        if let Err(err) = c.flush_wal() {
                            tracing::error!(collection = %c.spec().name, error = %err, "WAL flush failed");
                        }
                    }
                })
            });
        }
    }

    /// Start a worker thread named `name`, given a weak handle to the engine and the stop
    /// flag; [`Engine::shutdown`] joins it.
    fn spawn_worker(
        self: &Arc<Self>,
        name: &str,
        work: impl FnOnce(Weak<Engine>, Arc<AtomicBool>) + Send + 'static,
    ) {
        let (me, stop) = (Arc::downgrade(self), self.stop.clone());
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(me, stop))
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.workers.lock().push(handle);
    }

    /// Stop the workers (builds and merges in progress are abandoned: they run again after
    /// the restart) and flush every WAL.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        *self.builder.lock() = None;
        for c in self.all() {
            c.stop_background_work();
            *c.builder_slot() = None;
            let _ = c.flush_wal();
        }
        let workers: Vec<_> = self.workers.lock().drain(..).collect();
        for w in workers {
            let _ = w.join();
        }
    }

    /// Merge segments of every hot collection until the merge policy has nothing left to do
    /// (or the engine stops); each merge is made durable with a checkpoint.
    fn merge_until_done(&self, stop: &AtomicBool) {
        // One collection held at a time: a demotion waits for the holders of the one it moves.
        let all: Vec<Weak<Collection>> = self.all().iter().map(Arc::downgrade).collect();
        for c in all {
            let Some(c) = c.upgrade() else { continue };
            while !stop.load(Ordering::Acquire)
                && !c.deleted.load(Ordering::Acquire)
                && c.needs_compaction()
            {
                let outcome = match c.compact() {
                    Ok(r) if r.segments_before == r.segments_after && r.tombstones_removed == 0 => {
                        // Abandoned, or the plan's segments changed under it: try later.
                        break;
                    }
                    Ok(_) => checkpoint(&c, "segments merged"),
                    Err(_) => "error",
                };
                metrics()
                    .worker_runs
                    .with_label_values(&["merger", outcome])
                    .inc();
                if outcome == "error" {
                    break;
                }
            }
        }
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
        let segments = [
            ("appendable", all.len() as u64),
            ("sealed", sealed - indexed),
            ("indexed", indexed),
        ];
        for (kind, n) in segments {
            m.segments.with_label_values(&[kind]).set(n as i64);
        }
        for (kind, bytes) in [
            ("vectors", vectors),
            ("hnsw", graphs),
            ("payload_index", other),
        ] {
            m.memory_bytes.with_label_values(&[kind]).set(bytes as i64);
        }
        self.refresh_tier_gauges();
    }
}

/// One periodic job of the maintenance thread over every hot collection: due every `every`
/// (never when `None`), run on each collection `wanted` accepts, counted as a worker run.
struct Job {
    name: &'static str,
    every: Option<Duration>,
    last: Instant,
}

impl Job {
    fn new(name: &'static str, every: Option<Duration>) -> Self {
        Job {
            name,
            every,
            last: Instant::now(),
        }
    }

    /// Run the job if it is due. Returns false when the engine is stopping.
    fn run_if_due<T, E>(
        &mut self,
        e: &Engine,
        stop: &AtomicBool,
        wanted: impl Fn(&Collection) -> bool,
        run: impl Fn(&Arc<Collection>) -> Result<T, E>,
    ) -> bool {
        if self.every.is_none_or(|i| self.last.elapsed() < i) {
            return true;
        }
        for c in e.all() {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            if c.deleted.load(Ordering::Acquire) || !wanted(&c) {
                continue;
            }
            let outcome = if run(&c).is_ok() { "success" } else { "error" };
            metrics()
                .worker_runs
                .with_label_values(&[self.name, outcome])
                .inc();
        }
        self.last = Instant::now();
        true
    }
}

/// Make what a background job finished durable with a checkpoint of `c`; the outcome of
/// the worker run.
/// Build the graph of segment `seg` of `coll` (if both still exist) and make it durable.
fn build_one(coll: Weak<Collection>, seg: u64) {
    let Some(c) = coll.upgrade() else { return };
    if c.deleted.load(Ordering::Acquire) {
        return;
    }
    let outcome = match c.build_graph(seg) {
        Ok(true) => checkpoint(&c, "graph built"),
        Ok(false) => "success",
        Err(e) => {
            tracing::error!(collection = %c.spec().name, segment = seg, error = %e, "graph build failed");
            "error"
        }
    };
    metrics()
        .worker_runs
        .with_label_values(&["index_builder", outcome])
        .inc();
}

fn checkpoint(c: &Collection, why: &str) -> &'static str {
    let res = c.checkpoint();
    // What the build or merge and the checkpoint's encoding freed goes back to the system.
    crate::allocator::release_free_heap();
    match res {
        Ok(_) => "success",
        Err(e) => {
            tracing::error!(collection = %c.spec().name, error = %e, "checkpoint after {why} failed; the next one retries");
            "error"
        }
    }
}

/// Run `tick` on the engine every `every` until the engine stops or is gone (the stop flag
/// is read at least every 200 ms).
fn every_until_stopped(
    every: Duration,
    engine: &Weak<Engine>,
    stop: &AtomicBool,
    tick: impl Fn(&Engine),
) {
    let step = every.min(Duration::from_millis(200));
    let mut last = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(step);
        if last.elapsed() < every {
            continue;
        }
        let Some(e) = engine.upgrade() else { return };
        tick(&e);
        last = Instant::now();
    }
}

fn maintenance_loop(engine: Weak<Engine>, stop: Arc<AtomicBool>) {
    let tick = Duration::from_millis(200);
    let mut last_gauges = Instant::now();
    let snapshot_every = match engine.upgrade() {
        Some(e) => e.opts.snapshot_interval,
        None => return,
    };
    let mut snapshots = Job::new("snapshot", snapshot_every);
    let mut checkpoints = Job::new("checkpoint", Some(Duration::ZERO));
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
        let changed = |c: &Collection| c.applied_sequence() != c.snapshot_sequence();
        if !snapshots.run_if_due(&e, &stop, changed, |c| e.snapshot_collection(c)) {
            return;
        }
        let wal_limit = e.opts.checkpoint_wal_bytes;
        let long_wal = |c: &Collection| wal_limit > 0 && c.wal_status().size_bytes > wal_limit;
        if !checkpoints.run_if_due(&e, &stop, long_wal, |c| c.checkpoint()) {
            return;
        }
    }
}
