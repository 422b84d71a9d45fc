package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
)

// Issue "A deployment's outcome is always the truth": each test below
// failed on the code before it.

// The prometheus probe against a real Prometheus (Debian's package) that
// scrapes a metric the test controls: every series is compared, and an
// empty answer or a bad query is a monitoring error, not a breach.
func TestPrometheusProbeAgainstARealPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("NOT TESTED: prometheus is not installed (CI=true: a missing server is a failure; scripts/test.sh installs Debian's prometheus)")
		}
		t.Skip("NOT TESTED: prometheus is not installed — run `make test`, which installs it")
	}
	var shardB atomic.Value
	shardB.Store("0.9")
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE transit_test_error_ratio gauge\ntransit_test_error_ratio{shard=\"a\"} 0.1\ntransit_test_error_ratio{shard=\"b\"} %s\n", shardB.Load())
	}))
	t.Cleanup(metrics.Close)
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shop\n    static_configs:\n      - targets: [%q]\n",
		strings.TrimPrefix(metrics.URL, "http://"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	p := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	var out strings.Builder
	p.Stdout, p.Stderr = &out, &out
	require.NoError(t, p.Start())
	t.Cleanup(func() { _ = p.Process.Kill(); _ = p.Wait() })
	promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	fmt.Fprintf(os.Stderr, "testenv: real Prometheus (%s) at %s\n", bin, promURL)

	run := func(query, comparison string, threshold float64) drivers.ProbeResult {
		spec := models.ProbeSpec{Name: "errors", Type: models.ProbePrometheus, Threshold: threshold,
			Config: json.RawMessage(fmt.Sprintf(`{"url":%q,"query":%q,"comparison":%q}`, promURL, query, comparison))}
		return drivers.RunProbe(context.Background(), spec, drivers.Target{Name: "a"}, drivers.Release{Version: "1.0.0"})
	}
	require.EventuallyWithT(t, func(c *assertCollect) {
		if res := run("transit_test_error_ratio", "<", 1); !res.Passed {
			c.Errorf("not scraped yet: %s", res.Message)
		}
	}, 60*time.Second, 500*time.Millisecond, "prometheus output:\n%s", &out)

	res := run("transit_test_error_ratio", "<", 0.5)
	require.False(t, res.Passed, "shard b breaches while shard a is fine")
	require.False(t, res.Error)
	require.Contains(t, res.Message, `1 of 2 series not < 0.5:`)
	require.Contains(t, res.Message, `shard="b"`)
	require.Equal(t, 0.9, res.Value)

	res = run(`transit_test_error_ratio{shard="nope"}`, "<", 0.5)
	require.True(t, res.Error, "no series matched: nothing measured")
	require.Contains(t, res.Message, "the result is empty")

	res = run(`rate(transit_test_error_ratio[1m]`, "<", 0.5)
	require.True(t, res.Error, "a query Prometheus refuses measures nothing: %s", res.Message)

	shardB.Store("0.2")
	require.EventuallyWithT(t, func(c *assertCollect) {
		if res := run("transit_test_error_ratio", "<", 0.5); !res.Passed {
			c.Errorf("still breaching: %s", res.Message)
		}
	}, 30*time.Second, 500*time.Millisecond)

	// The same query language is checked when a policy is saved.
	s := newStack(t, stackOptions{})
	c := s.seed("prod", 1, quickPolicy(), "")
	bad := quickPolicy()
	bad.ObservationProbes = []models.ProbeSpec{{Name: "errors", Type: models.ProbePrometheus, Threshold: 0.5, Interval: models.Duration(time.Minute),
		Config: json.RawMessage(fmt.Sprintf(`{"url":%q,"query":"rate(transit_test_error_ratio[1m]","comparison":"<"}`, promURL))}}
	r := s.call("PATCH", "/api/v1/environments/"+c.env, s.admin, map[string]any{"policy": bad})
	require.Equal(t, 422, r.Status, r.Raw)
	require.Contains(t, r.Raw, "is not valid PromQL")
}

// A webhook that echoes the target's secret after 480 bytes of text: no
// part of the secret reaches the database, the timeline, the workflow's
// history or the logs.
func TestSecretsNeverLeak(t *testing.T) {
	secret := "S3CR3T-" + strings.ToUpper(fmt.Sprintf("%x", randomBytes(12)))
	t.Setenv("TRANSIT_TEST_WEBHOOK_SECRET", secret)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p drivers.WebhookPayload
		_ = json.NewDecoder(r.Body).Decode(&p)
		switch p.Action {
		case drivers.ActionCurrent:
			fmt.Fprint(w, `{"version":"1.0.0"}`)
		case drivers.ActionDeploy:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, strings.Repeat("x", 480)+" your token was "+r.Header.Get("X-Api-Key")+" and that is wrong")
		default:
			fmt.Fprint(w, `{"status":"succeeded"}`)
		}
	}))
	t.Cleanup(hook.Close)
	s := newStack(t, stackOptions{captureLogs: true, serial: true})
	c := s.seed("prod", 0, quickPolicy(), "", "1.0.0", "2.0.0")
	s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": c.env, "name": "hooked", "driver": "http",
		"config": map[string]any{"url": hook.URL, "secret_headers": map[string]string{"X-Api-Key": "env:TRANSIT_TEST_WEBHOOK_SECRET"}}})
	id := s.deploy(s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusRolledBack, models.StatusFailed, models.StatusCompleted)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"))
	require.Contains(t, d.str("deployment", "outcome"), "[redacted]")

	var places []string
	places = append(places, d.Raw, s.must(200, "GET", "/api/v1/deployments/"+id+"/events", nil).Raw,
		s.must(200, "GET", "/api/v1/audit?limit=500", nil).Raw, s.logs.String())
	var dump []string
	require.NoError(t, s.store.DB().Raw(`SELECT message FROM deployment_events UNION ALL SELECT message FROM deployment_targets
		UNION ALL SELECT outcome FROM deployments UNION ALL SELECT COALESCE(after, '') FROM audit_events UNION ALL SELECT COALESCE(after, '') FROM audit_pending`).Scan(&dump).Error)
	places = append(places, strings.Join(dump, "\n"))
	places = append(places, s.historyJSON(models.WorkflowIDFor(id)))
	for i, text := range places {
		for k := 0; k+8 <= len(secret); k++ {
			require.NotContains(t, text, secret[k:k+8], "place %d holds a piece of the secret", i)
		}
	}
}

// historyJSON is a workflow's whole history as JSON.
func (s *stack) historyJSON(workflowID string) string {
	s.t.Helper()
	raw, err := protojson.Marshal(s.history(workflowID))
	require.NoError(s.t, err)
	return string(raw)
}

// Three deployments wait in the lane of a fourth: each starts after the
// one before it ended, in the order they were submitted.
func TestLaneOrderWithThreeWaiting(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ValidationChecks = nil
	c := s.seed("prod", 1, policy, `{"latency_min":"1s","latency_max":"1s"}`, "1.0.0", "1.1.0", "1.2.0", "1.3.0")
	var ids []string
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"} {
		ids = append(ids, s.deploy(s.admin, map[string]any{"release": c.releases[v], "environment": c.env}))
	}
	var ended time.Time
	for i, id := range ids {
		d := s.waitStatus(id, 2*time.Minute, models.StatusCompleted, models.StatusFailed, models.StatusRolledBack, models.StatusCancelled)
		require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
		started := s.eventTime(id, "rolling out")
		require.True(t, started.After(ended), "deployment %d started at %s, before the one ahead ended at %s", i+1, started, ended)
		ended, _ = time.Parse(time.RFC3339Nano, d.str("deployment", "finished_at"))
	}
}

// eventTime is when the first timeline line containing text was recorded.
func (s *stack) eventTime(id, text string) time.Time {
	s.t.Helper()
	for _, e := range s.must(200, "GET", "/api/v1/deployments/"+id+"/events", nil).items() {
		if strings.Contains(fmt.Sprint(e["message"]), text) {
			at, err := time.Parse(time.RFC3339Nano, e["at"].(string))
			require.NoError(s.t, err)
			return at
		}
	}
	s.t.Fatalf("deployment %s has no event with %q", id, text)
	return time.Time{}
}

// An operator resets a deployment's workflow (the Temporal UI's reset): the
// new run does its steps anew — the driver runs, the row follows the new
// run — instead of finding them "done" under the old run's keys.
func TestResetRunsTheStepsAgain(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy, pass := gatedPolicy(t)
	c := s.seed("prod", 1, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusRolledBack, models.StatusCompleted, models.StatusFailed)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"), d.str("deployment", "outcome"))
	changes, err := s.store.SimulatedChanges(context.Background(), c.targets)
	require.NoError(t, err)
	require.Equal(t, 2, changes[c.targets[0]], "deployed, then rolled back")

	pass()
	wid := models.WorkflowIDFor(id)
	first := s.firstEvent(wid, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	s.reset(wid, first)
	d = s.waitStatus(id, time.Minute, models.StatusCompleted)
	changes, err = s.store.SimulatedChanges(context.Background(), c.targets)
	require.NoError(t, err)
	require.Equal(t, 3, changes[c.targets[0]], "the new run deployed again")
	require.Contains(t, d.str("deployment", "outcome"), "handed over")
	require.NotEmpty(t, d.str("deployment", "finished_at"), "finished again")
	timeline := strings.Join(s.events(id), "\n")
	require.Equal(t, 2, strings.Count(timeline, "rolling out 1.0.0"), "both runs are on the timeline")
	s.saveHistory(id, "reset")
}

// gatedPolicy is a quick policy whose validation check fails until pass is
// called.
func gatedPolicy(t *testing.T) (models.Policy, func()) {
	flag := filepath.Join(t.TempDir(), "check")
	require.NoError(t, os.WriteFile(flag, []byte("fail"), 0o644))
	policy := quickPolicy()
	policy.ValidationChecks = []models.CheckSpec{{Name: "gate", Type: models.CheckScript, Tries: 1,
		Config: json.RawMessage(fmt.Sprintf(`{"command":"/bin/sh","args":["-c","test \"$(cat %s)\" = pass"]}`, flag))}}
	return policy, func() { require.NoError(t, os.WriteFile(flag, []byte("pass"), 0o644)) }
}

// reset resets a workflow as an operator does in the Temporal UI, to the
// workflow task that finished at event finishedAt.
func (s *stack) reset(workflowID string, finishedAt int64) {
	s.t.Helper()
	_, err := s.temporal.WorkflowService().ResetWorkflowExecution(context.Background(), &workflowservice.ResetWorkflowExecutionRequest{
		Namespace: "default", WorkflowExecution: &common.WorkflowExecution{WorkflowId: workflowID},
		Reason: "the check was fixed", WorkflowTaskFinishEventId: finishedAt, RequestId: fmt.Sprintf("reset-%d", time.Now().UnixNano())})
	require.NoError(s.t, err)
}

func (s *stack) firstEvent(workflowID string, typ enumspb.EventType) int64 {
	s.t.Helper()
	for _, ev := range s.history(workflowID).Events {
		if ev.GetEventType() == typ {
			return ev.GetEventId()
		}
	}
	s.t.Fatalf("no %s in the history of %s", typ, workflowID)
	return 0
}

// When a deployment ends during early life support, its observation stops
// with it: no probe runs after the workflow ended.
func TestObservationStopsWithTheWorkflow(t *testing.T) {
	var hits atomic.Int64
	probed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(300 * time.Millisecond)
	}))
	t.Cleanup(probed.Close)
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Minute), models.Duration(2*time.Minute)
	policy.ObservationProbes = []models.ProbeSpec{{Name: "up", Type: models.ProbeHTTP, Threshold: 0.5, Interval: models.Duration(time.Second),
		Config: json.RawMessage(fmt.Sprintf(`{"url":%q,"requests":2}`, probed.URL))}}
	c := s.seed("prod", 2, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, time.Minute, models.StatusEarlyLifeSupport)
	require.EventuallyWithT(t, func(co *assertCollect) {
		if hits.Load() < 4 {
			co.Errorf("not probed yet")
		}
	}, 30*time.Second, 100*time.Millisecond)
	s.must(200, "POST", "/api/v1/deployments/"+id+"/abort", map[string]any{"reason": "enough"})
	s.waitStatus(id, time.Minute, models.StatusRolledBack)
	after := hits.Load()
	time.Sleep(4 * time.Second)
	require.Equal(t, after, hits.Load(), "a probe ran after the deployment ended")
}

// Smaller things: names in paths, downgrades named, target rows that say
// what happened, wording.
func TestTheSmallThingsSayWhatHappened(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1}
	policy.ValidationChecks = []models.CheckSpec{{Name: "version", Type: models.CheckSimulated, Tries: 1,
		Config: json.RawMessage(`{"fail_versions":["1.5.0"]}`)}}
	c := s.seed("prod", 3, policy, "", "1.1.0", "1.4.0", "1.5.0")
	appName := s.must(200, "GET", "/api/v1/applications/"+c.app, nil).str("name")

	// PATCH and DELETE take the application's name, as GET does.
	r := s.call("PATCH", "/api/v1/applications/"+appName, s.admin, map[string]any{"description": "the shop"})
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, "the shop", r.str("description"))
	other := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "to-delete", "owner_team": "x"})
	require.Equal(t, 204, s.call("DELETE", "/api/v1/applications/to-delete", s.admin, nil).Status)
	require.Equal(t, 404, s.call("GET", "/api/v1/applications/"+other.str("id"), s.admin, nil).Status)

	// The POST says the scenario; the timeline's first line has no dangling colon.
	r = s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["1.4.0"], "environment": c.env})
	require.Equal(t, 201, r.Status)
	require.Equal(t, "install", r.str("deployment", "scenario"))
	first := r.str("deployment", "id")
	s.waitStatus(first, time.Minute, models.StatusCompleted)
	require.Equal(t, "planning submitted: admin asked to deploy 1.4.0", s.events(first)[0])

	// 1.4.0 back to 1.1.0 is a downgrade, and scored so.
	r = s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["1.1.0"], "environment": c.env})
	require.Equal(t, "downgrade", r.str("deployment", "scenario"))
	down := r.str("deployment", "id")
	d := s.waitStatus(down, time.Minute, models.StatusCompleted)
	require.Equal(t, "downgrade", d.str("deployment", "plan", "scenario"))
	require.Contains(t, d.str("deployment", "plan", "risk", "reasons"), "downgrade: an older version replaces a newer one (1.4.0)")
	require.Contains(t, strings.Join(s.events(down), "\n"), "planned downgrade of 1.1.0: 3 targets in 3 waves")

	// 1.5.0 fails its wave 1 check: the target rows say what happened.
	failed := s.deploy(s.admin, map[string]any{"release": c.releases["1.5.0"], "environment": c.env})
	d = s.waitStatus(failed, time.Minute, models.StatusRolledBack)
	var targets []models.DeploymentTarget
	require.NoError(t, json.Unmarshal([]byte(d.str("targets")), &targets))
	require.Len(t, targets, 3)
	require.Equal(t, models.TargetRolledBack, targets[0].Status, "wave 1 was rolled back")
	require.Equal(t, "1.1.0", targets[0].FromVersion)
	require.Equal(t, "1.5.0", targets[0].ToVersion, "from and to say what the deployment meant to do")
	require.Equal(t, "rolled back to 1.1.0", targets[0].Message)
	for _, never := range targets[1:] {
		require.Equal(t, models.TargetNotStarted, never.Status, never.TargetName)
	}
}

// The workflow cancelled (temporal workflow cancel) mid-rollout: what was
// changed is rolled back, what never started says so.
func TestWorkflowCancelledMidRolloutRollsBack(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1, Bake: models.Duration(3 * time.Second)}
	c := s.seed("prod", 3, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	require.EventuallyWithT(t, func(co *assertCollect) {
		if !strings.Contains(strings.Join(s.events(id), "\n"), "baking") {
			co.Errorf("wave 1 is not done yet")
		}
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, s.temporal.CancelWorkflow(context.Background(), models.WorkflowIDFor(id), ""))
	d := s.waitStatus(id, time.Minute, models.StatusRolledBack, models.StatusFailed, models.StatusCompleted)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"))
	require.Contains(t, d.str("deployment", "outcome"), "the workflow was cancelled; 1 target rolled back to what ran before")
	var targets []models.DeploymentTarget
	require.NoError(t, json.Unmarshal([]byte(d.str("targets")), &targets))
	require.Equal(t, []string{models.TargetRolledBack, models.TargetNotStarted, models.TargetNotStarted},
		[]string{targets[0].Status, targets[1].Status, targets[2].Status})
	s.saveHistory(id, "cancelled_mid_rollout")
}

// A target that fails within max_failures is undone at once, left out of
// what follows, and named in an outcome that is not "completed".
func TestToleratedFailuresAreUndoneAndNamed(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.Strategy = models.Strategy{Kind: models.StrategyAllAtOnce, MaxFailures: 1}
	c := s.seed("prod", 3, policy, "", "1.0.0", "2.0.0")
	s.waitStatus(s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env}), time.Minute, models.StatusCompleted)
	s.must(200, "PATCH", "/api/v1/targets/"+c.targets[1], map[string]any{"config": map[string]any{"failure_rate": 1}})

	id := s.deploy(s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusCompletedWithIssues, models.StatusCompleted, models.StatusRolledBack, models.StatusFailed)
	require.Equal(t, string(models.StatusCompletedWithIssues), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, d.str("deployment", "outcome"), "1 target failed during the rollout: prod-02 (")
	require.Contains(t, d.str("deployment", "outcome"), "rolled back to 1.0.0)")
	for i, want := range []string{"2.0.0", "1.0.0", "2.0.0"} {
		v, err := s.store.SimulatedVersion(context.Background(), c.targets[i])
		require.NoError(t, err)
		require.Equal(t, want, v, "target %d", i+1)
	}
	states, err := s.store.TargetStates(context.Background(), c.targets)
	require.NoError(t, err)
	require.Equal(t, "1.0.0", states[c.targets[1]].LastKnownGoodVer, "the failed target's last known good is not moved")
	s.saveHistory(id, "failed_targets_tolerated")
}

// A probe breach before the point of no return rolls back.
func TestBreachBeforePONRRollsBack(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(20*time.Second), models.Duration(30*time.Second)
	policy.ObservationProbes = []models.ProbeSpec{{Name: "errors", Type: models.ProbeSimulated, Interval: models.Duration(time.Second),
		Config: json.RawMessage(`{"failure_rate":1}`)}}
	c := s.seed("prod", 2, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusRolledBack, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusFailed)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"))
	require.Contains(t, d.str("deployment", "outcome"), "before the point of no return, probe errors breached on prod-0")
	s.saveHistory(id, "breach_before_ponr")
}

// Before the point of no return the monitoring system cannot be reached:
// no breach, no rollback; the deployment pauses, says why, and a person
// decides (here: resume). It is not handed over as healthy.
func TestUnobservableDeploymentWaitsForAPerson(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(20*time.Second), models.Duration(25*time.Second)
	policy.ObservationProbes = []models.ProbeSpec{{Name: "latency", Type: models.ProbePrometheus, Threshold: 0.5, Interval: models.Duration(time.Second),
		ErrorTolerance: 2, Config: json.RawMessage(fmt.Sprintf(`{"url":"http://127.0.0.1:%d","query":"up","comparison":">="}`, freePort(t)))}}
	c := s.seed("prod", 1, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusPaused, models.StatusRolledBack, models.StatusCompleted)
	require.Equal(t, string(models.StatusPaused), d.str("deployment", "status"))
	d = s.waitHold(id, models.HoldPaused)
	require.Contains(t, d.str("deployment", "hold", "reason"), "probe latency could not measure on prod-01 for 2 runs in a row")
	require.Contains(t, d.str("deployment", "hold", "reason"), "resume to commit 1.0.0, or roll back")
	s.must(200, "POST", "/api/v1/deployments/"+id+"/resume", map[string]any{"reason": "dashboards look fine"})
	d = s.waitStatus(id, time.Minute, models.StatusCompletedWithIssues, models.StatusCompleted, models.StatusRolledBack)
	require.Equal(t, string(models.StatusCompletedWithIssues), d.str("deployment", "status"))
	require.Contains(t, d.str("deployment", "outcome"), "not handed over")
	require.Contains(t, d.str("deployment", "outcome"), "not observed before the point of no return")
	s.saveHistory(id, "unobservable_resumed")
}
