#!/usr/bin/env bash
# The main job, end to end on local services: start them, build, migrate every store, then
# `tsp-job simulate`: seed portal users, enqueue 10 000 generated trips between the real bus stops
# of Cairns, work them until the queue drains (progress bar), and print a summary with health.
# Extra arguments go to `tsp-job simulate` (e.g. --trips 20000 --users 500 --seed 7).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
cargo build --release -p tsp-server
echo
target/release/tsp-job "${LOCAL_SETS[@]}" migrate
echo
target/release/tsp-job "${LOCAL_SETS[@]}" simulate "$@"
