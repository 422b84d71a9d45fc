#!/usr/bin/env bash
# make bench: benchmarks against a real Temporal dev server and Postgres.
# Each prints its figures and a ratio against a baseline measured in the
# same run (see integration/bench_test.go).
set -euo pipefail
cd "$(dirname "$0")/.."
export TRANSIT_TEMPORAL_BIN=${TRANSIT_TEMPORAL_BIN:-$PWD/bin/temporal}
TRANSIT_TEST_DATABASE_URL=$(./scripts/test-postgres.sh)
export TRANSIT_TEST_DATABASE_URL
# -p 1: one package at a time, so that the store's benchmark does not load
# the integration one's figures.
go test -p 1 -run '^$' -bench . -benchtime "${BENCHTIME:-1x}" -count 1 -timeout 30m ./store/ ./integration/ "$@"
