package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
)

// acts stands for the activities in OnActivity; its methods are never called.
var acts *activities.Activities

type deploymentSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	mu  sync.Mutex // mocked activities run on goroutines of their own

	plan      models.Plan
	deployed  []string // target names, in call order
	rollbacks []string // target names, in call order
	recorded  []models.Status
	notes     []string

	// How long each mocked deploy takes, in workflow time.
	deployTakes time.Duration
	// What the mocked activities do; a test replaces the ones it needs.
	planFn     func(models.DeploymentInput) (activities.PlanResult, error)
	laneFn     func(activities.LaneInput) ([]string, error)
	deployFn   func(activities.TargetInput) (activities.TargetResult, error)
	removeFn   func(activities.TargetInput) (activities.TargetResult, error)
	validateFn func(activities.ValidateInput) (activities.ValidateResult, error)
	observeFn  func(activities.ObserveInput) (activities.ObserveResult, error)
	commitFn   func(activities.CommitInput) error
	exitFn     func(activities.ExitInput) (activities.ExitResult, error)
}

func TestDeploymentWorkflow(t *testing.T) { suite.Run(t, new(deploymentSuite)) }

func target(name string) models.PlanTarget {
	return models.PlanTarget{ID: "tgt_" + name, Name: name, Driver: "simulated", LastKnownGoodID: "rel_old"}
}

func (s *deploymentSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.RegisterWorkflow(Deployment)
	s.env.RegisterActivity(acts)
	s.deployed, s.rollbacks, s.recorded, s.notes = nil, nil, nil, nil
	s.deployTakes = 0
	policy := models.Policy{ApprovalsRequired: 0, PointOfNoReturn: models.Duration(10 * time.Minute),
		EarlyLifeSupport:  models.Duration(time.Hour),
		ValidationChecks:  []models.CheckSpec{{Name: "smoke", Type: "simulated"}},
		ObservationProbes: []models.ProbeSpec{{Name: "errors", Type: "simulated", Interval: models.Duration(time.Minute)}}}
	policy.Normalize()
	s.plan = models.Plan{Application: "shop", Environment: "prod", ReleaseVersion: "2.0.0", Scenario: models.ScenarioUpgrade,
		Strategy: models.Strategy{Kind: models.StrategyRolling, Batch: 2, MaxParallel: 10}, Policy: policy,
		Waves: [][]models.PlanTarget{{target("a"), target("b")}, {target("c"), target("d")}}}

	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{Plan: s.plan}, nil
	}
	s.laneFn = func(activities.LaneInput) ([]string, error) { return nil, nil }
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		s.deployed = append(s.deployed, in.Target.Name)
		s.mu.Unlock()
		return activities.TargetResult{Version: in.Release.Version, LastKnownGood: activities.ReleaseRef{ID: "rel_old", Version: "1.0.0"}}, nil
	}
	s.removeFn = func(activities.TargetInput) (activities.TargetResult, error) { return activities.TargetResult{}, nil }
	s.validateFn = func(activities.ValidateInput) (activities.ValidateResult, error) {
		return activities.ValidateResult{Passed: true}, nil
	}
	s.observeFn = func(activities.ObserveInput) (activities.ObserveResult, error) {
		return activities.ObserveResult{Runs: 10, Passed: 10}, nil
	}
	s.commitFn = func(activities.CommitInput) error { return nil }
	s.exitFn = func(activities.ExitInput) (activities.ExitResult, error) {
		return activities.ExitResult{Met: true}, nil
	}

}

// mock registers the mocked activities; they call the suite's fields.
func (s *deploymentSuite) mock() {
	on := func(fn any, impl any) { s.env.OnActivity(fn, mock.Anything, mock.Anything).Return(impl).Maybe() }
	on(acts.Plan, func(_ context.Context, in models.DeploymentInput) (activities.PlanResult, error) { return s.planFn(in) })
	on(acts.LaneAhead, func(_ context.Context, in activities.LaneInput) ([]string, error) { return s.laneFn(in) })
	s.env.OnActivity(acts.DeployTarget, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TargetInput) (activities.TargetResult, error) {
			return s.deployFn(in)
		}).
		After(s.deployTakes).Maybe()
	on(acts.RemoveTarget, func(_ context.Context, in activities.TargetInput) (activities.TargetResult, error) {
		return s.removeFn(in)
	})
	on(acts.ValidateTarget, func(_ context.Context, in activities.ValidateInput) (activities.ValidateResult, error) {
		return s.validateFn(in)
	})
	on(acts.Observe, func(_ context.Context, in activities.ObserveInput) (activities.ObserveResult, error) {
		return s.observeFn(in)
	})
	on(acts.CommitLastKnownGood, func(_ context.Context, in activities.CommitInput) error { return s.commitFn(in) })
	on(acts.ExitCriteria, func(_ context.Context, in activities.ExitInput) (activities.ExitResult, error) { return s.exitFn(in) })
	on(acts.Record, func(_ context.Context, in activities.RecordInput) error {
		if in.Status != nil {
			s.mu.Lock()
			s.recorded = append(s.recorded, *in.Status)
			s.mu.Unlock()
		}
		return nil
	})
	on(acts.RecordVote, func(_ context.Context, _ models.Approval) error { return nil })
	on(acts.Note, func(_ context.Context, in activities.NoteInput) error {
		s.mu.Lock()
		s.notes = append(s.notes, in.Message)
		s.mu.Unlock()
		return nil
	})
	on(acts.NextInLane, func(_ context.Context, _ activities.LaneInput) (string, error) { return "", nil })
	on(acts.RollbackTarget, func(_ context.Context, in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		s.rollbacks = append(s.rollbacks, in.Target.Name)
		s.mu.Unlock()
		return activities.TargetResult{Version: in.Release.Version}, nil
	})
	on(acts.LookupPrincipal, func(_ context.Context, subject string) (activities.PrincipalResult, error) {
		groups := map[string][]string{"rita": {"release-managers"}, "rob": {"release-managers"}}[subject]
		return activities.PrincipalResult{Groups: groups, Known: groups != nil}, nil
	})
}

func input() models.DeploymentInput {
	return models.DeploymentInput{DeploymentID: "dep_1", ApplicationID: "app_1", EnvironmentID: "env_1",
		ReleaseID: "rel_new", RequestedBy: "dave"}
}

func (s *deploymentSuite) run(in models.DeploymentInput) models.DeploymentResult {
	s.mock()
	s.env.ExecuteWorkflow(Deployment, in)
	s.True(s.env.IsWorkflowCompleted())
	s.NoError(s.env.GetWorkflowError())
	var res models.DeploymentResult
	s.NoError(s.env.GetWorkflowResult(&res))
	return res
}

// update sends an Update after delay and stores how it ended.
type updateOutcome struct {
	rejected error
	err      error
	done     bool
}

func (s *deploymentSuite) update(delay time.Duration, name string, arg any) *updateOutcome {
	out := &updateOutcome{}
	s.env.RegisterDelayedCallback(func() {
		s.env.UpdateWorkflow(name, fmt.Sprintf("%s-%d", name, delay), &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { out.rejected, out.done = err, true },
			OnComplete: func(_ any, err error) { out.err, out.done = err, true },
		}, arg)
	}, delay)
	return out
}

func (s *deploymentSuite) TestAutoApprovedHappyPath() {
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status, res.Outcome)
	s.Require().Len(s.deployed, 4)
	s.ElementsMatch([]string{"a", "b"}, s.deployed[:2], "wave 1 first")
	s.ElementsMatch([]string{"c", "d"}, s.deployed[2:])
	s.Empty(s.rollbacks)
	s.Equal([]models.Status{models.StatusAwaitingApproval, models.StatusScheduled, models.StatusDeploying,
		models.StatusValidating, models.StatusEarlyLifeSupport, models.StatusCompleted}, s.recorded)
	s.Contains(res.Outcome, "20 probe runs, 20 passed")
}

func (s *deploymentSuite) TestQuorumOfTwoDistinctApprovers() {
	s.plan.Policy.ApprovalsRequired = 2
	s.plan.Policy.ApproverGroups = []string{"release-managers"}
	rm := []string{"release-managers"}
	self := s.update(time.Minute, models.UpdateApprove, models.VoteInput{Approver: "dave", Groups: rm})
	outsider := s.update(2*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "oscar", Groups: []string{"devs"}})
	first := s.update(3*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "rita", Groups: rm})
	twice := s.update(4*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "rita", Groups: rm})
	second := s.update(5*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "rob", Groups: rm})
	late := s.update(7*time.Minute, models.UpdateApprove, models.VoteInput{Approver: "ron", Groups: rm})
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.requireRefused(self, models.ErrTypeForbidden, "self-approval")
	s.requireRefused(outsider, models.ErrTypeForbidden, "not in the approver groups")
	s.NoError(first.rejected)
	s.NoError(first.err)
	s.requireRefused(twice, models.ErrTypeConflict, "already voted")
	s.NoError(second.rejected)
	s.requireRefused(late, models.ErrTypeConflict, "not awaiting approval")
}

func (s *deploymentSuite) requireRefused(o *updateOutcome, errType, contains string) {
	s.T().Helper()
	s.Require().True(o.done, "the update never ended")
	var appErr *temporal.ApplicationError
	s.Require().True(errors.As(o.rejected, &appErr), "want a refusal, got %v", o.rejected)
	s.Equal(errType, appErr.Type())
	s.Contains(appErr.Message(), contains)
}

func (s *deploymentSuite) TestSelfApprovalWhenPolicyAllows() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.SelfApprovalAllowed = true
	self := s.update(time.Minute, models.UpdateApprove, models.VoteInput{Approver: "dave"})
	res := s.run(input())
	s.NoError(self.rejected)
	s.Equal(models.StatusCompleted, res.Status)
}

func (s *deploymentSuite) TestRejection() {
	s.plan.Policy.ApprovalsRequired = 2
	s.update(time.Minute, models.UpdateReject, models.VoteInput{Approver: "rita", Comment: "freeze week"})
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
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "oscar"}) // not an approver
	}, time.Minute)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "rita"})
	}, 2*time.Minute)
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Require().Len(s.notes, 1)
	s.Contains(s.notes[0], `approve signal from "oscar" ignored`)
}

func (s *deploymentSuite) TestEntryCriteriaRejectAndUnreachableFails() {
	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{}, temporal.NewNonRetryableApplicationError("release 2.0.0 does not meet its entry criteria: tests=failed", activities.ErrTypeEntryCriteria, nil)
	}
	res := s.run(input())
	s.Equal(models.StatusRejected, res.Status)
	s.Contains(res.Outcome, "tests=failed")

	s.SetupTest()
	s.planFn = func(models.DeploymentInput) (activities.PlanResult, error) {
		return activities.PlanResult{}, temporal.NewNonRetryableApplicationError("1 of 4 targets cannot be reached", activities.ErrTypeUnreachable, nil)
	}
	res = s.run(input())
	s.Equal(models.StatusFailed, res.Status)
	s.Contains(res.Outcome, "cannot be reached")
}

func (s *deploymentSuite) TestAbortWhileAwaitingApprovalCancels() {
	s.plan.Policy.ApprovalsRequired = 1
	s.update(time.Minute, models.UpdateAbort, models.ControlInput{By: "dave", Reason: "wrong release"})
	res := s.run(input())
	s.Equal(models.StatusCancelled, res.Status)
	s.Contains(res.Outcome, "abort requested by dave: wrong release")
	s.Empty(s.deployed)
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
	}, 30*time.Second)
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
	s.Equal(models.StatusQueued, s.recorded[0])
	s.Less(startedAt.Sub(start), laneRecheck, "woken by the signal, not by the re-check")
	s.GreaterOrEqual(startedAt.Sub(start), 30*time.Second)
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
		if elapsed < 5*time.Minute {
			return []string{"dep_0"}, nil // the one ahead ends at 5 min and its signal is lost
		}
		return nil, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
	s.Require().Len(checks, 3)
	s.Equal([]time.Duration{0, laneRecheck, 3 * laneRecheck}, []time.Duration{checks[0].Round(time.Second),
		checks[1].Round(time.Second), checks[2].Round(time.Second)}, "re-checks back off: 2 min, then 4 min")
}

func (s *deploymentSuite) TestNotBeforeAndChangeWindow() {
	// Starts no earlier than not_before, then waits for the window.
	s.env.SetStartTime(time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)) // a Monday
	s.plan.Policy.ChangeWindows = []models.ChangeWindow{{Days: []string{"tue"}, Start: "10:00", End: "12:00", Timezone: "UTC"}}
	notBefore := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var startedAt time.Time
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if startedAt.IsZero() {
			startedAt = s.env.Now().UTC()
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	in := input()
	in.NotBefore = &notBefore
	res := s.run(in)
	s.Equal(models.StatusCompleted, res.Status)
	s.Equal(time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC), startedAt.Truncate(time.Minute))
}

func (s *deploymentSuite) TestTooManyFailuresRollBackNewestFirst() {
	s.plan.Strategy.MaxFailures = 0
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		s.deployed = append(s.deployed, in.Target.Name)
		s.mu.Unlock()
		if in.Target.Name == "d" {
			return activities.TargetResult{}, temporal.NewNonRetryableApplicationError("disk full", "Driver", nil)
		}
		return activities.TargetResult{Version: "2.0.0", LastKnownGood: activities.ReleaseRef{ID: "rel_old", Version: "1.0.0"}}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "wave 2: 1 target(s) failed, more than max_failures 0: d: disk full")
	s.Equal([]string{"d", "c", "b", "a"}, s.rollbacks, "newest first, and the failed target d too: it may be half changed")
	s.Contains(s.recorded, models.StatusRollingBack)
}

func (s *deploymentSuite) TestFailuresWithinMaxFailuresGoOn() {
	s.plan.Strategy.MaxFailures = 1
	var validated, observed []string
	var committed activities.CommitInput
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		validated = append(validated, in.Target.Name)
		return activities.ValidateResult{Passed: true}, nil
	}
	s.observeFn = func(in activities.ObserveInput) (activities.ObserveResult, error) {
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
	defer func() {
		s.ElementsMatch([]string{"a", "a", "c", "d"}, validated, "the failed target b is not validated (a is, after wave 1 and at the end)")
		s.ElementsMatch([]string{"a", "c", "d"}, observed, "nor observed")
		s.ElementsMatch([]string{"tgt_a", "tgt_c", "tgt_d"}, committed.TargetIDs, "nor made last known good")
		s.Empty(s.rollbacks)
	}()
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		if in.Target.Name == "b" {
			return activities.TargetResult{}, errors.New("flaky host")
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusCompleted, res.Status)
}

func (s *deploymentSuite) TestValidationFailureRollsBack() {
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		return activities.ValidateResult{Passed: in.Target.Name != "c", Results: []drivers.CheckResult{{Name: "smoke", Passed: in.Target.Name != "c", Message: "HTTP 500"}}}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "validation failed: c: check smoke: HTTP 500")
	s.Len(s.rollbacks, 4)
}

func (s *deploymentSuite) TestWaveCheckStopsTheRolloutBeforeTheNextWave() {
	s.validateFn = func(in activities.ValidateInput) (activities.ValidateResult, error) {
		ok := in.Target.Name != "a"
		return activities.ValidateResult{Passed: ok, Results: []drivers.CheckResult{{Name: "smoke", Passed: ok, Message: "HTTP 503"}}}, nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "wave 1 failed: a: check smoke: HTTP 503")
	s.ElementsMatch([]string{"a", "b"}, s.deployed, "wave 2 never started")
	s.ElementsMatch([]string{"a", "b"}, s.rollbacks)
}

func (s *deploymentSuite) TestBreachBeforePONRRollsBack() {
	s.observeFn = func(activities.ObserveInput) (activities.ObserveResult, error) {
		return activities.ObserveResult{Runs: 3, Passed: 2, Breached: true, Breach: "probe errors failed on b: 5% errors"}, nil
	}
	committed := false
	s.commitFn = func(_ activities.CommitInput) error {
		committed = true
		return nil
	}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "before the point of no return, probe errors failed on b")
	s.False(committed, "nothing is committed before the point of no return")
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
	s.Contains(s.recorded, models.StatusPaused)
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
	s.Contains(s.recorded, models.StatusPaused)
}

func (s *deploymentSuite) TestAbortWhilePausedRollsBack() {
	s.plan.Strategy.Bake = models.Duration(10 * time.Minute)
	s.update(5*time.Minute, models.UpdatePause, models.ControlInput{By: "rita"})
	s.update(20*time.Minute, models.UpdateAbort, models.ControlInput{By: "rita", Reason: "bad metrics"})
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status)
	s.Contains(res.Outcome, "abort requested by rita: bad metrics")
	s.Equal([]string{"b", "a"}, s.rollbacks)
	s.Contains(s.recorded, models.StatusPaused)
}

func (s *deploymentSuite) TestAbortWhileQueuedCancels() {
	s.plan.AheadInQueue = []string{"dep_0"}
	s.laneFn = func(activities.LaneInput) ([]string, error) { return []string{"dep_0"}, nil }
	s.update(time.Minute, models.UpdateAbort, models.ControlInput{By: "dave"})
	res := s.run(input())
	s.Equal(models.StatusCancelled, res.Status)
	s.Equal([]models.Status{models.StatusQueued, models.StatusCancelled}, s.recorded)
	s.Empty(s.deployed)
}

func (s *deploymentSuite) TestCancelWhileATargetDeploysRollsItBack() {
	s.deployFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.mu.Lock()
		s.deployed = append(s.deployed, in.Target.Name)
		s.mu.Unlock()
		if in.Target.Name == "c" {
			return activities.TargetResult{}, temporal.NewCanceledError("cancelled half way")
		}
		return activities.TargetResult{Version: "2.0.0"}, nil
	}
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, time.Second)
	s.plan.Strategy.Bake = models.Duration(time.Hour)
	s.plan.Waves = [][]models.PlanTarget{{target("c"), target("d")}}
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.ElementsMatch([]string{"c", "d"}, s.rollbacks, "c may be half changed: it is rolled back too")
}

func (s *deploymentSuite) TestSignalFromAnUnknownSubjectIsIgnored() {
	s.plan.Policy.ApprovalsRequired = 1
	s.plan.Policy.ApprovalExpiry = models.Duration(time.Hour)
	s.env.RegisterDelayedCallback(func() {
		s.env.SignalWorkflow(models.UpdateApprove, models.VoteInput{Approver: "nobody-i-know"})
	}, time.Minute)
	res := s.run(input())
	s.Equal(models.StatusExpired, res.Status)
	s.Require().Len(s.notes, 1)
	s.Contains(s.notes[0], "not a known approver")
}

func (s *deploymentSuite) TestObservationFailureAfterPONRWaitsOutELS() {
	calls := 0
	s.observeFn = func(in activities.ObserveInput) (activities.ObserveResult, error) {
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
	s.Contains(res.Outcome, "observation failed: prometheus unreachable")
	s.GreaterOrEqual(exitAt.Sub(start), time.Hour, "early life support still lasted its hour")
	s.Empty(s.rollbacks, "after the point of no return nothing is rolled back")
}

func (s *deploymentSuite) TestDecommission() {
	s.plan.Scenario = models.ScenarioDecommission
	var removed []string
	var committed activities.CommitInput
	s.removeFn = func(in activities.TargetInput) (activities.TargetResult, error) {
		s.True(in.RetainData)
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
	s.ElementsMatch([]string{"a", "b", "c", "d"}, s.deployed, "every target of the decommission gets its release back, c (which failed half way) too")
}

func (s *deploymentSuite) TestCancellationStillRollsBack() {
	s.plan.Strategy.Bake = models.Duration(time.Hour)
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 30*time.Minute)
	res := s.run(input())
	s.Equal(models.StatusRolledBack, res.Status, res.Outcome)
	s.Contains(res.Outcome, "the workflow was cancelled")
	s.ElementsMatch([]string{"a", "b"}, s.rollbacks)
}

func (s *deploymentSuite) TestStatusQuery() {
	s.plan.Policy.ApprovalsRequired = 1
	s.env.RegisterDelayedCallback(func() {
		v, err := s.env.QueryWorkflow(models.QueryStatus)
		s.Require().NoError(err)
		var st models.DeploymentState
		s.Require().NoError(v.Get(&st))
		s.Equal(models.StatusAwaitingApproval, st.Status)
		s.Equal(1, st.Required)
		s.Equal(2, st.WaveCount)
	}, time.Minute)
	s.update(2*time.Minute, models.UpdateReject, models.VoteInput{Approver: "rita"})
	res := s.run(input())
	s.Equal(models.StatusRejected, res.Status)
}

func TestStatusTransitions(t *testing.T) {
	require.True(t, models.StatusDeploying.CanBecome(models.StatusRollingBack))
	require.False(t, models.StatusCompleted.CanBecome(models.StatusDeploying))
	require.False(t, models.StatusAwaitingApproval.CanBecome(models.StatusDeploying))
	for _, st := range models.TerminalStatuses {
		require.True(t, st.Terminal())
	}
}
