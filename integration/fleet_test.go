package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/transit-hq/transit/models"
)

// A fleet larger than one workflow run's share (targets_per_run, lowered
// to 50 here): 240 zero-latency targets in 3 waves of 80. Each wave runs
// in child workflows of at most 50 targets, every history stays small, and
// a failure in the last wave rolls every target back.
func TestFleetSpreadsOverBoundedRuns(t *testing.T) {
	const n, perRun = 240, 50
	s := newStack(t, stackOptions{targetsPerRun: perRun})
	policy := quickPolicy()
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 80, MaxParallel: 25}
	c := s.seed("prod", 0, policy, "", "1.0.0", "2.0.0")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": c.env, "name": fmt.Sprintf("node-%03d", i+1),
			"driver": "simulated", "config": map[string]any{}}).str("id")
	}
	first := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(first, 3*time.Minute, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusFailed, models.StatusRolledBack)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))

	// The last target of the last wave now fails its deploy.
	s.must(200, "PATCH", "/api/v1/targets/"+ids[n-1], map[string]any{"config": map[string]any{"failure_rate": 1}})
	id := s.deploy(s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env})
	d = s.waitStatus(id, 3*time.Minute, models.StatusRolledBack, models.StatusFailed, models.StatusCompleted, models.StatusCompletedWithIssues)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, d.str("deployment", "outcome"), "wave 3: 1 target of 80 failed")
	require.Contains(t, d.str("deployment", "outcome"), fmt.Sprintf("%d targets rolled back to what ran before", n))
	versions := map[string]int{}
	for _, tid := range ids {
		v, err := s.store.SimulatedVersion(context.Background(), tid)
		require.NoError(t, err)
		versions[v]++
	}
	require.Equal(t, map[string]int{"1.0.0": n}, versions, "every target runs what ran before")

	// The work spread over child workflows, each within its bound.
	wf := models.WorkflowIDFor(id)
	parent := s.historyLength(wf)
	children := s.childWorkflows(wf)
	// Per wave of 80, in 50+30: the deploys of the 3 waves, the checks
	// after waves 1 and 2 (wave 3 failed), and the undo of each wave.
	require.Len(t, children, 3*2+2*2+3*2, "children: %v", children)
	largest := 0
	for _, child := range children {
		require.True(t, strings.HasPrefix(child, wf+"/"), child)
		largest = max(largest, s.historyLength(child))
	}
	// A run of 50 steps: 3 events a step (scheduled, started, completed),
	// and at most 3 more for the workflow task that each completion wakes
	// (about 4.5 in all, as they batch); its start and end.
	require.Less(t, largest, 6*perRun+10, "the largest child history")
	// Inline, the parent would hold 3 events per step for 240 deploys,
	// 240 checks and 240 undos.
	require.Less(t, parent, 400, "the parent's history")
	t.Logf("240 targets, 50 per run: parent %d events, %d children, the largest %d events", parent, len(children), largest)
	fmt.Printf("FIGURE fleet_240_targets parent_events=%d children=%d largest_child_events=%d\n", parent, len(children), largest)
	s.saveHistory(id, "fleet_in_children_rolled_back")

	// A page of deployments leaves their plans out: a 240-target plan is
	// tens of KB, and GET /deployments/{id} has it.
	page := s.must(200, "GET", "/api/v1/deployments?environment_id="+c.env, nil)
	require.Equal(t, 2, strings.Count(page.Raw, `"workflow_id"`), page.Raw)
	require.NotContains(t, page.Raw, `"plan"`)
	require.NotContains(t, page.Raw, "node-001")
	withPlans := s.must(200, "GET", "/api/v1/deployments?include=plan&environment_id="+c.env, nil)
	require.Contains(t, withPlans.Raw, `"plan":{`)
	require.Greater(t, len(withPlans.Raw), 20*len(page.Raw))
	r := s.call("GET", "/api/v1/deployments?include=everything", s.admin, nil)
	require.Equal(t, 400, r.Status, r.Raw)
	require.Contains(t, r.Raw, `include \"everything\": the only value is plan`)
}

// childWorkflows lists the ids of the child workflows a run started.
func (s *stack) childWorkflows(workflowID string) []string {
	s.t.Helper()
	var ids []string
	for _, ev := range s.history(workflowID).Events {
		if ev.EventType == enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED {
			ids = append(ids, ev.GetStartChildWorkflowExecutionInitiatedEventAttributes().WorkflowId)
		}
	}
	return ids
}

// A reset to a point after the first child workflow ended: the new run
// replays that child under its old name, starts its own children under
// new names, and finishes.
func TestResetAfterAChildWorkflowGoesOn(t *testing.T) {
	s := newStack(t, stackOptions{targetsPerRun: 5})
	policy, pass := gatedPolicy(t)
	c := s.seed("prod", 12, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusRolledBack, models.StatusCompleted, models.StatusFailed)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"), d.str("deployment", "outcome"))

	pass()
	wf := models.WorkflowIDFor(id)
	before := s.childWorkflows(wf)
	require.Len(t, before, 3+3+3, "deploys, checks and undos of 12 targets in parts of 5")
	// The first workflow task completed after the first child ended.
	afterChild := s.firstEvent(wf, enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
	var resetAt int64
	for _, ev := range s.history(wf).Events {
		if resetAt == 0 && ev.GetEventId() > afterChild && ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			resetAt = ev.GetEventId()
		}
	}
	require.NotZero(t, resetAt)
	s.reset(wf, resetAt)
	d = s.waitStatus(id, time.Minute, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusFailed)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))

	after := s.childWorkflows(wf)
	require.Equal(t, before[0], after[0], "the child before the reset point keeps its name")
	runOf := func(child string) string { return strings.Split(strings.TrimPrefix(child, wf+"/"), "/")[0] }
	require.NotEqual(t, runOf(before[0]), runOf(after[len(after)-1]), "the new run names its own children: %v", after)
}
