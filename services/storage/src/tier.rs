//! Hot, warm and cold tiers.
//!
//! - *hot*: the collection is in memory ([`Collection`]) and serving.
//! - *warm*: its newest snapshot (plus any WAL tail) is on local disk; nothing in memory. The
//!   first access loads it.
//! - *cold*: the snapshot is only in the object store (the WAL tail, if any, stays local). The
//!   first access downloads it, checks every checksum, and loads it.
//!
//! Policy is separate from mechanism: [`plan`] looks at a picture of every collection and
//! returns [`Move`]s; the engine's tier worker applies them (`engine/tiering.rs`). A collection being moved keeps answering from its old tier until the
//! move completes, and local files are removed only after the object store has confirmed
//! every file of the snapshot (a copy that went to the dead-letter queue is not confirmed:
//! the collection then stays warm).
//!
//! Each collection's tier survives a restart in `<collection>/tier.json`.

use crate::collection::Collection;
use crate::error::{Result, StorageError};
use crate::fsutil::{now_ms, write_atomic};
use crate::model::{CollectionSpec, CollectionStats, Tier};
use crate::snapshot::SnapshotFile;
use crate::store::CollectionStore;
use parking_lot::{Mutex, RwLock};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

pub(crate) struct SlotInfo {
    pub(crate) tier: Tier,
    pub(crate) moving_to: Option<Tier>,
    pub(crate) pinned: bool,
    pub(crate) cold: Option<ColdCopy>,
    pub(crate) stats: StatsRecord,
    /// Bytes of the newest snapshot the object store confirmed (0: none known).
    pub(crate) uploaded_bytes: u64,
}

/// One collection in any tier.
pub struct Slot {
    pub name: String,
    pub dir: PathBuf,
    pub spec: CollectionSpec,
    pub(crate) hot: RwLock<Option<Arc<Collection>>>,
    pub(crate) info: Mutex<SlotInfo>,
    last_access_ms: std::sync::atomic::AtomicU64,
    /// Serializes loads and demotions of this collection.
    pub(crate) moves: Mutex<()>,
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

pub(crate) fn dir_size(p: &Path) -> u64 {
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

pub(crate) fn stats_record(s: &CollectionStats) -> StatsRecord {
    StatsRecord {
        point_count: s.point_count,
        indexed_point_count: s.indexed_point_count,
        segment_count: s.segment_count,
        version: s.version,
    }
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
        Ok(write_atomic(&self.dir.join(TIER_FILE), &json)?)
    }

    pub(crate) fn set_moving(&self, to: Option<Tier>) {
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
            .map_err(|e| StorageError::Unreadable {
                what: "tier record",
                path: p.clone(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
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
}
