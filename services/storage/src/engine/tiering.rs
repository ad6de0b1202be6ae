//! Moves between the tiers: a collection loaded into memory (hot), written out as a local
//! snapshot and dropped from memory (warm), or uploaded, confirmed and removed from local disk
//! (cold); and back. The policy that picks the moves is [`crate::tier::plan`]; the snapshot
//! copies in the object store are [`crate::objstore::snapshots`].

use super::Engine;
use crate::collection::Collection;
use crate::error::{FieldProblem, Result, StorageError};
use crate::fsutil::{now_ms, sync_dir};
use crate::model::Tier;
use crate::objstore::snapshots::SnapshotStore;
use crate::snapshot;
use crate::store::CollectionStore;
use crate::tier::{ColdCopy, Slot, TierStatus, View, dir_size, plan, stats_record};
use akidb_instrumentation::metrics;
use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Engine {
    /// The object layer, if the service wired one in.
    fn objects_or_err(&self) -> Result<&SnapshotStore> {
        self.objects().ok_or(StorageError::NoObjectStore)
    }

    /// Bring a collection into memory (fetching it first if cold). Returns the collection,
    /// the tier it came from and whether a load was needed.
    pub(super) fn load(&self, slot: &Arc<Slot>) -> Result<(Arc<Collection>, Tier, bool)> {
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
        let objects = self.objects_or_err()?;
        let cold = slot
            .info
            .lock()
            .cold
            .clone()
            .ok_or_else(|| StorageError::ColdCopyMissing(slot.name.clone()))?;
        let root = snapshot::snapshots_dir(&slot.dir);
        let tmp = root.join(format!(".tmp-{}", cold.snapshot_id));
        objects.download(&slot.name, &cold.snapshot_id, &cold.files, &tmp)?;
        let dst = root.join(&cold.snapshot_id);
        if dst.exists() {
            fs::remove_dir_all(&dst)?;
        }
        fs::rename(&tmp, &dst)?;
        sync_dir(&root)?;
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
            Tier::Cold => return Err(FieldProblem::PromoteToCold.into()),
        }
        Ok(slot.status())
    }

    /// Move a collection to a colder tier. A pinned collection is not demoted.
    pub fn demote(&self, name: &str, to: Tier) -> Result<TierStatus> {
        let slot = self.slot(name)?;
        if slot.pinned() {
            return Err(StorageError::Pinned(name.to_string()));
        }
        match to {
            Tier::Hot => return Err(FieldProblem::DemoteToHot.into()),
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
        // A build or merge of this object is abandoned (it runs again after the next load)
        // rather than waited for below.
        c.stop_background_work();
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
        }
        // The gauges show the new tier before the move is reported done.
        self.refresh_tier_gauges();
        slot.set_moving(None);
        slot.persist()?;
        flushed?;
        metrics()
            .tier_demotions
            .with_label_values(&["hot", "warm"])
            .inc();
        // The collection's memory was freed: give the pages back.
        crate::allocator::release_free_heap();
        tracing::info!(collection = %slot.name, "collection demoted to warm");
        Ok(())
    }

    /// Upload the newest local snapshot, confirm every file, then remove the local
    /// snapshots. If any file only reached the DLQ the collection stays warm.
    fn demote_to_cold(&self, slot: &Arc<Slot>) -> Result<()> {
        let objects = self.objects_or_err()?;
        if slot.tier() != Tier::Warm || slot.loaded().is_some() {
            return Ok(());
        }
        let Some((snap_dir, manifest)) = snapshot::list(&slot.dir)?.pop() else {
            return Err(StorageError::NoLocalSnapshot(slot.name.clone()));
        };
        slot.set_moving(Some(Tier::Cold));
        let res = objects.upload_and_confirm(&slot.name, &snap_dir, &manifest.id);
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
            sync_dir(parent)?;
        }
        metrics()
            .tier_demotions
            .with_label_values(&["warm", "cold"])
            .inc();
        tracing::info!(collection = %slot.name, snapshot = %manifest.id, "collection demoted to cold");
        Ok(())
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
                    "error"
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
