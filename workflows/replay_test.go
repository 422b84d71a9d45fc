package workflows_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
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
	// The frozen workflow's paths, and one history per path of today's.
	legacy := []string{"happy_path", "rejected", "expired", "rollback_before_ponr", "incident_after_ponr", "decommission"}
	today := []string{"happy_path", "rejected", "expired", "rollback_before_ponr", "incident_after_ponr", "decommission",
		"decommission_refused", "lane_queued", "abort_mid_rollout", "cancelled_mid_rollout", "held_by_freeze",
		"signals_ignored", "votes_via_update", "reset", "database_outage", "worker_killed_mid_script",
		"failed_targets_tolerated", "breach_before_ponr", "unobservable_resumed", "fleet_in_children_rolled_back"}
	for _, want := range legacy {
		require.True(t, names[want+".legacy.json"], "testdata/histories/%s.legacy.json is missing", want)
	}
	for _, want := range today {
		require.True(t, names[want+".json"], "testdata/histories/%s.json is missing (TRANSIT_SAVE_HISTORIES=1 make test)", want)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{Interceptors: worker.Interceptors(nil)})
			require.NoError(t, err)
			worker.Register(r, nil)
			hist, exec := loadHistory(t, f)
			// Replayed as the run it was: child workflow ids name it.
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, hist, sdkworker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}))
		})
	}
}

// loadHistory reads a saved history and the execution it belongs to.
func loadHistory(t *testing.T, path string) (*historypb.History, workflow.Execution) {
	raw, err := os.Open(path)
	require.NoError(t, err)
	defer raw.Close()
	hist, err := client.HistoryFromJSON(raw, client.HistoryJSONOptions{})
	require.NoError(t, err)
	started := hist.Events[0].GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(t, started, "%s does not begin with the workflow's start", path)
	var in models.DeploymentInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(started.Input, &in))
	return hist, workflow.Execution{ID: models.WorkflowIDFor(in.DeploymentID), RunID: started.OriginalExecutionRunId}
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
