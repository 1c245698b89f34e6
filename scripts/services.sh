#!/usr/bin/env bash
# Local services for tsp-job: MariaDB (MySQL), Redis, InfluxDB 1.x and SecantusDB (MongoDB wire protocol).
#
#   scripts/services.sh up       install what is missing, start everything, create databases and users
#   scripts/services.sh down     stop what this script started
#   scripts/services.sh status   show what answers where
#   scripts/services.sh kill     SIGKILL every server (no clean shutdown: a crash, for drills)
#   scripts/services.sh up --browser   also install Chromium and its WebDriver (console tests)
#   scripts/services.sh up --monitoring   also Prometheus on 127.0.0.1:9090
#                                 (TSP_LOCAL_PROMETHEUS_PORT), scraping `serve` on 127.0.0.1:8080
#                                 and the workers listed in .data/prometheus/workers/*.json, with
#                                 deploy/prometheus/alerts.yml loaded (docs/metrics.md#prometheus)
#   scripts/services.sh up --cluster   also a Redis Cluster of 3 primaries and 3 replicas on
#                                 ports 7001-7006 (TSP_LOCAL_CLUSTER_PORT for the first), AOF on
#   scripts/services.sh up --secure    a second, separate set as production runs them: TLS only,
#                                 authentication, least-privilege accounts, MariaDB encrypted at
#                                 rest; data under .data/secure, ports 3307, 6380, 27018, 8087
#                                 (config/secure.toml, docs/store-security.md). down/kill/status take
#                                 --secure too.
#
# Everything runs on loopback with its data under .data/ (git-ignored). Running `up` twice is harmless:
# a service that already answers is left alone. Nothing this script did not start is stopped: a
# port held by another process is refused, naming it and the TSP_LOCAL_*_PORT variable that moves
# ours. The ports and credentials here are the ones that
# config/development.toml names, so `tsp-job health` is green right after `up`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERB=${1:-up}
CLUSTER=0
BROWSER=0
MONITORING=0
SECURE=${TSP_LOCAL_SECURE:-0}
for arg in "${@:2}"; do
  case "$arg" in
    --cluster) CLUSTER=1 ;;
    --secure) SECURE=1 ;;
    --browser) BROWSER=1 ;;
    --monitoring) MONITORING=1 ;;
    *) echo "usage: $0 up|down|kill|status [--cluster] [--secure] [--browser] [--monitoring]" >&2; exit 2 ;;
  esac
done
if [ "$SECURE" = 1 ]; then
  : "${TSP_LOCAL_DATA:=$ROOT/.data/secure}" "${TSP_LOCAL_MYSQL_PORT:=3307}" "${TSP_LOCAL_REDIS_PORT:=6380}"
  : "${TSP_LOCAL_MONGO_PORT:=27018}" "${TSP_LOCAL_INFLUX_PORT:=8087}" "${TSP_LOCAL_INFLUX_RPC_PORT:=8089}"
fi
# TSP_LOCAL_DATA and the TSP_LOCAL_*_PORT variables run a second, separate set of services (the
# disaster-recovery drill does, so that it can destroy them). TSP_LOCAL_REDIS_FSYNC=always makes
# Redis fsync its append-only file on every write instead of once a second (docs/queue.md#durability).
D=${TSP_LOCAL_DATA:-$ROOT/.data}
MYSQL_PORT=${TSP_LOCAL_MYSQL_PORT:-3306}
REDIS_PORT=${TSP_LOCAL_REDIS_PORT:-6379}
REDIS_FSYNC=${TSP_LOCAL_REDIS_FSYNC:-everysec}
case "$REDIS_FSYNC" in everysec|always|no) ;; *) echo "TSP_LOCAL_REDIS_FSYNC: everysec, always or no, not '$REDIS_FSYNC'" >&2; exit 2 ;; esac
MONGO_PORT=${TSP_LOCAL_MONGO_PORT:-27017}
INFLUX_PORT=${TSP_LOCAL_INFLUX_PORT:-8086}
INFLUX_RPC_PORT=${TSP_LOCAL_INFLUX_RPC_PORT:-8088}
PROMETHEUS_PORT=${TSP_LOCAL_PROMETHEUS_PORT:-9090}
# Local development credentials only (config/development.toml repeats them); never used in production.
MYSQL_USER=tsp
MYSQL_PASSWORD=tsp-local-dev
MYSQL_DATABASES="tsp_portal tsp_dataset tsp_gtfs tsp_incentive"
INFLUX_DATABASES="tsp tsp_uis service-monitoring"

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

# pid_alive FILE: the pid in FILE names a live process.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for NAME SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "$name did not answer within ${secs}s (see $D/*.log, $D/*.err)"
    fi
    sleep 0.2
  done
}

# free_port PORT PIDFILE VARIABLE: the port is ours to take: free, or held by the process in
# PIDFILE. This script never stops a process it did not start; it names the holder and the
# variable that moves our server to another port instead.
free_port() {
  local port=$1 pidfile=$2 variable=$3
  if pid_alive "$pidfile" || ! port_open "$port"; then return 0; fi
  local holder
  holder=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -1)
  die "port $port is held by ${holder:-a process this script did not start}; stop it, or set $variable to another port"
}

# Installing a server package starts its system service on the port ours wants; that service is
# this script's doing, so it is stopped and disabled right after the install (nothing else is).
stop_packaged_service() {
  local unit=$1
  as_root service "$unit" stop >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable "$unit" >/dev/null 2>&1 || true; fi
  log "stopped the $unit service that installing it started (this script runs its own)"
}

install_missing() {
  local pkgs=()
  local services=()
  command -v mariadbd >/dev/null 2>&1 || { pkgs+=(mariadb-server); services+=(mariadb); }
  command -v redis-server >/dev/null 2>&1 || { pkgs+=(redis-server); services+=(redis-server); }
  command -v influxd >/dev/null 2>&1 || { pkgs+=(influxdb); services+=(influxdb); }
  command -v ss >/dev/null 2>&1 || pkgs+=(iproute2)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  # Headless Chromium and its WebDriver, for the console's browser tests only (--browser).
  if [ "$BROWSER" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || pkgs+=(chromium-driver)
  fi
  # Prometheus and promtool (--monitoring; also the rule checks of scripts/test.sh). Without its
  # recommended node exporter, which would take port 9100, where a local worker listens.
  if [ "$MONITORING" = 1 ] && ! command -v prometheus >/dev/null 2>&1; then
    log "installing prometheus (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
      >"$D/apt.log" 2>&1 || die "apt-get install prometheus failed; see $D/apt.log"
    stop_packaged_service prometheus
  fi
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "installing ${pkgs[*]} (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >"$D/apt.log" 2>&1 \
      || die "apt-get install failed; see $D/apt.log"
    local unit
    for unit in "${services[@]}"; do stop_packaged_service "$unit"; done
  fi
  if [ ! -x "$ROOT/.venv/bin/secantusd-py" ]; then
    log "installing secantusdb into .venv (pip)"
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install -q secantusdb >"$D/pip.log" 2>&1 || die "pip install secantusdb failed; see $D/pip.log"
  fi
  # The API contract's tools (docs/api.md#contract): the validator, the fuzzer, a client generator.
  if [ ! -x "$ROOT/.venv/bin/schemathesis" ] || [ ! -x "$ROOT/.venv/bin/openapi-spec-validator" ] \
    || [ ! -x "$ROOT/.venv/bin/openapi-python-client" ]; then
    log "installing schemathesis, openapi-spec-validator and openapi-python-client into .venv (pip)"
    "$ROOT/.venv/bin/pip" install -q schemathesis openapi-spec-validator openapi-python-client >"$D/pip.log" 2>&1 \
      || die "pip install of the API tools failed; see $D/pip.log"
  fi
}

mysql_root() { mariadb --socket="$D/mysql.sock" -uroot "$@"; }

# shellcheck source=scripts/secure-profile.sh
. "$ROOT/scripts/secure-profile.sh"
if [ "$SECURE" = 1 ]; then
  redis_ping() { redis_admin ping; }
  influx_url="https://127.0.0.1:$INFLUX_PORT"
  influx_ping() { curl -sf --cacert "$PKI/ca.pem" "$influx_url/ping"; }
else
  redis_ping() { redis-cli -p "$REDIS_PORT" ping; }
  influx_url="http://127.0.0.1:$INFLUX_PORT"
  influx_ping() { curl -sf "$influx_url/ping"; }
fi

up_mysql() {
  if pid_alive "$D/mysql.pid" && mariadb-admin --socket="$D/mysql.sock" -uroot ping >/dev/null 2>&1; then
    log "mariadb already running"
  else
    free_port "$MYSQL_PORT" "$D/mysql.pid" TSP_LOCAL_MYSQL_PORT
    if [ ! -d "$D/mysql/mysql" ]; then
      mariadb-install-db --no-defaults --datadir="$D/mysql" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$D/mysql-install.log" 2>&1 \
        || die "mariadb-install-db failed; see $D/mysql-install.log"
    fi
    # max_connections: parallel tests each open small pools for four instances. The binary
    # log (row format) lives beside the data directory, not in it, as an operator would keep it
    # off the data disk: point-in-time recovery replays it after a restore (docs/backup.md).
    mkdir -p "$D/mysql-binlog"
    local extra=()
    if [ "$SECURE" = 1 ]; then mapfile -t extra < <(mysql_secure_args); fi
    nohup mariadbd --no-defaults --datadir="$D/mysql" --socket="$D/mysql.sock" --port="$MYSQL_PORT" \
      --bind-address=127.0.0.1 --user=root --pid-file="$D/mysql.pid" --log-error="$D/mysql.err" \
      --max-connections=1000 --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
      --default-time-zone=+00:00 --innodb-flush-log-at-trx-commit=2 \
      --server-id=1 --log-bin="$D/mysql-binlog/mysql-bin" --binlog-format=ROW \
      --expire-logs-days=7 "${extra[@]}" >/dev/null 2>&1 &
    wait_for mariadb 60 mariadb-admin --socket="$D/mysql.sock" -uroot ping
  fi
  local sql=""
  for db in $MYSQL_DATABASES; do
    sql="$sql
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
  done
  mysql_root -e "$sql" || die "creating MariaDB databases failed"
  if [ "$SECURE" = 1 ]; then mysql_secure_accounts; return; fi
  sql="CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON \`tsp%\`.* TO '$MYSQL_USER'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`tsp%\`.* TO '$MYSQL_USER'@'localhost';
GRANT RELOAD, BINLOG MONITOR, BINLOG REPLAY, REPLICATION SLAVE ON *.* TO '$MYSQL_USER'@'127.0.0.1';
GRANT RELOAD, BINLOG MONITOR, BINLOG REPLAY, REPLICATION SLAVE ON *.* TO '$MYSQL_USER'@'localhost';"
  mysql_root -e "$sql" || die "creating the MariaDB user failed"
}

up_redis() {
  if pid_alive "$D/redis.pid" && redis_ping >/dev/null 2>&1; then
    log "redis already running"
    return
  fi
  free_port "$REDIS_PORT" "$D/redis.pid" TSP_LOCAL_REDIS_PORT
  # The append-only file lives beside the data directory, not in it, as the MySQL binary log
  # does, so the drill can lose the data directory and keep it
  # (docs/backup.md#redis-kept-by-its-append-only-file). Redis names the folder inside `dir`
  # only, so `dir/appendonlydir` is a link to it (on the same file system: Redis renames
  # rewritten files into it).
  mkdir -p "$D/redis"
  if [ -d "$D/redis/appendonlydir" ] && [ ! -L "$D/redis/appendonlydir" ]; then
    # Left by an earlier version of this script, which kept the file in the data directory.
    [ ! -e "$D/redis-aof" ] || die "both $D/redis/appendonlydir and $D/redis-aof exist: keep one"
    mv "$D/redis/appendonlydir" "$D/redis-aof"
  fi
  mkdir -p "$D/redis-aof"
  ln -sfn "$D/redis-aof" "$D/redis/appendonlydir"
  local net=(--port "$REDIS_PORT")
  if [ "$SECURE" = 1 ]; then mapfile -t net < <(redis_secure_args); fi
  redis-server "${net[@]}" --bind 127.0.0.1 --dir "$D/redis" --daemonize yes --save "" \
    --appendonly yes --appendfsync "$REDIS_FSYNC" --pidfile "$D/redis.pid" --logfile "$D/redis.log" \
    --maxclients 10000
  wait_for redis 30 redis_ping
}

up_influx() {
  if pid_alive "$D/influx.pid" && influx_ping >/dev/null; then
    log "influxdb already running"
  else
    free_port "$INFLUX_PORT" "$D/influx.pid" TSP_LOCAL_INFLUX_PORT
    mkdir -p "$D/influx"
    cat >"$D/influx.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$D/influx/meta"
[data]
  dir = "$D/influx/data"
  wal-dir = "$D/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
  max-body-size = 0
$(if [ "$SECURE" = 1 ]; then influx_secure_conf; fi)
[monitor]
  store-enabled = false
EOF
    nohup influxd -config "$D/influx.conf" >"$D/influx.log" 2>&1 &
    echo $! >"$D/influx.pid"
    wait_for influxdb 60 influx_ping
  fi
  if [ "$SECURE" = 1 ]; then influx_secure_accounts; return; fi
  for db in $INFLUX_DATABASES; do
    curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE \"$db\"" >/dev/null \
      || die "creating InfluxDB database $db failed"
  done
}

mongo_ping() {
  local ca=""
  if [ "$SECURE" = 1 ]; then ca="$PKI/ca.pem"; fi
  "$ROOT/.venv/bin/python" - "$MONGO_PORT" "$ca" <<'EOF'
import socket, ssl, struct, sys
# A minimal OP_MSG {ping: 1, $db: "admin"}: answers when the server is ready, with no extra packages.
def bson_doc(items):
    body = b""
    for k, v in items:
        if isinstance(v, int):
            body += b"\x10" + k.encode() + b"\x00" + struct.pack("<i", v)
        else:
            s = v.encode() + b"\x00"
            body += b"\x02" + k.encode() + b"\x00" + struct.pack("<i", len(s)) + s
    return struct.pack("<i", len(body) + 5) + body + b"\x00"
doc = bson_doc([("ping", 1), ("$db", "admin")])
msg = struct.pack("<I", 0) + b"\x00" + doc
header = struct.pack("<iiii", 16 + len(msg), 1, 0, 2013)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
if sys.argv[2]:
    s = ssl.create_default_context(cafile=sys.argv[2]).wrap_socket(s, server_hostname="localhost")
s.sendall(header + msg)
data = s.recv(4096)
sys.exit(0 if len(data) > 16 and b"ok" in data else 1)
EOF
}

up_mongo() {
  if pid_alive "$D/mongo.pid" && mongo_ping && { [ "$SECURE" = 0 ] || [ -f "$D/mongo-accounts" ]; }; then
    log "secantusdb already running"
    if [ "$SECURE" = 1 ]; then mongo_secure_accounts; fi
    return
  fi
  free_port "$MONGO_PORT" "$D/mongo.pid" TSP_LOCAL_MONGO_PORT
  mkdir -p "$D/mongo"
  # Nothing here reads the oplog (no change streams), and SecantusDB's inserts slow down as a
  # full oplog is pruned (measured: 5 ms an insert with a small oplog, 30 ms at the default cap
  # of 100 000 entries), so keep it small.
  if [ "$SECURE" = 1 ] && [ ! -f "$D/mongo-accounts" ]; then
    # Accounts are created once without --auth (SecantusDB has no localhost exception), then
    # the server restarts with it.
    pid_alive "$D/mongo.pid" || start_mongo
    mongo_secure_accounts bootstrap
    kill "$(cat "$D/mongo.pid")"
    wait_for "secantusdb to stop" 30 bash -c "! kill -0 $(cat "$D/mongo.pid")"
    touch "$D/mongo-accounts"
  fi
  start_mongo
  if [ "$SECURE" = 1 ]; then mongo_secure_accounts; fi
}

start_mongo() {
  local extra=()
  if [ "$SECURE" = 1 ]; then
    mapfile -t extra < <(mongo_secure_args)
    if [ -f "$D/mongo-accounts" ]; then extra+=(--auth); fi
  fi
  nohup "$ROOT/.venv/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$D/mongo" \
    --oplog-max-entries 2000 --oplog-retention-seconds 600 "${extra[@]}" \
    >"$D/mongo.log" 2>&1 &
  echo $! >"$D/mongo.pid"
  wait_for secantusdb 60 mongo_ping
}

prometheus_ready() { curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null; }

# Prometheus with the configuration of deploy/prometheus/prometheus.yml, its paths and targets
# moved to this machine, scraping every 5 s. The token is development.toml's metrics_token.
up_prometheus() {
  if pid_alive "$D/prometheus.pid" && prometheus_ready; then
    log "prometheus already running"
    return
  fi
  free_port "$PROMETHEUS_PORT" "$D/prometheus.pid" TSP_LOCAL_PROMETHEUS_PORT
  local P=$D/prometheus
  mkdir -p "$P/data" "$P/workers"
  printf '%s' tsp-local-metrics >"$P/metrics-token"
  [ -f "$P/workers/local.json" ] || echo '[{"targets": ["127.0.0.1:9100"]}]' >"$P/workers/local.json"
  sed -e "s#/etc/prometheus/secrets/tsp-job-metrics-token#$P/metrics-token#" \
      -e "s#/etc/prometheus/tsp-job-workers/#$P/workers/#" \
      -e "s#tsp-job-serve:8080#127.0.0.1:8080#" \
      -e "s#^  - alerts.yml#  - $ROOT/deploy/prometheus/alerts.yml#" \
      -e "s#_interval: 15s#_interval: 5s#" \
      "$ROOT/deploy/prometheus/prometheus.yml" >"$P/prometheus.yml"
  promtool check config "$P/prometheus.yml" >"$P/check.log" 2>&1 || die "the Prometheus configuration is refused; see $P/check.log"
  nohup prometheus --config.file="$P/prometheus.yml" --storage.tsdb.path="$P/data" \
    --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    >"$D/prometheus.log" 2>&1 &
  echo $! >"$D/prometheus.pid"
  wait_for prometheus 30 prometheus_ready
  log "prometheus on http://127.0.0.1:$PROMETHEUS_PORT (targets: $P/prometheus.yml, $P/workers/)"
}

status() {
  local ok=0
  printf '%-12s %-22s %s\n' SERVICE ADDRESS STATE
  for row in "mariadb:$MYSQL_PORT" "redis:$REDIS_PORT" "secantusdb:$MONGO_PORT" "influxdb:$INFLUX_PORT"; do
    local name=${row%%:*} port=${row##*:} state="down"
    if port_open "$port"; then state="up"; else ok=1; fi
    printf '%-12s %-22s %s\n' "$name" "127.0.0.1:$port" "$state"
  done
  if [ "$SECURE" = 1 ]; then
    printf '\nMySQL users %s (app) and %s (migrator), passwords in %s\n' "$APP_USER" "$MIGRATOR_USER" "$SECRETS"
  else
    printf '\nMySQL user %s (password in config/development.toml), databases: %s\n' "$MYSQL_USER" "$MYSQL_DATABASES"
  fi
  printf 'InfluxDB databases: %s; data under %s\n' "$INFLUX_DATABASES" "$D"
  return $ok
}

down() {
  if [ -S "$D/mysql.sock" ]; then mariadb-admin --socket="$D/mysql.sock" -uroot shutdown 2>/dev/null || true; fi
  if pid_alive "$D/redis.pid"; then
    if [ "$SECURE" = 1 ]; then redis_admin shutdown nosave; else redis-cli -p "$REDIS_PORT" shutdown nosave; fi 2>/dev/null || true
  fi
  for p in influx mongo prometheus; do
    if pid_alive "$D/$p.pid"; then kill "$(cat "$D/$p.pid")" 2>/dev/null || true; fi
    rm -f "$D/$p.pid"
  done
  log "stopped"
}

# A local Redis Cluster: 3 primaries, 3 replicas, AOF on, data under $D/cluster/<port>.
CLUSTER_BASE=${TSP_LOCAL_CLUSTER_PORT:-7001}
cluster_ports() { for i in 0 1 2 3 4 5; do echo $((CLUSTER_BASE + i)); done; }

cluster_ok() {
  local p
  for p in $(cluster_ports); do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q cluster_state:ok || return 1
  done
}

up_cluster() {
  if cluster_ok; then
    log "redis cluster already running on $CLUSTER_BASE-$((CLUSTER_BASE + 5))"
    return
  fi
  local p addrs=()
  for p in $(cluster_ports); do
    if ! pid_alive "$D/cluster-$p.pid" || ! redis-cli -p "$p" ping >/dev/null 2>&1; then
      free_port "$p" "$D/cluster-$p.pid" TSP_LOCAL_CLUSTER_PORT
      # A node that is not part of a working cluster starts over: its old state is stale.
      rm -rf "$D/cluster/$p"
      mkdir -p "$D/cluster/$p"
      redis-server --port "$p" --bind 127.0.0.1 --dir "$D/cluster/$p" --daemonize yes --save "" \
        --appendonly yes --appendfsync everysec --cluster-enabled yes --cluster-node-timeout 2000 \
        --pidfile "$D/cluster-$p.pid" --logfile "$D/cluster-$p.log" --maxclients 10000
    fi
    wait_for "cluster node $p" 30 redis-cli -p "$p" ping
    addrs+=("127.0.0.1:$p")
  done
  if ! redis-cli -p "$CLUSTER_BASE" cluster info | grep -q cluster_known_nodes:6; then
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$D/cluster-create.log" 2>&1 \
      || die "redis-cli --cluster create failed; see $D/cluster-create.log"
  fi
  local deadline=$((SECONDS + 30))
  until cluster_ok; do
    [ $SECONDS -ge $deadline ] && die "the redis cluster never reached cluster_state:ok"
    sleep 0.2
  done
  log "redis cluster on 127.0.0.1:$CLUSTER_BASE-$((CLUSTER_BASE + 5)) (3 primaries, 3 replicas)"
}

down_cluster() {
  local p
  for p in $(cluster_ports); do
    if pid_alive "$D/cluster-$p.pid"; then redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; fi
    rm -f "$D/cluster-$p.pid"
  done
}

crash() {
  for p in mysql redis influx mongo; do
    if pid_alive "$D/$p.pid"; then kill -9 "$(cat "$D/$p.pid")" 2>/dev/null || true; fi
  done
  for p in $(cluster_ports); do
    if pid_alive "$D/cluster-$p.pid"; then kill -9 "$(cat "$D/cluster-$p.pid")" 2>/dev/null || true; fi
  done
  log "killed"
}

mkdir -p "$D"
case "$VERB" in
  up)
    install_missing
    if [ "$SECURE" = 1 ]; then make_pki; fi
    up_mysql
    up_redis
    up_influx
    up_mongo
    if [ "$CLUSTER" = 1 ]; then up_cluster; fi
    if [ "$MONITORING" = 1 ]; then up_prometheus; fi
    status
    if [ "$SECURE" = 1 ]; then secure_summary; fi
    ;;
  down) down; down_cluster ;;
  kill) crash ;;
  status) status ;;
  *) die "usage: $0 up|down|kill|status [--cluster] [--secure] [--browser] [--monitoring]" ;;
esac
