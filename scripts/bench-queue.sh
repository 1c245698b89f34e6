#!/usr/bin/env bash
# Side-by-side queue benchmark on the same local Redis, in one run: tsp-job (records off with a
# runtime thread per core, records off on one runtime thread, records on) and BullMQ 5.81.5 (one
# Node process, two concurrencies). Each prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-200000}

scripts/services.sh up >/dev/null
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
cargo build --release -p tsp-bench >/dev/null
if [ ! -d bench/bullmq/node_modules/bullmq ]; then
  (cd bench/bullmq && npm install --no-audit --no-fund --silent)
fi
target/release/tsp-bench "${LOCAL_SETS[@]}" queue --jobs "$JOBS" --records off 2>/dev/null
# One runtime thread leaves the other core to Redis on a two-core machine (like one Node process).
target/release/tsp-bench "${LOCAL_SETS[@]}" --set server.threads=1 queue --jobs "$JOBS" --records off 2>/dev/null
target/release/tsp-bench "${LOCAL_SETS[@]}" queue --jobs "$JOBS" --records on 2>/dev/null
# BullMQ at the concurrency of its published figure (50), then at tsp-job's default (1024).
REDIS_PORT=$LOCAL_REDIS_PORT node bench/bullmq/bench.mjs "$JOBS" 50
REDIS_PORT=$LOCAL_REDIS_PORT node bench/bullmq/bench.mjs "$JOBS" 1024
