package store_test

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// lane is an application with two environments and a release.
type lane struct {
	app, otherApp       *models.Application
	prod, staging, othr *models.Environment
	release             *models.Release
}

func seedLane(t *testing.T, s *store.Store) lane {
	t.Helper()
	ctx := context.Background()
	l := lane{app: seedApp(t, s, "checkout"), otherApp: seedApp(t, s, "billing")}
	mkEnv := func(app *models.Application, name string) *models.Environment {
		e := &models.Environment{ApplicationID: app.ID, Name: name,
			Policy: models.NewJSON(models.Policy{ApprovalsRequired: 1, ApproverGroups: []string{"release-managers"}})}
		require.NoError(t, s.CreateEnvironment(ctx, alice, e))
		return e
	}
	l.prod, l.staging, l.othr = mkEnv(l.app, "prod"), mkEnv(l.app, "staging"), mkEnv(l.otherApp, "prod")
	l.release = &models.Release{ApplicationID: l.app.ID, Version: "2.4.0",
		Artifacts: models.NewJSON([]models.Artifact{{Name: "api", Image: "checkout:2.4.0"}})}
	require.NoError(t, s.CreateRelease(ctx, alice, l.release))
	return l
}

func ptr[T any](v T) *T { return &v }

func subscription(url string, events ...models.NotifyEvent) *models.Subscription {
	return &models.Subscription{URL: url, Events: models.NewJSON(events), Secret: "env:HOOK_SECRET", Enabled: true,
		PublicURL: "https://transit.example.com"}
}

// A subscription is refused whole when any field is wrong, naming it, and
// nothing is written.
func TestSubscriptionValidation(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		cases := []struct {
			name  string
			sub   *models.Subscription
			field string
			says  string
		}{
			{"not http", subscription("ftp://hooks.example.com/x", models.NotifyCompleted), "url", "http:// or https://"},
			{"no host", subscription("https:///x", models.NotifyCompleted), "url", "names no host"},
			{"no url", subscription("", models.NotifyCompleted), "url", "is required"},
			{"no events", subscription("https://hooks.example.com/x"), "events", "is required"},
			{"unknown event", subscription("https://hooks.example.com/x", models.NotifyCompleted, "deployment.exploded"), "events[1]", `"deployment.exploded" is not an event`},
			{"secret held", func() *models.Subscription {
				sub := subscription("https://hooks.example.com/x", models.NotifyCompleted)
				sub.Secret = "hunter2"
				return sub
			}(), "secret", "env:VARIABLE or file:/absolute/path"},
			{"relative file", func() *models.Subscription {
				sub := subscription("https://hooks.example.com/x", models.NotifyCompleted)
				sub.Secret = "file:hook.key"
				return sub
			}(), "secret", "never hold its value"},
			{"bad format", func() *models.Subscription {
				sub := subscription("https://hooks.example.com/x", models.NotifyCompleted)
				sub.Format = "xml"
				return sub
			}(), "format", `"xml" must be json or slack`},
			{"no such application", func() *models.Subscription {
				sub := subscription("https://hooks.example.com/x", models.NotifyCompleted)
				sub.ApplicationID = ptr("app_missing")
				return sub
			}(), "application_id", `no application has id "app_missing"`},
			{"no such environment", func() *models.Subscription {
				sub := subscription("https://hooks.example.com/x", models.NotifyCompleted)
				sub.EnvironmentID = ptr("env_missing")
				return sub
			}(), "environment_id", `no environment has id "env_missing"`},
			{"another application's environment", func() *models.Subscription {
				sub := subscription("https://hooks.example.com/x", models.NotifyCompleted)
				sub.ApplicationID, sub.EnvironmentID = ptr(l.app.ID), ptr(l.othr.ID)
				return sub
			}(), "environment_id", "belongs to application " + l.otherApp.ID},
		}
		for _, c := range cases {
			err := s.CreateSubscription(ctx, alice, c.sub)
			require.ErrorIs(t, err, models.ErrInvalid, c.name)
			var ve *models.ValidationError
			require.ErrorAs(t, err, &ve, c.name)
			require.Equal(t, c.field, ve.Fields[0].Field, c.name)
			require.Contains(t, ve.Fields[0].Reason, c.says, c.name)
		}
		page, err := s.ListSubscriptions(ctx, store.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, page.Items, "a refused subscription is not written")

		// A good one: json by default, events without repeats; audited.
		sub := subscription("https://hooks.example.com/x", models.NotifyCompleted, models.NotifyFailed, models.NotifyCompleted)
		sub.ApplicationID, sub.EnvironmentID = ptr(l.app.ID), ptr(l.prod.ID)
		require.NoError(t, s.CreateSubscription(ctx, alice, sub))
		got, err := s.GetSubscription(ctx, sub.ID)
		require.NoError(t, err)
		require.Equal(t, models.FormatJSON, got.Format)
		require.Equal(t, []models.NotifyEvent{models.NotifyCompleted, models.NotifyFailed}, got.Events.V)
		require.Equal(t, l.prod.ID, *got.EnvironmentID)
		audit, err := s.ListAudit(ctx, store.AuditFilter{ResourceType: "subscription"}, 0, 10)
		require.NoError(t, err)
		require.Len(t, audit, 1)
		require.Equal(t, models.ActionCreate, audit[0].Action)

		// An update that breaks it changes nothing.
		_, err = s.UpdateSubscription(ctx, alice, sub.ID, func(s *models.Subscription) { s.URL = "gopher://x" })
		require.ErrorIs(t, err, models.ErrInvalid)
		got, err = s.GetSubscription(ctx, sub.ID)
		require.NoError(t, err)
		require.Equal(t, "https://hooks.example.com/x", got.URL)

		// The application its filter names cannot be deleted from under it.
		require.ErrorIs(t, s.DeleteEnvironment(ctx, alice, l.prod.ID), models.ErrConflict)
		require.NoError(t, s.DeleteSubscription(ctx, alice, sub.ID))
		_, err = s.GetSubscription(ctx, sub.ID)
		require.ErrorIs(t, err, models.ErrNotFound)
	})
}

// Each status a deployment reaches, the point of no return and each
// incident put one delivery per matching subscription in the outbox, in
// the transaction that records them: once, however often the write is
// retried, and only for the subscriptions whose filters match.
func TestOutboxQueuesEachEventOnce(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		all := subscription("https://hooks.example.com/all", models.NotifyEvents...)
		all.Format = models.FormatJSON
		prodOnly := subscription("https://hooks.example.com/prod", models.NotifyAwaitingApproval, models.NotifyCompleted)
		prodOnly.EnvironmentID = ptr(l.prod.ID)
		prodOnly.Format = models.FormatSlack
		stagingOnly := subscription("https://hooks.example.com/staging", models.NotifyEvents...)
		stagingOnly.EnvironmentID = ptr(l.staging.ID)
		otherApp := subscription("https://hooks.example.com/billing", models.NotifyEvents...)
		otherApp.ApplicationID = ptr(l.otherApp.ID)
		disabled := subscription("https://hooks.example.com/off", models.NotifyEvents...)
		disabled.Enabled = false
		for _, sub := range []*models.Subscription{all, prodOnly, stagingOnly, otherApp, disabled} {
			require.NoError(t, s.CreateSubscription(ctx, alice, sub))
		}

		d, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.prod.ID,
			ReleaseID: l.release.ID, ReleaseVersion: l.release.Version, Reason: "faster refunds"}, store.IdempotencyKey{})
		require.NoError(t, err)
		require.NoError(t, s.SavePlan(ctx, alice, d.ID, &models.Plan{Application: "checkout", Environment: "prod", ReleaseVersion: "2.4.0",
			Policy: models.Policy{ApprovalsRequired: 1, ApproverGroups: []string{"release-managers", "admin"}}}))

		var collected []store.PendingDelivery
		cctx, nd := store.CollectDeliveries(ctx, func(ds []store.PendingDelivery) { collected = append(collected, ds...) })
		worker := store.Actor{Subject: "transit-worker"}
		step := func(key string, st models.Status, msg string) store.Step {
			return store.Step{Key: key, Change: store.DeploymentChange{Status: &st}, Event: models.DeploymentEvent{Type: models.EventStatus, Message: msg}}
		}
		steps := []store.Step{
			step("r/1", models.StatusAwaitingApproval, "planned"),
			{Key: "r/2", Event: models.DeploymentEvent{Type: models.EventProgress, Message: "waiting for approvers"}},
			step("r/3", models.StatusScheduled, "approved"),
			step("r/4", models.StatusDeploying, "wave 1"),
			step("r/5", models.StatusPaused, "paused"),
			step("r/6", models.StatusDeploying, "resumed"), // not a second start
		}
		require.NoError(t, s.RecordSteps(cctx, worker, d.ID, steps))
		require.NoError(t, s.RecordSteps(cctx, worker, d.ID, steps), "a retried record")
		require.NoError(t, s.CommitLastKnownGood(cctx, worker, d.ID, nil, l.release.ID, "2.4.0"))
		require.NoError(t, s.CommitLastKnownGood(cctx, worker, d.ID, nil, l.release.ID, "2.4.0"), "a retried commit")
		inc := &models.Incident{ID: "inc_1", DeploymentID: d.ID, Severity: "high", Title: "error rate up", Source: "api"}
		_, err = s.CreateIncidentOnce(cctx, alice, inc)
		require.NoError(t, err)
		_, err = s.CreateIncidentOnce(cctx, alice, &models.Incident{ID: "inc_1", DeploymentID: d.ID, Severity: "high", Title: "error rate up"})
		require.NoError(t, err)
		require.NoError(t, s.RecordSteps(cctx, worker, d.ID, []store.Step{step("r/7", models.StatusCompleted, "handed over")}))
		nd.Flush()

		deliveries := func(sub *models.Subscription) []models.Delivery {
			page, err := s.ListDeliveries(ctx, sub.ID, store.ListOptions{Limit: 100})
			require.NoError(t, err)
			return page.Items
		}
		events := func(ds []models.Delivery) []string {
			var out []string
			for _, d := range ds {
				out = append(out, string(d.Event))
			}
			return out
		}
		require.Equal(t, []string{"deployment.awaiting_approval", "deployment.approved", "deployment.started",
			"deployment.point_of_no_return", "incident.opened", "deployment.completed"}, events(deliveries(all)))
		require.Equal(t, []string{"deployment.awaiting_approval", "deployment.completed"}, events(deliveries(prodOnly)))
		require.Empty(t, deliveries(stagingOnly), "another environment")
		require.Empty(t, deliveries(otherApp), "another application")
		require.Empty(t, deliveries(disabled), "a disabled subscription")

		// Every new delivery was collected once, for its workflow to start.
		var ids []string
		for _, p := range collected {
			ids = append(ids, p.ID)
		}
		var want []string
		for _, d := range append(deliveries(all), deliveries(prodOnly)...) {
			want = append(want, d.ID)
			require.Equal(t, models.DeliveryPending, d.Status)
		}
		sort.Strings(ids)
		sort.Strings(want)
		require.Equal(t, want, ids)

		// The bodies: built when the event happened, with the links.
		var n models.Notification
		first := deliveries(all)[0]
		require.NoError(t, json.Unmarshal([]byte(first.Body), &n))
		require.Equal(t, first.ID, n.ID)
		require.Equal(t, models.NotifyAwaitingApproval, n.Event)
		require.Equal(t, "checkout", n.Deployment.Application)
		require.Equal(t, "prod", n.Deployment.Environment)
		require.Equal(t, "2.4.0", n.Deployment.ReleaseVersion)
		require.Equal(t, models.StatusAwaitingApproval, n.Deployment.Status)
		require.Equal(t, "faster refunds", n.Deployment.Reason)
		require.Equal(t, "https://transit.example.com/api/v1/deployments/"+d.ID, n.Deployment.URL)
		require.NotNil(t, n.Approval)
		require.Equal(t, []string{"release-managers", "admin"}, n.Approval.ApproverGroups)
		require.Equal(t, 1, n.Approval.Required)
		require.Equal(t, "https://transit.example.com/approvals", n.Approval.URL)
		require.NoError(t, json.Unmarshal([]byte(deliveries(all)[4].Body), &n))
		require.Equal(t, "error rate up", n.Incident.Title)
		require.Equal(t, "alice", n.Incident.ReportedBy)
		require.NoError(t, json.Unmarshal([]byte(deliveries(all)[5].Body), &n))
		require.Equal(t, models.StatusCompleted, n.Deployment.Status)

		var slack models.SlackMessage
		require.NoError(t, json.Unmarshal([]byte(deliveries(prodOnly)[0].Body), &slack))
		require.Contains(t, slack.Text, "checkout 2.4.0 to prod is awaiting approval")
		require.Len(t, slack.Blocks, 2)
		require.Equal(t, "actions", slack.Blocks[1].Type)
		require.Equal(t, "https://transit.example.com/approvals", slack.Blocks[1].Elements[0].URL)

		// Filters of the deliveries list.
		page, err := s.ListDeliveries(ctx, all.ID, store.ListOptions{Filters: map[string]string{"event": "incident.opened"}})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		_, err = s.ListDeliveries(ctx, "sub_missing", store.ListOptions{})
		require.ErrorIs(t, err, models.ErrNotFound)

		// A subscription's deliveries go with it.
		require.NoError(t, s.DeleteSubscription(ctx, alice, prodOnly.ID))
		var left int64
		require.NoError(t, s.DB().Table("notification_deliveries").Where("subscription_id = ?", prodOnly.ID).Count(&left).Error)
		require.Zero(t, left)
	})
}

// A deployment whose policy needs no approval asks no one; a deployment
// that could not start is told as failed.
func TestOutboxSkipsWhatNoOneIsAsked(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		sub := subscription("https://hooks.example.com/all", models.NotifyEvents...)
		require.NoError(t, s.CreateSubscription(ctx, alice, sub))
		d, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.staging.ID,
			ReleaseID: l.release.ID, ReleaseVersion: "2.4.0"}, store.IdempotencyKey{})
		require.NoError(t, err)
		require.NoError(t, s.SavePlan(ctx, alice, d.ID, &models.Plan{Policy: models.Policy{ApprovalsRequired: 0}}))
		st := models.StatusAwaitingApproval
		require.NoError(t, s.RecordStep(ctx, alice, d.ID, "r/1", store.DeploymentChange{Status: &st}, models.DeploymentEvent{Type: models.EventStatus}))
		d2, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.staging.ID,
			ReleaseID: l.release.ID, ReleaseVersion: "2.4.0"}, store.IdempotencyKey{})
		require.NoError(t, err)
		require.NoError(t, s.FailDeploymentStart(ctx, alice, d2.ID, "Temporal did not answer"))

		page, err := s.ListDeliveries(ctx, sub.ID, store.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.Equal(t, d2.ID, page.Items[0].DeploymentID)
		require.Equal(t, models.NotifyFailed, page.Items[0].Event)
	})
}

// What the delivery workflow records: each try, and the end.
func TestDeliveryAttemptsAndSweep(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		sub := subscription("https://hooks.example.com/all", models.NotifyFailed)
		require.NoError(t, s.CreateSubscription(ctx, alice, sub))
		var ids []string
		for range 2 {
			d, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.prod.ID,
				ReleaseID: l.release.ID, ReleaseVersion: "2.4.0"}, store.IdempotencyKey{})
			require.NoError(t, err)
			require.NoError(t, s.FailDeploymentStart(ctx, alice, d.ID, "no Temporal"))
		}
		page, err := s.ListDeliveries(ctx, sub.ID, store.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 2)
		for _, d := range page.Items {
			ids = append(ids, d.ID)
		}

		// The sweeper sees both, once they are old enough.
		pending, err := s.UnstartedDeliveries(ctx, time.Now().Add(-time.Minute), 10)
		require.NoError(t, err)
		require.Empty(t, pending)
		pending, err = s.UnstartedDeliveries(ctx, time.Now().Add(time.Second), 10)
		require.NoError(t, err)
		require.Len(t, pending, 2)
		require.Equal(t, sub.URL, pending[0].URL)
		require.NoError(t, s.MarkDeliveriesStarted(ctx, ids[:1]))
		pending, err = s.UnstartedDeliveries(ctx, time.Now().Add(time.Second), 10)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, ids[1], pending[0].ID)

		// Tries: a 503, then a 200; a delivered one stays delivered.
		at := time.Now()
		require.NoError(t, s.RecordDeliveryAttempt(ctx, ids[0], store.DeliveryAttempt{Status: models.DeliveryRetrying, StatusCode: 503,
			Error: "POST answered 503", At: at}))
		require.NoError(t, s.RecordDeliveryAttempt(ctx, ids[0], store.DeliveryAttempt{Status: models.DeliveryDelivered, StatusCode: 200, At: at}))
		require.NoError(t, s.RecordDeliveryAttempt(ctx, ids[0], store.DeliveryAttempt{Status: models.DeliveryRetrying, StatusCode: 503, At: at}))
		require.NoError(t, s.GiveUpDelivery(ctx, ids[0], "gave up"))
		d, _, err := s.DeliveryToSend(ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, models.DeliveryDelivered, d.Status)
		require.Equal(t, 2, d.Attempts)
		require.Equal(t, 200, d.LastStatusCode)
		require.NotNil(t, d.DeliveredAt)

		// A refusal ends it; giving up keeps the last error.
		require.NoError(t, s.RecordDeliveryAttempt(ctx, ids[1], store.DeliveryAttempt{Status: models.DeliveryRetrying, StatusCode: 0,
			Error: "connection refused", At: at}))
		d, _, err = s.DeliveryToSend(ctx, ids[1])
		require.NoError(t, err)
		require.NotNil(t, d.StartedAt, "a try shows that its workflow runs")
		require.NoError(t, s.GiveUpDelivery(ctx, ids[1], "not delivered within 24h; last error: connection refused"))
		d, _, err = s.DeliveryToSend(ctx, ids[1])
		require.NoError(t, err)
		require.Equal(t, models.DeliveryFailed, d.Status)
		require.Contains(t, d.LastError, "connection refused")
		pending, err = s.UnstartedDeliveries(ctx, time.Now().Add(time.Second), 10)
		require.NoError(t, err)
		require.Empty(t, pending)
	})
}

// The upgrade to the schema with subscriptions keeps the deployments and
// their timelines, and the outbox works on them at once.
func TestSubscriptionsMigrationKeepsDeployments(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			s := unmigrated(t, dialect)
			require.NoError(t, s.MigrateTo(ctx, subscriptionsVersion-1))
			// Rows as the schema before it had them (raw: today's models
			// may have columns it lacks).
			at := time.Now().UTC()
			for _, stmt := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO applications (id, name, owner_team, created_by, created_at, updated_at) VALUES ('app_1', 'checkout', 'web', 'alice', ?, ?)`, []any{at, at}},
				{`INSERT INTO environments (id, application_id, name, policy, created_by, created_at, updated_at)
					VALUES ('env_1', 'app_1', 'prod', '{"approvals_required":1}', 'alice', ?, ?)`, []any{at, at}},
				{`INSERT INTO releases (id, application_id, version, artifacts, entry_criteria, created_by, created_at)
					VALUES ('rel_1', 'app_1', '2.4.0', '[]', '{}', 'alice', ?)`, []any{at}},
				{`INSERT INTO deployments (id, application_id, environment_id, release_id, release_version, requested_by, status, workflow_id, created_at, updated_at)
					VALUES ('dep_1', 'app_1', 'env_1', 'rel_1', '2.4.0', 'alice', 'planning', 'deployment-dep_1', ?, ?)`, []any{at, at}},
				{`INSERT INTO deployment_events (deployment_id, event_key, at, type, status, message) VALUES ('dep_1', 'submitted', ?, 'submitted', 'planning', 'alice asked')`, []any{at}},
			} {
				require.NoError(t, s.DB().Exec(stmt.sql, stmt.args...).Error)
			}
			d := &models.Deployment{ID: "dep_1"}

			require.NoError(t, s.Migrate(ctx))
			v, err := s.SchemaVersion(ctx)
			require.NoError(t, err)
			require.GreaterOrEqual(t, v, subscriptionsVersion)
			events, err := s.ListDeploymentEvents(ctx, d.ID, 0, 10)
			require.NoError(t, err)
			require.Len(t, events, 1, "the submitted line is kept")

			sub := subscription("https://hooks.example.com/all", models.NotifyEvents...)
			require.NoError(t, s.CreateSubscription(ctx, alice, sub))
			st := models.StatusRejected
			require.NoError(t, s.RecordStep(ctx, alice, d.ID, "r/1", store.DeploymentChange{Status: &st},
				models.DeploymentEvent{Type: models.EventStatus, Message: "entry criteria: failed"}))
			page, err := s.ListDeliveries(ctx, sub.ID, store.ListOptions{})
			require.NoError(t, err)
			require.Len(t, page.Items, 1)
			require.Equal(t, models.NotifyRejected, page.Items[0].Event)
			require.NoError(t, s.Migrate(ctx), "migrating again is a no-op")
		})
	}
}

// subscriptionsVersion is the migration that made the subscriptions.
const subscriptionsVersion = 10

// A notification that cannot be queued never fails the record it rides
// on: the deployment's step lands without it.
func TestOutboxNeverFailsTheRecord(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		l := seedLane(t, s)
		require.NoError(t, s.CreateSubscription(ctx, alice, subscription("https://hooks.example.com/all", models.NotifyEvents...)))
		d, _, err := s.CreateDeployment(ctx, alice, &models.Deployment{ApplicationID: l.app.ID, EnvironmentID: l.prod.ID,
			ReleaseID: l.release.ID, ReleaseVersion: "2.4.0"}, store.IdempotencyKey{})
		require.NoError(t, err)
		require.NoError(t, s.DB().Exec(`DROP TABLE notification_deliveries`).Error) // the outbox is broken

		st := models.StatusRejected
		require.NoError(t, s.RecordStep(ctx, alice, d.ID, "r/1", store.DeploymentChange{Status: &st},
			models.DeploymentEvent{Type: models.EventStatus, Message: "entry criteria: failed"}))
		got, err := s.GetDeployment(ctx, d.ID)
		require.NoError(t, err)
		require.Equal(t, models.StatusRejected, got.Status)
		events, err := s.ListDeploymentEvents(ctx, d.ID, 0, 10)
		require.NoError(t, err)
		require.Len(t, events, 2)
	})
}
