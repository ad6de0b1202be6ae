#!/bin/bash
# Fan-out latency: a search over S shards against a search over one shard of the same size,
# in the same cluster, and what the independence model (docs/scale-out.md) predicts from the
# one-shard distribution: the fan-out's quantile q is the one shard's quantile q^(1/S).
#
# `akidb up --storage-nodes NODES` (its etcd, the query service's result cache off), two
# collections of the same Gaussian mixture (scripts/gen_mixture.py, seed 1, 128-d, L2):
# `one` = P points in 1 shard, `fan` = S × P points in S shards (P per shard). Then ROUNDS
# rounds of `akidb bench --no-load` on each, one client, CELL_SECONDS each, alternated. Prints the
# distribution of each run (p50 … p99.99, from `akidb bench --json`) and the model's
# prediction for `fan` from each `one` run.
#
# Usage: scripts/fanout_bench.sh
# Env: AKIDB_BIN (target/release/akidb), NODES (3), SHARDS (6), POINTS (P, 10000),
#      CELL_SECONDS (30), ROUNDS (2), CLIENTS (1), SCALE_DIR (/tmp/akidb-scale: data sets cached).
#      Needs the `etcd` binary (Debian etcd-server) and numpy (.tools/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${AKIDB_BIN:-target/release/akidb}")
root=${SCALE_DIR:-/tmp/akidb-scale}
nodes=${NODES:-3}; shards=${SHARDS:-6}; points=${POINTS:-10000}
secs=${CELL_SECONDS:-30}; rounds=${ROUNDS:-2}; clients=${CLIENTS:-1}
venv=.tools/bench-venv
if ! "$venv/bin/python" -c 'import numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check numpy hnswlib
fi
py="$venv/bin/python"
mkdir -p "$root"
one="$root/data-$points-128-l2"
fan="$root/data-$((points * shards))-128-l2"
for d in "$one:$points" "$fan:$((points * shards))"; do
  [[ -f ${d%%:*}/mix_base.fvecs ]] || "$py" scripts/gen_mixture.py "${d%%:*}" --points "${d##*:}" --dim 128 --metric l2 >&2
done
run=$(mktemp -d /tmp/akidb-fanout.XXXXXX)
AKIDB_QUERY_CACHE_ENTRIES=0 "$bin" up --storage-nodes "$nodes" --data-dir "$run/data" >"$run/up.log" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null || true; wait $up 2>/dev/null || true; rm -rf "$run"' EXIT
for _ in $(seq 600); do
  [[ $("$bin" --json cluster status --etcd http://127.0.0.1:2379 2>/dev/null | grep -c '"addr"') -ge $nodes ]] && break
  sleep 0.1
done
bench() { "$bin" --json bench --concurrency "$clients" --ef 0 --search-batch 0 "$@"; }
bench --data "$one" --collection one --shards 1 --seconds 0.2 --warmup 0 >/dev/null
bench --data "$fan" --collection fan --shards "$shards" --seconds 0.2 --warmup 0 >/dev/null
for r in $(seq "$rounds"); do
  bench --data "$one" --collection one --no-load --seconds "$secs" --warmup 2 >"$run/one-$r.json"
  bench --data "$fan" --collection fan --no-load --seconds "$secs" --warmup 2 >"$run/fan-$r.json"
done
"$py" - "$run" "$rounds" "$shards" <<'PYEOF'
import json, sys
import numpy as np
run, rounds, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
qs = [0.5, 0.9, 0.99, 0.999, 0.9999]
def dist(cell):
    pts = np.array(cell["quantiles_ms"])
    return pts[:, 0], pts[:, 1]
def at(cell, q):
    x, y = dist(cell)
    return float(np.interp(q, x, y))
print(f"| run | recall@10 | QPS | " + " | ".join(f"p{100*q:g} ms" for q in qs) + " | requests |")
print("|---|---|---|" + "---|" * len(qs) + "---|")
for r in range(1, rounds + 1):
    one = json.load(open(f"{run}/one-{r}.json"))["search"][0]
    fan = json.load(open(f"{run}/fan-{r}.json"))["search"][0]
    for name, c in ((f"one shard, round {r}", one), (f"{shards} shards, round {r}", fan)):
        print(f"| {name} | {c['recall_at_10']:.4f} | {c['qps']:.0f} | " + " | ".join(f"{at(c, q):.3f}" for q in qs) + f" | {c['requests']} |")
    print(f"| model from one shard, round {r} | | | " + " | ".join(f"{at(one, q ** (1 / shards)):.3f}" for q in qs) + " | |")
PYEOF
