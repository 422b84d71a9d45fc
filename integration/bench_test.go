package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/models"
)

// bareWorkflow is the baseline: a workflow that runs one activity.
func bareWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	return workflow.ExecuteActivity(ctx, "noop").Get(ctx, nil)
}

func noop(context.Context) error { return nil }

// BenchmarkDeploymentVersusBareWorkflow runs `concurrency` whole deployments
// (plan, auto-approval, one wave of one simulated target, a check, PONR and
// ELS of a few ms, every step recorded in Postgres) through the real API,
// and as many bare one-activity workflows on the same dev server, and
// reports both rates and their ratio. Run it with `make bench`.
func BenchmarkDeploymentVersusBareWorkflow(b *testing.B) {
	const concurrency = 20
	s := newStack(b, stackOptions{})
	ctx := context.Background()

	bw := sdkworker.New(s.temporal, s.taskQueue+"-bare", sdkworker.Options{})
	bw.RegisterWorkflow(bareWorkflow)
	bw.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: "noop"})
	require.NoError(b, bw.Start())
	defer bw.Stop()

	policy := models.Policy{PointOfNoReturn: models.Duration(time.Millisecond), EarlyLifeSupport: models.Duration(time.Millisecond),
		ValidationChecks: []models.CheckSpec{{Name: "smoke", Type: models.CheckSimulated, Tries: 1}}}
	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "bench", "owner_team": "perf"}).str("id")
	rel := s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": app, "version": "1.0.0",
		"artifacts": []map[string]string{{"name": "bench", "version": "1"}}}).str("id")
	var envs []string
	for i := 0; i < concurrency*b.N; i++ {
		env := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app, "name": fmt.Sprintf("env-%d", i), "policy": policy}).str("id")
		s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": env, "name": "t", "driver": "simulated", "config": map[string]any{}})
		envs = append(envs, env)
	}

	b.ResetTimer()
	bareStart := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < concurrency*b.N; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bare-%d-%d", time.Now().UnixNano(), i),
				TaskQueue: s.taskQueue + "-bare"}, bareWorkflow)
			if err == nil {
				err = run.Get(ctx, nil)
			}
			if err != nil {
				b.Error(err)
			}
		}(i)
	}
	wg.Wait()
	bare := time.Since(bareStart)

	depStart := time.Now()
	ids := make([]string, len(envs))
	for i, env := range envs {
		wg.Add(1)
		go func(i int, env string) {
			defer wg.Done()
			r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": rel, "environment": env})
			if r.Status != 201 {
				b.Errorf("deploy: %d %s", r.Status, r.Raw)
				return
			}
			ids[i] = r.str("deployment", "id")
			run := s.temporal.GetWorkflow(ctx, models.WorkflowIDFor(ids[i]), "")
			var res models.DeploymentResult
			if err := run.Get(ctx, &res); err != nil || res.Status != models.StatusCompleted {
				b.Errorf("deployment %s: %v %+v", ids[i], err, res)
			}
		}(i, env)
	}
	wg.Wait()
	deployments := time.Since(depStart)
	b.StopTimer()

	n := float64(concurrency * b.N)
	events := s.historyLength(models.WorkflowIDFor(ids[0]))
	b.ReportMetric(n/bare.Seconds(), "bare_workflows/s")
	b.ReportMetric(n/deployments.Seconds(), "deployments/s")
	b.ReportMetric(deployments.Seconds()/bare.Seconds(), "ratio_deployment_to_bare")
	b.ReportMetric(float64(events), "history_events/deployment")
	fmt.Printf("FIGURE bench: %d bare workflows in %s (%.1f/s); %d deployments in %s (%.1f/s); a deployment costs %.1fx a bare workflow; %d history events each\n",
		int(n), bare.Round(time.Millisecond), n/bare.Seconds(), int(n), deployments.Round(time.Millisecond), n/deployments.Seconds(),
		deployments.Seconds()/bare.Seconds(), events)
}
