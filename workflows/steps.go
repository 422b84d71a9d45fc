package workflows

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
)

// step is one target's step: a change, a check or an undo. Steps are made
// from a StepsInput (see StepsInput.step), in this workflow and in a
// child alike.
type step struct {
	Kind    stepKind
	Input   activities.TargetInput
	Checks  []models.CheckSpec
	Summary string
}

type stepKind string

const (
	stepDeploy   stepKind = "deploy"
	stepRemove   stepKind = "remove"
	stepRollback stepKind = "rollback"
	// stepPutBack puts a removed release back (a decommission's undo).
	stepPutBack  stepKind = "put_back"
	stepValidate stepKind = "validate"
)

// stepOutcome is how a step ended.
type stepOutcome struct {
	// Started is false for a step that a stop kept from starting.
	Started   bool                      `json:"started"`
	Cancelled bool                      `json:"cancelled,omitempty"`
	Err       string                    `json:"err,omitempty"`
	Result    activities.TargetResult   `json:"result,omitzero"`
	Checks    activities.ValidateResult `json:"checks,omitzero"`
}

// startStep starts the activity of one step.
func startStep(ctx workflow.Context, s step) workflow.Future {
	switch s.Kind {
	case stepValidate:
		return workflow.ExecuteActivity(withSummary(validateCtx(ctx), s.Summary), a.ValidateTarget,
			activities.ValidateInput{TargetInput: s.Input, Checks: s.Checks})
	case stepRemove:
		return workflow.ExecuteActivity(targetCtx(ctx, s.Input.Target, s.Summary), a.RemoveTarget, s.Input)
	case stepRollback:
		return workflow.ExecuteActivity(targetCtx(ctx, s.Input.Target, s.Summary), a.RollbackTarget, s.Input)
	}
	return workflow.ExecuteActivity(targetCtx(ctx, s.Input.Target, s.Summary), a.DeployTarget, s.Input)
}

// outcomeOf reads the outcome of a step that ended.
func outcomeOf(ctx workflow.Context, s step, f workflow.Future) stepOutcome {
	o := stepOutcome{Started: true}
	var err error
	if s.Kind == stepValidate {
		err = f.Get(ctx, &o.Checks)
	} else {
		err = f.Get(ctx, &o.Result)
	}
	switch {
	case err == nil:
	case isCancel(err):
		o.Cancelled = true
	default:
		o.Err = rootMessage(err)
	}
	return o
}

// stepOptions say how a set of steps runs.
type stepOptions struct {
	// what names the set in child workflow ids: "wave-2", "undo-wave-2".
	what string
	// describe says what the steps do, for summaries: "deploy 2.0.0".
	describe string
	// cancellable: a stop starts no more steps and cancels those under
	// way. Undo steps are not: they run to the end.
	cancellable bool
	// pausable: no step starts while the deployment is paused, and the gate
	// is passed again before the rest go.
	pausable bool
	// before is called just before a step starts.
	before func(step)
}

// StepsInput is a batch of steps of one kind: what they share, once, and
// each target's own part. It is the input of the TargetSteps workflow.
type StepsInput struct {
	DeploymentID string   `json:"deployment_id"`
	Application  string   `json:"application"`
	Environment  string   `json:"environment"`
	Kind         stepKind `json:"kind"`
	// Release is the release deployed, removed, validated, put back, or
	// (for a rollback) undone.
	Release    activities.ReleaseRef `json:"release"`
	RetainData bool                  `json:"retain_data,omitempty"`
	// KeyBase starts every step's idempotency key: deployment/run.
	KeyBase     string             `json:"key_base"`
	Checks      []models.CheckSpec `json:"checks,omitempty"`
	MaxParallel int                `json:"max_parallel"`
	Targets     []stepTarget       `json:"targets"`
}

// stepTarget is one target's part of a batch.
type stepTarget struct {
	Target models.PlanTarget `json:"target"`
	Wave   int               `json:"wave"`
	// To is where a rollback goes: a release by ID or by version, or
	// nowhere (remove) when empty.
	To activities.ReleaseRef `json:"to,omitzero"`
}

// keySteps name each kind's step in its idempotency key.
var keySteps = map[stepKind]string{stepDeploy: "deploy", stepRemove: "remove", stepRollback: "rollback",
	stepPutBack: "undo-remove", stepValidate: "validate"}

// step makes the i-th step of the batch.
func (in StepsInput) step(i int) step {
	st := in.Targets[i]
	t := st.Target
	ti := activities.TargetInput{DeploymentID: in.DeploymentID, Application: in.Application, Environment: in.Environment,
		Target: t, Wave: st.Wave, Release: in.Release, RetainData: in.RetainData,
		Key: in.KeyBase + "/" + t.ID + "/" + keySteps[in.Kind]}
	s := step{Kind: in.Kind, Input: ti, Checks: in.Checks}
	switch in.Kind {
	case stepDeploy:
		s.Summary = "deploy " + in.Release.Version + " to " + t.Name
	case stepRemove:
		s.Summary = "remove " + in.Release.Version + " from " + t.Name
	case stepValidate:
		s.Summary = "validate " + t.Name
	case stepPutBack:
		s.Input.Undo = true
		s.Summary = "put " + in.Release.Version + " back on " + t.Name
	case stepRollback:
		s.Input.Undo, s.Input.Previous, s.Input.Release = true, in.Release.Version, st.To
		to := st.To.Version
		if to == "" {
			to = "its last known good"
			if st.To.ID == "" {
				to = "nothing (remove)"
			}
		}
		s.Summary = "roll " + t.Name + " back to " + to
	}
	return s
}

// batch starts a batch of steps of kind on release, for this deployment.
func (d *deployment) batch(kind stepKind, rel activities.ReleaseRef) StepsInput {
	return StepsInput{DeploymentID: d.in.DeploymentID, Application: d.Plan.Application, Environment: d.Plan.Environment,
		Kind: kind, Release: rel, RetainData: d.in.RetainData, KeyBase: d.in.DeploymentID + "/" + d.runID,
		MaxParallel: d.Plan.Strategy.MaxParallel}
}

// runSteps runs a batch's steps, at most max_parallel at once, and calls
// done as each ends; a step that never started gets done with Started
// false, unless it never left this workflow. Up to the plan's
// targets_per_run steps run in this workflow's own history. More run in
// child workflows (TargetSteps) of at most that many steps each, one after
// another, so that no run's history grows with the fleet.
func (d *deployment) runSteps(in StepsInput, o stepOptions, done func(step, stepOutcome)) {
	per := d.Plan.TargetsPerRun
	if per <= 0 || len(in.Targets) <= per {
		steps := make([]step, len(in.Targets))
		for i := range in.Targets {
			steps[i] = in.step(i)
		}
		d.eachStep(steps, o, done)
		return
	}
	all := in.Targets
	parts := (len(all) + per - 1) / per
	for i := 0; i < parts; i++ {
		chunk := in
		chunk.Targets = all[i*per : min((i+1)*per, len(all))]
		if o.cancellable && d.stopping() {
			return
		}
		for o.pausable && d.Paused {
			if !d.gate() {
				return
			}
		}
		d.inChild(chunk, o, fmt.Sprintf("%s-part-%d", o.what, i+1),
			fmt.Sprintf("%s: %s, part %d of %d", o.describe, models.Plural(len(chunk.Targets), "target"), i+1, parts), done)
	}
}

func (d *deployment) stopping() bool { return d.Stop != nil || d.work.Err() != nil }

// eachStep runs steps in this workflow: at most max_parallel at once.
func (d *deployment) eachStep(steps []step, o stepOptions, done func(step, stepOutcome)) {
	limit := max(1, d.Plan.Strategy.MaxParallel)
	sel := workflow.NewSelector(d.safe)
	var cancels []workflow.CancelFunc
	next, running, cancelled := 0, 0, false
	stopping := func() bool { return o.cancellable && d.stopping() }
	for next < len(steps) || running > 0 {
		for running < limit && next < len(steps) && !stopping() && !(o.pausable && d.Paused) {
			s := steps[next]
			next++
			running++
			ctx, release := d.safe, func() {}
			if o.cancellable {
				var cancel workflow.CancelFunc
				ctx, cancel = workflow.WithCancel(d.work)
				cancels = append(cancels, cancel)
				release = cancel
			}
			if o.before != nil {
				o.before(s)
			}
			sel.AddFuture(startStep(ctx, s), func(f workflow.Future) {
				running--
				done(s, outcomeOf(d.safe, s, f))
				release() // the step has ended: its context goes
			})
		}
		if running == 0 {
			if stopping() || next >= len(steps) || !d.gate() {
				return
			}
			continue
		}
		d.await(func() bool { return sel.HasPending() || (stopping() && !cancelled) })
		if stopping() && !cancelled {
			cancelled = true
			for _, c := range cancels {
				c()
			}
			continue
		}
		sel.Select(d.safe)
	}
}

// inChild runs one chunk of steps in a child workflow and waits for it. A
// stop cancels the child, which cancels its steps, waits for them, and
// says which ended how.
func (d *deployment) inChild(in StepsInput, o stepOptions, name, summary string, done func(step, stepOutcome)) {
	chunk := make([]step, len(in.Targets))
	for i := range in.Targets {
		chunk[i] = in.step(i)
		if o.before != nil {
			o.before(chunk[i])
		}
	}
	parent := d.safe
	if o.cancellable {
		parent = d.work
	}
	ctx, cancel := workflow.WithCancel(parent)
	defer cancel()
	// The run that starts the child names it, recorded once: a run made by
	// a reset replays its children's names as they were, and names its own
	// anew, so that they never clash with the old run's.
	var run string
	_ = workflow.SideEffectWithOptions(d.safe, workflow.SideEffectOptions{Summary: "name the child workflows after this run"}, func(ctx workflow.Context) any {
		return shortRun(workflow.GetInfo(ctx).WorkflowExecution.RunID)
	}).Get(&run)
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:          fmt.Sprintf("%s/%s/%s", workflow.GetInfo(d.work).WorkflowExecution.ID, run, name),
		StaticSummary:       summary,
		WaitForCancellation: true,
	})
	f := workflow.ExecuteChildWorkflow(ctx, models.WorkflowTargetSteps, in)
	// A pause or a resume reaches the child: it starts no step while paused.
	sent := false
	for {
		d.await(func() bool {
			return f.IsReady() || (o.cancellable && d.stopping()) || (o.pausable && d.Paused != sent)
		})
		if f.IsReady() || (o.cancellable && d.stopping()) {
			break
		}
		sent = d.Paused
		f.SignalChildWorkflow(d.safe, models.SignalStepsPaused, sent) // a child that has ended needs it no more
	}
	if !f.IsReady() {
		cancel()
		d.await(f.IsReady)
	}
	var res StepsResult
	if err := f.Get(d.safe, &res); err != nil || len(res.Outcomes) != len(chunk) {
		// The batch itself failed (it never started, or was terminated):
		// what it did is unknown, so each step counts as failed, and its
		// undo (if any) will run.
		why := "the batch workflow " + name + " did not finish"
		if err != nil {
			why += ": " + rootMessage(err)
		}
		for _, s := range chunk {
			done(s, stepOutcome{Started: true, Err: why})
		}
		return
	}
	for i, s := range chunk {
		done(s, res.Outcomes[i])
	}
}

func shortRun(runID string) string {
	if len(runID) > 8 {
		return runID[:8]
	}
	return runID
}

// StepsResult is each step's outcome, in the order of the input.
type StepsResult struct {
	Outcomes []stepOutcome `json:"outcomes"`
}

// TargetSteps runs a deployment's steps on a batch of its targets, at most
// MaxParallel at once: a child of the deployment workflow, so that a large
// fleet spreads over several bounded histories. While its deployment is
// paused (SignalStepsPaused) it starts no step. Cancelled, it starts no
// more steps, cancels those under way, waits for them, and returns how
// each ended.
func TargetSteps(ctx workflow.Context, in StepsInput) (StepsResult, error) {
	safe, _ := workflow.NewDisconnectedContext(ctx)
	paused := false
	workflow.Go(safe, func(gctx workflow.Context) {
		ch := workflow.GetSignalChannel(gctx, models.SignalStepsPaused)
		for {
			var on bool
			ch.Receive(gctx, &on)
			paused = on
		}
	})
	out := make([]stepOutcome, len(in.Targets))
	sel := workflow.NewSelector(safe)
	next, running := 0, 0
	limit := max(1, in.MaxParallel)
	for next < len(in.Targets) || running > 0 {
		for running < limit && next < len(in.Targets) && ctx.Err() == nil && !paused {
			i, s := next, in.step(next)
			next++
			running++
			sel.AddFuture(startStep(ctx, s), func(f workflow.Future) {
				running--
				out[i] = slim(outcomeOf(safe, s, f))
			})
		}
		if running == 0 {
			if next >= len(in.Targets) || ctx.Err() != nil {
				break
			}
			// Paused with nothing under way: until resumed, or cancelled.
			_ = workflow.Await(safe, func() bool { return !paused || ctx.Err() != nil })
			continue
		}
		sel.Select(safe)
	}
	return StepsResult{Outcomes: out}, nil
}

// slim keeps of an outcome what the deployment reads, so that the batch's
// answer stays small: the output tail is on the timeline already, and
// passed checks need no message.
func slim(o stepOutcome) stepOutcome {
	o.Result = activities.TargetResult{Version: o.Result.Version, Skipped: o.Result.Skipped}
	o.Err = models.Cut(o.Err, slimText)
	var failed []drivers.CheckResult
	for _, c := range o.Checks.Results {
		if !c.Passed && len(failed) < slimChecks {
			c.Message = models.Cut(c.Message, slimText)
			failed = append(failed, c)
		}
	}
	o.Checks.Results = failed
	return o
}

// A batch's answer keeps of each step at most slimChecks failed checks and
// slimText bytes of each message (the timeline has them whole): with
// models.MaxTargetsPerRun steps it stays well under Temporal's 2 MB
// payload limit.
const (
	slimText   = 300
	slimChecks = 2
)

// dropUnstarted removes the compensations of targets whose step never
// started: nothing was changed there.
func (d *deployment) dropUnstarted(ids map[string]bool) {
	if len(ids) == 0 {
		return
	}
	d.Comps = slices.DeleteFunc(d.Comps, func(c compensation) bool { return ids[c.Target.ID] })
}
