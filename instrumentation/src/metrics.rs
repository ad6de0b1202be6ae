//! The metric catalogue (docs/metrics.md) as one registry of typed handles.
//!
//! Every service links this module and gets the same `akidb_*` names; a service exports only
//! the series it touches (a labelled metric with no child yet prints nothing), and the
//! unlabelled gauges and counters of other subsystems print as 0 only where that is true
//! (e.g. an ingest process has no DLQ, so its DLQ metrics are not registered: see
//! [`Component`]).

use crate::exemplar::TracedHistogram;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;
use std::time::Instant;

/// Latency buckets in seconds, from 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets for slow background work (snapshots, builds, loads), 1 ms to 10 min.
pub const SLOW_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Which service a process runs; decides which subsystem metrics it registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Storage,
    Ingest,
    Query,
    Telemetry,
    /// Tools and tests: common metrics only.
    Other,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Storage => "storage",
            Component::Ingest => "ingest",
            Component::Query => "query",
            Component::Telemetry => "telemetry",
            Component::Other => "other",
        }
    }
}

/// Handles for every metric. Subsystem groups are registered only in the component that owns
/// them, but always exist so that code never has to check.
pub struct Metrics {
    pub registry: Registry,
    started: Instant,
    pub uptime: Gauge,
    pub build_info: IntGaugeVec,
    pub memory_bytes: IntGaugeVec,
    pub worker_runs: IntCounterVec,

    pub grpc_server_requests: IntCounterVec,
    pub grpc_server_duration: HistogramVec,
    pub grpc_server_in_flight: IntGaugeVec,
    pub grpc_client_requests: IntCounterVec,
    pub grpc_client_duration: HistogramVec,
    pub trace_spans_ended: IntCounter,
    pub trace_export_spans: IntCounterVec,
    pub auth_requests: IntCounterVec,

    // storage
    pub search_duration: HistogramVec,
    pub upsert_duration: HistogramVec,
    pub upserted_points: IntCounter,
    pub deleted_points: IntCounter,
    pub payload_updated_points: IntCounter,
    pub collection_points: IntGaugeVec,
    pub collections: IntGaugeVec,
    pub tier_bytes: IntGaugeVec,
    pub tier_promotions: IntCounterVec,
    pub tier_demotions: IntCounterVec,
    pub tier_load_duration: HistogramVec,
    pub hot_memory_budget: IntGauge,
    pub wal_size: IntGauge,
    pub wal_appended_bytes: IntCounter,
    pub wal_records: IntCounter,
    pub wal_fsync_duration: TracedHistogram,
    pub wal_group_commit_records: Histogram,
    pub wal_recovering: IntGauge,
    pub wal_replay_progress: Gauge,
    pub wal_replayed_records: IntCounter,
    pub wal_torn_tail: IntCounter,
    pub wal_corrupt_records: IntCounter,
    pub segments: IntGaugeVec,
    pub index_build_duration: TracedHistogram,
    pub indexing_pending_points: IntGauge,
    pub index_build_points: IntGaugeVec,
    pub snapshot_duration: TracedHistogram,
    pub snapshots: IntCounterVec,
    pub snapshot_last_success: Gauge,
    pub compactions: IntCounterVec,
    pub compaction_duration: TracedHistogram,
    pub s3_operations: IntCounterVec,
    pub s3_duration: HistogramVec,
    pub s3_retries: IntCounterVec,
    pub breaker_state: IntGaugeVec,
    pub breaker_transitions: IntCounterVec,
    pub dlq_depth: IntGauge,
    pub dlq_oldest_age: Gauge,
    pub dlq_enqueued: IntCounter,
    pub dlq_retries: IntCounterVec,
    pub cluster_enabled: IntGauge,
    pub cluster_lease_held: IntGauge,
    pub cluster_lease_losses: IntCounter,
    pub cluster_etcd_reachable: IntGauge,
    pub cluster_shard_calls_failed: IntCounterVec,
    pub cluster_hedged_reads: IntCounterVec,
    pub cluster_controller: IntGauge,
    pub cluster_shards_without_owner: IntGauge,
    pub cluster_follower_lag: IntGauge,
    pub cluster_map_changes: IntCounterVec,
    pub shard_log_appends: IntCounterVec,
    pub shard_snapshots: IntCounterVec,

    // query
    pub cache_requests: IntCounterVec,
    pub cache_entries: IntGauge,
    pub search_partial: IntCounter,

    // ingest
    pub ingest_points: IntCounter,
    pub ingest_rejected: IntCounterVec,

    // telemetry aggregator
    pub aggregator_scrapes: IntCounterVec,
    pub slo_objective: GaugeVec,
    pub slo_sli: GaugeVec,
    pub slo_burn_rate: GaugeVec,
    pub slo_budget_remaining: GaugeVec,
    pub slo_alert: IntGaugeVec,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process-wide metrics; [`init_metrics`] decides what is registered (default: common only).
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(Component::Other))
}

/// Register the metrics of `component`. Call once at start-up, before [`metrics`].
pub fn init_metrics(component: Component) -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(component))
}

fn c(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid metric")
}
fn cv(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}
fn g(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}
fn gf(name: &str, help: &str) -> Gauge {
    Gauge::new(name, help).expect("valid metric")
}
fn gv(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}
fn gfv(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}
fn h(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("valid metric")
}
fn th(name: &str, help: &str, buckets: &[f64]) -> TracedHistogram {
    TracedHistogram::plain(h(name, help, buckets))
}
fn hv(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric")
}

macro_rules! register {
    ($reg:expr, $($m:expr),+ $(,)?) => {
        {$( $reg.register(Box::new($m.clone())).expect("metric registered once"); )+}
    };
}

/// Collections that get an `akidb_collection_points` series: the first ones seen, so that
/// the number of series stays bounded whatever names clients create.
pub const MAX_COLLECTION_SERIES: usize = 100;

static COLLECTION_SERIES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<String>>> =
    std::sync::LazyLock::new(Default::default);

impl Metrics {
    /// Set `akidb_collection_points` of `collection`, if it is one of the first
    /// [`MAX_COLLECTION_SERIES`] collections with a series.
    pub fn set_collection_points(&self, collection: &str, points: u64) {
        let mut seen = COLLECTION_SERIES.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(collection) {
            if seen.len() >= MAX_COLLECTION_SERIES {
                return;
            }
            seen.insert(collection.to_string());
        }
        self.collection_points
            .with_label_values(&[collection])
            .set(points as i64);
    }

    /// Drop the series of a deleted collection (making room for another).
    pub fn forget_collection(&self, collection: &str) {
        let mut seen = COLLECTION_SERIES.lock().unwrap_or_else(|e| e.into_inner());
        if seen.remove(collection) {
            self.collection_points
                .remove_label_values(&[collection])
                .ok();
        }
    }

    pub fn new(component: Component) -> Self {
        let registry = Registry::new();
        let m = Metrics {
            started: Instant::now(),
            uptime: gf("akidb_uptime_seconds", "Seconds since the process started."),
            build_info: gv(
                "akidb_build_info",
                "Build identity; always 1.",
                &["version", "component"],
            ),
            memory_bytes: gv(
                "akidb_memory_bytes",
                "Memory held, by component.",
                &["component"],
            ),
            worker_runs: cv(
                "akidb_worker_runs_total",
                "Background worker runs by outcome.",
                &["worker", "outcome"],
            ),
            grpc_server_requests: cv(
                "akidb_grpc_server_requests_total",
                "Finished gRPC calls served, by service, method and status code.",
                &["grpc_service", "grpc_method", "grpc_code"],
            ),
            grpc_server_duration: hv(
                "akidb_grpc_server_request_duration_seconds",
                "Server-side gRPC latency.",
                &["grpc_service", "grpc_method"],
                LATENCY_BUCKETS,
            ),
            grpc_server_in_flight: gv(
                "akidb_grpc_server_in_flight_requests",
                "gRPC calls being served.",
                &["grpc_service", "grpc_method"],
            ),
            grpc_client_requests: cv(
                "akidb_grpc_client_requests_total",
                "gRPC calls made to another AkiDB service, by status code.",
                &["grpc_service", "grpc_method", "grpc_code"],
            ),
            grpc_client_duration: hv(
                "akidb_grpc_client_request_duration_seconds",
                "Client-side latency of calls to another AkiDB service.",
                &["grpc_service", "grpc_method"],
                LATENCY_BUCKETS,
            ),
            trace_spans_ended: c(
                "akidb_trace_spans_ended_total",
                "Spans ended with trace export on, queued for the exporter.",
            ),
            trace_export_spans: cv(
                "akidb_trace_export_spans_total",
                "Spans handed to the OTLP exporter, by outcome (exported, failed).",
                &["outcome"],
            ),
            auth_requests: cv(
                "akidb_auth_requests_total",
                "Calls decided by the API key check, by outcome (allowed, unauthenticated, denied).",
                &["outcome"],
            ),
            search_duration: hv(
                "akidb_search_duration_seconds",
                "Storage-side search latency by serving tier.",
                &["tier"],
                LATENCY_BUCKETS,
            ),
            upsert_duration: hv(
                "akidb_upsert_duration_seconds",
                "Storage-side durable write latency by tier.",
                &["tier"],
                LATENCY_BUCKETS,
            ),
            upserted_points: c(
                "akidb_upserted_points_total",
                "Points acknowledged by storage.",
            ),
            deleted_points: c("akidb_deleted_points_total", "Points deleted."),
            payload_updated_points: c(
                "akidb_payload_updated_points_total",
                "Points whose payload an UpdatePayload changed.",
            ),
            collection_points: gv(
                "akidb_collection_points",
                "Live points per collection (first 100 collections).",
                &["collection"],
            ),
            collections: gv("akidb_collections", "Collections per tier.", &["tier"]),
            tier_bytes: gv("akidb_tier_bytes", "Bytes held per tier.", &["tier"]),
            tier_promotions: cv(
                "akidb_tier_promotions_total",
                "Moves to a hotter tier.",
                &["from", "to"],
            ),
            tier_demotions: cv(
                "akidb_tier_demotions_total",
                "Moves to a colder tier.",
                &["from", "to"],
            ),
            tier_load_duration: hv(
                "akidb_tier_load_duration_seconds",
                "Time to load a collection into memory.",
                &["from"],
                SLOW_BUCKETS,
            ),
            hot_memory_budget: g(
                "akidb_hot_memory_budget_bytes",
                "Configured memory budget of the hot tier (0 = unlimited).",
            ),
            wal_size: g("akidb_wal_size_bytes", "WAL bytes on disk."),
            wal_appended_bytes: c(
                "akidb_wal_appended_bytes_total",
                "Bytes appended to the WAL.",
            ),
            wal_records: c("akidb_wal_records_total", "Records appended to the WAL."),
            wal_fsync_duration: th(
                "akidb_wal_fsync_duration_seconds",
                "Duration of one group-commit fsync.",
                LATENCY_BUCKETS,
            ),
            wal_group_commit_records: h(
                "akidb_wal_group_commit_records",
                "Records made durable by one fsync.",
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
            ),
            wal_recovering: g(
                "akidb_wal_recovering",
                "1 while the WAL is replayed at start-up.",
            ),
            wal_replay_progress: gf(
                "akidb_wal_replay_progress_ratio",
                "WAL replay progress, 0 to 1.",
            ),
            wal_replayed_records: c(
                "akidb_wal_replayed_records_total",
                "Records replayed at start-up.",
            ),
            wal_torn_tail: c(
                "akidb_wal_torn_tail_total",
                "Torn WAL tails truncated at start-up.",
            ),
            wal_corrupt_records: c(
                "akidb_wal_corrupt_records_total",
                "WAL records that failed their checksum.",
            ),
            segments: gv("akidb_segments", "Segments by state.", &["state"]),
            index_build_duration: th(
                "akidb_index_build_duration_seconds",
                "Duration of one HNSW graph build.",
                SLOW_BUCKETS,
            ),
            indexing_pending_points: g(
                "akidb_indexing_pending_points",
                "Points not yet in a graph.",
            ),
            index_build_points: gv(
                "akidb_index_build_points",
                "The graph build in progress: points inserted and total, by work (segment, merge).",
                &["work", "progress"],
            ),
            snapshot_duration: th(
                "akidb_snapshot_duration_seconds",
                "Duration of one snapshot.",
                SLOW_BUCKETS,
            ),
            snapshots: cv(
                "akidb_snapshots_total",
                "Snapshots by outcome.",
                &["outcome"],
            ),
            snapshot_last_success: gf(
                "akidb_snapshot_last_success_timestamp_seconds",
                "Unix time of the last successful snapshot.",
            ),
            compactions: cv(
                "akidb_compactions_total",
                "Compactions by outcome.",
                &["outcome"],
            ),
            compaction_duration: th(
                "akidb_compaction_duration_seconds",
                "Duration of one compaction.",
                SLOW_BUCKETS,
            ),
            s3_operations: cv(
                "akidb_s3_operations_total",
                "Object store calls by operation and outcome.",
                &["operation", "outcome"],
            ),
            s3_duration: hv(
                "akidb_s3_operation_duration_seconds",
                "Object store call latency.",
                &["operation"],
                LATENCY_BUCKETS,
            ),
            s3_retries: cv(
                "akidb_s3_retries_total",
                "Object store retries after a transient failure.",
                &["operation"],
            ),
            breaker_state: gv(
                "akidb_breaker_state",
                "Object store circuit breaker: 1 for the current state.",
                &["state"],
            ),
            breaker_transitions: cv(
                "akidb_breaker_transitions_total",
                "Circuit breaker state changes.",
                &["to"],
            ),
            dlq_depth: g(
                "akidb_dlq_depth",
                "Uploads waiting in the dead-letter queue.",
            ),
            dlq_oldest_age: gf(
                "akidb_dlq_oldest_age_seconds",
                "Age of the oldest dead-letter entry (0 when empty).",
            ),
            dlq_enqueued: c(
                "akidb_dlq_enqueued_total",
                "Uploads that went to the dead-letter queue.",
            ),
            dlq_retries: cv(
                "akidb_dlq_retries_total",
                "Dead-letter retries by outcome.",
                &["outcome"],
            ),
            cluster_enabled: g(
                "akidb_cluster_enabled",
                "1 when this process runs in a cluster (--etcd), 0 alone.",
            ),
            cluster_lease_held: g(
                "akidb_cluster_lease_held",
                "1 while this node holds its etcd lease (registered in the cluster), 0 while not.",
            ),
            cluster_lease_losses: c(
                "akidb_cluster_lease_losses_total",
                "Times this node lost its etcd lease (expired, or not confirmed for a TTL).",
            ),
            cluster_etcd_reachable: g(
                "akidb_cluster_etcd_reachable",
                "1 while etcd answers this process (probed every second), 0 after it failed to for 3 s: writes stop, reads go on flagged stale.",
            ),
            cluster_shard_calls_failed: cv(
                "akidb_cluster_shard_calls_failed_total",
                "Calls to a shard (query and ingest with --etcd) that failed, by gRPC code.",
                &["code"],
            ),
            cluster_hedged_reads: cv(
                "akidb_cluster_hedged_reads_total",
                "Reads of a shard also sent to another copy (sent: the first copy had not answered within --hedge-after-ms, or failed; won: the other copy's answer was used).",
                &["outcome"],
            ),
            cluster_controller: g(
                "akidb_cluster_controller",
                "1 while this node is the cluster's elected controller (it repairs the shard maps), 0 while not.",
            ),
            cluster_shards_without_owner: g(
                "akidb_cluster_shards_without_owner",
                "Shards with no owner (no live node could take them), as the controller last saw them; exported by the controller only.",
            ),
            cluster_follower_lag: g(
                "akidb_cluster_follower_lag_entries",
                "The largest number of log entries any follower is behind its shard's owner, as the controller last saw it (published sequences, up to a second old); exported by the controller only.",
            ),
            cluster_map_changes: cv(
                "akidb_cluster_map_changes_total",
                "Shard map changes the controller made, by kind: failover (a follower took over), owner (an ownerless shard got one), follower (a copy was added), dropped (gone followers removed), moved (an owner leaving, by a drain or a balancing move, handed a shard to a caught-up follower), left (a follower off the shard's place left once its replacement caught up).",
                &["kind"],
            ),
            shard_log_appends: cv(
                "akidb_shard_log_appends_total",
                "Entries this node put to its shards' logs in the object store, by outcome: written, fenced (a newer owner took the shard), error (the store failed).",
                &["outcome"],
            ),
            shard_snapshots: cv(
                "akidb_shard_snapshots_total",
                "Shard snapshots in the object store, by outcome: taken (by the shard's owner; the log behind it is then cut), restored (a copy rebuilt from one: new, or behind the cut log), error (taking or restoring one failed; retried).",
                &["outcome"],
            ),
            search_partial: c(
                "akidb_search_partial_total",
                "Searches answered without some shards (their nodes did not answer in time).",
            ),
            cache_requests: cv(
                "akidb_cache_requests_total",
                "Result cache lookups.",
                &["result"],
            ),
            cache_entries: g("akidb_cache_entries", "Entries in the result cache."),
            ingest_points: c(
                "akidb_ingest_points_total",
                "Points accepted and acknowledged by ingest.",
            ),
            ingest_rejected: cv(
                "akidb_ingest_rejected_total",
                "Writes refused by ingest.",
                &["reason"],
            ),
            aggregator_scrapes: cv(
                "akidb_aggregator_scrapes_total",
                "Scrapes made by the aggregator.",
                &["service", "outcome"],
            ),
            slo_objective: gfv(
                "akidb_slo_objective_ratio",
                "Target share of good events.",
                &["slo"],
            ),
            slo_sli: gfv(
                "akidb_slo_sli_ratio",
                "Share of good events in the window.",
                &["slo", "window"],
            ),
            slo_burn_rate: gfv(
                "akidb_slo_burn_rate",
                "Error rate divided by the error budget rate.",
                &["slo", "window"],
            ),
            slo_budget_remaining: gfv(
                "akidb_slo_error_budget_remaining_ratio",
                "Error budget left over the SLO period.",
                &["slo"],
            ),
            slo_alert: gv(
                "akidb_slo_alert",
                "1 when the multi-window burn-rate alert holds.",
                &["slo", "severity"],
            ),
            registry,
        };
        let r = &m.registry;
        register!(r, m.uptime, m.build_info, m.memory_bytes, m.worker_runs);
        register!(
            r,
            m.grpc_server_requests,
            m.grpc_server_duration,
            m.grpc_server_in_flight
        );
        register!(
            r,
            m.trace_spans_ended,
            m.trace_export_spans,
            m.auth_requests
        );
        // Both outcomes from the start (0 until traces are exported), so that rates and
        // ratios over them exist before the first failure.
        for outcome in ["exported", "failed"] {
            m.trace_export_spans.with_label_values(&[outcome]);
        }
        // Every outcome from the start (0 with keys off), for rates and the alert.
        for outcome in ["allowed", "unauthenticated", "denied"] {
            m.auth_requests.with_label_values(&[outcome]);
        }
        if matches!(component, Component::Ingest | Component::Query) {
            register!(r, m.grpc_client_requests, m.grpc_client_duration);
        }
        match component {
            Component::Storage => {
                register!(
                    r,
                    m.search_duration,
                    m.upsert_duration,
                    m.upserted_points,
                    m.deleted_points,
                    m.payload_updated_points,
                    m.collection_points,
                    m.collections,
                    m.tier_bytes,
                    m.tier_promotions,
                    m.tier_demotions,
                    m.tier_load_duration,
                    m.hot_memory_budget,
                    m.wal_size,
                    m.wal_appended_bytes,
                    m.wal_records,
                    m.wal_fsync_duration,
                    m.wal_group_commit_records,
                    m.wal_recovering,
                    m.wal_replay_progress,
                    m.wal_replayed_records,
                    m.wal_torn_tail,
                    m.wal_corrupt_records,
                    m.segments,
                    m.index_build_duration,
                    m.indexing_pending_points,
                    m.index_build_points,
                    m.snapshot_duration,
                    m.snapshots,
                    m.snapshot_last_success,
                    m.compactions,
                    m.compaction_duration,
                    m.s3_operations,
                    m.s3_duration,
                    m.s3_retries,
                    m.breaker_state,
                    m.breaker_transitions,
                    m.dlq_depth,
                    m.dlq_oldest_age,
                    m.dlq_enqueued,
                    m.dlq_retries,
                    m.cluster_enabled,
                    m.cluster_lease_held,
                    m.cluster_lease_losses,
                    m.cluster_etcd_reachable,
                    m.cluster_controller,
                    m.cluster_shards_without_owner,
                    m.cluster_follower_lag,
                    m.cluster_map_changes,
                    m.shard_log_appends,
                    m.shard_snapshots,
                );
                // 0 until a build runs, so that progress can be read from the start.
                for work in ["segment", "merge"] {
                    for progress in ["inserted", "total"] {
                        m.index_build_points.with_label_values(&[work, progress]);
                    }
                }
                // 0 until the first change or append: rates work from the start.
                for kind in ["failover", "owner", "follower", "dropped", "moved", "left"] {
                    m.cluster_map_changes.with_label_values(&[kind]);
                }
                for outcome in ["written", "fenced", "error"] {
                    m.shard_log_appends.with_label_values(&[outcome]);
                }
                for outcome in ["taken", "restored", "error"] {
                    m.shard_snapshots.with_label_values(&[outcome]);
                }
            }
            Component::Query => register!(
                r,
                m.cache_requests,
                m.cache_entries,
                m.search_partial,
                m.cluster_enabled,
                m.cluster_etcd_reachable,
                m.cluster_shard_calls_failed,
                m.cluster_hedged_reads
            ),
            Component::Ingest => register!(
                r,
                m.ingest_points,
                m.ingest_rejected,
                m.cluster_enabled,
                m.cluster_etcd_reachable,
                m.cluster_shard_calls_failed,
                m.cluster_hedged_reads
            ),
            Component::Telemetry => register!(
                r,
                m.aggregator_scrapes,
                m.slo_objective,
                m.slo_sli,
                m.slo_burn_rate,
                m.slo_budget_remaining,
                m.slo_alert
            ),
            Component::Other => {}
        }
        if matches!(component, Component::Query | Component::Ingest) {
            // 0 from the start for the codes a shard that does not answer gets.
            for code in ["Unavailable", "DeadlineExceeded"] {
                m.cluster_shard_calls_failed.with_label_values(&[code]);
            }
            for outcome in ["sent", "won"] {
                m.cluster_hedged_reads.with_label_values(&[outcome]);
            }
        }
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), component.as_str()])
            .set(1);
        m
    }

    /// Prometheus text of every registered metric.
    pub fn render(&self) -> Vec<u8> {
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut buf = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}
