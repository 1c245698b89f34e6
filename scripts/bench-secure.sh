#!/usr/bin/env bash
# What TLS and authentication cost: `tsp-bench hub`, `tsp-bench queue` and `tsp-bench trips`, first on
# the plain local services, then on the secure profile (TLS with verified certificates, the app
# accounts, secrets from files; MariaDB also encrypted at rest), in one run on the same machine;
# then the servers' own benchmark tools (`redis-benchmark`, `mariadb-slap`) plain and over TLS,
# which show what TLS costs the servers whatever the client (docs/benchmarks.md#tls).
# Each prints one JSON line, prefixed with its profile. Extra arguments go to `tsp-bench trips`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up >/dev/null
scripts/services.sh up --secure >/dev/null
# shellcheck source=scripts/local-ports.sh
. scripts/local-ports.sh
cargo build --release -p tsp-bench >/dev/null
# The development set where TSP_LOCAL_*_PORT put it; the secure set where config/secure.toml says.
for profile in development secure; do
  sets=(); [ "$profile" = development ] && sets=("${LOCAL_SETS[@]}")
  printf '%s hub ' "$profile"
  TSP_ENV=$profile target/release/tsp-bench "${sets[@]}" hub 2>/dev/null
  printf '%s queue ' "$profile"
  TSP_ENV=$profile target/release/tsp-bench "${sets[@]}" queue --jobs 100000 2>/dev/null
  printf '%s trips ' "$profile"
  TSP_ENV=$profile target/release/tsp-bench "${sets[@]}" trips --trips 3000 "$@" 2>/dev/null
done

# The native tools. Ports and accounts as services.sh and config/{development,secure}.toml set them.
SECURE=.data/secure
SECURE_MYSQL_PORT=3307 SECURE_REDIS_PORT=6380
CA=$SECURE/pki/ca.pem
GETS=300000
QUERIES=200000
redis_get() { # the tool's connection and shape options: GETs per second
  redis-benchmark -n "$GETS" --csv "$@" GET tsp:bench:native 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}
slap() { # $1 option file, then the connection options: SELECT 1 per second
  local secs
  secs=$(mariadb-slap --defaults-extra-file="$1" "${@:2}" --query="SELECT 1" --concurrency=32 \
    --number-of-queries="$QUERIES" --iterations=1 --create-schema=tsp_portal 2>&1 |
    awk '/Average number of seconds/ {print $(NF-1)}')
  awk -v q="$QUERIES" -v s="$secs" 'BEGIN {printf "%.0f", q / s}'
}
# Passwords go through an option file (mode 600), not the command line.
cnf=$(mktemp)
trap 'rm -f "$cnf"' EXIT
option_file() { printf '[client]\nuser=%s\npassword="%s"\n' "$1" "$2" >"$cnf"; }
redis_pw=$(cat "$SECURE/secrets/redis-app")
redis_tls=(-p "$SECURE_REDIS_PORT" --tls --cacert "$CA" --user tsp_app -a "$redis_pw")
for shape in "32 1" "1 32"; do
  read -r conns pipeline <<<"$shape"
  plain=$(redis_get -p "$LOCAL_REDIS_PORT" -c "$conns" -P "$pipeline")
  tls=$(redis_get "${redis_tls[@]}" -c "$conns" -P "$pipeline")
  printf 'native redis-benchmark {"command":"GET","connections":%s,"pipeline":%s,"plain_per_s":%s,"tls_per_s":%s}\n' \
    "$conns" "$pipeline" "$plain" "$tls"
done
option_file tsp tsp-local-dev
plain=$(slap "$cnf" -h 127.0.0.1 -P "$LOCAL_MYSQL_PORT" --skip-ssl)
option_file tsp_app "$(cat "$SECURE/secrets/mysql-app")"
tls=$(slap "$cnf" -h 127.0.0.1 -P "$SECURE_MYSQL_PORT" --ssl-ca="$CA" --ssl-verify-server-cert)
printf 'native mariadb-slap {"query":"SELECT 1","connections":32,"plain_per_s":%s,"tls_per_s":%s}\n' "$plain" "$tls"
