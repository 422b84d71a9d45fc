package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/transit-hq/transit/internal/testenv"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

var alice = store.Actor{Subject: "alice", RequestID: "req-1"}

// dialects runs fn against a fresh SQLite file and a fresh Postgres database.
func dialects(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, open(t, "sqlite://"+filepath.Join(t.TempDir(), "transit.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, open(t, testenv.PostgresURL(t)))
	})
}

func open(t *testing.T, url string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func seedApp(t *testing.T, s *store.Store, name string) *models.Application {
	t.Helper()
	app := &models.Application{Name: name, OwnerTeam: "payments"}
	require.NoError(t, s.CreateApplication(context.Background(), alice, app))
	return app
}

func TestCatalogLifecycle(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		app := seedApp(t, s, "checkout")
		require.Equal(t, "alice", app.CreatedBy)

		got, err := s.GetApplication(ctx, "checkout")
		require.NoError(t, err)
		require.Equal(t, app.ID, got.ID, "an application is found by name too")

		err = s.CreateApplication(ctx, alice, &models.Application{Name: "checkout", OwnerTeam: "x"})
		require.ErrorIs(t, err, models.ErrConflict)

		env := &models.Environment{ApplicationID: app.ID, Name: "prod", Position: 2,
			Policy: models.NewJSON(models.Policy{ApprovalsRequired: 2, ApproverGroups: []string{"release-managers"}})}
		require.NoError(t, s.CreateEnvironment(ctx, alice, env))
		loaded, err := s.GetEnvironment(ctx, env.ID)
		require.NoError(t, err)
		require.Equal(t, 2, loaded.Policy.V.ApprovalsRequired)
		require.Equal(t, models.Duration(models.DefaultApprovalExpiry), loaded.Policy.V.ApprovalExpiry, "defaults are stored explicitly")

		tgt := &models.Target{EnvironmentID: env.ID, Name: "eu-1", Driver: models.DriverSimulated,
			Config: models.NewJSON(json.RawMessage(`{"failure_rate":0.1}`))}
		require.NoError(t, s.CreateTarget(ctx, alice, tgt))

		rel := &models.Release{ApplicationID: app.ID, Version: "1.2.0",
			Artifacts: models.NewJSON([]models.Artifact{{Name: "api", Image: "checkout:1.2.0"}})}
		require.NoError(t, s.CreateRelease(ctx, alice, rel))
		err = s.CreateRelease(ctx, alice, &models.Release{ApplicationID: app.ID, Version: "1.2.0",
			Artifacts: models.NewJSON([]models.Artifact{{Name: "api", Version: "1"}})})
		require.ErrorIs(t, err, models.ErrConflict, "a version is unique per application")

		// Deletes are refused while something refers to the resource.
		err = s.DeleteApplication(ctx, alice, app.ID)
		require.ErrorIs(t, err, models.ErrConflict)
		require.Contains(t, err.Error(), "1 environment and 1 release")
		err = s.DeleteEnvironment(ctx, alice, env.ID)
		require.ErrorIs(t, err, models.ErrConflict)
		require.NoError(t, s.DeleteTarget(ctx, alice, tgt.ID))
		require.NoError(t, s.DeleteEnvironment(ctx, alice, env.ID))
		require.NoError(t, s.DeleteRelease(ctx, alice, rel.ID))
		require.NoError(t, s.DeleteApplication(ctx, alice, app.ID))
		_, err = s.GetApplication(ctx, app.ID)
		require.ErrorIs(t, err, models.ErrNotFound)

		rep, err := s.VerifyAudit(ctx)
		require.NoError(t, err)
		require.True(t, rep.OK, rep.Reason)
		require.EqualValues(t, 8, rep.Checked, "4 creates and 4 deletes are audited; the refused writes are not")
	})
}

func TestInvalidWriteChangesNothing(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		app := seedApp(t, s, "billing")
		before, err := s.ListAudit(ctx, store.AuditFilter{}, 0, 100)
		require.NoError(t, err)

		err = s.CreateTarget(ctx, alice, &models.Target{EnvironmentID: "env_missing", Name: "x", Driver: models.DriverSimulated})
		require.ErrorIs(t, err, models.ErrInvalid)
		err = s.CreateRelease(ctx, alice, &models.Release{ApplicationID: app.ID, Version: "1.2", Artifacts: models.NewJSON([]models.Artifact{{Name: "a", Version: "1"}})})
		require.ErrorIs(t, err, models.ErrInvalid)
		require.Contains(t, err.Error(), "looks like semver")

		after, err := s.ListAudit(ctx, store.AuditFilter{}, 0, 100)
		require.NoError(t, err)
		require.Len(t, after, len(before))
		page, err := s.ListTargets(ctx, store.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, page.Items)
	})
}

func TestListPaginatesAndFilters(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i := 0; i < 7; i++ {
			team := "a"
			if i%2 == 1 {
				team = "b"
			}
			require.NoError(t, s.CreateApplication(ctx, alice, &models.Application{Name: fmt.Sprintf("app-%d", i), OwnerTeam: team}))
		}
		var names []string
		opt := store.ListOptions{Limit: 3}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 5)
			page, err := s.ListApplications(ctx, opt)
			require.NoError(t, err)
			for _, a := range page.Items {
				names = append(names, a.Name)
			}
			if page.NextCursor == "" {
				break
			}
			opt.After = page.NextCursor
		}
		require.Equal(t, []string{"app-0", "app-1", "app-2", "app-3", "app-4", "app-5", "app-6"}, names)

		// Newest first (the console's lists), paged back by the cursor.
		names = nil
		opt = store.ListOptions{Limit: 3, Newest: true, Filters: map[string]string{"owner_team": "a"}}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 5)
			page, err := s.ListApplications(ctx, opt)
			require.NoError(t, err)
			for _, a := range page.Items {
				names = append(names, a.Name)
			}
			if page.NextCursor == "" {
				break
			}
			opt.After = page.NextCursor
		}
		require.Equal(t, []string{"app-6", "app-4", "app-2", "app-0"}, names)

		page, err := s.ListApplications(ctx, store.ListOptions{Filters: map[string]string{"owner_team": "b"}})
		require.NoError(t, err)
		require.Len(t, page.Items, 3)
	})
}

func TestAuditChainDetectsTampering(t *testing.T) {
	ctx := context.Background()
	s := open(t, testenv.PostgresURL(t))
	app := seedApp(t, s, "ledger")
	_, err := s.UpdateApplication(ctx, alice, app.ID, func(a *models.Application) { a.OwnerTeam = "finance" })
	require.NoError(t, err)
	seedApp(t, s, "ledger-2")

	rep, err := s.VerifyAudit(ctx)
	require.NoError(t, err)
	require.True(t, rep.OK)
	require.EqualValues(t, 3, rep.HeadSeq)

	// The trigger refuses UPDATE and DELETE, even to the owner.
	err = s.DB().Exec(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 2`).Error
	require.ErrorContains(t, err, "append-only")
	err = s.DB().Exec(`DELETE FROM audit_events WHERE seq = 3`).Error
	require.ErrorContains(t, err, "append-only")

	// The owner can get past it by disabling the trigger; verify still tells.
	require.NoError(t, s.DB().Exec(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`).Error)
	require.NoError(t, s.DB().Exec(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 2`).Error)
	require.NoError(t, s.DB().Exec(`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`).Error)

	rep, err = s.VerifyAudit(ctx)
	require.NoError(t, err)
	require.False(t, rep.OK)
	require.EqualValues(t, 2, rep.BrokenSeq)
	require.Contains(t, rep.Reason, "changed after it was written")
}

func TestAuditAppendOnlyOnSQLite(t *testing.T) {
	s := open(t, "sqlite://"+filepath.Join(t.TempDir(), "t.db"))
	seedApp(t, s, "x")
	require.ErrorContains(t, s.DB().Exec(`UPDATE audit_events SET actor = 'm'`).Error, "append-only")
	require.ErrorContains(t, s.DB().Exec(`DELETE FROM audit_events`).Error, "append-only")
}

// unmigrated is a store on an empty database of the dialect, with no
// schema yet: a test migrates it to the version it starts from.
func unmigrated(t *testing.T, dialect string) *store.Store {
	t.Helper()
	url := "sqlite://" + filepath.Join(t.TempDir(), "old.db")
	if dialect == "postgres" {
		url = testenv.PostgresURL(t)
	}
	s, err := store.Connect(url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// The upgrade from the previous schema version keeps existing rows.
func TestMigrationFromPreviousVersionKeepsRows(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s := unmigrated(t, dialect)
			prev := store.LatestVersion() - 1
			require.NoError(t, s.MigrateTo(ctx, prev))
			v, err := s.SchemaVersion(ctx)
			require.NoError(t, err)
			require.Equal(t, prev, v)

			// Rows written by the previous version.
			app := seedApp(t, s, "legacy")
			env := &models.Environment{ApplicationID: app.ID, Name: "prod", Policy: models.NewJSON(models.Policy{ApprovalsRequired: 1})}
			require.NoError(t, s.CreateEnvironment(ctx, alice, env))
			tgt := &models.Target{EnvironmentID: env.ID, Name: "t1", Driver: models.DriverSimulated, Config: models.NewJSON(json.RawMessage(`{}`))}
			require.NoError(t, s.CreateTarget(ctx, alice, tgt))
			require.NoError(t, s.Migrate(ctx))
			v, err = s.SchemaVersion(ctx)
			require.NoError(t, err)
			require.Equal(t, store.LatestVersion(), v)

			got, err := s.GetApplication(ctx, app.ID)
			require.NoError(t, err)
			require.Equal(t, "legacy", got.Name)
			gotEnv, err := s.GetEnvironment(ctx, env.ID)
			require.NoError(t, err)
			require.Equal(t, 1, gotEnv.Policy.V.ApprovalsRequired)
			gotT, err := s.GetTarget(ctx, tgt.ID)
			require.NoError(t, err)
			require.Equal(t, "t1", gotT.Name)
			rep, err := s.VerifyAudit(ctx)
			require.NoError(t, err)
			require.True(t, rep.OK)
			require.EqualValues(t, 3, rep.Checked)
			// Migrating again is a no-op.
			require.NoError(t, s.Migrate(ctx))
		})
	}
}

// Tokens made before roles existed (schema 8) keep what they could do.
func TestTokensFromBeforeRolesKeepTheirPowers(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s := unmigrated(t, dialect)
			require.NoError(t, s.MigrateTo(ctx, 8))
			// Tokens from before roles: the admin group's and another.
			secrets := map[string]string{"root": store.NewTokenSecret(), "carol": store.NewTokenSecret()}
			for subject, groups := range map[string]string{"root": `["admin"]`, "carol": `["release-managers"]`} {
				require.NoError(t, s.DB().Exec(`INSERT INTO api_tokens (id, subject, groups, description, hash, created_by, created_at)
					VALUES (?, ?, ?, '', ?, 'test', ?)`, models.NewID(models.PrefixToken), subject, groups,
					models.HashToken(secrets[subject]), time.Now()).Error)
			}

			require.NoError(t, s.Migrate(ctx))
			// Each token keeps what it could do: the admin stays admin,
			// the other may deploy and manage releases, in no team.
			root, err := s.Authenticate(ctx, secrets["root"])
			require.NoError(t, err)
			require.Equal(t, []string{models.RoleAdmin}, root.Roles.V)
			require.True(t, root.Principal().IsAdmin())
			carol, err := s.Authenticate(ctx, secrets["carol"])
			require.NoError(t, err)
			require.Equal(t, []string{models.RoleDeployer, models.RoleReleaseManager}, carol.Roles.V)
			require.Empty(t, carol.Teams.V)
			require.False(t, carol.Principal().IsAdmin())
		})
	}
}

func TestTokens(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		secret := store.NewTokenSecret()
		tok := &models.APIToken{Subject: "bob", Groups: models.NewJSON([]string{"release-managers"})}
		require.NoError(t, s.CreateToken(ctx, alice, tok, secret))
		got, err := s.Authenticate(ctx, secret)
		require.NoError(t, err)
		require.Equal(t, "bob", got.Subject)
		require.NotEqual(t, secret, got.Hash, "only the hash is stored")

		_, err = s.Authenticate(ctx, secret+"x")
		require.ErrorIs(t, err, models.ErrUnauthenticated)

		p, live, err := s.PrincipalOf(ctx, "bob")
		require.NoError(t, err)
		require.Len(t, live, 1)
		require.Equal(t, []string{"release-managers"}, p.Groups)

		_, err = s.RevokeToken(ctx, alice, tok.ID)
		require.NoError(t, err)
		_, err = s.Authenticate(ctx, secret)
		require.ErrorIs(t, err, models.ErrUnauthenticated)

		past := time.Now().Add(-time.Hour)
		err = s.CreateToken(ctx, alice, &models.APIToken{Subject: "c", ExpiresAt: &past}, store.NewTokenSecret())
		require.ErrorIs(t, err, models.ErrInvalid)
	})
}

// A resolve that read the incident as open is refused when another
// resolve came first: the timeline and the audit log say it only once.
func TestStaleIncidentUpdateIsRefused(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		d, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.prod.ID,
			ReleaseID: l.release.ID, ReleaseVersion: l.release.Version, Reason: "faster refunds"}, store.IdempotencyKey{})
		require.NoError(t, err)
		require.NoError(t, s.CreateIncident(ctx, alice, &models.Incident{ID: "inc_1", DeploymentID: d.ID, Severity: "high", Title: "error rate up"}))
		timeline := func() []models.DeploymentEvent {
			evs, err := s.ListDeploymentEvents(ctx, d.ID, 0, 100)
			require.NoError(t, err)
			return evs
		}
		before := timeline()

		// The other resolve lands between this one's read and its update.
		raced := false
		require.NoError(t, s.DB().Callback().Query().After("gorm:query").Register("test:other_resolve", func(tx *gorm.DB) {
			if !raced && tx.Statement.Table == "incidents" {
				raced = true
				require.NoError(t, tx.Session(&gorm.Session{NewDB: true}).
					Exec("UPDATE incidents SET status = ? WHERE id = ?", models.IncidentResolved, "inc_1").Error)
			}
		}))
		_, err = s.ResolveIncident(ctx, alice, d.ID, "inc_1", "rolled back")
		require.ErrorIs(t, err, models.ErrConflict)
		require.True(t, raced)

		require.Equal(t, before, timeline(), "no second timeline line")
		audits, err := s.ListAudit(ctx, store.AuditFilter{ResourceType: "incident", Action: models.ActionUpdate}, 0, 100)
		require.NoError(t, err)
		require.Empty(t, audits, "no audit of open → resolved from a stale read")
	})
}

// The console shows a deployment's newest events, oldest first.
func TestLastDeploymentEvents(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		d, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.prod.ID,
			ReleaseID: l.release.ID, ReleaseVersion: l.release.Version}, store.IdempotencyKey{})
		require.NoError(t, err)
		var steps []store.Step
		for i := 1; i <= 5; i++ {
			steps = append(steps, store.Step{Key: fmt.Sprintf("r/%d", i), Event: models.DeploymentEvent{Type: models.EventProgress, Message: fmt.Sprintf("step %d", i)}})
		}
		require.NoError(t, s.RecordSteps(ctx, store.Actor{Subject: "transit-worker"}, d.ID, steps))
		all, err := s.ListDeploymentEvents(ctx, d.ID, 0, 100)
		require.NoError(t, err)
		last, err := s.LastDeploymentEvents(ctx, d.ID, 3)
		require.NoError(t, err)
		require.Equal(t, all[len(all)-3:], last)
		require.Equal(t, "step 5", last[2].Message)
	})
}

// Concurrent writers on Postgres keep the audit chain whole: appends are
// serialised, so no two rows share a predecessor.
func TestConcurrentWritesKeepTheChain(t *testing.T) {
	ctx := context.Background()
	s := open(t, testenv.PostgresURL(t))
	const writers = 50
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		go func(i int) {
			errs <- s.CreateApplication(ctx, store.Actor{Subject: fmt.Sprintf("w%d", i)},
				&models.Application{Name: fmt.Sprintf("concurrent-%d", i), OwnerTeam: "x"})
		}(i)
	}
	for i := 0; i < writers; i++ {
		require.NoError(t, <-errs)
	}
	rep, err := s.VerifyAudit(ctx)
	require.NoError(t, err)
	require.True(t, rep.OK, rep.Reason)
	require.EqualValues(t, writers, rep.HeadSeq)
}

func TestSeedDemoCompletesAPartialCatalog(t *testing.T) {
	ctx := context.Background()
	s := open(t, "sqlite://"+filepath.Join(t.TempDir(), "demo.db"))
	// A run cut short after the application and one environment.
	app := seedApp(t, s, store.DemoApplication)
	require.NoError(t, s.CreateEnvironment(ctx, alice, &models.Environment{ApplicationID: app.ID, Name: "dev"}))

	require.NoError(t, store.SeedDemo(ctx, s))
	require.NoError(t, store.SeedDemo(ctx, s), "seeding twice changes nothing")
	envs, err := s.ListEnvironments(ctx, store.ListOptions{Filters: map[string]string{"application_id": app.ID}})
	require.NoError(t, err)
	require.Len(t, envs.Items, 3)
	targets, err := s.ListTargets(ctx, store.ListOptions{Limit: 100})
	require.NoError(t, err)
	require.Len(t, targets.Items, 15)
	rels, err := s.ListReleases(ctx, store.ListOptions{})
	require.NoError(t, err)
	require.Len(t, rels.Items, 1)
}
