package apiclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
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
	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/models"
)

// seen is one request the fake API received.
type seen struct {
	Method, Path, Query, IdempotencyKey string
	Body                                map[string]any
}

// fakeAPI answers canned bodies, and holds every request to
// api/openapi.json: the operation must exist, its query parameters be
// declared, and its body match the request schema (no unknown field).
type fakeAPI struct {
	t       *testing.T
	router  routers.Router
	answers map[string]func(r *http.Request) (int, string) // "GET /api/v1/x"
	mu      sync.Mutex
	seen    []seen
	srv     *httptest.Server
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	require.NoError(t, err)
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	f := &fakeAPI{t: t, router: router, answers: map[string]func(*http.Request) (int, string){}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) answer(key string, status int, body string) {
	f.answers[key] = func(*http.Request) (int, string) { return status, body }
}

func (f *fakeAPI) client() *apiclient.Client { return apiclient.New(f.srv.URL, "secret") }

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	if err := f.check(r, raw); err != nil {
		f.t.Errorf("%s %s does not match api/openapi.json: %v", r.Method, r.URL, err)
		w.WriteHeader(http.StatusTeapot)
		return
	}
	s := seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, IdempotencyKey: r.Header.Get("Idempotency-Key")}
	if len(raw) > 0 {
		require.NoError(f.t, json.Unmarshal(raw, &s.Body))
	}
	f.mu.Lock()
	f.seen = append(f.seen, s)
	f.mu.Unlock()
	answer, ok := f.answers[r.Method+" "+r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"nothing here"}}`)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	status, body := answer(r)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakeAPI) check(r *http.Request, body []byte) error {
	route, params, err := f.router.FindRoute(r)
	if err != nil {
		return err
	}
	declared := map[string]bool{}
	for _, p := range append(route.PathItem.Parameters, route.Operation.Parameters...) {
		if p.Value.In == openapi3.ParameterInQuery {
			declared[p.Value.Name] = true
		}
	}
	for k := range r.URL.Query() {
		if !declared[k] {
			return errors.New("query parameter " + k + " is not declared")
		}
	}
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			if in.RequestValidationInput.Request.Header.Get("Authorization") != "Bearer secret" {
				return errors.New("no bearer token")
			}
			return nil
		}},
	})
}

func (f *fakeAPI) last() seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(f.t, f.seen)
	return f.seen[len(f.seen)-1]
}

const deploymentJSON = `{"id":"dep_1","application_id":"app_1","environment_id":"env_1","release_id":"rel_1","release_version":"1.0.0",
"scenario":"install","retain_data":false,"reason":"r","requested_by":"admin","status":"%s","wave_index":0,"wave_count":0,
"outcome":"","workflow_id":"deployment-dep_1","hold":null,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`

func detail(status string) string {
	return `{"deployment":` + strings.Replace(deploymentJSON, "%s", status, 1) +
		`,"workflow_id":"deployment-dep_1","temporal_ui":"http://ui","approvals":[],"targets":[],"incidents":[]}`
}

// Every method sends what the API's description asks, and reads its answer.
func TestTypedMethodsSpeakTheDescribedAPI(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client()
	ctx := context.Background()

	f.answer("POST /api/v1/deployments", 201, `{"deployment":`+strings.Replace(deploymentJSON, "%s", "planning", 1)+`,"workflow_id":"deployment-dep_1","temporal_ui":"http://ui"}`)
	notBefore := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	created, err := c.CreateDeployment(ctx, apiclient.CreateDeploymentRequest{Application: "shop", Version: "1.0.0", Environment: "prod",
		Strategy:  &models.Strategy{Kind: "canary", Steps: []models.CanaryStep{{Count: 1}, {Percent: 100}}, Bake: models.Duration(time.Minute)},
		NotBefore: &notBefore, Reason: "why"}, apiclient.WithIdempotencyKey("k1"))
	require.NoError(t, err)
	require.Equal(t, "dep_1", created.Deployment.ID)
	require.Equal(t, "http://ui", created.TemporalUI)
	got := f.last()
	require.Equal(t, "k1", got.IdempotencyKey)
	require.Equal(t, "shop", got.Body["application"])
	require.Equal(t, "prod", got.Body["environment"])
	require.Equal(t, "2026-03-01T09:00:00Z", got.Body["not_before"])
	require.Equal(t, []any{1.0, "100%"}, got.Body["strategy"].(map[string]any)["steps"])
	require.NotContains(t, got.Body, "release", "empty fields are left out")

	f.answer("GET /api/v1/deployments/dep_1", 200, detail("deploying"))
	d, err := c.GetDeployment(ctx, "dep_1")
	require.NoError(t, err)
	require.Equal(t, models.StatusDeploying, d.Deployment.Status)

	f.answer("GET /api/v1/deployments", 200, `{"items":[`+strings.Replace(deploymentJSON, "%s", "completed", 1)+`],"next_cursor":"dep_1"}`)
	page, err := c.ListDeployments(ctx, apiclient.DeploymentFilter{ApplicationID: "shop", EnvironmentID: "env_1", Status: models.StatusCompleted,
		IncludePlan: true, ListOptions: apiclient.ListOptions{Limit: 5, Cursor: "dep_0"}})
	require.NoError(t, err)
	require.Len(t, page.Items, 1)
	require.Equal(t, "dep_1", page.NextCursor)
	require.Equal(t, "application_id=shop&cursor=dep_0&environment_id=env_1&include=plan&limit=5&status=completed", f.last().Query)

	f.answer("GET /api/v1/deployments/dep_1/events", 200, `{"items":[{"id":7,"deployment_id":"dep_1","at":"2026-01-01T00:00:00Z","type":"status","status":"planning","message":"m"}]}`)
	events, err := c.DeploymentEvents(ctx, "dep_1", apiclient.ListOptions{Cursor: "6"})
	require.NoError(t, err)
	require.EqualValues(t, 7, events.Items[0].ID)
	require.Equal(t, "cursor=6", f.last().Query)

	f.answer("POST /api/v1/deployments/dep_1/approvals", 200, `{"status":"awaiting_approval","approvals":1,"required":2,"decided":false}`)
	vote, err := c.Approve(ctx, "dep_1", "looks good")
	require.NoError(t, err)
	require.Equal(t, 2, vote.Required)
	require.Equal(t, map[string]any{"decision": "approve", "comment": "looks good"}, f.last().Body)
	_, err = c.Reject(ctx, "dep_1", "")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"decision": "reject"}, f.last().Body)

	for _, control := range []struct {
		name string
		call func(context.Context, string, string, ...apiclient.Option) (apiclient.ControlResult, error)
	}{{"pause", c.Pause}, {"resume", c.Resume}, {"abort", c.Abort}, {"rollback", c.Rollback}} {
		f.answer("POST /api/v1/deployments/dep_1/"+control.name, 200, `{"accepted":"`+control.name+`","status":"deploying"}`)
		res, err := control.call(ctx, "dep_1", "because")
		require.NoError(t, err)
		require.Equal(t, control.name, res.Accepted)
		require.Equal(t, models.StatusDeploying, res.Status)
		require.Equal(t, map[string]any{"reason": "because"}, f.last().Body)
	}
	_, err = c.Control(ctx, "dep_1", "explode", apiclient.ControlRequest{})
	require.Error(t, err)

	f.answer("POST /api/v1/releases", 201, `{"id":"rel_1","application_id":"app_1","version":"2.0.0","artifacts":[{"name":"api","image":"api:2"}],"notes":"","entry_criteria":{},"created_by":"a","created_at":"2026-01-01T00:00:00Z"}`)
	rel, err := c.CreateRelease(ctx, apiclient.CreateReleaseRequest{ApplicationID: "shop", Version: "2.0.0",
		Artifacts: []models.Artifact{{Name: "api", Image: "api:2"}}, EntryCriteria: map[string]string{"tests": "passed"}})
	require.NoError(t, err)
	require.Equal(t, "api:2", rel.Artifacts.V[0].Image)
	require.Equal(t, map[string]any{"tests": "passed"}, f.last().Body["entry_criteria"])

	f.answer("GET /api/v1/releases/rel_1", 200, `{"id":"rel_1","application_id":"app_1","version":"2.0.0","artifacts":[],"notes":"","entry_criteria":{},"created_by":"a","created_at":"2026-01-01T00:00:00Z"}`)
	_, err = c.GetRelease(ctx, "rel_1")
	require.NoError(t, err)
	f.answer("GET /api/v1/releases", 200, `{"items":[]}`)
	_, err = c.ListReleases(ctx, apiclient.ReleaseFilter{ApplicationID: "shop", Version: "2.0.0"})
	require.NoError(t, err)
	require.Equal(t, "application_id=shop&version=2.0.0", f.last().Query)

	f.answer("GET /api/v1/applications/shop", 200, `{"id":"app_1","name":"shop","owner_team":"web","description":"","created_by":"a","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`)
	app, err := c.GetApplication(ctx, "shop")
	require.NoError(t, err)
	require.Equal(t, "web", app.OwnerTeam)
	f.answer("GET /api/v1/applications", 200, `{"items":[]}`)
	_, err = c.ListApplications(ctx, apiclient.ApplicationFilter{OwnerTeam: "web", ListOptions: apiclient.ListOptions{Limit: 2}})
	require.NoError(t, err)
	require.Equal(t, "limit=2&owner_team=web", f.last().Query)

	f.answer("GET /api/v1/environments/env_1", 200, `{"id":"env_1","application_id":"app_1","name":"prod","position":2,"policy":{"approvals_required":2},"created_by":"a","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`)
	env, err := c.GetEnvironment(ctx, "env_1")
	require.NoError(t, err)
	require.Equal(t, 2, env.Policy.V.ApprovalsRequired)
	f.answer("GET /api/v1/environments", 200, `{"items":[]}`)
	_, err = c.ListEnvironments(ctx, apiclient.EnvironmentFilter{ApplicationID: "shop", Name: "prod"})
	require.NoError(t, err)
	require.Equal(t, "application_id=shop&name=prod", f.last().Query)

	f.answer("GET /api/v1/audit/head", 200, `{"seq":4,"hash":"ab","at":"2026-01-01T00:00:00Z","key_id":"k","signature":"s","public_key":"pk"}`)
	head, err := c.Head(ctx, 4)
	require.NoError(t, err)
	require.Equal(t, "pk", head.PublicKey)
	require.Equal(t, "seq=4", f.last().Query)
}

// An error answer is an *Error with the API's status, code and message; a
// 4xx is a refusal, a 5xx not; an answer that is not the API's JSON still
// is an *Error.
func TestErrorsKeepTheAPIsCodeAndMessage(t *testing.T) {
	f := newFakeAPI(t)
	c := f.client()
	f.answer("POST /api/v1/deployments/dep_1/approvals", 403, `{"error":{"code":"forbidden","message":"not in release-managers"}}`)
	f.answer("GET /api/v1/deployments/dep_1", 503, `{"error":{"code":"unavailable","message":"Temporal is down"}}`)
	f.answer("POST /api/v1/deployments", 422, `{"error":{"code":"validation_failed","message":"the request is not valid","details":[{"field":"environment","message":"is required"}]}}`)
	f.answer("GET /api/v1/releases/rel_1", 502, `<html>bad gateway</html>`)

	_, err := c.Approve(context.Background(), "dep_1", "")
	var ae *apiclient.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 403, ae.Status)
	require.Equal(t, "forbidden", ae.Code)
	require.Equal(t, "not in release-managers", ae.Message)
	require.True(t, ae.Refused())

	_, err = c.GetDeployment(context.Background(), "dep_1")
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "unavailable", ae.Code)
	require.False(t, ae.Refused())

	_, err = c.CreateDeployment(context.Background(), apiclient.CreateDeploymentRequest{Environment: "x"})
	require.ErrorAs(t, err, &ae)
	require.Contains(t, err.Error(), `"field":"environment"`, "the details are kept")

	_, err = c.GetRelease(context.Background(), "rel_1")
	require.ErrorAs(t, err, &ae)
	require.Equal(t, 502, ae.Status)
	require.Equal(t, "http_error", ae.Code)

	_, err = apiclient.New("http://127.0.0.1:1", "t").GetDeployment(context.Background(), "dep_1")
	require.Error(t, err)
	require.False(t, errors.As(err, &ae), "no answer is no *Error")
}

// CaptureBody keeps the answer as the API wrote it, unknown fields too.
func TestCaptureBodyKeepsTheAnswerAsSent(t *testing.T) {
	f := newFakeAPI(t)
	body := `{"id":"app_1","name":"shop","owner_team":"web","description":"","created_by":"a","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","new_field":1}`
	f.answer("GET /api/v1/applications/app_1", 200, body)
	var raw json.RawMessage
	app, err := f.client().GetApplication(apiclient.CaptureBody(context.Background(), &raw), "app_1")
	require.NoError(t, err)
	require.Equal(t, "shop", app.Name)
	require.JSONEq(t, body, string(raw))
}

// Watch prints each event once, following next_cursor, until the
// deployment ends.
func TestWatchFollowsTheTimelineToTheEnd(t *testing.T) {
	f := newFakeAPI(t)
	var gets int
	f.answers["GET /api/v1/deployments/dep_1"] = func(*http.Request) (int, string) {
		gets++
		if gets < 2 {
			return 200, detail("deploying")
		}
		return 200, detail("rolled_back")
	}
	f.answers["GET /api/v1/deployments/dep_1/events"] = func(r *http.Request) (int, string) {
		ev := func(id int, status string) string {
			return `{"id":` + string(rune('0'+id)) + `,"deployment_id":"dep_1","at":"2026-01-01T00:00:00Z","type":"status","status":"` + status + `","message":""}`
		}
		switch r.URL.Query().Get("cursor") {
		case "":
			return 200, `{"items":[` + ev(1, "planning") + `],"next_cursor":"1"}`
		case "1":
			return 200, `{"items":[` + ev(2, "deploying") + `]}`
		case "2":
			if gets >= 2 {
				return 200, `{"items":[` + ev(3, "rolled_back") + `]}`
			}
		}
		return 200, `{"items":[]}`
	}
	var printed []string
	d, err := f.client().Watch(context.Background(), "dep_1", time.Millisecond, func(ev models.DeploymentEvent) {
		printed = append(printed, string(ev.Status))
	})
	require.NoError(t, err)
	require.Equal(t, models.StatusRolledBack, d.Deployment.Status)
	require.Equal(t, []string{"planning", "deploying", "rolled_back"}, printed)
}

// The request and answer types mirror package api's: the same JSON
// fields, of the same types.
func TestTypesMirrorTheAPIs(t *testing.T) {
	for _, pair := range []struct{ client, server any }{
		{apiclient.CreateDeploymentRequest{}, api.CreateDeploymentRequest{}},
		{apiclient.CreateReleaseRequest{}, api.CreateReleaseRequest{}},
		{apiclient.ApprovalRequest{}, api.ApprovalRequest{}},
		{apiclient.ControlRequest{}, api.ControlRequest{}},
		{apiclient.DeploymentResponse{}, api.DeploymentResponse{}},
		{apiclient.Deployment{}, api.DeploymentDetail{}},
		{apiclient.EventsPage{}, api.EventsPage{}},
		{apiclient.AuditHead{}, api.AuditHeadResponse{}},
	} {
		require.Equal(t, jsonFields(reflect.TypeOf(pair.server)), jsonFields(reflect.TypeOf(pair.client)),
			"%T does not mirror %T", pair.client, pair.server)
	}
	// And the request types can say all that the description's schemas
	// allow (what they send in the test above is checked against them too).
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(api.OpenAPI(), &doc))
	for name, v := range map[string]any{"CreateDeploymentRequest": apiclient.CreateDeploymentRequest{},
		"CreateReleaseRequest": apiclient.CreateReleaseRequest{}, "ApprovalRequest": apiclient.ApprovalRequest{}, "ControlRequest": apiclient.ControlRequest{}} {
		fields := jsonFields(reflect.TypeOf(v))
		var missing []string
		for p := range doc.Components.Schemas[name].Properties {
			if _, ok := fields[p]; !ok {
				missing = append(missing, p)
			}
		}
		sort.Strings(missing)
		require.Empty(t, missing, "api/openapi.json's %s has fields %T cannot send", name, v)
	}
}

// jsonFields maps a struct's JSON field names (embedded structs flattened)
// to their types, pointers taken off.
func jsonFields(t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		out[name] = ft.String()
	}
	return out
}
