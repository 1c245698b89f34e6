#!/usr/bin/env bash
# Runs every check and test against real local services (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
