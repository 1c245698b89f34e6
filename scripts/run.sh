#!/usr/bin/env bash
# The main job, end to end on local services: start them, build, migrate the schemas, check every
# store, and write and read back through each instance.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
cargo build --release -p tsp-server
echo
target/release/tsp-job migrate
echo
target/release/tsp-job health
echo
target/release/tsp-job roundtrip
