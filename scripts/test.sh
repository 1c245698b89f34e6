#!/usr/bin/env bash
# Runs every check and test against real local services (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
# A one-off build gains nothing from incremental state; it only costs disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
