#!/bin/bash
# Resident memory of the storage process: empty, with a data set opened from a snapshot, and
# after searches, from /proc/<pid>/status (VmRSS, VmHWM = peak, RssAnon, RssFile, Threads).
#
# Usage: scripts/storage_memory.sh BIN_DIR DATASET_DIR [float32|float16] [l2|cosine]
#   BIN_DIR holds `akidb` and `akidb-storage` (e.g. target/release).
#
# 1. A local stack (`akidb serve ...`) loads the data set with `akidb bench` into a
#    collection of the given datatype, takes a snapshot and stops.
# 2. `akidb-storage` is started on an empty data directory, then on a copy of that one, each
#    time after the binary's pages were dropped from the page cache (posix_fadvise
#    DONTNEED), so that every run maps its code from a cold cache the same way. Figures are
#    read 2 s after storage reports SERVING, and again after `akidb bench --no-load`
#    searched through a query service (1 and 32 clients, SearchBatch).
set -euo pipefail
bin=$(realpath "$1"); data=$2; datatype=${3:-float32}; metric=${4:-l2}
dir=$(mktemp -d /tmp/akidb-memory.XXXX)
sp=50993; ip=50992; qp=50991
export AKIDB_STORAGE_ADDR=http://127.0.0.1:$sp AKIDB_INGEST_ADDR=http://127.0.0.1:$ip AKIDB_QUERY_ADDR=http://127.0.0.1:$qp
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
serving() { local h; h=$("$bin/akidb" health 2>/dev/null | grep storage || true); [[ $h == *SERVING* && $h != *NOT_SERVING* ]]; }
wait_serving() {
  for _ in $(seq 400); do serving && return 0; sleep 0.05; done
  echo "storage did not start"; tail -3 "$dir"/*.log; exit 1
}
report() {
  local s=/proc/$1/status
  g() { awk -v k="$1" '$1==k {printf "%.1f", $2/1024}' "$s"; }
  printf "%-34s RSS %5s MiB  peak %5s  anon %5s  file %5s  threads %s\n" "$2" "$(g VmRSS:)" "$(g VmHWM:)" \
    "$(g RssAnon:)" "$(g RssFile:)" "$(awk '$1=="Threads:" {print $2}' "$s")"
}

# 1. Load, snapshot, stop.
"$bin/akidb" serve storage --grpc-addr 127.0.0.1:$sp --metrics-addr 127.0.0.1:59993 --data-dir "$dir/data" >"$dir/load-storage.log" 2>&1 &
spid=$!; pids+=("$spid")
"$bin/akidb" serve ingest --grpc-addr 127.0.0.1:$ip --metrics-addr 127.0.0.1:59992 --storage-addr $AKIDB_STORAGE_ADDR >"$dir/ingest.log" 2>&1 &
pids+=("$!")
"$bin/akidb" serve query --grpc-addr 127.0.0.1:$qp --metrics-addr 127.0.0.1:59991 --storage-addr $AKIDB_STORAGE_ADDR --cache-entries 0 >"$dir/query.log" 2>&1 &
pids+=("$!")
wait_serving
"$bin/akidb" bench --data "$data" --metric "$metric" --datatype "$datatype" --ef 32 --concurrency 1 --seconds 1 --warmup 0 --search-batch 0 | grep -E "ingest|^\| 32" || true
report "$spid" "after loading and indexing"
"$bin/akidb" admin snapshot create bench >/dev/null
kill -TERM "$spid"; wait "$spid" || true

# 2. akidb-storage alone, cold page cache for its binary.
run() {
  local what=$1 d=$2
  python3 -c "import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)" "$bin/akidb-storage"
  "$bin/akidb-storage" --grpc-addr 127.0.0.1:$sp --metrics-addr 127.0.0.1:59993 --data-dir "$d" >"$dir/storage-$what.log" 2>&1 &
  local pid=$!; pids+=("$pid")
  wait_serving; sleep 2
  report "$pid" "akidb-storage, $what"
  if [[ $what != empty ]]; then
    "$bin/akidb" bench --data "$data" --metric "$metric" --no-load --ef 32 --concurrency 1,32 --seconds 1 --warmup 0 --search-batch 100 | grep -E "^\| 32" || true
    report "$pid" "akidb-storage, $what, searched"
  fi
  kill -TERM "$pid"; wait "$pid" || true
}
mkdir -p "$dir/empty"
run empty "$dir/empty"
cp -r "$dir/data" "$dir/copy"
run "$(basename "$data") $datatype" "$dir/copy"
