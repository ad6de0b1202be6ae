//! Start-up: every collection directory is loaded (newest snapshot, then its WAL replayed),
//! or, when its tier record says warm or cold, left on disk or in the object store until it
//! is used. Half-created and half-deleted directories are removed.

use super::catalog::read_spec;
use super::{DELETED_PREFIX, Engine};
use crate::collection::{Collection, SPEC_FILE};
use crate::error::Result;
use crate::model::Tier;
use crate::tier::{self, Slot};
use crate::{snapshot, wal};
use akidb_instrumentation::metrics;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Engine {
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
        self.load_aliases()?;
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
            // Temp files of atomic writes a crash interrupted (spec, tier record); removed
            // here, before anything else writes into the directory.
            crate::fsutil::remove_temp_files(&path)?;
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
            if let Some(mut rec) = rec.filter(|r| r.tier != Tier::Hot) {
                let spec = read_spec(&path)?;
                let has_local = !snapshot::list(&path)?.is_empty();
                if rec.tier == Tier::Warm && !has_local && rec.cold.is_some() {
                    rec.tier = Tier::Cold;
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
}
