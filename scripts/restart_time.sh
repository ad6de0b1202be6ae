#!/bin/bash
# Restart time of a 10k collection from a snapshot: load a data set through a local stack,
# snapshot it, stop storage (SIGTERM), start it again and time until grpc.health says SERVING.
# Usage: scripts/restart_time.sh AKIDB_BINARY DATASET_DIR [l2|cosine]
set -euo pipefail
bin=$(realpath "$1"); data=$2; metric=${3:-l2}
dir=$(mktemp -d /tmp/akidb-restart.XXXX)
sp=50963; ip=50962; qp=50961
export AKIDB_STORAGE_ADDR=http://127.0.0.1:$sp AKIDB_INGEST_ADDR=http://127.0.0.1:$ip AKIDB_QUERY_ADDR=http://127.0.0.1:$qp
start_storage() {
  "$bin" serve storage --grpc-addr 127.0.0.1:$sp --metrics-addr 127.0.0.1:59963 --data-dir "$dir/data" \
    --segment-max-points 10000 >>"$dir/storage.log" 2>&1 &
  spid=$!
}
start_storage
"$bin" serve ingest --grpc-addr 127.0.0.1:$ip --metrics-addr 127.0.0.1:59962 --storage-addr $AKIDB_STORAGE_ADDR >"$dir/ingest.log" 2>&1 & ipid=$!
"$bin" serve query --grpc-addr 127.0.0.1:$qp --metrics-addr 127.0.0.1:59961 --storage-addr $AKIDB_STORAGE_ADDR >"$dir/query.log" 2>&1 & qpid=$!
trap 'kill $spid $ipid $qpid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 2
"$bin" bench --data "$data" --metric "$metric" --ef 16 --concurrency 1 --seconds 1 --warmup 0 --search-batch 0 >/dev/null
"$bin" admin snapshot create bench >/dev/null
kill -TERM $spid; wait $spid || true
t0=$(date +%s.%N)
start_storage
serving() { local h; h=$("$bin" health 2>/dev/null | grep storage || true); [[ $h == *SERVING* && $h != *NOT_SERVING* ]]; }
until serving; do sleep 0.005; done
t1=$(date +%s.%N)
echo "restart: storage SERVING $(echo "$t1 - $t0" | bc) s after start (process start, snapshot load, WAL replay; $(sed 's/\x1b\[[0-9;]*m//g' "$dir/storage.log" | grep -o 'snapshot loaded.*elapsed_ms=[0-9]*' | grep -o 'elapsed_ms=[0-9]*' | tail -1) for the snapshot load itself)"
