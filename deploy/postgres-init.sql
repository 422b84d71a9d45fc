-- Creates Transit's role and database when the postgres service in
-- docker-compose.yml starts on an empty data volume (the postgres image runs
-- /docker-entrypoint-initdb.d/ only then: after editing this file, recreate
-- the volume with `docker compose down -v`).
--
-- Temporal's databases (temporal, temporal_visibility) are not made here:
-- the temporal-schema service creates them and their schemas.
-- Keep the name and password in step with TRANSIT_DATABASE_URL.
CREATE ROLE transit WITH LOGIN PASSWORD 'transit';
CREATE DATABASE transit OWNER transit;
