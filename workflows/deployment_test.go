package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
)

// acts stands for the activities in OnActivity; its methods are never called.
var acts *activities.Activities

// testVoteKey is the key the suite's "API" signs with.
var testVoteKey = []byte("0123456789abcdef0123456789abcdef")

type deploymentSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	mu  sync.Mutex // mocked activities run on goroutines of their own

	plan models.Plan
	// policy is the environment's policy as it is now: what the gate reads.
	policy    models.Policy
	deployed  []string // target names, in call order
	rollbacks []string // target names, in call order
	steps     []activities.RecordInput
	// batches is the number of steps of each TargetSteps child, in order.
	batches []int

	// How long each mocked deploy and observation take, in workflow time.
	// (A mock with a delay runs its function when the delay ends.)
	deployTakes, observeTakes, observeAfterPONRTakes time.Duration
	deployEnds                                       []time.Time
	// What the mocked activities do; a test replaces the ones it needs.
	planFn     func(models.DeploymentInput) (activities.PlanResult, error)
	laneFn     func(activities.LaneInput) ([]string, error)
	deployFn   func(activities.TargetInput) (activities.TargetResult, error)
	removeFn   func(activities.TargetInput) (activities.TargetResult, error)
	rollbackFn func(activities.TargetInput) (activities.TargetResult, error)
	validateFn func(activities.ValidateInput) (activities.ValidateResult, error)
	observeFn  func(context.Context, activities.ObserveInput) (activities.ObserveResult, error)
	commitFn   func(activities.CommitInput) error
	exitFn     func(activities.ExitInput) (activities.ExitResult, error)
	lookupFn   func(string) (activities.PrincipalResult, error)
}

func TestDeploymentWorkflow(t *testing.T) { suite.Run(t, new(deploymentSuite)) }

func target(name string) models.PlanTarget {
	return models.PlanTarget{ID: "tgt_" + name, Name: name, Driver: "simulated", LastKnownGoodID: "rel_old", CurrentVersion: "1.0.0"}
}

func (s *deploymentSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{Interceptor(testVoteKey)}})
	s.env.RegisterWorkflow(Deployment)
	s.env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in StepsInput) (StepsResult, error) {
		s.mu.Lock()
		s.batches = append(s.batches, len(in.Targets))
		s.mu.Unlock()
		return TargetSteps(ctx, in)
	}, workflow.RegisterOptions{Name: models.WorkflowTargetSteps})
	s.env.RegisterActivity(acts)
	s.deployed, s.rollbacks, s.steps, s.deployEnds, s.batches = nil, nil, nil, nil, nil
	s.deployTakes, s.observeTakes, s.observeAfterPONRTakes = 0, 0, 0
	policy := models.Policy{ApprovalsRequired: 0, PointOfNoReturn: models.Duration(10 * time.Minute),
		EarlyLifeSupport:  models.Duration(time.Hour),
		ValidationChecks:  []models.CheckSpec{{Name: "smoke", Type: "simulated"}},
		ObservationProbes: []models.ProbeSpec{{Name: "errors", Type: "simulated", Interval: models.Duration(time.Minute)}}}
	policy.Normalize()
	s.plan = models.Plan{Application: "shop", OwnerTeam: "web", Environment: "prod", ReleaseVersion: "2.0.0", Scenario: models.ScenarioUpgrade,
		Strategy: models.Strategy{Kind: models.StrategyRolling, Batch: 2, MaxParallel: 10}, Policy: policy,
		Waves: [][]models.PlanTarget{{target("a"), target("b")}, {target("c"), target("d")}}}
	s.policy = policy

	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{Plan: s.plan}, nil
	}
	s.laneFn = func(activities.LaneInput) ([]string, error) { return nil, nil }
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		return activities.TargetResult{Version: in.Release.Version}, nil
	}
	s.removeFn = func(activities.TargetInput) (activities.TargetResult, error) { return activities.TargetResult{}, nil }
	s.rollbackFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Release.Version == "" && in.Release.ID != "" {
			return activities.TargetResult{Version: "1.0.0"}, nil // rel_old, as the activity resolves it
		}
		return activities.TargetResult{Version: in.Release.Version}, nil
	}
	s.validateFn = func(activities.ValidateInput) (activities.ValidateResult, error) {
		return activities.ValidateResult{Passed: true}, nil
	}
	s.observeFn = func(context.Context, activities.ObserveInput) (activities.ObserveResult, error) {
		return activities.ObserveResult{Runs: 10, Passed: 10}, nil
	}
	s.commitFn = func(activities.CommitInput) error { return nil }
	s.exitFn = func(in activities.ExitInput) (activities.ExitResult, error) {
		return activities.ExitResult{Met: true}, nil
	}
	s.lookupFn = func(subject string) (activities.PrincipalResult, error) {
		groups := map[string][]string{"rita": {"release-managers"}, "rob": {"release-managers"}, "dave": {"developers"}, "vic": {}}[subject]
		roles := map[string][]string{"rita": {models.RoleReleaseManager}, "rob": {models.RoleReleaseManager},
			"dave": {models.RoleDeployer}, "vic": {models.RoleViewer}}[subject]
		return activities.PrincipalResult{Groups: groups, Roles: roles, Teams: []string{"web"}, Known: groups != nil}, nil
	}
}

// mock registers the mocked activities; they call the suite's fields.
func (s *deploymentSuite) mock() {
	on := func(fn any, impl any) { s.env.OnActivity(fn, mock.Anything, mock.Anything).Return(impl).Maybe() }
	on(acts.Plan, func(_ context.Context, in models.DeploymentInput) (activities.PlanResult, error) { return s.planFn(in) })
	on(acts.LaneAhead, func(_ context.Context, in activities.LaneInput) ([]string, error) { return s.laneFn(in) })
	on(acts.Gate, func(_ context.Context, in activities.GateInput) (activities.GateResult, error) {
		return s.gate(in), nil
	})
	s.env.OnActivity(acts.DeployTarget, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TargetInput) (activities.TargetResult, error) {
			s.mu.Lock()
			if in.Undo {
				s.rollbacks = append(s.rollbacks, in.Target.Name)
			} else {
				s.deployed = append(s.deployed, in.Target.Name)
				s.deployEnds = append(s.deployEnds, s.env.Now())
			}
			s.mu.Unlock()
			return s.deployFn(in)
		}).After(s.deployTakes).Maybe()
	on(acts.RemoveTarget, func(_ context.Context, in activities.TargetInput) (activities.TargetResult, error) {
		return s.removeFn(in)
	})
	on(acts.ValidateTarget, func(_ context.Context, in activities.ValidateInput) (activities.ValidateResult, error) {
		return s.validateFn(in)
	})
	observe := func(ctx context.Context, in activities.ObserveInput) (activities.ObserveResult, error) {
		return s.observeFn(ctx, in)
	}
	beforePONR := mock.MatchedBy(func(in activities.ObserveInput) bool { return in.StopOnBreach })
	afterPONR := mock.MatchedBy(func(in activities.ObserveInput) bool { return !in.StopOnBreach })
	s.env.OnActivity(acts.Observe, mock.Anything, beforePONR).Return(observe).After(s.observeTakes).Maybe()
	s.env.OnActivity(acts.Observe, mock.Anything, afterPONR).Return(observe).After(s.observeAfterPONRTakes).Maybe()
	on(acts.CommitLastKnownGood, func(_ context.Context, in activities.CommitInput) error { return s.commitFn(in) })
	on(acts.ExitCriteria, func(_ context.Context, in activities.ExitInput) (activities.ExitResult, error) { return s.exitFn(in) })
	on(acts.RecordSteps, func(_ context.Context, in activities.StepsInput) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.steps = append(s.steps, in.Steps...)
		return nil
	})
	on(acts.WakeLane, func(_ context.Context, _ activities.LaneInput) ([]string, error) { return nil, nil })
	on(acts.RollbackTarget, func(_ context.Context, in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		s.rollbacks = append(s.rollbacks, in.Target.Name)
		s.mu.Unlock()
		return s.rollbackFn(in)
	})
	on(acts.LookupPrincipal, func(_ context.Context, subject string) (activities.PrincipalResult, error) {
		return s.lookupFn(subject)
	})
}

// gate answers as the Gate activity does, from s.policy as it is when asked.
func (s *deploymentSuite) gate(in activities.GateInput) activities.GateResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.env.Now().UTC()
	if in.NotBefore != nil && in.NotBefore.After(now) {
		until := *in.NotBefore
		return activities.GateResult{Hold: &models.Hold{Kind: models.HoldNotBefore, Until: &until, Reason: "not before"}}
	}
	policy := s.policy
	if h := policy.HoldAt(now); h != nil && in.Emergency {
		return activities.GateResult{Open: true, Passed: "an emergency change: passes " + h.Reason}
	} else if h != nil {
		if h.Kind == models.HoldWindow {
			if open := policy.NextOpen(now); !open.IsZero() {
				h.Until = &open
			}
		}
		return activities.GateResult{Hold: h}
	}
	return activities.GateResult{Open: true}
}

func input() models.DeploymentInput {
	return models.DeploymentInput{DeploymentID: "dep_1", ApplicationID: "app_1", EnvironmentID: "env_1",
		ReleaseID: "rel_new", RequestedBy: "dave"}
}

func (s *deploymentSuite) run(in models.DeploymentInput) models.DeploymentResult {
	s.mock()
	s.env.ExecuteWorkflow(Deployment, in)
	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	var res models.DeploymentResult
	s.Require().NoError(s.env.GetWorkflowResult(&res))
	return res
}

// recorded returns the statuses recorded, in order.
func (s *deploymentSuite) recorded() []models.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []models.Status
	for _, st := range s.steps {
		if st.Status != nil {
			out = append(out, *st.Status)
		}
	}
	return out
}

// timeline returns the recorded messages of the given event type ("" for all).
func (s *deploymentSuite) timeline(typ models.EventType) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, st := range s.steps {
		if typ == "" || st.Type == typ {
			out = append(out, st.Message)
		}
	}
	return out
}

// updateOutcome is how an Update sent during the run ended.
type updateOutcome struct {
	rejected error
	err      error
	result   any
	done     bool
}

func (s *deploymentSuite) update(delay time.Duration, name string, arg any) *updateOutcome {
	out := &updateOutcome{}
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, delay), &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { out.rejected, out.done = err, true },
			OnComplete: func(r any, err error) { out.result, out.err, out.done = r, err, true },
		}, arg)
	}, delay)
	return out
}

// vote is a vote as the API sends it: groups from the token, signed.
func vote(deploymentID, decision, approver string, groups []string, comment string, at time.Time) models.VoteInput {
	v := models.VoteInput{Approver: approver, Groups: groups, Comment: comment}
	v.Proof = models.SignedRequest{DeploymentID: deploymentID, Name: decision, Subject: approver, Groups: groups,
		Text: comment, IssuedAt: at}.Sign(testVoteKey)
	return v
}

func (s *deploymentSuite) apiVote(delay time.Duration, decision, approver string, groups []string, comment string) *updateOutcome {
	at := s.env.Now().Add(delay)
	return s.update(delay, decision, vote("dep_1", decision, approver, groups, comment, at))
}

func (s *deploymentSuite) requireRefused(o *updateOutcome, errType, contains string) {
	s.T().Helper()
	s.Require().True(o.done, "the update never ended")
	err := o.rejected
	if err == nil {
		err = o.err
	}
	var appErr *temporal.ApplicationError
	s.Require().True(errors.As(err, &appErr), "want a refusal, got %v", err)
	s.Equal(errType, appErr.Type())
	s.Contains(appErr.Message(), contains)
}

func (s *deploymentSuite) TestAutoApprovedHappyPath() {
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	s.Require().Len(s.deployed, 4)
	s.ElementsMatch([]string{"a", "b"}, s.deployed[:2], "wave 1 first")
	s.ElementsMatch([]string{"c", "d"}, s.deployed[2:])
	s.Empty(s.rollbacks)
	s.Equal([]models.Status{models.StatusAwaitingApproval, models.StatusScheduled, models.StatusDeploying,
		models.StatusValidating, models.StatusEarlyLifeSupport, models.StatusCompleted}, s.recorded())
	s.Contains(res.Outcome, "20 probe runs: 20 passed")
	// The policy is recorded as the approver, before the rollout it allowed.
	votes := s.timeline(models.EventVote)
	s.Require().Len(votes, 1)
	s.Contains(votes[0], "policy:prod voted approve via policy")
}

func (s *deploymentSuite) TestQuorumOfTwoDistinctApprovers() {
	s.plan.Policy.ApprovalsRequired = 2
	s.plan.Policy.ApproverGroups = []string{"release-managers"}
	rm := []string{"release-managers"}
	self := s.apiVote(time.Minute, models.UpdateApprove, "dave", rm, "")
	outsider := s.apiVote(2*time.Minute, models.UpdateApprove, "oscar", []string{"devs"}, "")
	first := s.apiVote(3*time.Minute, models.UpdateApprove, "rita", rm, "")
	twice := s.apiVote(4*time.Minute, models.UpdateApprove, "rita", rm, "")
	second := s.apiVote(5*time.Minute, models.UpdateApprove, "rob", rm, "")
	late := s.apiVote(7*time.Minute, models.UpdateApprove, "ron", rm, "")
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.requireRefused(self, models.ErrTypeForbidden, "self-approval")
	s.requireRefused(outsider, models.ErrTypeForbidden, "not in the approver groups")
	s.NoError(first.rejected)
	s.NoError(first.err)
	s.requireRefused(twice, models.ErrTypeConflict, "already voted")
	s.NoError(second.rejected)
	s.Require().NoError(second.err)
	s.True(second.result.(models.VoteResult).Decided, "the second vote decided it")
	s.requireRefused(late, models.ErrTypeConflict, "not awaiting approval")
	// The deciding vote is on the timeline before the transition it caused.
	all := s.timeline("")
	voteAt, scheduledAt := -1, -1
	for i, m := range all {
		if strings.Contains(m, "rob voted approve") {
			voteAt = i
		}
		if strings.HasPrefix(m, "approved:") {
			scheduledAt = i
		}
	}
	s.Require().GreaterOrEqual(voteAt, 0)
	s.Less(voteAt, scheduledAt, "vote, then scheduled")
}

// An Update that does not carry the API's proof cannot bring its own
// groups: the subject is looked up, and a ghost is refused.
func (s *deploymentSuite) TestForgedGroupsInAnUpdateAreNotBelieved() {
	s.plan.Policy.ApprovalsRequired = 2
	s.plan.Policy.ApproverGroups = []string{"release-managers"}
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	forged := []string{"release-managers"}
	ghost1 := s.update(time.Minute, models.UpdateApprove, models.VoteInput{Approver: "ghost1", Groups: forged})
	ghost2 := s.update(2*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "ghost2", Groups: forged})
	// A proof made for someone else does not hold either.
	stolen := vote("dep_1", models.UpdateApprove, "rita", forged, "", s.env.Now())
	stolen.Approver = "ghost3"
	ghost3 := s.update(3*time.Minute, models.UpdateApprove, stolen)
	// A real approver without proof is looked up and counts, via update.
	rita := s.update(4*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "rita", Groups: []string{"made-up"}})
	res := s.run(input())
	s.Equal(models.StatusExpired, res.Status, "two ghosts do not make a quorum")
	s.requireRefused(ghost1, models.ErrTypeForbidden, "no live API token names ghost1")
	s.requireRefused(ghost2, models.ErrTypeForbidden, "no live API token names ghost2")
	s.requireRefused(ghost3, models.ErrTypeForbidden, "no live API token names ghost3")
	s.Require().NoError(rita.err)
	s.Contains(strings.Join(s.timeline(models.EventVote), "\n"), "rita voted approve via update (1 of 2 approvals)")
}

// A standard change is approved by the policy, which names its rule, the
// risk and its reasons; one above the rule's risk waits for people.
func (s *deploymentSuite) TestStandardChangeIsApprovedByPolicy() {
	s.plan.Policy.ApprovalsRequired = 2
	s.plan.Policy.StandardChange = &models.StandardChange{MaxRisk: 30}
	s.plan.Risk = models.Risk{Score: 20, Level: "low", Reasons: []string{"+20 a reason"}}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	votes := strings.Join(s.timeline(models.EventVote), "\n")
	s.Contains(votes, "policy:standard-change voted approve via policy: standard change: upgrade with risk low (20) ≤ max_risk 30; +20 a reason (the standard_change rule of prod)")
}

// An emergency change needs its own approvers (release managers by
// default: the role:… the API signs with the groups), is not a standard
// change, and goes through a freeze that holds an ordinary deployment.
func (s *deploymentSuite) TestEmergencyChangeThroughAFreeze() {
	s.plan.Policy.ApprovalsRequired = 2
	s.plan.Policy.ApproverGroups = []string{"release-managers"}
	s.plan.Policy.StandardChange = &models.StandardChange{MaxRisk: 100}
	now := s.env.Now().UTC()
	s.policy.Freezes = []models.Freeze{{Start: now.Add(-time.Hour), End: now.Add(30 * 24 * time.Hour), Reason: "year end"}}
	in := input()
	in.Emergency = &models.Emergency{Reason: "checkout is down", Incident: "INC-7"}
	member := s.apiVote(time.Minute, models.DecisionApprove, "rob", []string{"release-managers"}, "")
	rm := s.apiVote(2*time.Minute, models.DecisionApprove, "eve", []string{models.RolePrefix + models.RoleReleaseManager}, "fix it")
	res := s.run(in)
	s.requireRefused(member, models.ErrTypeForbidden, "rob is not in the emergency approvers of environment prod (role:release_manager, role:admin)")
	s.Require().NoError(rm.err)
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	s.Contains(strings.Join(s.timeline(models.EventStatus), "\n"), "emergency change (INC-7): checkout is down, needing 1 emergency approval")
	s.Contains(strings.Join(s.timeline(models.EventProgress), "\n"), "an emergency change: passes")
	s.Contains(strings.Join(s.timeline(models.EventVote), "\n"), "eve voted approve via api: fix it (1 of 1 approvals)")
}

func (s *deploymentSuite) TestRiskierThanTheStandardChangeWaitsForPeople() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	s.plan.Policy.StandardChange = &models.StandardChange{MaxRisk: 30}
	s.plan.Risk = models.Risk{Score: 45, Level: "medium"}
	res := s.run(input())
	s.Equal(models.StatusExpired, res.Status, "nobody voted: %s", res.Outcome)
	s.Empty(s.timeline(models.EventVote))
}

func (s *deploymentSuite) TestSelfApprovalWhenPolicyAllows() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.SelfApprovalAllowed = true
	self := s.apiVote(time.Minute, models.UpdateApprove, "dave", nil, "")
	res := s.run(input())
	s.NoError(self.rejected)
	s.Equal(models.StatusCompleted, res.Status)
}

func (s *deploymentSuite) TestRejection() {
	s.plan.Policy.ApprovalsRequired = 2
	s.apiVote(time.Minute, models.UpdateReject, "rita", nil, "freeze week")
	res := s.run(input())
	s.Equal(models.StatusRejected, res.Status)
	s.Contains(res.Outcome, "rejected by rita: freeze week")
	s.Empty(s.deployed)
}

func (s *deploymentSuite) TestApprovalExpires() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(24 * time.Hour)
	res := s.run(input())
	s.Equal(models.StatusExpired, res.Status)
	s.Contains(res.Outcome, "after 24h0m0s with 0 of 1 approvals")
	s.Empty(s.deployed)
}

func (s *deploymentSuite) TestSignalVotesAreCheckedLikeUpdates() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApproverGroups = []string{"release-managers"}
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "dave"}) // the requester, and not an approver
	}, time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "rita", Groups: []string{"ignored"}})
	}, 2*time.Minute)
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	ignored := s.timeline(models.EventSignalIgnored)
	s.Require().Len(ignored, 1)
	s.Contains(ignored[0], `approve signal from "dave" ignored`)
	s.Contains(strings.Join(s.timeline(models.EventVote), "\n"), "rita voted approve via signal")
}

// A malformed signal is refused on its own: the valid ones behind it are
// handled at once, in the order they arrived.
func (s *deploymentSuite) TestMalformedSignalBlocksNothingAndOrderHolds() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateApprove, "bob") // a string, not an object
		s.env.SignalWorkflow(models.UpdateReject, models.VoteInput{Approver: "rita", Comment: "not now"})
		s.env.SignalWorkflow(models.UpdateAbort, models.ControlInput{By: "rob", Reason: "too late"})
	}, time.Minute)
	res := s.run(input())
	s.Equal(models.StatusRejected, res.Status, "the reject arrived before the abort: %s", res.Outcome)
	s.Contains(res.Outcome, "rejected by rita: not now")
	ignored := strings.Join(s.timeline(models.EventSignalIgnored), "\n")
	s.Contains(ignored, "its payload is not a vote")
	s.Contains(ignored, `abort signal from "rob" ignored: deployment dep_1 was rejected by rita`)
}

// Every signal name refuses a malformed payload, and says so.
func (s *deploymentSuite) TestEverySignalRefusesAMalformedPayload() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	names := []string{models.UpdateApprove, models.UpdateReject, models.UpdatePause, models.UpdateResume, models.UpdateAbort, models.UpdateRollback}
	s.env.RegisterDelayedCallback(func() {
		for _, n := range names {
			s.env.SignalWorkflow(n, 42)
		}
		s.env.SignalWorkflow("approve-please", nil)
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "rita", Comment: "bad\x00text"})
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "rita"})
	}, time.Minute)
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	ignored := s.timeline(models.EventSignalIgnored)
	s.Require().Len(ignored, len(names)+2)
	for i, n := range names {
		s.Contains(ignored[i], n+" signal")
		s.Contains(ignored[i], "its payload is not a")
	}
	s.Contains(ignored[len(names)], "takes the signals approve, reject")
	s.Contains(ignored[len(names)+1], "NUL")
}

// A flood of refused signals adds a bounded number of records.
func (s *deploymentSuite) TestSignalFloodIsBounded() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	s.env.RegisterDelayedCallback(func() {
		for i := 0; i < 350; i++ {
			s.env.SignalWorkflow(models.UpdateResume, models.ControlInput{By: "script"})
		}
	}, time.Minute)
	res := s.run(input())
	s.Equal(models.StatusExpired, res.Status)
	ignored := s.timeline(models.EventSignalIgnored)
	s.Len(ignored, ignoredRecordLimit+2, "100 one by one, then one line per hundred")
	s.Contains(ignored[len(ignored)-1], "300 signals ignored so far")
}

func (s *deploymentSuite) TestEntryCriteriaRejectAndUnreachableFails() {
	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{}, temporal.NewNonRetryableApplicationError("release 2.0.0 does not meet its entry criteria: tests=failed", models.ErrTypeEntryCriteria, nil)
	}
	res := s.run(input())
	s.Equal(models.StatusRejected, res.Status)
	s.Contains(res.Outcome, "tests=failed")

	s.SetupTest()
	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{}, temporal.NewNonRetryableApplicationError("1 of 4 targets cannot be reached", models.ErrTypeUnreachable, nil)
	}
	res = s.run(input())
	s.Equal(models.StatusFailed, res.Status)
	s.Contains(res.Outcome, "cannot be reached")

	s.SetupTest()
	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{}, temporal.NewNonRetryableApplicationError("nothing to decommission: release 1.0.0 runs on none", models.ErrTypeRefused, nil)
	}
	res = s.run(input())
	s.Equal(models.StatusRejected, res.Status)
	s.Contains(res.Outcome, "nothing to decommission")
}

func (s *deploymentSuite) TestAbortWhileAwaitingApprovalCancels() {
	s.plan.Policy.ApprovalsRequired = 1
	s.update(time.Minute, models.UpdateAbort, models.ControlInput{By: "dave", Reason: "wrong release"})
	res := s.run(input())
	s.Equal(models.StatusCancelled, res.Status)
	s.Contains(res.Outcome, "abort requested by dave: wrong release")
	s.Empty(s.deployed)
}

// A control that the API did not sign needs the same role as through the
// API: a viewer, another team's deployer and a subject without a token are
// refused, by Update and by Signal; the owning team's deployer is not.
func (s *deploymentSuite) TestControlsOutsideTheAPINeedARole() {
	s.plan.Policy.ApprovalsRequired = 1
	s.lookupFn = func(subject string) (activities.PrincipalResult, error) {
		return map[string]activities.PrincipalResult{
			"vic":  {Roles: []string{models.RoleViewer}, Known: true},
			"olga": {Roles: []string{models.RoleDeployer}, Teams: []string{"mobile"}, Known: true},
			"dave": {Roles: []string{models.RoleDeployer}, Teams: []string{"web"}, Known: true},
		}[subject], nil
	}
	viewer := s.update(time.Minute, models.UpdateAbort, models.ControlInput{By: "vic", Reason: "x"})
	otherTeam := s.update(2*time.Minute, models.UpdateAbort, models.ControlInput{By: "olga", Reason: "x"})
	ghost := s.update(3*time.Minute, models.UpdateAbort, models.ControlInput{By: "ghost", Reason: "x"})
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateAbort, models.ControlInput{By: "olga", Reason: "by signal"})
	}, 4*time.Minute)
	owner := s.update(5*time.Minute, models.UpdateAbort, models.ControlInput{By: "dave", Reason: "wrong release"})
	res := s.run(input())
	s.requireRefused(viewer, models.ErrTypeForbidden, `vic may not control deployment dep_1: that needs a release_manager, or a deployer of team "web"`)
	s.requireRefused(otherTeam, models.ErrTypeForbidden, "teams: mobile")
	s.requireRefused(ghost, models.ErrTypeForbidden, "no live API token names ghost")
	s.Require().NoError(owner.err)
	s.Equal(models.StatusCancelled, res.Status)
	s.Contains(res.Outcome, "abort requested by dave: wrong release")
	ignored := strings.Join(s.timeline(models.EventSignalIgnored), "\n")
	s.Contains(ignored, `abort signal from "olga" ignored: olga may not control deployment dep_1`)
}

// A right needs one token that holds the role for the team: a deployer
// token of another team and a viewer token of the owning team do not add
// up to a deployer of the owning team.
func (s *deploymentSuite) TestControlRightsAreCheckedTokenByToken() {
	s.plan.Policy.ApprovalsRequired = 1
	s.lookupFn = func(subject string) (activities.PrincipalResult, error) {
		return activities.PrincipalResult{Known: true, Roles: []string{models.RoleDeployer, models.RoleViewer}, Teams: []string{"mobile", "web"},
			Grants: []activities.Grant{{Roles: []string{models.RoleDeployer}, Teams: []string{"mobile"}}, {Roles: []string{models.RoleViewer}, Teams: []string{"web"}}}}, nil
	}
	mixed := s.update(time.Minute, models.UpdateAbort, models.ControlInput{By: "mia", Reason: "x"})
	res := s.run(input())
	s.requireRefused(mixed, models.ErrTypeForbidden, "mia may not control deployment dep_1")
	s.Equal(models.StatusExpired, res.Status)
}

func (s *deploymentSuite) TestWaitsForTheLaneThenPlansAgain() {
	s.plan.AheadInQueue = []string{"dep_0"}
	calls := 0
	s.planFn = func(_ models.DeploymentInput) (activities.PlanResult, error) {
		calls++
		p := s.plan
		if calls > 1 {
			p.AheadInQueue = nil
		}
		return activities.PlanResult{Plan: p}, nil
	}
	ahead := []string{"dep_0"}
	s.laneFn = func(_ activities.LaneInput) ([]string, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return ahead, nil
	}
	var startedAt time.Time
	s.env.RegisterDelayedCallback(func() {
		s.mu.Lock()
		ahead = nil
		s.mu.Unlock()
		s.env.SignalWorkflow(models.SignalLaneFree, nil)
	}, 20*time.Second)
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if startedAt.IsZero() {
			startedAt = s.env.Now()
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	start := s.env.Now()
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(2, calls, "planned again once its turn came")
	s.Equal(models.StatusQueued, s.recorded()[0])
	s.Less(startedAt.Sub(start), laneRecheck, "woken by the signal, not by the re-check")
	s.GreaterOrEqual(startedAt.Sub(start), 20*time.Second)
}

func (s *deploymentSuite) TestLostLaneSignalIsCoveredByRechecks() {
	s.plan.AheadInQueue = []string{"dep_0"}
	start := s.env.Now()
	var checks []time.Duration
	s.laneFn = func(activities.LaneInput) ([]string, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		elapsed := s.env.Now().Sub(start)
		checks = append(checks, elapsed)
		if elapsed < 100*time.Second {
			return []string{"dep_0"}, nil // the one ahead ends at 100 s and its signal is lost
		}
		return nil, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Require().Len(checks, 4)
	s.Equal([]time.Duration{0, laneRecheck, 3 * laneRecheck, 7 * laneRecheck}, []time.Duration{checks[0].Round(time.Second),
		checks[1].Round(time.Second), checks[2].Round(time.Second), checks[3].Round(time.Second)}, "re-checks back off: 30 s, 1 min, 2 min")
}

// not_before holds the rollout even inside an open window: the window opens
// at 10:00, not_before is 11:00, and the rollout starts at 11:00.
func (s *deploymentSuite) TestNotBeforeHoldsInsideAnOpenWindow() {
	s.env.SetStartTime(time.Date(2026, 3, 3, 9, 30, 0, 0, time.UTC)) // a Tuesday
	s.policy.ChangeWindows = []models.ChangeWindow{{Days: []string{"tue"}, Start: "10:00", End: "12:00", Timezone: "UTC"}}
	notBefore := time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC)
	startedAt := s.firstDeployAt()
	in := input()
	in.NotBefore = &notBefore
	res := s.run(in)
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(notBefore, (*startedAt).Truncate(time.Minute))
}

// With not_before passed, the rollout waits for the next window.
func (s *deploymentSuite) TestWindowHoldsAfterNotBefore() {
	s.env.SetStartTime(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)) // a Monday
	s.policy.ChangeWindows = []models.ChangeWindow{{Days: []string{"tue"}, Start: "10:00", End: "12:00", Timezone: "UTC"}}
	notBefore := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	startedAt := s.firstDeployAt()
	in := input()
	in.NotBefore = &notBefore
	res := s.run(in)
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), (*startedAt).Truncate(time.Minute))
	holds := strings.Join(s.timeline(models.EventHold), "\n")
	s.Contains(holds, "held: not before")
	s.Contains(holds, "held: outside the change windows (tue 10:00-12:00 UTC)")
}

func (s *deploymentSuite) firstDeployAt() *time.Time {
	var at time.Time
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if at.IsZero() {
			at = s.env.Now().UTC()
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	return &at
}

// A freeze added while a deployment waits holds it, with its reason, even
// past not_before; lifting it early lets the deployment go at once.
func (s *deploymentSuite) TestPolicyChangesReachAWaitingDeployment() {
	start := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	s.env.SetStartTime(start)
	notBefore := start.Add(20 * time.Minute)
	startedAt := s.firstDeployAt()
	var heldBy *models.Hold
	s.env.RegisterDelayedCallback(func() {
		s.mu.Lock()
		s.policy.Freezes = []models.Freeze{{Start: start, End: start.Add(time.Hour), Reason: "incident in progress"}}
		s.mu.Unlock()
		s.env.SignalWorkflow(models.SignalPolicyChanged, nil)
	}, 5*time.Minute)
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(models.QueryStatus)
		if err == nil {
			var st models.DeploymentState
			if v.Get(&st) == nil {
				heldBy = st.Hold
			}
		}
	}, 30*time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.mu.Lock()
		s.policy.Freezes = nil
		s.mu.Unlock()
		s.env.SignalWorkflow(models.SignalPolicyChanged, nil)
	}, 40*time.Minute)
	in := input()
	in.NotBefore = &notBefore
	res := s.run(in)
	s.Equal(models.StatusCompleted, res.Status)
	s.Require().NotNil(heldBy, "the status query ran and showed a hold")
	s.Equal(models.HoldFreeze, heldBy.Kind)
	s.Contains(heldBy.Reason, "incident in progress")
	s.Equal(start.Add(40*time.Minute), (*startedAt).Truncate(time.Minute), "released when the freeze was lifted, not at its end")
	s.Contains(strings.Join(s.timeline(models.EventHold), "\n"), "held: freeze: incident in progress")
}

// A freeze that starts between waves holds the next wave, and a window that
// closes between waves holds it until the window opens again.
func (s *deploymentSuite) TestFreezeAndWindowBetweenWaves() {
	start := time.Date(2026, 3, 3, 11, 50, 0, 0, time.UTC) // Tuesday, 10 minutes before the window closes
	s.env.SetStartTime(start)
	s.policy.ChangeWindows = []models.ChangeWindow{{Days: []string{"tue", "wed"}, Start: "10:00", End: "12:00", Timezone: "UTC"}}
	s.policy.Freezes = []models.Freeze{{Start: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC), Reason: "quarter end"}}
	s.plan.Strategy.Bake = models.Duration(15 * time.Minute) // wave 2 would start at 12:05, after the window
	var wave2At time.Time
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if in.Wave == 2 && wave2At.IsZero() {
			wave2At = s.env.Now().UTC()
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC), wave2At.Truncate(time.Minute),
		"Wednesday's window opens at 10:00, but the freeze holds it until 11:00")
}

// A pause while scheduled, resumed outside the window: the rollout waits for
// the window after the resume.
func (s *deploymentSuite) TestResumeChecksTheWindowAgain() {
	s.env.SetStartTime(time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)) // Tuesday 10:00, inside the window
	s.policy.ChangeWindows = []models.ChangeWindow{{Days: []string{"tue"}, Start: "10:00", End: "12:00", Timezone: "UTC"}}
	notBefore := time.Date(2026, 3, 3, 10, 30, 0, 0, time.UTC)
	s.update(10*time.Minute, models.UpdatePause, models.ControlInput{By: "rita"})
	s.update(5*24*time.Hour-8*time.Hour, models.UpdateResume, models.ControlInput{By: "rita"}) // Sunday 02:00
	startedAt := s.firstDeployAt()
	in := input()
	in.NotBefore = &notBefore
	res := s.run(in)
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC), (*startedAt).Truncate(time.Minute), "the next Tuesday, not Sunday")
	s.Contains(s.recorded(), models.StatusPaused)
}

func (s *deploymentSuite) TestTooManyFailuresInAWaveRollBackNewestFirst() {
	s.plan.Strategy.MaxFailures = 0
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Target.Name == "d" {
			return activities.TargetResult{}, temporal.NewNonRetryableApplicationError("disk full", models.ErrTypeDriver, nil)
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "wave 2: 1 target of 2 failed, more than max_failures 0: d: disk full")
	s.Require().Len(s.rollbacks, 4)
	s.ElementsMatch([]string{"c", "d"}, s.rollbacks[:2], "wave 2 first, and d too: it may be half changed")
	s.ElementsMatch([]string{"a", "b"}, s.rollbacks[2:])
	s.Contains(s.recorded(), models.StatusRollingBack)
}

// Rolling batch 1, three targets, max_failures 1: every deploy fails. Each
// wave tolerates its one failure, but the rollout as a whole does not
// tolerate them all: it stops, and every failed target was undone.
func (s *deploymentSuite) TestEveryTargetFailingIsNotCompleted() {
	s.plan.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1, MaxFailures: 1, MaxParallel: 10}
	s.plan.Waves = [][]models.PlanTarget{{target("a")}, {target("b")}, {target("c")}}
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		return activities.TargetResult{}, temporal.NewNonRetryableApplicationError("no space left", models.ErrTypeDriver, nil)
	}
	committed := false
	s.commitFn = func(activities.CommitInput) error { committed = true; return nil }
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "3 targets of 3 failed so far, more than the rollout tolerates (2)")
	s.Equal([]string{"a", "b", "c"}, s.rollbacks, "the tolerated failures were undone at once, and c at the end")
	s.Contains(res.Outcome, "2 targets failed during the rollout: a (no space left; rolled back to 1.0.0), b (no space left; rolled back to 1.0.0)")
	s.False(committed)
}

// Failures within the limits: the failed target is undone at once, left
// out of validation, observation and the commit, and the outcome names it.
func (s *deploymentSuite) TestFailuresWithinLimitsAreUndoneAndNamed() {
	s.plan.Strategy.MaxFailures = 1
	var validated, observed []string
	var committed activities.CommitInput
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		validated = append(validated, in.Target.Name)
		return activities.ValidateResult{Passed: true}, nil
	}
	s.observeFn = func(_ context.Context, in activities.ObserveInput) (activities.ObserveResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		observed = observed[:0]
		for _, t := range in.Targets {
			observed = append(observed, t.Name)
		}
		return activities.ObserveResult{Runs: 1, Passed: 1}, nil
	}
	s.commitFn = func(in activities.CommitInput) error {
		committed = in
		return nil
	}
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Target.Name == "b" {
			return activities.TargetResult{}, errors.New("flaky host")
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompletedWithIssues, res.Status, res.Outcome)
	s.Contains(res.Outcome, "1 target failed during the rollout: b (flaky host; rolled back to 1.0.0)")
	s.ElementsMatch([]string{"a", "c", "d"}, validated, "b is not validated, and no target twice")
	s.ElementsMatch([]string{"a", "c", "d"}, observed, "nor observed")
	s.ElementsMatch([]string{"tgt_a", "tgt_c", "tgt_d"}, committed.TargetIDs, "nor made last known good")
	s.Equal([]string{"b"}, s.rollbacks, "b was undone")
}

func (s *deploymentSuite) TestValidationFailureRollsBack() {
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		return activities.ValidateResult{Passed: in.Target.Name != "c", Results: []drivers.CheckResult{{Name: "smoke", Passed: in.Target.Name != "c", Message: "HTTP 500"}}}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "validation checks failed: c: check smoke: HTTP 500")
	s.Len(s.rollbacks, 4)
}

func (s *deploymentSuite) TestWaveCheckStopsTheRolloutBeforeTheNextWave() {
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		ok := in.Target.Name != "a"
		return activities.ValidateResult{Passed: ok, Results: []drivers.CheckResult{{Name: "smoke", Passed: ok, Message: "HTTP 503"}}}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "wave 1 checks failed: a: check smoke: HTTP 503")
	s.ElementsMatch([]string{"a", "b"}, s.deployed, "wave 2 never started")
	s.ElementsMatch([]string{"a", "b"}, s.rollbacks)
}

func (s *deploymentSuite) TestBreachBeforePONRRollsBack() {
	s.observeFn = func(context.Context, activities.ObserveInput) (activities.ObserveResult, error) {
		return activities.ObserveResult{Runs: 3, Passed: 2, Failed: 1, Breached: true, Breach: "probe errors breached on b: 5% errors"}, nil
	}
	committed := false
	s.commitFn = func(_ activities.CommitInput) error {
		committed = true
		return nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "before the point of no return, probe errors breached on b")
	s.False(committed, "nothing is committed before the point of no return")
	s.Len(s.rollbacks, 4)
}

// An observation that cannot measure before the point of no return is no
// breach: the deployment pauses for a person. Resumed, it commits; the
// outcome says what was not observed.
func (s *deploymentSuite) TestUnobservableBeforePONRPausesForADecision() {
	calls := 0
	s.observeFn = func(context.Context, activities.ObserveInput) (activities.ObserveResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		calls++
		if calls == 1 {
			return activities.ObserveResult{Runs: 5, Errors: 5, Unobservable: true, Why: "probe errors could not measure on a for 5 runs in a row"}, nil
		}
		return activities.ObserveResult{Runs: 10, Passed: 10}, nil
	}
	var pausedState models.DeploymentState
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(models.QueryStatus)
		s.Require().NoError(err)
		s.Require().NoError(v.Get(&pausedState))
	}, 2*time.Hour)
	s.update(3*time.Hour, models.UpdateResume, models.ControlInput{By: "rita"})
	res := s.run(input())
	s.Equal(models.StatusPaused, pausedState.Status)
	s.Require().NotNil(pausedState.Hold)
	s.Contains(pausedState.Hold.Reason, "resume to commit 2.0.0, or roll back")
	s.Equal(models.StatusCompletedWithIssues, res.Status, res.Outcome)
	s.Contains(res.Outcome, "not observed before the point of no return")
	s.Empty(s.rollbacks, "a monitoring outage did not roll back a healthy release")
}

func (s *deploymentSuite) TestUnobservableAndRolledBackByAPerson() {
	s.observeFn = func(context.Context, activities.ObserveInput) (activities.ObserveResult, error) {
		return activities.ObserveResult{}, temporal.NewNonRetryableApplicationError("prometheus unreachable", "Probe", nil)
	}
	s.update(time.Hour, models.UpdateRollback, models.ControlInput{By: "rita", Reason: "cannot see it, do not trust it"})
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Len(s.rollbacks, 4)
}

func (s *deploymentSuite) TestRollbackRequestBeforePONR() {
	s.update(5*time.Minute, models.UpdateRollback, models.ControlInput{By: "rita", Reason: "customer reports"})
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "rollback requested by rita: customer reports")
}

func (s *deploymentSuite) TestAfterPONRAbortIsRefusedAndIncidentsBlockHandover() {
	s.plan.Policy.ObservationProbes = nil // early life support is then a timer the updates can land in
	abort := s.update(30*time.Minute, models.UpdateAbort, models.ControlInput{By: "rita"})
	rollback := s.update(31*time.Minute, models.UpdateRollback, models.ControlInput{By: "rita"})
	s.exitFn = func(activities.ExitInput) (activities.ExitResult, error) {
		return activities.ExitResult{Met: false, Reasons: []string{"open high incident inc_1: latency"}}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompletedWithIssues, res.Status)
	s.Contains(res.Outcome, "open high incident inc_1")
	s.requireRefused(abort, models.ErrTypeConflict, "passed its point of no return")
	s.requireRefused(rollback, models.ErrTypeConflict, "rollback is no longer offered")
	s.Empty(s.rollbacks)
}

// Cancelled after the point of no return: the commit stands, observing
// stops, and the outcome says early life support was cut short.
func (s *deploymentSuite) TestCancelAfterPONRKeepsTheCommit() {
	s.observeTakes = 10 * time.Minute          // to the point of no return
	s.observeAfterPONRTakes = 50 * time.Minute // to the end of early life support, unless cancelled
	committed := 0
	s.commitFn = func(activities.CommitInput) error { committed++; return nil }
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 30*time.Minute)
	res := s.run(input())
	s.Equal(models.StatusCompletedWithIssues, res.Status, res.Outcome)
	s.Contains(res.Outcome, "early life support cut short (the workflow was cancelled) after the point of no return: 2.0.0 stays committed")
	s.Equal(1, committed)
	s.Empty(s.rollbacks)
}

func (s *deploymentSuite) TestPauseHoldsAndResumeGoesOn() {
	s.plan.Strategy.Bake = models.Duration(10 * time.Minute)
	s.update(5*time.Minute, models.UpdatePause, models.ControlInput{By: "rita"})
	again := s.update(6*time.Minute, models.UpdatePause, models.ControlInput{By: "rob"})
	var waveTwoAt time.Time
	start := s.env.Now()
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if in.Wave == 2 && waveTwoAt.IsZero() {
			waveTwoAt = s.env.Now()
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	s.update(3*time.Hour, models.UpdateResume, models.ControlInput{By: "rita"})
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.requireRefused(again, models.ErrTypeConflict, "already paused")
	s.GreaterOrEqual(waveTwoAt.Sub(start), 3*time.Hour, "wave 2 waited for resume")
	s.Contains(s.recorded(), models.StatusPaused)
}

func (s *deploymentSuite) TestPauseDuringTheLastWaveHoldsValidation() {
	var validatedAt time.Time
	start := s.env.Now()
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		validatedAt = s.env.Now() // the last call is the validation stage's
		return activities.ValidateResult{Passed: true}, nil
	}
	s.deployTakes = 10 * time.Minute
	s.update(15*time.Minute, models.UpdatePause, models.ControlInput{By: "rita"}) // while wave 2 (the last) deploys
	s.update(2*time.Hour, models.UpdateResume, models.ControlInput{By: "rita"})
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.GreaterOrEqual(validatedAt.Sub(start), 2*time.Hour, "validation waited for resume")
	s.Contains(s.recorded(), models.StatusPaused)
}

func (s *deploymentSuite) TestAbortWhilePausedRollsBack() {
	s.plan.Strategy.Bake = models.Duration(10 * time.Minute)
	s.update(5*time.Minute, models.UpdatePause, models.ControlInput{By: "rita"})
	s.update(20*time.Minute, models.UpdateAbort, models.ControlInput{By: "rita", Reason: "bad metrics"})
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "abort requested by rita: bad metrics")
	s.ElementsMatch([]string{"b", "a"}, s.rollbacks)
	s.Contains(s.recorded(), models.StatusPaused)
}

func (s *deploymentSuite) TestAbortWhileQueuedCancels() {
	s.plan.AheadInQueue = []string{"dep_0"}
	s.laneFn = func(activities.LaneInput) ([]string, error) { return []string{"dep_0"}, nil }
	s.update(time.Minute, models.UpdateAbort, models.ControlInput{By: "dave"})
	res := s.run(input())
	s.Equal(models.StatusCancelled, res.Status)
	s.Equal([]models.Status{models.StatusQueued, models.StatusCancelled}, s.recorded())
	s.Empty(s.deployed)
}

// Cancelled while a target deploys: no target starts after the cancel, the
// one under way is rolled back (it may be half changed), and targets never
// started are not "rolled back".
func (s *deploymentSuite) TestCancelWhileATargetDeploys() {
	s.plan.Strategy.MaxParallel = 1
	s.plan.Waves = [][]models.PlanTarget{{target("c"), target("d"), target("e")}}
	s.deployTakes = 10 * time.Minute
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 5*time.Minute) // while c deploys
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "the workflow was cancelled")
	s.Empty(s.deployed, "c was cancelled before it finished")
	// A compensation is pushed as a target starts: d and e never started.
	s.Equal([]string{"c"}, s.rollbacks, "only c, which was under way, is rolled back")
}

// With max_parallel 1, targets change one at a time; with 3, three at once.
func (s *deploymentSuite) TestMaxParallelIsRespected() {
	for _, limit := range []int{1, 3} {
		s.SetupTest()
		s.plan.Strategy.MaxParallel = limit
		s.plan.Waves = [][]models.PlanTarget{{target("a"), target("b"), target("c"), target("d")}}
		s.deployTakes = time.Minute
		res := s.run(input())
		s.Equal(models.StatusCompleted, res.Status)
		s.Len(s.deployed, 4)
		s.Equal(limit, s.mostAtOnce(), "max_parallel %d", limit)
	}
}

// mostAtOnce is the most deploys that were under way at one time: each
// ended at its recorded time and took deployTakes.
func (s *deploymentSuite) mostAtOnce() int {
	most := 0
	for _, end := range s.deployEnds {
		n := 0
		for _, other := range s.deployEnds {
			if other.Add(-s.deployTakes).Before(end) && !other.Before(end) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// Without a last known good, the rollback goes back to what the plan found
// running there (it ran before Transit knew the target); only where nothing
// ran is the release removed.
func (s *deploymentSuite) TestRollbackGoesBackToWhatRanBefore() {
	known := target("a")
	before := models.PlanTarget{ID: "tgt_b", Name: "b", Driver: "simulated", CurrentVersion: "0.9.0"}
	fresh := models.PlanTarget{ID: "tgt_c", Name: "c", Driver: "simulated"}
	s.plan.Waves = [][]models.PlanTarget{{known, before, fresh}}
	s.validateFn = func(activities.ValidateInput) (activities.ValidateResult, error) {
		return activities.ValidateResult{Passed: false, Results: []drivers.CheckResult{{Name: "smoke", Message: "down"}}}, nil
	}
	to := map[string]activities.ReleaseRef{}
	s.rollbackFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		to[in.Target.Name] = in.Release
		s.Equal("2.0.0", in.Previous, "the script is told what it rolls back from")
		s.True(strings.HasSuffix(in.Key, "/rollback"))
		return activities.TargetResult{Version: in.Release.Version}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Equal(activities.ReleaseRef{ID: "rel_old"}, to["a"])
	s.Equal(activities.ReleaseRef{Version: "0.9.0"}, to["b"])
	s.Equal(activities.ReleaseRef{}, to["c"], "nothing ran on c: the release is removed")
}

// A rollback that itself fails ends the deployment failed, naming the target.
func (s *deploymentSuite) TestFailedRollbackEndsFailed() {
	s.validateFn = func(activities.ValidateInput) (activities.ValidateResult, error) {
		return activities.ValidateResult{Passed: false, Results: []drivers.CheckResult{{Name: "smoke", Message: "down"}}}, nil
	}
	s.plan.Waves = [][]models.PlanTarget{{target("a"), target("b")}}
	s.rollbackFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Target.Name == "b" {
			return activities.TargetResult{}, temporal.NewNonRetryableApplicationError("host gone", models.ErrTypeDriver, nil)
		}
		return activities.TargetResult{Version: "1.0.0"}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusFailed, res.Status)
	s.Contains(res.Outcome, "rollback incomplete: 1 of 2 targets could not be rolled back: b: failed to undo: host gone")
}

func (s *deploymentSuite) TestSignalFromAnUnknownSubjectIsIgnored() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "nobody-i-know"})
	}, time.Minute)
	res := s.run(input())
	s.Equal(models.StatusExpired, res.Status)
	ignored := s.timeline(models.EventSignalIgnored)
	s.Require().Len(ignored, 1)
	s.Contains(ignored[0], "not a known approver")
	s.NotContains(ignored[0], "retryable", "the reason reads as a sentence")
}

func (s *deploymentSuite) TestObservationFailureAfterPONRWaitsOutELS() {
	calls := 0
	s.observeFn = func(context.Context, activities.ObserveInput) (activities.ObserveResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		calls++
		if calls == 2 {
			return activities.ObserveResult{}, temporal.NewNonRetryableApplicationError("prometheus unreachable", "Probe", nil)
		}
		return activities.ObserveResult{Runs: 5, Passed: 5}, nil
	}
	var exitAt time.Time
	start := s.env.Now()
	s.exitFn = func(activities.ExitInput) (activities.ExitResult, error) {
		exitAt = s.env.Now()
		return activities.ExitResult{Met: true}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompletedWithIssues, res.Status)
	s.Contains(res.Outcome, "the observation after the point of no return failed: prometheus unreachable")
	s.GreaterOrEqual(exitAt.Sub(start), time.Hour, "early life support still lasted its hour")
	s.Empty(s.rollbacks, "after the point of no return nothing is rolled back")
}

// The exit criteria get the counts split: passed, failed, could not measure.
func (s *deploymentSuite) TestExitCriteriaGetEveryCount() {
	s.observeFn = func(context.Context, activities.ObserveInput) (activities.ObserveResult, error) {
		return activities.ObserveResult{Runs: 6, Passed: 3, Failed: 1, Errors: 2}, nil
	}
	var got activities.ExitInput
	s.exitFn = func(in activities.ExitInput) (activities.ExitResult, error) {
		got = in
		return activities.ExitResult{Met: true}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(activities.ExitInput{DeploymentID: "dep_1", Criteria: s.plan.Policy.ExitCriteria, ProbeRuns: 12, ProbePassed: 6,
		ProbeFailed: 2, ProbeErrors: 4, Probes: 1}, got)
}

func (s *deploymentSuite) TestDecommission() {
	s.plan.Scenario = models.ScenarioDecommission
	var removed []string
	var committed activities.CommitInput
	s.removeFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.True(in.RetainData)
		s.True(strings.HasSuffix(in.Key, "/remove"), in.Key)
		s.mu.Lock()
		removed = append(removed, in.Target.Name)
		s.mu.Unlock()
		return activities.TargetResult{}, nil
	}
	s.commitFn = func(in activities.CommitInput) error {
		committed = in
		return nil
	}
	in := input()
	in.Scenario, in.RetainData = models.ScenarioDecommission, true
	res := s.run(in)
	s.Equal(models.StatusCompleted, res.Status)
	s.ElementsMatch([]string{"a", "b", "c", "d"}, removed)
	s.Empty(committed.ReleaseID, "last known good is cleared")
	s.Len(committed.TargetIDs, 4)
	s.Empty(s.deployed)
	all := strings.Join(s.timeline(""), "\n")
	s.Contains(all, "decommissioning 2.0.0 from 4 targets in 2 waves")
	s.NotContains(all, "rolling out")
}

func (s *deploymentSuite) TestDecommissionFailureRedeploys() {
	s.plan.Scenario = models.ScenarioDecommission
	s.removeFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Target.Name == "c" {
			return activities.TargetResult{}, errors.New("volume busy")
		}
		return activities.TargetResult{}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.ElementsMatch([]string{"a", "b", "c", "d"}, s.rollbacks, "every target of the decommission gets its release back, c (which failed half way) too")
}

func (s *deploymentSuite) TestCancellationStillRollsBack() {
	s.plan.Strategy.Bake = models.Duration(time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 30*time.Minute)
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "the workflow was cancelled")
	s.ElementsMatch([]string{"a", "b"}, s.rollbacks)
}

// Every key names the run: a run started by a reset of the workflow does its
// steps anew, instead of finding them done under the old run's keys.
func (s *deploymentSuite) TestKeysNameTheRun() {
	var keys []string
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		keys = append(keys, in.Key)
		s.mu.Unlock()
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Require().NotEmpty(s.steps)
	runID, _, _ := strings.Cut(s.steps[0].Key, "/")
	s.Require().NotEmpty(runID)
	s.Contains(keys, "dep_1/"+runID+"/tgt_a/deploy")
	for _, st := range s.steps {
		s.True(strings.HasPrefix(st.Key, runID+"/"), st.Key)
	}
}

func (s *deploymentSuite) TestStatusQuery() {
	s.plan.Policy.ApprovalsRequired = 1
	var st models.DeploymentState
	var queryErr error
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(models.QueryStatus)
		if queryErr = err; err == nil {
			queryErr = v.Get(&st)
		}
	}, time.Minute)
	s.apiVote(2*time.Minute, models.UpdateReject, "rita", nil, "")
	res := s.run(input())
	s.Equal(models.StatusRejected, res.Status)
	s.Require().NoError(queryErr)
	s.Equal(models.StatusAwaitingApproval, st.Status, "the query ran, at one minute")
	s.Equal(1, st.Required)
	s.Equal(2, st.WaveCount)
	s.Equal(models.ScenarioUpgrade, st.Scenario)
}

func TestStatusTransitions(t *testing.T) {
	require.True(t, models.StatusDeploying.CanBecome(models.StatusRollingBack))
	require.False(t, models.StatusCompleted.CanBecome(models.StatusDeploying))
	require.False(t, models.StatusAwaitingApproval.CanBecome(models.StatusDeploying))
	for _, st := range models.TerminalStatuses {
		require.True(t, st.Terminal())
	}
}

// ---- large fleets

// fleet is n targets named t01…, in waves of size.
func fleet(n, size int) [][]models.PlanTarget {
	var waves [][]models.PlanTarget
	for i := 0; i < n; i++ {
		if i%size == 0 {
			waves = append(waves, nil)
		}
		waves[len(waves)-1] = append(waves[len(waves)-1], target(fmt.Sprintf("t%02d", i+1)))
	}
	return waves
}

// Waves larger than targets_per_run go to child workflows of at most that
// many steps each; the deployment is the same.
func (s *deploymentSuite) TestLargeWavesSpreadOverChildWorkflows() {
	s.plan.Waves = fleet(10, 5)
	s.plan.TargetsPerRun = 2
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	s.Len(s.deployed, 10)
	// Per wave of 5: deploys in 2+2+1, and checks in 2+2+1 (between waves
	// for wave 1, at validation for wave 2).
	s.Equal([]int{2, 2, 1, 2, 2, 1, 2, 2, 1, 2, 2, 1}, s.batches)
	s.Contains(res.Outcome, "handed over")
}

// A failure in the last wave rolls back every target of every wave, newest
// wave first, through child workflows too.
func (s *deploymentSuite) TestRollbackInTheLastWaveRestoresEveryTargetFromChildren() {
	s.plan.Waves = fleet(9, 3)
	s.plan.TargetsPerRun = 2
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Target.Name == "t08" {
			return activities.TargetResult{}, temporal.NewNonRetryableApplicationError("boom", models.ErrTypeDriver, nil)
		}
		return activities.TargetResult{Version: in.Release.Version}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "9 targets rolled back to what ran before")
	s.Len(s.rollbacks, 9)
	s.ElementsMatch([]string{"t07", "t08", "t09"}, s.rollbacks[:3], "the last wave first")
	s.ElementsMatch([]string{"t01", "t02", "t03"}, s.rollbacks[6:], "the first wave last")
}

// A cancel while a child runs its batch: the batch's steps are cancelled
// and undone; the batches never started leave their targets alone.
func (s *deploymentSuite) TestCancelDuringAChildBatchUndoesOnlyWhatStarted() {
	s.plan.Waves = fleet(6, 6)
	s.plan.TargetsPerRun = 2
	s.deployTakes = 10 * time.Minute
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 15*time.Minute) // during the second batch
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "the workflow was cancelled")
	s.ElementsMatch([]string{"t01", "t02"}, s.deployed, "the first batch finished")
	s.ElementsMatch([]string{"t01", "t02", "t03", "t04"}, s.rollbacks, "t05 and t06 never started")
}

// A pause reaches the child running a part: it starts no step until the
// resume, and goes on after it.
func (s *deploymentSuite) TestPauseReachesARunningChild() {
	s.plan.Waves = fleet(6, 6)
	s.plan.TargetsPerRun = 3
	s.plan.Strategy.MaxParallel = 1
	s.deployTakes = 10 * time.Minute
	start := s.env.Now()
	s.update(15*time.Minute, models.UpdatePause, models.ControlInput{By: "rita"}) // while t02 deploys
	s.update(2*time.Hour, models.UpdateResume, models.ControlInput{By: "rita"})
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	s.Require().Len(s.deployEnds, 6)
	s.Equal(20*time.Minute, s.deployEnds[1].Sub(start), "t02, under way at the pause, ends")
	s.GreaterOrEqual(s.deployEnds[2].Sub(start), 2*time.Hour+10*time.Minute, "t03 waited for the resume")
	s.Equal([]int{3, 3, 3, 3}, s.batches, "deploys and checks, in parts of 3")
}
