#!/usr/bin/env bash
# Search QPS and latency with no keys, a second identical stack (the A/A control), keys, and
# keys + TLS: four `akidb up` stacks side by side (query's result cache off), the data set
# loaded once into each, then ROUNDS rounds of `akidb bench --no-load` against each stack in a
# random order (3 s per client count), so that the machine's drift lands on all four alike.
# Prints the paired ratios against "off" with 95% confidence intervals (docs/benchmarks.md).
#
# Usage: scripts/keys_tls_bench.sh AKIDB_BINARY DATASET_DIR [l2|cosine] [ROUNDS] [OUT_DIR]
set -euo pipefail
BIN=$(realpath "$1"); DATA=$(realpath "$2"); METRIC=${3:-l2}; ROUNDS=${4:-10}
OUT=${5:-$(mktemp -d)}; mkdir -p "$OUT"; name=$(basename "$DATA")
declare -A OFFSET=([off]=900 [offb]=1000 [keys]=1100 [tls]=1200) CL
PIDS=()
for mode in off offb keys tls; do
  D=$OUT/data-$mode; rm -rf "$D"; mkdir -p "$D"; UPARGS=()
  case $mode in keys) UPARGS=(--api-keys-file "$D/keys.json");; tls) UPARGS=(--tls);; esac
  AKIDB_QUERY_CACHE_ENTRIES=0 AKIDB_LOG=warn "$BIN" up --data-dir "$D" --port-offset "${OFFSET[$mode]}" \
    "${UPARGS[@]}" > "$D/up.log" 2>&1 &
  PIDS+=($!)
done
trap 'for p in "${PIDS[@]}"; do kill -INT $p 2>/dev/null; done; wait' EXIT
for mode in off offb keys tls; do
  D=$OUT/data-$mode; O=${OFFSET[$mode]}
  c="--query-addr 127.0.0.1:$((50051 + O)) --ingest-addr 127.0.0.1:$((50052 + O))"
  if [ "$mode" = keys ] || [ "$mode" = tls ]; then
    for _ in $(seq 100); do grep -q "with an admin key" "$D/up.log" && break; sleep 0.1; done
    c="$c --api-key $(grep -A1 'with an admin key' "$D/up.log" | tail -1 | tr -d ' ')"
  fi
  [ "$mode" = tls ] && c="$c --ca-cert $D/tls/ca.pem"
  CL[$mode]=$c
  for _ in $(seq 150); do "$BIN" ${CL[$mode]} collection list >/dev/null 2>&1 && break; sleep 0.2; done
  "$BIN" ${CL[$mode]} bench --data "$DATA" --metric "$METRIC" --collection "b$name" \
    --concurrency 1 --seconds 1 --json > "$OUT/load-$mode.json"
done
for r in $(seq 1 "$ROUNDS"); do
  for mode in $(printf 'off\noffb\nkeys\ntls\n' | shuf); do
    "$BIN" ${CL[$mode]} bench --no-load --data "$DATA" --metric "$METRIC" --collection "b$name" \
      --ef 32 --concurrency 1,32 --seconds 3 --warmup 0.5 --json > "$OUT/run-$mode-$r.json"
  done
  echo "round $r of $ROUNDS" >&2
done
python3 - "$OUT" "$name" <<'EOF'
import glob, json, math, os, statistics, sys
out, name = sys.argv[1], sys.argv[2]
runs = {}
for f in glob.glob(f"{out}/run-*.json"):
    _, mode, r = os.path.basename(f)[:-5].split("-")
    t = open(f).read()
    for c in json.loads(t[t.index("{"):])["search"]:
        runs.setdefault(c["concurrency"], {}).setdefault(mode, {})[int(r)] = c
def ratio(v, mode, base="off"):
    xs = [v[mode][r]["qps"] / v[base][r]["qps"] for r in v[base]]
    half = 2.262 * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0
    return f"{statistics.mean(xs):.3f} ± {half:.3f}"
print(f"| data | clients | rounds | off QPS | keys QPS | keys+TLS QPS | keys/off | keys+TLS/off | A/A off b/off | p50 ms off / off b / keys / keys+TLS |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for c, v in sorted(runs.items()):
    q = lambda m: statistics.mean(x["qps"] for x in v[m].values())
    p = lambda m: statistics.median(x["p50_ms"] for x in v[m].values())
    print(f"| {name} | {c} | {len(v['off'])} | {q('off'):,.0f} | {q('keys'):,.0f} | {q('tls'):,.0f} | "
          f"{ratio(v, 'keys')} | {ratio(v, 'tls')} | {ratio(v, 'offb')} | "
          f"{p('off'):.3f} / {p('offb'):.3f} / {p('keys'):.3f} / {p('tls'):.3f} |")
EOF
