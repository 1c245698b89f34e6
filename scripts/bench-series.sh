#!/usr/bin/env bash
# A series of one benchmark: runs `tsp-bench queue` N times in one sitting on the local
# services and prints each JSON line, then min / median / max of the enqueue and processing
# rates, and how many runs an AOF rewrite or RDB save overlapped (a forked child sharing the
# cores: the slow mode of this machine, docs/benchmarks.md).
#   scripts/bench-series.sh [RUNS] [JOBS] [extra bench-queue arguments…]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
jobs=${2:-200000}
shift $(( $# > 2 ? 2 : $# ))

scripts/services.sh up >/dev/null
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
cargo build --release -q -p tsp-bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq 1 "$runs"); do
  target/release/tsp-bench "${LOCAL_SETS[@]}" queue --jobs "$jobs" --records off "$@" 2>/dev/null | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def forks(r):
    c = r.get("cpu", {})
    return sum(c.get(phase, {}).get("redis_background_forks", 0) for phase in ("enqueue", "process"))
def summary(key, rows):
    v = sorted(r[key] for r in rows)
    return f"min {v[0]:.0f}  median {statistics.median(v):.0f}  max {v[-1]:.0f}" if v else "none"
quiet = [r for r in rs if forks(r) == 0]
print(json.dumps({
    "runs": len(rs),
    "overlapped_by_a_fork": len(rs) - len(quiet),
    "process_per_s": summary("process_per_s", rs),
    "process_per_s_without_a_fork": summary("process_per_s", quiet),
    "enqueue_per_s": summary("enqueue_per_s", rs),
}))
PY
