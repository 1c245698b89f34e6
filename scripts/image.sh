#!/usr/bin/env bash
# The container image, built and checked offline (docs/deploy.md#image).
#
#   scripts/image.sh build   make a Debian base with mmdebstrap (once), build tsp-job with the dist
#                            profile on the host, and build localhost/tsp-job from the Containerfile
#   scripts/image.sh check   build, then run the image against the local stores: serve and worker
#                            ready, the main job inside a container, a stop mid-work that loses
#                            nothing, non-root, read-only root (scripts/image-check.sh)
#
# Podman (docker where podman is missing). Facts of the Debian machines this runs on: crun refuses
# their hybrid cgroups, so the runtime is runc; the default rlimits are refused, so none are set;
# the stores listen on loopback, so containers share the host's network. This script keeps those
# settings in its own containers.conf (CONTAINERS_CONF) instead of changing /etc.
#
# TSP_IMAGE_PROFILE=release builds the binary with the release profile instead (faster to make,
# larger); TSP_IMAGE_TAG names the image (default localhost/tsp-job:<version>).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VERB=${1:-build}
PROFILE=${TSP_IMAGE_PROFILE:-dist}
SUITE=bookworm
BASE=localhost/tsp-job-base:$SUITE
# The runtime's packages: CA certificates, and what backup and restore run (docs/backup.md).
PACKAGES=ca-certificates,mariadb-client,redis-server,influxdb
D=$ROOT/.data/image

log() { printf '[image] %s\n' "$*"; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

setup_engine() {
  mkdir -p "$D"
  if command -v podman >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 \
      || ! docker info >/dev/null 2>&1; then
    local pkgs=()
    command -v podman >/dev/null 2>&1 || pkgs+=(podman)
    command -v runc >/dev/null 2>&1 || pkgs+=(runc)
    command -v mmdebstrap >/dev/null 2>&1 || pkgs+=(mmdebstrap)
    if [ ${#pkgs[@]} -gt 0 ]; then
      log "installing ${pkgs[*]} (apt)"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >"$D/apt.log" 2>&1 \
        || die "apt-get install failed; see $D/apt.log"
    fi
    cat >"$D/containers.conf" <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$D/containers.conf
    ENGINE=podman
  else
    ENGINE=docker
  fi
}

make_base() {
  if $ENGINE image inspect "$BASE" >/dev/null 2>&1; then return 0; fi
  command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is needed to make $BASE"
  log "making $BASE from Debian packages (mmdebstrap, once)"
  # /var/lib/apt/lists and caches are left out: the image never runs apt.
  as_root mmdebstrap --variant=minbase --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$D/base.tar" >"$D/mmdebstrap.log" 2>&1 || die "mmdebstrap failed; see $D/mmdebstrap.log"
  $ENGINE import "$D/base.tar" "$BASE" >/dev/null
  rm -f "$D/base.tar"
}

build_image() {
  local version revision created
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  created=$(date -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%dT%H:%M:%SZ)
  TAG=${TSP_IMAGE_TAG:-localhost/tsp-job:$version}
  log "building tsp-job (cargo --profile $PROFILE --features mongodb-srv)"
  cargo build --locked --profile "$PROFILE" -p tsp-server --bin tsp-job --features mongodb-srv
  log "target/$PROFILE/tsp-job: $(stat -c %s "target/$PROFILE/tsp-job" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
  log "building $TAG"
  # Docker's image format: podman's default, OCI, has no HEALTHCHECK.
  local format=()
  [ "$ENGINE" = podman ] && format=(--format docker)
  $ENGINE build "${format[@]}" --network host -f Containerfile -t "$TAG" -t localhost/tsp-job:latest \
    --build-arg BINARY=prebuilt --build-arg PREBUILT="target/$PROFILE/tsp-job" \
    --build-arg BASE="$BASE" --build-arg PACKAGES= \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
    --build-arg SOURCE="$(git remote get-url origin 2>/dev/null || echo unknown)" . >"$D/build.log" 2>&1 \
    || die "image build failed; see $D/build.log"
  log "$TAG: $($ENGINE image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
}

setup_engine
case "$VERB" in
  build) make_base; build_image ;;
  check) make_base; build_image; ENGINE=$ENGINE TAG=$TAG exec "$ROOT/scripts/image-check.sh" ;;
  *) echo "usage: $0 build|check" >&2; exit 2 ;;
esac
