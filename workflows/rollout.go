package workflows

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
)

// rollout changes the targets wave by wave: the targets of a wave in
// parallel (at most max_parallel at once), a gate before each wave, checks
// and a bake between waves. It pushes a compensation before each target
// starts, and keeps count of failures against the strategy's limits.
type rollout struct {
	d *deployment
	// failures counts the targets that failed so far; limit is how many
	// the whole rollout tolerates.
	failures, limit int
	// validated are the targets whose checks passed between waves.
	validated map[string]bool
}

// failure is one target that failed, and why.
type failure struct {
	target models.PlanTarget
	wave   int
	reason string
}

// rollout runs the waves. It returns false when the deployment must be
// compensated (d.Stop says why).
func (d *deployment) rollout() bool {
	r := &rollout{d: d, validated: d.validatedSet}
	largest := 0
	for _, w := range d.Plan.Waves {
		largest = max(largest, len(w))
	}
	total := d.targetCount()
	r.limit = d.Plan.Strategy.TotalFailureLimit(total, largest)
	waves := models.Plural(len(d.Plan.Waves), "wave")
	msg := fmt.Sprintf("rolling out %s to %s in %s (%s)", d.Plan.ReleaseVersion, models.Plural(total, "target"), waves, d.Plan.Strategy.Kind)
	if d.decommission() {
		msg = fmt.Sprintf("decommissioning %s from %s in %s", d.Plan.ReleaseVersion, models.Plural(total, "target"), waves)
	}
	d.transition(models.StatusDeploying, msg, nil)
	for i, wave := range d.Plan.Waves {
		n, last := i+1, i == len(d.Plan.Waves)-1
		if i > 0 && !d.gate() {
			return false
		}
		d.WaveIndex = n
		d.progress(fmt.Sprintf("wave %d of %d: %s", n, len(d.Plan.Waves), names(wave)), func(in *activities.RecordInput) { in.WaveIndex = &n })
		failed := r.wave(n, wave)
		if d.Stop != nil {
			return false
		}
		if !r.tolerate(n, wave, failed) {
			return false
		}
		if !last && !d.decommission() && !r.check(n, wave) {
			return false
		}
		if bake := d.Plan.Strategy.Bake.D(); !last && bake > 0 {
			d.progress(fmt.Sprintf("baking %s after wave %d", bake, n), nil)
			if !d.sleep(bake, fmt.Sprintf("bake after wave %d (%s)", n, bake), nil) && d.Stop != nil {
				return false
			}
		}
	}
	return d.Stop == nil
}

// wave changes the wave's targets and returns those that failed. A target
// whose step was cancelled is not a failure: its compensation stays.
func (r *rollout) wave(n int, targets []models.PlanTarget) []failure {
	d := r.d
	var failed []failure
	kind, describe := stepDeploy, "deploy "+d.Release.Version
	if d.decommission() {
		kind, describe = stepRemove, "remove "+d.Release.Version
	}
	in := d.batch(kind, d.Release)
	for _, t := range targets {
		in.Targets = append(in.Targets, stepTarget{Target: t, Wave: n})
	}
	unstarted := map[string]bool{}
	d.runSteps(in, stepOptions{what: fmt.Sprintf("wave-%d", n), describe: fmt.Sprintf("%s, wave %d", describe, n),
		cancellable: true, pausable: true,
		// Before it starts: a step that fails or is cancelled half way is
		// undone too (an undo of a target never touched does nothing).
		before: func(s step) { d.Comps = append(d.Comps, d.undoFor(s.Input.Target, n)) },
	}, func(s step, o stepOutcome) {
		t := s.Input.Target
		switch {
		case !o.Started:
			unstarted[t.ID] = true
		case o.Err != "":
			failed = append(failed, failure{target: t, wave: n, reason: o.Err})
		case !o.Cancelled:
			d.Live = append(d.Live, t)
			d.liveSet[t.ID] = true
		}
	})
	d.dropUnstarted(unstarted)
	return failed
}

// tolerate weighs a wave's failures against max_failures (per wave) and
// the total limit. Within them, the failed targets are undone at once and
// the rollout goes on; beyond them, the deployment stops.
func (r *rollout) tolerate(n int, wave []models.PlanTarget, failed []failure) bool {
	d := r.d
	if len(failed) == 0 {
		return true
	}
	r.failures += len(failed)
	list := describeFailures(failed)
	strategy := d.Plan.Strategy
	switch {
	case len(failed) > strategy.MaxFailures:
		d.requestStop(stopRequest{Kind: models.StopFailure, Reason: fmt.Sprintf("wave %d: %s of %d failed, more than max_failures %d: %s",
			n, models.Plural(len(failed), "target"), len(wave), strategy.MaxFailures, list)})
		return false
	case r.failures > r.limit:
		d.requestStop(stopRequest{Kind: models.StopFailure, Reason: fmt.Sprintf("%s of %d failed so far, more than the rollout tolerates (%d): %s",
			models.Plural(r.failures, "target"), d.targetCount(), r.limit, list)})
		return false
	}
	d.progress(fmt.Sprintf("wave %d: %s failed, within max_failures %d (%d of %d tolerated in all); undoing them: %s",
		n, models.Plural(len(failed), "target"), strategy.MaxFailures, r.failures, r.limit, list), nil)
	r.undoFailed(failed)
	return d.Stop == nil
}

// undoFailed returns the failed targets to what ran before, at once: a
// target left half changed must not stay so until the end of the
// deployment, nor after it.
func (r *rollout) undoFailed(failed []failure) {
	d := r.d
	var comps []compensation
	for _, f := range failed {
		i := slices.IndexFunc(d.Comps, func(c compensation) bool { return c.Target.ID == f.target.ID })
		if i < 0 {
			continue
		}
		comps = append(comps, d.Comps[i])
		d.Comps = slices.Delete(d.Comps, i, i+1)
	}
	results := d.compensate(comps)
	for _, f := range failed {
		d.Left = append(d.Left, leftBehind{Name: f.target.Name, Why: f.reason, Undone: results[f.target.ID]})
	}
}

// check runs the validation checks on the wave's live targets before the
// next wave goes: a bad release stops at the first wave.
func (r *rollout) check(n int, wave []models.PlanTarget) bool {
	d := r.d
	var live []models.PlanTarget
	for _, t := range wave {
		if d.isLive(t.ID) {
			live = append(live, t)
		}
	}
	if len(live) == 0 {
		return d.Stop == nil // every target of the wave failed, within the limits, and was undone
	}
	if !d.runChecks(fmt.Sprintf("wave %d", n), live) {
		return false
	}
	for _, t := range live {
		r.validated[t.ID] = true
	}
	return true
}

// runChecks runs the validation checks on targets. It returns false, with
// d.Stop saying why, when one fails, or when there is nothing to check.
func (d *deployment) runChecks(what string, targets []models.PlanTarget) bool {
	checks := d.Plan.Policy.ValidationChecks
	if len(checks) == 0 {
		return d.Stop == nil
	}
	if len(targets) == 0 {
		d.requestStop(stopRequest{Kind: models.StopFailure, Reason: what + ": no target runs the release, so nothing can be validated"})
		return false
	}
	var failed []string
	in := d.batch(stepValidate, d.Release)
	in.Checks = checks
	for _, t := range targets {
		in.Targets = append(in.Targets, stepTarget{Target: t, Wave: d.waveOf(t)})
	}
	d.runSteps(in, stepOptions{what: "checks-" + strings.ReplaceAll(what, " ", "-"), describe: what + " checks", cancellable: true}, func(s step, o stepOutcome) {
		t := s.Input.Target
		if o.Err != "" {
			failed = append(failed, t.Name+": "+o.Err)
			return
		}
		if !o.Started || o.Cancelled {
			return
		}
		for _, c := range o.Checks.Results {
			if !c.Passed {
				failed = append(failed, fmt.Sprintf("%s: check %s: %s", t.Name, c.Name, c.Message))
			}
		}
	})
	if len(failed) > 0 {
		d.requestStop(stopRequest{Kind: models.StopFailure, Reason: what + " checks failed: " + joinMax(failed, 10)})
	}
	if d.Stop != nil {
		return false
	}
	checkNames := make([]string, len(checks))
	for i, c := range checks {
		checkNames[i] = c.Name
	}
	d.progress(fmt.Sprintf("%s checks passed (%s) on %s", what, strings.Join(checkNames, ", "), models.Plural(len(targets), "target")), nil)
	return true
}

// undoFor is the compensation of one target's change: back to its last
// known good release, or else to the version the plan found there (it
// ran before Transit knew the target); remove only when nothing ran there.
// A decommission's is to put the release back.
func (d *deployment) undoFor(t models.PlanTarget, wave int) compensation {
	switch {
	case d.decommission():
		return compensation{Target: t, Wave: wave, To: d.Release, Redeploy: true}
	case t.LastKnownGoodID != "":
		return compensation{Target: t, Wave: wave, To: activities.ReleaseRef{ID: t.LastKnownGoodID}}
	case t.CurrentVersion != "":
		return compensation{Target: t, Wave: wave, To: activities.ReleaseRef{Version: t.CurrentVersion}}
	}
	return compensation{Target: t, Wave: wave}
}

// compensate runs compensations, the newest wave first and the targets of
// a wave in parallel, in a context that no cancellation reaches. It
// returns, per target id, what each did or why it failed; failures are
// those that start with "failed".
func (d *deployment) compensate(comps []compensation) map[string]string {
	results := map[string]string{}
	for len(comps) > 0 {
		wave := comps[len(comps)-1].Wave
		var batch []compensation
		for len(comps) > 0 && comps[len(comps)-1].Wave == wave {
			batch = append(batch, comps[len(comps)-1])
			comps = comps[:len(comps)-1]
		}
		byTarget := make(map[string]compensation, len(batch))
		rollbacks, putBacks := d.batch(stepRollback, d.Release), d.batch(stepPutBack, d.Release)
		for _, c := range batch {
			byTarget[c.Target.ID] = c
			if c.Redeploy {
				putBacks.Targets = append(putBacks.Targets, stepTarget{Target: c.Target, Wave: c.Wave})
			} else {
				rollbacks.Targets = append(rollbacks.Targets, stepTarget{Target: c.Target, Wave: c.Wave, To: c.To})
			}
		}
		done := func(s step, o stepOutcome) {
			c := byTarget[s.Input.Target.ID]
			switch {
			case o.Err != "":
				results[c.Target.ID] = "failed to undo: " + o.Err
			case !o.Started || o.Cancelled:
				results[c.Target.ID] = "failed to undo: cancelled"
			case o.Result.Skipped:
				results[c.Target.ID] = "never started: nothing to undo"
			case c.Redeploy:
				results[c.Target.ID] = "put back " + c.To.Version
			case c.To.ID == "" && c.To.Version == "":
				results[c.Target.ID] = "removed (nothing ran there before)"
			default:
				results[c.Target.ID] = "rolled back to " + o.Result.Version
			}
		}
		for _, b := range []StepsInput{rollbacks, putBacks} {
			if len(b.Targets) > 0 {
				d.runSteps(b, stepOptions{what: fmt.Sprintf("undo-wave-%d", wave), describe: fmt.Sprintf("undo wave %d", wave)}, done)
			}
		}
	}
	return results
}

func describeFailures(failed []failure) string {
	parts := make([]string, len(failed))
	for i, f := range failed {
		parts[i] = f.target.Name + ": " + f.reason
	}
	return joinMax(parts, 10)
}

// ---- helpers

func (d *deployment) decommission() bool { return d.Plan.Scenario == models.ScenarioDecommission }

func (d *deployment) targetCount() int {
	n := 0
	for _, w := range d.Plan.Waves {
		n += len(w)
	}
	return n
}

// waveOf is the wave a target is in (1-based).
func (d *deployment) waveOf(t models.PlanTarget) int {
	if d.waveIdx == nil {
		d.waveIdx = map[string]int{}
		for i, w := range d.Plan.Waves {
			for _, x := range w {
				d.waveIdx[x.ID] = i + 1
			}
		}
	}
	return d.waveIdx[t.ID]
}

func (d *deployment) isLive(id string) bool { return d.liveSet[id] }

func withSummary(ctx workflow.Context, summary string) workflow.Context {
	opts := workflow.GetActivityOptions(ctx)
	opts.Summary = summary
	return workflow.WithActivityOptions(ctx, opts)
}
