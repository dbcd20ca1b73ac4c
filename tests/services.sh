#!/usr/bin/env bash
# Start the services the test suite needs: PostgreSQL on 127.0.0.1:5432 (role
# and database "tradosphere", password "tradosphere") and Redis on
# 127.0.0.1:6379. Also makes sure chromium is installed for browser tests.
#
# Idempotent, non-interactive, and systemd-free so it works in CI containers.
set -euo pipefail

PG_PORT=5432
REDIS_PORT=6379
DB_NAME=tradosphere
DB_USER=tradosphere
DB_PASSWORD=tradosphere
DEADLINE_SECONDS=30

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo -n); fi

# Run a command as the postgres OS user (peer auth on the local socket).
# cd / first so psql does not complain about an unreadable working directory.
as_postgres() {
    if [ "$(id -u)" -ne 0 ]; then
        (cd / && sudo -n -u postgres -- "$@")
    elif command -v runuser >/dev/null; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
    fi
}

wait_for() {
    local what=$1; shift
    local end=$((SECONDS + DEADLINE_SECONDS))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "$what not ready after ${DEADLINE_SECONDS}s"
        sleep 0.5
    done
    log "$what is ready"
}

# --- packages -------------------------------------------------------------
missing=()
if ! command -v pg_ctlcluster >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    missing+=(postgresql)
fi
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    "${SUDO[@]}" apt-get update </dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${missing[@]}" </dev/null
fi

# --- PostgreSQL -----------------------------------------------------------
pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
[ -n "$pg_version" ] || die "no PostgreSQL server found in /usr/lib/postgresql"

# pg_lsclusters -h: "<ver> <name> <port> <status> <owner> <datadir> <log>"
cluster=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main"')
if [ -z "$cluster" ]; then
    log "creating PostgreSQL $pg_version cluster 'main' on port $PG_PORT"
    "${SUDO[@]}" pg_createcluster "$pg_version" main --port "$PG_PORT" --start
else
    port=$(awk '{print $3}' <<<"$cluster")
    [ "$port" = "$PG_PORT" ] || die "cluster $pg_version/main uses port $port, expected $PG_PORT"
    if [ "$(awk '{print $4}' <<<"$cluster")" != "online" ]; then
        log "starting PostgreSQL $pg_version/main"
        "${SUDO[@]}" pg_ctlcluster "$pg_version" main start
    fi
fi
wait_for "PostgreSQL on 127.0.0.1:$PG_PORT" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"

psql_admin() { as_postgres psql -p "$PG_PORT" -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != "1" ]; then
    log "creating role $DB_USER"
    psql_admin -c "CREATE ROLE $DB_USER LOGIN"
fi
# Re-applied every run so a role left over from elsewhere still matches what tests expect.
psql_admin -c "ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD '$DB_PASSWORD'"
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    log "creating database $DB_NAME"
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi

# --- Redis ----------------------------------------------------------------
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }
if ! redis_up; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    # --dir /tmp: a daemonized redis chdirs there; nothing is persisted anyway.
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
        --save "" --appendonly no --dir /tmp >/dev/null
fi
wait_for "Redis on 127.0.0.1:$REDIS_PORT" redis_up
