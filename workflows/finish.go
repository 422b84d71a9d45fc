package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
)

// rollback runs the compensations, newest wave first, in a context no
// cancellation reaches, so that a cancelled deployment still rolls back.
func (d *deployment) rollback() (models.DeploymentResult, error) {
	reason := "rollout stopped"
	if d.Stop != nil {
		reason = d.Stop.String()
	}
	if len(d.Comps) == 0 {
		// Nothing was changed: there is nothing to roll back.
		return d.finishStopped("before any target was changed")
	}
	comps := d.Comps
	d.transition(models.StatusRollingBack, fmt.Sprintf("rolling back %s to what ran before: %s",
		models.Plural(len(comps), "target"), reason), nil)
	results := d.compensate(comps)
	d.Comps = nil
	var failed []string
	undone, skipped := 0, 0
	for _, c := range comps {
		switch r := results[c.Target.ID]; {
		case strings.HasPrefix(r, "failed"):
			failed = append(failed, c.Target.Name+": "+r)
		case strings.HasPrefix(r, "never started"):
			skipped++
		default:
			undone++
		}
	}
	left := d.leftSummary()
	if len(failed) > 0 {
		return d.finish(models.StatusFailed, fmt.Sprintf("%s; rollback incomplete: %d of %s could not be rolled back: %s%s",
			reason, len(failed), models.Plural(len(comps), "target"), joinMax(failed, 10), left))
	}
	msg := fmt.Sprintf("%s; %s rolled back to what ran before", reason, models.Plural(undone, "target"))
	if skipped > 0 {
		msg += fmt.Sprintf(" (%d never started)", skipped)
	}
	return d.finish(models.StatusRolledBack, msg+left)
}

// leftSummary names the targets that failed during the rollout, and what
// their undo did: "; 1 target left behind: c (deploy failed: …; rolled back to 1.0.0)".
func (d *deployment) leftSummary() string {
	if len(d.Left) == 0 {
		return ""
	}
	parts := make([]string, len(d.Left))
	for i, l := range d.Left {
		parts[i] = fmt.Sprintf("%s (%s; %s)", l.Name, l.Why, l.Undone)
	}
	return fmt.Sprintf("; %s failed during the rollout: %s", models.Plural(len(d.Left), "target"), joinMax(parts, 10))
}

// finishRollout ends a deployment that went through: completed, or
// completed with issues when targets were left behind or the outcome says
// it was not handed over.
func (d *deployment) finishRollout(outcome string) (models.DeploymentResult, error) {
	status := models.StatusCompleted
	if len(d.Left) > 0 || strings.HasPrefix(outcome, "not handed over") || strings.HasPrefix(outcome, "early life support cut short") {
		status = models.StatusCompletedWithIssues
	}
	return d.finish(status, outcome+d.leftSummary())
}

// finishStopped ends a deployment that stopped before it changed anything.
func (d *deployment) finishStopped(when string) (models.DeploymentResult, error) {
	if d.Stop != nil && d.Stop.Kind == models.StopFailure {
		return d.finish(models.StatusFailed, d.Stop.Reason)
	}
	reason := "cancelled " + when
	if d.Stop != nil {
		reason = d.Stop.String() + " " + when
	}
	return d.finish(models.StatusCancelled, reason)
}

// finish records the final status (targets never started say so), waits
// until every record has landed (the lane reads the final one), wakes the
// deployments waiting in the lane, answers the signals still in the inbox,
// and waits for running handlers before the workflow returns.
func (d *deployment) finish(status models.Status, outcome string) (models.DeploymentResult, error) {
	d.Outcome = outcome
	d.Paused, d.Hold = false, nil
	workflow.GetMetricsHandler(d.safe).WithTags(map[string]string{"status": string(status)}).
		Counter(models.MetricDeploymentsFinished).Inc(1)
	d.transition(status, outcome, func(r *activities.RecordInput) {
		r.Outcome, r.SetHold, r.Hold, r.CloseTargets = &outcome, true, nil, true
	})
	d.flushRecords()
	d.wakeLane()
	_ = workflow.Await(d.safe, func() bool { return workflow.AllHandlersFinished(d.safe) })
	d.handleSignals()
	d.flushRecords()
	return models.DeploymentResult{Status: status, Outcome: outcome}, nil
}

// wakeLane tells the deployments waiting in the lane that this one ended;
// each looks for itself whether its turn came (best effort: each also
// looks again on its own).
func (d *deployment) wakeLane() {
	var next []string
	err := workflow.ExecuteLocalActivity(bookkeepingCtx(d.safe, "wake the next deployment in the lane"), a.WakeLane, activities.LaneInput{
		DeploymentID: d.in.DeploymentID, ApplicationID: d.in.ApplicationID, EnvironmentID: d.in.EnvironmentID}).Get(d.safe, &next)
	if err != nil {
		return
	}
	fs := make([]workflow.Future, 0, len(next))
	for _, id := range next {
		fs = append(fs, workflow.SignalExternalWorkflow(d.safe, id, "", models.SignalLaneFree, nil))
	}
	tctx, cancel := workflow.WithCancel(d.safe)
	defer cancel()
	bound := workflow.NewTimerWithOptions(tctx, 30*time.Second, workflow.TimerOptions{Summary: "give the lane signals 30s"})
	_ = workflow.Await(d.safe, func() bool {
		if bound.IsReady() {
			return true
		}
		for _, f := range fs {
			if !f.IsReady() {
				return false
			}
		}
		return true
	})
}
