#!/usr/bin/env bash
# Disaster-recovery drill (docs/backup.md#disaster-recovery-drill), on a separate set of local
# services (ports +10000, data under .data/drill) so that it can destroy them:
#
#   1. start the services, migrate, run the main job (`simulate`) in the background;
#   2. take a backup set once a quarter of the trips are done, and keep the job running;
#   3. crash: SIGKILL the job and every server, delete their data directories (the MySQL binary
#      log, the Redis append-only file and the backup sets are kept, as an operator keeps them
#      off the data disk);
#   4. start the servers (Redis from its append-only file, the others empty), restore the set
#      into MySQL, MongoDB and InfluxDB, replay the binary log to the moment of the crash, run
#      again the jobs completed since the set (their MongoDB and InfluxDB writes were rolled
#      back), start a worker, wait for health and for the queue to drain;
#   5. print one JSON report: RTO, what each store lost (RPO), and the invariant over the
#      recovered data (each completed trip whole: row, earn, trajectory; balances = trip points).
#
#   scripts/dr-drill.sh [TRIPS]     default 10000 (DRILL_CONCURRENCY: trips at once, default 8)
#
# DRILL_REDIS=snapshot loses the append-only file with the rest: Redis comes back from the set's
# snapshot, and the jobs it completed since then run again from there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TRIPS=${1:-10000}
# Trips in flight in the main job (DRILL_CONCURRENCY): fewer make a small drill last long
# enough to take a backup in the middle of it.
CONCURRENCY=${DRILL_CONCURRENCY:-8}
REDIS_FROM=${DRILL_REDIS:-aof}
case "$REDIS_FROM" in aof|snapshot) ;; *) echo "DRILL_REDIS: aof or snapshot, not '$REDIS_FROM'" >&2; exit 2 ;; esac

export TSP_LOCAL_DATA="$ROOT/.data/drill"
export TSP_LOCAL_MYSQL_PORT=13306 TSP_LOCAL_REDIS_PORT=16379 TSP_LOCAL_MONGO_PORT=27117
export TSP_LOCAL_INFLUX_PORT=18086 TSP_LOCAL_INFLUX_RPC_PORT=18088
D=$TSP_LOCAL_DATA
SETS="$D/backups"
BIN=${TSP_JOB:-$ROOT/target/release/tsp-job}

# shellcheck source=scripts/local-ports.sh
. "$ROOT/scripts/local-ports.sh"
sets=("${LOCAL_SETS[@]}" --set "backup.dir=$SETS")
tsp() { "$BIN" "${sets[@]}" "$@"; }
log() { printf '[drill] %s\n' "$*" >&2; }
now() { date +%s.%N; }
sql() { mariadb --socket="$D/mysql.sock" -uroot -N -e "$1"; }
completed() { sql "SELECT COUNT(*) FROM tsp_dataset.trips WHERE status = 'completed'" 2>/dev/null || echo 0; }

# Counts of every store, as JSON (Mongo and Influx through Python, which the services use).
counts() {
  TRIPS_DONE=$(completed) EARNS=$(sql "SELECT COUNT(*) FROM tsp_incentive.points_transactions WHERE transaction_type = 'earn'") \
  QUEUE=$(tsp jobs stats --json 2>/dev/null || echo '[]') \
  "$ROOT/.venv/bin/python" - "$TSP_LOCAL_MONGO_PORT" "$TSP_LOCAL_INFLUX_PORT" <<'EOF'
import json, os, sys, urllib.parse, urllib.request
import pymongo
mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true")
q = urllib.parse.urlencode({"db": "tsp", "q": "SELECT COUNT(points) FROM trip_bookings"})
r = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/query?{q}"))
points = r["results"][0].get("series", [{"values": [[0, 0]]}])[0]["values"][0][1]
queues = {q["queue"]: q for q in json.loads(os.environ["QUEUE"] or "[]") if isinstance(q, dict)}
trips = queues.get("trips", {})
print(json.dumps({
    "completed_trips": int(os.environ["TRIPS_DONE"]),
    "earn_transactions": int(os.environ["EARNS"]),
    "trajectories": mongo["tsp_dataset"]["trip_trajectories"].count_documents({}),
    "trip_bookings_points": points,
    "jobs_done": trips.get("completed", 0),
    "jobs_open": sum(trips.get(k, 0) for k in ("waiting", "delayed", "active")),
    "jobs_dead": trips.get("dead", 0),
}))
EOF
}

# The invariant over the recovered stores: completed trips = earns = trajectories, and each
# user's earn sum = the points on their completed trips rows.
invariant() {
  sql "SELECT trip_id FROM tsp_dataset.trips WHERE status = 'completed'" >"$D/ids.trips"
  sql "SELECT reference_id FROM tsp_incentive.points_transactions WHERE transaction_type = 'earn'" >"$D/ids.earns"
  BALANCE_MISMATCH=$(sql "SELECT COUNT(*) FROM (SELECT user_id, SUM(points) s FROM tsp_incentive.points_transactions GROUP BY user_id) b
      LEFT JOIN (SELECT user_id, SUM(points) s FROM tsp_dataset.trips WHERE status = 'completed' GROUP BY user_id) t
      ON t.user_id = b.user_id WHERE t.s IS NULL OR t.s <> b.s") \
  "$ROOT/.venv/bin/python" - "$TSP_LOCAL_MONGO_PORT" "$D" <<'EOF'
import json, os, sys
import pymongo
d = sys.argv[2]
trips = set(open(f"{d}/ids.trips").read().split())
earns = open(f"{d}/ids.earns").read().split()
mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true")
traj = [x["tripId"] for x in mongo["tsp_dataset"]["trip_trajectories"].find({}, {"tripId": 1})]
print(json.dumps({
    "completed_trips": len(trips),
    "trips_without_earn": len(trips - set(earns)),
    "earns_without_trip": len(set(earns) - trips),
    "duplicate_earns": len(earns) - len(set(earns)),
    "trips_without_trajectory": len(trips - set(traj)),
    "trajectories_without_trip": len(set(traj) - trips),
    "users_whose_balance_differs": int(os.environ["BALANCE_MISMATCH"]),
    "holds": trips == set(earns) == set(traj) and len(earns) == len(set(earns))
             and int(os.environ["BALANCE_MISMATCH"]) == 0,
}))
EOF
}

wait_until() { # SECONDS DESCRIPTION COMMAND...: poll COMMAND (a condition on live state)
  local deadline=$(( SECONDS + $1 )) what=$2; shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { log "gave up waiting for $what"; return 1; }
    sleep 0.2
  done
}

JOB= WORKER=
trap 'kill -9 $JOB $WORKER 2>/dev/null || true' EXIT
# A fresh start: nothing left from an earlier drill.
scripts/services.sh kill >/dev/null 2>&1 || true
rm -rf "$D"
[ -x "$BIN" ] || cargo build --release -p tsp-server
scripts/services.sh up >&2
tsp migrate >&2

log "main job: $TRIPS trips"
# The binary itself in the background (not through `tsp`, a function: its subshell's pid would
# be the one killed).
"$BIN" "${sets[@]}" simulate --trips "$TRIPS" --concurrency "$CONCURRENCY" >"$D/simulate.log" 2>&1 &
JOB=$!
wait_until 600 "a quarter of the trips" bash -c "[ \$(mariadb --socket='$D/mysql.sock' -uroot -N -e \"SELECT COUNT(*) FROM tsp_dataset.trips WHERE status='completed'\" 2>/dev/null || echo 0) -ge $((TRIPS / 4)) ]"
log "backup while trips flow"
t0=$(now)
read -r SET SET_STARTED < <(tsp backup create --json 2>/dev/null | "$ROOT/.venv/bin/python" -c 'import json,sys; m = json.load(sys.stdin); print(m["id"], m["started_at"])')
t1=$(now)
at_backup=$(completed)
# The crash comes halfway between the backup and the end of the job, so work is done after the
# backup and work is left for the recovery.
crash_at=$(( at_backup + (TRIPS - at_backup + 1) / 2 ))
[ "$at_backup" -lt "$TRIPS" ] || { log "the job finished during the backup: use more trips"; exit 1; }
wait_until 600 "$crash_at completed trips" bash -c "! kill -0 $JOB 2>/dev/null || [ \$(mariadb --socket='$D/mysql.sock' -uroot -N -e \"SELECT COUNT(*) FROM tsp_dataset.trips WHERE status='completed'\") -ge $crash_at ]"

log "crash"
kill -9 $JOB 2>/dev/null || true
t_crash=$(now)
wait $JOB 2>/dev/null || true
# The binary log stamps events to the second and --until excludes its own second: recover to
# the next whole second, which no write can have reached (the job is dead).
CRASH=$(date -u -d "@$(( $(date +%s) + 1 ))" +%Y-%m-%dT%H:%M:%SZ)
before=$(counts)
scripts/services.sh kill >&2
rm -rf "$D/mysql" "$D/redis" "$D/mongo" "$D/influx"
[ "$REDIS_FROM" = aof ] || rm -rf "$D/redis-aof"

log "recover: servers up (Redis from its $REDIS_FROM), restore $SET, replay the binary log to $CRASH"
t_up=$(now)
scripts/services.sh up >&2
t_restore=$(now)
restore_rc=0 rerun=0
stores=mysql,redis,mongo,influx
[ "$REDIS_FROM" = aof ] && stores=mysql,mongo,influx
tsp restore "$SET" --stores "$stores" --until "$CRASH" >&2 || restore_rc=$?
# The drill's own count of what the restore brought back is not part of recovery: it is timed and
# left out of the RTO.
t_count=$(now)
restored=$(counts)
t_counted=$(now)
if [ "$REDIS_FROM" = aof ]; then
  # The queue kept every completion, but MongoDB and InfluxDB went back to the set: the jobs
  # completed since it began run again (idempotent). Ten seconds before its start, because a
  # job acknowledges once its point is buffered, and the writer sends it within a flush interval
  # (1 s) or, after a refusal, its first retries (docs/backup.md#redis-kept-by-its-append-only-file).
  since=$(date -u -d "@$(( $(date -d "$SET_STARTED" +%s) - 10 ))" +%Y-%m-%dT%H:%M:%SZ)
  rerun=$(tsp jobs rerun --queue trips --completed-since "$since" | sed -E 's/^[^:]*: ([0-9]+) .*/\1/')
fi
# The worker as an operator starts it: the configured concurrency (queue.concurrency).
"$BIN" "${sets[@]}" worker --queue trips >"$D/worker.log" 2>&1 &
WORKER=$!
# Drained is a question for the queue alone: counting every store five times a second would load
# the document store the worker is waiting on.
open_jobs() {
  tsp jobs stats --json 2>/dev/null | "$ROOT/.venv/bin/python" -c '
import json, sys
trips = {q["queue"]: q for q in json.load(sys.stdin)}.get("trips", {})
sys.exit(0 if trips and sum(trips.get(k, 0) for k in ("waiting", "delayed", "active")) == 0 else 1)'
}
wait_until 600 "the queue to drain" open_jobs
tsp health >/dev/null
t_done=$(now)
kill -TERM $WORKER; wait $WORKER || true
after=$(counts)
inv=$(invariant)

"$ROOT/.venv/bin/python" - <<EOF
import json
before, restored, after, inv = json.loads('$before'), json.loads('$restored'), json.loads('$after'), json.loads('$inv')
rolled_back = before["jobs_done"] - restored["jobs_done"]
counting = $t_counted - $t_count
rate = (before["jobs_done"] - $at_backup) / max($t_crash - $t1, 0.001)
print(json.dumps({
    "drill": "disaster recovery",
    "trips": $TRIPS,
    "set": "$SET",
    "redis_from": "$REDIS_FROM",
    "jobs_rerun": int("$rerun" or 0),
    "backup_s": round($t1 - $t0, 1),
    "restore_exit_code": $restore_rc,
    "completed_at_backup": $at_backup,
    "crash_at": "$CRASH",
    "servers_start_s": round($t_restore - $t_up, 1),
    "rto_s": round($t_done - $t_restore - counting, 1),
    "drill_counting_s": round(counting, 1),
    "before_crash": before,
    "after_restore": restored,
    "after_recovery": after,
    "rpo": {
        "mysql_completed_trips_lost": before["completed_trips"] - restored["completed_trips"],
        "mysql_earns_lost": before["earn_transactions"] - restored["earn_transactions"],
        "redis_completions_rolled_back": rolled_back,
        # The same in seconds of the job's work: over its completion rate from the backup on.
        "redis_rpo_s": round(rolled_back / rate, 2) if rate > 0 else 0.0,
        "redis_jobs_lost": (before["jobs_done"] + before["jobs_open"] + before["jobs_dead"])
                           - (restored["jobs_done"] + restored["jobs_open"] + restored["jobs_dead"]),
        "mongo_trajectories_lost_until_rerun": before["trajectories"] - restored["trajectories"],
        # Points written between the backup and the crash; jobs that run again write theirs again.
        "influx_points_lost": before["trip_bookings_points"] - restored["trip_bookings_points"],
    },
    "invariant": inv,
}))
EOF
scripts/services.sh kill >/dev/null 2>&1 || true
