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
go test -count=1 -timeout 20m "$@" ./...
rc=$?
echo "make test: go test exited $rc after $(( $(date +%s) - start ))s"
exit $rc
