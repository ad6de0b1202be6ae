//! The engine's background threads, started once recovery is done and stopped by
//! [`Engine::shutdown`]:
//!
//! - `akidb-index-builder`: builds the HNSW graph of each sealed segment, in order;
//! - `akidb-maintenance`: seals idle appendable segments, refreshes gauges, takes scheduled
//!   snapshots (then uploads them) and compacts segments with many tombstones;
//! - `akidb-tiers`: runs the tier policy ([`crate::tier::plan`]) and applies its moves;
//! - `akidb-wal-flusher` (with `--fsync interval=<ms>` only): fsyncs every WAL on its timer.

use super::Engine;
use crate::collection::{BuildJob, Collection};
use crate::wal::FsyncPolicy;
use akidb_instrumentation::metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

impl Engine {
    pub(super) fn start_workers(self: &Arc<Self>) {
        let (tx, rx) = std::sync::mpsc::channel::<BuildJob>();
        for c in self.all() {
            c.set_builder(tx.clone());
        }
        *self.builder.lock() = Some(tx);
        self.spawn_worker("akidb-index-builder", move |_, _| {
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
        });
        self.spawn_worker("akidb-maintenance", maintenance_loop);
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
            let outcome = if run(&c).is_ok() {
                "success"
            } else {
                "failure"
            };
            metrics()
                .worker_runs
                .with_label_values(&[self.name, outcome])
                .inc();
        }
        self.last = Instant::now();
        true
    }
}

/// Run `tick` on the engine every `every` until the engine stops or is gone.
fn every_until_stopped(
    every: Duration,
    engine: &Weak<Engine>,
    stop: &AtomicBool,
    tick: impl Fn(&Engine),
) {
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(every);
        let Some(e) = engine.upgrade() else { return };
        tick(&e);
    }
}

fn maintenance_loop(engine: Weak<Engine>, stop: Arc<AtomicBool>) {
    let tick = Duration::from_millis(200);
    let mut last_gauges = Instant::now();
    let (snapshot_every, compaction_every) = match engine.upgrade() {
        Some(e) => (e.opts.snapshot_interval, e.opts.compaction_interval),
        None => return,
    };
    let mut snapshots = Job::new("snapshot", snapshot_every);
    let mut compactions = Job::new("compaction", compaction_every);
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
        if !compactions.run_if_due(&e, &stop, Collection::needs_compaction, |c| c.compact()) {
            return;
        }
    }
}
