#!/usr/bin/env bash
# Start a local PostgreSQL server for the qc tests and print its SQLAlchemy URL on stdout.
#
#   export QC_TEST_POSTGRES_URL="$(scripts/start_postgres.sh)"
#
# Idempotent: an already running server, role and database are reused. Works as root
# (commands run as the `postgres` user) or as an ordinary user (a private cluster).
# Debian/Ubuntu: uses the packaged cluster (pg_lsclusters / pg_ctlcluster, creating one
# if none exists). Elsewhere, or with QC_PG_DIR set: initdb into QC_PG_DIR and pg_ctl.
# Settings: QC_PG_USER (qc), QC_PG_PASSWORD (qc; URL-safe characters only), QC_PG_DB (qc_test), QC_PG_PORT (5432
# or the cluster's port), QC_PG_DIR (private data dir, e.g. /tmp/qc-postgres).
# Progress goes to stderr; only the URL goes to stdout.
set -euo pipefail

DB_USER="${QC_PG_USER:-qc}"
DB_PASSWORD="${QC_PG_PASSWORD:-qc}"
DB_NAME="${QC_PG_DB:-qc_test}"
log() { echo "start_postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Newest installed server binaries (Debian keeps them out of PATH).
PG_BIN=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { PG_BIN="$dir"; break; }
done
if [ -z "$PG_BIN" ] && command -v initdb >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(command -v initdb)")"
fi
[ -n "$PG_BIN" ] || die "no PostgreSQL server binaries found (Debian: apt-get install postgresql)"
PG_VERSION="$("$PG_BIN/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"

# Run a command as the server's OS user.
as_pg() {
    if [ "$(id -u)" = "0" ]; then
        if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
    else
        "$@"
    fi
}

PORT="${QC_PG_PORT:-}"
SOCKET_DIR=""
if [ -z "${QC_PG_DIR:-}" ] && command -v pg_lsclusters >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    # Debian packaged cluster.
    CLUSTER_LINE="$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$PG_VERSION" '$1 == v {print; exit}')"
    if [ -z "$CLUSTER_LINE" ]; then
        log "creating cluster $PG_VERSION/main"
        pg_createcluster "$PG_VERSION" main ${PORT:+--port "$PORT"} >&2
        CLUSTER_LINE="$(pg_lsclusters --no-header | awk -v v="$PG_VERSION" '$1 == v {print; exit}')"
    fi
    read -r VER NAME CPORT STATUS _ <<<"$CLUSTER_LINE"
    PORT="$CPORT"
    if [ "$STATUS" != "online" ]; then
        log "starting cluster $VER/$NAME on port $PORT"
        # Containers often lack the tmpfiles.d-created socket folder.
        install -d -o postgres -g postgres -m 2775 /var/run/postgresql
        # --skip-systemctl-redirect: containers usually have no systemd.
        pg_ctlcluster --skip-systemctl-redirect "$VER" "$NAME" start >&2 || pg_ctlcluster "$VER" "$NAME" start >&2
    else
        log "cluster $VER/$NAME already running on port $PORT"
    fi
    SOCKET_DIR="/var/run/postgresql"
else
    # Private cluster in QC_PG_DIR.
    DATA_DIR="${QC_PG_DIR:-/tmp/qc-postgres}"
    PORT="${PORT:-5432}"
    SOCKET_DIR="$DATA_DIR/socket"
    if [ "$(id -u)" = "0" ]; then
        getent passwd postgres >/dev/null || die "no 'postgres' OS user to run the server as"
        mkdir -p "$DATA_DIR"; chown postgres "$DATA_DIR"
    fi
    if [ ! -f "$DATA_DIR/data/PG_VERSION" ]; then
        log "initialising $DATA_DIR/data"
        as_pg mkdir -p "$DATA_DIR/data" "$SOCKET_DIR"
        as_pg "$PG_BIN/initdb" -D "$DATA_DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >&2
    fi
    as_pg mkdir -p "$SOCKET_DIR"
    if as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR/data" status >/dev/null 2>&1; then
        log "server in $DATA_DIR already running"
    else
        log "starting server in $DATA_DIR on port $PORT"
        as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR/data" -l "$DATA_DIR/server.log" -w \
            -o "-p $PORT -k $SOCKET_DIR -c listen_addresses=127.0.0.1" start >&2
    fi
fi

# Superuser access over the Unix socket (peer/trust auth for the postgres user).
psql_admin() { as_pg "$PG_BIN/psql" -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

for _ in $(seq 1 30); do
    psql_admin -c "SELECT 1" >/dev/null 2>&1 && break
    sleep 1
done
psql_admin -c "SELECT 1" >/dev/null || die "server on port $PORT does not accept connections"

ESC_PASSWORD="${DB_PASSWORD//\'/\'\'}"
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
    log "creating role $DB_USER"
    psql_admin -c "CREATE ROLE \"$DB_USER\" LOGIN PASSWORD '$ESC_PASSWORD' CREATEDB"
else
    psql_admin -c "ALTER ROLE \"$DB_USER\" LOGIN PASSWORD '$ESC_PASSWORD' CREATEDB" >/dev/null
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    log "creating database $DB_NAME"
    psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\""
fi

echo "postgresql+psycopg://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${PORT}/${DB_NAME}"
