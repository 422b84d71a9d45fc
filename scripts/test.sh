#!/usr/bin/env bash
# make test: every test, against a real Postgres and the pinned Temporal
# dev server. Under CI=true a missing Postgres or Temporal fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."

export TRANSIT_TEMPORAL_BIN=${TRANSIT_TEMPORAL_BIN:-$PWD/bin/temporal}
if [ ! -x "$TRANSIT_TEMPORAL_BIN" ]; then
  echo "make test: $TRANSIT_TEMPORAL_BIN is missing (make bin/temporal builds it)" >&2
  exit 1
fi

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

start=$(date +%s)
go vet ./... || exit 1
go build -o bin/testreport ./internal/testreport || exit 1
# -json through testreport: package results, failures in full, which real
# servers were used, the figures measured, and "N passed, N failed".
go test -json -count=1 -timeout 20m "$@" ./... | ./bin/testreport
rc=("${PIPESTATUS[@]}")
echo "make test: go test exited ${rc[0]}, report ${rc[1]}, after $(( $(date +%s) - start ))s"
[ "${rc[0]}" = 0 ] && [ "${rc[1]}" = 0 ]
