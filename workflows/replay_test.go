package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/worker"
)

// Saved histories of real deployments (made by the integration tests with
// TRANSIT_SAVE_HISTORIES=1) replay against today's workflow code: a change
// that would break running deployments fails here. Such a change belongs
// behind workflow.GetVersion.
func TestReplaySavedHistories(t *testing.T) {
	files, err := filepath.Glob("../testdata/histories/*.json")
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range files {
		names[filepath.Base(f)] = true
	}
	for _, want := range []string{"happy_path.legacy.json", "rejected.legacy.json", "expired.legacy.json", "rollback_before_ponr.legacy.json",
		"incident_after_ponr.legacy.json", "decommission.legacy.json"} {
		require.True(t, names[want], "testdata/histories/%s is missing", want)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{Interceptors: worker.Interceptors(nil)})
			require.NoError(t, err)
			worker.Register(r, nil)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}

// The replayer does notice a workflow that no longer matches its history.
func TestReplayDetectsAChangedWorkflow(t *testing.T) {
	changed := func(ctx workflow.Context, in models.DeploymentInput) (models.DeploymentResult, error) {
		// Starts with a timer where the real workflow starts with the plan activity.
		_ = workflow.Sleep(ctx, 1)
		return models.DeploymentResult{}, nil
	}
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: models.WorkflowDeployment})
	err := r.ReplayWorkflowHistoryFromJSONFile(nil, "../testdata/histories/happy_path.legacy.json")
	require.Error(t, err)
	require.Contains(t, err.Error(), "TMPRL1100", "a nondeterminism error")
}
