package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/workflows/legacy"
)

// a references the activities by method; the worker registers the real struct.
var a *activities.Activities

// Workflow changes that alter the history of a running deployment, for
// workflow.GetVersion. The saved histories in testdata/histories replay
// across each (TestReplaySavedHistories).
const (
	// changeShape2 is this workflow: signals in arrival order, the live
	// policy at every gate, bookkeeping as local activities, the run id in
	// every key. Runs started before it finish on legacy.Deployment, which
	// is frozen. Delete that branch and workflows/legacy when no deployment
	// started before it can still run: the longest wait is approval_expiry,
	// plus the lane, plus early_life_support; `temporal workflow list
	// --query 'ExecutionStatus="Running"'` on a worker of this version
	// tells, and so do the legacy saved histories (*.legacy-*.json).
	changeShape2 = "shape-2"
)

// Deployment is the deployment workflow: plan, lane, approval, schedule,
// waves, validation, point of no return and early life support, with
// compensations back to the last known good release.
func Deployment(ctx workflow.Context, in models.DeploymentInput) (models.DeploymentResult, error) {
	if workflow.GetVersion(ctx, changeShape2, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return legacy.Deployment(ctx, in)
	}
	d := newDeployment(ctx, in)
	if err := d.setup(ctx); err != nil {
		return models.DeploymentResult{}, err
	}
	workflow.GetMetricsHandler(ctx).Counter(models.MetricDeploymentsStarted).Inc(1)
	return d.run()
}

// stopRequest is why the rollout must stop: an abort or rollback from a
// person, a failure, a probe breach, or the workflow's cancellation.
type stopRequest struct {
	Kind   models.StopKind `json:"kind"`
	By     string          `json:"by,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

func (s *stopRequest) String() string {
	switch s.Kind {
	case models.StopAbort, models.StopRollback:
		msg := string(s.Kind) + " requested by " + s.By
		if s.Reason != "" {
			msg += ": " + s.Reason
		}
		return msg
	}
	return s.Reason
}

// compensation undoes one target's change: back to To (a release by ID,
// or by version when it ran before Transit knew the target; remove when
// To is empty), or, for a decommission, the removed release put back.
type compensation struct {
	Target   models.PlanTarget     `json:"target"`
	Wave     int                   `json:"wave"`
	To       activities.ReleaseRef `json:"to"`
	Redeploy bool                  `json:"redeploy,omitempty"`
}

// leftBehind is a target the rollout did not bring to the release, and
// what became of it.
type leftBehind struct {
	Name   string `json:"name"`
	Why    string `json:"why"`
	Undone string `json:"undone"` // what the undo did, or why it failed
}

// state is everything the deployment knows: serialisable, apart from the
// handles (contexts, the inbox) that the deployment struct holds.
type state struct {
	Status    models.Status         `json:"status"`
	Plan      models.Plan           `json:"plan"`
	Release   activities.ReleaseRef `json:"release"`
	Paused    bool                  `json:"paused"`
	PausedBy  string                `json:"paused_by,omitempty"`
	PauseWhy  string                `json:"pause_why,omitempty"`
	Hold      *models.Hold          `json:"hold,omitempty"`
	Stop      *stopRequest          `json:"stop,omitempty"`
	Approvals []models.Approval     `json:"approvals"`
	Rejection *models.Approval      `json:"rejection,omitempty"`
	WaveIndex int                   `json:"wave_index"`
	PastPONR  bool                  `json:"past_ponr"`
	PONRAt    *time.Time            `json:"ponr_at,omitempty"`
	ELSEndsAt *time.Time            `json:"els_ends_at,omitempty"`
	// Comps is the compensation stack: newest last.
	Comps []compensation `json:"comps,omitempty"`
	// Live are the targets that run the release (deployed, not undone).
	Live []models.PlanTarget `json:"live,omitempty"`
	// Left are the targets that failed.
	Left    []leftBehind `json:"left,omitempty"`
	Outcome string       `json:"outcome,omitempty"`
}

// deployment is one run of the workflow: its state and its handles.
type deployment struct {
	state
	in    models.DeploymentInput
	runID string
	// work is the workflow's context: cancelled when the workflow is.
	work workflow.Context
	// safe is never cancelled: waits, records, compensations and the end
	// go on it, so that a cancelled deployment still rolls back and records.
	safe  workflow.Context
	inbox *inbox
	rec   recorder
	seq   int
	// cancelSeen: the workflow's cancellation was turned into a stop.
	cancelSeen bool
	// laneFree and policyChanged are set by their signals.
	laneFree, policyChanged bool
	// voting holds the approvers whose groups are being looked up.
	voting map[string]bool
	// liveSet indexes Live; validatedSet holds the targets whose checks
	// passed between waves.
	liveSet, validatedSet map[string]bool
	// ignoredCount counts the signals ignored in this run.
	ignoredCount int
	// waveIdx maps a target to its wave (see waveOf).
	waveIdx map[string]int
	// answered is the timer that what an Update caused waits for (see
	// answerFirst).
	answered workflow.Future
	// passedLast is the last hold an emergency change was recorded passing.
	passedLast string
}

func newDeployment(ctx workflow.Context, in models.DeploymentInput) *deployment {
	safe, _ := workflow.NewDisconnectedContext(ctx)
	d := &deployment{in: in, work: ctx, safe: safe, inbox: inboxOf(ctx), voting: map[string]bool{},
		liveSet: map[string]bool{}, validatedSet: map[string]bool{}, runID: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	d.Status = models.StatusPlanning
	d.Approvals = []models.Approval{}
	d.inbox.claim(ctx)
	return d
}

// setup registers the query and the updates (each with a validator). The
// signals that mirror the updates arrive in the inbox.
func (d *deployment) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, models.QueryStatus, d.query); err != nil {
		return err
	}
	for _, decision := range []string{models.DecisionApprove, models.DecisionReject} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, decision,
			func(ctx workflow.Context, v models.VoteInput) (models.VoteResult, error) {
				return d.voteUpdate(ctx, decision, v)
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, v models.VoteInput) error {
				return d.checkVoteUpdate(ctx, decision, v)
			}})
		if err != nil {
			return err
		}
	}
	for _, name := range models.ControlNames {
		err := workflow.SetUpdateHandlerWithOptions(ctx, name,
			func(ctx workflow.Context, c models.ControlInput) (models.ControlResult, error) {
				via := d.requestVia(ctx, name, c.By, nil, c.Reason, c.Proof)
				if via != models.ViaAPI {
					if err := d.mayControl(ctx, c.By); err != nil {
						return models.ControlResult{}, err
					}
					// The look-up let other handlers run: check again.
					if err := d.checkControl(name, c); err != nil {
						return models.ControlResult{}, err
					}
				}
				d.answerFirst()
				return d.control(name, c, via), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, c models.ControlInput) error {
				return d.checkControl(name, c)
			}})
		if err != nil {
			return err
		}
	}
	return nil
}

// query answers the status query.
func (d *deployment) query() (models.DeploymentState, error) {
	st := models.DeploymentState{
		DeploymentID: d.in.DeploymentID, Status: d.Status, Scenario: d.Plan.Scenario, Paused: d.Paused, Hold: d.Hold,
		WaveIndex: d.WaveIndex, WaveCount: len(d.Plan.Waves), Approvals: d.Approvals, Required: d.required(),
		PastPONR: d.PastPONR, PONRAt: d.PONRAt, ELSEndsAt: d.ELSEndsAt, Outcome: d.Outcome,
	}
	for _, l := range d.Left {
		st.Failed = append(st.Failed, l.Name)
	}
	return st, nil
}

// run is the deployment, step by step.
func (d *deployment) run() (models.DeploymentResult, error) {
	if status, outcome := d.planStep(); status != "" {
		return d.finish(status, outcome)
	}
	if len(d.Plan.AheadInQueue) > 0 {
		// Wait for the earlier deployments, then plan again: what runs on
		// the targets, and so the scenario and the risk, may have changed.
		if !d.awaitLane() {
			return d.finishStopped("before its turn came")
		}
		if status, outcome := d.planStep(); status != "" {
			return d.finish(status, outcome)
		}
	}
	waves := len(d.Plan.Waves)
	planned := fmt.Sprintf("planned %s of %s: %s in %s, risk %s (%d)",
		d.Plan.Scenario, d.Plan.ReleaseVersion, models.Plural(d.targetCount(), "target"), models.Plural(waves, "wave"),
		d.Plan.Risk.Level, d.Plan.Risk.Score)
	if e := d.in.Emergency; e != nil {
		n, groups := d.Plan.Policy.EmergencyQuorum()
		planned += fmt.Sprintf("; %s, needing %s from %s, and passing freezes and closed windows", e,
			models.Plural(n, "emergency approval"), strings.Join(groups, ", "))
	}
	d.transition(models.StatusAwaitingApproval, planned,
		func(r *activities.RecordInput) {
			r.WaveCount, r.Scenario, r.Data = &waves, &d.Plan.Scenario, d.Plan.Risk
		})

	if status, outcome := d.awaitApproval(); status != "" {
		return d.finish(status, outcome)
	}
	d.transition(models.StatusScheduled, "approved: waiting for not_before, a change window and the lane", nil)
	if !d.gate() {
		return d.finishStopped("before its rollout started")
	}
	if !d.rollout() {
		return d.rollback()
	}
	if d.Plan.Scenario == models.ScenarioDecommission {
		d.commit(activities.ReleaseRef{})
		return d.finishRollout(fmt.Sprintf("decommissioned %s from %s (data retained: %t)",
			d.Plan.ReleaseVersion, models.Plural(len(d.Live), "target"), d.in.RetainData))
	}
	if !d.validate() {
		return d.rollback()
	}
	return d.observe()
}

// planStep runs the planning activity. It returns "" on success, else the
// final status and why.
func (d *deployment) planStep() (models.Status, string) {
	var pr activities.PlanResult
	f := workflow.ExecuteActivity(planCtx(d.work, "plan: ask each target what runs there, group them in waves, score the risk"), a.Plan, d.in)
	d.await(f.IsReady)
	if err := f.Get(d.safe, &pr); err != nil {
		var appErr *temporal.ApplicationError
		switch {
		case isCancel(err) || d.cancelSeen:
			return models.StatusCancelled, "cancelled while planning"
		case errors.As(err, &appErr) && (appErr.Type() == models.ErrTypeEntryCriteria || appErr.Type() == models.ErrTypeRefused):
			return models.StatusRejected, appErr.Message()
		}
		return models.StatusFailed, "planning failed: " + rootMessage(err)
	}
	d.Plan, d.waveIdx = pr.Plan, nil
	d.Release = activities.ReleaseRef{ID: d.in.ReleaseID, Version: pr.Plan.ReleaseVersion, Artifacts: pr.Artifacts}
	return "", ""
}

// awaitApproval waits for a quorum, a rejection, an abort or the expiry.
// It returns "" when approved, else the final status and why.
func (d *deployment) awaitApproval() (models.Status, string) {
	policy := d.Plan.Policy
	if ok, why := policy.StandardChange.Matches(d.Plan); ok && d.in.Emergency == nil &&
		workflow.GetVersion(d.safe, versionStandardChange, workflow.DefaultVersion, 1) == 1 {
		// Pre-approved: the policy approves it, and says by which rule.
		d.applyVote(models.DecisionApprove, models.VoteInput{Approver: "policy:standard-change",
			Comment: why + " (the standard_change rule of " + d.Plan.Environment + ")"}, models.ViaPolicy)
		return "", ""
	}
	if d.required() == 0 {
		d.applyVote(models.DecisionApprove, models.VoteInput{Approver: "policy:" + d.Plan.Environment,
			Comment: "the policy of " + d.Plan.Environment + " requires no approval"}, models.ViaPolicy)
		return "", ""
	}
	tctx, cancel := workflow.WithCancel(d.work)
	defer cancel()
	expiry := workflow.NewTimerWithOptions(tctx, policy.ApprovalExpiry.D(), workflow.TimerOptions{Summary: "approval expires"})
	d.await(func() bool {
		return d.approved() || d.Rejection != nil || d.Stop != nil || expiry.IsReady()
	})
	switch {
	case d.Rejection != nil:
		msg := "rejected by " + d.Rejection.Approver
		if d.Rejection.Comment != "" {
			msg += ": " + d.Rejection.Comment
		}
		return models.StatusRejected, msg
	case d.approved():
		return "", ""
	case d.Stop != nil && d.Stop.Kind == models.StopFailure:
		return models.StatusFailed, d.Stop.String()
	case d.Stop != nil:
		return models.StatusCancelled, d.Stop.String() + " while awaiting approval"
	}
	return models.StatusExpired, fmt.Sprintf("approval expired after %s with %d of %d approvals",
		policy.ApprovalExpiry.D(), d.approvedCount(), d.required())
}

// versionStandardChange is when a policy's standard_change began to approve
// the deployments it matches (before it, the field did not exist).
const versionStandardChange = "standard-change"

func (d *deployment) approved() bool {
	return d.Status == models.StatusAwaitingApproval && d.Rejection == nil && d.approvedCount() >= d.required()
}

// required is the quorum: the policy's, or for an emergency change its
// emergency policy's.
func (d *deployment) required() int {
	if d.in.Emergency != nil {
		n, _ := d.Plan.Policy.EmergencyQuorum()
		return n
	}
	return d.Plan.Policy.ApprovalsRequired
}

// approverGroups are who may approve (none: anyone signed in); a role is
// named as models.RolePrefix+role.
func (d *deployment) approverGroups() []string {
	if d.in.Emergency != nil {
		_, groups := d.Plan.Policy.EmergencyQuorum()
		return groups
	}
	return d.Plan.Policy.ApproverGroups
}

func (d *deployment) approvedCount() int {
	n := 0
	for _, ap := range d.Approvals {
		if ap.Decision == models.DecisionApprove {
			n++
		}
	}
	return n
}

// A queued deployment is woken by a lane_free signal from the one ahead. In
// case that signal is lost, it also looks again after laneRecheck, doubling
// up to laneRecheckMax (and back to laneRecheck after each signal), so
// that a wait of a day adds a few dozen events to the history.
const (
	laneRecheck    = 30 * time.Second
	laneRecheckMax = time.Hour
)

// awaitLane waits until no earlier deployment of the same application to
// the same environment is active: first in, first out, never interleaved.
func (d *deployment) awaitLane() bool {
	in := activities.LaneInput{DeploymentID: d.in.DeploymentID, ApplicationID: d.in.ApplicationID, EnvironmentID: d.in.EnvironmentID}
	recheck := laneRecheck
	for {
		d.laneFree = false // before asking, so that a signal sent meanwhile is not lost
		var ahead []string
		f := workflow.ExecuteLocalActivity(bookkeepingCtx(d.safe, "look up the deployments ahead in the lane"), a.LaneAhead, in)
		d.await(f.IsReady)
		if err := f.Get(d.safe, &ahead); err != nil {
			d.requestStop(stopRequest{Kind: models.StopFailure, Reason: "could not look up the deployments ahead: " + rootMessage(err)})
		}
		if d.Stop != nil {
			return false
		}
		if len(ahead) == 0 {
			d.setHold(nil)
			return true
		}
		// The lane's, and with on_conflict: wait, those of other lanes
		// that share its targets (activities.LaneAhead).
		which := fmt.Sprintf("of %s to %s", d.Plan.Application, d.Plan.Environment)
		if d.Plan.Policy.OnConflict == models.OnConflictWait {
			which += ", or sharing targets with it (on_conflict: wait)"
		}
		hold := &models.Hold{Kind: models.HoldQueued, Reason: fmt.Sprintf("waiting for %s to end first (%s): %s",
			models.Plural(len(ahead), "earlier deployment"), which, joinMax(ahead, 10))}
		if d.Status != models.StatusQueued {
			d.transition(models.StatusQueued, hold.Reason, func(r *activities.RecordInput) {
				r.Scenario, r.SetHold, r.Hold = &d.Plan.Scenario, true, hold
			})
			d.Hold = hold
		} else {
			d.setHold(hold)
		}
		if d.sleep(recheck, "look at the lane again", func() bool { return d.laneFree }) {
			recheck = min(2*recheck, laneRecheckMax)
		} else {
			recheck = laneRecheck
		}
		if d.Stop != nil {
			return false
		}
	}
}

// gate holds the rollout until it may go on: not paused, after not_before,
// inside a change window and outside every freeze of the environment's
// policy as it is now, and with no other rollout in the lane. It is passed
// before every wave, and after every pause. It returns false when the
// deployment must stop instead.
func (d *deployment) gate() bool {
	in := activities.GateInput{DeploymentID: d.in.DeploymentID, ApplicationID: d.in.ApplicationID,
		EnvironmentID: d.in.EnvironmentID, NotBefore: d.in.NotBefore, Emergency: d.in.Emergency != nil}
	for {
		if !d.waitWhilePaused() {
			return false
		}
		d.policyChanged = false
		var g activities.GateResult
		f := workflow.ExecuteLocalActivity(bookkeepingCtx(d.safe, "check the change windows and freezes of "+d.Plan.Environment), a.Gate, in)
		d.await(f.IsReady)
		if err := f.Get(d.safe, &g); err != nil {
			g.Hold = &models.Hold{Kind: models.HoldWindow, Reason: "the environment's windows and freezes could not be read: " + rootMessage(err)}
		}
		if d.Stop != nil {
			return false
		}
		if g.Open {
			d.setHold(nil)
			if g.Passed != "" && g.Passed != d.passedLast {
				// An emergency change through a freeze or a closed window.
				d.passedLast = g.Passed
				d.progress(g.Passed, nil)
			}
			return true
		}
		d.setHold(g.Hold)
		// Until the hold ends (a freeze, a window, not_before), or until the
		// policy changes, a pause, or a stop. A hold is looked at again at
		// least every gateRecheck, in case a policy_changed signal was lost
		// (a freeze lifted early).
		wait := gateRecheck
		if g.Hold.Until != nil {
			wait = min(gateRecheck, max(time.Second, g.Hold.Until.Sub(workflow.Now(d.work))))
		}
		d.sleep(wait, holdSummary(g.Hold), func() bool { return d.policyChanged || d.Paused })
		if d.Stop != nil {
			return false
		}
	}
}

// gateRecheck is how often a hold is looked at again, at the least.
const gateRecheck = 6 * time.Hour

func holdSummary(h *models.Hold) string {
	switch h.Kind {
	case models.HoldNotBefore:
		return "not before " + h.Until.UTC().Format(time.RFC3339)
	case models.HoldFreeze:
		return models.Cut(h.Reason, 120)
	case models.HoldWindow:
		if h.Until != nil {
			return "change window opens " + h.Until.UTC().Format(time.RFC3339)
		}
		return "waiting for a change window"
	}
	return models.Cut(h.Reason, 120)
}

// waitWhilePaused holds the deployment while it is paused. It returns false
// when the deployment must stop instead.
func (d *deployment) waitWhilePaused() bool {
	if !d.Paused || d.Stop != nil {
		return d.Stop == nil
	}
	prev := d.Status
	msg := "paused by " + d.PausedBy
	if d.PauseWhy != "" {
		msg += ": " + d.PauseWhy
	}
	hold := &models.Hold{Kind: models.HoldPaused, Reason: msg}
	d.transition(models.StatusPaused, msg, func(r *activities.RecordInput) { r.SetHold, r.Hold = true, hold })
	d.Hold = hold
	d.await(func() bool { return !d.Paused || d.Stop != nil })
	if d.Stop != nil {
		return false
	}
	d.transition(prev, "resumed", func(r *activities.RecordInput) { r.SetHold, r.Hold = true, nil })
	d.Hold = nil
	return true
}

// setHold records what holds the deployment when that changed.
func (d *deployment) setHold(h *models.Hold) {
	if sameHold(d.Hold, h) {
		return
	}
	d.Hold = h
	d.showDetails()
	msg := "no longer held"
	if h != nil {
		msg = "held: " + h.Reason
	}
	d.record(activities.RecordInput{Type: models.EventHold, Message: msg, SetHold: true, Hold: h})
}

func sameHold(x, y *models.Hold) bool {
	switch {
	case x == nil || y == nil:
		return x == y
	case x.Kind != y.Kind || x.Reason != y.Reason:
		return false
	case x.Until == nil || y.Until == nil:
		return x.Until == y.Until
	}
	return x.Until.Equal(*y.Until)
}
