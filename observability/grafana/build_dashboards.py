#!/usr/bin/env python3
"""Build the AkiDB Grafana dashboards (observability/grafana/dashboards/*.json).

    observability/grafana/build_dashboards.py           # rewrite the JSON files
    observability/grafana/build_dashboards.py --check   # exit 1 when a file is stale

The JSON files are committed so that Grafana provisioning needs nothing but them; this
script is their source. Queries use only metrics from docs/metrics.md, the recording
rules of observability/prometheus/recording.yml, `up`, `ALERTS` and process_* metrics
(scripts/check-assets verifies it and that every query parses).
"""
import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
SEL = 'service=~"$service", instance=~"$instance"'
RI = "$__rate_interval"
BAD = "UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED"


class Board:
    """Lays panels out left to right on Grafana's 24-column grid."""

    def __init__(self, uid, title, description, tags, variables=("service", "instance")):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.variables = variables
        self.panels, self.x, self.y, self.row_h, self.next_id = [], 0, 0, 0, 1

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def row(self, title, repeat=None):
        """A row; with `repeat` (a variable), Grafana repeats it and its panels per value."""
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        r = {"type": "row", "title": title, "id": self._id(), "collapsed": False,
             "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []}
        if repeat:
            r["repeat"] = repeat
        self.panels.append(r)
        self.y += 1

    def panel(self, kind, title, description, targets, unit="short", w=12, h=8, exemplars=False,
              stack=False, thresholds=None, minv=None, maxv=None, legend=True, mappings=None,
              options=None, instant=False, fmt="time_series"):
        tlist = []
        for i, t in enumerate(targets):
            expr, legend_fmt = t if isinstance(t, tuple) else (t, "")
            tgt = {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                   "legendFormat": legend_fmt or "__auto", "range": not instant, "instant": instant,
                   "format": fmt}
            if exemplars:
                tgt["exemplar"] = True
            tlist.append(tgt)
        defaults = {"unit": unit}
        if minv is not None:
            defaults["min"] = minv
        if maxv is not None:
            defaults["max"] = maxv
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": [
                {"color": c, "value": v} for v, c in thresholds]}
        if mappings:
            defaults["mappings"] = mappings
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                                  "showPoints": "never", "spanNulls": False,
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
            if thresholds:
                defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
        p = {"type": kind, "title": title, "description": description, "id": self._id(),
             "datasource": DS, "gridPos": self._place(w, h), "targets": tlist,
             "fieldConfig": {"defaults": defaults, "overrides": []}}
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": legend},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto",
                            "justifyMode": "auto", "orientation": "auto"}
        elif kind == "table":
            p["options"] = {"showHeader": True}
            p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
        elif kind == "state-timeline":
            p["options"] = {"showValue": "never", "mergeValues": True, "rowHeight": 0.9,
                            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if options:
            p["options"].update(options)
        self.panels.append(p)

    def ts(self, title, description, targets, **kw):
        self.panel("timeseries", title, description, targets, **kw)

    def stat(self, title, description, targets, w=6, h=5, **kw):
        self.panel("stat", title, description, targets, w=w, h=h, **kw)

    def json(self):
        templating = []
        if "service" in self.variables:
            templating.append(variable("service", "label_values(up, service)", "Service"))
        if "instance" in self.variables:
            templating.append(variable("instance", 'label_values(up{service=~"$service"}, instance)', "Instance"))
        if "slo" in self.variables:
            templating.append(variable("slo", "label_values(akidb:slo_objective:ratio, slo)", "SLO"))
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["akidb"] + self.tags, "editable": False, "graphTooltip": 1,
            "schemaVersion": 39, "version": 1, "refresh": "30s",
            "time": {"from": "now-3h", "to": "now"}, "timepicker": {},
            "timezone": "browser", "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "links": [{"title": "AkiDB", "type": "dashboards", "tags": ["akidb"], "asDropdown": True,
                       "includeVars": True, "keepTime": True, "icon": "external link"}],
            "templating": {"list": templating},
            "panels": self.panels,
        }


def variable(name, query, label):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query, "query": {"query": query, "refId": f"{name}-variable"},
            "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "regex": "",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
            "hide": 0, "skipUrlSync": False}


def hq(q, metric, by, extra="", sel=SEL):
    """histogram_quantile over a catalogued histogram."""
    matchers = sel + (", " + extra if extra else "")
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{matchers}}}[{RI}])))"


def overview():
    b = Board("akidb-overview", "AkiDB / Overview",
              "Health of the four AkiDB services at a glance: up, traffic, errors, latency, SLOs, alerts.",
              ["overview"])
    b.row("Services")
    b.stat("Targets up", "Scrape targets of the telemetry aggregator that answered its last scrape (1) or not (0).",
           [(f"up{{{SEL}}}", "{{service}} {{instance}}")], w=12,
           thresholds=[(None, "red"), (1, "green")],
           mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "UP"}}}])
    b.stat("Uptime", "Seconds since each process started.",
           [(f"akidb_uptime_seconds{{{SEL}}}", "{{service}} {{instance}}")], unit="s", w=6)
    b.panel("table", "Build", "Version of every running component.",
            [(f"akidb_build_info{{{SEL}}}", "")], w=6, h=5, instant=True, fmt="table")
    b.row("Traffic and errors")
    b.ts("Requests per second by service", "gRPC calls served, all codes.",
         [(f"sum by (service) (rate(akidb_grpc_server_requests_total{{{SEL}}}[{RI}]))", "{{service}}")],
         unit="reqps", w=8)
    b.ts("Server-side error ratio", "Share of calls ending UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS or "
         "DEADLINE_EXCEEDED (5m). HighErrorRate fires above 5%.",
         [('akidb:grpc_server_errors:ratio_rate5m{service=~"$service"}', "{{service}}")],
         unit="percentunit", w=8, minv=0, thresholds=[(None, "green"), (0.05, "red")])
    b.ts("p99 latency by service and method", "Server-side 99th percentile; exemplars link to traces.",
         [(hq(0.99, "akidb_grpc_server_request_duration_seconds", "service, grpc_method"),
           "{{service}} {{grpc_method}}")], unit="s", w=8, exemplars=True)
    b.ts("Points written per second", "Points acknowledged by ingest and by storage.",
         [(f"sum by (service) (rate(akidb_ingest_points_total{{{SEL}}}[{RI}]))", "ingest accepted"),
          (f"sum by (service) (rate(akidb_upserted_points_total{{{SEL}}}[{RI}]))", "storage upserted"),
          (f"sum by (service) (rate(akidb_deleted_points_total{{{SEL}}}[{RI}]))", "storage deleted"),
          (f"sum by (service) (rate(akidb_payload_updated_points_total{{{SEL}}}[{RI}]))", "payloads updated")],
         unit="short", w=12)
    b.ts("Collections by tier", "Collections that are hot (in memory), warm (local disk), cold (object store).",
         [(f"sum by (tier) (akidb_collections{{{SEL}}})", "{{tier}}")], w=12, stack=True)
    b.row("SLOs and alerts")
    b.stat("Error budget remaining (30d)", "Share of each SLO's 30-day error budget left (recording rules).",
           [("akidb:slo_error_budget_remaining:ratio", "{{slo}}")], unit="percentunit", w=12,
           thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")])
    b.panel("table", "Firing alerts", "Alerts Prometheus currently fires.",
            [(f'sum by (alertname, severity, service) (ALERTS{{alertstate="firing", service=~"$service"}})', "")],
            w=12, h=5, instant=True, fmt="table")
    b.row("Processes")
    b.ts("Resident memory", "process_resident_memory_bytes per process.",
         [(f"process_resident_memory_bytes{{{SEL}}}", "{{service}} {{instance}}")], unit="bytes", w=8)
    b.ts("CPU", "CPU cores used per process.",
         [(f"rate(process_cpu_seconds_total{{{SEL}}}[{RI}])", "{{service}} {{instance}}")], unit="short", w=8)
    b.ts("Aggregator scrapes", "Duration of the telemetry aggregator's last scrape of each target, "
         "and failed scrapes per second.",
         [(f"akidb_target_scrape_duration_seconds{{{SEL}}}", "{{service}} {{instance}}"),
          (f'sum by (service) (rate(akidb_aggregator_scrapes_total{{service=~"$service", outcome!="success"}}[{RI}]))',
           "{{service}} failed/s")], unit="s", w=8)
    return b


def performance():
    b = Board("akidb-performance", "AkiDB / Performance",
              "Latency percentiles, throughput by method, cache, WAL commit and indexing.", ["performance"])
    b.row("gRPC server")
    b.ts("Requests per second by method", "gRPC calls served per method.",
         [(f"sum by (service, grpc_method) (rate(akidb_grpc_server_requests_total{{{SEL}}}[{RI}]))",
           "{{service}} {{grpc_method}}")], unit="reqps", w=12)
    b.ts("In-flight requests", "Calls being served right now.",
         [(f"sum by (service, grpc_method) (akidb_grpc_server_in_flight_requests{{{SEL}}})",
           "{{service}} {{grpc_method}}")], w=12)
    b.ts("Search latency p50 / p90 / p99", "Server-side latency of QueryService/Search; "
         "the query-latency SLO counts calls over 100ms. Exemplars link to traces.",
         [(hq(q, "akidb_grpc_server_request_duration_seconds", "service",
              'grpc_service="akidb.v1.QueryService", grpc_method="Search"'), f"p{int(q * 100)}")
          for q in (0.5, 0.9, 0.99)],
         unit="s", w=12, exemplars=True, thresholds=[(None, "green"), (0.1, "orange"), (0.25, "red")])
    b.ts("Upsert latency p50 / p90 / p99", "Server-side latency of IngestService/Upsert, WAL durable "
         "included; the ingest-latency SLO counts calls over 250ms.",
         [(hq(q, "akidb_grpc_server_request_duration_seconds", "service",
              'grpc_service="akidb.v1.IngestService", grpc_method="Upsert"'), f"p{int(q * 100)}")
          for q in (0.5, 0.9, 0.99)],
         unit="s", w=12, exemplars=True, thresholds=[(None, "green"), (0.25, "red")])
    b.ts("p99 latency by method", "Server-side 99th percentile of every method.",
         [(hq(0.99, "akidb_grpc_server_request_duration_seconds", "service, grpc_service, grpc_method"),
           "{{service}} {{grpc_method}}")], unit="s", w=12, exemplars=True)
    b.ts("p50 latency by method (recorded)", "akidb:grpc_server_request_duration_seconds:p50_rate5m.",
         [('akidb:grpc_server_request_duration_seconds:p50_rate5m{service=~"$service"}',
           "{{service}} {{grpc_method}}")], unit="s", w=12)
    b.row("Calls between services")
    b.ts("Client calls per second by code", "Calls ingest and query make to storage.",
         [(f"sum by (service, grpc_method, grpc_code) (rate(akidb_grpc_client_requests_total{{{SEL}}}[{RI}]))",
           "{{service}} → {{grpc_method}} {{grpc_code}}")], unit="reqps", w=12)
    b.ts("Client latency p99", "Latency seen by the caller, network included.",
         [(hq(0.99, "akidb_grpc_client_request_duration_seconds", "service, grpc_method"),
           "{{service}} → {{grpc_method}}")], unit="s", w=12, exemplars=True)
    b.row("Storage engine")
    b.ts("Storage search latency p99 by tier", "Search inside storage, by the tier that served it.",
         [(hq(0.99, "akidb_search_duration_seconds", "tier"), "{{tier}}")], unit="s", w=12, exemplars=True)
    b.ts("Storage upsert latency p99 by tier", "Write inside storage, WAL durable included.",
         [(hq(0.99, "akidb_upsert_duration_seconds", "tier"), "{{tier}}")], unit="s", w=12, exemplars=True)
    b.ts("WAL fsync p99", "Duration of one group-commit fsync.",
         [(hq(0.99, "akidb_wal_fsync_duration_seconds", "instance"), "fsync p99 {{instance}}")],
         unit="s", w=12, exemplars=True)
    b.ts("Records per group commit (p50, p99)", "Records made durable by one fsync.",
         [(hq(0.5, "akidb_wal_group_commit_records", "instance"), "p50 {{instance}}"),
          (hq(0.99, "akidb_wal_group_commit_records", "instance"), "p99 {{instance}}")], w=12)
    b.ts("Indexing backlog", "Points not yet in an HNSW graph (searched exactly until indexed).",
         [(f"sum by (instance) (akidb_indexing_pending_points{{{SEL}}})", "{{instance}}")], w=12)
    b.ts("HNSW build p99", "Time to build one segment graph.",
         [(hq(0.99, "akidb_index_build_duration_seconds", "instance"), "{{instance}}")], unit="s", w=12, exemplars=True)
    b.row("Cache and memory")
    b.ts("Result cache hit rate", "Share of query result cache lookups that hit. LowCacheHitRate under 50%.",
         [(f'sum by (service) (rate(akidb_cache_requests_total{{{SEL}, result="hit"}}[{RI}])) / '
           f"sum by (service) (rate(akidb_cache_requests_total{{{SEL}}}[{RI}]))", "{{service}}"),
          ('akidb:cache_hits:ratio_rate5m{service=~"$service"}', "{{service}} (5m, recorded)")],
         unit="percentunit", w=8, minv=0, maxv=1)
    b.ts("Result cache entries", "Entries held by the query result cache.",
         [(f"sum by (instance) (akidb_cache_entries{{{SEL}}})", "{{instance}}")], w=8)
    b.ts("Memory by component", "akidb_memory_bytes: vectors, graph, payload, cache, ...",
         [(f"sum by (service, component) (akidb_memory_bytes{{{SEL}}})", "{{service}} {{component}}")],
         unit="bytes", w=8, stack=True)
    return b


def storage():
    b = Board("akidb-storage", "AkiDB / Storage",
              "Tiers, WAL, snapshots, compaction, object store, circuit breaker, DLQ, and the "
              "cluster: shard maps and a row per storage node.", ["storage"])
    b.row("Tiers")
    b.ts("Collections by tier", "Collections per tier.",
         [(f"sum by (tier) (akidb_collections{{{SEL}}})", "{{tier}}")], w=8, stack=True)
    b.ts("Bytes by tier and hot budget", "Hot tier memory against akidb_hot_memory_budget_bytes "
         "(0 = unlimited); MemoryPressure fires above 90%.",
         [(f"sum by (tier) (akidb_tier_bytes{{{SEL}}})", "{{tier}}"),
          (f"sum(akidb_hot_memory_budget_bytes{{{SEL}}})", "hot budget")], unit="bytes", w=8)
    b.ts("Promotions and demotions per hour", "Moves between tiers; both high at once means thrashing "
         "(TierImbalance).",
         [(f"sum by (from, to) (increase(akidb_tier_promotions_total{{{SEL}}}[1h]))", "promote {{from}}→{{to}}"),
          (f"sum by (from, to) (increase(akidb_tier_demotions_total{{{SEL}}}[1h]))", "demote {{from}}→{{to}}")],
         w=8)
    b.ts("Load into hot p99", "Time to load a collection into the hot tier, by source tier.",
         [(hq(0.99, "akidb_tier_load_duration_seconds", "from"), "from {{from}}")], unit="s", w=8, exemplars=True)
    b.panel("table", "Largest collections", "Live points of the 20 largest collections "
            "(the first 100 collections carry this metric).",
            [(f"topk(20, akidb_collection_points{{{SEL}}})", "")], w=8, instant=True, fmt="table")
    b.ts("Segments by state", "Appendable, sealed and indexed segments.",
         [(f"sum by (state) (akidb_segments{{{SEL}}})", "{{state}}")], w=8, stack=True)
    b.row("WAL")
    b.ts("WAL size", "Bytes on disk; WALSizeHigh fires above 1GiB.",
         [(f"akidb_wal_size_bytes{{{SEL}}}", "{{instance}}")], unit="bytes", w=8,
         thresholds=[(None, "green"), (1073741824, "red")])
    b.ts("WAL appends", "Bytes and records appended per second.",
         [(f"sum by (instance) (rate(akidb_wal_appended_bytes_total{{{SEL}}}[{RI}]))", "bytes/s {{instance}}"),
          (f"sum by (instance) (rate(akidb_wal_records_total{{{SEL}}}[{RI}]))", "records/s {{instance}}")],
         w=8)
    b.ts("WAL recovery", "1 while replaying at start-up, with progress 0..1 and records replayed.",
         [(f"akidb_wal_recovering{{{SEL}}}", "recovering {{instance}}"),
          (f"akidb_wal_replay_progress_ratio{{{SEL}}}", "progress {{instance}}"),
          (f"rate(akidb_wal_replayed_records_total{{{SEL}}}[{RI}])", "replayed/s {{instance}}")], w=8)
    b.stat("Torn tails truncated", "Since the process started (WALTornTail).",
           [(f"akidb_wal_torn_tail_total{{{SEL}}}", "{{instance}}")], w=12,
           thresholds=[(None, "green"), (1, "orange")])
    b.stat("Corrupt WAL records", "Checksum failures since the process started (WALCorruption).",
           [(f"akidb_wal_corrupt_records_total{{{SEL}}}", "{{instance}}")], w=12,
           thresholds=[(None, "green"), (1, "red")])
    b.row("Snapshots and compaction")
    b.ts("Snapshot duration", "Mean over 1h (SlowSnapshots fires above 30s) and p99.",
         [(f"sum by (instance) (rate(akidb_snapshot_duration_seconds_sum{{{SEL}}}[1h])) / "
           f"sum by (instance) (rate(akidb_snapshot_duration_seconds_count{{{SEL}}}[1h]))", "mean 1h {{instance}}"),
          (hq(0.99, "akidb_snapshot_duration_seconds", "instance"), "p99 {{instance}}")],
         unit="s", w=8, exemplars=True)
    b.ts("Snapshots per hour by outcome", "Snapshots taken.",
         [(f"sum by (outcome) (increase(akidb_snapshots_total{{{SEL}}}[1h]))", "{{outcome}}")], w=8)
    b.ts("Time since last successful snapshot", "now - akidb_snapshot_last_success_timestamp_seconds.",
         [(f"time() - akidb_snapshot_last_success_timestamp_seconds{{{SEL}}}", "{{instance}}")], unit="s", w=8)
    b.ts("Compactions per hour by outcome", "Merges of sealed segments (a full size tier, or tombstones).",
         [(f"sum by (outcome) (increase(akidb_compactions_total{{{SEL}}}[1h]))", "{{outcome}}")], w=8)
    b.ts("Compaction duration p99", "One merge, its graph build included.",
         [(hq(0.99, "akidb_compaction_duration_seconds", "instance"), "{{instance}}")], unit="s", w=8, exemplars=True)
    b.ts("Graph build in progress", "Share of the running build's points inserted, by work "
         "(segment: a newly sealed segment; merge: segments merged into one).",
         [(f"sum by (instance, work) (akidb_index_build_points{{{SEL}, progress=\"inserted\"}}) / "
           f"sum by (instance, work) (akidb_index_build_points{{{SEL}, progress=\"total\"}})",
           "{{work}} {{instance}}")], unit="percentunit", w=8)
    b.row("Object store")
    b.ts("Object store calls by outcome", "rejected = failed fast by the open breaker.",
         [(f"sum by (operation, outcome) (rate(akidb_s3_operations_total{{{SEL}}}[{RI}]))",
           "{{operation}} {{outcome}}")], unit="reqps", w=8)
    b.ts("Object store error ratio", "Failed calls among those that reached the store (5m); "
         "S3ErrorRateHigh fires above 10%.",
         [('akidb:s3_operation_errors:ratio_rate5m{service=~"$service"}', "{{operation}}")],
         unit="percentunit", w=8, minv=0, thresholds=[(None, "green"), (0.1, "red")])
    b.ts("Object store latency p99", "By operation; S3HighLatency fires above 2.5s.",
         [(hq(0.99, "akidb_s3_operation_duration_seconds", "operation"), "{{operation}}")],
         unit="s", w=8, exemplars=True)
    b.ts("Object store retries", "Retries after transient failures.",
         [(f"sum by (operation) (rate(akidb_s3_retries_total{{{SEL}}}[{RI}]))", "{{operation}}")],
         unit="reqps", w=8)
    b.panel("state-timeline", "Circuit breaker", "Current state of the object store circuit breaker.",
            [(f"max by (instance, state) (akidb_breaker_state{{{SEL}}}) == 1", "{{instance}} {{state}}")],
            w=8, h=8, mappings=[{"type": "value", "options": {"1": {"text": "active"}}}])
    b.ts("Breaker transitions per hour", "State changes, by target state.",
         [(f"sum by (to) (increase(akidb_breaker_transitions_total{{{SEL}}}[1h]))", "to {{to}}")], w=8)
    b.row("Dead-letter queue")
    b.ts("DLQ depth", "Uploads waiting for a retry (DLQGrowing).",
         [(f"akidb_dlq_depth{{{SEL}}}", "{{instance}}")], w=8)
    b.ts("Oldest DLQ entry", "Age of the oldest entry; DLQGrowing fires above 1h.",
         [(f"akidb_dlq_oldest_age_seconds{{{SEL}}}", "{{instance}}")], unit="s", w=8,
         thresholds=[(None, "green"), (3600, "red")])
    b.ts("DLQ flow", "Uploads entering the DLQ and retries by outcome.",
         [(f"sum(rate(akidb_dlq_enqueued_total{{{SEL}}}[{RI}]))", "enqueued"),
          (f"sum by (outcome) (rate(akidb_dlq_retries_total{{{SEL}}}[{RI}]))", "retry {{outcome}}")],
         unit="reqps", w=8)
    b.row("Background workers")
    b.ts("Worker runs by outcome", "Runs per second of each background worker.",
         [(f"sum by (service, worker, outcome) (rate(akidb_worker_runs_total{{{SEL}}}[{RI}]))",
           "{{worker}} {{outcome}}")], unit="reqps", w=24)
    cluster(b)
    return b


def cluster(b):
    """Storage nodes in a cluster (`--etcd`): the shard maps as the controller sees them, then
    one row per node (repeated over the `instance` variable)."""
    csel = 'service="storage", instance=~"$instance"'
    b.row("Cluster")
    b.stat("Shards without owner", "Writes to them fail (ShardWithoutOwner); from the controller.",
           [(f"max(akidb_cluster_shards_without_owner{{{csel}}} and on (instance) "
             f"akidb_cluster_controller{{{csel}}} == 1)", "")], w=6,
           thresholds=[(None, "green"), (1, "red")])
    b.stat("Follower lag", "Most log entries any follower is behind its owner (FollowerLagging).",
           [(f"max(akidb_cluster_follower_lag_entries{{{csel}}} and on (instance) "
             f"akidb_cluster_controller{{{csel}}} == 1)", "")], w=6,
           thresholds=[(None, "green"), (1000, "orange")])
    b.stat("Controllers", "Nodes that hold the controller key now (1 in a healthy cluster).",
           [(f"sum(akidb_cluster_controller{{{csel}}})", "")], w=6,
           thresholds=[(None, "red"), (1, "green"), (2, "orange")])
    b.stat("Nodes without etcd", "Nodes whose etcd probe fails (ClusterEtcdUnreachable).",
           [(f"count(akidb_cluster_etcd_reachable{{{csel}}} == 0) or vector(0)", "")], w=6,
           thresholds=[(None, "green"), (1, "red")])
    b.ts("Shard map changes per hour", "Changes the controller made, by kind (failover: an owner "
         "gone; moved: a drain or a balancing move handed a shard over; follower/left: copies "
         "added and removed).",
         [(f"sum by (kind) (increase(akidb_cluster_map_changes_total{{{csel}}}[1h]))", "{{kind}}")], w=12)
    b.ts("Partial and hedged reads", "Searches answered without some shards, and reads also sent "
         "to a second copy (and won by it).",
         [(f"sum(rate(akidb_search_partial_total{{service=\"query\"}}[{RI}]))", "partial searches"),
          (f"sum by (outcome) (rate(akidb_cluster_hedged_reads_total{{service=\"query\"}}[{RI}]))",
           "hedged {{outcome}}"),
          (f"sum by (service, code) (rate(akidb_cluster_shard_calls_failed_total[{RI}]))",
           "{{service}} shard calls {{code}}")], unit="reqps", w=12)
    b.row("Node $instance", repeat="instance")
    b.stat("Lease, etcd, controller", "1 = holds its lease / reaches etcd / is the controller.",
           [(f"akidb_cluster_lease_held{{{csel}}}", "lease"),
            (f"akidb_cluster_etcd_reachable{{{csel}}}", "etcd"),
            (f"akidb_cluster_controller{{{csel}}}", "controller")], w=6, h=8)
    b.ts("Shard log appends and snapshots", "Entries this node put to its shards' logs, by "
         "outcome (fenced: a stale owner refused), and shard snapshots per hour (taken as owner, "
         "restored by a new or returning copy, errors).",
         [(f"sum by (outcome) (rate(akidb_shard_log_appends_total{{{csel}}}[{RI}]))", "append {{outcome}}/s"),
          (f"sum by (outcome) (increase(akidb_shard_snapshots_total{{{csel}}}[1h]))", "snapshot {{outcome}}/h")],
         w=6)
    b.ts("Calls served", "gRPC calls this node served, by method.",
         [(f"sum by (grpc_method) (rate(akidb_grpc_server_requests_total{{{csel}}}[{RI}]))",
           "{{grpc_method}}")], unit="reqps", w=6)
    b.ts("Points and memory", "Live points of its shard copies (first 100) and hot tier bytes.",
         [(f"sum(akidb_collection_points{{{csel}}})", "points"),
          (f"sum(akidb_tier_bytes{{{csel}, tier=\"hot\"}})", "hot bytes")], w=6)


def errors():
    b = Board("akidb-errors", "AkiDB / Errors",
              "Where failures come from: gRPC codes, calls between services, rejected writes, object "
              "store, workers, scrapes.", ["errors"])
    b.row("gRPC")
    b.ts("Server-side error ratio", "HighErrorRate fires above 5% (5m).",
         [('akidb:grpc_server_errors:ratio_rate5m{service=~"$service"}', "{{service}}")],
         unit="percentunit", w=12, minv=0, thresholds=[(None, "green"), (0.05, "red")])
    b.ts("Server-side errors per second by method and code", f"Codes {BAD.replace('|', ', ')}.",
         [(f'sum by (service, grpc_method, grpc_code) (rate(akidb_grpc_server_requests_total{{{SEL}, grpc_code=~"{BAD}"}}[{RI}]))',
           "{{service}} {{grpc_method}} {{grpc_code}}")], unit="reqps", w=12)
    b.ts("Caller errors per second by code", "INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ...: "
         "the request was refused as specified.",
         [(f'sum by (service, grpc_code) (rate(akidb_grpc_server_requests_total{{{SEL}, grpc_code!="OK", grpc_code!~"{BAD}"}}[{RI}]))',
           "{{service}} {{grpc_code}}")], unit="reqps", w=12)
    b.ts("Failed calls to other services", "Non-OK calls ingest and query make to storage.",
         [(f'sum by (service, grpc_method, grpc_code) (rate(akidb_grpc_client_requests_total{{{SEL}, grpc_code!="OK"}}[{RI}]))',
           "{{service}} → {{grpc_method}} {{grpc_code}}")], unit="reqps", w=12)
    b.row("Writes, storage, workers")
    b.ts("Rejected writes by reason", "invalid, too_large, backpressure, unavailable.",
         [(f"sum by (reason) (rate(akidb_ingest_rejected_total{{{SEL}}}[{RI}]))", "{{reason}}")],
         unit="reqps", w=8)
    b.ts("Object store failures", "Failed and rejected object store calls per second.",
         [(f'sum by (operation, outcome) (rate(akidb_s3_operations_total{{{SEL}, outcome!="success"}}[{RI}]))',
           "{{operation}} {{outcome}}")], unit="reqps", w=8)
    b.ts("Worker failure ratio", "Share of failed runs per worker (15m); BackgroundWorkerErrors above 10%.",
         [(f'sum by (worker) (rate(akidb_worker_runs_total{{{SEL}, outcome="error"}}[15m])) / '
           f"sum by (worker) (rate(akidb_worker_runs_total{{{SEL}}}[15m]))", "{{worker}}")],
         unit="percentunit", w=8, minv=0, thresholds=[(None, "green"), (0.1, "red")])
    b.row("Scrapes and alerts")
    b.ts("Targets down", "Targets whose last scrape failed.",
         [(f"up{{{SEL}}} == 0", "{{service}} {{instance}}")], w=8)
    b.ts("Failed scrapes by the aggregator", "Per second, by target service.",
         [(f'sum by (service, outcome) (rate(akidb_aggregator_scrapes_total{{service=~"$service", outcome!="success"}}[{RI}]))',
           "{{service}} {{outcome}}")], unit="reqps", w=8)
    b.panel("table", "Firing and pending alerts", "Alerts Prometheus evaluates as pending or firing.",
            [(f'ALERTS{{service=~"$service"}}', "")], w=8, instant=True, fmt="table")
    b.row("Trace export")
    b.ts("Spans per second by outcome",
         "Spans ended with export on, and those the OTLP collector took (exported) or did not "
         "(failed); ended − exported − failed waits in the exporter's queue or was dropped. "
         "TraceExportFailing above 10% failed.",
         [(f"sum by (service, outcome) (rate(akidb_trace_export_spans_total{{{SEL}}}[{RI}]))",
           "{{service}} {{outcome}}"),
          (f"sum by (service) (rate(akidb_trace_spans_ended_total{{{SEL}}}[{RI}]))", "{{service}} ended")],
         w=24)
    return b


def slo():
    b = Board("akidb-slo", "AkiDB / SLOs",
              "SLOs of observability/slo.yaml: error budget left, SLIs and burn rates per window, "
              "alert state. Recording rules (Prometheus) next to the telemetry aggregator's own evaluation.",
              ["slo"], variables=("service", "instance", "slo"))
    # Recording rules keep the `service` that serves the SLO; the aggregator's akidb_slo_*
    # gauges are federated with service="telemetry" and are filtered by SLO only.
    s = 'slo=~"$slo", service=~"$service"'
    a = 'slo=~"$slo"'
    b.row("Error budget")
    b.stat("Error budget remaining (30d)", "1 - burn rate over 30 days (recording rules). Below 0 the SLO "
           "is missed for the period.",
           [(f"akidb:slo_error_budget_remaining:ratio{{{s}}}", "{{slo}}")], unit="percentunit", w=12,
           thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")])
    b.stat("SLI (30d) vs objective", "Share of good events over 30 days.",
           [(f"akidb:slo_sli:ratio_rate30d{{{s}}}", "{{slo}} SLI"),
            (f"akidb:slo_objective:ratio{{{a}}}", "{{slo}} objective")], unit="percentunit", w=12,
           options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}})
    b.ts("Error budget remaining over time", "Recording rule akidb:slo_error_budget_remaining:ratio.",
         [(f"akidb:slo_error_budget_remaining:ratio{{{s}}}", "{{slo}}")], unit="percentunit", w=24)
    b.row("Burn rates")
    for long_w, short_w, factor, sev in (("1h", "5m", 14.4, "page"), ("6h", "30m", 6, "page"),
                                         ("1d", "2h", 3, "ticket"), ("3d", "6h", 1, "ticket")):
        b.ts(f"Burn rate {long_w} and {short_w} ({sev} above {factor})",
             f"SLOBurnRate{sev.capitalize()} holds when both windows exceed {factor} "
             "(and the short window saw at least 10 events).",
             [(f"akidb:slo_burn_rate:rate{long_w}{{{s}}}", "{{slo}} " + long_w),
              (f"akidb:slo_burn_rate:rate{short_w}{{{s}}}", "{{slo}} " + short_w)],
             w=12, minv=0, thresholds=[(None, "green"), (factor, "red")])
    b.ts("SLI by window", "Share of good events per window (recording rules).",
         [(f"akidb:slo_sli:ratio_rate{w}{{{s}}}", "{{slo}} " + w) for w in ("5m", "1h", "6h", "1d")],
         unit="percentunit", w=12)
    b.ts("Events per second", "Events counted by each SLO (5m), and the bad ones.",
         [(f"akidb:slo_events:rate5m{{{s}}}", "{{slo}} events"),
          (f"akidb:slo_bad_events:rate5m{{{s}}}", "{{slo}} bad")], unit="reqps", w=12)
    b.row("Alerts")
    b.panel("state-timeline", "SLO alert state (Prometheus)", "SLOBurnRatePage and SLOBurnRateTicket.",
            [(f'max by (alertname, slo, alertstate) (ALERTS{{alertname=~"SLOBurnRate.*", {s}}})',
              "{{alertname}} {{slo}} {{alertstate}}")], w=12, h=8,
            mappings=[{"type": "value", "options": {"1": {"text": "active"}}}])
    b.panel("state-timeline", "SLO alert state (aggregator)", "akidb_slo_alert: the telemetry aggregator's "
            "own multi-window evaluation (without the minimum-events guard).",
            [(f"akidb_slo_alert{{{a}}}", "{{slo}} {{severity}}")], w=12, h=8,
            mappings=[{"type": "value", "options": {"0": {"text": "ok"}, "1": {"text": "alert"}}}])
    b.row("Telemetry aggregator's evaluation")
    b.ts("Burn rate by window (aggregator)", "akidb_slo_burn_rate, computed by the telemetry aggregator.",
         [(f"akidb_slo_burn_rate{{{a}}}", "{{slo}} {{window}}")], w=8)
    b.ts("SLI by window (aggregator)", "akidb_slo_sli_ratio against akidb_slo_objective_ratio.",
         [(f"akidb_slo_sli_ratio{{{a}}}", "{{slo}} {{window}}"),
          (f"akidb_slo_objective_ratio{{{a}}}", "{{slo}} objective")], unit="percentunit", w=8)
    b.ts("Error budget remaining (aggregator)", "akidb_slo_error_budget_remaining_ratio.",
         [(f"akidb_slo_error_budget_remaining_ratio{{{a}}}", "{{slo}}")], unit="percentunit", w=8)
    return b


BOARDS = {"overview": overview, "performance": performance, "storage": storage, "errors": errors, "slo": slo}


def render():
    return {f"{name}.json": json.dumps(fn().json(), indent=2, ensure_ascii=False) + "\n"
            for name, fn in BOARDS.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail when a committed dashboard differs")
    args = ap.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale dashboards (run observability/grafana/build_dashboards.py): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
