package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/transit-hq/transit/models"
	transitworker "github.com/transit-hq/transit/worker"
)

// Issue "Every approval, freeze, decommission and audit record means what
// it says": each test below failed on the code before it.

// A decommission removes only what it names: the target that runs 1.0.0,
// not the one that runs 2.0.0 nor the empty one; a release that runs
// nowhere is refused at planning, saying what runs where.
func TestDecommissionRemovesOnlyWhatItNames(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	c := s.seed("prod", 0, policy, "", "1.0.0", "2.0.0", "3.0.0")
	one := s.scriptTarget(c.env, "t1", "1.0.0", nil)
	two := s.scriptTarget(c.env, "t2", "2.0.0", nil)
	none := s.scriptTarget(c.env, "t3", "", nil)

	r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env,
		"scenario": "decommission", "retain_data": true, "reason": "end of life"})
	require.Equal(t, 201, r.Status, r.Raw)
	require.Equal(t, "decommission", r.str("deployment", "scenario"))
	id := r.str("deployment", "id")
	d := s.waitStatus(id, time.Minute, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusFailed, models.StatusRolledBack, models.StatusRejected)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))

	removes := starts(calls(t, one), "remove")
	require.Len(t, removes, 1)
	require.Equal(t, "1.0.0", removes[0].fields["version"])
	require.Equal(t, "true", removes[0].fields["retain"], "retain_data reaches the script")
	require.True(t, strings.HasSuffix(removes[0].fields["key"], "/remove"), removes[0].fields["key"])
	require.Empty(t, starts(calls(t, two), "remove"), "t2 runs 2.0.0: not touched")
	require.Empty(t, starts(calls(t, none), "remove"), "t3 runs nothing: not touched")
	require.Equal(t, "2.0.0", readVersion(t, two))
	require.Empty(t, readVersion(t, one))

	var targets []models.DeploymentTarget
	require.NoError(t, json.Unmarshal([]byte(d.str("targets")), &targets))
	require.Len(t, targets, 1)
	require.Equal(t, models.TargetRemoved, targets[0].Status)
	require.Equal(t, "1.0.0", targets[0].FromVersion)
	require.Empty(t, targets[0].ToVersion)
	require.Equal(t, `["t2","t3"]`, d.str("deployment", "plan", "untouched"))

	timeline := strings.Join(s.events(id), "\n")
	require.Contains(t, timeline, "admin asked to decommission 1.0.0 (data retained): end of life")
	require.Contains(t, timeline, "decommissioning 1.0.0 from 1 target in 1 wave")
	require.NotContains(t, timeline, "rolling out")
	desc, err := s.temporal.DescribeWorkflowExecution(context.Background(), models.WorkflowIDFor(id), "")
	require.NoError(t, err)
	var summary string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.ExecutionConfig.UserMetadata.Summary, &summary))
	require.True(t, strings.HasPrefix(summary, "Decommission shop-"), summary)

	// 3.0.0 runs nowhere: refused at planning, with what runs where.
	id = s.deploy(s.admin, map[string]any{"release": c.releases["3.0.0"], "environment": c.env, "scenario": "decommission"})
	d = s.waitStatus(id, time.Minute, models.StatusRejected, models.StatusCompleted, models.StatusFailed)
	require.Equal(t, string(models.StatusRejected), d.str("deployment", "status"))
	require.Equal(t, "nothing to decommission: release 3.0.0 runs on none of the 3 targets of prod (2.0.0 on t2; nothing on t1, t3)",
		d.str("deployment", "outcome"))
	s.saveHistory(id, "decommission_refused")
}

// A freeze added while a deployment waits holds it past its not_before,
// and GET says why; lifting the freeze lets it go at once.
func TestPolicyChangesReachWaitingDeployments(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	c := s.seed("prod", 1, policy, "", "1.0.0")
	notBefore := time.Now().Add(5 * time.Second).UTC().Truncate(time.Second)
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "not_before": notBefore})
	d := s.waitHold(id, models.HoldNotBefore)
	require.Equal(t, string(models.StatusScheduled), d.str("deployment", "status"))

	frozen := policy
	now := time.Now().UTC()
	frozen.Freezes = []models.Freeze{{Start: now.Add(-time.Minute), End: now.Add(time.Hour), Reason: "incident in progress"}}
	s.must(200, "PATCH", "/api/v1/environments/"+c.env, map[string]any{"policy": frozen})
	d = s.waitHold(id, models.HoldFreeze)
	require.Contains(t, d.str("deployment", "hold", "reason"), "incident in progress")
	require.NotEmpty(t, d.str("deployment", "hold", "until"))

	time.Sleep(time.Until(notBefore) + 3*time.Second)
	d = s.must(200, "GET", "/api/v1/deployments/"+id, nil)
	require.Equal(t, string(models.StatusScheduled), d.str("deployment", "status"), "not_before passed, and the freeze still holds it")
	require.Equal(t, string(models.HoldFreeze), d.str("live", "hold", "kind"))
	require.Contains(t, strings.Join(s.events(id), "\n"), "held: freeze: incident in progress")

	lifted := time.Now()
	s.must(200, "PATCH", "/api/v1/environments/"+c.env, map[string]any{"policy": policy})
	d = s.waitStatus(id, 30*time.Second, models.StatusDeploying, models.StatusValidating, models.StatusEarlyLifeSupport, models.StatusCompleted)
	require.Less(t, time.Since(lifted), 15*time.Second, "released when the freeze was lifted, not when it would have ended")
	s.waitStatus(id, time.Minute, models.StatusCompleted)
	s.saveHistory(id, "held_by_freeze")
}

// waitHold waits until GET shows the deployment held by kind.
func (s *stack) waitHold(id string, kind models.HoldKind) response {
	s.t.Helper()
	var last response
	require.EventuallyWithT(s.t, func(c *assertCollect) {
		last = s.call("GET", "/api/v1/deployments/"+id, s.admin, nil)
		if got := last.str("deployment", "hold", "kind"); got != string(kind) {
			c.Errorf("deployment %s is held by %q (live %q), waiting for %s", id, got, last.str("live", "hold", "kind"), kind)
		}
	}, 30*time.Second, 200*time.Millisecond)
	return last
}

// Signals sent with the temporal CLI: a malformed one is ignored with its
// reason, and the valid ones behind it are handled at once, in order.
func TestMalformedSignalsBlockNothing(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	c := s.seed("prod", 1, policy, "", "1.0.0")
	s.issueToken("rita", "release-managers")

	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	signalCLI(t, id, "approve", `"bob"`)
	sent := time.Now()
	signalCLI(t, id, "reject", `{"approver":"rita","comment":"not now"}`)
	d := s.waitStatus(id, 20*time.Second, models.StatusRejected, models.StatusCancelled)
	require.Less(t, time.Since(sent), 10*time.Second, "the reject did not wait behind the malformed approve")
	require.Equal(t, "rejected by rita: not now", d.str("deployment", "outcome"))
	timeline := strings.Join(s.events(id), "\n")
	require.Contains(t, timeline, `approve signal from "an unnamed sender" ignored: its payload is not a vote`)
	require.NotContains(t, timeline, "retryable", "reasons read as sentences")
	s.saveHistory(id, "signals_ignored")

	// Every signal name refuses a malformed payload, and says so.
	id = s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	for _, name := range []string{"approve", "reject", "pause", "resume", "abort", "rollback"} {
		signalCLI(t, id, name, `42`)
	}
	signalCLI(t, id, "lane-free-please", `{}`)
	signalCLI(t, id, "approve", `{"approver":"rita","comment":"ok"}`)
	d = s.waitStatus(id, 30*time.Second, models.StatusCompleted)
	timeline = strings.Join(s.events(id), "\n")
	for _, name := range []string{"approve", "reject", "pause", "resume", "abort", "rollback"} {
		require.Regexp(t, name+` signal from "an unnamed sender" ignored: its payload is not a (vote|control)`, timeline)
	}
	require.Contains(t, timeline, `lane-free-please signal from "an unnamed sender" ignored: the deployment workflow takes the signals`)
	require.Contains(t, timeline, "rita voted approve via signal: ok")
}

// An Update sent with the temporal CLI cannot bring its own groups: ghosts
// are refused, and a real approver is looked up.
func TestVotesCannotBeForgedThroughAnUpdate(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 2
	policy.ApproverGroups = []string{"release-managers"}
	c := s.seed("prod", 1, policy, "", "1.0.0")
	s.issueToken("rita", "release-managers")
	rob := s.issueToken("rob", "release-managers")

	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	for _, ghost := range []string{"ghost1", "ghost2"} {
		out, err := updateCLI(t, id, "approve", fmt.Sprintf(`{"approver":%q,"groups":["release-managers"]}`, ghost))
		require.Error(t, err, "the forged vote was accepted: %s", out)
		require.Contains(t, out, "no live API token names "+ghost)
	}
	out, err := updateCLI(t, id, "approve", `{"approver":"rita","comment":"bad\u0000text"}`)
	require.Error(t, err, out)
	require.Contains(t, out, "NUL")
	d := s.must(200, "GET", "/api/v1/deployments/"+id, nil)
	require.Equal(t, string(models.StatusAwaitingApproval), d.str("deployment", "status"), "two ghosts made no quorum")

	out, err = updateCLI(t, id, "approve", `{"approver":"rita","groups":["anything"],"comment":"from the CLI"}`)
	require.NoError(t, err, out)
	r := s.call("POST", "/api/v1/deployments/"+id+"/approvals", rob, map[string]any{"decision": "approve"})
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, true, r.get("decided"))
	s.waitStatus(id, time.Minute, models.StatusCompleted)
	timeline := strings.Join(s.events(id), "\n")
	require.Contains(t, timeline, "rita voted approve via update: from the CLI (1 of 2 approvals)")
	require.Contains(t, timeline, "rob voted approve via api (2 of 2 approvals)")
	s.saveHistory(id, "votes_via_update")
}

// Controls sent with the temporal CLI need the role the API would ask
// for: a viewer's and another team's deployer's abort are refused (Update)
// or ignored (Signal); the owning team's deployer's abort is taken.
func TestControlsFromTheCLINeedARole(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	c := s.seed("prod", 1, policy, "", "1.0.0") // owned by team web
	s.issue(models.APIToken{Subject: "vic", Roles: models.NewJSON([]string{models.RoleViewer}), Teams: models.NewJSON([]string{"web"})})
	s.issue(models.APIToken{Subject: "olga", Roles: models.NewJSON([]string{models.RoleDeployer}), Teams: models.NewJSON([]string{"mobile"})})
	s.issue(models.APIToken{Subject: "dana", Roles: models.NewJSON([]string{models.RoleDeployer}), Teams: models.NewJSON([]string{"web"})})

	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	for who, want := range map[string]string{
		"vic":   "vic may not control deployment " + id + ": that needs a release_manager, or a deployer of team", // "web" (the CLI escapes quotes)
		"olga":  "teams: mobile",
		"ghost": "no live API token names ghost",
	} {
		out, err := updateCLI(t, id, "abort", fmt.Sprintf(`{"by":%q,"reason":"from the CLI"}`, who))
		require.Error(t, err, "%s's abort was taken: %s", who, out)
		require.Contains(t, out, want)
	}
	signalCLI(t, id, "abort", `{"by":"olga","reason":"by signal"}`)
	require.EventuallyWithT(t, func(c *assertCollect) {
		if !strings.Contains(strings.Join(s.events(id), "\n"), `abort signal from "olga" ignored: olga may not control deployment`) {
			c.Errorf("the signal is not recorded as ignored yet")
		}
	}, 20*time.Second, 200*time.Millisecond)
	require.Equal(t, string(models.StatusAwaitingApproval), s.must(200, "GET", "/api/v1/deployments/"+id, nil).str("deployment", "status"))

	out, err := updateCLI(t, id, "abort", `{"by":"dana","reason":"wrong build"}`)
	require.NoError(t, err, out)
	d := s.waitStatus(id, 30*time.Second, models.StatusCancelled)
	require.Contains(t, d.str("deployment", "outcome"), "abort requested by dana: wrong build")
	s.saveHistory(id, "controls_need_a_role")
}

// The audit log names the person, the path, and the deployment.
func TestAuditNamesThePerson(t *testing.T) {
	s := newStack(t, stackOptions{})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	c := s.seed("prod", 1, policy, "", "1.0.0")
	alice := s.issueToken("alice", "release-managers")
	bob := s.issueToken("bob", "release-managers")

	approved := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(approved, 30*time.Second, models.StatusAwaitingApproval)
	r := s.call("POST", "/api/v1/deployments/"+approved+"/approvals", alice, map[string]any{"decision": "approve", "comment": "ship it"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(approved, time.Minute, models.StatusCompleted)

	aborted := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(aborted, 30*time.Second, models.StatusAwaitingApproval)
	signalCLI(t, aborted, "approve", `{"approver":"mallory"}`)
	r = s.call("POST", "/api/v1/deployments/"+aborted+"/abort", bob, map[string]any{"reason": "wrong window"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(aborted, 30*time.Second, models.StatusCancelled)

	find := func(query string) []map[string]any {
		var items []map[string]any
		require.EventuallyWithT(t, func(co *assertCollect) {
			items = s.must(200, "GET", "/api/v1/audit?"+query, nil).items()
			if len(items) == 0 {
				co.Errorf("nothing for %s yet", query)
			}
		}, 20*time.Second, 200*time.Millisecond)
		return items
	}
	vote := find("actor=alice&action=approve")
	require.Equal(t, "deployment", vote[0]["resource_type"])
	require.Equal(t, approved, vote[0]["resource_id"])
	require.Equal(t, "api", vote[0]["after"].(map[string]any)["via"])
	require.Equal(t, "ship it", vote[0]["after"].(map[string]any)["comment"])

	abort := find("actor=bob&action=abort")
	require.Equal(t, aborted, abort[0]["resource_id"])
	require.Equal(t, "api", abort[0]["after"].(map[string]any)["via"])

	ignored := find("actor=mallory")
	require.Equal(t, "signal_ignored", ignored[0]["action"])
	require.Equal(t, "signal", ignored[0]["after"].(map[string]any)["via"])

	actions := map[string]bool{}
	for _, e := range find("resource_id=" + aborted) {
		actions[e["actor"].(string)+" "+e["action"].(string)] = true
	}
	require.True(t, actions["bob abort"] && actions["mallory signal_ignored"], "%v", actions)

	// The deciding vote is on the timeline before the transition it caused.
	timeline := s.events(approved)
	voteAt, scheduledAt := -1, -1
	for i, line := range timeline {
		if strings.Contains(line, "alice voted approve") {
			voteAt = i
		}
		if strings.HasPrefix(line, "scheduled status:") {
			scheduledAt = i
		}
	}
	require.True(t, voteAt >= 0 && voteAt < scheduledAt, "vote at %d, scheduled at %d:\n%s", voteAt, scheduledAt, strings.Join(timeline, "\n"))
}

// Text that the database cannot store is refused at the door, naming the
// field, on SQLite as on Postgres, on every path; nothing is written, and
// nothing is left waiting.
func TestTextTheDatabaseRefusesIsRefused(t *testing.T) {
	for _, db := range []string{"postgres", "sqlite"} {
		t.Run(db, func(t *testing.T) {
			s := newStack(t, stackOptions{sqlite: db == "sqlite"})
			policy := quickPolicy()
			policy.ApprovalsRequired = 1
			c := s.seed("prod", 1, policy, "", "1.0.0")
			id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
			s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
			auditBefore := len(s.must(200, "GET", "/api/v1/audit?limit=500", nil).items())

			nul := "bad\x00text"
			for _, tc := range []struct {
				method, path, field string
				body                any
			}{
				{"POST", "/api/v1/applications", "description", map[string]any{"name": "x", "owner_team": "t", "description": nul}},
				{"PATCH", "/api/v1/applications/" + c.app, "description", map[string]any{"description": nul}},
				{"POST", "/api/v1/releases", "notes", map[string]any{"application_id": c.app, "version": "9.0.0",
					"artifacts": []map[string]string{{"name": "a", "version": "1"}}, "notes": nul}},
				{"POST", "/api/v1/releases", "entry_criteria.tests", map[string]any{"application_id": c.app, "version": "9.0.1",
					"artifacts": []map[string]string{{"name": "a", "version": "1"}}, "entry_criteria": map[string]string{"tests": nul}}},
				{"POST", "/api/v1/deployments", "reason", map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "reason": nul}},
				{"POST", "/api/v1/deployments/" + id + "/abort", "reason", map[string]any{"reason": nul}},
				{"POST", "/api/v1/deployments/" + id + "/approvals", "comment", map[string]any{"decision": "approve", "comment": nul}},
				{"POST", "/api/v1/deployments/" + id + "/incidents", "title", map[string]any{"severity": "high", "title": nul}},
				{"PATCH", "/api/v1/environments/" + c.env, "policy.freezes[0].reason", map[string]any{"policy": map[string]any{
					"freezes": []map[string]any{{"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "reason": nul}}}}},
				{"POST", "/api/v1/targets", "config.env.X", map[string]any{"environment_id": c.env, "name": "t9", "driver": "script",
					"config": map[string]any{"command": "/bin/true", "env": map[string]string{"X": nul}}}},
			} {
				r := s.call(tc.method, tc.path, s.admin, tc.body)
				require.Equal(t, 422, r.Status, "%s %s: %s", tc.method, tc.path, r.Raw)
				require.Contains(t, r.Raw, fmt.Sprintf(`"field":%q`, tc.field), "%s %s", tc.method, tc.path)
				require.Contains(t, r.str("error", "message"), "NUL")
			}
			// Invalid UTF-8 bytes in a body, a path and a query.
			req, err := http.NewRequest("POST", s.baseURL+"/api/v1/applications",
				strings.NewReader("{\"name\":\"x\",\"owner_team\":\"t\",\"description\":\"caf\xe9\"}"))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+s.admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, 422, resp.StatusCode)
			r := s.call("GET", "/api/v1/applications?name=%00", s.admin, nil)
			require.Equal(t, 422, r.Status, r.Raw)
			require.Contains(t, r.Raw, `"field":"name"`)

			require.Len(t, s.must(200, "GET", "/api/v1/audit?limit=500", nil).items(), auditBefore, "nothing was written")

			// The same text through the temporal CLI is refused too.
			signalCLI(t, id, "abort", `{"by":"ops","reason":"bad\u0000text"}`)
			out, err := updateCLI(t, id, "abort", `{"by":"ops","reason":"bad\u0000text"}`)
			require.Error(t, err, out)
			require.Contains(t, out, "NUL")
			require.EventuallyWithT(t, func(co *assertCollect) {
				if !strings.Contains(strings.Join(s.events(id), "\n"), `abort signal from "ops" ignored`) {
					co.Errorf("the signal was not recorded as ignored yet")
				}
			}, 20*time.Second, 200*time.Millisecond)
			// Nothing is stuck: the deployment still takes a clean abort.
			r = s.call("POST", "/api/v1/deployments/"+id+"/abort", s.admin, map[string]any{"reason": "clean"})
			require.Equal(t, 200, r.Status, r.Raw)
			s.waitStatus(id, 30*time.Second, models.StatusCancelled)
		})
	}
}

// Signals that reach a deployment before its first workflow task ran (no
// worker was up yet) are taken like any other, in the order they came.
func TestSignalsBeforeTheFirstTaskAreHandled(t *testing.T) {
	s := newStack(t, stackOptions{noWorker: true})
	policy := quickPolicy()
	policy.ApprovalsRequired, policy.ApproverGroups = 1, []string{models.GroupAdmin}
	c := s.seed("prod", 1, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	ctx := context.Background()
	wf := models.WorkflowIDFor(id)
	require.NoError(t, s.temporal.SignalWorkflow(ctx, wf, "", models.UpdatePause, "not an object"))
	require.NoError(t, s.temporal.SignalWorkflow(ctx, wf, "", models.UpdateAbort, models.ControlInput{By: "admin", Reason: "wrong release"}))

	w := transitworker.New(s.temporal, transitworker.Options{TaskQueue: s.taskQueue, Store: s.store, VoteKey: s.voteKey})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	d := s.waitStatus(id, time.Minute, models.StatusCancelled, models.StatusAwaitingApproval, models.StatusFailed)
	require.Equal(t, string(models.StatusCancelled), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, d.str("deployment", "outcome"), "abort requested by admin: wrong release")
	timeline := strings.Join(s.events(id), "\n")
	ignored := `pause signal from "an unnamed sender" ignored: its payload is not a control`
	require.Contains(t, timeline, ignored)
	require.Less(t, strings.Index(timeline, ignored), strings.Index(timeline, "admin asked to abort"), timeline)
}
