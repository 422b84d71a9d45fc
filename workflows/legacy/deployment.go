package legacy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
)

// a references the activities by method; the worker registers the real struct.
var a *activities.Activities

// Workflow changes that alter the history of a running deployment, for
// workflow.GetVersion. The saved histories in testdata/histories replay
// across each.
const (
	// changeWaveChecks runs the validation checks between waves.
	changeWaveChecks = "wave-checks"
	// changeConcurrentSignals handles each signal in its own coroutine.
	changeConcurrentSignals = "concurrent-signals"
	// changeTrackDeployed pushes compensations before each target starts,
	// waits for pause before validation, keeps failed targets out of
	// validation, observation and commit, and waits out early life support
	// when observation fails after the point of no return.
	changeTrackDeployed = "track-deployed"
)

// A queued deployment is woken by a lane_free signal from the one ahead. In
// case that signal is lost, it also looks again after laneRecheck, doubling
// up to laneRecheckMax, so that a wait of a day adds a few dozen events to
// the history, not thousands.
const (
	laneRecheck    = 2 * time.Minute
	laneRecheckMax = time.Hour
)

// Deployment is the deployment workflow: plan, approval, lane, schedule,
// waves, validation, point of no return and early life support, with
// compensations back to the last known good release.
func Deployment(ctx workflow.Context, in models.DeploymentInput) (models.DeploymentResult, error) {
	d := &deployment{in: in, status: models.StatusPlanning}
	if err := d.setup(ctx); err != nil {
		return models.DeploymentResult{}, err
	}
	return d.run(ctx)
}

// stopRequest is why the rollout must stop: an abort or rollback from a
// person, a failure, a probe breach, or the workflow's cancellation.
type stopRequest struct {
	Kind   string // abort, rollback, failure, breach, cancel
	By     string
	Reason string
}

// compensation undoes one target's change: roll back to To (remove when To
// has no ID), or, for a decommission, deploy To again.
type compensation struct {
	Target   models.PlanTarget
	Wave     int
	To       activities.ReleaseRef
	Redeploy bool
}

type deployment struct {
	in        models.DeploymentInput
	plan      models.Plan
	release   activities.ReleaseRef
	status    models.Status
	paused    bool
	pausedBy  string
	stop      *stopRequest
	approvals []models.Approval
	rejection *models.Approval
	waveIndex int
	pastPONR  bool
	ponrAt    *time.Time
	elsEndsAt *time.Time
	comps     []compensation
	outcome   string
	step      int
	laneFree  bool
	// waveChecks: this run has the change that checks each wave (and says
	// so on the timeline); older runs replay without it.
	waveChecks bool
	// concurrentSignals: signals are handled in coroutines of their own;
	// pendingSignals counts those still running.
	concurrentSignals bool
	pendingSignals    int
	// trackDeployed: compensations are pushed before each target starts,
	// and only the targets that were deployed are validated, observed and
	// committed (version 1 of "track-deployed").
	trackDeployed bool
	deployed      map[string]bool
	// observationFailed says why early life support could not observe.
	observationFailed string
	// finishing: the final status is being recorded.
	finishing bool
}

// setup registers the query, the updates (each with a validator) and the
// signals that mirror them.
func (d *deployment) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, models.QueryStatus, d.state); err != nil {
		return err
	}
	for _, decision := range []string{models.DecisionApprove, models.DecisionReject} {
		decision := decision
		err := workflow.SetUpdateHandlerWithOptions(ctx, decision,
			func(ctx workflow.Context, v models.VoteInput) (models.VoteResult, error) {
				return d.vote(ctx, decision, v, "update")
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, v models.VoteInput) error {
				return d.checkVote(v)
			}})
		if err != nil {
			return err
		}
	}
	controls := map[string]func(workflow.Context, models.ControlInput) models.ControlResult{
		models.UpdatePause:    d.pause,
		models.UpdateResume:   d.resume,
		models.UpdateAbort:    d.abort,
		models.UpdateRollback: d.requestRollback,
	}
	for _, name := range []string{models.UpdatePause, models.UpdateResume, models.UpdateAbort, models.UpdateRollback} {
		name, apply := name, controls[name]
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, c models.ControlInput) (models.ControlResult, error) {
				return apply(ctx, c), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, c models.ControlInput) error {
				return d.checkControl(name, c)
			}})
		if err != nil {
			return err
		}
	}
	d.concurrentSignals = workflow.GetVersion(ctx, changeConcurrentSignals, workflow.DefaultVersion, 1) >= 1
	workflow.Go(ctx, func(ctx workflow.Context) { d.signals(ctx, controls) })
	return nil
}

// signals serves the Signal forms of the updates, for operators using the
// Temporal CLI or UI. A signal that its update's validator would refuse is
// recorded on the timeline and ignored.
func (d *deployment) signals(ctx workflow.Context, controls map[string]func(workflow.Context, models.ControlInput) models.ControlResult) {
	sel := workflow.NewSelector(ctx)
	for _, decision := range []string{models.DecisionApprove, models.DecisionReject} {
		decision := decision
		sel.AddReceive(workflow.GetSignalChannel(ctx, decision), func(ch workflow.ReceiveChannel, _ bool) {
			var v models.VoteInput
			ch.Receive(ctx, &v)
			d.handleSignal(ctx, func(ctx workflow.Context) {
				// A signal carries no token: look the approver's groups up.
				var p activities.PrincipalResult
				if err := workflow.ExecuteActivity(recordCtx(ctx), a.LookupPrincipal, v.Approver).Get(ctx, &p); err != nil {
					d.ignored(ctx, decision, v.Approver, "the approver's groups could not be looked up: "+err.Error())
					return
				}
				if !p.Known {
					d.ignored(ctx, decision, v.Approver, "no live API token names this subject, so it is not a known approver")
					return
				}
				v.Groups = p.Groups
				if err := d.checkVote(v); err != nil {
					d.ignored(ctx, decision, v.Approver, err.Error())
					return
				}
				_, _ = d.vote(ctx, decision, v, "signal")
			})
		})
	}
	for _, name := range []string{models.UpdatePause, models.UpdateResume, models.UpdateAbort, models.UpdateRollback} {
		name := name
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(ch workflow.ReceiveChannel, _ bool) {
			var c models.ControlInput
			ch.Receive(ctx, &c)
			d.handleSignal(ctx, func(ctx workflow.Context) {
				if err := d.checkControl(name, c); err != nil {
					d.ignored(ctx, name, c.By, err.Error())
					return
				}
				controls[name](ctx, c)
			})
		})
	}
	sel.AddReceive(workflow.GetSignalChannel(ctx, models.SignalLaneFree), func(ch workflow.ReceiveChannel, _ bool) {
		ch.Receive(ctx, nil)
		d.laneFree = true
	})
	for {
		sel.Select(ctx)
	}
}

// handleSignal runs fn for one signal: in its own coroutine (version 1 of
// the "concurrent-signals" change), so that an abort does not wait behind a
// vote's look-up, and counted, so that the workflow does not end while one
// is being handled. Runs started before the change handle them in turn.
func (d *deployment) handleSignal(ctx workflow.Context, fn func(workflow.Context)) {
	if !d.concurrentSignals {
		fn(ctx)
		return
	}
	d.pendingSignals++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { d.pendingSignals-- }()
		fn(ctx)
	})
}

func (d *deployment) ignored(ctx workflow.Context, name, by, reason string) {
	d.step++
	_ = workflow.ExecuteActivity(recordCtx(ctx), a.Note, activities.NoteInput{
		DeploymentID: d.in.DeploymentID, Key: fmt.Sprintf("ignored/%d", d.step), Type: "signal_ignored",
		Message: fmt.Sprintf("%s signal from %q ignored: %s", name, by, reason),
	}).Get(ctx, nil)
}

func (d *deployment) state() (models.DeploymentState, error) {
	return models.DeploymentState{
		DeploymentID: d.in.DeploymentID, Status: d.status, Paused: d.paused,
		WaveIndex: d.waveIndex, WaveCount: len(d.plan.Waves),
		Approvals: d.approvals, Required: d.plan.Policy.ApprovalsRequired,
		PastPONR: d.pastPONR, PONRAt: d.ponrAt, ELSEndsAt: d.elsEndsAt, Outcome: d.outcome,
	}, nil
}

// ---- votes

func refusal(kind, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), kind, nil)
}

// checkVote is the validator of approve and reject.
func (d *deployment) checkVote(v models.VoteInput) error {
	if strings.TrimSpace(v.Approver) == "" {
		return refusal(models.ErrTypeInvalid, "the vote names no approver")
	}
	if d.status != models.StatusAwaitingApproval {
		return refusal(models.ErrTypeConflict, "deployment %s is %s, not awaiting approval: votes are closed", d.in.DeploymentID, d.status)
	}
	policy := d.plan.Policy
	if len(policy.ApproverGroups) > 0 && !slices.ContainsFunc(v.Groups, func(g string) bool { return slices.Contains(policy.ApproverGroups, g) }) {
		return refusal(models.ErrTypeForbidden, "%s is not in the approver groups of environment %s (%s)",
			v.Approver, d.plan.Environment, strings.Join(policy.ApproverGroups, ", "))
	}
	if v.Approver == d.in.RequestedBy && !policy.SelfApprovalAllowed {
		return refusal(models.ErrTypeForbidden, "%s requested this deployment and the policy of environment %s does not allow self-approval: another approver must vote",
			v.Approver, d.plan.Environment)
	}
	for _, ap := range d.approvals {
		if ap.Approver == v.Approver {
			return refusal(models.ErrTypeConflict, "%s has already voted (%s) on deployment %s", v.Approver, ap.Decision, d.in.DeploymentID)
		}
	}
	return nil
}

// vote records an accepted vote. The in-memory list is updated before the
// activity runs, so that a second vote by the same person is refused at once.
func (d *deployment) vote(ctx workflow.Context, decision string, v models.VoteInput, via string) (models.VoteResult, error) {
	ap := models.Approval{DeploymentID: d.in.DeploymentID, Approver: v.Approver, Decision: decision,
		Comment: v.Comment, Via: via, At: workflow.Now(ctx).UTC()}
	d.approvals = append(d.approvals, ap)
	if decision == models.DecisionReject && d.rejection == nil {
		d.rejection = &ap
	}
	// The vote counts from here on; recording it is retried for an hour, and
	// its failure does not undo it (the timeline says so).
	if err := workflow.ExecuteActivity(recordCtx(ctx), a.RecordVote, ap).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("record vote", "deployment", d.in.DeploymentID, "approver", ap.Approver, "error", err)
	}
	return models.VoteResult{Status: d.status, Approvals: d.approvedCount(), Required: d.plan.Policy.ApprovalsRequired}, nil
}

func (d *deployment) approvedCount() int {
	n := 0
	for _, ap := range d.approvals {
		if ap.Decision == models.DecisionApprove {
			n++
		}
	}
	return n
}

// ---- controls

// checkControl is the validator of pause, resume, abort and rollback.
func (d *deployment) checkControl(name string, c models.ControlInput) error {
	if d.status.Terminal() {
		return refusal(models.ErrTypeConflict, "deployment %s has ended (%s)", d.in.DeploymentID, d.status)
	}
	if d.stop != nil {
		return refusal(models.ErrTypeConflict, "deployment %s is already stopping (%s by %s)", d.in.DeploymentID, d.stop.Kind, d.stop.By)
	}
	switch name {
	case models.UpdatePause:
		if d.paused {
			return refusal(models.ErrTypeConflict, "deployment %s is already paused by %s", d.in.DeploymentID, d.pausedBy)
		}
		if !slices.Contains([]models.Status{models.StatusQueued, models.StatusScheduled, models.StatusDeploying}, d.status) {
			return refusal(models.ErrTypeConflict, "only a rollout can be paused; deployment %s is %s", d.in.DeploymentID, d.status)
		}
	case models.UpdateResume:
		if !d.paused {
			return refusal(models.ErrTypeConflict, "deployment %s is not paused", d.in.DeploymentID)
		}
	case models.UpdateAbort:
		if d.pastPONR {
			return refusal(models.ErrTypeConflict, "deployment %s passed its point of no return at %s: release %s is committed, so fix forward (report an incident) instead of aborting",
				d.in.DeploymentID, d.ponrAt.Format(time.RFC3339), d.plan.ReleaseVersion)
		}
	case models.UpdateRollback:
		if d.pastPONR {
			return refusal(models.ErrTypeConflict, "deployment %s passed its point of no return at %s: rollback is no longer offered; fix forward",
				d.in.DeploymentID, d.ponrAt.Format(time.RFC3339))
		}
		if !slices.Contains([]models.Status{models.StatusDeploying, models.StatusPaused, models.StatusValidating, models.StatusEarlyLifeSupport}, d.status) {
			return refusal(models.ErrTypeConflict, "deployment %s is %s: nothing has been deployed to roll back (use abort to cancel it)", d.in.DeploymentID, d.status)
		}
	}
	return nil
}

func (d *deployment) pause(_ workflow.Context, c models.ControlInput) models.ControlResult {
	d.paused, d.pausedBy = true, c.By
	return models.ControlResult{Status: d.status}
}

func (d *deployment) resume(_ workflow.Context, c models.ControlInput) models.ControlResult {
	d.paused = false
	return models.ControlResult{Status: d.status}
}

func (d *deployment) abort(_ workflow.Context, c models.ControlInput) models.ControlResult {
	d.stop = &stopRequest{Kind: "abort", By: c.By, Reason: c.Reason}
	return models.ControlResult{Status: d.status}
}

func (d *deployment) requestRollback(_ workflow.Context, c models.ControlInput) models.ControlResult {
	d.stop = &stopRequest{Kind: "rollback", By: c.By, Reason: c.Reason}
	return models.ControlResult{Status: d.status}
}

func (s *stopRequest) String() string {
	switch s.Kind {
	case "abort", "rollback":
		msg := s.Kind + " requested by " + s.By
		if s.Reason != "" {
			msg += ": " + s.Reason
		}
		return msg
	}
	return s.Reason
}

// ---- the run

func (d *deployment) run(ctx workflow.Context) (models.DeploymentResult, error) {
	if status, outcome := d.planStep(ctx); status != "" {
		return d.finish(ctx, status, outcome)
	}
	if len(d.plan.AheadInQueue) > 0 {
		// Wait for the earlier deployments, then plan again: what runs on
		// the targets, and so the scenario and the risk, may have changed.
		if !d.awaitLane(ctx) {
			return d.finishStopped(ctx, "before its turn came")
		}
		if status, outcome := d.planStep(ctx); status != "" {
			return d.finish(ctx, status, outcome)
		}
	}
	waves := len(d.plan.Waves)
	d.transition(ctx, models.StatusAwaitingApproval, fmt.Sprintf("planned %s of %s: %d targets in %d waves, risk %s (%d)",
		d.plan.Scenario, d.plan.ReleaseVersion, d.targetCount(), waves, d.plan.Risk.Level, d.plan.Risk.Score),
		func(r *activities.RecordInput) {
			r.Plan, r.WaveCount, r.Scenario, r.Data = &d.plan, &waves, &d.plan.Scenario, d.plan.Risk
		})

	if status, outcome := d.awaitApproval(ctx); status != "" {
		return d.finish(ctx, status, outcome)
	}
	if !d.awaitSchedule(ctx) {
		return d.finishStopped(ctx, "before its rollout started")
	}
	if !d.execute(ctx) {
		return d.rollback(ctx)
	}
	if d.plan.Scenario == models.ScenarioDecommission {
		d.commit(ctx, activities.ReleaseRef{})
		return d.finish(ctx, models.StatusCompleted, fmt.Sprintf("decommissioned from %d targets (data retained: %t)", d.targetCount(), d.in.RetainData))
	}
	if !d.validate(ctx) {
		return d.rollback(ctx)
	}
	return d.observe(ctx)
}

// planStep runs the planning activity. It returns "" on success, else the
// final status and why.
func (d *deployment) planStep(ctx workflow.Context) (models.Status, string) {
	var pr activities.PlanResult
	err := workflow.ExecuteActivity(planCtx(ctx), a.Plan, d.in).Get(ctx, &pr)
	if err != nil {
		var appErr *temporal.ApplicationError
		switch {
		case isCancel(ctx, err):
			return models.StatusCancelled, "cancelled while planning"
		case errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeEntryCriteria:
			return models.StatusRejected, appErr.Message()
		case errors.As(err, &appErr):
			return models.StatusFailed, "planning failed: " + appErr.Message()
		}
		return models.StatusFailed, "planning failed: " + err.Error()
	}
	d.plan = pr.Plan
	d.release = activities.ReleaseRef{ID: d.in.ReleaseID, Version: pr.Plan.ReleaseVersion, Artifacts: pr.Artifacts}
	return "", ""
}

// awaitApproval waits for a quorum, a rejection, an abort or the expiry.
// It returns "" when approved, else the final status and why.
func (d *deployment) awaitApproval(ctx workflow.Context) (models.Status, string) {
	policy := d.plan.Policy
	if policy.ApprovalsRequired == 0 {
		_, _ = d.vote(ctx, models.DecisionApprove, models.VoteInput{Approver: "policy:" + d.plan.Environment,
			Comment: "the policy of " + d.plan.Environment + " requires no approval"}, "policy")
		return "", ""
	}
	ok, err := workflow.AwaitWithTimeout(ctx, policy.ApprovalExpiry.D(), func() bool {
		return d.approvedCount() >= policy.ApprovalsRequired || d.rejection != nil || d.stop != nil
	})
	switch {
	case err != nil || isCancel(ctx, nil):
		return models.StatusCancelled, "cancelled while awaiting approval"
	case d.rejection != nil:
		msg := "rejected by " + d.rejection.Approver
		if d.rejection.Comment != "" {
			msg += ": " + d.rejection.Comment
		}
		return models.StatusRejected, msg
	case d.stop != nil:
		return models.StatusCancelled, d.stop.String() + " while awaiting approval"
	case !ok:
		return models.StatusExpired, fmt.Sprintf("approval expired after %s with %d of %d approvals",
			policy.ApprovalExpiry.D(), d.approvedCount(), policy.ApprovalsRequired)
	}
	return "", ""
}

// awaitLane waits until no earlier deployment of the same application to
// the same environment is active: first in, first out, never interleaved.
func (d *deployment) awaitLane(ctx workflow.Context) bool {
	in := activities.LaneInput{DeploymentID: d.in.DeploymentID, ApplicationID: d.in.ApplicationID, EnvironmentID: d.in.EnvironmentID}
	for recheck := laneRecheck; ; recheck = min(2*recheck, laneRecheckMax) {
		d.laneFree = false // before asking, so that a signal sent meanwhile is not lost
		var ahead []string
		if err := workflow.ExecuteActivity(recordCtx(ctx), a.LaneAhead, in).Get(ctx, &ahead); err != nil {
			if isCancel(ctx, err) {
				d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
			} else {
				d.stop = &stopRequest{Kind: "failure", Reason: "could not look up the deployments ahead: " + rootMessage(err)}
			}
			return false
		}
		if len(ahead) == 0 {
			return true
		}
		if d.status != models.StatusQueued {
			d.transition(ctx, models.StatusQueued, fmt.Sprintf("waiting for %d earlier deployment(s) of %s to %s: %s",
				len(ahead), d.plan.Application, d.plan.Environment, strings.Join(ahead, ", ")),
				func(r *activities.RecordInput) { r.Plan, r.Scenario = &d.plan, &d.plan.Scenario })
		}
		if _, err := workflow.AwaitWithTimeout(ctx, recheck, func() bool { return d.laneFree || d.stop != nil }); err != nil || d.stop != nil {
			return false
		}
	}
}

// awaitSchedule waits for not_before and for an open change window outside
// any freeze.
func (d *deployment) awaitSchedule(ctx workflow.Context) bool {
	now := workflow.Now(ctx)
	start := now
	if d.in.NotBefore != nil && d.in.NotBefore.After(start) {
		start = *d.in.NotBefore
	}
	open := d.plan.Policy.NextOpen(start)
	if open.IsZero() {
		d.stop = &stopRequest{Kind: "failure", Reason: "no change window opens outside a freeze in the next 60 days"}
		return false
	}
	msg := "scheduled to start now"
	if open.After(now) {
		msg = "scheduled to start at " + open.UTC().Format(time.RFC3339) + " (not_before and the change windows)"
	}
	d.transition(ctx, models.StatusScheduled, msg, nil)
	if open.After(now) {
		if _, err := workflow.AwaitWithTimeout(ctx, open.Sub(now), func() bool { return d.stop != nil }); err != nil {
			d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
			return false
		}
	}
	return d.stop == nil
}

// execute rolls the waves out in order. It returns false when the rollout
// must be compensated (d.stop says why).
func (d *deployment) execute(ctx workflow.Context) bool {
	d.trackDeployed = workflow.GetVersion(ctx, changeTrackDeployed, workflow.DefaultVersion, 1) >= 1
	d.deployed = map[string]bool{}
	strategy := d.plan.Strategy
	d.transition(ctx, models.StatusDeploying, fmt.Sprintf("rolling out %s in %d waves (%s)",
		d.plan.ReleaseVersion, len(d.plan.Waves), strategy.Kind), nil)
	for i, wave := range d.plan.Waves {
		if !d.waitWhilePaused(ctx) || d.stop != nil {
			return false
		}
		if i > 0 && !d.waitForWindow(ctx) {
			return false
		}
		d.waveIndex = i + 1
		idx := d.waveIndex
		d.progress(ctx, fmt.Sprintf("wave %d of %d: %s", idx, len(d.plan.Waves), names(wave)), func(r *activities.RecordInput) { r.WaveIndex = &idx })
		failed := d.runWave(ctx, i+1, wave)
		if isCancel(ctx, nil) {
			d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
		}
		if d.stop != nil {
			return false
		}
		if len(failed) > strategy.MaxFailures {
			d.stop = &stopRequest{Kind: "failure", Reason: fmt.Sprintf("wave %d: %d target(s) failed, more than max_failures %d: %s",
				i+1, len(failed), strategy.MaxFailures, strings.Join(failed, "; "))}
			return false
		}
		if len(failed) > 0 {
			d.progress(ctx, fmt.Sprintf("wave %d: %d target(s) failed, within max_failures %d: %s",
				i+1, len(failed), strategy.MaxFailures, strings.Join(failed, "; ")), nil)
		}
		// Between waves, the wave's checks run on its targets before the
		// next wave goes: a bad release stops at the first wave. After the
		// last wave the validation stage checks every target. (Version 1 of
		// the workflow; deployments started before it skip them.)
		d.waveChecks = workflow.GetVersion(ctx, changeWaveChecks, workflow.DefaultVersion, 1) >= 1
		last := i == len(d.plan.Waves)-1
		if d.waveChecks && !last && d.plan.Scenario != models.ScenarioDecommission &&
			!d.runChecks(ctx, fmt.Sprintf("wave %d", i+1), d.deployedIn(wave)) {
			return false
		}
		if i < len(d.plan.Waves)-1 && strategy.Bake > 0 {
			d.progress(ctx, fmt.Sprintf("baking %s after wave %d", strategy.Bake.D(), i+1), nil)
			if _, err := workflow.AwaitWithTimeout(ctx, strategy.Bake.D(), func() bool { return d.stop != nil }); err != nil {
				d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
			}
			if d.stop != nil {
				return false
			}
		}
	}
	return true
}

// runWave deploys (or, for a decommission, removes) the wave's targets in
// parallel, at most max_parallel at once, and returns the failures. Each
// success pushes its compensation.
func (d *deployment) runWave(ctx workflow.Context, wave int, targets []models.PlanTarget) []string {
	var failed []string
	decommission := d.plan.Scenario == models.ScenarioDecommission
	undo := func(t models.PlanTarget, lastKnownGood activities.ReleaseRef) compensation {
		if decommission {
			return compensation{Target: t, Wave: wave, To: d.release, Redeploy: true}
		}
		return compensation{Target: t, Wave: wave, To: lastKnownGood}
	}
	d.parallel(ctx, targets, true, func(t models.PlanTarget) workflow.Future {
		if d.trackDeployed {
			// Before it starts: a step that fails or is cancelled half way
			// is undone too (undoing is idempotent).
			d.comps = append(d.comps, undo(t, activities.ReleaseRef{ID: t.LastKnownGoodID}))
		}
		in := d.targetInput(t, wave, d.release, "deploy")
		if decommission {
			return workflow.ExecuteActivity(deployCtx(ctx), a.RemoveTarget, in)
		}
		return workflow.ExecuteActivity(deployCtx(ctx), a.DeployTarget, in)
	}, func(t models.PlanTarget, f workflow.Future) {
		var res activities.TargetResult
		if err := f.Get(ctx, &res); err != nil {
			failed = append(failed, t.Name+": "+rootMessage(err))
			return
		}
		d.deployed[t.ID] = true
		if !d.trackDeployed {
			d.comps = append(d.comps, undo(t, res.LastKnownGood))
		}
	})
	return failed
}

// parallel starts start(t) for each target, at most max_parallel at a
// time, and calls done as each finishes. With honourControls it stops
// starting new ones while paused or stopping.
func (d *deployment) parallel(ctx workflow.Context, targets []models.PlanTarget, honourControls bool,
	start func(models.PlanTarget) workflow.Future, done func(models.PlanTarget, workflow.Future)) {
	limit := max(1, d.plan.Strategy.MaxParallel)
	sel := workflow.NewSelector(ctx)
	next, running := 0, 0
	for next < len(targets) || running > 0 {
		for running < limit && next < len(targets) && !(honourControls && (d.paused || d.stop != nil)) {
			t := targets[next]
			next++
			running++
			sel.AddFuture(start(t), func(f workflow.Future) {
				running--
				done(t, f)
			})
		}
		if running == 0 {
			if d.stop != nil || next >= len(targets) || !d.waitWhilePaused(ctx) {
				return
			}
			continue
		}
		sel.Select(ctx)
	}
}

// waitWhilePaused holds the rollout while it is paused. It returns false
// when the deployment must stop instead.
func (d *deployment) waitWhilePaused(ctx workflow.Context) bool {
	if !d.paused {
		return d.stop == nil
	}
	prev := d.status
	d.transition(ctx, models.StatusPaused, "paused by "+d.pausedBy, nil)
	if err := workflow.Await(ctx, func() bool { return !d.paused || d.stop != nil }); err != nil {
		d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
	}
	if d.stop != nil {
		return false
	}
	d.transition(ctx, prev, "resumed", nil)
	return true
}

// waitForWindow re-checks the change windows and freezes before a wave.
func (d *deployment) waitForWindow(ctx workflow.Context) bool {
	now := workflow.Now(ctx)
	open := d.plan.Policy.NextOpen(now)
	if open.IsZero() {
		d.stop = &stopRequest{Kind: "failure", Reason: "no change window opens outside a freeze in the next 60 days"}
		return false
	}
	if !open.After(now) {
		return true
	}
	d.progress(ctx, "change window closed or freeze: next wave waits until "+open.UTC().Format(time.RFC3339), nil)
	if _, err := workflow.AwaitWithTimeout(ctx, open.Sub(now), func() bool { return d.stop != nil }); err != nil {
		d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
		return false
	}
	return d.stop == nil
}

// validate runs the environment's checks on every target.
func (d *deployment) validate(ctx workflow.Context) bool {
	if d.trackDeployed && !d.waitWhilePaused(ctx) {
		return false
	}
	checks := d.plan.Policy.ValidationChecks
	targets := d.liveTargets()
	d.transition(ctx, models.StatusValidating, fmt.Sprintf("running %d validation check(s) on %d targets", len(checks), len(targets)), nil)
	return d.runChecks(ctx, "validation", targets)
}

// runChecks runs the validation checks on targets in parallel. It returns
// false, with d.stop saying why, when one fails.
func (d *deployment) runChecks(ctx workflow.Context, what string, targets []models.PlanTarget) bool {
	checks := d.plan.Policy.ValidationChecks
	if len(checks) == 0 || len(targets) == 0 {
		return d.stop == nil
	}
	var failed, passed []string
	d.parallel(ctx, targets, false, func(t models.PlanTarget) workflow.Future {
		return workflow.ExecuteActivity(validateCtx(ctx), a.ValidateTarget,
			activities.ValidateInput{TargetInput: d.targetInput(t, d.waveOf(t), d.release, "validate"), Checks: checks})
	}, func(t models.PlanTarget, f workflow.Future) {
		var res activities.ValidateResult
		if err := f.Get(ctx, &res); err != nil {
			failed = append(failed, t.Name+": "+rootMessage(err))
			return
		}
		for _, r := range res.Results {
			if !r.Passed {
				failed = append(failed, fmt.Sprintf("%s: check %s: %s", t.Name, r.Name, r.Message))
			} else {
				passed = append(passed, fmt.Sprintf("%s: %s", t.Name, r.Name))
			}
		}
	})
	if isCancel(ctx, nil) {
		d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
	}
	if len(failed) > 0 && d.stop == nil {
		d.stop = &stopRequest{Kind: "failure", Reason: what + " failed: " + strings.Join(failed, "; ")}
	}
	if d.stop == nil && d.waveChecks {
		slices.Sort(passed)
		d.progress(ctx, fmt.Sprintf("%s checks passed (%s)", what, strings.Join(passed, ", ")), nil)
	}
	return d.stop == nil
}

// deployedIn returns the wave's targets that were deployed (have a compensation).
func (d *deployment) deployedIn(wave []models.PlanTarget) []models.PlanTarget {
	var out []models.PlanTarget
	for _, t := range wave {
		if d.deployed[t.ID] {
			out = append(out, t)
		}
	}
	return out
}

// liveTargets are the targets the release went out to: all of them in runs
// from before "track-deployed", else those whose deploy succeeded.
func (d *deployment) liveTargets() []models.PlanTarget {
	if !d.trackDeployed {
		return d.allTargets()
	}
	var out []models.PlanTarget
	for _, w := range d.plan.Waves {
		out = append(out, d.deployedIn(w)...)
	}
	return out
}

// observe runs early life support: until the point of no return a breach
// or a rollback request rolls back; then the release is committed, breaches
// open incidents, and at the end the exit criteria decide the handover.
func (d *deployment) observe(ctx workflow.Context) (models.DeploymentResult, error) {
	policy := d.plan.Policy
	now := workflow.Now(ctx)
	ponr, els := policy.PointOfNoReturn.D(), policy.EarlyLifeSupport.D()
	if ponr > els {
		ponr = els
	}
	ponrAt, elsEnd := now.Add(ponr).UTC(), now.Add(els).UTC()
	d.ponrAt, d.elsEndsAt = &ponrAt, &elsEnd
	d.transition(ctx, models.StatusEarlyLifeSupport, fmt.Sprintf("early life support until %s; point of no return at %s",
		elsEnd.Format(time.RFC3339), ponrAt.Format(time.RFC3339)),
		func(r *activities.RecordInput) { r.PONRAt, r.ELSEndsAt = &ponrAt, &elsEnd })

	runs, passed := 0, 0
	// Before the point of no return.
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	ponrTimer := workflow.NewTimer(timerCtx, ponr)
	obs := d.startObserve(ctx, ponrAt, true)
	err := workflow.Await(ctx, func() bool {
		return ponrTimer.IsReady() || d.stop != nil || (obs != nil && obs.done && (obs.res.Breached || obs.err != nil))
	})
	cancelTimer()
	if err != nil || isCancel(ctx, nil) {
		d.stop = &stopRequest{Kind: "cancel", By: "temporal", Reason: "the workflow was cancelled"}
	}
	if obs != nil && d.stop == nil && !obs.done {
		// The timer fired; the activity ends on its own at the same moment.
		_, _ = workflow.AwaitWithTimeout(ctx, time.Minute, func() bool { return obs.done })
	}
	if obs != nil {
		obs.cancel()
		runs, passed = obs.res.Runs, obs.res.Passed
		switch {
		case d.stop != nil:
		case obs.done && obs.res.Breached:
			d.stop = &stopRequest{Kind: "breach", Reason: "before the point of no return, " + obs.res.Breach}
		case obs.done && obs.err != nil:
			d.stop = &stopRequest{Kind: "breach", Reason: "observation failed before the point of no return: " + rootMessage(obs.err)}
		}
	}
	if d.stop != nil {
		return d.rollback(ctx)
	}

	// The point of no return.
	d.pastPONR = true
	d.commit(ctx, d.release)

	// After it: observe to the end, fixing forward.
	if rest := elsEnd.Sub(workflow.Now(ctx)); rest > 0 {
		if obs := d.startObserve(ctx, elsEnd, false); obs != nil {
			_ = workflow.Await(ctx, func() bool { return obs.done })
			runs, passed = runs+obs.res.Runs, passed+obs.res.Passed
			if obs.err != nil {
				d.progress(ctx, "observation after the point of no return failed: "+rootMessage(obs.err), nil)
				if d.trackDeployed {
					// Early life support still lasts its time; what could not
					// be observed is not handed over as healthy.
					d.observationFailed = rootMessage(obs.err)
					if rest := elsEnd.Sub(workflow.Now(ctx)); rest > 0 {
						_ = workflow.Sleep(ctx, rest)
					}
				}
			}
		} else {
			_ = workflow.Sleep(ctx, rest)
		}
	}

	var exit activities.ExitResult
	err = workflow.ExecuteActivity(recordCtx(ctx), a.ExitCriteria, activities.ExitInput{DeploymentID: d.in.DeploymentID,
		Criteria: policy.ExitCriteria, ProbeRuns: runs, ProbePassed: passed}).Get(ctx, &exit)
	if err != nil {
		return d.finish(ctx, models.StatusCompletedWithIssues, "exit criteria could not be checked: "+rootMessage(err))
	}
	summary := fmt.Sprintf("%d probe runs, %d passed", runs, passed)
	if d.observationFailed != "" {
		exit.Met, exit.Reasons = false, append(exit.Reasons, "observation failed: "+d.observationFailed)
	}
	if !exit.Met {
		return d.finish(ctx, models.StatusCompletedWithIssues, "not handed over: "+strings.Join(exit.Reasons, "; ")+" ("+summary+")")
	}
	return d.finish(ctx, models.StatusCompleted, "handed over to operations: exit criteria met ("+summary+")")
}

// observation is a running Observe activity.
type observation struct {
	done   bool
	res    activities.ObserveResult
	err    error
	cancel workflow.CancelFunc
}

func (d *deployment) startObserve(ctx workflow.Context, until time.Time, stopOnBreach bool) *observation {
	probes := d.plan.Policy.ObservationProbes
	if len(probes) == 0 {
		return nil
	}
	octx, cancel := workflow.WithCancel(ctx)
	o := &observation{cancel: cancel}
	in := activities.ObserveInput{DeploymentID: d.in.DeploymentID, Application: d.plan.Application, Environment: d.plan.Environment,
		Targets: d.liveTargets(), Release: d.release, Probes: probes, Until: until, StopOnBreach: stopOnBreach,
		IncidentSeverity: d.plan.Policy.ExitCriteria.MaxOpenIncidentSeverity}
	f := workflow.ExecuteActivity(observeCtx(octx, until.Sub(workflow.Now(ctx))), a.Observe, in)
	workflow.Go(ctx, func(ctx workflow.Context) {
		o.err = f.Get(ctx, &o.res)
		o.done = true
	})
	return o
}

// commit makes the release each target's last known good and drops the
// compensations: from here on, problems are fixed forward.
func (d *deployment) commit(ctx workflow.Context, rel activities.ReleaseRef) {
	ids := make([]string, 0, d.targetCount())
	for _, t := range d.liveTargets() {
		ids = append(ids, t.ID)
	}
	_ = workflow.ExecuteActivity(recordCtx(ctx), a.CommitLastKnownGood, activities.CommitInput{
		DeploymentID: d.in.DeploymentID, TargetIDs: ids, ReleaseID: rel.ID, Version: rel.Version}).Get(ctx, nil)
	d.comps = nil
	if rel.ID == "" {
		d.progress(ctx, "last known good cleared on every target", nil)
		return
	}
	d.progress(ctx, fmt.Sprintf("point of no return passed: %s is the last known good of %d targets", rel.Version, len(ids)), nil)
}

// rollback runs the compensations newest first, in a disconnected context
// so that a cancelled deployment still rolls back.
func (d *deployment) rollback(ctx workflow.Context) (models.DeploymentResult, error) {
	reason := "rollout stopped"
	if d.stop != nil {
		reason = d.stop.String()
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	d.transition(dctx, models.StatusRollingBack, fmt.Sprintf("rolling back %d target(s) to their last known good: %s", len(d.comps), reason), nil)
	var failed []string
	for i := len(d.comps) - 1; i >= 0; i-- {
		c := d.comps[i]
		var err error
		if c.Redeploy {
			err = workflow.ExecuteActivity(deployCtx(dctx), a.DeployTarget, d.targetInput(c.Target, c.Wave, c.To, "undo-remove")).Get(dctx, nil)
		} else {
			err = workflow.ExecuteActivity(deployCtx(dctx), a.RollbackTarget, d.targetInput(c.Target, c.Wave, c.To, "rollback")).Get(dctx, nil)
		}
		if err != nil {
			failed = append(failed, c.Target.Name+": "+rootMessage(err))
		}
	}
	n := len(d.comps)
	d.comps = nil
	if len(failed) > 0 {
		return d.finish(dctx, models.StatusFailed, fmt.Sprintf("%s; rollback incomplete, %d of %d target(s) could not be rolled back: %s",
			reason, len(failed), n, strings.Join(failed, "; ")))
	}
	return d.finish(dctx, models.StatusRolledBack, fmt.Sprintf("%s; %d target(s) rolled back to their last known good", reason, n))
}

// finishStopped ends a deployment that stopped before anything was deployed.
func (d *deployment) finishStopped(ctx workflow.Context, when string) (models.DeploymentResult, error) {
	if d.stop != nil && d.stop.Kind == "failure" {
		return d.finish(ctx, models.StatusFailed, d.stop.Reason)
	}
	reason := "cancelled " + when
	if d.stop != nil {
		reason = d.stop.String() + " " + when
	}
	return d.finish(ctx, models.StatusCancelled, reason)
}

// finish records the final status, wakes the next deployment in the lane,
// and waits for running handlers before the workflow returns.
func (d *deployment) finish(ctx workflow.Context, status models.Status, outcome string) (models.DeploymentResult, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	d.outcome = outcome
	// The final record must land, however long the database is away: the
	// lane reads it, and the next deployment waits for it.
	d.finishing = true
	d.transition(dctx, status, outcome, func(r *activities.RecordInput) { r.Outcome = &outcome })
	var next string
	err := workflow.ExecuteActivity(recordCtx(dctx), a.NextInLane, activities.LaneInput{
		DeploymentID: d.in.DeploymentID, ApplicationID: d.in.ApplicationID, EnvironmentID: d.in.EnvironmentID}).Get(dctx, &next)
	if err == nil && next != "" {
		// Best effort: the next one also re-checks on its own.
		_ = workflow.SignalExternalWorkflow(dctx, next, "", models.SignalLaneFree, nil).Get(dctx, nil)
	}
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) && d.pendingSignals == 0 })
	return models.DeploymentResult{Status: status, Outcome: outcome}, nil
}

// ---- recording

// transition moves the deployment to status, upserts the search attributes
// and records the step. An illegal transition is a bug: it panics, which
// fails the workflow task until the code is fixed, and loses nothing.
func (d *deployment) transition(ctx workflow.Context, status models.Status, message string, with func(*activities.RecordInput)) {
	if !d.status.CanBecome(status) {
		panic(fmt.Sprintf("illegal transition of deployment %s from %s to %s", d.in.DeploymentID, d.status, status))
	}
	d.status = status
	_ = workflow.UpsertTypedSearchAttributes(ctx, models.KeyStage.ValueSet(string(status)))
	d.record(ctx, "status", &status, message, with)
}

// progress records a step that does not change the status.
func (d *deployment) progress(ctx workflow.Context, message string, with func(*activities.RecordInput)) {
	d.record(ctx, "progress", nil, message, with)
}

func (d *deployment) record(ctx workflow.Context, typ string, status *models.Status, message string, with func(*activities.RecordInput)) {
	d.step++
	in := activities.RecordInput{DeploymentID: d.in.DeploymentID, Key: fmt.Sprintf("step/%d", d.step), Status: status, Type: models.EventType(typ), Message: message}
	if with != nil {
		with(&in)
	}
	opts := recordCtx
	if d.finishing {
		opts = finalCtx
	}
	if err := workflow.ExecuteActivity(opts(ctx), a.Record, in).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("record step", "deployment", d.in.DeploymentID, "step", in.Key, "error", err)
	}
}

// ---- helpers

func (d *deployment) targetInput(t models.PlanTarget, wave int, rel activities.ReleaseRef, step string) activities.TargetInput {
	return activities.TargetInput{DeploymentID: d.in.DeploymentID, Application: d.plan.Application, Environment: d.plan.Environment,
		Target: t, Wave: wave, Release: rel, RetainData: d.in.RetainData,
		Key: d.in.DeploymentID + "/" + t.ID + "/" + step}
}

func (d *deployment) allTargets() []models.PlanTarget {
	var all []models.PlanTarget
	for _, w := range d.plan.Waves {
		all = append(all, w...)
	}
	return all
}

func (d *deployment) targetCount() int { return len(d.allTargets()) }

func (d *deployment) waveOf(t models.PlanTarget) int {
	for i, w := range d.plan.Waves {
		for _, x := range w {
			if x.ID == t.ID {
				return i + 1
			}
		}
	}
	return 0
}

func names(ts []models.PlanTarget) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return strings.Join(out, ", ")
}

func isCancel(ctx workflow.Context, err error) bool {
	return temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled)
}

// rootMessage is the innermost message of an activity error, for people.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	return err.Error()
}
