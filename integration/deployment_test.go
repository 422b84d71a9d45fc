package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func quickPolicy() models.Policy {
	return models.Policy{
		PointOfNoReturn:   models.Duration(2 * time.Second),
		EarlyLifeSupport:  models.Duration(4 * time.Second),
		ValidationChecks:  []models.CheckSpec{{Name: "smoke", Type: models.CheckSimulated, Config: json.RawMessage(`{}`), Tries: 1}},
		ObservationProbes: []models.ProbeSpec{{Name: "errors", Type: models.ProbeSimulated, Config: json.RawMessage(`{}`), Interval: models.Duration(time.Second)}},
	}
}

// The happy path: a 10-target canary to a production-like environment,
// approved by two distinct approvers, observed through early life support
// and handed over.
func TestDeploymentHappyPathTwoApprovers(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 2
	policy.ApproverGroups = []string{"release-managers"}
	policy.Strategy = models.Strategy{Kind: models.StrategyCanary, Bake: models.Duration(time.Second),
		Steps: []models.CanaryStep{{Count: 1}, {Percent: 25}, {Percent: 100}}}
	c := s.seed("prod", 10, policy, "", "1.0.0")
	dave := s.issueToken("dave", "developers")
	alice := s.issueToken("alice", "release-managers")
	bob := s.issueToken("bob", "release-managers")

	id := s.deploy(dave, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "reason": "launch"})
	d := s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	require.Equal(t, "install", d.str("deployment", "scenario"), "inferred: nothing runs there yet")
	require.Equal(t, `[1,"25%","100%"]`, d.str("deployment", "plan", "strategy", "steps"))
	var waves [][]any
	require.NoError(t, json.Unmarshal([]byte(d.str("deployment", "plan", "waves")), &waves))
	require.Equal(t, []int{1, 2, 7}, []int{len(waves[0]), len(waves[1]), len(waves[2])}, "canary 1, 25%% (3 of 10), 100%%")
	require.NotEmpty(t, d.str("deployment", "plan", "risk", "reasons"))
	require.Contains(t, d.str("temporal_ui"), "/workflows/deployment-"+id)

	r := s.call("POST", "/api/v1/deployments/"+id+"/approvals", alice, map[string]any{"decision": "approve", "comment": "looks good"})
	require.Equal(t, 200, r.Status, r.Raw)
	require.EqualValues(t, 1, r.get("approvals"))
	require.EqualValues(t, 2, r.get("required"))

	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", alice, map[string]any{"decision": "approve"})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "already voted")

	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", bob, map[string]any{"decision": "approve"})
	require.Equal(t, 200, r.Status, r.Raw)

	d = s.waitStatus(id, 90*time.Second, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusRolledBack, models.StatusFailed)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, d.str("deployment", "outcome"), "handed over")

	var approvals []models.Approval
	require.NoError(t, json.Unmarshal([]byte(d.str("approvals")), &approvals))
	require.Len(t, approvals, 2)
	var targets []models.DeploymentTarget
	require.NoError(t, json.Unmarshal([]byte(d.str("targets")), &targets))
	require.Len(t, targets, 10)
	for _, tg := range targets {
		require.Equal(t, models.TargetValidated, tg.Status, tg.TargetName)
		require.Equal(t, "1.0.0", tg.ToVersion)
	}
	states, err := s.store.TargetStates(context.Background(), c.targets)
	require.NoError(t, err)
	for _, id := range c.targets {
		require.Equal(t, "1.0.0", states[id].LastKnownGoodVer, "after the point of no return the release is last known good")
	}
	timeline := strings.Join(s.events(id), "\n")
	for _, want := range []string{"alice voted approve", "bob voted approve", "wave 1 of 3", "wave 3 of 3", "baking", "point of no return passed", "handed over"} {
		require.Contains(t, timeline, want)
	}

	// The workflow carries the search attributes for the Temporal UI.
	desc, err := s.temporal.DescribeWorkflowExecution(context.Background(), models.WorkflowIDFor(id), "")
	require.NoError(t, err)
	fields := desc.WorkflowExecutionInfo.SearchAttributes.IndexedFields
	for _, sa := range models.SearchAttributes {
		require.Contains(t, fields, sa)
	}
	require.Contains(t, string(fields[models.SAStage].Data), "completed")

	n := s.historyLength(models.WorkflowIDFor(id))
	t.Logf("history of a 10-target canary deployment (3 waves, 2 approvals, checks, PONR, ELS with probes): %d events", n)
	fmt.Printf("FIGURE history_events_10_target_canary=%d\n", n)
	s.saveHistory(id, "happy_path")
	require.Less(t, n, 400)

	// A vote after the fact is refused with the reason.
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", alice, map[string]any{"decision": "reject"})
	require.Equal(t, 409, r.Status, r.Raw)
}

func TestApprovalRules(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	c := s.seed("prod", 1, policy, "", "1.0.0")
	rm := s.issueToken("rita", "release-managers")
	outsider := s.issueToken("oscar", "developers")

	// Self-approval: refused with 403 and the reason.
	id := s.deploy(rm, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	r := s.call("POST", "/api/v1/deployments/"+id+"/approvals", rm, map[string]any{"decision": "approve"})
	require.Equal(t, 403, r.Status, r.Raw)
	require.Equal(t, "forbidden", r.str("error", "code"))
	require.Contains(t, r.str("error", "message"), "does not allow self-approval")

	// Not an approver: refused, 403.
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", outsider, map[string]any{"decision": "approve"})
	require.Equal(t, 403, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "not in the approver groups")

	// Bad decision: 422.
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", outsider, map[string]any{"decision": "maybe"})
	require.Equal(t, 422, r.Status, r.Raw)

	// A Signal from the Temporal CLI is checked against the same rules:
	// oscar's vote is recorded as ignored and changes nothing.
	require.NoError(t, s.temporal.SignalWorkflow(context.Background(), models.WorkflowIDFor(id), "", models.UpdateApprove,
		models.VoteInput{Approver: "oscar"}))
	require.EventuallyWithT(t, func(c *assertCollect) {
		if !strings.Contains(strings.Join(s.events(id), "\n"), `approve signal from "oscar" ignored`) {
			c.Errorf("no ignored-signal event yet")
		}
	}, 20*time.Second, 200*time.Millisecond)
	require.Equal(t, string(models.StatusAwaitingApproval), s.must(200, "GET", "/api/v1/deployments/"+id, nil).str("deployment", "status"))

	// A rejection by a valid approver ends it.
	reviewer := s.issueToken("rob", "release-managers")
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", reviewer, map[string]any{"decision": "reject", "comment": "not during the sale"})
	require.Equal(t, 200, r.Status, r.Raw)
	d := s.waitStatus(id, 30*time.Second, models.StatusRejected)
	require.Contains(t, d.str("deployment", "outcome"), "not during the sale")
	s.saveHistory(id, "rejected")

	// A Signal vote from a real approver counts (operators on the CLI).
	id2 := s.deploy(rm, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id2, 30*time.Second, models.StatusAwaitingApproval)
	require.NoError(t, s.temporal.SignalWorkflow(context.Background(), models.WorkflowIDFor(id2), "", models.UpdateApprove,
		models.VoteInput{Approver: "rob", Comment: "via CLI"}))
	s.waitStatus(id2, 60*time.Second, models.StatusCompleted)
}

func TestApprovalExpires(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApprovalExpiry = models.Duration(2 * time.Second)
	c := s.seed("prod", 1, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, 30*time.Second, models.StatusExpired)
	require.Contains(t, d.str("deployment", "outcome"), "0 of 1 approvals")
	s.saveHistory(id, "expired")
}

// A failing validation rolls every deployed target back to its last known
// good release, and the deployment ends rolled_back.
func TestFailingValidationRollsBack(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(time.Second)
	policy.Strategy = models.Strategy{Kind: models.StrategyAllAtOnce}
	policy.ValidationChecks = []models.CheckSpec{{Name: "version", Type: models.CheckSimulated, Tries: 1,
		Config: json.RawMessage(`{"fail_versions":["2.0.0"]}`)}}
	c := s.seed("prod", 4, policy, "", "1.0.0", "2.0.0")

	first := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(first, 60*time.Second, models.StatusCompleted)

	second := s.deploy(s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env})
	d := s.waitStatus(second, 60*time.Second, models.StatusRolledBack, models.StatusCompleted, models.StatusFailed)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Equal(t, "upgrade", d.str("deployment", "scenario"))
	require.Contains(t, d.str("deployment", "outcome"), "validation checks failed")
	require.Contains(t, d.str("deployment", "outcome"), "4 targets rolled back to what ran before")
	s.saveHistory(second, "rollback_before_ponr")

	ctx := context.Background()
	states, err := s.store.TargetStates(ctx, c.targets)
	require.NoError(t, err)
	for _, id := range c.targets {
		v, err := s.store.SimulatedVersion(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "1.0.0", v, "the target runs its last known good again")
		require.Equal(t, "1.0.0", states[id].CurrentVersion)
		require.Equal(t, "1.0.0", states[id].LastKnownGoodVer)
	}
	var targets []models.DeploymentTarget
	require.NoError(t, json.Unmarshal([]byte(d.str("targets")), &targets))
	for _, tg := range targets {
		require.Equal(t, models.TargetRolledBack, tg.Status)
	}
}

// Abort before the point of no return rolls back; after it, abort is
// refused with the reason; pause holds the rollout and resume lets it go on.
func TestControls(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1, Bake: models.Duration(4 * time.Second)}
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(8*time.Second)
	c := s.seed("prod", 3, policy, `{"latency_min":"300ms","latency_max":"300ms"}`, "1.0.0", "1.1.0")

	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusDeploying)
	r := s.call("POST", "/api/v1/deployments/"+id+"/pause", s.admin, map[string]any{"reason": "checking dashboards"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(id, 30*time.Second, models.StatusPaused)
	require.Equal(t, 409, s.call("POST", "/api/v1/deployments/"+id+"/pause", s.admin, nil).Status, "already paused")
	time.Sleep(time.Second)
	require.Equal(t, string(models.StatusPaused), s.must(200, "GET", "/api/v1/deployments/"+id, nil).str("deployment", "status"))
	s.must(200, "POST", "/api/v1/deployments/"+id+"/resume", nil)
	s.waitStatus(id, 60*time.Second, models.StatusEarlyLifeSupport)
	require.EventuallyWithT(t, func(c *assertCollect) {
		live := s.must(200, "GET", "/api/v1/deployments/"+id, nil)
		if live.get("live", "past_point_of_no_return") != true {
			c.Errorf("not past the point of no return yet")
		}
	}, 30*time.Second, 200*time.Millisecond)
	r = s.call("POST", "/api/v1/deployments/"+id+"/abort", s.admin, map[string]any{"reason": "too late"})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "point of no return")

	// An incident after the point of no return is recorded, does not roll
	// back, and keeps the deployment from being handed over.
	r = s.call("POST", "/api/v1/deployments/"+id+"/incidents", s.admin, map[string]any{"severity": "high", "title": "checkout latency up"})
	require.Equal(t, 201, r.Status, r.Raw)
	require.Equal(t, 422, s.call("POST", "/api/v1/deployments/"+id+"/incidents", s.admin, map[string]any{"severity": "meh", "title": "x"}).Status)
	d := s.waitStatus(id, 60*time.Second, models.StatusCompletedWithIssues, models.StatusCompleted)
	require.Equal(t, string(models.StatusCompletedWithIssues), d.str("deployment", "status"))
	require.Contains(t, d.str("deployment", "outcome"), "checkout latency up")
	s.saveHistory(id, "incident_after_ponr")

	// Abort during the rollout of the next release: rolled back.
	id2 := s.deploy(s.admin, map[string]any{"release": c.releases["1.1.0"], "environment": c.env})
	s.waitStatus(id2, 30*time.Second, models.StatusDeploying)
	r = s.call("POST", "/api/v1/deployments/"+id2+"/abort", s.admin, map[string]any{"reason": "wrong build"})
	require.Equal(t, 200, r.Status, r.Raw)
	d = s.waitStatus(id2, 60*time.Second, models.StatusRolledBack)
	require.Contains(t, d.str("deployment", "outcome"), "abort requested by admin: wrong build")
	s.saveHistory(id2, "abort_mid_rollout")
	for _, tid := range c.targets {
		v, err := s.store.SimulatedVersion(context.Background(), tid)
		require.NoError(t, err)
		require.Equal(t, "1.0.0", v)
	}
	require.Equal(t, 409, s.call("POST", "/api/v1/deployments/"+id2+"/resume", s.admin, nil).Status, "ended")
}

// Deployments of one application to one environment wait their turn, first
// in first out; a repeated request with the same Idempotency-Key returns the
// same deployment.
func TestLaneAndIdempotency(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(3*time.Second)
	c := s.seed("prod", 2, policy, "", "1.0.0", "1.1.0")

	body := map[string]any{"release": c.releases["1.0.0"], "environment": c.env}
	r1 := s.call("POST", "/api/v1/deployments", s.admin, body, "Idempotency-Key", "launch-1")
	require.Equal(t, 201, r1.Status, r1.Raw)
	r2 := s.call("POST", "/api/v1/deployments", s.admin, body, "Idempotency-Key", "launch-1")
	require.Equal(t, 200, r2.Status, r2.Raw)
	require.Equal(t, r1.str("deployment", "id"), r2.str("deployment", "id"))
	first := r1.str("deployment", "id")

	r3 := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "reason": "other"},
		"Idempotency-Key", "launch-1")
	require.Equal(t, 409, r3.Status, "the same key for another request: %s", r3.Raw)
	require.Contains(t, r3.str("error", "message"), "used for another request")

	// Concurrent requests with one key make one deployment.
	type result struct {
		status int
		id     string
	}
	results := make(chan result, 4)
	for i := 0; i < 4; i++ {
		go func() {
			r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["1.1.0"], "environment": c.env},
				"Idempotency-Key", "next-1")
			results <- result{r.Status, r.str("deployment", "id")}
		}()
	}
	var second string
	for i := 0; i < 4; i++ {
		got := <-results
		require.Contains(t, []int{200, 201}, got.status)
		if second == "" {
			second = got.id
		}
		require.Equal(t, second, got.id)
	}
	s.waitStatus(second, 30*time.Second, models.StatusQueued)
	s.waitStatus(first, 60*time.Second, models.StatusCompleted)
	d := s.waitStatus(second, 60*time.Second, models.StatusCompleted)
	require.Equal(t, "upgrade", d.str("deployment", "scenario"))
	require.Contains(t, strings.Join(s.events(second), "\n"), "waiting for 1 earlier deployment")
	s.saveHistory(second, "lane_queued")

	// Bad input starts nothing.
	before := len(s.must(200, "GET", "/api/v1/deployments", nil).items())
	for _, bad := range []map[string]any{
		{"release": c.releases["1.0.0"]},
		{"release": "rel_nope", "environment": c.env},
		{"release": c.releases["1.0.0"], "environment": c.env, "scenario": "sideways"},
		{"release": c.releases["1.0.0"], "environment": c.env, "strategy": map[string]any{"kind": "rolling"}},
		{"release": c.releases["1.0.0"], "environment": c.env, "retain_data": true, "scenario": "upgrade"},
	} {
		r := s.call("POST", "/api/v1/deployments", s.admin, bad)
		require.Equal(t, 422, r.Status, r.Raw)
	}
	require.Len(t, s.must(200, "GET", "/api/v1/deployments", nil).items(), before)
}

// Decommission removes the release from every target, passing retain_data,
// and clears the last known good.
func TestDecommission(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(time.Second)
	c := s.seed("prod", 2, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 60*time.Second, models.StatusCompleted)

	id = s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "scenario": "decommission", "retain_data": true})
	d := s.waitStatus(id, 60*time.Second, models.StatusCompleted, models.StatusFailed, models.StatusRolledBack)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, d.str("deployment", "outcome"), "data retained: true")
	s.saveHistory(id, "decommission")
	states, err := s.store.TargetStates(context.Background(), c.targets)
	require.NoError(t, err)
	for _, tid := range c.targets {
		v, err := s.store.SimulatedVersion(context.Background(), tid)
		require.NoError(t, err)
		require.Empty(t, v)
		require.Empty(t, states[tid].LastKnownGoodID)
	}
}

// A deployment whose workflow an operator terminated in Temporal no longer
// holds up the lane: the next one closes it and goes ahead.
func TestTerminatedWorkflowDoesNotBlockTheLane(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(time.Second)
	c := s.seed("prod", 1, policy, "", "1.0.0", "1.1.0")
	stuck := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(stuck, 30*time.Second, models.StatusAwaitingApproval)
	next := s.deploy(s.admin, map[string]any{"release": c.releases["1.1.0"], "environment": c.env})
	s.waitStatus(next, 30*time.Second, models.StatusQueued)
	require.NoError(t, s.temporal.TerminateWorkflow(context.Background(), models.WorkflowIDFor(stuck), "", "operator cleanup"))

	// Reading it shows the truth at once, and wakes the one queued behind it.
	terminated := time.Now()
	d := s.must(200, "GET", "/api/v1/deployments/"+stuck, nil)
	require.Equal(t, string(models.StatusFailed), d.str("deployment", "status"))
	require.Contains(t, d.str("deployment", "outcome"), "ended outside Transit (Terminated)")
	s.waitStatus(next, 30*time.Second, models.StatusAwaitingApproval)
	require.Less(t, time.Since(terminated), 10*time.Second, "the next one did not wait for its re-check")
}

// An incident resolved before early life support ends no longer holds back
// the handover; the timeline and the audit log say who resolved it.
func TestResolvedIncidentLetsTheHandoverGoOn(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(6*time.Second)
	c := s.seed("prod", 1, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusEarlyLifeSupport)
	require.EventuallyWithT(t, func(c *assertCollect) {
		if s.must(200, "GET", "/api/v1/deployments/"+id, nil).get("live", "past_point_of_no_return") != true {
			c.Errorf("not past the point of no return yet")
		}
	}, 30*time.Second, 200*time.Millisecond)
	inc := s.must(201, "POST", "/api/v1/deployments/"+id+"/incidents", map[string]any{"severity": "high", "title": "slow checkout"}).str("id")
	r := s.must(200, "POST", "/api/v1/deployments/"+id+"/incidents/"+inc+"/resolve", map[string]any{"comment": "cache warmed"})
	require.Equal(t, models.IncidentResolved, r.str("status"))
	require.NotEmpty(t, r.str("resolved_at"))
	require.Equal(t, 200, s.call("POST", "/api/v1/deployments/"+id+"/incidents/"+inc+"/resolve", s.admin, nil).Status, "again: no change")
	require.Equal(t, 404, s.call("POST", "/api/v1/deployments/"+id+"/incidents/inc_nope/resolve", s.admin, nil).Status)

	d := s.waitStatus(id, time.Minute, models.StatusCompleted, models.StatusCompletedWithIssues)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, strings.Join(s.events(id), "\n"), "high incident resolved by admin: slow checkout (cache warmed)")
	require.Len(t, s.must(200, "GET", "/api/v1/audit?resource_type=incident&action=update", nil).items(), 1, "resolved once, audited once")
}
