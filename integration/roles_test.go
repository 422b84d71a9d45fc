package integration

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/api"
	"github.com/transit-hq/transit/models"
)

// Every route, for every role, on this team's objects and another team's:
// the status each gets. Allowed requests are made so that they reach the
// handler and stop there (a 422 for an invalid body, a 404 for an id that
// does not exist) or do something harmless; refused ones get a 403 before
// the handler runs. The test fails when a route has no case.
func TestEveryRouteForEveryRole(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := models.Policy{ApprovalsRequired: 1, SelfApprovalAllowed: true,
		Strategy: models.Strategy{Kind: models.StrategyRolling, Batch: 1, MaxFailures: 0}}
	type teamApp struct{ app, env, target, release, deployment string }
	mk := func(name, team string) teamApp {
		var a teamApp
		a.app = s.must(201, "POST", "/api/v1/applications", map[string]any{"name": name, "owner_team": team}).str("id")
		a.env = s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": a.app, "name": "prod", "policy": policy}).str("id")
		a.target = s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": a.env, "name": "box-1", "driver": "simulated",
			"config": json.RawMessage(`{"latency_min":"10ms","latency_max":"20ms"}`)}).str("id")
		a.release = s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": a.app, "version": "1.0.0",
			"artifacts": []map[string]string{{"name": name, "image": name + ":1"}}}).str("id")
		a.deployment = s.deploy(s.admin, map[string]any{"release": a.release, "environment": a.env})
		s.waitStatus(a.deployment, 30*time.Second, models.StatusAwaitingApproval)
		return a
	}
	alpha, beta := mk("alpha-shop", "alpha"), mk("beta-shop", "beta")

	const (
		viewer, deployer, manager, auditor, admin = "viewer", "deployer", "release_manager", "auditor", "admin"
	)
	roles := []string{viewer, deployer, manager, auditor, admin}
	tokens := map[string]string{admin: s.admin}
	for _, r := range roles[:4] {
		tokens[r] = s.issue(models.APIToken{Subject: "as-" + r, Teams: models.NewJSON([]string{"alpha"}), Roles: models.NewJSON([]string{r})})
	}
	who := s.call("GET", "/api/v1/whoami", tokens[deployer], nil)
	require.Equal(t, `["deployer"]`, who.str("roles"))
	require.Equal(t, `["alpha"]`, who.str("teams"))

	var (
		everyone = roles
		readers  = []string{viewer, deployer, manager, admin}
		audit    = []string{viewer, deployer, manager, auditor, admin}
		managers = []string{manager, admin}
		admins   = []string{admin}
		ownTeam  = []string{deployer, manager, admin} // on alpha's objects, for a deployer of alpha
	)
	longReason := map[string]any{"reason": strings.Repeat("x", 5000)}
	deployA := func() map[string]any { return map[string]any{"release": alpha.release, "environment": alpha.env} }
	type tc struct {
		route   string // the rule's key, METHOD and the route's pattern
		path    string
		body    any
		allowed []string
		status  int // what an allowed role gets
	}
	cases := []tc{
		{"GET /api/v1", "/api/v1", nil, everyone, 200},
		{"GET /api/v1/whoami", "/api/v1/whoami", nil, everyone, 200},

		{"GET /api/v1/applications", "/api/v1/applications", nil, readers, 200},
		{"GET /api/v1/applications/:id", "/api/v1/applications/" + beta.app, nil, readers, 200},
		{"POST /api/v1/applications", "/api/v1/applications", map[string]any{"name": ""}, managers, 422},
		// A deployer renames no application, not even its own team's.
		{"PATCH /api/v1/applications/:id", "/api/v1/applications/" + alpha.app, map[string]any{"name": "Not A Name"}, managers, 422},
		{"DELETE /api/v1/applications/:id", "/api/v1/applications/app_missing", nil, managers, 404},

		{"GET /api/v1/environments", "/api/v1/environments", nil, readers, 200},
		{"GET /api/v1/environments/:id", "/api/v1/environments/" + beta.env, nil, readers, 200},
		{"POST /api/v1/environments", "/api/v1/environments", map[string]any{"application_id": alpha.app, "name": ""}, admins, 422},
		{"PATCH /api/v1/environments/:id", "/api/v1/environments/" + alpha.env, map[string]any{"position": -1}, admins, 422},
		{"DELETE /api/v1/environments/:id", "/api/v1/environments/env_missing", nil, admins, 404},

		{"GET /api/v1/targets", "/api/v1/targets", nil, readers, 200},
		{"GET /api/v1/targets/:id", "/api/v1/targets/" + beta.target, nil, readers, 200},
		{"POST /api/v1/targets", "/api/v1/targets", map[string]any{"environment_id": alpha.env, "name": "", "driver": "script"}, admins, 422},
		{"PATCH /api/v1/targets/:id", "/api/v1/targets/" + alpha.target, map[string]any{"name": "Not A Name"}, admins, 422},
		{"DELETE /api/v1/targets/:id", "/api/v1/targets/tgt_missing", nil, admins, 404},

		{"GET /api/v1/releases", "/api/v1/releases", nil, readers, 200},
		{"GET /api/v1/releases/:id", "/api/v1/releases/" + beta.release, nil, readers, 200},
		{"POST /api/v1/releases", "/api/v1/releases", map[string]any{"application_id": alpha.app}, managers, 422},
		// Another team's release is not a deployer's to delete.
		{"DELETE /api/v1/releases/:id", "/api/v1/releases/rel_missing", nil, managers, 404},

		{"GET /api/v1/deployments", "/api/v1/deployments", nil, readers, 200},
		{"GET /api/v1/schedule", "/api/v1/schedule?format=ics", nil, readers, 200},
		{"GET /api/v1/deployments/:id", "/api/v1/deployments/" + beta.deployment, nil, readers, 200},
		{"GET /api/v1/deployments/:id/events", "/api/v1/deployments/" + beta.deployment + "/events", nil, readers, 200},
		{"GET /api/v1/deployments/:id/incidents", "/api/v1/deployments/" + beta.deployment + "/incidents", nil, readers, 200},
		{"POST /api/v1/deployments", "/api/v1/deployments", deployA(), ownTeam, 201},
		{"POST /api/v1/deployments", "/api/v1/deployments", map[string]any{"release": beta.release, "environment": beta.env}, managers, 201},
		// Widening the environment's strategy at submit time.
		{"POST /api/v1/deployments", "/api/v1/deployments", map[string]any{"release": alpha.release, "environment": alpha.env,
			"strategy": map[string]any{"kind": "all_at_once", "max_failures": 10}}, managers, 201},
		// Tightening it is a deployer's right.
		{"POST /api/v1/deployments", "/api/v1/deployments", map[string]any{"release": alpha.release, "environment": alpha.env,
			"strategy": map[string]any{"kind": "rolling", "batch": 1, "max_failures": 0, "bake": "1m"}}, ownTeam, 201},
		// Anyone may send a vote; the policy decides whether it counts.
		{"POST /api/v1/deployments/:id/approvals", "/api/v1/deployments/" + beta.deployment + "/approvals", map[string]any{"decision": "maybe"}, everyone, 422},
	}
	for _, control := range []string{"pause", "resume", "abort", "rollback"} {
		route := "POST /api/v1/deployments/:id/" + control
		cases = append(cases,
			tc{route, "/api/v1/deployments/" + alpha.deployment + "/" + control, longReason, ownTeam, 422},
			// Another team's deployment: not a deployer's to abort.
			tc{route, "/api/v1/deployments/" + beta.deployment + "/" + control, longReason, managers, 422})
	}
	cases = append(cases,
		tc{"POST /api/v1/deployments/:id/incidents", "/api/v1/deployments/" + alpha.deployment + "/incidents", map[string]any{"severity": "nope"}, ownTeam, 422},
		tc{"POST /api/v1/deployments/:id/incidents", "/api/v1/deployments/" + beta.deployment + "/incidents", map[string]any{"severity": "nope"}, managers, 422},
		tc{"POST /api/v1/deployments/:id/incidents/:incident/resolve", "/api/v1/deployments/" + alpha.deployment + "/incidents/inc_missing/resolve", nil, ownTeam, 404},
		tc{"POST /api/v1/deployments/:id/incidents/:incident/resolve", "/api/v1/deployments/" + beta.deployment + "/incidents/inc_missing/resolve", nil, managers, 404},
		tc{"PATCH /api/v1/deployments/:id/incidents/:incident", "/api/v1/deployments/" + alpha.deployment + "/incidents/inc_missing", map[string]any{"resolution": "x"}, ownTeam, 404},
		tc{"PATCH /api/v1/deployments/:id/incidents/:incident", "/api/v1/deployments/" + beta.deployment + "/incidents/inc_missing", map[string]any{"resolution": "x"}, managers, 404},
		tc{"GET /api/v1/known-errors", "/api/v1/known-errors", nil, readers, 200},
		tc{"GET /api/v1/known-errors/:id", "/api/v1/known-errors/ke_missing", nil, readers, 404},
		tc{"POST /api/v1/known-errors", "/api/v1/known-errors", map[string]any{"application": alpha.app, "title": ""}, managers, 422},
		tc{"PATCH /api/v1/known-errors/:id", "/api/v1/known-errors/ke_missing", map[string]any{"title": "x"}, managers, 404},

		tc{"GET /api/v1/kpis", "/api/v1/kpis?application=" + beta.app, nil, audit, 200},
		tc{"GET /api/v1/audit", "/api/v1/audit", nil, audit, 200},
		tc{"GET /api/v1/audit/verify", "/api/v1/audit/verify", nil, audit, 200},
		tc{"GET /api/v1/audit/head", "/api/v1/audit/head", nil, audit, 200},

		tc{"GET /api/v1/tokens", "/api/v1/tokens", nil, admins, 200},
		tc{"POST /api/v1/tokens", "/api/v1/tokens", map[string]any{"subject": ""}, admins, 422},
		tc{"DELETE /api/v1/tokens/:id", "/api/v1/tokens/tok_missing", nil, admins, 404},

		tc{"GET /api/v1/subscriptions", "/api/v1/subscriptions", nil, admins, 200},
		tc{"POST /api/v1/subscriptions", "/api/v1/subscriptions", map[string]any{"url": "ftp://x", "events": []string{"deployment.completed"}}, admins, 422},
		tc{"GET /api/v1/subscriptions/:id", "/api/v1/subscriptions/sub_missing", nil, admins, 404},
		tc{"PATCH /api/v1/subscriptions/:id", "/api/v1/subscriptions/sub_missing", map[string]any{"enabled": false}, admins, 404},
		tc{"DELETE /api/v1/subscriptions/:id", "/api/v1/subscriptions/sub_missing", nil, admins, 404},
		tc{"GET /api/v1/subscriptions/:id/deliveries", "/api/v1/subscriptions/sub_missing/deliveries", nil, admins, 404},
	)

	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.route] = true
		method := strings.Fields(c.route)[0]
		for _, role := range roles {
			want := 403
			if slices.Contains(c.allowed, role) {
				want = c.status
			}
			r := s.call(method, c.path, tokens[role], c.body)
			require.Equal(t, want, r.Status, "%s %s as %s: %s", method, c.path, role, r.Raw)
			if want == 403 {
				require.Equal(t, "forbidden", r.str("error", "code"), r.Raw)
			}
		}
	}
	var missing []string
	for route := range api.RouteRules() {
		if !covered[route] {
			missing = append(missing, route)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "routes without a case in this test")

	// The refusals say why: the roles needed, or the team that owns it.
	r := s.call("POST", "/api/v1/deployments/"+beta.deployment+"/abort", tokens[deployer], nil)
	require.Equal(t, 403, r.Status)
	require.Contains(t, r.str("error", "message"), `owned by team "beta"`)
	r = s.call("POST", "/api/v1/deployments", tokens[deployer], map[string]any{"release": alpha.release, "environment": alpha.env,
		"strategy": map[string]any{"kind": "rolling", "batch": 1, "max_failures": 10}})
	require.Equal(t, 403, r.Status)
	require.Contains(t, r.str("error", "message"), "max_failures 10 is more than the environment's 0")
	r = s.call("POST", "/api/v1/tokens", tokens[viewer], map[string]any{"subject": "eve", "roles": []string{"admin"}})
	require.Equal(t, 403, r.Status)
	require.Regexp(t, regexp.MustCompile(`needs one of the roles: admin; you \(as-viewer\) have: viewer`), r.str("error", "message"))

	// A deployer really aborts its own team's deployment, and the audit
	// log names it.
	r = s.call("POST", "/api/v1/deployments/"+alpha.deployment+"/abort", tokens[deployer], map[string]any{"reason": "wrong build"})
	require.Equal(t, 200, r.Status, r.Raw)
	require.EventuallyWithT(t, func(c *assertCollect) {
		var actions []string
		for _, e := range s.must(200, "GET", "/api/v1/audit?actor=as-deployer", nil).items() {
			actions = append(actions, fmt.Sprint(e["resource_type"], " ", e["action"]))
		}
		for _, want := range []string{"deployment create", "deployment abort"} {
			if !slices.Contains(actions, want) {
				c.Errorf("the audit log has %v for as-deployer, not %q", actions, want)
			}
		}
	}, 20*time.Second, 200*time.Millisecond)

	// Tokens take roles and teams, and refuse unknown ones.
	made := s.must(201, "POST", "/api/v1/tokens", map[string]any{"subject": "erin", "roles": []string{"auditor"}, "teams": []string{"alpha"}})
	require.Equal(t, `["auditor"]`, made.str("roles"))
	r = s.call("POST", "/api/v1/tokens", s.admin, map[string]any{"subject": "erin", "roles": []string{"root"}})
	require.Equal(t, 422, r.Status)
	require.Contains(t, r.Raw, `unknown role \"root\"`)
}
