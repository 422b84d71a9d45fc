package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/transit-hq/transit/models"
)

// A release is promoted, not teleported: prod refuses it until it has
// completed in staging, names what is missing, and GET /releases/{id}
// shows where it stands; a minimum soak is counted from the handover.
func TestPromotionThroughTheLifecycle(t *testing.T) {
	s := newStack(t, stackOptions{})
	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "shop", "owner_team": "web"}).str("id")
	env := func(name string, position int, policy models.Policy) string {
		id := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app, "name": name, "position": position, "policy": policy}).str("id")
		s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": id, "name": name + "-01", "driver": "simulated",
			"config": json.RawMessage(`{"latency_min":"10ms","latency_max":"20ms"}`)})
		return id
	}
	staging := env("staging", 1, quickPolicy())
	prodPolicy := quickPolicy()
	prodPolicy.Promotion = models.Promotion{Previous: true}
	prod := env("prod", 2, prodPolicy)
	euPolicy := quickPolicy()
	euPolicy.Promotion = models.Promotion{Requires: []string{"staging"}, MinSoak: models.Duration(time.Hour)}
	eu := env("prod-eu", 3, euPolicy)
	rel := s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": app, "version": "1.0.0",
		"artifacts": []map[string]string{{"name": "shop", "image": "shop:1"}}}).str("id")

	r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": rel, "environment": prod})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Equal(t, "release 1.0.0 may not go to prod yet: it has not been deployed to staging (the promotion policy of prod)", r.str("error", "message"))
	require.Len(t, s.must(200, "GET", "/api/v1/deployments?environment_id="+prod, nil).items(), 0, "a refusal changes nothing")

	id := s.deploy(s.admin, map[string]any{"release": rel, "environment": staging})
	s.waitStatus(id, time.Minute, models.StatusCompleted)
	life := s.must(200, "GET", "/api/v1/releases/"+rel, nil)
	steps, ok := life.get("lifecycle").([]any)
	require.True(t, ok, life.Raw)
	require.Len(t, steps, 3)
	first := steps[0].(map[string]any)
	require.Equal(t, "staging", first["environment"])
	require.Equal(t, "completed", first["status"])
	require.Equal(t, id, first["deployment_id"])
	require.NotEmpty(t, first["finished_at"])
	require.EqualValues(t, 0, steps[1].(map[string]any)["deployments"])

	s.waitStatus(s.deploy(s.admin, map[string]any{"release": rel, "environment": prod}), time.Minute, models.StatusCompleted)

	r = s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": rel, "environment": eu})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "it has soaked in staging for 0s of the 1h0m0s required")

	// A soak needs somewhere to soak.
	r = s.call("POST", "/api/v1/environments", s.admin, map[string]any{"application_id": app, "name": "bad", "policy": map[string]any{
		"promotion": map[string]any{"min_soak": "1h"}}})
	require.Equal(t, 422, r.Status, "a soak without environments to soak in: %s", r.Raw)
}

// A standard change is approved by the policy, with its rule, the risk and
// its reasons in the audit log; a riskier one waits for people.
func TestStandardChangeApprovedByPolicy(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 2
	policy.ApproverGroups = []string{"release-managers"}
	policy.StandardChange = &models.StandardChange{MaxRisk: 40, Scenarios: []string{models.ScenarioInstall}}
	c := s.seed("prod", 1, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, time.Minute, models.StatusCompleted)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), "no one had to vote")
	approvals, _ := d.get("approvals").([]any)
	require.Len(t, approvals, 1, d.Raw)
	require.Equal(t, "policy:standard-change", approvals[0].(map[string]any)["approver"])
	var comment string
	require.EventuallyWithT(t, func(co *assertCollect) {
		events := s.must(200, "GET", "/api/v1/audit?actor=policy:standard-change&action=approve", nil).items()
		if len(events) != 1 {
			co.Errorf("the policy's approval is not in the audit log yet (%d)", len(events))
			return
		}
		all, _ := json.Marshal(events[0])
		comment = string(all)
	}, 20*time.Second, 200*time.Millisecond)
	require.Contains(t, comment, "standard change: install with risk medium (40) ≤ max_risk 40")
	require.Contains(t, comment, "the standard_change rule of prod")
	s.saveHistory(id, "standard_change")

	// Not one the rule covers (an upgrade): it waits for its two approvers.
	other := s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": c.app, "version": "2.0.0",
		"artifacts": []map[string]string{{"name": "shop", "image": "shop:2"}}}).str("id")
	id2 := s.deploy(s.admin, map[string]any{"release": other, "environment": c.env})
	s.waitStatus(id2, 30*time.Second, models.StatusAwaitingApproval)
	// Awaiting approval is also where a matched deployment passes on its
	// way: it must stay there, with no approval from the policy.
	time.Sleep(2 * time.Second)
	d2 := s.must(200, "GET", "/api/v1/deployments/"+id2, nil)
	require.Equal(t, string(models.StatusAwaitingApproval), d2.str("deployment", "status"))
	require.Empty(t, d2.get("approvals"), d2.Raw)
}

// An emergency change goes through a freeze after its own approval (a
// release manager's), marked on the timeline, in the audit log and in the
// Temporal UI; an ordinary deployment is held by the same freeze.
func TestEmergencyChangeThroughAFreeze(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	policy.SelfApprovalAllowed = true
	now := time.Now().UTC()
	policy.Freezes = []models.Freeze{{Start: now.Add(-time.Hour), End: now.Add(48 * time.Hour), Reason: "year end"}}
	c := s.seed("prod", 1, policy, "", "1.0.0", "1.0.1")
	rita := s.issueToken("rita", "release-managers") // approver group, roles deployer+release_manager (a token without roles)
	qa := s.issue(models.APIToken{Subject: "quinn", Groups: models.NewJSON([]string{"release-managers"}), Roles: models.NewJSON([]string{models.RoleViewer})})

	ordinary := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(ordinary, 30*time.Second, models.StatusAwaitingApproval)
	require.Equal(t, 200, s.call("POST", "/api/v1/deployments/"+ordinary+"/approvals", rita, map[string]any{"decision": "approve"}).Status)
	held := s.waitStatus(ordinary, 30*time.Second, models.StatusScheduled)
	require.Eventually(t, func() bool {
		return s.must(200, "GET", "/api/v1/deployments/"+ordinary, nil).str("deployment", "hold", "kind") == string(models.HoldFreeze)
	}, 20*time.Second, 200*time.Millisecond, "the ordinary one is held by the freeze: %s", held.Raw)
	require.Equal(t, 200, s.call("POST", "/api/v1/deployments/"+ordinary+"/abort", s.admin, map[string]any{"reason": "make way"}).Status)
	s.waitStatus(ordinary, 30*time.Second, models.StatusCancelled)

	r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env,
		"emergency": map[string]any{"reason": ""}})
	require.Equal(t, 422, r.Status, "an emergency says why: %s", r.Raw)
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env,
		"emergency": map[string]any{"reason": "checkout is down", "incident": "INC-123"}})
	d := s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	require.Equal(t, "INC-123", d.str("deployment", "emergency", "incident"))
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", qa, map[string]any{"decision": "approve"})
	require.Equal(t, 403, r.Status, "an approver group member who is not a release manager: %s", r.Raw)
	require.Contains(t, r.str("error", "message"), "not in the emergency approvers")
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", rita, map[string]any{"decision": "approve", "comment": "go"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(id, time.Minute, models.StatusCompleted)

	timeline := strings.Join(s.events(id), "\n")
	require.Contains(t, timeline, "Emergency change (INC-123): checkout is down")
	require.Contains(t, timeline, "an emergency change: passes")
	require.Contains(t, timeline, "year end")
	created := s.must(200, "GET", "/api/v1/audit?resource_type=deployment&action=create&resource_id="+id, nil).items()
	require.Len(t, created, 1)
	raw, _ := json.Marshal(created[0])
	require.Contains(t, string(raw), "checkout is down", "the audit log marks it")
	desc, err := s.temporal.DescribeWorkflowExecution(context.Background(), models.WorkflowIDFor(id), "")
	require.NoError(t, err)
	var title string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetSummary(), &title))
	require.True(t, strings.HasPrefix(title, "EMERGENCY: "), title)
	s.saveHistory(id, "emergency_through_freeze")
}

// Known errors travel with a release: a deployment of a release with an
// open one is refused unless it is acknowledged (or at all, where the
// policy takes none); the plan shows them; an incident is resolved with a
// resolution and linked to its known error.
func TestKnownErrorsAreAcknowledgedAtSubmit(t *testing.T) {
	s := newStack(t, stackOptions{})
	c := s.seed("prod", 1, quickPolicy(), "", "1.0.0", "2.0.0")
	strictPolicy := quickPolicy()
	strictPolicy.KnownErrors = models.KnownErrorsRefuse
	strict := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": c.app, "name": "strict", "position": 2, "policy": strictPolicy}).str("id")
	s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": strict, "name": "strict-01", "driver": "simulated", "config": map[string]any{}})

	ke := s.must(201, "POST", "/api/v1/known-errors", map[string]any{"application": c.app, "release": c.releases["2.0.0"],
		"title": "exports time out over 10k rows", "severity": "high", "workaround": "export by month"}).str("id")
	require.Equal(t, 422, s.call("POST", "/api/v1/known-errors", s.admin, map[string]any{"application": c.app, "title": "x", "severity": "meh"}).Status)
	listed := s.must(200, "GET", "/api/v1/known-errors?application_id="+c.app+"&status=open", nil).items()
	require.Len(t, listed, 1)

	// 1.0.0 carries none: it goes.
	s.waitStatus(s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env}), time.Minute, models.StatusCompleted)
	r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "carries open known errors that this request does not acknowledge: "+ke+" (high: exports time out over 10k rows)")
	r = s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env,
		"acknowledge_known_errors": []string{"ke_nope"}})
	require.Equal(t, 422, r.Status, r.Raw)
	r = s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": strict,
		"acknowledge_known_errors": []string{ke}})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "the policy of strict takes none")

	id := s.deploy(s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": c.env, "acknowledge_known_errors": []string{ke}})
	d := s.waitStatus(id, time.Minute, models.StatusCompleted)
	known, _ := d.get("deployment", "plan", "known_errors").([]any)
	require.Len(t, known, 1, d.Raw)
	require.Equal(t, true, known[0].(map[string]any)["acknowledged"])
	require.Equal(t, "export by month", known[0].(map[string]any)["workaround"])

	// An incident after handover, linked to its known error and resolved.
	inc := s.must(201, "POST", "/api/v1/deployments/"+id+"/incidents", map[string]any{"severity": "high", "title": "export of March timed out"}).str("id")
	r = s.call("PATCH", "/api/v1/deployments/"+id+"/incidents/"+inc, s.admin, map[string]any{"known_error_id": "ke_nope"})
	require.Equal(t, 422, r.Status, r.Raw)
	r = s.must(200, "PATCH", "/api/v1/deployments/"+id+"/incidents/"+inc, map[string]any{"status": "resolved",
		"resolution": "exported by month", "known_error_id": ke})
	require.Equal(t, "resolved", r.str("status"))
	require.Equal(t, ke, r.str("known_error_id"))
	require.Equal(t, "exported by month", r.str("resolution"))
	require.Contains(t, strings.Join(s.events(id), "\n"), "high incident resolved by admin: export of March timed out (exported by month)")

	// Resolved, the known error no longer holds anything back.
	require.Equal(t, "resolved", s.must(200, "PATCH", "/api/v1/known-errors/"+ke, map[string]any{"status": "resolved"}).str("status"))
	s.waitStatus(s.deploy(s.admin, map[string]any{"release": c.releases["2.0.0"], "environment": strict}), time.Minute, models.StatusCompleted)
}
