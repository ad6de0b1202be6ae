//! The engine's background threads, started once recovery is done and stopped by
//! [`Engine::shutdown`]:
//!
//! - `akidb-index-builder`: builds the HNSW graph of each sealed segment, in order;
//! - `akidb-maintenance`: seals idle appendable segments, refreshes gauges, takes scheduled
//!   snapshots (then uploads them) and compacts segments with many tombstones;
//! - `akidb-tiers`: runs the tier policy ([`crate::tier::plan`]) and applies its moves;
//! - `akidb-wal-flusher` (with `--fsync interval=<ms>` only): fsyncs every WAL on its timer.

use super::Engine;
use crate::collection::BuildJob;
use crate::wal::FsyncPolicy;
use akidb_instrumentation::metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

impl Engine {
    pub(super) fn start_workers(self: &Arc<Self>) {
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
