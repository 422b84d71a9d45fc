#!/bin/sh
# Creates Temporal's two databases on the postgres service and brings their
# schemas to the version of the server image, with the temporal-sql-tool of
# the admin-tools image (the steps the retired auto-setup image ran at every
# start). Safe to re-run: existing databases are kept, and update-schema
# applies only the versions not yet applied.
#
# Run by the temporal-schema service in docker-compose.yml (image
# temporalio/admin-tools); the temporal service starts once it has exited 0.
#
# Environment:
#   POSTGRES_SEEDS   postgres host
#   DB_PORT          its port (default 5432)
#   POSTGRES_USER    a role that may create databases
#   SQL_PASSWORD     its password (read by temporal-sql-tool)
set -eu

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS, e.g. postgres}"
: "${DB_PORT:=5432}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD}"
export SQL_PASSWORD
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

tool() {
	temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

attempt=1
until nc -z "$POSTGRES_SEEDS" "$DB_PORT"; do
	[ "$attempt" -ge 60 ] && { echo "temporal-schema: postgres at $POSTGRES_SEEDS:$DB_PORT never answered" >&2; exit 1; }
	echo "temporal-schema: waiting for postgres ($attempt/60)"
	attempt=$((attempt + 1))
	sleep 2
done

for db in temporal temporal_visibility; do
	dir=$SCHEMA_DIR/temporal/versioned
	[ "$db" = temporal_visibility ] && dir=$SCHEMA_DIR/visibility/versioned
	# create fails when the database exists: that is fine.
	tool --db "$db" create 2>/dev/null && echo "temporal-schema: created database $db" || echo "temporal-schema: database $db exists"
	tool --db "$db" setup-schema -v 0.0
	tool --db "$db" update-schema -d "$dir"
	echo "temporal-schema: $db is at the schema of this server image"
done
