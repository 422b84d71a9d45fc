#!/usr/bin/env bash
# make test: every test, against a real Postgres, the pinned Temporal dev
# server and a real Prometheus. Under CI=true a missing one fails the run.
# Two runs may go at once on one machine: nothing here uses a fixed port,
# folder or file.
set -uo pipefail
cd "$(dirname "$0")/.."

export TRANSIT_TEMPORAL_BIN=${TRANSIT_TEMPORAL_BIN:-$PWD/bin/temporal}
if [ ! -x "$TRANSIT_TEMPORAL_BIN" ]; then
  echo "make test: $TRANSIT_TEMPORAL_BIN is missing (make bin/temporal builds it)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/transit-make-test.XXXXXX")
export TRANSIT_TEST_PG_OWNED_FILE=$work/pg-owned
cleanup() {
  if [ -s "$TRANSIT_TEST_PG_OWNED_FILE" ]; then
    pgdir=$(cat "$TRANSIT_TEST_PG_OWNED_FILE")
    for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && "$d/pg_ctl" -D "$pgdir" -m immediate stop >/dev/null 2>&1 && break; done
    rm -rf "$pgdir"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if url=$(./scripts/test-postgres.sh); then
  export TRANSIT_TEST_DATABASE_URL=$url
else
  echo "" >&2
  echo "!!! make test: NO POSTGRES: the store and integration tests cannot run against Postgres. !!!" >&2
  echo "!!! Set TRANSIT_TEST_DATABASE_URL, or install PostgreSQL.                                 !!!" >&2
  if [ "${CI:-}" = true ]; then
    echo "CI=true: this is a failure." >&2
    exit 1
  fi
fi

# A real Prometheus for the prometheus probe's test (Debian's package).
if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "make test: installing Debian's prometheus package for the probe test" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1; } ||
    echo "make test: could not install prometheus (the probe test says so, and fails under CI=true)" >&2
fi

# A real browser for the console's test (Debian's chromium package).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "make test: installing Debian's chromium package for the console test" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; } ||
    echo "make test: could not install chromium (the console test says so, and fails under CI=true)" >&2
fi

start=$(date +%s)
go vet ./... || exit 1
go build -o "$work/testreport" ./internal/testreport || exit 1
# With no arguments the whole suite runs, and must show that the real
# servers were used; a subset (make test ARGS) may not need them.
report_flags=()
[ $# -eq 0 ] && report_flags=(-require-servers)
# -json through testreport: package results, failures in full, which real
# servers were used, the figures measured, and "N passed, N failed".
go test -json -count=1 -timeout 20m "$@" ./... | "$work/testreport" "${report_flags[@]}"
rc=("${PIPESTATUS[@]}")
echo "make test: go test exited ${rc[0]}, report ${rc[1]}, after $(( $(date +%s) - start ))s"
[ "${rc[0]}" = 0 ] && [ "${rc[1]}" = 0 ]
