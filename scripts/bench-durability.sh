#!/usr/bin/env bash
# What `queue.durability = wait` costs: a private Redis primary (AOF on, everysec) with one
# replica on loopback, then `tsp-bench queue` against the primary with durability `none`
# and with `wait`, in one run. Each prints one JSON line. The pair's data is under
# .data/bench-durability/ and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-100000}
PRIMARY=${TSP_BENCH_PRIMARY_PORT:-6391}
REPLICA=${TSP_BENCH_REPLICA_PORT:-6392}
D=$PWD/.data/bench-durability

scripts/services.sh up >/dev/null
cargo build --release -p tsp-bench >/dev/null
mkdir -p "$D/primary" "$D/replica"
stop() {
  redis-cli -p "$PRIMARY" shutdown nosave >/dev/null 2>&1 || true
  redis-cli -p "$REPLICA" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$D"
}
trap stop EXIT
redis-server --port "$PRIMARY" --bind 127.0.0.1 --dir "$D/primary" --daemonize yes --save "" \
  --appendonly yes --appendfsync everysec --logfile "$D/primary.log"
redis-server --port "$REPLICA" --bind 127.0.0.1 --dir "$D/replica" --daemonize yes --save "" \
  --replicaof 127.0.0.1 "$PRIMARY" --logfile "$D/replica.log"
for _ in $(seq 1 100); do
  redis-cli -p "$REPLICA" info replication 2>/dev/null | grep -q master_link_status:up && break
  sleep 0.1
done
redis-cli -p "$REPLICA" info replication | grep -q master_link_status:up \
  || { echo "the replica never synced; see $D/replica.log" >&2; exit 1; }
for mode in none wait; do
  target/release/tsp-bench --set redis.cache.port="$PRIMARY" --set queue.durability="$mode" \
    queue --jobs "$JOBS" --records off 2>/dev/null
done
