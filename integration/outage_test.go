package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/internal/testenv"
	"github.com/transit-hq/transit/models"
)

// Postgres is stopped for 30 s in the middle of a wave: the steps wait the
// outage out, the API answers 503 with Retry-After meanwhile, and the
// deployment completes with each target changed once.
func TestDatabaseOutageMidWave(t *testing.T) {
	pg := testenv.OwnPostgres(t)
	s := newStack(t, stackOptions{dbURL: pg.URL})
	policy := quickPolicy()
	policy.ValidationChecks = nil
	c := s.seed("prod", 0, policy, "", "1.0.0")
	slow := map[string]string{"DEPLOY_SECONDS": "6"}
	dirs := []string{s.scriptTarget(c.env, "t1", "", slow), s.scriptTarget(c.env, "t2", "", slow)}

	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	require.EventuallyWithT(t, func(co *assertCollect) {
		for _, dir := range dirs {
			if len(starts(calls(t, dir), "deploy")) == 0 {
				co.Errorf("%s has not started yet", dir)
			}
		}
	}, 30*time.Second, 100*time.Millisecond)

	require.NoError(t, pg.Stop())
	t.Logf("Postgres stopped mid-wave")
	r := s.call("GET", "/api/v1/deployments/"+id, s.admin, nil)
	require.Equal(t, 503, r.Status, r.Raw)
	require.Equal(t, "unavailable", r.str("error", "code"))
	resp := s.rawGet("/api/v1/deployments/" + id)
	require.Equal(t, "5", resp.Header.Get("Retry-After"))
	time.Sleep(30 * time.Second)
	require.NoError(t, pg.Start())
	t.Logf("Postgres started again")

	d := s.waitStatus(id, 2*time.Minute, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusRolledBack, models.StatusFailed)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	for _, dir := range dirs {
		require.Len(t, starts(calls(t, dir), "deploy"), 1, "%s was changed once", dir)
		require.Equal(t, "1.0.0", readVersion(t, dir))
	}
	require.NotContains(t, strings.Join(s.events(id), "\n"), "rolling back")
	s.saveHistory(id, "database_outage")
}

// The worker is killed (SIGKILL) while a 12 s deploy script runs, and a new
// worker takes the step up: the two runs of the script never overlap, not
// even the background process the first one left behind.
func TestScriptNeverRunsTwiceAtOnce(t *testing.T) {
	s := newStack(t, stackOptions{noWorker: true})
	policy := quickPolicy()
	policy.ValidationChecks = nil
	c := s.seed("prod", 0, policy, "", "1.0.0")
	dir := s.scriptTarget(c.env, "t1", "", map[string]string{"DEPLOY_SECONDS": "12", "BACKGROUND": "1"})

	first := startProcess(t, s.workerEnv(), "worker")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	require.EventuallyWithT(t, func(co *assertCollect) {
		if len(calls(t, dir)) < 4 {
			co.Errorf("the script has not got going yet")
		}
	}, 60*time.Second, 100*time.Millisecond, "worker output:\n%s", first.output())
	first.kill()
	t.Logf("worker killed while the script runs")

	second := startProcess(t, s.workerEnv(), "worker")
	d := s.waitStatus(id, 2*time.Minute, models.StatusCompleted, models.StatusFailed, models.StatusRolledBack)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), "%s\nworker:\n%s", d.str("deployment", "outcome"), second.output())

	all := calls(t, dir)
	runs := starts(all, "deploy")
	require.Len(t, runs, 2, "the step ran again after the worker died")
	firstRun, secondRun := runs[0], runs[1]
	var lastOfFirst float64
	for _, c := range all {
		if c.pid == firstRun.pid && c.at > lastOfFirst {
			lastOfFirst = c.at
		}
	}
	require.Less(t, lastOfFirst, secondRun.at, "the first run (and what it left running) had ended %.2fs after the second began",
		lastOfFirst-secondRun.at)
	require.Equal(t, firstRun.fields["key"], secondRun.fields["key"], "the same step, under the same key")
	s.saveHistory(id, "worker_killed_mid_script")
}
