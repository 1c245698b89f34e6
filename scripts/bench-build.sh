#!/usr/bin/env bash
# How long a fresh build of tsp-job takes and how big it is (docs/benchmarks.md#build): each
# build in a target folder of its own, empty at the start, one after another on an otherwise idle
# machine. With a revision, that revision's release build is measured first, from a worktree,
# so both sides come from one sitting.
#
#   scripts/bench-build.sh [BEFORE_REVISION]
# Prints one JSON line per build: profile, features, revision, seconds, bytes, and from cargo's
# --timings report: when the last dependency finished (a floor for any change to our own code)
# and each workspace crate's start and duration. The reports stay in target/bench-build/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=$ROOT/target/bench-build
rm -rf "$WORK" && mkdir -p "$WORK"

# build LABEL DIR PROFILE FEATURES: one fresh build of tsp-job in DIR.
build() {
  local label=$1 dir=$2 profile=$3 features=$4 out=$WORK/$1 start end
  local args=(--locked --profile "$profile" -p tsp-server --bin tsp-job --timings)
  [ -n "$features" ] && args+=(--features "$features")
  start=$(date +%s.%N)
  (cd "$dir" && CARGO_TARGET_DIR=$out cargo build "${args[@]}" >"$WORK/$label.log" 2>&1) \
    || { echo "$label failed; see $WORK/$label.log" >&2; exit 1; }
  end=$(date +%s.%N)
  cp "$out/cargo-timings/cargo-timing.html" "$WORK/$label-timing.html"
  printf '{"build":"%s","revision":"%s","profile":"%s","features":"%s","seconds":%.1f,"bytes":%s,%s}\n' \
    "$label" "$(git -C "$dir" rev-parse --short=12 HEAD)" "$profile" "${features:-none}" \
    "$(echo "$end - $start" | bc)" "$(stat -c %s "$out/$profile/tsp-job")" \
    "$(timing_summary "$WORK/$label-timing.html")"
  rm -rf "$out"
}

# timing_summary REPORT: from cargo's timing report (its UNIT_DATA table), when the last
# dependency finished and when each workspace crate (tsp-*) started and how long it took.
timing_summary() {
  python3 - "$1" <<'PY'
import json, re, sys
html = open(sys.argv[1], encoding="utf-8").read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);", html, re.S).group(1))
ours = [u for u in units if u["name"].startswith("tsp-")]
deps_done = max(u["start"] + u["duration"] for u in units if not u["name"].startswith("tsp-"))
crates = {f'{u["name"]} {u["target"].strip() or "lib"}': [round(u["start"], 1), round(u["duration"], 1)]
          for u in ours if u["mode"] != "run-custom-build"}
print(f'"dependencies_done":{deps_done:.1f},"workspace":{json.dumps(crates, separators=(",", ":"))}', end="")
PY
}

if [ $# -gt 0 ]; then
  git worktree add --detach -f "$WORK/before-src" "$1" >/dev/null 2>&1
  build before-release "$WORK/before-src" release ""
  git worktree remove --force "$WORK/before-src"
fi
build release "$ROOT" release ""
build dist "$ROOT" dist ""
