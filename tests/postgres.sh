#!/usr/bin/env bash
# Start (or reuse) a throw-away PostgreSQL server for the tests, on loopback only, in DIR.
# Prints the URL to use. Needs Debian's postgresql package (./x deps installs it).
#   tests/postgres.sh DIR [PORT]
#   tests/postgres.sh stop DIR        (stops it again; nothing to stop is no error)
set -euo pipefail
if [ "${1:-}" = stop ]; then
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    DIR=$(realpath -m "$2")
    if [ -f "$DIR/data/PG_VERSION" ]; then
        runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" stop -m fast >/dev/null 2>&1 || true
    fi
    exit 0
fi
# Absolute: the server resolves its socket directory against its data directory.
DIR=$(realpath -m "$1")
PORT=${2:-55432}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
URL="postgres://portcullis:portcullis@127.0.0.1:$PORT/portcullis"
mkdir -p "$DIR"
chown postgres:postgres "$DIR"
if [ ! -f "$DIR/data/PG_VERSION" ]; then
    runuser -u postgres -- "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log"
fi
if ! runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200" start >/dev/null
fi
psql_admin() { runuser -u postgres -- psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }
[ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'portcullis'")" = 1 ] ||
    psql_admin -c "CREATE ROLE portcullis LOGIN PASSWORD 'portcullis'"
# Tests that must not share the database (one replaces the secret key every store there
# uses) make databases of their own.
psql_admin -c "ALTER ROLE portcullis CREATEDB"
[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'portcullis'")" = 1 ] ||
    psql_admin -c "CREATE DATABASE portcullis OWNER portcullis"
echo "$URL"
