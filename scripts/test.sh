#!/usr/bin/env bash
# Runs every check and test against real local services (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."

# --monitoring: Prometheus and promtool, for the rule checks and the `monitoring` tests.
scripts/services.sh up --browser --monitoring
# The secure profile too: TLS, least-privilege accounts, encryption at rest (docs/testing.md#secure).
scripts/services.sh up --secure >/dev/null
# A fresh run leaves about 6 GB under target/ (it says how much at the end); say so up front
# rather than fail mid-link.
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ -n "$free_kb" ] && [ "$free_kb" -lt 7000000 ]; then
  echo "warning: $((free_kb / 1024)) MB free on $(df -P . | awk 'NR == 2 { print $6 }'); a fresh run needs about 6 GB under target/" >&2
fi
# A one-off build gains nothing from incremental state; it only costs disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# No two source files of a crate use each other (docs/contributing.md#layout).
python3 scripts/import-loops.py
# Every public item documented (missing_docs), and no doc link pointing nowhere.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# Licences, bans and sources of every dependency (deny.toml), offline.
deny=$(command -v cargo-deny || echo .data/tools/bin/cargo-deny)
if [ ! -x "$deny" ]; then
  echo "installing cargo-deny into .data/tools (once)"
  cargo install --locked --quiet cargo-deny --version 0.20.2 --root .data/tools
fi
# cargo-deny reads the metadata of every crate for every target platform, and a build fetches
# only the host's: fetch the rest first (crates.io, not the advisory database).
cargo fetch --locked --quiet
"$deny" --offline check licenses bans sources
# Known vulnerabilities, from the offline RustSec copy; accepted ones are listed in deny.toml.
scripts/advisories.sh "$deny"
# Every run below selects tests from one workspace build (nextest filtersets): a `-p` run would
# resolve features for that package alone and build the dependencies a second time (~2 GB each).
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest into .data/tools (once)"
  cargo install --locked --quiet cargo-nextest --version 0.9.143 --root .data/tools
  export PATH="$PWD/.data/tools/bin:$PATH"
fi
run_tests() { cargo nextest run --workspace --no-fail-fast "$@"; }
run_tests
# The Kubernetes manifests render and validate, the systemd units verify (docs/deploy.md), with
# the tsp-job binary the tests just built.
scripts/deploy-check.sh target/debug/tsp-job
# The alert rules pass their promtool unit tests; the scrape configuration and the dashboard are
# well formed (docs/metrics.md#alerts).
scripts/monitoring-check.sh
scripts/openapi-check.sh
# The main job, the trip flow and the consistency drill again over the secure profile: every store
# over verified TLS, the app accounts only, secrets from files (docs/testing.md#secure).
TSP_TEST_ENV=secure run_tests -E 'package(tsp-server) & binary(integration)
  & (test(/^trips::/) | test(/^consistency::/))
  | package(tsp-bench) & test(the_trip_and_gtfs_benchmarks)'
# The queue and cache suites, the four-worker exactly-once test and a queue benchmark again on
# a Redis Cluster of 3 primaries and 3 replicas (docs/testing.md#cluster).
scripts/services.sh up --cluster >/dev/null
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
TSP_TEST_REDIS_CLUSTER=$LOCAL_CLUSTER_SEEDS run_tests -E '
  package(tsp-queue) & (binary(semantics) | binary(inspection) | binary(batches) | binary(builtins)
    | binary(integrity) & test(the_audit))
  | package(tsp-hub) & binary(cache)
  | package(tsp-server) & binary(integration) & test(workers::four_workers)'
# The image, where podman is installed: built offline and run against the local stores
# (docs/deploy.md#image).
if command -v podman >/dev/null 2>&1; then scripts/image.sh check; fi
echo "target/ holds $(du -sh target | cut -f1) after every check"
