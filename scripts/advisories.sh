#!/usr/bin/env bash
# Places the RustSec advisory database where cargo-deny reads it, from the offline copy beside
# the repository (../shared/advisory-db/advisory-db.bundle), then runs the advisories check:
# any advisory not accepted in deny.toml fails it, and so does an accepted one whose
# "Review by YYYY-MM-DD" date has passed (docs/store-security.md#audits).
#   scripts/advisories.sh DENY   (DENY: the cargo-deny binary)
set -euo pipefail
cd "$(dirname "$0")/.."
deny=${1:?usage: scripts/advisories.sh CARGO_DENY}
bundle=${TSP_ADVISORY_BUNDLE:-../shared/advisory-db/advisory-db.bundle}
# The folder name cargo-deny 0.20 derives from the default database URL.
db="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"

if [ -f "$bundle" ]; then
  want=$(git bundle list-heads "$bundle" | awk 'NR == 1 { print $1 }')
  have=$(git -C "$db" rev-parse HEAD 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "advisories: placing the RustSec database from $bundle"
    rm -rf "$db"
    mkdir -p "$(dirname "$db")"
    git clone -q "$bundle" "$db"
  fi
fi
if [ ! -d "$db/.git" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "advisories: no RustSec database ($bundle missing, nothing under $db)" >&2
    exit 1
  fi
  echo "advisories: NOT checked: no RustSec database ($bundle missing, nothing under $db)"
  exit 0
fi
echo "advisories: RustSec database of $(git -C "$db" log -1 --format=%cs)"

today=$(date -u +%F)
overdue=$(grep -o 'Review by [0-9-]*' deny.toml | awk -v today="$today" '$3 < today { print $3 }')
if [ -n "$overdue" ]; then
  echo "advisories: an accepted advisory in deny.toml is past its review date ($overdue): look at it again" >&2
  exit 1
fi
"$deny" --offline check advisories
