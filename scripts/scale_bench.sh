#!/bin/bash
# The scale benchmark: how AkiDB's costs grow from 10k to 1M points on one node.
#
# For each size: a deterministic Gaussian-mixture data set (scripts/gen_mixture.py, 128-d by
# default, cached under $SCALE_DIR), loaded through ingest into a fresh storage/ingest/query
# stack (`akidb bench`: durable vectors/s, time until every point is in a graph), then:
# time until merges settle and the segments left, storage memory (heap = RssAnon, file-backed
# = RssFile, and the collection's own vectors/graphs/index), bytes per vector, QPS / p50 /
# p99 / recall@10 at 1 and 32 clients for ef on a curve (the query service's result cache
# off), storage-side search time per ef at one client; a clean stop (SIGTERM) and the
# restart to SERVING; a SIGKILL in the middle of continuous writes and the restart to SERVING
# (every point still there). In the same run, hnswlib in-process on the same data with the
# same M and ef_construction: build time, per-query time (one thread) and recall@10.
#
# Usage: scripts/scale_bench.sh [SIZES...]      (default: 10000 100000 1000000)
# Env: AKIDB_BIN (target/release/akidb), SCALE_DIR (/tmp/akidb-scale), DIM (128),
#      METRIC (l2, or cosine: data normalized, ground truth by cosine), QUANT (none, int8 or
#      binary), ON_DISK (1: vectors of sealed segments in mapped files), EFS (0,32,64,128,256;
#      0 = the server's default), SECONDS_PER_CELL (5), HNSWLIB (0 skips hnswlib). Needs numpy and hnswlib: installed
#      into .tools/bench-venv on first use. Prints one JSON line per size, then a markdown
#      table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${AKIDB_BIN:-target/release/akidb}")
root=${SCALE_DIR:-/tmp/akidb-scale}
dim=${DIM:-128}
metric=${METRIC:-l2}
quant=${QUANT:-none}
on_disk=${ON_DISK:-0}
efs=${EFS:-0,32,64,128,256}
create=(--metric "$metric" --quantization "$quant")
[[ $on_disk == 1 ]] && create+=(--on-disk)
secs=${SECONDS_PER_CELL:-5}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 100000 1000000)
venv=.tools/bench-venv
if ! "$venv/bin/python" -c 'import numpy, hnswlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check numpy hnswlib
fi
py="$venv/bin/python"
mkdir -p "$root"
results="$root/results-$(date +%s).jsonl"

sp=50963; ip=50962; qp=50961; smp=59963
export AKIDB_STORAGE_ADDR=http://127.0.0.1:$sp AKIDB_INGEST_ADDR=http://127.0.0.1:$ip AKIDB_QUERY_ADDR=http://127.0.0.1:$qp
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

now() { date +%s.%N; }
metric() { local t; t=$(curl -s "http://127.0.0.1:$smp/metrics"); awk -v m="$1" '$1 == m { v = $2 } END { print v }' <<<"$t"; }
serving() { local h; h=$("$bin" health 2>/dev/null | grep storage || true); [[ $h == *SERVING* && $h != *NOT_SERVING* ]]; }
wait_serving() { until serving; do sleep 0.01; done; }
start_storage() {
  "$bin" serve storage --grpc-addr 127.0.0.1:$sp --metrics-addr 127.0.0.1:$smp --data-dir "$run/data" \
    >>"$run/storage.log" 2>&1 &
  spid=$!
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

for n in "${sizes[@]}"; do
  data="$root/data-$n-$dim-$metric"
  [[ -f $data/mix_base.fvecs ]] || "$py" scripts/gen_mixture.py "$data" --points "$n" --dim "$dim" --metric "$metric" >&2
  run="$root/run-$n-$dim-$metric-$quant-$on_disk"
  rm -rf "$run"; mkdir -p "$run"
  start_storage
  "$bin" serve ingest --grpc-addr 127.0.0.1:$ip --metrics-addr 127.0.0.1:59962 --storage-addr $AKIDB_STORAGE_ADDR >"$run/ingest.log" 2>&1 &
  ipid=$!
  # The result cache off: every search reaches storage (the bench repeats its queries).
  "$bin" serve query --grpc-addr 127.0.0.1:$qp --metrics-addr 127.0.0.1:59961 --storage-addr $AKIDB_STORAGE_ADDR \
    --cache-entries 0 >"$run/query.log" 2>&1 &
  qpid=$!
  pids=($spid $ipid $qpid)
  sleep 1; wait_serving
  # Load: durable vectors/s and time until every point is in a graph.
  t_load=$(now)
  "$bin" --json bench --data "$data" "${create[@]}" --ef 0 --concurrency 1 --seconds 0.2 --warmup 0 --search-batch 0 \
    --index-timeout 7200 --storage-metrics "http://127.0.0.1:$smp/metrics" >"$run/load.json"
  # Merges settle: no build or merge running, no point waiting, segments unchanged for 6 s,
  # and the collection quiet for longer than --merge-quiet-secs (30 s; its quiet merge
  # starts then).
  while (( $(echo "$(now) - $t_load < 36" | bc) )); do sleep 1; done
  last=""; same=0
  while (( same < 3 )); do
    sleep 2
    segs=$("$bin" --json collection get bench | "$py" -c 'import json,sys; print(json.load(sys.stdin)["segments"])')
    busy=$(metric 'akidb_index_build_points{progress="total",work="merge"}')
    pend=$(metric akidb_indexing_pending_points)
    if [[ $segs == "$last" && ${busy%.*} == 0 && ${pend%.*} == 0 ]]; then same=$((same + 1)); else same=0; fi
    last=$segs
  done
  settled=$(echo "$(now) - $t_load - 6" | bc)
  anon=$(status_kb "$spid" RssAnon); file=$(status_kb "$spid" RssFile)
  vec_b=$(metric 'akidb_memory_bytes{component="vectors"}'); hnsw_b=$(metric 'akidb_memory_bytes{component="hnsw"}'); idx_b=$(metric 'akidb_memory_bytes{component="payload_index"}')
  # Search: ef curve at 1 and 32 clients.
  "$bin" --json bench --data "$data" "${create[@]}" --no-load --ef "$efs" --concurrency 1,32 --seconds "$secs" --warmup 1 \
    --search-batch 0 --storage-metrics "http://127.0.0.1:$smp/metrics" >"$run/search.json"
  # Storage-side search time at one client, per ef (what hnswlib's in-process time compares
  # with): the mean of akidb_search_duration_seconds over a run at that ef alone.
  storage_ms=""
  for ef in ${efs//,/ }; do
    s0=$(metric 'akidb_search_duration_seconds_sum{tier="hot"}'); c0=$(metric 'akidb_search_duration_seconds_count{tier="hot"}')
    "$bin" --json bench --data "$data" "${create[@]}" --no-load --ef "$ef" --concurrency 1 --seconds 3 --warmup 0.5 --search-batch 0 >/dev/null
    s1=$(metric 'akidb_search_duration_seconds_sum{tier="hot"}'); c1=$(metric 'akidb_search_duration_seconds_count{tier="hot"}')
    storage_ms+="$ef:$(echo "scale=6; ($s1 - $s0) * 1000 / ($c1 - $c0)" | bc),"
  done
  # A snapshot, then a clean stop and a restart.
  "$bin" admin snapshot create bench >/dev/null
  t0=$(now); kill -TERM "$spid"; wait "$spid" || true; t1=$(now)
  stop_s=$(echo "$t1 - $t0" | bc)
  start_storage; pids=($spid $ipid $qpid); t0=$(now); wait_serving; t1=$(now)
  restart_s=$(echo "$t1 - $t0" | bc)
  # The heap of a process that opened the collection from its snapshot: what the collection
  # holds, without what the load and the merges left in the allocator.
  sleep 2; anon_restarted=$(status_kb "$spid" RssAnon)
  # A SIGKILL in the middle of continuous writes (another collection), then the restart.
  # (Small durable batches, one at a time: the writer is still writing when the kill comes.)
  "$bin" bench --data "$data" "${create[@]}" --collection writes --ef 0 --concurrency 1 --seconds 0.1 --search-batch 0 \
    --batch-size 10 --load-concurrency 1 --no-flush --index-timeout 1 >"$run/writes.log" 2>&1 &
  wpid=$!
  until "$bin" --json collection get writes 2>/dev/null | grep -q '"points": [1-9]'; do sleep 0.05; done
  sleep 0.3
  kill -KILL "$spid"; wait "$spid" 2>/dev/null || true
  kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true
  # The writer failed at the kill (it was writing), or had already finished.
  interrupted=$(grep -qi 'error' "$run/writes.log" && echo true || echo false)
  start_storage; pids=($spid $ipid $qpid); t0=$(now); wait_serving; t1=$(now)
  crash_s=$(echo "$t1 - $t0" | bc)
  count=$("$bin" --json collection get bench | "$py" -c 'import json,sys; print(json.load(sys.stdin)["points"])')
  [[ $count == "$n" ]] || { echo "after the SIGKILL: $count points, not $n" >&2; exit 1; }
  replayed=$(sed 's/\x1b\[[0-9;]*m//g' "$run/storage.log" | grep 'WAL replayed' | grep 'collection=writes' | tail -1 | grep -o 'replayed=[0-9]*' || true)
  kill "$spid" "$ipid" "$qpid" 2>/dev/null || true; wait 2>/dev/null || true
  # hnswlib in-process, same data, same M and ef_construction (HNSWLIB=0 skips it).
  if [[ ${HNSWLIB:-1} == 0 ]]; then echo '{"build_seconds": null, "search": []}' >"$run/hnswlib.json"; else
  "$py" - "$data" "$efs" "$metric" >"$run/hnswlib.json" <<'EOF'
import json, sys, time
import numpy as np, hnswlib
def read(p, dt):
    a = np.fromfile(p, dtype=dt); d = a[:1].view(np.int32)[0]
    return a.reshape(-1, d + 1)[:, 1:]
base = read(sys.argv[1] + "/mix_base.fvecs", np.float32)
qs = read(sys.argv[1] + "/mix_query.fvecs", np.float32)
gt = read(sys.argv[1] + "/mix_groundtruth.ivecs", np.int32)[:, :10]
p = hnswlib.Index(space="cosine" if sys.argv[3] == "cosine" else "l2", dim=base.shape[1])
p.init_index(max_elements=len(base), M=16, ef_construction=100, random_seed=1)
t = time.time(); p.add_items(base, np.arange(len(base))); build = time.time() - t
p.set_num_threads(1)
out = {"build_seconds": build, "search": []}
for ef in (e for e in map(int, sys.argv[2].split(",")) if e > 0):
    p.set_ef(ef)
    lat, hits = [], 0
    for q, g in zip(qs, gt):
        t = time.perf_counter(); labels, _ = p.knn_query(q, k=10); lat.append(time.perf_counter() - t)
        hits += len(set(labels[0].tolist()) & set(g.tolist()))
    lat.sort()
    out["search"].append({"ef": ef, "recall_at_10": hits / (10 * len(qs)), "p50_ms": lat[len(lat) // 2] * 1e3, "mean_ms": sum(lat) / len(lat) * 1e3})
print(json.dumps(out))
EOF
  fi
  "$py" - "$n" "$dim" "$run" "$settled" "$anon" "$file" "$vec_b" "$hnsw_b" "$idx_b" "$last" "$stop_s" "$restart_s" "$crash_s" "$replayed" "$interrupted" "$storage_ms" "$metric" "$quant" "$on_disk" "$anon_restarted" >>"$results" <<'EOF'
import json, sys
n, dim, run = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
load = json.load(open(run + "/load.json")); search = json.load(open(run + "/search.json"))
hl = json.load(open(run + "/hnswlib.json"))
f = lambda s: float(s) if s else None
print(json.dumps({
    "points": n, "dim": dim, "metric": sys.argv[17], "quantization": sys.argv[18],
    "on_disk": sys.argv[19] == "1",
    "ingest_vectors_per_second": load["ingest_vectors_per_second"],
    "indexed_seconds": load["indexed_seconds"], "merges_settled_seconds": f(sys.argv[4]),
    "segments": int(sys.argv[10]),
    "rss_anon_mib": int(sys.argv[5]) / 1024, "rss_file_mib": int(sys.argv[6]) / 1024,
    "rss_anon_restarted_mib": int(sys.argv[20]) / 1024,
    "vectors_bytes": f(sys.argv[7]), "hnsw_bytes": f(sys.argv[8]), "index_bytes": f(sys.argv[9]),
    "heap_bytes_per_vector": int(sys.argv[5]) * 1024 / n,
    "stop_seconds": f(sys.argv[11]), "restart_seconds": f(sys.argv[12]),
    "restart_after_sigkill_seconds": f(sys.argv[13]), "writes_replayed": sys.argv[14],
    "writer_interrupted_by_the_kill": sys.argv[15] == "true",
    "storage_search_ms": {int(e.split(":")[0]): float(e.split(":")[1]) for e in sys.argv[16].split(",") if e},
    "search": search["search"], "hnswlib": hl,
}))
EOF
  tail -1 "$results"
done

"$py" - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def label(r):
    return f"{r['points']:,} {r['dim']}-d {r.get('metric', 'l2')} {r.get('quantization', 'none')}" + (" on disk" if r.get("on_disk") else "")
print("\n| points | ingest vec/s | indexed s | merges settled s | segments | heap MiB | heap after restart MiB | file MiB | heap B/vector | stop s | restart s | restart after SIGKILL s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {label(r)} | {r['ingest_vectors_per_second']:.0f} | {r['indexed_seconds']:.1f} | {r['merges_settled_seconds']:.1f} | {r['segments']} | {r['rss_anon_mib']:.0f} | {r.get('rss_anon_restarted_mib', float('nan')):.0f} | {r['rss_file_mib']:.0f} | {r['heap_bytes_per_vector']:.0f} | {r['stop_seconds']:.2f} | {r['restart_seconds']:.2f} | {r['restart_after_sigkill_seconds']:.2f} |")
print("\n| points | ef | 1 client QPS | p50 ms | p99 ms | 32 clients QPS | p99 ms | recall@10 | storage-side mean ms | hnswlib mean ms (1 thread) | hnswlib recall@10 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    hl = {h["ef"]: h for h in r["hnswlib"]["search"]}
    efs = sorted({c["ef"] for c in r["search"]})
    for ef in efs:
        one = next(c for c in r["search"] if c["ef"] == ef and c["concurrency"] == 1)
        many = next(c for c in r["search"] if c["ef"] == ef and c["concurrency"] == 32)
        h = hl.get(ef, {})
        st = r.get("storage_search_ms", {}).get(str(ef), r.get("storage_search_ms", {}).get(ef, float("nan")))
        print(f"| {label(r)} | {ef or 'default'} | {one['qps']:.0f} | {one['p50_ms']:.3f} | {one['p99_ms']:.3f} | {many['qps']:.0f} | {many['p99_ms']:.3f} | {one['recall_at_10']:.4f} | {st:.3f} | {h.get('mean_ms', float('nan')):.3f} | {h.get('recall_at_10', float('nan')):.4f} |")
print("\nhnswlib build seconds: " + ", ".join(f"{r['points']:,}: {r['hnswlib']['build_seconds'] or float('nan'):.1f}" for r in rows))
EOF
