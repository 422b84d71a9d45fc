#!/usr/bin/env bash
# Prints an admin URL of a running Postgres for the tests, starting one if
# needed. Order: $TRANSIT_TEST_DATABASE_URL; this machine's cluster via
# pg_ctlcluster (as root; installs Debian's postgresql if absent; every test
# makes a database of its own in it); a private cluster made with
# initdb/pg_ctl in a fresh temporary folder on a free port (not root).
# Exits non-zero, saying why, when none of these works.
set -euo pipefail

say() { echo "test-postgres: $*" >&2; }

if [ -n "${TRANSIT_TEST_DATABASE_URL:-}" ]; then
  say "using TRANSIT_TEST_DATABASE_URL"
  echo "$TRANSIT_TEST_DATABASE_URL"
  exit 0
fi

user=transit_test
pass=transit_test

pgbin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] && { echo "$d"; return 0; }
  done
  return 1
}

if [ "$(id -u)" = 0 ]; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! pgbin >/dev/null; then
    say "PostgreSQL is not installed: installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
    ver=$(basename "$(dirname "$(pgbin)")")
    say "no cluster yet: creating $ver/main"
    pg_createcluster "$ver" main >&2
  fi
  read -r ver name port status _ < <(pg_lsclusters -h | head -n1)
  if [ "$status" != online ]; then
    say "starting cluster $ver/$name on port $port"
    pg_ctlcluster "$ver" "$name" start >&2
  fi
  for _ in $(seq 1 30); do
    su postgres -c "psql -p $port -Atqc 'select 1'" >/dev/null 2>&1 && break
    sleep 1
  done
  su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qAt" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE $user LOGIN CREATEDB PASSWORD '$pass';
  END IF;
END \$\$;
SQL
  echo "postgres://$user:$pass@127.0.0.1:$port/postgres?sslmode=disable"
  exit 0
fi

bin=$(pgbin) || { say "no PostgreSQL binaries found and not root: cannot start a database"; exit 1; }
# Not root: a private cluster of this run's own, in a fresh folder on a free
# port, so that two runs on one machine never share one. The caller stops it
# (scripts/test.sh does, on exit): its folder is written to
# $TRANSIT_TEST_PG_OWNED_FILE.
dir=$(mktemp -d "${TMPDIR:-/tmp}/transit-test-pg.XXXXXX")
say "initdb into $dir"
"$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync >&2
for _ in 1 2 3 4 5; do
  port=$(( 20000 + RANDOM % 40000 ))
  say "starting a private cluster on port $port"
  if "$bin/pg_ctl" -D "$dir" -l "$dir/log" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" -w start >&2; then
    [ -n "${TRANSIT_TEST_PG_OWNED_FILE:-}" ] && echo "$dir" > "$TRANSIT_TEST_PG_OWNED_FILE"
    echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    exit 0
  fi
done
say "could not start a private cluster (see $dir/log)"
exit 1
