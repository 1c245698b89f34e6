#!/usr/bin/env bash
# A/B of a benchmark: this checkout against an earlier revision, interleaved runs in one sitting
# on the same services (the machine's speed drifts, so only interleaved runs compare).
#   scripts/bench-ab.sh BASE_REV [RUNS] [N]
# BENCH=queue (default: N no-op jobs, records off, default 200 000) or BENCH=trips (N trips of
# trip.complete on every store, in a sandbox each, default 3 000). Prints each run's JSON line
# prefixed with A (BASE_REV) or B (this checkout), then the medians of each side.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench-ab.sh BASE_REV [RUNS] [N]}
runs=${2:-10}
bench=${BENCH:-queue}
case "$bench" in
  queue) n=${3:-200000}; args=(queue --jobs "$n" --records off) ;;
  trips) n=${3:-3000}; args=(trips --trips "$n") ;;
  *) echo "BENCH: queue or trips" >&2; exit 2 ;;
esac

scripts/services.sh up >/dev/null
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
tree=target/ab/src
rm -rf "$tree"
mkdir -p target/ab
git worktree prune
git worktree add --detach "$tree" "$base" >/dev/null
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
echo "building $base and this checkout (release)" >&2
# Revisions before the benchmarks had a binary of their own ran them as `tsp-job bench`.
bench_of() { # TREE TARGET: the command that runs the benchmarks of the revision in TREE
  if [ -d "$1/crates/bench" ]; then
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo build --release -q -p tsp-bench)
    echo "$2/release/tsp-bench"
  else
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo build --release -q -p tsp-server)
    echo "$2/release/tsp-job bench"
  fi
}
a=$(bench_of "$tree" "$PWD/target/ab/target")
b=$(bench_of . "$PWD/target")

out=$(mktemp)
for i in $(seq 1 "$runs"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    line=$(TSP_LOG=error $bin "${LOCAL_SETS[@]}" "${args[@]}" 2>/dev/null)
    echo "$side $line" | tee -a "$out"
  done
done
python3 - "$out" "$bench" <<'PY'
import json, statistics, sys
rows = {"A": [], "B": []}
for line in open(sys.argv[1]):
    side, js = line.split(" ", 1)
    rows[side].append(json.loads(js))
for side, rs in rows.items():
    if sys.argv[2] == "trips":
        t = [r["batched"]["trips_per_s"] for r in rs]
        print(f"{side}: {len(rs)} runs; trips/s median {statistics.median(t):.1f} "
              f"(min {min(t):.1f}, max {max(t):.1f})")
        continue
    p = [r["process_per_s"] for r in rs]
    e = [r["enqueue_per_s"] for r in rs]
    quiet = [r["process_per_s"] for r in rs if r["cpu"]["process"]["redis_background_forks"] == 0]
    print(f"{side}: {len(rs)} runs; processed/s median {statistics.median(p):.0f} "
          f"(min {min(p):.0f}, max {max(p):.0f}); without an AOF rewrite "
          f"{statistics.median(quiet) if quiet else float('nan'):.0f} ({len(quiet)} runs); "
          f"enqueue/s median {statistics.median(e):.0f}")
PY
rm -f "$out"
