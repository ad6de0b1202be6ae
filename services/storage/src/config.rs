//! Storage service configuration (flags and environment variables).

use crate::engine::EngineOptions;
use crate::wal::{FsyncPolicy, RecoveryMode};
use std::path::PathBuf;
use std::time::Duration;

akidb_instrumentation::listen_args!(StorageConfig, Storage, "STORAGE", 50053, 9103);

#[derive(Debug, Clone, clap::Args)]
pub struct StorageConfig {
    #[command(flatten)]
    pub listen: Listen,
    /// Data directory (WAL, segments, snapshots, local object store).
    #[arg(
        long = "data-dir",
        env = "AKIDB_DATA_DIR",
        default_value = "./akidb-data/storage"
    )]
    pub data_dir: PathBuf,
    /// WAL fsync policy: `always` (a write returns only once it is on disk; the default),
    /// `interval=<ms>` (fsync in the background: a machine crash can lose the last interval
    /// of acknowledged writes) or `never` (the OS decides: fastest, least durable).
    #[arg(long = "fsync", env = "AKIDB_WAL_FSYNC", default_value = "always")]
    pub fsync: FsyncPolicy,
    /// What start-up does with a WAL record that fails its checksum before the end of the
    /// log: `strict` refuses to start and names the file and offset; `skip-corrupt` skips
    /// the damaged records (their writes are lost). A torn last record is always truncated.
    #[arg(
        long = "wal-recovery",
        env = "AKIDB_WAL_RECOVERY",
        value_enum,
        default_value = "strict"
    )]
    pub wal_recovery: RecoveryMode,
    /// Points in the appendable segment before it is sealed and indexed with HNSW.
    #[arg(
        long = "segment-max-points",
        env = "AKIDB_SEGMENT_MAX_POINTS",
        default_value_t = 20_000
    )]
    pub segment_max_points: usize,
    /// Seal (and index) an appendable segment after this many milliseconds without writes
    /// (0: only at --segment-max-points).
    #[arg(
        long = "seal-idle-ms",
        env = "AKIDB_SEAL_IDLE_MS",
        default_value_t = 2_000
    )]
    pub seal_idle_ms: u64,
    /// The least points an idle appendable segment needs to be sealed (smaller ones are
    /// cheap to scan exactly).
    #[arg(
        long = "seal-idle-min-points",
        env = "AKIDB_SEAL_IDLE_MIN_POINTS",
        default_value_t = 1_000
    )]
    pub seal_idle_min_points: usize,
    /// Seconds between scheduled snapshots of changed collections (0: only on demand).
    #[arg(
        long = "snapshot-interval-secs",
        env = "AKIDB_SNAPSHOT_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub snapshot_interval_secs: u64,
    /// Snapshots kept per collection.
    #[arg(
        long = "snapshot-keep",
        env = "AKIDB_SNAPSHOT_KEEP",
        default_value_t = 2
    )]
    pub snapshot_keep: usize,
    /// Share of tombstones above which compaction rewrites a sealed segment.
    #[arg(
        long = "compaction-tombstone-ratio",
        env = "AKIDB_COMPACTION_TOMBSTONE_RATIO",
        default_value_t = 0.2
    )]
    pub compaction_tombstone_ratio: f64,
    /// Sealed segments of one size tier merged into one (size tiers grow by this factor
    /// from --segment-max-points; at least 2).
    #[arg(long = "merge-factor", env = "AKIDB_MERGE_FACTOR", default_value_t = 4)]
    pub merge_factor: usize,
    /// No merge makes a segment of more points than this.
    #[arg(
        long = "merge-max-points",
        env = "AKIDB_MERGE_MAX_POINTS",
        default_value_t = 1_000_000
    )]
    pub merge_max_points: usize,
    /// A collection without writes this many seconds merges its smallest segments into one
    /// up to --merge-max-points (0: never).
    #[arg(
        long = "merge-quiet-secs",
        env = "AKIDB_MERGE_QUIET_SECS",
        default_value_t = 30
    )]
    pub merge_quiet_secs: u64,
    /// Checkpoint a collection whose WAL has grown past this many bytes (0: only after graph
    /// builds, merges and scheduled snapshots): a restart replays at most about this much.
    #[arg(
        long = "checkpoint-wal-bytes",
        env = "AKIDB_CHECKPOINT_WAL_BYTES",
        default_value_t = 64 << 20
    )]
    pub checkpoint_wal_bytes: u64,
    /// Smallest HNSW `ef` used when a search sets none (`ef = max(k, this)`).
    #[arg(long = "search-ef", env = "AKIDB_SEARCH_EF", default_value_t = 64)]
    pub search_ef: usize,
    /// Threads one search may use over a collection's sealed segments (0: one per core; 1:
    /// segments one after the other). Collections under 40k sealed points never split.
    #[arg(
        long = "search-threads",
        env = "AKIDB_SEARCH_THREADS",
        default_value_t = 0
    )]
    pub search_threads: usize,
    /// Memory the hot tier may use, in bytes (0: unlimited). Over it, the least recently
    /// used unpinned collections are demoted to warm.
    #[arg(
        long = "hot-memory-bytes",
        env = "AKIDB_HOT_MEMORY_BYTES",
        default_value_t = 0
    )]
    pub hot_memory_bytes: u64,
    /// Demote a hot collection to warm (snapshot on local disk) after this many seconds
    /// without reads or writes (0: never).
    #[arg(
        long = "hot-idle-secs",
        env = "AKIDB_HOT_IDLE_SECS",
        default_value_t = 0
    )]
    pub hot_idle_secs: u64,
    /// Demote a warm collection to cold (object store only) after this many seconds
    /// without reads or writes (0: never).
    #[arg(
        long = "warm-idle-secs",
        env = "AKIDB_WARM_IDLE_SECS",
        default_value_t = 0
    )]
    pub warm_idle_secs: u64,
    /// Milliseconds between two runs of the tier policy.
    #[arg(
        long = "tier-interval-ms",
        env = "AKIDB_TIER_INTERVAL_MS",
        default_value_t = 1_000
    )]
    pub tier_interval_ms: u64,
    /// Object store, retries, circuit breaker and dead-letter queue.
    #[command(flatten)]
    pub objects: crate::objstore::ObjectLayerConfig,
    /// Keys: storage takes only internal callers when an internal key is set.
    #[command(flatten)]
    pub auth: akidb_auth::AuthArgs,
    /// Cluster: etcd, this node's id and lease (none: a single node).
    #[command(flatten)]
    pub cluster: akidb_cluster::args::ClusterArgs,
}

impl StorageConfig {
    /// The engine settings these flags describe.
    pub fn engine_options(&self) -> EngineOptions {
        let mut o = EngineOptions::new(&self.data_dir);
        o.collection.wal.fsync = self.fsync;
        o.collection.wal.recovery = self.wal_recovery;
        o.collection.segment_max_points = self.segment_max_points.max(1);
        o.collection.seal_idle =
            (self.seal_idle_ms > 0).then(|| Duration::from_millis(self.seal_idle_ms));
        o.collection.seal_idle_min_points = self.seal_idle_min_points;
        o.collection.snapshot_keep = self.snapshot_keep.max(1);
        o.collection.merge = crate::merge::MergePolicy {
            base_points: o.collection.segment_max_points,
            factor: self.merge_factor.max(2),
            max_points: self.merge_max_points.max(1),
            tombstone_ratio: self.compaction_tombstone_ratio,
            quiet_after: (self.merge_quiet_secs > 0)
                .then(|| Duration::from_secs(self.merge_quiet_secs)),
        };
        o.checkpoint_wal_bytes = self.checkpoint_wal_bytes;
        o.collection.tuning.ef_floor = self.search_ef.max(1);
        if self.search_threads > 0 {
            o.collection.tuning.search_threads = self.search_threads;
        }
        o.snapshot_interval = (self.snapshot_interval_secs > 0)
            .then(|| Duration::from_secs(self.snapshot_interval_secs));
        o.tiers = crate::tier::TierOptions {
            hot_memory_bytes: self.hot_memory_bytes,
            hot_idle: (self.hot_idle_secs > 0).then(|| Duration::from_secs(self.hot_idle_secs)),
            warm_idle: (self.warm_idle_secs > 0).then(|| Duration::from_secs(self.warm_idle_secs)),
            interval: Duration::from_millis(self.tier_interval_ms.max(10)),
        };
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_fit_next_to_the_service_flags() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            storage: StorageConfig,
            #[command(flatten)]
            telemetry: akidb_instrumentation::TelemetryArgs,
        }
        Cli::command().debug_assert();
        let c = Cli::parse_from([
            "storage",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--breaker-open-ms",
            "2500",
            "--dlq-max-entries",
            "7",
        ]);
        let o = &c.storage.objects;
        assert_eq!(o.breaker.open_ms, 2_500);
        assert_eq!(o.dlq.max_entries, 7);
        assert_eq!(o.retry.attempts, 4);
    }
}
