package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"

	"github.com/transit-hq/transit/models"
)

// An operator reads the deployment in the Temporal UI: every timer and
// activity (local ones too) has a summary, the workflow's current details
// show the stage, the pending approvals and a link to Transit, and its
// static summary and details say what and who.
func TestTheTemporalUITellsTheStory(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1, Bake: models.Duration(time.Second)}
	c := s.seed("prod", 2, policy, "", "1.0.0")
	rita := s.issueToken("rita", "release-managers")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "reason": "quarterly upgrade"})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	wf := models.WorkflowIDFor(id)
	ctx := context.Background()

	details := func() string {
		v, err := s.temporal.QueryWorkflow(ctx, wf, "", "__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		return md.GetCurrentDetails()
	}
	now := details()
	require.Contains(t, now, "**awaiting_approval**")
	require.Contains(t, now, "- Approvals: 0 of 1; may approve: release-managers")
	require.Contains(t, now, "2 targets in 2 waves")
	require.Contains(t, now, "[Open in Transit](http://localhost:8080/deployments/"+id+")")

	desc, err := s.temporal.DescribeWorkflowExecution(ctx, wf, "")
	require.NoError(t, err)
	var summary, static string
	md := desc.GetExecutionConfig().GetUserMetadata()
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(md.GetSummary(), &summary))
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(md.GetDetails(), &static))
	require.Equal(t, "Deploy shop-testthetemporaluitellsthestory 1.0.0 to prod", summary) // a first install
	require.Contains(t, static, "requested by admin")
	require.Contains(t, static, "Reason: quarterly upgrade")

	r := s.call("POST", "/api/v1/deployments/"+id+"/approvals", rita, map[string]any{"decision": "approve"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(id, time.Minute, models.StatusCompleted)
	require.Contains(t, details(), "**completed**")
	require.Contains(t, details(), "- Outcome: handed over to operations")

	var timers, acts, locals []string
	for _, ev := range s.history(wf).Events {
		var sum string
		if p := ev.GetUserMetadata().GetSummary(); p != nil {
			require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, &sum))
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			require.NotEmpty(t, sum, "timer %d (%s) has no summary", ev.GetEventId(), ev.GetTimerStartedEventAttributes().GetStartToFireTimeout())
			timers = append(timers, sum)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			require.NotEmpty(t, sum, "activity %s has no summary", ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName())
			acts = append(acts, sum)
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
				require.NotEmpty(t, sum, "local activity marker %d has no summary", ev.GetEventId())
				locals = append(locals, sum)
			}
		}
	}
	all := strings.Join(append(append(timers, acts...), locals...), "\n")
	for _, want := range []string{"approval expires", "bake after wave 1 (1s)", "point of no return", "early life support ends",
		"plan: ask each target", "deploy 1.0.0 to prod-01", "validate prod-02", "check the change windows and freezes of prod",
		"commit 1.0.0 as last known good", "record: "} {
		require.Contains(t, all, want)
	}
}
