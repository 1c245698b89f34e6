#!/usr/bin/env bash
# What TLS and authentication cost: `tsp-job bench hub` and `tsp-job bench trips`, first on the
# plain local services, then on the secure profile (TLS with verified certificates, the app
# accounts, secrets from files; MariaDB also encrypted at rest), in one run on the same machine.
# Each prints one JSON line, prefixed with its profile. Extra arguments go to `bench trips`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up >/dev/null
scripts/services.sh up --secure >/dev/null
cargo build --release -p tsp-server >/dev/null
for profile in development secure; do
  printf '%s hub ' "$profile"
  TSP_ENV=$profile target/release/tsp-job bench hub 2>/dev/null
  printf '%s trips ' "$profile"
  TSP_ENV=$profile target/release/tsp-job bench trips --trips 3000 "$@" 2>/dev/null
done
