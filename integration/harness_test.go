// Package integration tests Transit as a user meets it: the real API over
// HTTP, a real Temporal dev server (the pinned binary), a real Postgres,
// real workers and drivers.
package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/api"
	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/identity"
	"github.com/transit-hq/transit/internal/testenv"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
	transitworker "github.com/transit-hq/transit/worker"
)

var temporalServer *testenv.Temporal

func TestMain(m *testing.M) {
	if _, ok := testenv.TemporalBinary(); ok {
		srv, err := testenv.StartTemporal(testenv.TemporalOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		temporalServer = srv
	}
	code := m.Run()
	if temporalServer != nil {
		_ = temporalServer.Stop()
	}
	os.Exit(code)
}

// stack is one Transit installation: its own Postgres database, task
// queue, worker and API server, on the shared Temporal dev server.
type stack struct {
	t     testing.TB
	store *store.Store
	// apiStore is the API's: store, unless stackOptions.ownPools.
	apiStore  *store.Store
	temporal  client.Client
	worker    sdkworker.Worker
	taskQueue string
	dbURL     string
	baseURL   string
	admin     string
	// voteKey is what the API signs votes with, and the worker checks.
	voteKey []byte
	// auditKey signs the API's audit heads.
	auditKey *models.AuditKey
	// logs holds what the worker and the API logged, when asked for.
	logs *syncBuffer
}

type stackOptions struct {
	// noWorker leaves the worker to the test (e.g. a separate process).
	noWorker bool
	clock    activities.Clock
	// sqlite runs the stack on an SQLite file instead of Postgres.
	sqlite bool
	// dbURL is a database the test provides (its own Postgres cluster).
	dbURL string
	// captureLogs keeps the worker's and the API's logs (debug level) in
	// stack.logs.
	captureLogs bool
	// drivers replaces the worker's drivers.
	drivers *drivers.Registry
	// targetsPerRun lowers the targets one workflow run changes.
	targetsPerRun int
	// ownPools gives the API a database pool of its own, as it has when
	// `transit server` and `transit worker` run apart (by default the
	// stack's API and worker share one, as in `transit dev`).
	ownPools bool
	// serial keeps the test from running alongside others (it changes the
	// process's environment).
	serial bool
	// oidc accepts the JWTs of an issuer as well as API tokens.
	oidc *identity.Config
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var queueSeq atomic.Int64

func newStack(t testing.TB, opt stackOptions) *stack {
	t.Helper()
	// Each stack has its own database, task queue and worker on the shared
	// dev server, so tests run side by side (go test -parallel, by default
	// as many as there are cores): most of their time is waiting.
	if pt, ok := t.(*testing.T); ok && !opt.serial {
		pt.Parallel()
	}
	testenv.RequireTemporal(t)
	var dbURL string
	switch {
	case opt.dbURL != "":
		dbURL = opt.dbURL
	case opt.sqlite:
		dbURL = "sqlite://" + filepath.Join(t.TempDir(), "transit.db")
	default:
		dbURL = testenv.PostgresURL(t)
	}
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var logs *syncBuffer
	switch {
	case opt.captureLogs:
		logs = &syncBuffer{}
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case testing.Verbose():
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	voteKey := []byte(hex.EncodeToString(randomBytes(32)))
	st, err := store.Open(ctx, dbURL, logger)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	s := &stack{t: t, store: st, temporal: temporalServer.Client(t), dbURL: dbURL, voteKey: voteKey, logs: logs,
		taskQueue: fmt.Sprintf("transit-test-%d-%d", os.Getpid(), queueSeq.Add(1))}
	if !opt.noWorker {
		s.worker = transitworker.New(s.temporal, transitworker.Options{TaskQueue: s.taskQueue, Store: st, Logger: logger,
			Clock: opt.clock, VoteKey: voteKey, Drivers: opt.drivers, TargetsPerRun: opt.targetsPerRun})
		require.NoError(t, s.worker.Start())
		t.Cleanup(s.worker.Stop)
	}
	auditKey, err := models.ReadAuditKey(filepath.Join(t.TempDir(), "audit.key"), true)
	require.NoError(t, err)
	s.auditKey = auditKey
	var oidc *identity.Verifier
	if opt.oidc != nil {
		oidc = identity.NewVerifier(*opt.oidc)
	}
	apiStore := st
	if opt.ownPools {
		apiStore, err = store.Open(ctx, dbURL, logger)
		require.NoError(t, err)
		t.Cleanup(func() { apiStore.Close() })
	}
	s.apiStore = apiStore
	srv := httptest.NewServer(api.NewRouter(api.Options{Store: apiStore, Temporal: s.temporal, Logger: logger, VoteKey: voteKey,
		AuditKey: auditKey, OIDC: oidc, TaskQueue: s.taskQueue, Namespace: "default", TemporalUIURL: "http://localhost:8233"}))
	t.Cleanup(srv.Close)
	s.baseURL = srv.URL
	s.admin = s.issueToken("admin", models.GroupAdmin)
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// issueToken writes a token straight into the store (as `transit tokens issue` does).
func (s *stack) issueToken(subject string, groups ...string) string {
	s.t.Helper()
	return s.issue(models.APIToken{Subject: subject, Groups: models.NewJSON(append([]string{}, groups...))})
}

// issue writes the token t into the store and returns its secret.
func (s *stack) issue(t models.APIToken) string {
	s.t.Helper()
	secret := store.NewTokenSecret()
	require.NoError(s.t, s.store.CreateToken(context.Background(), store.Actor{Subject: "test"}, &t, secret))
	return secret
}

// response is an HTTP answer: its status and decoded JSON body.
type response struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (r response) str(path ...string) string {
	v := r.get(path...)
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (r response) get(path ...string) any {
	var cur any = r.Body
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (r response) items() []map[string]any {
	raw, _ := r.Body["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		out = append(out, it.(map[string]any))
	}
	return out
}

// call sends a request with the token (none when token is "").
func (s *stack) call(method, path, token string, body any, headers ...string) response {
	s.t.Helper()
	_, out := s.send(method, path, token, body, headers...)
	return out
}

// send is call, keeping the whole exchange (for the OpenAPI checker).
func (s *stack) send(method, path, token string, body any, headers ...string) (exchange, response) {
	s.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		raw, err = json.Marshal(b)
		require.NoError(s.t, err)
	}
	req, err := http.NewRequest(method, s.baseURL+path, bytes.NewReader(raw))
	require.NoError(s.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	out := response{Status: resp.StatusCode, Raw: string(respBody)}
	if len(respBody) > 0 {
		_ = json.Unmarshal(respBody, &out.Body)
	}
	return exchange{req: req, reqBody: raw, status: resp.StatusCode, header: resp.Header, respBody: respBody}, out
}

// must sends as admin and requires the status.
func (s *stack) must(status int, method, path string, body any) response {
	s.t.Helper()
	r := s.call(method, path, s.admin, body)
	require.Equal(s.t, status, r.Status, "%s %s: %s", method, path, r.Raw)
	return r
}

// catalog is an application with one environment of n simulated targets and releases.
type catalog struct {
	app, env string
	targets  []string
	releases map[string]string // version → id
}

func (s *stack) seed(envName string, n int, policy models.Policy, targetConfig string, versions ...string) catalog {
	s.t.Helper()
	c := catalog{releases: map[string]string{}}
	c.app = s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "shop-" + strings.ToLower(strings.ReplaceAll(s.t.Name(), "/", "-")), "owner_team": "web"}).str("id")
	c.env = s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": c.app, "name": envName, "position": 1, "policy": policy}).str("id")
	if targetConfig == "" {
		targetConfig = `{"latency_min":"10ms","latency_max":"50ms"}`
	}
	for i := 1; i <= n; i++ {
		id := s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": c.env, "name": fmt.Sprintf("%s-%02d", envName, i),
			"driver": "simulated", "config": json.RawMessage(targetConfig)}).str("id")
		c.targets = append(c.targets, id)
	}
	for _, v := range versions {
		c.releases[v] = s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": c.app, "version": v,
			"artifacts": []map[string]string{{"name": "shop", "image": "shop:" + v}}}).str("id")
	}
	return c
}

// deploy submits a deployment and returns its id.
func (s *stack) deploy(token string, body map[string]any) string {
	s.t.Helper()
	r := s.call("POST", "/api/v1/deployments", token, body)
	require.Equal(s.t, 201, r.Status, r.Raw)
	return r.str("deployment", "id")
}

// waitStatus waits until the deployment reaches one of the statuses.
func (s *stack) waitStatus(id string, timeout time.Duration, statuses ...models.Status) response {
	s.t.Helper()
	var last response
	require.EventuallyWithT(s.t, func(c *assertCollect) {
		last = s.call("GET", "/api/v1/deployments/"+id, s.admin, nil)
		got := models.Status(last.str("deployment", "status"))
		for _, want := range statuses {
			if got == want {
				return
			}
		}
		c.Errorf("deployment %s is %s, waiting for %v (outcome %q)", id, got, statuses, last.str("deployment", "outcome"))
	}, timeout, 200*time.Millisecond)
	return last
}

// events returns the deployment's timeline as lines.
func (s *stack) events(id string) []string {
	r := s.must(200, "GET", "/api/v1/deployments/"+id+"/events", nil)
	var out []string
	for _, e := range r.items() {
		out = append(out, fmt.Sprintf("%v %v: %v", e["status"], e["type"], e["message"]))
	}
	return out
}

// history is a workflow's whole history (its latest run).
func (s *stack) history(workflowID string) *historypb.History {
	s.t.Helper()
	it := s.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	var hist historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(s.t, err)
		hist.Events = append(hist.Events, ev)
	}
	return &hist
}

// historyLength counts the events in a workflow's history.
func (s *stack) historyLength(workflowID string) int { return len(s.history(workflowID).Events) }

// saveHistory writes the workflow's history to testdata/histories/NAME.json
// when TRANSIT_SAVE_HISTORIES=1, for the replay tests in workflows/. The
// saved files are committed; regenerate them only on purpose, since they
// are what proves that running deployments still replay.
func (s *stack) saveHistory(deploymentID, name string) {
	s.t.Helper()
	if os.Getenv("TRANSIT_SAVE_HISTORIES") != "1" {
		return
	}
	// The row ends before the workflow does (the final record lands, then
	// the lane is woken): wait for the run to close, so that the history is
	// whole.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A cancelled or failed run is still a whole history: only a run that
	// has not closed in a minute is a problem.
	if err := s.temporal.GetWorkflow(ctx, models.WorkflowIDFor(deploymentID), "").Get(ctx, nil); err != nil {
		require.NoError(s.t, ctx.Err(), "workflow of %s did not close: %v", deploymentID, err)
	}
	hist := s.history(models.WorkflowIDFor(deploymentID))
	raw, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(s.t, err)
	require.NoError(s.t, os.MkdirAll("../testdata/histories", 0o755))
	require.NoError(s.t, os.WriteFile("../testdata/histories/"+name+".json", raw, 0o644))
	s.t.Logf("saved the history of %s as testdata/histories/%s.json (%d events)", deploymentID, name, len(hist.Events))
}
