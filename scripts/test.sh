#!/usr/bin/env bash
# Runs every check and test against real local services (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
# A fresh build needs about 2 GB under target/; say so up front rather than fail mid-link.
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ -n "$free_kb" ] && [ "$free_kb" -lt 2500000 ]; then
  echo "warning: $((free_kb / 1024)) MB free on $(df -P . | awk 'NR == 2 { print $6 }'); a fresh build needs about 2 GB under target/" >&2
fi
# A one-off build gains nothing from incremental state; it only costs disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Every public item documented (missing_docs), and no doc link pointing nowhere.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
