#!/usr/bin/env bash
# The image against the local stores (docs/deploy.md#image); run by `scripts/image.sh check`,
# which sets ENGINE (podman or docker) and TAG. Every container runs with a read-only root, as
# the tsp-job user, its configuration only from /etc/tsp-job, variables and mounted secret files.
#
#  1. the image's user, stop signal, health check and labels are what the Containerfile says;
#  2. migrate, then serve and a worker answer /health/ready and pass the image's health check;
#  3. 2 000 jobs of a second each, the worker stopped (SIGTERM) mid-queue: exit 0 within the grace period, and
#     a second worker finishes the rest: every job ran exactly once;
#  4. the main job, `simulate --trips 500`, inside a container.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
: "${ENGINE:?set by scripts/image.sh}" "${TAG:?set by scripts/image.sh}"
PREFIX="tsp-image-$$:"
QUEUE=image-drill
JOBS=2000
SERVE_PORT=${TSP_IMAGE_SERVE_PORT:-18080}
PROBE_PORT=${TSP_IMAGE_PROBE_PORT:-19100}
WORK=$(mktemp -d)
NAMES=()
cleanup() {
  for n in "${NAMES[@]}"; do $ENGINE rm -f "$n" >/dev/null 2>&1 || true; done
  redis-cli -p "$LOCAL_REDIS_PORT" --scan --pattern "${PREFIX}*" | xargs -r redis-cli -p "$LOCAL_REDIS_PORT" del >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '[image-check] %s\n' "$*"; }
die() { printf '[image-check] error: %s\n' "$*" >&2; exit 1; }

# The local development stores, seen from the production profile: loopback hosts, the
# development MariaDB account, its password from a mounted file.
mkdir -p "$WORK/secrets"
printf 'tsp-local-dev\n' >"$WORK/secrets/mysql-app"
chmod 0755 "$WORK" "$WORK/secrets" && chmod 0444 "$WORK/secrets/mysql-app"
{
  printf '[redis.cache]\nport = %s\nkey_prefix = "%s"\n' "$LOCAL_REDIS_PORT" "$PREFIX"
  for i in portal dataset gtfs incentive; do printf '[mysql.%s]\nport = %s\n' "$i" "$LOCAL_MYSQL_PORT"; done
  for i in cache dataset; do printf '[mongo.%s]\nport = %s\n' "$i" "$LOCAL_MONGO_PORT"; done
  for i in primary uis; do printf '[influx.%s]\nurl = "http://127.0.0.1:%s"\n' "$i" "$LOCAL_INFLUX_PORT"; done
} >"$WORK/local.toml"
chmod 0444 "$WORK/local.toml"
ENVS=()
for i in PORTAL DATASET GTFS INCENTIVE; do ENVS+=(-e "MYSQL_${i}_PASSWORD_FILE=/run/secrets/tsp-job/mysql-app"); done

# in_container ARGS...: a tsp-job command in a fresh container, as deployed.
# Podman runs the image's periodic health check from a systemd timer, which a machine without
# systemd as init cannot give (it says so on every start): one-off commands run without the
# check, and serve and the worker have theirs run by `podman healthcheck run` below.
ONE_OFF=(--no-healthcheck)
[ "$ENGINE" = podman ] || ONE_OFF=()
run_opts() {
  echo --network host --read-only --security-opt no-new-privileges --cap-drop ALL \
    -v "$WORK/local.toml:/etc/tsp-job/local.toml:ro" -v "$WORK/secrets:/run/secrets/tsp-job:ro"
}
in_container() {
  # shellcheck disable=SC2046
  $ENGINE run --rm $(run_opts) "${ONE_OFF[@]}" "${ENVS[@]}" "$TAG" "$@"
}
start() {
  local name=$1; shift
  NAMES+=("$name")
  # shellcheck disable=SC2046
  $ENGINE run -d --name "$name" $(run_opts) "${ENVS[@]}" "$@" >/dev/null
}
ready() { curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null; }
wait_until() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "$what: not within ${secs}s"
    sleep 0.5
  done
}
marks() { redis-cli -p "$LOCAL_REDIS_PORT" "$@"; }

# 1. What the image declares.
inspect() { $ENGINE image inspect --format "$1" "$TAG"; }
[ "$(inspect '{{.Config.User}}')" = "10001:10001" ] || die "the image's user is $(inspect '{{.Config.User}}')"
[ "$(inspect '{{.Config.StopSignal}}')" = "SIGTERM" ] || die "stop signal $(inspect '{{.Config.StopSignal}}')"
inspect '{{json .Config.Healthcheck}}' | grep -q '"tsp-job","probe"' || die "no health check by the binary"
inspect '{{index .Config.Labels "org.opencontainers.image.revision"}}' | grep -qv '^unknown$' \
  || die "no revision label"
[ "$($ENGINE run --rm --read-only "${ONE_OFF[@]}" --entrypoint id "$TAG" -u)" = 10001 ] \
  || die "the process is root"
$ENGINE run --rm --read-only "${ONE_OFF[@]}" --entrypoint sh "$TAG" -c 'touch /usr/bin/x' 2>/dev/null \
  && die "the root filesystem is writable"
in_container version | head -1
log "user 10001, SIGTERM, health check by the binary, labels; the root filesystem is read-only"

# 2. migrate, serve, worker.
in_container migrate >/dev/null
start serve -e TSP__SERVER__LISTEN="127.0.0.1:$SERVE_PORT" \
  -e TSP_PROBE_URL="http://127.0.0.1:$SERVE_PORT/health/live" "$TAG" serve
# 64 jobs at a time, a second each: the queue outlasts the first worker by far.
start worker -e TSP_PROBE_URL="http://127.0.0.1:$PROBE_PORT/health/live" \
  "$TAG" worker --queue "$QUEUE" --concurrency 64 --listen "127.0.0.1:$PROBE_PORT"
wait_until "serve ready" 60 ready "$SERVE_PORT"
wait_until "worker ready" 60 ready "$PROBE_PORT"
if [ "$ENGINE" = podman ]; then
  $ENGINE healthcheck run serve || die "serve fails the image's health check"
  $ENGINE healthcheck run worker || die "the worker fails the image's health check"
fi
log "serve and worker ready; both pass the health check"

# 3. A stop mid-queue loses nothing.
in_container enqueue builtin.mark --queue "$QUEUE" --count "$JOBS" \
  --payload "{\"set\": \"$QUEUE\", \"ms\": 1000}" >/dev/null
some_done() { [ "$(marks hlen "${PREFIX}marks:$QUEUE")" -gt 0 ]; }
wait_until "first marks" 60 some_done
started=$SECONDS
$ENGINE stop -t 60 worker >/dev/null
took=$((SECONDS - started))
code=$($ENGINE inspect --format '{{.State.ExitCode}}' worker)
done_at_stop=$(marks hlen "${PREFIX}marks:$QUEUE")
[ "$code" = 0 ] || die "the stopped worker exited with $code: $($ENGINE logs --tail 20 worker 2>&1)"
[ "$done_at_stop" -lt "$JOBS" ] || die "the queue drained before the stop; nothing was shown"
log "worker stopped in ${took}s with exit code 0, $done_at_stop of $JOBS jobs done"
$ENGINE rm worker >/dev/null
start worker2 "$TAG" worker --queue "$QUEUE" --listen "127.0.0.1:$PROBE_PORT"
all_done() { [ "$(marks hlen "${PREFIX}marks:$QUEUE")" -ge "$JOBS" ]; }
wait_until "all $JOBS jobs" 120 all_done
counts=$(marks hvals "${PREFIX}marks:$QUEUE" | sort | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')
[ "$counts" = "$JOBS×1 " ] || die "runs per job: $counts (want $JOBS×1)"
$ENGINE stop -t 60 worker2 serve >/dev/null
for n in worker2 serve; do
  code=$($ENGINE inspect --format '{{.State.ExitCode}}' "$n")
  [ "$code" = 0 ] || die "$n exited with $code"
done
log "a second worker finished the rest: each of the $JOBS jobs ran once; serve stopped with 0"

# 4. The main job.
# The default seed: the same 500 trips each time, so a failure can be replayed.
summary=$(in_container simulate --trips 500 --users 50 --json) \
  || die "simulate in a container failed: $(echo "$summary" | tail -c 2000)"
echo "$summary" | .venv/bin/python -c '
import json, sys
s = json.load(sys.stdin)["summary"]
done = {k: s[k] for k in ("trips", "completed", "failed")}
assert done == {"trips": 500, "completed": 500, "failed": 0}, done
print("[image-check] simulate --trips 500 in a container:", done)'
log "image $TAG: $($ENGINE image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
