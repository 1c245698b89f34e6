#!/usr/bin/env bash
# The queue benchmark on the local standalone Redis and on the local Redis Cluster (3 primaries,
# 3 replicas: scripts/services.sh up --cluster), in one run: one `tsp-bench queue` on each,
# then three at once on the Cluster (each run's queue has its own name, so its own hash slot:
# the three spread over the shards). Each prints one JSON line; on the Cluster,
# `redis_us_per_job` is null (INFO answers per node).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-100000}
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
SEEDS=$LOCAL_CLUSTER_SEEDS

scripts/services.sh up --cluster >/dev/null
cargo build --release -p tsp-bench >/dev/null
target/release/tsp-bench "${LOCAL_SETS[@]}" queue --jobs "$JOBS" --records off 2>/dev/null
target/release/tsp-bench --set redis.cache.cluster_nodes="$SEEDS" queue --jobs "$JOBS" --records off 2>/dev/null
pids=()
for _ in 1 2 3; do
  target/release/tsp-bench --set redis.cache.cluster_nodes="$SEEDS" queue --jobs "$JOBS" --records off 2>/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
