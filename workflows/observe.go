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
)

// validate runs the environment's checks on the targets that no check
// between waves covered (the last wave's, or all of them with one wave).
func (d *deployment) validate() bool {
	if !d.waitWhilePaused() {
		return false
	}
	if len(d.Live) == 0 {
		d.requestStop(stopRequest{Kind: models.StopFailure, Reason: "no target runs the release: nothing was deployed"})
		return false
	}
	var rest []models.PlanTarget
	for _, t := range d.Live {
		if !d.validatedSet[t.ID] {
			rest = append(rest, t)
		}
	}
	checks := len(d.Plan.Policy.ValidationChecks)
	msg := fmt.Sprintf("running %s on %s", models.Plural(checks, "validation check"), models.Plural(len(rest), "target"))
	if len(rest) < len(d.Live) {
		msg += fmt.Sprintf(" (the other %d passed them between waves)", len(d.Live)-len(rest))
	}
	d.transition(models.StatusValidating, msg, nil)
	if len(rest) == 0 {
		return d.Stop == nil
	}
	return d.runChecks("validation", rest)
}

// observation is a running Observe activity.
type observation struct {
	f      workflow.Future
	cancel workflow.CancelFunc
}

func (o *observation) done() bool { return o != nil && o.f.IsReady() }

// decisive says the observation ended with something to act on before its
// window did: a breach, an unobservable deployment, or a failure.
func (o *observation) decisive(ctx workflow.Context) bool {
	if !o.done() {
		return false
	}
	var res activities.ObserveResult
	err := o.f.Get(ctx, &res)
	return err != nil || res.Breached || res.Unobservable
}

// startObserve starts the probes on the live targets until until; nil when
// the policy has no probes.
func (d *deployment) startObserve(until time.Time, stopOnBreach bool, summary string) *observation {
	probes := d.Plan.Policy.ObservationProbes
	if len(probes) == 0 {
		return nil
	}
	octx, cancel := workflow.WithCancel(d.work)
	in := activities.ObserveInput{DeploymentID: d.in.DeploymentID, Application: d.Plan.Application, Environment: d.Plan.Environment,
		Targets: d.Live, Release: d.Release, Probes: probes, Until: until, StopOnBreach: stopOnBreach,
		IncidentSeverity: d.Plan.Policy.ExitCriteria.MaxOpenIncidentSeverity}
	span := until.Sub(workflow.Now(d.work))
	f := workflow.ExecuteActivity(withSummary(observeCtx(octx, span), summary), a.Observe, in)
	return &observation{f: f, cancel: cancel}
}

// endObserve cancels the observation if it still runs, waits until it has
// stopped (no probe outlives the window or the workflow), and returns its
// counts, which a cancelled run returns too.
func (d *deployment) endObserve(o *observation) (activities.ObserveResult, error) {
	var res activities.ObserveResult
	if o == nil {
		return res, nil
	}
	if !o.done() {
		o.cancel()
		_ = workflow.Await(d.safe, o.done)
	}
	err := o.f.Get(d.safe, &res)
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && canceled.HasDetails() {
		_ = canceled.Details(&res)
		err = nil
	}
	return res, err
}

// observe runs early life support. Until the point of no return a breach
// or a rollback request rolls back; an observation that cannot measure is
// no breach, so the deployment then pauses for a person to decide. At the
// point of no return the release is committed, durably. After it, breaches
// open incidents, and at the end the exit criteria decide the handover.
func (d *deployment) observe() (models.DeploymentResult, error) {
	policy := d.Plan.Policy
	now := workflow.Now(d.work)
	ponr, els := policy.PointOfNoReturn.D(), policy.EarlyLifeSupport.D()
	if ponr > els {
		ponr = els
	}
	ponrAt, elsEnd := now.Add(ponr).UTC(), now.Add(els).UTC()
	d.PONRAt, d.ELSEndsAt = &ponrAt, &elsEnd
	d.transition(models.StatusEarlyLifeSupport, fmt.Sprintf("early life support until %s; point of no return at %s",
		elsEnd.Format(time.RFC3339), ponrAt.Format(time.RFC3339)),
		func(r *activities.RecordInput) { r.PONRAt, r.ELSEndsAt = &ponrAt, &elsEnd })

	// Before the point of no return.
	tctx, cancelTimer := workflow.WithCancel(d.work)
	ponrTimer := workflow.NewTimerWithOptions(tctx, ponr, workflow.TimerOptions{Summary: "point of no return"})
	obs := d.startObserve(ponrAt, true, "observe "+d.Plan.ReleaseVersion+" until the point of no return")
	d.await(func() bool { return ponrTimer.IsReady() || d.Stop != nil || obs.decisive(d.safe) })
	if obs != nil && !obs.done() && d.Stop == nil {
		// The timer fired; the activity ends on its own at the same moment.
		tctx2, cancel2 := workflow.WithCancel(d.safe)
		grace := workflow.NewTimerWithOptions(tctx2, time.Minute, workflow.TimerOptions{Summary: "let the last observation end (1m)"})
		d.await(func() bool { return obs.done() || grace.IsReady() || d.Stop != nil })
		cancel2()
	}
	cancelTimer()
	counts, err := d.endObserve(obs)
	var unobservable string
	switch {
	case d.Stop != nil:
	case err != nil:
		unobservable = "the observation could not run: " + rootMessage(err)
	case counts.Breached:
		d.requestStop(stopRequest{Kind: models.StopBreach, Reason: "before the point of no return, " + counts.Breach})
	case counts.Unobservable:
		unobservable = counts.Why
	}
	if d.Stop != nil {
		return d.rollback()
	}
	if unobservable != "" {
		// Not knowing is neither a breach nor a pass: a person decides.
		d.Paused, d.PausedBy = true, "transit"
		d.PauseWhy = unobservable + ". Health before the point of no return is unknown: resume to commit " +
			d.Plan.ReleaseVersion + ", or roll back"
		d.progress("observation failed before the point of no return: "+unobservable, nil)
		if !d.waitWhilePaused() {
			return d.rollback()
		}
	}

	// The point of no return.
	d.commit(d.Release)

	// After it: observe to the end of early life support, fixing forward.
	var notes []string
	if unobservable != "" {
		notes = append(notes, "not observed before the point of no return ("+unobservable+")")
	}
	if rest := elsEnd.Sub(workflow.Now(d.work)); rest > 0 {
		ectx, cancelEnd := workflow.WithCancel(d.work)
		end := workflow.NewTimerWithOptions(ectx, rest, workflow.TimerOptions{Summary: "early life support ends"})
		obs := d.startObserve(elsEnd, false, "observe "+d.Plan.ReleaseVersion+" until early life support ends")
		d.await(func() bool { return end.IsReady() || d.Stop != nil || obs.done() })
		if obs.decisive(d.safe) && d.Stop == nil {
			// The observation failed before its end: early life support still
			// lasts its time, for incidents to be linked to the deployment.
			d.await(func() bool { return end.IsReady() || d.Stop != nil })
		}
		cancelEnd()
		after, err := d.endObserve(obs)
		counts = counts.Add(after)
		if err != nil {
			notes = append(notes, "the observation after the point of no return failed: "+rootMessage(err))
		}
		if d.Stop != nil {
			// After the point of no return nothing is rolled back: the
			// release stays committed, and is not handed over as healthy.
			return d.finishRollout(fmt.Sprintf("early life support cut short (%s) after the point of no return: %s stays committed; %s",
				d.Stop.String(), d.Plan.ReleaseVersion, counts.Summary()))
		}
	}

	var exit activities.ExitResult
	f := workflow.ExecuteLocalActivity(bookkeepingCtx(d.safe, "check the exit criteria"), a.ExitCriteria, activities.ExitInput{DeploymentID: d.in.DeploymentID,
		Criteria: policy.ExitCriteria, ProbeRuns: counts.Runs, ProbePassed: counts.Passed, ProbeFailed: counts.Failed,
		ProbeErrors: counts.Errors, Probes: len(policy.ObservationProbes)})
	d.await(f.IsReady)
	if err := f.Get(d.safe, &exit); err != nil {
		exit.Reasons = append(exit.Reasons, "the exit criteria could not be checked: "+rootMessage(err))
	}
	reasons := append(exit.Reasons, notes...)
	if len(reasons) > 0 {
		return d.finishRollout("not handed over: " + strings.Join(reasons, "; ") + " (" + counts.Summary() + ")")
	}
	return d.finishRollout("handed over to operations: exit criteria met (" + counts.Summary() + ")")
}

// commit makes the release each live target's last known good and drops
// the compensations: from here on, problems are fixed forward. The point
// of no return is passed before the commit is written, so that no abort
// slips in; the commit is retried until it lands, whatever happens.
func (d *deployment) commit(rel activities.ReleaseRef) {
	if rel.ID != "" {
		d.PastPONR = true
	}
	ids := make([]string, len(d.Live))
	for i, t := range d.Live {
		ids[i] = t.ID
	}
	f := workflow.ExecuteLocalActivity(bookkeepingCtx(d.safe, "commit "+d.Plan.ReleaseVersion+" as last known good"), a.CommitLastKnownGood, activities.CommitInput{
		DeploymentID: d.in.DeploymentID, TargetIDs: ids, ReleaseID: rel.ID, Version: rel.Version})
	d.await(f.IsReady)
	if err := f.Get(d.safe, nil); err != nil {
		d.progress("the commit of the last known good could not be recorded: "+rootMessage(err), nil)
	}
	d.Comps = nil
	if rel.ID == "" {
		d.progress(fmt.Sprintf("last known good cleared on %s", models.Plural(len(ids), "target")), nil)
		return
	}
	d.progress(fmt.Sprintf("point of no return passed: %s is the last known good of %s", rel.Version, models.Plural(len(ids), "target")), nil)
}
