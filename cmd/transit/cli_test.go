package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// fakeAPI answers a few of the API's routes with canned bodies and keeps
// the requests it got.
type fakeAPI struct {
	t       *testing.T
	url     string
	mu      sync.Mutex
	answers map[string]answer // "GET /api/v1/deployments/dep_1"
	got     []request
}

type answer struct {
	status int
	body   string
}

type request struct {
	method, path, query, idempotencyKey, auth string
	body                                      map[string]any
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, answers: map[string]answer{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := request{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery,
			idempotencyKey: r.Header.Get("Idempotency-Key"), auth: r.Header.Get("Authorization")}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &req.body); err != nil {
				t.Errorf("%s %s: the body is not a JSON object: %s", r.Method, r.URL, raw)
			}
		}
		f.mu.Lock()
		f.got = append(f.got, req)
		a, ok := f.answers[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			a = answer{404, `{"error":{"code":"not_found","message":"no such thing"}}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeAPI) on(method, path string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[method+" "+path] = answer{status, body}
}

// last returns the last request to method path.
func (f *fakeAPI) last(method, path string) request {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.got) - 1; i >= 0; i-- {
		if f.got[i].method == method && f.got[i].path == path {
			return f.got[i]
		}
	}
	f.t.Fatalf("no request %s %s", method, path)
	return request{}
}

// run executes transit in-process against the fake API.
func (f *fakeAPI) run(args ...string) (code int, stdout, stderr string) {
	return run(append(args, "--url", f.url, "--token", "secret")...)
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = execute(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const (
	application = `{"id":"app_1","name":"storefront","owner_team":"web","description":"the shop\nsecond line","created_by":"admin","created_at":"2026-01-01T09:00:00Z","updated_at":"2026-01-01T09:00:00Z"}`
	environment = `{"id":"env_1","application_id":"app_1","name":"prod","position":2,"policy":{"approvals_required":2,"approver_groups":["release-managers"],"strategy":{"kind":"canary","steps":[1,"25%","100%"],"max_failures":0}},"created_by":"admin","created_at":"2026-01-01T09:00:00Z","updated_at":"2026-01-01T09:00:00Z"}`
	auditHead   = `{"seq":4,"hash":"ab12","at":"2026-01-01T09:00:00Z","key_id":"k1","signature":"c2ln","public_key":"00ff"}`
	release     = `{"id":"rel_1","application_id":"app_1","version":"1.0.0","artifacts":[{"name":"api","image":"shop-api:1.0.0"}],"notes":"","entry_criteria":{"tests":"passed"},"created_by":"admin","created_at":"2026-01-01T09:00:00Z"}`
)

func deployment(id, status string) string {
	return `{"id":"` + id + `","application_id":"app_1","environment_id":"env_1","release_id":"rel_1","release_version":"1.0.0","scenario":"install",` +
		`"retain_data":false,"reason":"","requested_by":"admin","status":"` + status + `","wave_index":1,"wave_count":2,"outcome":"","workflow_id":"deployment-` + id + `",` +
		`"hold":null,"created_at":"2026-01-01T09:00:00Z","updated_at":"2026-01-01T09:00:00Z"}`
}

func detail(id, status string) string {
	return `{"deployment":` + deployment(id, status) + `,"workflow_id":"deployment-` + id + `","temporal_ui":"http://ui/` + id + `",` +
		`"approvals":[],"targets":[{"target_id":"tgt_1","target_name":"eu-1","wave":1,"status":"succeeded","from_version":"","to_version":"1.0.0","message":"ok","updated_at":"2026-01-01T09:00:00Z"}],"incidents":[]}`
}

func events(status ...string) string {
	var items []string
	for i, s := range status {
		items = append(items, `{"id":`+string(rune('1'+i))+`,"deployment_id":"dep_1","at":"2026-01-01T09:00:00Z","type":"status","status":"`+s+`","message":"now `+s+`"}`)
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

// A fake API with a catalog and one deployment of each ending.
func catalogAPI(t *testing.T) *fakeAPI {
	f := newFakeAPI(t)
	f.on("GET", "/api/v1/applications/app_1", 200, application)
	f.on("GET", "/api/v1/applications/storefront", 200, application)
	f.on("GET", "/api/v1/applications", 200, `{"items":[`+application+`]}`)
	f.on("GET", "/api/v1/environments/env_1", 200, environment)
	f.on("GET", "/api/v1/environments", 200, `{"items":[`+environment+`]}`)
	f.on("GET", "/api/v1/releases/rel_1", 200, release)
	f.on("GET", "/api/v1/releases", 200, `{"items":[`+release+`]}`)
	f.on("POST", "/api/v1/releases", 201, release)
	f.on("GET", "/api/v1/deployments", 200, `{"items":[`+deployment("dep_2", "completed_with_issues")+`,`+deployment("dep_1", "rolled_back")+`],"next_cursor":"dep_1"}`)
	for id, status := range map[string]string{"dep_1": "rolled_back", "dep_2": "completed_with_issues", "dep_3": "completed", "dep_4": "deploying"} {
		f.on("GET", "/api/v1/deployments/"+id, 200, detail(id, status))
		f.on("GET", "/api/v1/deployments/"+id+"/events", 200, events("planning", "deploying", status))
	}
	f.on("POST", "/api/v1/deployments", 201, `{"deployment":`+deployment("dep_1", "planning")+`,"workflow_id":"deployment-dep_1","temporal_ui":"http://ui/dep_1"}`)
	f.on("POST", "/api/v1/deployments/dep_4/approvals", 200, `{"status":"awaiting_approval","approvals":1,"required":2,"decided":false}`)
	f.on("POST", "/api/v1/deployments/dep_4/pause", 200, `{"accepted":"pause","status":"deploying"}`)
	f.on("POST", "/api/v1/deployments/dep_1/approvals", 403, `{"error":{"code":"forbidden","message":"dana is not in release-managers"}}`)
	f.on("POST", "/api/v1/deployments/dep_1/abort", 409, `{"error":{"code":"conflict","message":"deployment dep_1 has ended (rolled_back)"}}`)
	f.on("GET", "/api/v1/audit/head", 200, auditHead)
	f.on("GET", "/api/v1/deployments/dep_5", 503, `{"error":{"code":"unavailable","message":"Temporal did not answer"}}`)
	return f
}

// walk calls fn with the args that name every command of the tree.
func walk(c *cobra.Command, path []string, fn func([]string)) {
	fn(path)
	for _, sub := range c.Commands() {
		walk(sub, append(append([]string{}, path...), sub.Name()), fn)
	}
}

// -h and --help exit 0 on every command, and print its help on stdout.
func TestHelpExitsZeroOnEveryCommand(t *testing.T) {
	root := newRootCommand(io.Discard, io.Discard)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	n := 0
	walk(root, nil, func(path []string) {
		for _, h := range []string{"-h", "--help"} {
			code, out, errOut := run(append(path, h)...)
			require.Equal(t, 0, code, "transit %s %s: %s", strings.Join(path, " "), h, errOut)
			require.Contains(t, out, "Usage:", "transit %s %s", strings.Join(path, " "), h)
		}
		n++
	})
	require.Greater(t, n, 30, "the tree has its commands")
	code, out, _ := run("help", "deploy")
	require.Equal(t, 0, code)
	require.Contains(t, out, "--watch")
	code, out, _ = run("--version")
	require.Equal(t, 0, code)
	require.Equal(t, "transit dev\n", out)
}

// What cobra or a command refuses before doing anything exits 2, and
// prints nothing on stdout.
func TestUsageErrorsExitTwo(t *testing.T) {
	f := catalogAPI(t)
	for _, args := range [][]string{
		{},
		{"deploi"},
		{"deploy", "--bogus"},
		{"approve"},
		{"approve", "dep_1", "dep_2"},
		{"status", "--output", "yaml", "dep_1"},
		{"audit"},
		{"audit", "nope"},
		{"deployments"},
		{"deployments", "frobnicate"},
		{"tokens"},
		{"release", "create", "--artifact", "no-equals-sign"},
		{"deploy", "--env", "prod", "--strategy", `{"kind":"canary","stepz":[1]}`},
		{"deploy", "--env", "prod", "--not-before", "tomorrow"},
		{"deployments", "list", "--limit", "many"},
		{"server", "extra"},
	} {
		code, out, errOut := f.run(args...)
		require.Equal(t, exitUsage, code, "transit %v: %s", args, errOut)
		require.Empty(t, out, "transit %v", args)
		require.NotEmpty(t, errOut, "transit %v says why", args)
	}
	code, _, errOut := run("deploi")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `did you mean deploy?`)
	require.Contains(t, errOut, "Run 'transit --help' for usage.")
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Empty(t, f.got, "nothing reached the API")
}

// A 4xx of the API exits 3 with its code and message on stderr; a 5xx, or
// no answer, exits 1.
func TestAPIRefusalExitsThree(t *testing.T) {
	f := catalogAPI(t)
	code, out, errOut := f.run("approve", "dep_1", "--comment", "lgtm")
	require.Equal(t, exitRefused, code, errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "forbidden")
	require.Contains(t, errOut, "dana is not in release-managers")

	code, out, errOut = f.run("abort", "dep_1", "-o", "json")
	require.Equal(t, exitRefused, code, errOut)
	require.Empty(t, out, "no JSON for a refusal")
	require.Contains(t, errOut, "conflict")

	f.on("POST", "/api/v1/deployments", 422, `{"error":{"code":"validation_failed","message":"the request is not valid","details":[{"field":"environment","message":"is required"}]}}`)
	code, _, errOut = f.run("deploy", "--app", "storefront", "--version", "1.0.0")
	require.Equal(t, exitRefused, code, errOut)
	require.Contains(t, errOut, "validation_failed")
	require.Contains(t, errOut, `"field":"environment"`)

	code, _, errOut = f.run("status", "dep_404")
	require.Equal(t, exitRefused, code, errOut)
	require.Contains(t, errOut, "not_found")

	code, _, errOut = f.run("status", "dep_5")
	require.Equal(t, exitFailed, code, "a 5xx is a failure, not a refusal: %s", errOut)
	require.Contains(t, errOut, "Temporal did not answer")

	code, _, errOut = run("status", "dep_1", "--url", "http://127.0.0.1:1", "--token", "t")
	require.Equal(t, exitFailed, code, errOut)
	require.Contains(t, errOut, "reach Transit")
}

// deploy --watch and watch exit 4 when the deployment ends otherwise than
// completed, 0 when it completed (with issues or not).
func TestDeploymentThatDidNotCompleteExitsFour(t *testing.T) {
	f := catalogAPI(t)
	code, out, errOut := f.run("deploy", "--app", "storefront", "--version", "1.0.0", "--env", "prod", "--reason", "demo", "--watch")
	require.Equal(t, exitNotCompleted, code, errOut)
	require.Contains(t, out, "deployment dep_1 submitted")
	require.Contains(t, out, "now deploying")
	require.Contains(t, out, "status:   rolled_back")
	require.Contains(t, errOut, "deployment dep_1 ended rolled_back")
	require.Equal(t, "dep_1", strings.Fields(out)[1], "the id is the second word, as scripts read it")

	code, _, errOut = f.run("watch", "dep_1")
	require.Equal(t, exitNotCompleted, code, errOut)
	for _, id := range []string{"dep_2", "dep_3"} {
		code, out, errOut = f.run("watch", id)
		require.Equal(t, 0, code, "%s: %s", id, errOut)
		require.Contains(t, out, "wave 1  eu-1")
	}

	// With -o json: the final state alone on stdout, the timeline on stderr.
	code, out, errOut = f.run("watch", "dep_1", "-o", "json")
	require.Equal(t, exitNotCompleted, code)
	require.JSONEq(t, detail("dep_1", "rolled_back"), out)
	require.Contains(t, errOut, "now rolled_back")
	code, out, _ = f.run("deploy", "--app", "storefront", "--version", "1.0.0", "--env", "prod", "--watch", "-o", "json")
	require.Equal(t, exitNotCompleted, code)
	require.JSONEq(t, detail("dep_1", "rolled_back"), out)
}

// deploy sends the typed request: the flags' fields, the strategy parsed,
// the idempotency key as a header; flags may come in Go's one-dash
// spelling, and after the positional argument.
func TestDeploySendsTheRequestItsFlagsSay(t *testing.T) {
	f := catalogAPI(t)
	code, out, errOut := f.run("deploy", "--app", "storefront", "--version", "1.0.0", "--env", "prod", "--reason", "faster refunds",
		"--strategy", `{"kind":"canary","steps":[1,"25%","100%"],"bake":"10m"}`, "--not-before", "2026-03-01T09:00:00Z",
		"--idempotency-key", "ci-42")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "follow it with: transit watch dep_1")
	req := f.last("POST", "/api/v1/deployments")
	require.Equal(t, "Bearer secret", req.auth)
	require.Equal(t, "ci-42", req.idempotencyKey)
	require.Equal(t, "storefront", req.body["application"])
	require.Equal(t, "1.0.0", req.body["version"])
	require.Equal(t, "prod", req.body["environment"])
	require.Equal(t, "faster refunds", req.body["reason"])
	require.Equal(t, "2026-03-01T09:00:00Z", req.body["not_before"])
	strategy := req.body["strategy"].(map[string]any)
	require.Equal(t, "canary", strategy["kind"])
	require.Equal(t, []any{1.0, "25%", "100%"}, strategy["steps"])
	require.Equal(t, "10m0s", strategy["bake"])

	code, _, errOut = f.run("approve", "dep_4", "--comment", "after the id")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, map[string]any{"decision": "approve", "comment": "after the id"}, f.last("POST", "/api/v1/deployments/dep_4/approvals").body)
	code, _, errOut = f.run("approve", "-comment", "one dash", "dep_4")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "one dash", f.last("POST", "/api/v1/deployments/dep_4/approvals").body["comment"])

	code, out, errOut = f.run("release", "create", "-app", "storefront", "--version", "1.0.0", "--artifact", "api=shop-api:1.0.0",
		"--artifact", "worker=1.0.0", "--criterion", "tests=passed")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "release storefront 1.0.0 created (rel_1)\n", out)
	body := f.last("POST", "/api/v1/releases").body
	require.Equal(t, []any{map[string]any{"name": "api", "image": "shop-api:1.0.0"}, map[string]any{"name": "worker", "version": "1.0.0"}}, body["artifacts"])
	require.Equal(t, map[string]any{"tests": "passed"}, body["entry_criteria"])
}

// -o json prints the API's answer, valid JSON and nothing else, on stdout.
func TestOutputJSONIsTheAPIsAnswer(t *testing.T) {
	f := catalogAPI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "dep_3"}, detail("dep_3", "completed")},
		{[]string{"deployments", "get", "dep_3"}, detail("dep_3", "completed")},
		{[]string{"deployments", "list", "--status", "completed"}, `{"items":[` + deployment("dep_2", "completed_with_issues") + `,` + deployment("dep_1", "rolled_back") + `],"next_cursor":"dep_1"}`},
		{[]string{"releases", "list", "--app", "storefront"}, `{"items":[` + release + `]}`},
		{[]string{"releases", "get", "rel_1"}, release},
		{[]string{"release", "create", "--app", "storefront", "--version", "1.0.0", "--artifact", "api=shop-api:1.0.0"}, release},
		{[]string{"applications", "list"}, `{"items":[` + application + `]}`},
		{[]string{"applications", "get", "storefront"}, application},
		{[]string{"environments", "list", "--app", "storefront"}, `{"items":[` + environment + `]}`},
		{[]string{"environments", "get", "env_1"}, environment},
		{[]string{"approve", "dep_4"}, `{"status":"awaiting_approval","approvals":1,"required":2,"decided":false}`},
		{[]string{"audit", "head", "--seq", "4"}, auditHead},
		{[]string{"pause", "dep_4", "--reason", "look"}, `{"accepted":"pause","status":"deploying"}`},
		{[]string{"deploy", "--app", "storefront", "--version", "1.0.0", "--env", "prod"}, `{"deployment":` + deployment("dep_1", "planning") + `,"workflow_id":"deployment-dep_1","temporal_ui":"http://ui/dep_1"}`},
	} {
		for _, flag := range []string{"-o", "--output"} {
			args := append(append([]string{}, tc.args...), flag, "json")
			code, out, errOut := f.run(args...)
			require.Equal(t, 0, code, "transit %v: %s", args, errOut)
			require.True(t, json.Valid([]byte(out)), "transit %v: %q", args, out)
			require.Equal(t, 1, strings.Count(out, "\n"), "one line: transit %v", args)
			require.JSONEq(t, tc.want, out, "transit %v", args)
		}
	}
	// Filters reach the API as its query parameters.
	_, _, _ = f.run("deployments", "list", "--status", "completed", "--app", "storefront", "--env", "env_1", "--limit", "2", "--cursor", "dep_9", "-o", "json")
	require.Equal(t, "application_id=storefront&cursor=dep_9&environment_id=env_1&limit=2&status=completed", f.last("GET", "/api/v1/deployments").query)
	// An environment's name is looked up, within --app.
	_, _, errOut := f.run("deployments", "list", "--app", "storefront", "--env", "prod", "-o", "json")
	require.Empty(t, errOut)
	require.Equal(t, "application_id=storefront&name=prod", f.last("GET", "/api/v1/environments").query)
	require.Equal(t, "application_id=storefront&environment_id=env_1", f.last("GET", "/api/v1/deployments").query)
}

// The list verbs print aligned columns, names rather than ids, and say
// on stderr how to get the next page.
func TestListVerbsPrintColumns(t *testing.T) {
	f := catalogAPI(t)
	code, out, errOut := f.run("deployments", "list")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 3, out)
	require.Regexp(t, `^ID\s+APPLICATION\s+ENVIRONMENT\s+VERSION\s+SCENARIO\s+STATUS\s+REQUESTED BY\s+CREATED$`, lines[0])
	require.Regexp(t, `^dep_2\s+storefront\s+prod\s+1\.0\.0\s+install\s+completed_with_issues\s+admin\s+2026-01-01 \d\d:\d\d$`, lines[1])
	col := strings.Index(lines[0], "STATUS")
	require.Equal(t, "completed_with_issues", strings.Fields(lines[1][col:])[0], "the columns line up")
	require.Equal(t, "rolled_back", strings.Fields(lines[2][col:])[0])
	require.Contains(t, errOut, "--cursor dep_1")

	for _, tc := range []struct {
		args   []string
		header string
		row    string
	}{
		{[]string{"releases", "list", "--app", "storefront"}, `^ID\s+APPLICATION\s+VERSION\s+ARTIFACTS\s+CREATED\s+BY$`, `^rel_1\s+storefront\s+1\.0\.0\s+api=shop-api:1\.0\.0\s+`},
		{[]string{"applications", "list"}, `^ID\s+NAME\s+OWNER TEAM\s+DESCRIPTION$`, `^app_1\s+storefront\s+web\s+the shop$`},
		{[]string{"environments", "list"}, `^ID\s+APPLICATION\s+NAME\s+POSITION\s+APPROVALS\s+STRATEGY$`, `^env_1\s+storefront\s+prod\s+2\s+2 \(release-managers\)\s+canary$`},
	} {
		code, out, errOut := f.run(tc.args...)
		require.Equal(t, 0, code, "%v: %s", tc.args, errOut)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		require.Len(t, lines, 2, "%v: %s", tc.args, out)
		require.Regexp(t, tc.header, lines[0])
		require.Regexp(t, tc.row, lines[1])
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"releases", "get", "rel_1"}, `(?m)^application\s+storefront \(app_1\)$`},
		{[]string{"applications", "get", "storefront"}, `(?m)^owner team\s+web$`},
		{[]string{"environments", "get", "env_1"}, `(?m)^approvals\s+2 \(release-managers\)$`},
		{[]string{"deployments", "get", "dep_3"}, `(?m)^  status:   completed \(wave 1 of 2\)$`},
	} {
		code, out, errOut := f.run(tc.args...)
		require.Equal(t, 0, code, "%v: %s", tc.args, errOut)
		require.Regexp(t, tc.want, out, "%v", tc.args)
	}
}

// transit completion prints cobra's scripts.
func TestCompletionPrintsAScript(t *testing.T) {
	code, out, errOut := run("completion", "bash")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "# bash completion V2 for transit")
	require.Contains(t, out, "__start_transit")
	for _, shell := range []string{"zsh", "fish", "powershell"} {
		code, out, _ := run("completion", shell)
		require.Equal(t, 0, code, shell)
		require.Contains(t, out, "transit", shell)
	}
	code, _, _ = run("completion", "tcsh")
	require.Equal(t, exitUsage, code)
	// The completion of a verb's words and of --output's values.
	code, out, _ = run("__complete", "deployments", "")
	require.Equal(t, 0, code)
	require.Contains(t, out, "list")
	code, out, _ = run("__complete", "status", "dep_1", "--output", "")
	require.Equal(t, 0, code)
	require.Contains(t, out, "json")
}

// audit verify keeps its file argument before its flags, and works offline.
func TestAuditVerifyTakesFlagsAfterTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "export.jsonl")
	require.NoError(t, os.WriteFile(path, []byte("not an export\n"), 0o600))
	code, out, errOut := run("audit", "verify", path, "--public-key", "zz")
	require.Equal(t, exitUsage, code, "a key that is not one is a bad flag: %s", errOut)
	require.Empty(t, out)
	require.Contains(t, errOut, "--public-key")
	code, _, errOut = run("audit", "verify", path)
	require.Equal(t, exitFailed, code, errOut)
}
