package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/api"
	"github.com/transit-hq/transit/models"
)

// openAPIRouter loads an OpenAPI document, validates it and routes
// requests to its operations.
func openAPIRouter(t testing.TB, raw []byte) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return doc, router
}

// bearerAuth is what the document's "bearer" scheme asks of a request.
func bearerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme, secret, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return in.NewError(errors.New("no bearer token"))
	}
	return nil
}

// exchange is one request and the answer to it.
type exchange struct {
	req      *http.Request
	reqBody  []byte
	status   int
	header   http.Header
	respBody []byte
}

// validateExchange checks the answer against the operation the request
// routes to: its status must be described, and its content type and body
// must match that response's schema. With checkRequest, the request must
// match the operation's parameters and body schema too (for requests the
// API accepts). It returns the operation, as "METHOD /path/{id}".
func validateExchange(router routers.Router, x exchange, checkRequest bool) (string, error) {
	route, params, err := router.FindRoute(x.req)
	if err != nil {
		return "", fmt.Errorf("%s %s is not described: %w", x.req.Method, x.req.URL.Path, err)
	}
	op := route.Method + " " + route.Path
	in := &openapi3filter.RequestValidationInput{Request: x.req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerAuth, MultiError: true}}
	ctx := context.Background()
	if checkRequest {
		x.req.Body = io.NopCloser(bytes.NewReader(x.reqBody))
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return op, fmt.Errorf("the request does not match %s: %w", op, err)
		}
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: x.status, Header: x.header, Body: io.NopCloser(bytes.NewReader(x.respBody)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}})
	if err != nil {
		return op, fmt.Errorf("the answer %d does not match %s: %w", x.status, op, err)
	}
	return op, nil
}

// apiChecker sends requests to a stack and checks every answer against the
// OpenAPI description the stack serves.
type apiChecker struct {
	t      *testing.T
	s      *stack
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool // "POST /api/v1/deployments 201"
}

func newAPIChecker(t *testing.T, s *stack) *apiChecker {
	t.Helper()
	// The description is public: no token.
	resp, err := http.Get(s.baseURL + "/api/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(raw))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, api.OpenAPI(), raw, "the server serves api/openapi.json as it is")
	_, router := openAPIRouter(t, raw)
	return &apiChecker{t: t, s: s, router: router, seen: map[string]bool{}}
}

// do sends the request with token ("" for none), requires the status, and
// checks the answer (and, for a 2xx, the request) against the description.
func (a *apiChecker) do(want int, method, path, token string, body any, headers ...string) response {
	a.t.Helper()
	x, out := a.s.send(method, path, token, body, headers...)
	require.Equal(a.t, want, x.status, "%s %s: %s", method, path, x.respBody)
	op, err := validateExchange(a.router, x, want < 300 && token != "")
	require.NoError(a.t, err, "%s %s → %d: %s", method, path, x.status, x.respBody)
	a.mu.Lock()
	a.seen[fmt.Sprintf("%s %d", op, x.status)] = true
	a.mu.Unlock()
	return out
}

// covered lists the operations and statuses checked so far.
func (a *apiChecker) covered() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.seen))
	for k := range a.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Real answers of a real stack (Postgres, the Temporal dev server, a
// worker) match api/openapi.json: the catalog, a deployment from submit to
// handover with votes, controls and incidents, the audit log, tokens, and
// the errors on the way.
func TestOpenAPIResponsesMatchTheDescription(t *testing.T) {
	s := newStack(t, stackOptions{})
	a := newAPIChecker(t, s)
	admin := s.admin
	alice := s.issueToken("alice", "release-managers")
	dave := s.issueToken("dave", "developers")
	viewer := s.issue(models.APIToken{Subject: "vera", Roles: models.NewJSON([]string{models.RoleViewer})})
	auditor := s.issue(models.APIToken{Subject: "otto", Roles: models.NewJSON([]string{models.RoleAuditor})})

	a.do(200, "GET", "/api/v1", admin, nil)
	a.do(200, "GET", "/api/v1/whoami", admin, nil)
	a.do(200, "GET", "/api/v1/whoami", viewer, nil)

	// The catalog.
	appID := a.do(201, "POST", "/api/v1/applications", admin, map[string]any{"name": "shop", "owner_team": "web", "description": "the shop"}).str("id")
	a.do(200, "GET", "/api/v1/applications", admin, nil)
	a.do(200, "GET", "/api/v1/applications?name=shop&owner_team=web&limit=1", admin, nil)
	a.do(200, "GET", "/api/v1/applications/"+appID, admin, nil)
	a.do(200, "GET", "/api/v1/applications/shop", viewer, nil)
	a.do(200, "PATCH", "/api/v1/applications/"+appID, admin, map[string]any{"description": "the web shop"})

	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1, Bake: models.Duration(4 * time.Second)}
	envID := a.do(201, "POST", "/api/v1/environments", admin, map[string]any{"application_id": "shop", "name": "prod", "position": 2, "policy": policy}).str("id")
	// A canary policy, with steps as counts and percentages, windows and freezes.
	stagingID := a.do(201, "POST", "/api/v1/environments", admin, map[string]any{"application_id": appID, "name": "staging", "position": 1,
		"policy": map[string]any{"strategy": map[string]any{"kind": "canary", "steps": []any{1, "50%", "100%"}, "bake": "1m", "max_total_failures": 1},
			"change_windows": []map[string]any{{"days": []string{"tue", "wed"}, "start": "09:00", "end": "16:00", "timezone": "Europe/Paris"}},
			"freezes":        []map[string]any{{"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z", "reason": "year end"}}}}).str("id")
	a.do(200, "PATCH", "/api/v1/environments/"+stagingID, admin, map[string]any{"position": 0})
	a.do(200, "GET", "/api/v1/environments", admin, nil)
	a.do(200, "GET", "/api/v1/environments?application_id=shop&name=prod", admin, nil)
	a.do(200, "GET", "/api/v1/environments/"+envID, admin, nil)

	var targets []string
	for i := 1; i <= 3; i++ {
		targets = append(targets, a.do(201, "POST", "/api/v1/targets", admin, map[string]any{"environment_id": envID, "name": fmt.Sprintf("prod-%02d", i),
			"driver": "simulated", "config": json.RawMessage(`{"latency_min":"300ms","latency_max":"300ms"}`),
			"labels": map[string]string{"zone": fmt.Sprintf("z%d", i)}}).str("id"))
	}
	// A target without labels shows them as null.
	spare := a.do(201, "POST", "/api/v1/targets", admin, map[string]any{"environment_id": stagingID, "name": "staging-01", "driver": "simulated"}).str("id")
	a.do(200, "PATCH", "/api/v1/targets/"+targets[0], admin, map[string]any{"labels": map[string]string{"zone": "z1", "canary": "yes"}})
	a.do(200, "GET", "/api/v1/targets", admin, nil)
	a.do(200, "GET", "/api/v1/targets?environment_id="+envID+"&driver=simulated&limit=2", admin, nil)
	a.do(200, "GET", "/api/v1/targets/"+targets[0], admin, nil)
	a.do(204, "DELETE", "/api/v1/targets/"+spare, admin, nil)

	relID := a.do(201, "POST", "/api/v1/releases", admin, map[string]any{"application_id": appID, "version": "1.0.0", "notes": "first",
		"artifacts":      []map[string]string{{"name": "shop", "image": "shop:1.0.0", "digest": "sha256:" + strings.Repeat("ab", 32)}},
		"entry_criteria": map[string]string{"tests": "passed"}}).str("id")
	oldID := a.do(201, "POST", "/api/v1/releases", admin, map[string]any{"application_id": "shop", "version": "0.9.0",
		"artifacts": []map[string]string{{"name": "shop", "version": "0.9.0"}}}).str("id")
	a.do(200, "GET", "/api/v1/releases", admin, nil)
	a.do(200, "GET", "/api/v1/releases?application_id=shop&version=1.0.0", admin, nil)
	a.do(200, "GET", "/api/v1/releases/"+relID, admin, nil)
	a.do(204, "DELETE", "/api/v1/releases/"+oldID, admin, nil)

	// A deployment, from submit to handover.
	submit := map[string]any{"release": relID, "environment": "prod", "reason": "launch"}
	dep := a.do(201, "POST", "/api/v1/deployments", admin, submit, "Idempotency-Key", "launch-1")
	id := dep.str("deployment", "id")
	a.do(200, "POST", "/api/v1/deployments", admin, submit, "Idempotency-Key", "launch-1")
	a.do(409, "POST", "/api/v1/deployments", admin, map[string]any{"release": relID, "environment": "prod", "reason": "other"}, "Idempotency-Key", "launch-1")
	a.do(422, "POST", "/api/v1/deployments", admin, map[string]any{"release": relID, "environment": "prod", "scenario": "sideways"})
	a.do(422, "POST", "/api/v1/deployments", admin, map[string]any{"application": "shop", "version": "9.9.9", "environment": "prod"})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	require.NotNil(t, a.do(200, "GET", "/api/v1/deployments/"+id, admin, nil).get("live"), "a running deployment has its live state")

	a.do(403, "POST", "/api/v1/deployments/"+id+"/approvals", dave, map[string]any{"decision": "approve"})  // not an approver
	a.do(403, "POST", "/api/v1/deployments/"+id+"/approvals", admin, map[string]any{"decision": "approve"}) // not one either
	a.do(422, "POST", "/api/v1/deployments/"+id+"/approvals", dave, map[string]any{"decision": "maybe"})
	a.do(200, "POST", "/api/v1/deployments/"+id+"/approvals", alice, map[string]any{"decision": "approve", "comment": "go"}, "Idempotency-Key", "vote-1")

	s.waitStatus(id, 30*time.Second, models.StatusDeploying)
	a.do(200, "POST", "/api/v1/deployments/"+id+"/pause", admin, map[string]any{"reason": "checking dashboards"})
	s.waitStatus(id, 30*time.Second, models.StatusPaused)
	a.do(409, "POST", "/api/v1/deployments/"+id+"/pause", admin, nil)
	require.NotNil(t, a.do(200, "GET", "/api/v1/deployments/"+id, admin, nil).get("deployment", "hold"), "a paused deployment is held")
	a.do(200, "POST", "/api/v1/deployments/"+id+"/resume", admin, nil)

	inc := a.do(201, "POST", "/api/v1/deployments/"+id+"/incidents", admin, map[string]any{"severity": "low", "title": "slow page"}).str("id")
	a.do(422, "POST", "/api/v1/deployments/"+id+"/incidents", admin, map[string]any{"severity": "meh", "title": "x"})
	a.do(200, "GET", "/api/v1/deployments/"+id+"/incidents", viewer, nil)
	a.do(200, "POST", "/api/v1/deployments/"+id+"/incidents/"+inc+"/resolve", admin, map[string]any{"comment": "cache warmed"})
	a.do(404, "POST", "/api/v1/deployments/"+id+"/incidents/inc_nope/resolve", admin, nil)

	d := s.waitStatus(id, 90*time.Second, models.TerminalStatuses...)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	a.do(200, "GET", "/api/v1/deployments/"+id, viewer, nil) // ended: the row alone
	a.do(409, "POST", "/api/v1/deployments/"+id+"/abort", admin, map[string]any{"reason": "too late"})
	a.do(409, "POST", "/api/v1/deployments/"+id+"/approvals", alice, map[string]any{"decision": "reject"})
	a.do(200, "GET", "/api/v1/deployments", admin, nil)
	a.do(200, "GET", "/api/v1/deployments?include=plan&application_id=shop&status=completed", admin, nil)
	a.do(200, "GET", "/api/v1/deployments?environment_id="+envID+"&release_id="+relID+"&requested_by=admin&limit=1", viewer, nil)
	events := a.do(200, "GET", "/api/v1/deployments/"+id+"/events?limit=5", admin, nil)
	require.NotEmpty(t, events.str("next_cursor"))
	a.do(200, "GET", "/api/v1/deployments/"+id+"/events?cursor="+url.QueryEscape(events.str("next_cursor")), admin, nil)
	a.do(400, "GET", "/api/v1/deployments?include=everything", admin, nil)
	a.do(409, "DELETE", "/api/v1/releases/"+relID, admin, nil) // a deployment refers to it

	// The audit log.
	page := a.do(200, "GET", "/api/v1/audit?limit=3", admin, nil)
	a.do(200, "GET", "/api/v1/audit?cursor="+page.str("next_cursor")+"&resource_id="+appID+"&actor=admin&action=update&resource_type=application", admin, nil)
	a.do(200, "GET", "/api/v1/audit?since="+url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))+
		"&until="+url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), admin, nil)
	a.do(400, "GET", "/api/v1/audit?since=yesterday", admin, nil)
	a.do(200, "GET", "/api/v1/audit/verify", auditor, nil)
	head := a.do(200, "GET", "/api/v1/audit/head", admin, nil)
	a.do(200, "GET", "/api/v1/audit/head?seq=1", admin, nil)
	a.do(404, "GET", "/api/v1/audit/head?seq=999999", admin, nil)
	a.do(400, "GET", "/api/v1/audit/head?seq=first", admin, nil)
	savedHead, err := json.Marshal(map[string]any{"seq": head.get("seq"), "hash": head.get("hash"), "at": head.get("at"),
		"signed_at": head.get("signed_at"), "key_id": head.get("key_id"), "signature": head.get("signature")})
	require.NoError(t, err)
	a.do(200, "GET", "/api/v1/audit/verify?head="+url.QueryEscape(string(savedHead)), admin, nil)
	a.do(422, "GET", "/api/v1/audit/verify?head=nonsense", admin, nil)

	// Tokens.
	tok := a.do(201, "POST", "/api/v1/tokens", admin, map[string]any{"subject": "ci", "roles": []string{"deployer"}, "teams": []string{"web"},
		"description": "the CI", "expires_at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)})
	a.do(201, "POST", "/api/v1/tokens", admin, map[string]any{"subject": "bot"}) // no groups, teams or roles
	a.do(200, "GET", "/api/v1/tokens", admin, nil)
	a.do(200, "GET", "/api/v1/tokens?subject=ci", admin, nil)
	a.do(200, "GET", "/api/v1/whoami", tok.str("token"), nil)
	a.do(200, "DELETE", "/api/v1/tokens/"+tok.str("id"), admin, nil)
	a.do(401, "GET", "/api/v1/whoami", tok.str("token"), nil) // revoked
	a.do(404, "DELETE", "/api/v1/tokens/tok_nope", admin, nil)
	a.do(422, "POST", "/api/v1/tokens", admin, map[string]any{"subject": "x", "roles": []string{"overlord"}})

	// Errors, in their one shape.
	a.do(401, "GET", "/api/v1/applications", "", nil)
	a.do(401, "GET", "/api/v1/deployments/"+id, "trt_"+strings.Repeat("x", 30), nil)
	a.do(403, "POST", "/api/v1/applications", viewer, map[string]any{"name": "other", "owner_team": "web"})
	a.do(403, "GET", "/api/v1/tokens", viewer, nil)
	a.do(403, "GET", "/api/v1/applications", auditor, nil)
	a.do(404, "GET", "/api/v1/applications/nope", admin, nil)
	a.do(404, "GET", "/api/v1/environments/env_nope", admin, nil)
	a.do(404, "GET", "/api/v1/targets/tgt_nope", admin, nil)
	a.do(404, "GET", "/api/v1/releases/rel_nope", admin, nil)
	a.do(404, "GET", "/api/v1/deployments/dep_nope", admin, nil)
	a.do(404, "GET", "/api/v1/deployments/dep_nope/events", admin, nil)
	a.do(404, "GET", "/api/v1/deployments/dep_nope/incidents", admin, nil)
	a.do(404, "POST", "/api/v1/deployments/dep_nope/pause", admin, nil)
	a.do(422, "POST", "/api/v1/applications", admin, map[string]any{"name": "Bad Name!", "owner_team": "web"})
	a.do(422, "POST", "/api/v1/environments", admin, map[string]any{"application_id": appID, "name": "qa",
		"policy": map[string]any{"strategy": map[string]any{"kind": "canary"}}})
	a.do(422, "POST", "/api/v1/targets", admin, map[string]any{"environment_id": envID, "name": "t", "driver": "ftp"})
	a.do(422, "POST", "/api/v1/releases", admin, map[string]any{"application_id": appID, "version": "2.4", "artifacts": []map[string]string{{"name": "a", "version": "2.4"}}})
	a.do(422, "GET", "/api/v1/applications?name=a%00b", admin, nil)
	a.do(409, "POST", "/api/v1/applications", admin, map[string]any{"name": "shop", "owner_team": "web"})
	a.do(409, "DELETE", "/api/v1/applications/"+appID, admin, nil)
	a.do(400, "POST", "/api/v1/applications", admin, `{"name":"x","owner_team":"y","colour":"red"}`)
	a.do(400, "PATCH", "/api/v1/environments/"+envID, admin, `{"policy":{"approval_expiry":"soon"}}`)
	a.do(400, "GET", "/api/v1/applications?limit=0", admin, nil)
	a.do(400, "GET", "/api/v1/releases?team=web", admin, nil)
	a.do(413, "POST", "/api/v1/releases", admin, `{"notes":"`+strings.Repeat("a", 2<<20)+`"}`)
	a.do(415, "POST", "/api/v1/applications", admin, nil, "Content-Type", "text/plain")

	// Deleting what nothing refers to.
	other := a.do(201, "POST", "/api/v1/applications", admin, map[string]any{"name": "scratch", "owner_team": "web"}).str("id")
	otherEnv := a.do(201, "POST", "/api/v1/environments", admin, map[string]any{"application_id": other, "name": "dev"}).str("id")
	a.do(204, "DELETE", "/api/v1/environments/"+otherEnv, admin, nil)
	a.do(204, "DELETE", "/api/v1/applications/scratch", admin, nil)

	covered := a.covered()
	t.Logf("checked against api/openapi.json (%d operation/status pairs):\n%s", len(covered), strings.Join(covered, "\n"))
	ops := map[string]bool{}
	for _, c := range covered {
		ops[c[:strings.LastIndex(c, " ")]] = true
	}
	for _, want := range []string{
		"GET /api/v1", "GET /api/v1/whoami",
		"POST /api/v1/applications", "GET /api/v1/applications", "GET /api/v1/applications/{id}", "PATCH /api/v1/applications/{id}", "DELETE /api/v1/applications/{id}",
		"POST /api/v1/environments", "GET /api/v1/environments", "GET /api/v1/environments/{id}", "PATCH /api/v1/environments/{id}", "DELETE /api/v1/environments/{id}",
		"POST /api/v1/targets", "GET /api/v1/targets", "GET /api/v1/targets/{id}", "PATCH /api/v1/targets/{id}", "DELETE /api/v1/targets/{id}",
		"POST /api/v1/releases", "GET /api/v1/releases", "GET /api/v1/releases/{id}", "DELETE /api/v1/releases/{id}",
		"POST /api/v1/deployments", "GET /api/v1/deployments", "GET /api/v1/deployments/{id}", "GET /api/v1/deployments/{id}/events",
		"POST /api/v1/deployments/{id}/approvals", "POST /api/v1/deployments/{id}/pause", "POST /api/v1/deployments/{id}/resume",
		"POST /api/v1/deployments/{id}/abort", "POST /api/v1/deployments/{id}/incidents", "GET /api/v1/deployments/{id}/incidents",
		"POST /api/v1/deployments/{id}/incidents/{incident}/resolve",
		"GET /api/v1/audit", "GET /api/v1/audit/verify", "GET /api/v1/audit/head",
		"POST /api/v1/tokens", "GET /api/v1/tokens", "DELETE /api/v1/tokens/{id}",
	} {
		require.True(t, ops[want], "%s was not checked", want)
	}
}

// The checks above fail when an answer does not match its description:
// a real answer is checked against a description changed under it.
func TestOpenAPICheckFailsOnAMismatch(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	require.NoError(t, err)
	_, router := openAPIRouter(t, api.OpenAPI())
	app := `{"id":"app_01","name":"shop","owner_team":"web","description":"","created_by":"admin",` +
		`"created_at":"2026-01-31T09:00:00Z","updated_at":"2026-01-31T09:00:00Z"}`
	check := func(router routers.Router, status int, contentType, body string) error {
		req, err := http.NewRequest("GET", "http://transit.test/api/v1/applications/shop", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer trt_x")
		_, err = validateExchange(router, exchange{req: req, status: status,
			header: http.Header{"Content-Type": {contentType}}, respBody: []byte(body)}, true)
		return err
	}
	const jsonType = "application/json; charset=utf-8"
	require.NoError(t, check(router, 200, jsonType, app))
	require.NoError(t, check(router, 200, jsonType, strings.Replace(app, `"id"`, `"colour":"red","id"`, 1)), "responses may gain fields")
	require.NoError(t, check(router, 404, jsonType, `{"error":{"code":"not_found","message":"application \"shop\"","request_id":"1"}}`))

	require.Error(t, check(router, 200, jsonType, strings.Replace(app, `"owner_team":"web",`, "", 1)), "a field left out")
	require.Error(t, check(router, 200, jsonType, strings.Replace(app, `"name":"shop"`, `"name":5`, 1)), "a wrong type")
	require.Error(t, check(router, 200, jsonType, strings.Replace(app, `"2026-01-31T09:00:00Z"`, `"yesterday"`, 1)), "not a date-time")
	require.Error(t, check(router, 200, "text/plain", app), "another content type")
	require.Error(t, check(router, 418, jsonType, app), "a status not described")
	require.Error(t, check(router, 404, jsonType, `{"error":{"code":"gone","message":"x"}}`), "an unknown error code")
	require.Error(t, check(router, 404, jsonType, `{"error":{"code":"conflict","message":"x"}}`), "another status's code")
	require.Error(t, check(router, 404, jsonType, `{"message":"not found"}`), "not the error shape")

	// A schema that says something else than the API does: the same answer fails.
	doc.Components.Schemas["Application"].Value.Required = append(doc.Components.Schemas["Application"].Value.Required, "archived_at")
	changed, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	require.Error(t, check(changed, 200, jsonType, app))
}
