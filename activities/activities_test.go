package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// skipClock moves on by the time slept, at once.
type skipClock struct{ offset *atomic.Int64 }

func (c skipClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c skipClock) Sleep(ctx context.Context, d time.Duration) error {
	c.offset.Add(int64(d))
	return ctx.Err()
}

// countingDriver wraps a driver and counts its calls, and what each got.
type countingDriver struct {
	drivers.Driver
	mu    sync.Mutex
	calls []drivers.Request
	kinds []string
}

func (c *countingDriver) note(kind string, req drivers.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.kinds = append(c.calls, req), append(c.kinds, kind)
}

func (c *countingDriver) Deploy(ctx context.Context, req drivers.Request) (drivers.Result, error) {
	c.note("deploy", req)
	return c.Driver.Deploy(ctx, req)
}

func (c *countingDriver) Rollback(ctx context.Context, req drivers.Request) (drivers.Result, error) {
	c.note("rollback", req)
	return c.Driver.Rollback(ctx, req)
}

func (c *countingDriver) Remove(ctx context.Context, req drivers.Request) (drivers.Result, error) {
	c.note("remove", req)
	return c.Driver.Remove(ctx, req)
}

// fixture is a SQLite store with an application, an environment of two
// simulated targets, releases 1.0.0 and 2.0.0, one deployment of 2.0.0 with
// its planned target rows, and the activities over it.
type fixture struct {
	acts    *Activities
	st      *store.Store
	driver  *countingDriver
	app     *models.Application
	env     *models.Environment
	dep     *models.Deployment
	targets []models.PlanTarget
	old     ReleaseRef
	rel     ReleaseRef
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	actor := store.Actor{Subject: "test"}
	f := &fixture{st: st}
	f.app = &models.Application{Name: "shop", OwnerTeam: "web"}
	require.NoError(t, st.CreateApplication(ctx, actor, f.app))
	f.env = &models.Environment{ApplicationID: f.app.ID, Name: "prod"}
	require.NoError(t, st.CreateEnvironment(ctx, actor, f.env))
	for _, v := range []string{"1.0.0", "2.0.0"} {
		rel := &models.Release{ApplicationID: f.app.ID, Version: v, Artifacts: models.NewJSON([]models.Artifact{{Name: "shop", Version: v}})}
		require.NoError(t, st.CreateRelease(ctx, actor, rel))
		ref := ReleaseRef{ID: rel.ID, Version: rel.Version, Artifacts: rel.Artifacts.V}
		if v == "1.0.0" {
			f.old = ref
		} else {
			f.rel = ref
		}
	}
	for _, name := range []string{"a", "b"} {
		tg := &models.Target{EnvironmentID: f.env.ID, Name: name, Driver: models.DriverSimulated, Config: models.NewJSON(json.RawMessage(`{}`))}
		require.NoError(t, st.CreateTarget(ctx, actor, tg))
		f.targets = append(f.targets, models.PlanTarget{ID: tg.ID, Name: name, Driver: tg.Driver, CurrentVersion: "1.0.0"})
	}
	d, _, err := st.CreateDeployment(ctx, actor, &models.Deployment{ApplicationID: f.app.ID, EnvironmentID: f.env.ID,
		ReleaseID: f.rel.ID, ReleaseVersion: f.rel.Version}, store.IdempotencyKey{})
	require.NoError(t, err)
	f.dep = d
	var rows []models.DeploymentTarget
	for _, tg := range f.targets {
		rows = append(rows, models.DeploymentTarget{DeploymentID: d.ID, TargetID: tg.ID, TargetName: tg.Name, Wave: 1,
			Status: models.TargetPending, FromVersion: "1.0.0", ToVersion: "2.0.0"})
	}
	require.NoError(t, st.UpsertDeploymentTargets(ctx, rows))
	f.driver = &countingDriver{Driver: drivers.NewSimulated(st, drivers.SimulatedOptions{})}
	f.acts = &Activities{Store: st, Clock: skipClock{offset: &atomic.Int64{}},
		Drivers: drivers.NewRegistry(map[string]drivers.Driver{models.DriverSimulated: f.driver})}
	return f
}

// run executes an activity in the test activity environment.
func (f *fixture) run(t *testing.T, fn any, in any, out any) error {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	val, err := env.ExecuteActivity(fn, in)
	if err != nil || out == nil {
		return err
	}
	return val.Get(out)
}

func (f *fixture) row(t *testing.T, target string) models.DeploymentTarget {
	t.Helper()
	rows, err := f.st.ListDeploymentTargets(context.Background(), f.dep.ID)
	require.NoError(t, err)
	for _, r := range rows {
		if r.TargetName == target {
			return r
		}
	}
	t.Fatalf("no row for %s", target)
	return models.DeploymentTarget{}
}

func (f *fixture) targetInput(i int, rel ReleaseRef, step string) TargetInput {
	return TargetInput{DeploymentID: f.dep.ID, Application: "shop", Environment: "prod", Target: f.targets[i], Wave: 1,
		Release: rel, Key: f.dep.ID + "/run/" + f.targets[i].ID + "/" + step}
}

func TestDeployTarget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := f.targetInput(0, f.rel, "deploy")
	var res TargetResult
	require.NoError(t, f.run(t, f.acts.DeployTarget, in, &res))
	require.Equal(t, "2.0.0", res.Version)
	require.NoError(t, f.run(t, f.acts.DeployTarget, in, &res), "a retried step")
	changes, err := f.st.SimulatedChanges(ctx, []string{f.targets[0].ID})
	require.NoError(t, err)
	require.Equal(t, 1, changes[f.targets[0].ID], "the target changed once")
	require.Len(t, f.driver.calls, 2, "the driver was asked twice, and the second time found nothing to do")
	row := f.row(t, "a")
	require.Equal(t, models.TargetDeployed, row.Status)
	require.Equal(t, "1.0.0", row.FromVersion, "the row keeps what the plan set")
	require.Equal(t, "2.0.0", row.ToVersion)
	require.Equal(t, "now runs 2.0.0", row.Message)
	require.Equal(t, "1.0.0", f.driver.calls[0].Previous, "the driver is told what ran before")
}

func TestRollbackTarget(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	require.NoError(t, f.run(t, f.acts.DeployTarget, f.targetInput(0, f.rel, "deploy"), nil))

	// To the last known good, by id: the activity finds its version.
	rb := f.targetInput(0, ReleaseRef{ID: f.old.ID}, "rollback")
	rb.Undo, rb.Previous = true, "2.0.0"
	var res TargetResult
	require.NoError(t, f.run(t, f.acts.RollbackTarget, rb, &res))
	require.Equal(t, "1.0.0", res.Version)
	last := f.driver.calls[len(f.driver.calls)-1]
	require.Equal(t, "rollback", f.driver.kinds[len(f.driver.kinds)-1])
	require.Equal(t, "1.0.0", last.Release.Version)
	require.Equal(t, "2.0.0", last.Previous, "TRANSIT_PREVIOUS_VERSION is what the target is rolled back from")
	row := f.row(t, "a")
	require.Equal(t, models.TargetRolledBack, row.Status)
	require.Equal(t, "1.0.0", row.FromVersion)
	require.Equal(t, "2.0.0", row.ToVersion, "the row still says what the deployment meant to do")
	require.Equal(t, "rolled back to 1.0.0", row.Message)

	// A target the deployment never touched is left alone.
	calls := len(f.driver.calls)
	untouched := f.targetInput(1, ReleaseRef{}, "rollback")
	untouched.Undo = true
	require.NoError(t, f.run(t, f.acts.RollbackTarget, untouched, &res))
	require.True(t, res.Skipped)
	require.Len(t, f.driver.calls, calls, "no driver call")
	require.Equal(t, models.TargetNotStarted, f.row(t, "b").Status)

	// By version alone (it ran before Transit knew the target), and remove
	// when nothing ran there.
	require.NoError(t, f.run(t, f.acts.DeployTarget, f.targetInput(1, f.rel, "deploy"), nil))
	byVersion := f.targetInput(1, ReleaseRef{Version: "1.0.0"}, "rollback")
	require.NoError(t, f.run(t, f.acts.RollbackTarget, byVersion, &res))
	require.Equal(t, f.old.Artifacts, f.driver.calls[len(f.driver.calls)-1].Release.Artifacts, "the release was found by its version")
	remove := f.targetInput(1, ReleaseRef{}, "rollback-2")
	require.NoError(t, f.run(t, f.acts.RollbackTarget, remove, &res))
	require.Equal(t, "remove", f.driver.kinds[len(f.driver.kinds)-1])
	v, err := f.st.SimulatedVersion(ctx, f.targets[1].ID)
	require.NoError(t, err)
	require.Empty(t, v)
}

func TestRemoveTarget(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.st.SetSimulatedVersion(context.Background(), f.targets[0].ID, "2.0.0"))
	in := f.targetInput(0, f.rel, "remove")
	in.RetainData = true
	require.NoError(t, f.run(t, f.acts.RemoveTarget, in, nil))
	last := f.driver.calls[len(f.driver.calls)-1]
	require.True(t, last.RetainData)
	require.True(t, strings.HasSuffix(last.IdempotencyKey, "/remove"))
	row := f.row(t, "a")
	require.Equal(t, models.TargetRemoved, row.Status)
	require.Equal(t, "removed 2.0.0; data retained", row.Message)
}

func TestValidateTarget(t *testing.T) {
	f := newFixture(t)
	in := ValidateInput{TargetInput: f.targetInput(0, f.rel, "validate"), Checks: []models.CheckSpec{
		{Name: "smoke", Type: models.CheckSimulated, Config: json.RawMessage(`{"fail_versions":["2.0.0"]}`), Tries: 1}}}
	var res ValidateResult
	require.NoError(t, f.run(t, f.acts.ValidateTarget, in, &res))
	require.False(t, res.Passed)
	require.Equal(t, models.TargetFailed, f.row(t, "a").Status)
	in.Release = f.old
	require.NoError(t, f.run(t, f.acts.ValidateTarget, in, &res))
	require.True(t, res.Passed)
	require.Equal(t, "1 check passed", f.row(t, "a").Message)
}

func TestPlan(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	actor := store.Actor{Subject: "test"}
	unreachable := &models.Target{EnvironmentID: f.env.ID, Name: "c", Driver: models.DriverSimulated,
		Config: models.NewJSON(json.RawMessage(`{"unreachable":true}`))}
	require.NoError(t, f.st.CreateTarget(ctx, actor, unreachable))
	in := models.DeploymentInput{DeploymentID: f.dep.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID, ReleaseID: f.rel.ID}
	var appErr *temporal.ApplicationError
	err := f.run(t, f.acts.Plan, in, nil)
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, models.ErrTypeUnreachable, appErr.Type())
	require.Contains(t, appErr.Message(), "1 of 3 targets cannot be reached: c")
	require.NoError(t, f.st.DeleteTarget(ctx, actor, unreachable.ID))

	// A pending entry criterion rejects.
	pending := &models.Release{ApplicationID: f.app.ID, Version: "3.0.0", Artifacts: models.NewJSON([]models.Artifact{{Name: "shop", Version: "3"}}),
		EntryCriteria: models.NewJSON(map[string]string{"security_review": "pending", "tests": "passed"})}
	require.NoError(t, f.st.CreateRelease(ctx, actor, pending))
	in.ReleaseID = pending.ID
	err = f.run(t, f.acts.Plan, in, nil)
	require.True(t, errors.As(err, &appErr))
	require.Equal(t, models.ErrTypeEntryCriteria, appErr.Type())
	require.Contains(t, appErr.Message(), "security_review=pending")

	// What runs where decides the scenario: 2.0.0 on a, 1.0.0 on b.
	require.NoError(t, f.st.SetSimulatedVersion(ctx, f.targets[0].ID, "2.0.0"))
	require.NoError(t, f.st.SetSimulatedVersion(ctx, f.targets[1].ID, "1.0.0"))
	in.ReleaseID = f.old.ID
	var pr PlanResult
	require.NoError(t, f.run(t, f.acts.Plan, in, &pr))
	require.Equal(t, models.ScenarioUpgrade, pr.Plan.Scenario, "b runs an older version: not every target goes down")
	require.NoError(t, f.st.SetSimulatedVersion(ctx, f.targets[1].ID, "2.0.0"))
	require.NoError(t, f.run(t, f.acts.Plan, in, &pr))
	require.Equal(t, models.ScenarioDowngrade, pr.Plan.Scenario)
	require.Contains(t, strings.Join(pr.Plan.Risk.Reasons, "\n"), "downgrade: an older version replaces a newer one (2.0.0)")
	require.Equal(t, models.Duration(0), pr.Plan.Waves[0][0].StepTimeout, "a simulated target with no latency takes no time")
	d, err := f.st.GetDeployment(ctx, f.dep.ID)
	require.NoError(t, err)
	require.Equal(t, models.ScenarioDowngrade, d.Scenario, "the plan is stored on the row")
	require.NotNil(t, d.Plan.V)

	// A decommission touches only the targets that run the release.
	require.NoError(t, f.st.SetSimulatedVersion(ctx, f.targets[1].ID, "1.0.0"))
	in.Scenario, in.ReleaseID = models.ScenarioDecommission, f.old.ID
	require.NoError(t, f.run(t, f.acts.Plan, in, &pr))
	require.Len(t, pr.Plan.Waves, 1)
	require.Len(t, pr.Plan.Waves[0], 1)
	require.Equal(t, "b", pr.Plan.Waves[0][0].Name)
	require.Equal(t, []string{"a"}, pr.Plan.Untouched)
	// Where it runs nowhere, the decommission is refused, saying what runs where.
	nowhere := &models.Release{ApplicationID: f.app.ID, Version: "4.0.0", Artifacts: models.NewJSON([]models.Artifact{{Name: "shop", Version: "4"}})}
	require.NoError(t, f.st.CreateRelease(ctx, actor, nowhere))
	in.ReleaseID = nowhere.ID
	err = f.run(t, f.acts.Plan, in, nil)
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, models.ErrTypeRefused, appErr.Type())
	require.Equal(t, "nothing to decommission: release 4.0.0 runs on none of the 2 targets of prod (1.0.0 on b; 2.0.0 on a)", appErr.Message())
}

func TestPlanStepTimeoutsComeFromTheConfig(t *testing.T) {
	require.Equal(t, 2*(2*time.Hour+models.DefaultKillGrace),
		models.StepTimeout(models.DriverScript, json.RawMessage(`{"command":"/bin/true","timeout":"2h"}`)),
		"a 2 h script is given 2 h for current and 2 h for the change")
	require.Equal(t, 30*time.Second+4*30*time.Second+3*models.MaxHTTPBackoff+2*time.Hour,
		models.StepTimeout(models.DriverHTTP, json.RawMessage(`{"url":"http://x","status_url":"http://x/s","status_timeout":"2h"}`)))
}

// observeInput is an observation of the fixture's targets for an hour.
func (f *fixture) observeInput(probes ...models.ProbeSpec) ObserveInput {
	return ObserveInput{DeploymentID: f.dep.ID, Application: "shop", Environment: "prod", Targets: f.targets, Release: f.rel,
		Until: f.acts.Clock.Now().Add(time.Hour), Probes: probes, IncidentSeverity: "high"}
}

func probe(name, typ string, cfg string) models.ProbeSpec {
	p := models.ProbeSpec{Name: name, Type: typ, Config: json.RawMessage(cfg), Interval: models.Duration(time.Minute), Threshold: 1}
	pol := models.Policy{ObservationProbes: []models.ProbeSpec{p}}
	pol.Normalize()
	return pol.ObservationProbes[0]
}

// scripted answers each GET with the next status of a script, per path.
func scripted(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)-1) % len(statuses)
		w.WriteHeader(statuses[i])
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestObserveCountsProbeRunsAtTheirInterval(t *testing.T) {
	f := newFixture(t)
	var res ObserveResult
	require.NoError(t, f.run(t, f.acts.Observe, f.observeInput(probe("ok", models.ProbeSimulated, `{}`)), &res))
	require.InDelta(t, 120, res.Runs, 2, "one run a minute for an hour, on each of 2 targets")
	require.Equal(t, res.Runs, res.Passed)
	require.False(t, res.Breached)
}

// A breach is tolerance runs in a row that miss: one blip does not roll
// back a good release, a real failure does.
func TestObserveToleranceAndBreach(t *testing.T) {
	f := newFixture(t)
	f.targets = f.targets[:1]
	srv, _ := scripted(t, 500, 500, 200, 500, 500, 500)
	p := probe("errors", models.ProbeHTTP, fmt.Sprintf(`{"url":%q,"requests":1}`, srv.URL))
	p.Tolerance = 3
	in := f.observeInput(p)
	in.StopOnBreach = true
	var res ObserveResult
	require.NoError(t, f.run(t, f.acts.Observe, in, &res))
	require.True(t, res.Breached)
	require.Equal(t, 6, res.Runs, "two misses, a pass, then three misses in a row")
	require.Equal(t, 5, res.Failed)
	require.Contains(t, res.Breach, "probe errors breached on a (3 runs in a row)")
}

// After the point of no return a breach opens one incident, whose title is
// cut to fit however long the failure message: the breach is never lost.
func TestObserveAfterPONROpensAnIncidentWithAFittingTitle(t *testing.T) {
	f := newFixture(t)
	srv, _ := scripted(t, 503)
	longURL := srv.URL + "/health?" + strings.Repeat("x", 600)
	in := f.observeInput(probe("health", models.ProbeHTTP, fmt.Sprintf(`{"url":%q,"requests":1}`, longURL)))
	in.Until = f.acts.Clock.Now().Add(10 * time.Minute)
	var res ObserveResult
	require.NoError(t, f.run(t, f.acts.Observe, in, &res))
	require.Equal(t, 20, res.Runs)
	require.Equal(t, 20, res.Failed, "every failed run is counted")
	require.Equal(t, 1, res.Incidents, "one incident per probe, not one per failed run")
	incidents, err := f.st.ListIncidents(context.Background(), f.dep.ID)
	require.NoError(t, err)
	require.Len(t, incidents, 1)
	require.LessOrEqual(t, len(incidents[0].Title), models.IncidentTitleMax)
	require.True(t, strings.HasPrefix(incidents[0].Title, "probe health breached on a"))
	require.True(t, strings.HasSuffix(incidents[0].Title, "…"))
}

// When the monitoring system cannot answer, that is counted apart, and
// never a breach; past error_tolerance before the point of no return the
// deployment is not observable, and the workflow decides.
func TestObserveCountsMonitoringErrorsApart(t *testing.T) {
	f := newFixture(t)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html><body>503 Service Unavailable</body></html>")
	}))
	t.Cleanup(prom.Close)
	p := probe("latency", models.ProbePrometheus, fmt.Sprintf(`{"url":%q,"query":"up","comparison":">="}`, prom.URL))
	p.ErrorTolerance = 4
	in := f.observeInput(p)
	in.StopOnBreach = true
	var res ObserveResult
	require.NoError(t, f.run(t, f.acts.Observe, in, &res))
	require.False(t, res.Breached, "the monitoring system failing is not the service failing")
	require.True(t, res.Unobservable)
	require.Equal(t, res.Runs, res.Errors)
	require.Zero(t, res.Failed)
	require.Contains(t, res.Why, "probe latency could not measure on a for 4 runs in a row")

	exit, err := f.acts.ExitCriteria(context.Background(), ExitInput{DeploymentID: f.dep.ID,
		Criteria:  models.ExitCriteria{MaxOpenIncidentSeverity: "high", MinProbeSuccessRatio: 0.95},
		ProbeRuns: res.Runs, ProbeErrors: res.Errors, Probes: 1})
	require.NoError(t, err)
	require.False(t, exit.Met, "nothing measured is no evidence of health")
	require.Contains(t, exit.Reasons[0], "no probe measured anything")
}

// Slow probes: the activity heartbeats while a round runs, so a round
// longer than the heartbeat timeout is not taken for a dead worker.
func TestObserveHeartbeatsDuringASlowRound(t *testing.T) {
	f := newFixture(t)
	f.acts.Clock = RealClock{}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2500 * time.Millisecond)
	}))
	t.Cleanup(slow.Close)
	in := f.observeInput(probe("slow", models.ProbeHTTP, fmt.Sprintf(`{"url":%q,"requests":3}`, slow.URL)))
	in.Until = time.Now().Add(8 * time.Second)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	start := time.Now()
	var firstBeat atomic.Int64
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
		firstBeat.CompareAndSwap(0, int64(time.Since(start)))
	})
	_, err := env.ExecuteActivity(f.acts.Observe, in)
	require.NoError(t, err)
	require.NotZero(t, firstBeat.Load())
	require.Less(t, time.Duration(firstBeat.Load()), 6*time.Second, "a heartbeat came during the 7.5 s round, not after it")
	require.Less(t, time.Since(start), 9*time.Second, "and the window did not overrun")
}

// Probes that hang are cut off at the end of the window, which never overruns.
func TestObserveEndsOnTimeWhenProbesHang(t *testing.T) {
	f := newFixture(t)
	f.acts.Clock = RealClock{}
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	for i := 0; i < 5; i++ { // seven targets in all
		f.targets = append(f.targets, f.targets[0])
	}
	in := f.observeInput(probe("hang", models.ProbeHTTP, fmt.Sprintf(`{"url":%q,"requests":5}`, hang.URL)))
	in.Until = time.Now().Add(2 * time.Second)
	start := time.Now()
	var res ObserveResult
	require.NoError(t, f.run(t, f.acts.Observe, in, &res))
	require.Less(t, time.Since(start), 3*time.Second)
	require.Zero(t, res.Runs, "runs cut off by the end of the window measure nothing")
}

func TestExitCriteria(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	criteria := models.ExitCriteria{MaxOpenIncidentSeverity: "high", MinProbeSuccessRatio: 0.9}
	exit, err := f.acts.ExitCriteria(ctx, ExitInput{DeploymentID: f.dep.ID, Criteria: criteria, ProbeRuns: 12, ProbePassed: 9, ProbeFailed: 1, ProbeErrors: 2, Probes: 1})
	require.NoError(t, err)
	require.True(t, exit.Met, "9 of 10 measured runs passed; 2 runs measured nothing and do not count")
	require.NoError(t, f.st.CreateIncident(ctx, store.Actor{Subject: "ops"}, &models.Incident{DeploymentID: f.dep.ID, Severity: "critical", Title: "checkout down"}))
	exit, err = f.acts.ExitCriteria(ctx, ExitInput{DeploymentID: f.dep.ID, Criteria: criteria, ProbeRuns: 10, ProbePassed: 8, ProbeFailed: 2, Probes: 1})
	require.NoError(t, err)
	require.False(t, exit.Met)
	require.Len(t, exit.Reasons, 2, "the open incident and the success ratio")
}

func TestGate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.acts.Clock = RealClock{}
	in := GateInput{DeploymentID: f.dep.ID, ApplicationID: f.app.ID, EnvironmentID: f.env.ID}
	var g GateResult
	require.NoError(t, f.run(t, f.acts.Gate, in, &g))
	require.True(t, g.Open)

	later := time.Now().Add(time.Hour)
	in.NotBefore = &later
	require.NoError(t, f.run(t, f.acts.Gate, in, &g))
	require.False(t, g.Open)
	require.Equal(t, models.HoldNotBefore, g.Hold.Kind)
	in.NotBefore = nil

	// The policy as it is now, not as it was planned.
	now := time.Now()
	_, err := f.st.UpdateEnvironment(ctx, store.Actor{Subject: "admin"}, f.env.ID, func(e *models.Environment) {
		e.Policy.V.Freezes = []models.Freeze{{Start: now.Add(-time.Minute), End: now.Add(time.Hour), Reason: "incident in progress"}}
	})
	require.NoError(t, err)
	require.NoError(t, f.run(t, f.acts.Gate, in, &g))
	require.Equal(t, models.HoldFreeze, g.Hold.Kind)
	require.Contains(t, g.Hold.Reason, "freeze: incident in progress")
	require.WithinDuration(t, now.Add(time.Hour), *g.Hold.Until, time.Second)

	// Another rollout of the lane holds it too.
	_, err = f.st.UpdateEnvironment(ctx, store.Actor{Subject: "admin"}, f.env.ID, func(e *models.Environment) { e.Policy.V.Freezes = nil })
	require.NoError(t, err)
	other, _, err := f.st.CreateDeployment(ctx, store.Actor{Subject: "x"}, &models.Deployment{ApplicationID: f.app.ID, EnvironmentID: f.env.ID,
		ReleaseID: f.old.ID, ReleaseVersion: "1.0.0", Status: models.StatusDeploying}, store.IdempotencyKey{})
	require.NoError(t, err)
	require.NoError(t, f.run(t, f.acts.Gate, in, &g))
	require.Equal(t, models.HoldQueued, g.Hold.Kind)
	require.Contains(t, g.Hold.Reason, other.ID+" of the same application to prod is rolling out")
}

func TestRecordSteps(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	deploying := models.StatusDeploying
	vote := &models.Approval{DeploymentID: f.dep.ID, Approver: "alice", Decision: models.DecisionApprove, Via: string(models.ViaAPI)}
	steps := StepsInput{DeploymentID: f.dep.ID, Steps: []RecordInput{
		{Key: "run/1", Type: models.EventVote, Message: "alice voted approve via api", Vote: vote,
			Audit: &AuditRecord{Actor: "alice", Action: "approve", Via: models.ViaAPI}},
		{Key: "run/2", Status: &deploying, Type: models.EventStatus, Message: "driver said \x00 and \xff"},
		{Key: "run/3", Type: models.EventControl, Message: "bob asked to abort via signal",
			Audit: &AuditRecord{Actor: "bob", Action: "abort", Via: models.ViaSignal, Data: map[string]any{"reason": "bad"}}},
	}}
	require.NoError(t, f.run(t, f.acts.RecordSteps, steps, nil))
	require.NoError(t, f.run(t, f.acts.RecordSteps, steps, nil), "a retried batch records nothing twice")
	events, err := f.st.ListDeploymentEvents(ctx, f.dep.ID, 0, 100)
	require.NoError(t, err)
	require.Len(t, events, 4, "submitted and the three steps, once")
	require.Equal(t, "driver said \u2400 and \uFFFD", events[2].Message, "text a driver printed is made storable")
	for _, who := range []struct{ actor, action string }{{"alice", "approve"}, {"bob", "abort"}} {
		audit, err := f.st.ListAudit(ctx, store.AuditFilter{Actor: who.actor, ResourceID: f.dep.ID}, 0, 10)
		require.NoError(t, err)
		require.Len(t, audit, 1, who.actor)
		require.Equal(t, who.action, audit[0].Action)
		require.Equal(t, "deployment", audit[0].ResourceType)
	}
	approvals, err := f.st.ListApprovals(ctx, f.dep.ID)
	require.NoError(t, err)
	require.Len(t, approvals, 1)

	// The final status closes the targets never started.
	done := models.StatusRolledBack
	require.NoError(t, f.run(t, f.acts.RecordSteps, StepsInput{DeploymentID: f.dep.ID, Steps: []RecordInput{
		{Key: "run/4", Status: &done, Type: models.EventStatus, Message: "rolled back", CloseTargets: true}}}, nil))
	require.Equal(t, models.TargetNotStarted, f.row(t, "a").Status)
}

func TestBuildWaves(t *testing.T) {
	var ts []models.PlanTarget
	for i := 0; i < 10; i++ {
		ts = append(ts, models.PlanTarget{ID: string(rune('a' + i))})
	}
	sizes := func(w [][]models.PlanTarget) []int {
		var out []int
		for _, x := range w {
			out = append(out, len(x))
		}
		return out
	}
	require.Equal(t, []int{10}, sizes(BuildWaves(ts, models.Strategy{Kind: models.StrategyAllAtOnce})))
	require.Equal(t, []int{3, 3, 3, 1}, sizes(BuildWaves(ts, models.Strategy{Kind: models.StrategyRolling, Batch: 3})))
	require.Equal(t, []int{1, 2, 7}, sizes(BuildWaves(ts, models.Strategy{Kind: models.StrategyCanary,
		Steps: []models.CanaryStep{{Count: 1}, {Percent: 25}, {Percent: 100}}})))
	require.Equal(t, []int{2, 3, 5}, sizes(BuildWaves(ts, models.Strategy{Kind: models.StrategyCanary,
		Steps: []models.CanaryStep{{Count: 2}, {Percent: 10}, {Percent: 50}}})), "10%% adds nothing after 2 and is dropped; the rest go in a last wave")
}

func TestAssessRisk(t *testing.T) {
	low := AssessRisk(RiskFacts{Scenario: models.ScenarioUpgrade, Targets: 2, Artifacts: 1, ToVersion: "1.1.0",
		FromVersions: map[string]string{"a": "1.0.0"}, EnvironmentName: "dev"})
	require.Equal(t, "low", low.Level)
	high := AssessRisk(RiskFacts{Scenario: models.ScenarioUpgrade, Targets: 12, Artifacts: 3, ToVersion: "2.0.0",
		FromVersions: map[string]string{"a": "1.9.0"}, Production: true, EnvironmentName: "prod", RecentFailed: 3, RecentTotal: 10})
	require.Equal(t, "critical", high.Level)
	require.Len(t, high.Reasons, 5)
	require.Contains(t, high.Reasons[3], "major version change: 1.9.0 to 2.0.0")
	down := AssessRisk(RiskFacts{Scenario: models.ScenarioDowngrade, Targets: 1, Artifacts: 1, ToVersion: "1.1.0",
		FromVersions: map[string]string{"a": "1.4.0"}, EnvironmentName: "dev"})
	require.Contains(t, down.Reasons[0], "downgrade: an older version replaces a newer one (1.4.0)")
}
