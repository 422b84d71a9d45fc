package activities

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// fixture is a SQLite store with one deployment of a release to two
// simulated targets, and the activities over it.
type fixture struct {
	acts    *Activities
	st      *store.Store
	dep     *models.Deployment
	targets []models.PlanTarget
	rel     ReleaseRef
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	actor := store.Actor{Subject: "test"}
	app := &models.Application{Name: "shop", OwnerTeam: "web"}
	require.NoError(t, st.CreateApplication(ctx, actor, app))
	env := &models.Environment{ApplicationID: app.ID, Name: "prod"}
	require.NoError(t, st.CreateEnvironment(ctx, actor, env))
	rel := &models.Release{ApplicationID: app.ID, Version: "1.0.0", Artifacts: models.NewJSON([]models.Artifact{{Name: "shop", Version: "1"}})}
	require.NoError(t, st.CreateRelease(ctx, actor, rel))
	f := &fixture{st: st, rel: ReleaseRef{ID: rel.ID, Version: rel.Version}}
	for _, name := range []string{"a", "b"} {
		tg := &models.Target{EnvironmentID: env.ID, Name: name, Driver: models.DriverSimulated, Config: models.NewJSON(json.RawMessage(`{}`))}
		require.NoError(t, st.CreateTarget(ctx, actor, tg))
		f.targets = append(f.targets, models.PlanTarget{ID: tg.ID, Name: name, Driver: tg.Driver})
	}
	d, _, err := st.CreateDeployment(ctx, actor, &models.Deployment{ApplicationID: app.ID, EnvironmentID: env.ID,
		ReleaseID: rel.ID, ReleaseVersion: rel.Version}, store.IdempotencyKey{})
	require.NoError(t, err)
	f.dep = d
	f.acts = &Activities{Store: st, Clock: skipClock{offset: &atomic.Int64{}},
		Drivers: drivers.NewRegistry(map[string]drivers.Driver{models.DriverSimulated: drivers.NewSimulated(st, drivers.SimulatedOptions{})})}
	return f
}

func (f *fixture) observe(t *testing.T, in ObserveInput) (ObserveResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	val, err := env.ExecuteActivity(f.acts.Observe, in)
	if err != nil {
		return ObserveResult{}, err
	}
	var res ObserveResult
	require.NoError(t, val.Get(&res))
	return res, nil
}

func TestObserveCountsProbeRunsAtTheirInterval(t *testing.T) {
	f := newFixture(t)
	res, err := f.observe(t, ObserveInput{DeploymentID: f.dep.ID, Targets: f.targets, Release: f.rel,
		Until:  f.acts.Clock.Now().Add(time.Hour),
		Probes: []models.ProbeSpec{{Name: "ok", Type: models.ProbeSimulated, Config: json.RawMessage(`{}`), Interval: models.Duration(time.Minute)}}})
	require.NoError(t, err)
	require.InDelta(t, 120, res.Runs, 2, "one run a minute for an hour, on each of 2 targets")
	require.Equal(t, res.Runs, res.Passed)
	require.False(t, res.Breached)
}

func TestObserveStopsAtABreachBeforePONRAndOpensAnIncidentAfter(t *testing.T) {
	f := newFixture(t)
	failing := []models.ProbeSpec{{Name: "errors", Type: models.ProbeSimulated, Config: json.RawMessage(`{"failure_rate":1}`),
		Interval: models.Duration(time.Minute)}}
	in := ObserveInput{DeploymentID: f.dep.ID, Targets: f.targets, Release: f.rel, Until: f.acts.Clock.Now().Add(time.Hour),
		Probes: failing, StopOnBreach: true, IncidentSeverity: "high"}
	res, err := f.observe(t, in)
	require.NoError(t, err)
	require.True(t, res.Breached)
	require.Equal(t, 1, res.Runs, "it stops at the first failed run")
	require.Contains(t, res.Breach, "probe errors failed on a")

	in.StopOnBreach = false
	res, err = f.observe(t, in)
	require.NoError(t, err)
	require.False(t, res.Breached)
	require.Equal(t, 0, res.Passed)
	require.Equal(t, 1, res.Incidents, "one incident per probe, not one per failed run")

	exit, err := f.acts.ExitCriteria(context.Background(), ExitInput{DeploymentID: f.dep.ID,
		Criteria: models.ExitCriteria{MaxOpenIncidentSeverity: "high", MinProbeSuccessRatio: 0.95}, ProbeRuns: res.Runs, ProbePassed: res.Passed})
	require.NoError(t, err)
	require.False(t, exit.Met)
	require.Len(t, exit.Reasons, 2, "the open incident and the success ratio")
}

func TestDeployAndRollbackAreIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	in := TargetInput{DeploymentID: f.dep.ID, Target: f.targets[0], Wave: 1, Release: f.rel, Key: f.dep.ID + "/a/deploy"}
	for i := 0; i < 2; i++ { // a retried step
		_, err := env.ExecuteActivity(f.acts.DeployTarget, in)
		require.NoError(t, err)
	}
	changes, err := f.st.SimulatedChanges(ctx, []string{f.targets[0].ID})
	require.NoError(t, err)
	require.Equal(t, 1, changes[f.targets[0].ID], "deployed once")

	// Rolling back a first install removes the release (no last known good).
	rb := in
	rb.Release, rb.Key = ReleaseRef{}, f.dep.ID+"/a/rollback"
	_, err = env.ExecuteActivity(f.acts.RollbackTarget, rb)
	require.NoError(t, err)
	v, err := f.st.SimulatedVersion(ctx, f.targets[0].ID)
	require.NoError(t, err)
	require.Empty(t, v)
	rows, err := f.st.ListDeploymentTargets(ctx, f.dep.ID)
	require.NoError(t, err)
	require.Equal(t, models.TargetRolledBack, rows[0].Status)
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
}
