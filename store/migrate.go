package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// migration is one versioned schema change. Statements use {{ts}} for a
// timestamp column, {{json}} for a JSON column and {{serial}} for an
// auto-increment primary key, written per dialect.
type migration struct {
	Version int
	Name    string
	Both    []string // for both dialects
	PG      []string // Postgres only, after Both
	SQLite  []string // SQLite only, after Both
}

// migrations is the schema's history. Never edit a released migration: add
// a new one.
var migrations = []migration{
	{
		Version: 1,
		Name:    "catalog",
		Both: []string{
			`CREATE TABLE applications (
				id TEXT PRIMARY KEY,
				name TEXT NOT NULL UNIQUE,
				owner_team TEXT NOT NULL,
				description TEXT NOT NULL DEFAULT '',
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL)`,
			`CREATE TABLE environments (
				id TEXT PRIMARY KEY,
				application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE RESTRICT,
				name TEXT NOT NULL,
				position INTEGER NOT NULL DEFAULT 0,
				policy {{json}} NOT NULL,
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL,
				UNIQUE (application_id, name))`,
			`CREATE TABLE targets (
				id TEXT PRIMARY KEY,
				environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE RESTRICT,
				name TEXT NOT NULL,
				driver TEXT NOT NULL,
				config {{json}} NOT NULL,
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL,
				UNIQUE (environment_id, name))`,
			`CREATE TABLE releases (
				id TEXT PRIMARY KEY,
				application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE RESTRICT,
				version TEXT NOT NULL,
				artifacts {{json}} NOT NULL,
				notes TEXT NOT NULL DEFAULT '',
				entry_criteria {{json}} NOT NULL,
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				UNIQUE (application_id, version))`,
		},
	},
	{
		Version: 2,
		Name:    "audit log and API tokens",
		Both: []string{
			// before/after are TEXT, not JSONB: the hash covers their exact bytes.
			`CREATE TABLE audit_events (
				seq BIGINT PRIMARY KEY,
				at {{ts}} NOT NULL,
				actor TEXT NOT NULL,
				action TEXT NOT NULL,
				resource_type TEXT NOT NULL,
				resource_id TEXT NOT NULL,
				before TEXT,
				after TEXT,
				request_id TEXT NOT NULL DEFAULT '',
				prev_hash TEXT NOT NULL,
				hash TEXT NOT NULL)`,
			`CREATE INDEX audit_events_resource ON audit_events (resource_type, resource_id)`,
			`CREATE TABLE api_tokens (
				id TEXT PRIMARY KEY,
				subject TEXT NOT NULL,
				groups {{json}} NOT NULL,
				description TEXT NOT NULL DEFAULT '',
				hash TEXT NOT NULL UNIQUE,
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				expires_at {{ts}},
				revoked_at {{ts}})`,
		},
		PG: []string{
			`CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
			END $$`,
			`CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
				FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`,
			`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
				FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()`,
		},
		SQLite: []string{
			`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
				BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END`,
			`CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
				BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END`,
		},
	},
	{
		Version: 3,
		Name:    "target labels",
		Both: []string{
			`ALTER TABLE targets ADD COLUMN labels {{json}} NOT NULL DEFAULT '{}'`,
			`CREATE INDEX environments_application ON environments (application_id, position)`,
			`CREATE INDEX releases_application ON releases (application_id)`,
		},
	},
	{
		Version: 4,
		Name:    "deployments",
		Both: []string{
			`CREATE TABLE deployments (
				id TEXT PRIMARY KEY,
				application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE RESTRICT,
				environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE RESTRICT,
				release_id TEXT NOT NULL REFERENCES releases(id) ON DELETE RESTRICT,
				release_version TEXT NOT NULL,
				scenario TEXT NOT NULL DEFAULT '',
				strategy {{json}},
				not_before {{ts}},
				retain_data BOOLEAN NOT NULL DEFAULT FALSE,
				reason TEXT NOT NULL DEFAULT '',
				requested_by TEXT NOT NULL,
				status TEXT NOT NULL,
				wave_index INTEGER NOT NULL DEFAULT 0,
				wave_count INTEGER NOT NULL DEFAULT 0,
				plan {{json}},
				outcome TEXT NOT NULL DEFAULT '',
				workflow_id TEXT NOT NULL,
				ponr_at {{ts}},
				els_ends_at {{ts}},
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL,
				finished_at {{ts}})`,
			`CREATE INDEX deployments_lane ON deployments (application_id, environment_id, status)`,
			`CREATE TABLE idempotency_keys (
				subject TEXT NOT NULL,
				idem_key TEXT NOT NULL,
				deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
				created_at {{ts}} NOT NULL,
				PRIMARY KEY (subject, idem_key))`,
			`CREATE TABLE approvals (
				deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE RESTRICT,
				approver TEXT NOT NULL,
				decision TEXT NOT NULL,
				comment TEXT NOT NULL DEFAULT '',
				via TEXT NOT NULL,
				at {{ts}} NOT NULL,
				PRIMARY KEY (deployment_id, approver))`,
			`CREATE TABLE deployment_targets (
				deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE RESTRICT,
				target_id TEXT NOT NULL REFERENCES targets(id) ON DELETE RESTRICT,
				target_name TEXT NOT NULL,
				wave INTEGER NOT NULL,
				status TEXT NOT NULL,
				from_version TEXT NOT NULL DEFAULT '',
				to_version TEXT NOT NULL DEFAULT '',
				message TEXT NOT NULL DEFAULT '',
				updated_at {{ts}} NOT NULL,
				PRIMARY KEY (deployment_id, target_id))`,
			`CREATE TABLE deployment_events (
				id {{serial}},
				deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE RESTRICT,
				event_key TEXT NOT NULL,
				at {{ts}} NOT NULL,
				type TEXT NOT NULL,
				status TEXT NOT NULL DEFAULT '',
				message TEXT NOT NULL DEFAULT '',
				data {{json}},
				UNIQUE (deployment_id, event_key))`,
			`CREATE TABLE incidents (
				id TEXT PRIMARY KEY,
				deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE RESTRICT,
				severity TEXT NOT NULL,
				title TEXT NOT NULL,
				source TEXT NOT NULL DEFAULT '',
				status TEXT NOT NULL,
				reported_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				resolved_at {{ts}})`,
			`CREATE INDEX incidents_deployment ON incidents (deployment_id, status)`,
			`CREATE TABLE target_states (
				target_id TEXT PRIMARY KEY REFERENCES targets(id) ON DELETE CASCADE,
				current_release_id TEXT NOT NULL DEFAULT '',
				current_version TEXT NOT NULL DEFAULT '',
				last_known_good_id TEXT NOT NULL DEFAULT '',
				last_known_good_ver TEXT NOT NULL DEFAULT '',
				updated_by_deployment TEXT NOT NULL DEFAULT '',
				updated_at {{ts}} NOT NULL)`,
			`CREATE TABLE simulated_targets (
				target_id TEXT PRIMARY KEY,
				version TEXT NOT NULL DEFAULT '',
				changes INTEGER NOT NULL DEFAULT 0,
				updated_at {{ts}} NOT NULL)`,
		},
	},
	{
		Version: 5,
		Name:    "idempotency request fingerprint",
		Both: []string{
			`ALTER TABLE idempotency_keys ADD COLUMN request_hash TEXT NOT NULL DEFAULT ''`,
		},
	},
	{
		Version: 6,
		Name:    "deployment holds",
		Both: []string{
			// What keeps a deployment from going on: a freeze, a window, a pause.
			`ALTER TABLE deployments ADD COLUMN hold {{json}}`,
			// GET /audit?actor=alice
			`CREATE INDEX audit_events_actor ON audit_events (actor, seq)`,
		},
	},
	{
		Version: 7,
		Name:    "deployment list filters",
		Both: []string{
			// GET /deployments?<filter>=…: a page is a range of one index,
			// in id order, however many rows there are.
			`CREATE INDEX deployments_by_application ON deployments (application_id, id)`,
			`CREATE INDEX deployments_by_environment ON deployments (environment_id, id)`,
			`CREATE INDEX deployments_by_release ON deployments (release_id, id)`,
			`CREATE INDEX deployments_by_status ON deployments (status, id)`,
			`CREATE INDEX deployments_by_requester ON deployments (requested_by, id)`,
		},
	},
	{
		Version: auditPendingVersion,
		Name:    "audit events pending their seal",
		Both: []string{
			// Written by each transaction without a lock; chained into
			// audit_events soon after they commit, in id order, by the
			// sealer (store/audit.go).
			`CREATE TABLE audit_pending (
				id {{serial}},
				at {{ts}} NOT NULL,
				actor TEXT NOT NULL,
				action TEXT NOT NULL,
				resource_type TEXT NOT NULL,
				resource_id TEXT NOT NULL,
				before TEXT,
				after TEXT,
				request_id TEXT NOT NULL DEFAULT '')`,
		},
	},
	{
		Version: 9,
		Name:    "token roles and teams",
		Both: []string{
			`ALTER TABLE api_tokens ADD COLUMN teams {{json}} NOT NULL DEFAULT '[]'`,
			`ALTER TABLE api_tokens ADD COLUMN roles {{json}} NOT NULL DEFAULT '[]'`,
			// Tokens keep what they could do: the admin group's are
			// admins; every other could deploy and manage releases.
			`UPDATE api_tokens SET roles = '["deployer","release_manager"]'`,
		},
		PG: []string{
			`UPDATE api_tokens SET roles = '["admin"]' WHERE groups @> '["admin"]'`,
		},
		SQLite: []string{
			`UPDATE api_tokens SET roles = '["admin"]' WHERE EXISTS (SELECT 1 FROM json_each(api_tokens.groups) WHERE value = 'admin')`,
		},
	},
	{
		Version: 10,
		Name:    "notification subscriptions and their outbox",
		Both: []string{
			`CREATE TABLE notification_subscriptions (
				id TEXT PRIMARY KEY,
				url TEXT NOT NULL,
				events {{json}} NOT NULL,
				application_id TEXT REFERENCES applications(id) ON DELETE RESTRICT,
				environment_id TEXT REFERENCES environments(id) ON DELETE RESTRICT,
				secret TEXT NOT NULL,
				format TEXT NOT NULL DEFAULT 'json',
				enabled BOOLEAN NOT NULL DEFAULT TRUE,
				description TEXT NOT NULL DEFAULT '',
				public_url TEXT NOT NULL DEFAULT '',
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL)`,
			// The outbox: written in the transaction that records the
			// event, sent afterwards by a workflow per row. body is TEXT:
			// it is signed, byte for byte, as it was built.
			`CREATE TABLE notification_deliveries (
				id TEXT PRIMARY KEY,
				subscription_id TEXT NOT NULL REFERENCES notification_subscriptions(id) ON DELETE CASCADE,
				deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
				event TEXT NOT NULL,
				event_key TEXT NOT NULL DEFAULT '',
				body TEXT NOT NULL,
				status TEXT NOT NULL,
				attempts INTEGER NOT NULL DEFAULT 0,
				last_error TEXT NOT NULL DEFAULT '',
				last_status_code INTEGER NOT NULL DEFAULT 0,
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL,
				started_at {{ts}},
				last_attempt_at {{ts}},
				delivered_at {{ts}},
				UNIQUE (subscription_id, deployment_id, event, event_key))`,
			`CREATE INDEX notification_deliveries_by_subscription ON notification_deliveries (subscription_id, id)`,
			// The sweeper's question: which deliveries have no workflow yet.
			`CREATE INDEX notification_deliveries_unstarted ON notification_deliveries (id) WHERE started_at IS NULL`,
		},
	},
	{
		Version: 11,
		Name:    "emergency changes; standard_change replaces auto_approve_standard_changes",
		Both: []string{
			`ALTER TABLE deployments ADD COLUMN emergency {{json}}`,
		},
		// A policy that asked to auto-approve standard changes (which did
		// nothing) gets the strictest standard change: a risk-0 upgrade.
		PG: []string{
			`UPDATE environments SET policy = (policy - 'auto_approve_standard_changes') ||
				CASE WHEN policy->>'auto_approve_standard_changes' = 'true'
				THEN '{"standard_change":{"max_risk":0,"scenarios":["upgrade"]}}'::jsonb ELSE '{}'::jsonb END
				WHERE jsonb_exists(policy, 'auto_approve_standard_changes')`,
		},
		SQLite: []string{
			`UPDATE environments SET policy = CASE WHEN json_extract(policy, '$.auto_approve_standard_changes') = 1
				THEN json_set(json_remove(policy, '$.auto_approve_standard_changes'), '$.standard_change', json('{"max_risk":0,"scenarios":["upgrade"]}'))
				ELSE json_remove(policy, '$.auto_approve_standard_changes') END
				WHERE json_extract(policy, '$.auto_approve_standard_changes') IS NOT NULL`,
		},
	},
	{
		Version: 12,
		Name:    "known errors; incidents resolved with a resolution, linked to a known error",
		Both: []string{
			`CREATE TABLE known_errors (
				id TEXT PRIMARY KEY,
				application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE RESTRICT,
				release_id TEXT NOT NULL DEFAULT '',
				title TEXT NOT NULL,
				description TEXT NOT NULL DEFAULT '',
				workaround TEXT NOT NULL DEFAULT '',
				severity TEXT NOT NULL,
				status TEXT NOT NULL,
				created_by TEXT NOT NULL,
				created_at {{ts}} NOT NULL,
				updated_at {{ts}} NOT NULL,
				resolved_at {{ts}})`,
			`CREATE INDEX known_errors_by_application ON known_errors (application_id, id)`,
			`ALTER TABLE incidents ADD COLUMN resolution TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE incidents ADD COLUMN known_error_id TEXT NOT NULL DEFAULT ''`,
			// The outbox's rows go with their deployment (ON DELETE CASCADE).
			`CREATE INDEX notification_deliveries_by_deployment ON notification_deliveries (deployment_id)`,
		},
	},
}

// auditPendingVersion is the migration that made audit_pending.
const auditPendingVersion = 8

// LatestVersion is the schema version this build migrates to.
func LatestVersion() int { return migrations[len(migrations)-1].Version }

// Migrate brings the schema to the latest version.
func (s *Store) Migrate(ctx context.Context) error { return s.MigrateTo(ctx, LatestVersion()) }

// MigrateTo applies every migration up to and including version, each in its
// own transaction. On Postgres an advisory lock lets several processes start
// at once.
func (s *Store) MigrateTo(ctx context.Context, version int) error {
	db := s.db.WithContext(ctx)
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := s.lockMigrations(tx); err != nil {
			return err
		}
		return tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at ` + s.colType("ts") + ` NOT NULL)`).Error
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if m.Version > version {
			break
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := s.lockMigrations(tx); err != nil {
				return err
			}
			var n int64
			if err := tx.Table("schema_migrations").Where("version = ?", m.Version).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			stmts := append([]string{}, m.Both...)
			if s.dialect == DialectPostgres {
				stmts = append(stmts, m.PG...)
			} else {
				stmts = append(stmts, m.SQLite...)
			}
			for _, stmt := range stmts {
				if err := tx.Exec(s.expand(stmt)).Error; err != nil {
					return fmt.Errorf("%w\n%s", err, s.expand(stmt))
				}
			}
			return tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, time.Now().UTC()).Error
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
	}
	// From the version that made audit_pending, audit events are sealed
	// into the chain after they commit (see appendAudit): by the schema as
	// it is, which may be newer than version.
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	s.pendingAudit = s.dialect == DialectPostgres && v >= auditPendingVersion
	return nil
}

// lockMigrations serialises migrating processes on Postgres (a server and a
// worker starting together) until tx ends; SQLite has one writer anyway.
func (s *Store) lockMigrations(tx *gorm.DB) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	return tx.Exec(`SELECT pg_advisory_xact_lock(727368)`).Error
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v *int
	if err := s.db.WithContext(ctx).Raw(`SELECT MAX(version) FROM schema_migrations`).Scan(&v).Error; err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

func (s *Store) colType(kind string) string {
	switch {
	case kind == "ts" && s.dialect == DialectPostgres:
		return "TIMESTAMPTZ"
	case kind == "ts":
		return "DATETIME"
	case kind == "json" && s.dialect == DialectPostgres:
		return "JSONB"
	case kind == "serial" && s.dialect == DialectPostgres:
		return "BIGSERIAL PRIMARY KEY"
	case kind == "serial":
		return "INTEGER PRIMARY KEY AUTOINCREMENT"
	default:
		return "TEXT"
	}
}

func (s *Store) expand(stmt string) string {
	return strings.NewReplacer("{{ts}}", s.colType("ts"), "{{json}}", s.colType("json"), "{{serial}}", s.colType("serial")).Replace(stmt)
}
