# The secure local profile (docs/store-security.md): sourced by scripts/services.sh for `up --secure`.
#
# A local CA and certificates, a secret per account under $D/secrets (mode 600), and the four
# servers with TLS, authentication and two accounts each: an app account that reads and writes
# data only, and a migrator account for DDL, indexes, retention, backups and restores. MariaDB
# also encrypts its tables, redo log, temporary files and binary log (file_key_management).
# Nothing here is committed: keys and secrets live under the git-ignored data folder.

PKI=$D/pki
SECRETS=$D/secrets
# The app and migrator accounts, one name per role on every store.
APP_USER=tsp_app
MIGRATOR_USER=tsp_migrator
# The MariaDB account that also presents a client certificate (REQUIRE X509).
X509_USER=tsp_app_x509
# Key prefixes the app account may touch: the service's own, and the sandboxes tests and
# benchmarks run in (`sb:<tag>:`). Production grants only its configured prefix.
APP_KEY_PATTERNS="tsp:* sb:*"

# secret NAME: the secret's value, created on first use. Every password carries characters that
# URLs, SQL and shells treat specially (a space, @ : / ? # % + and a non-ASCII letter), so every
# store's URL and escaping path carries them on every run.
secret() {
  local f="$SECRETS/$1"
  if [ ! -s "$f" ]; then
    mkdir -p "$SECRETS"
    chmod 700 "$SECRETS"
    (umask 077 && printf '%s p@ss:w/rd?#%%+é' "$(openssl rand -hex 12)" >"$f")
  fi
  cat "$f"
}

# sql_quote VALUE: VALUE as a single-quoted SQL (and InfluxQL) string literal.
sql_quote() { local v=${1//\\/\\\\}; printf "'%s'" "${v//\'/\\\'}"; }

make_pki() {
  if [ -s "$PKI/server.pem" ] && [ -s "$PKI/client.pem" ]; then return; fi
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  (
    cd "$PKI"
    umask 077
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -days 825 -subj "/CN=tsp-job local CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    # issue NAME CN EXTENSIONS: a key and a certificate signed by the local CA.
    issue() {
      openssl req "${ec[@]}" -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    issue server localhost $'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1'
    issue client tsp-app-client "extendedKeyUsage=clientAuth"
    # MongoDB drivers take a client certificate and its key as one file.
    cat client.pem client.key >client-bundle.pem
    # Servers read their key as the user they run as; here that is this user.
    chmod 600 ./*.key client-bundle.pem
    chmod 644 ca.pem server.pem client.pem
  ) || die "creating the local CA and certificates failed (openssl)"
  log "local CA and certificates in $PKI"
}

# The MariaDB options that turn on TLS (required) and encryption at rest.
mysql_secure_args() {
  if [ ! -s "$D/mysql-keys.txt" ]; then
    (umask 077 && printf '1;%s\n' "$(openssl rand -hex 32)" >"$D/mysql-keys.txt")
  fi
  printf '%s\n' --ssl-ca="$PKI/ca.pem" --ssl-cert="$PKI/server.pem" --ssl-key="$PKI/server.key" \
    --require-secure-transport=ON --plugin-load-add=file_key_management \
    --file-key-management-filename="$D/mysql-keys.txt" --innodb-encrypt-tables=FORCE \
    --innodb-encrypt-log=ON --innodb-encrypt-temporary-tables=ON --encrypt-tmp-files=ON \
    --encrypt-binlog=ON --aria-encrypt-tables=ON --encrypt-tmp-disk-tables=ON
}

mysql_secure_accounts() {
  local app migrator x509 sql="" host
  app=$(sql_quote "$(secret mysql-app)")
  migrator=$(sql_quote "$(secret mysql-migrator)")
  x509=$(sql_quote "$(secret mysql-app-x509)")
  for host in 127.0.0.1 localhost; do
    # ALTER keeps an existing account's password in step with its secret file (rotation).
    sql="$sql
CREATE USER IF NOT EXISTS '$APP_USER'@'$host' IDENTIFIED BY $app REQUIRE SSL;
ALTER USER '$APP_USER'@'$host' IDENTIFIED BY $app REQUIRE SSL;
GRANT SELECT, INSERT, UPDATE, DELETE ON \`tsp%\`.* TO '$APP_USER'@'$host';
CREATE USER IF NOT EXISTS '$X509_USER'@'$host' IDENTIFIED BY $x509 REQUIRE X509;
ALTER USER '$X509_USER'@'$host' IDENTIFIED BY $x509 REQUIRE SUBJECT '/CN=tsp-app-client' AND ISSUER '/CN=tsp-job local CA';
GRANT SELECT, INSERT, UPDATE, DELETE ON \`tsp%\`.* TO '$X509_USER'@'$host';
CREATE USER IF NOT EXISTS '$MIGRATOR_USER'@'$host' IDENTIFIED BY $migrator REQUIRE SSL;
ALTER USER '$MIGRATOR_USER'@'$host' IDENTIFIED BY $migrator REQUIRE SSL;
GRANT ALL PRIVILEGES ON \`tsp%\`.* TO '$MIGRATOR_USER'@'$host';
GRANT RELOAD, BINLOG MONITOR, BINLOG REPLAY, REPLICATION SLAVE, PROCESS ON *.* TO '$MIGRATOR_USER'@'$host';"
  done
  mysql_root -e "$sql" || die "creating the secure MariaDB accounts failed"
}

# The Redis options for TLS only (no plain port) and ACL users instead of one password.
redis_secure_args() {
  local app admin patterns="" channels="" p
  app=$(secret redis-app | sha256sum | cut -d' ' -f1)
  admin=$(secret redis-migrator | sha256sum | cut -d' ' -f1)
  for p in $APP_KEY_PATTERNS; do patterns="$patterns ~$p"; channels="$channels &$p"; done
  # The app: data commands, scripts, pub/sub, INFO and WAIT; nothing that flushes, configures,
  # lists every key or administers the server (-@dangerous, -@admin). Passwords are stored as
  # SHA-256 (#...), never in clear.
  {
    echo "user default off"
    echo "user $APP_USER on #$app resetkeys$patterns resetchannels$channels -@all +@read +@write +@connection +@scripting +@pubsub +@transaction +@fast -@dangerous -@admin +info +wait -script|flush -script|kill"
    echo "user $MIGRATOR_USER on #$admin ~* &* +@all"
  } >"$D/redis-users.acl"
  chmod 600 "$D/redis-users.acl"
  printf '%s\n' --port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$PKI/server.pem" \
    --tls-key-file "$PKI/server.key" --tls-ca-cert-file "$PKI/ca.pem" --tls-auth-clients optional \
    --aclfile "$D/redis-users.acl"
}

# redis_admin ARGS...: redis-cli as the migrator over TLS.
redis_admin() {
  REDISCLI_AUTH="$(secret redis-migrator)" redis-cli --tls --cacert "$PKI/ca.pem" -h 127.0.0.1 \
    -p "$REDIS_PORT" --user "$MIGRATOR_USER" --no-auth-warning "$@"
}

influx_secure_conf() {
  cat <<EOF
  auth-enabled = true
  https-enabled = true
  https-certificate = "$PKI/server.pem"
  https-private-key = "$PKI/server.key"
EOF
}

# influx_admin QUERY: one InfluxQL statement as the admin, over HTTPS.
influx_admin() {
  curl -sf --cacert "$PKI/ca.pem" -XPOST "https://127.0.0.1:$INFLUX_PORT/query" \
    -u "$MIGRATOR_USER:$(secret influx-migrator)" --data-urlencode "q=$1" >/dev/null
}

influx_secure_accounts() {
  local admin app
  admin=$(sql_quote "$(secret influx-migrator)")
  app=$(sql_quote "$(secret influx-app)")
  # With no user yet, InfluxDB accepts exactly one statement unauthenticated: creating an admin.
  curl -sf --cacert "$PKI/ca.pem" -XPOST "https://127.0.0.1:$INFLUX_PORT/query" \
    --data-urlencode "q=CREATE USER \"$MIGRATOR_USER\" WITH PASSWORD $admin WITH ALL PRIVILEGES" >/dev/null || true
  influx_admin "SET PASSWORD FOR \"$MIGRATOR_USER\" = $admin" || die "the InfluxDB admin's secret does not match (reset $D/influx)"
  influx_admin "CREATE USER \"$APP_USER\" WITH PASSWORD $app" || true
  influx_admin "SET PASSWORD FOR \"$APP_USER\" = $app" || die "setting the InfluxDB app password failed"
  local db
  for db in $INFLUX_DATABASES; do
    influx_admin "CREATE DATABASE \"$db\"" || die "creating InfluxDB database $db failed"
    influx_admin "GRANT ALL ON \"$db\" TO \"$APP_USER\"" || die "granting $APP_USER on $db failed"
  done
}

# The SecantusDB options for TLS and SCRAM authentication.
mongo_secure_args() {
  printf '%s\n' --tls-cert-file "$PKI/server.pem" --tls-key-file "$PKI/server.key" --tls-ca-file "$PKI/ca.pem"
}

# mongo_secure_accounts: creates (or brings in step with their secrets) the accounts. The app's
# role allows reading and writing documents in any database and nothing else: no index, no
# drop, no user or role change. Tests and benchmarks create a database each; production binds
# the same privileges to its two databases (docs/store-security.md#least-privilege).
mongo_secure_accounts() {
  TSP_APP="$(secret mongo-app)" TSP_MIGRATOR="$(secret mongo-migrator)" TSP_ROOT="$(secret mongo-root)" \
    "$ROOT/.venv/bin/python" - "$MONGO_PORT" "$PKI/ca.pem" "${1:-}" "$APP_USER" "$MIGRATOR_USER" <<'EOF' \
    || die "creating the SecantusDB accounts failed"
import os, sys
from pymongo import MongoClient
port, ca, bootstrap, app, migrator = sys.argv[1:6]
kw = dict(host="127.0.0.1", port=int(port), tls=True, tlsCAFile=ca, directConnection=True,
          serverSelectionTimeoutMS=10000)
if bootstrap != "bootstrap":
    kw.update(username="tsp_root", password=os.environ["TSP_ROOT"], authSource="admin")
admin = MongoClient(**kw).admin
def user(name, pwd, roles):
    if admin.command("usersInfo", name)["users"]:
        admin.command("updateUser", name, pwd=pwd, roles=roles)
    else:
        admin.command("createUser", name, pwd=pwd, roles=roles)
user("tsp_root", os.environ["TSP_ROOT"], ["root"])
privileges = [{"resource": {"db": "", "collection": ""},
               "actions": ["find", "insert", "update", "remove", "listIndexes", "listCollections", "killCursors"]}]
if admin.command("rolesInfo", "tspApp")["roles"]:
    admin.command("updateRole", "tspApp", privileges=privileges, roles=[])
else:
    admin.command("createRole", "tspApp", privileges=privileges, roles=[])
user(app, os.environ["TSP_APP"], [{"role": "tspApp", "db": "admin"}])
user(migrator, os.environ["TSP_MIGRATOR"],
     ["readWriteAnyDatabase", "dbAdminAnyDatabase", "clusterMonitor", "restore"])
EOF
}

# The client side of the profile, for config/secure.toml: written once so the configuration can
# name fixed paths (.data/secure/...) whatever TSP_LOCAL_DATA says.
secure_summary() {
  printf '\nsecure profile: TLS and authentication on every store; CA %s\n' "$PKI/ca.pem"
  printf 'secrets in %s; use TSP_ENV=secure (config/secure.toml)\n' "$SECRETS"
}
