#!/usr/bin/env bash
# Install (when missing) what the tests use beyond Python: Redis and PostgreSQL, started on
# 127.0.0.1 and exported as URLs, and Debian's Chromium for the dashboard's browser test.
# Source it: `source scripts/services.sh`.
# PostgreSQL runs as its own throw-away cluster on port 5433 (trust auth, data under /tmp).
set -euo pipefail

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

_missing=()
command -v redis-server >/dev/null 2>&1 || _missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || _missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || _missing+=(chromium)
if [ ${#_missing[@]} -gt 0 ]; then
  _as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq "${_missing[@]}" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no >/dev/null
fi

_pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
_pgdata=/tmp/lure-test-postgres
_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if ! "$_pgbin/pg_isready" -h 127.0.0.1 -p 5433 -q; then
  rm -rf "$_pgdata" && mkdir -p "$_pgdata"
  [ "$(id -u)" = 0 ] && chown postgres "$_pgdata"
  _pg "$_pgbin/initdb" -D "$_pgdata" -A trust -U postgres >/dev/null
  _pg "$_pgbin/pg_ctl" -D "$_pgdata" -o "-h 127.0.0.1 -p 5433 -k /tmp" -l "$_pgdata/server.log" -w start >/dev/null
fi

for _ in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && "$_pgbin/pg_isready" -h 127.0.0.1 -p 5433 -q && break
  sleep 1
done

export LURE_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
export LURE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5433/postgres"
echo "services: redis ${LURE_TEST_REDIS_URL}, postgres ${LURE_TEST_POSTGRES_URL}"
