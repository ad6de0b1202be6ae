#!/bin/bash
# What a shard snapshot costs, and what it saves a new copy, from 10k to 1M points.
#
# For each size: one storage node on a local etcd (a cluster of one, objects in a local
# directory), a collection of 1 shard with 2 copies (the second one waits for a node), the
# data set loaded through ingest in batches of 1,000 (one log entry each) and indexed. Two
# variants, each its own run:
#   snapshot  --shard-snapshot-entries = entries loaded: the owner snapshots the shard once
#             after the last batch, then cuts its log (no other copy holds it yet).
#   replay    --shard-snapshot-entries 0: the log is kept whole.
# Then a second node starts and the controller places the missing copy on it: the time from
# its start to its copy holding every point (its applied sequence equal to the owner's in
# `akidb cluster status`, polled every 100 ms; sequences are published every ~200 ms), and,
# for `snapshot`, the snapshot's own figures from the owner's and the new copy's logs
# (seconds to take, seconds to rebuild from it), its objects and bytes, and the log's objects
# before and after the cut.
#
# Usage: scripts/shard_snapshot_bench.sh [SIZES...]     (default: 10000 100000 1000000)
# Env: AKIDB_BIN (target/release/akidb), SCALE_DIR (/tmp/akidb-scale: the data sets of
#      scripts/scale_bench.sh are reused), DIM (128). Needs the `etcd` binary (Debian
#      etcd-server) and numpy (installed into .tools/bench-venv on first use).
# Prints one line per size and variant, then a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${AKIDB_BIN:-target/release/akidb}")
root=${SCALE_DIR:-/tmp/akidb-scale}
dim=${DIM:-128}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(10000 100000 1000000)
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
[[ -x $etcd_bin ]] || { echo "needs etcd: apt-get install etcd-server (scripts/setup does)" >&2; exit 1; }
venv=.tools/bench-venv
if ! "$venv/bin/python" -c 'import numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check numpy hnswlib
fi
py="$venv/bin/python"
mkdir -p "$root"

ep=23971
etcd_url=http://127.0.0.1:$ep
ap=50971; bp=50972; ip=50973; qp=50974
export AKIDB_INGEST_ADDR=http://127.0.0.1:$ip AKIDB_QUERY_ADDR=http://127.0.0.1:$qp AKIDB_ETCD=$etcd_url
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

now() { date +%s.%N; }
storage_node() { # id port snapshot-entries
  "$bin" serve storage --grpc-addr 127.0.0.1:$2 --metrics-addr 127.0.0.1:$(($2 + 9000)) \
    --data-dir "$run/$1" --object-dir "$run/objects" --etcd "$etcd_url" --node-id "$1" \
    --shard-snapshot-entries "$3" >>"$run/$1.log" 2>&1 &
  pids+=($!)
}
# The applied sequence of node $1's copy of the bench collection's shard 0 (0: none yet).
applied() {
  "$bin" --json cluster status 2>/dev/null | "$py" -c '
import json, sys
d = json.load(sys.stdin)
for c in d["collections"]:
    if c["collection"] == "bench":
        for s in c["shards"]:
            print(s["applied"].get(sys.argv[1]) or 0); sys.exit()
print(0)' "$1"
}
log_field() { # file message field
  grep -F "$2" "$1" | tail -1 | grep -o "$3=[0-9.]*" | cut -d= -f2
}
count() { find "$1" -type f 2>/dev/null | wc -l; }
bytes() { du -sb "$1" 2>/dev/null | cut -f1 || echo 0; }

rows=()
for n in "${sizes[@]}"; do
  data="$root/data-$n-$dim-l2"
  [[ -f $data/mix_base.fvecs ]] || "$py" scripts/gen_mixture.py "$data" --points "$n" --dim "$dim" --metric l2 >&2
  entries=$(((n + 999) / 1000))
  for variant in snapshot replay; do
    run="$root/shardsnap-$n-$variant"
    rm -rf "$run"; mkdir -p "$run"
    pids=()
    "$etcd_bin" --name=bench --data-dir="$run/etcd" --listen-client-urls=$etcd_url --advertise-client-urls=$etcd_url \
      --listen-peer-urls=http://127.0.0.1:$((ep + 1)) --initial-advertise-peer-urls=http://127.0.0.1:$((ep + 1)) \
      --initial-cluster=bench=http://127.0.0.1:$((ep + 1)) >"$run/etcd.log" 2>&1 &
    pids+=($!)
    every=0
    [[ $variant == snapshot ]] && every=$entries
    storage_node a $ap "$every"
    "$bin" serve ingest --grpc-addr 127.0.0.1:$ip --metrics-addr 127.0.0.1:59973 --etcd "$etcd_url" >"$run/ingest.log" 2>&1 &
    pids+=($!)
    "$bin" serve query --grpc-addr 127.0.0.1:$qp --metrics-addr 127.0.0.1:59974 --etcd "$etcd_url" --cache-entries 0 >"$run/query.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do "$bin" --json cluster status 2>/dev/null | grep -q '"a"' && break; sleep 0.1; done
    "$bin" --json bench --data "$data" --shards 1 --replication 2 --ef 0 --concurrency 1 --seconds 0.2 \
      --warmup 0 --search-batch 0 --index-timeout 7200 --storage-metrics "http://127.0.0.1:$((ap + 9000))/metrics" \
      >"$run/load.json"
    owner=$(applied a)
    # The snapshot and the cut behind it (snapshot variant): wait for both.
    snap_s=-; snap_objs=0; snap_bytes=0
    if [[ $variant == snapshot ]]; then
      for _ in $(seq 6000); do grep -qF "took a snapshot of the shard" "$run/a.log" && break; sleep 0.1; done
      snap_s=$(log_field "$run/a.log" "took a snapshot of the shard" seconds)
      for _ in $(seq 600); do [[ $(count "$run/objects/shardlog") -le 1 ]] && break; sleep 0.1; done
      snap_objs=$(count "$run/objects/shardsnap"); snap_bytes=$(bytes "$run/objects/shardsnap")
    fi
    log_objs=$(count "$run/objects/shardlog"); log_bytes=$(bytes "$run/objects/shardlog")
    # A second node: the controller places the missing copy there.
    t0=$(now)
    storage_node b $bp "$every"
    for _ in $(seq 36000); do [[ $(applied b) -ge $owner ]] && break; sleep 0.1; done
    copy_s=$(echo "$(now) - $t0" | bc)
    rebuild_s=-
    [[ $variant == snapshot ]] && rebuild_s=$(log_field "$run/b.log" "rebuilt this node's copy" seconds)
    mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
    secs() { [[ $1 == - ]] && echo - || printf %.2f "$1"; }
    row="| $n | $variant | $entries | $log_objs | $(mib "$log_bytes") | $(secs "$snap_s") | $snap_objs | $(mib "$snap_bytes") | $(secs "$rebuild_s") | $(secs "$copy_s") |"
    echo "$row" >&2
    rows+=("$row")
    cleanup
  done
done
echo "| points | variant | log entries written | log objects left | log MiB left | snapshot s | snapshot objects | snapshot MiB | rebuild from snapshot s | new copy holds every point s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
