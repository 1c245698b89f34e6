#!/usr/bin/env bash
# Checks the monitoring files offline (docs/metrics.md#alerts), run by scripts/test.sh:
#  - deploy/prometheus/alerts.yml passes `promtool check rules`, and its unit tests
#    (deploy/prometheus/tests/*.yml) pass `promtool test rules`;
#  - deploy/prometheus/prometheus.yml passes `promtool check config` (its secret paths moved to
#    stand-ins);
#  - deploy/grafana/tsp-job.json is a dashboard whose every panel has a PromQL query (the queries
#    themselves run against a real Prometheus in the `monitoring` integration test).
# Each check is first shown to fail on a broken input, so a check that passes everything is caught.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '[monitoring-check] %s\n' "$*"; }
die() { printf '[monitoring-check] error: %s\n' "$*" >&2; exit 1; }

command -v promtool >/dev/null 2>&1 || die "promtool is needed: scripts/services.sh up --monitoring installs it"

# rules DIR: the rules and their tests in DIR pass.
rules() {
  promtool check rules "$1/alerts.yml" >"$WORK/rules.log" 2>&1 && promtool test rules "$1"/tests/*.yml >>"$WORK/rules.log" 2>&1
}

# config FILE: the scrape configuration, with stand-ins for the files it names.
config() {
  sed -e "s#/etc/prometheus/secrets/#$WORK/#" -e "s#/etc/prometheus/#$WORK/#" "$1" >"$WORK/prometheus.yml"
  echo stand-in >"$WORK/tsp-job-metrics-token"
  cp deploy/prometheus/alerts.yml "$WORK/"
  promtool check config "$WORK/prometheus.yml" >"$WORK/config.log" 2>&1
}

# dashboard FILE: JSON, with panels, each with at least one target and every target a query.
dashboard() {
  python3 - "$1" <<'PY' >"$WORK/dashboard.log" 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
panels = [p for p in d["panels"] if p.get("type") != "row"]
assert panels, "no panels"
for p in panels:
    targets = p.get("targets") or []
    assert targets, f"panel {p.get('title')!r} has no query"
    for t in targets:
        assert t.get("expr", "").strip(), f"panel {p.get('title')!r} has an empty query"
print(f"{len(panels)} panels")
PY
}

# First on broken inputs: each check must refuse them.
cp -r deploy/prometheus "$WORK/broken"
sed -i 's/tsp_queue_oldest_waiting_seconds > 300/tsp_queue_oldest_waiting_seconds > 30/' "$WORK/broken/alerts.yml"
if rules "$WORK/broken"; then die "promtool test rules passed an alert whose bound changed"; fi
sed -i 's/== 0$/== = 0/' "$WORK/broken/alerts.yml"
if promtool check rules "$WORK/broken/alerts.yml" >/dev/null 2>&1; then die "promtool check rules passed a broken expression"; fi
sed 's/scrape_interval: 15s/scrape_interval: 15 seconds/' deploy/prometheus/prometheus.yml >"$WORK/broken.yml"
if config "$WORK/broken.yml"; then die "promtool check config passed a broken configuration"; fi
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["panels"][-1]["targets"]=[]; json.dump(d,open(sys.argv[2],"w"))' \
  deploy/grafana/tsp-job.json "$WORK/broken.json"
if dashboard "$WORK/broken.json"; then die "the dashboard check passed a panel without a query"; fi

rules deploy/prometheus || die "the alert rules: $(cat "$WORK/rules.log")"
log "alerts.yml: $(grep -c '^      - alert:' deploy/prometheus/alerts.yml) rules checked and unit-tested"
config deploy/prometheus/prometheus.yml || die "prometheus.yml: $(cat "$WORK/config.log")"
log "prometheus.yml: accepted"
dashboard deploy/grafana/tsp-job.json || die "the dashboard: $(cat "$WORK/dashboard.log")"
log "tsp-job.json: $(cat "$WORK/dashboard.log")"
