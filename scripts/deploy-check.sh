#!/usr/bin/env bash
# Checks the deployment files offline (docs/deploy.md), run by scripts/test.sh:
#  - every Kubernetes overlay renders (`kubectl kustomize`) and every rendered object validates
#    against the Kubernetes schemas (`kubernetes-validate --strict`, into .venv);
#  - each overlay's local.toml is a configuration tsp-job accepts (`config check`, with the
#    image's default.toml and production.toml and stand-ins for the mounted secret files);
#  - the systemd units pass `systemd-analyze verify` without a single complaint.
# Each check is first shown to fail on a broken input, so a check that passes everything is caught.
#
#   scripts/deploy-check.sh [path/to/tsp-job]   (default target/debug/tsp-job, built if missing)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${1:-$ROOT/target/debug/tsp-job}
K8S_VERSION=1.30.0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { printf '[deploy-check] %s\n' "$*"; }
die() { printf '[deploy-check] error: %s\n' "$*" >&2; exit 1; }

command -v kubectl >/dev/null 2>&1 || die "kubectl is needed (apt-get install kubectl)"
command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze is needed (apt-get install systemd)"
if [ ! -x .venv/bin/kubernetes-validate ]; then
  log "installing kubernetes-validate into .venv (pip, once)"
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q kubernetes-validate >"$WORK/pip.log" 2>&1 || die "pip failed: $(cat "$WORK/pip.log")"
fi
# --workspace: the features of the test build, so no dependency is built a second time.
[ -x "$BIN" ] || cargo build --quiet --workspace --bins
BIN=$(realpath "$BIN")  # the units' ExecStart must be absolute

# validate FILE: every object in FILE passes strict schema validation.
validate() {
  .venv/bin/kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$1" >"$WORK/validate.log" 2>&1
}

# config_check OVERLAY_YAML: the ConfigMap's local.toml, with the image's files beside it.
config_check() {
  local dir=$WORK/etc secrets=$WORK/run-secrets
  rm -rf "$dir" "$secrets" && mkdir -p "$dir" "$secrets/tsp-job" "$secrets/tsp-job-ca"
  cp config/default.toml config/production.toml "$dir/"
  .venv/bin/python - "$1" "$dir/local.toml" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("tsp-job-config"):
        open(sys.argv[2], "w").write(doc["data"]["local.toml"])
        break
else:
    sys.exit("no tsp-job-config ConfigMap")
EOF
  # The paths the pods mount, moved under $WORK, with a stand-in for each file they name.
  sed -i "s#/run/secrets/#$secrets/#g" "$dir/local.toml"
  grep -o "$secrets/[a-z/.-]*" "$dir/local.toml" | sort -u | while read -r f; do echo "stand-in" >"$f"; done
  TSP_ENV=production "$BIN" --config-dir "$dir" config check >"$WORK/config.log" 2>&1
}

check_overlay() {
  local overlay=$1 out=$WORK/$(basename "$1").yaml
  kubectl kustomize "$overlay" >"$out" || die "$overlay does not render"
  validate "$out" || die "$overlay: $(cat "$WORK/validate.log")"
  config_check "$out" || die "$overlay/local.toml: $(cat "$WORK/config.log")"
  log "$overlay: $(grep -c '^kind:' "$out") objects render and validate; its configuration is accepted"
}

# The checks catch what they are for.
printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: "two", selector: {}, template: {}}\n' >"$WORK/broken.yaml"
validate "$WORK/broken.yaml" && die "kubernetes-validate accepted a Deployment with replicas: \"two\""
mkdir -p "$WORK/typo" && cp config/default.toml config/production.toml "$WORK/typo/"
printf '[mysql.portal]\nhots = "mariadb"\n' >"$WORK/typo/local.toml"
TSP_ENV=production "$BIN" --config-dir "$WORK/typo" config check >/dev/null 2>&1 \
  && die "config check accepted mysql.portal.hots"

for overlay in deploy/kubernetes/overlays/*/; do check_overlay "${overlay%/}"; done

# systemd: the units as installed, with ExecStart pointing at this build's binary.
mkdir -p "$WORK/units"
for unit in deploy/systemd/*.service; do
  sed "s#/usr/bin/tsp-job#$BIN#" "$unit" >"$WORK/units/$(basename "$unit")"
done
# Its exit status says little (0 with warnings); what it prints is the verdict.
verify() { (cd "$WORK/units" && systemd-analyze verify --man=no "$@" 2>&1) || true; }
cp "$WORK/units/tsp-job-serve.service" "$WORK/units/broken.service"
sed -i 's/^Restart=on-failure/Restart=sometimes/' "$WORK/units/broken.service"
[ -n "$(verify broken.service)" ] || die "systemd-analyze verify found nothing wrong with Restart=sometimes"
rm "$WORK/units/broken.service"
complaints=$(verify tsp-job-serve.service tsp-job-worker@trips.service tsp-job-migrate.service)
[ -z "$complaints" ] || die "systemd-analyze verify: $complaints"
log "deploy/systemd: 3 units verify without complaint"
