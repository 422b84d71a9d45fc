package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
)

// ReleaseRef names a release and what a driver needs of it.
type ReleaseRef struct {
	ID        string            `json:"id"`
	Version   string            `json:"version"`
	Artifacts []models.Artifact `json:"artifacts"`
}

// TargetInput is one change to one target within a deployment.
type TargetInput struct {
	DeploymentID string            `json:"deployment_id"`
	Application  string            `json:"application"`
	Environment  string            `json:"environment"`
	Target       models.PlanTarget `json:"target"`
	Wave         int               `json:"wave"`
	// Release is the release to deploy, or the one to roll back to; empty
	// ID on a rollback means "remove" (a first install rolled back).
	Release    ReleaseRef `json:"release"`
	RetainData bool       `json:"retain_data"`
	// Key is the idempotency key: the same for every retry of one step.
	Key string `json:"key"`
}

// TargetResult is what a change left on the target.
type TargetResult struct {
	Version string `json:"version"`
	// LastKnownGood is the release to roll back to (empty: none, remove).
	LastKnownGood ReleaseRef `json:"last_known_good"`
	Log           string     `json:"log,omitempty"`
}

// DeployTarget puts the release on one target through its driver, with
// heartbeats and an idempotency key, and returns the target's last known
// good release for the compensation stack.
func (a *Activities) DeployTarget(ctx context.Context, in TargetInput) (TargetResult, error) {
	defer keepAlive(ctx)()
	t, d, err := a.target(ctx, in)
	if err != nil {
		return TargetResult{}, err
	}
	states, err := a.Store.TargetStates(ctx, []string{t.ID})
	if err != nil {
		return TargetResult{}, err
	}
	lkg := ReleaseRef{ID: states[t.ID].LastKnownGoodID, Version: states[t.ID].LastKnownGoodVer}
	if lkg.ID != "" {
		if rel, err := a.Store.GetRelease(ctx, lkg.ID); err == nil {
			lkg.Artifacts = rel.Artifacts.V
		}
	}
	a.markTarget(ctx, in, models.TargetDeploying, "")
	res, err := d.Deploy(ctx, a.request(ctx, in, t, lkg.Version))
	if err != nil {
		a.markTarget(ctx, in, models.TargetFailed, err.Error())
		return TargetResult{}, a.driverErr(ctx, err)
	}
	if err := a.Store.SetTargetCurrent(ctx, t.ID, in.Release.ID, res.Version, in.DeploymentID); err != nil {
		return TargetResult{}, err
	}
	a.markTarget(ctx, in, models.TargetDeployed, "now runs "+res.Version)
	a.logEvent(ctx, in, "deploy", res.Log)
	return TargetResult{Version: res.Version, LastKnownGood: lkg, Log: tail(res.Log)}, nil
}

// RollbackTarget returns a target to its last known good release, or
// removes the release when there is none (a first install).
func (a *Activities) RollbackTarget(ctx context.Context, in TargetInput) (TargetResult, error) {
	defer keepAlive(ctx)()
	t, d, err := a.target(ctx, in)
	if err != nil {
		return TargetResult{}, err
	}
	if in.Release.ID != "" && in.Release.Version == "" {
		// The workflow knows the last known good by id only.
		rel, err := a.Store.GetRelease(ctx, in.Release.ID)
		if err != nil {
			return TargetResult{}, a.planErr(err)
		}
		in.Release = ReleaseRef{ID: rel.ID, Version: rel.Version, Artifacts: rel.Artifacts.V}
	}
	var res drivers.Result
	if in.Release.ID == "" {
		res, err = d.Remove(ctx, a.request(ctx, in, t, ""))
	} else {
		res, err = d.Rollback(ctx, a.request(ctx, in, t, ""))
	}
	if err != nil {
		a.markTarget(ctx, in, models.TargetRollbackErr, err.Error())
		return TargetResult{}, a.driverErr(ctx, err)
	}
	if err := a.Store.SetTargetCurrent(ctx, t.ID, in.Release.ID, res.Version, in.DeploymentID); err != nil {
		return TargetResult{}, err
	}
	msg := "rolled back to " + in.Release.Version
	if in.Release.ID == "" {
		msg = "first install rolled back: release removed"
	}
	a.markTarget(ctx, in, models.TargetRolledBack, msg)
	a.logEvent(ctx, in, "rollback", res.Log)
	return TargetResult{Version: res.Version, Log: tail(res.Log)}, nil
}

// RemoveTarget takes the release off a target (decommission), passing
// retain_data to the driver.
func (a *Activities) RemoveTarget(ctx context.Context, in TargetInput) (TargetResult, error) {
	defer keepAlive(ctx)()
	t, d, err := a.target(ctx, in)
	if err != nil {
		return TargetResult{}, err
	}
	a.markTarget(ctx, in, models.TargetDeploying, "removing")
	res, err := d.Remove(ctx, a.request(ctx, in, t, in.Target.CurrentVersion))
	if err != nil {
		a.markTarget(ctx, in, models.TargetFailed, err.Error())
		return TargetResult{}, a.driverErr(ctx, err)
	}
	if err := a.Store.SetTargetCurrent(ctx, t.ID, "", "", in.DeploymentID); err != nil {
		return TargetResult{}, err
	}
	msg := "removed"
	if in.RetainData {
		msg = "removed; data retained"
	}
	a.markTarget(ctx, in, models.TargetRemoved, msg)
	a.logEvent(ctx, in, "remove", res.Log)
	return TargetResult{Version: "", LastKnownGood: in.Release, Log: tail(res.Log)}, nil
}

// ValidateInput runs the environment's checks on one target.
type ValidateInput struct {
	TargetInput
	Checks []models.CheckSpec `json:"checks"`
}

// ValidateResult says whether every check passed on the target.
type ValidateResult struct {
	Passed  bool                  `json:"passed"`
	Results []drivers.CheckResult `json:"results"`
}

// ValidateTarget runs every validation check on one target (each with its
// own timeout and tries).
func (a *Activities) ValidateTarget(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	defer keepAlive(ctx)()
	t, _, err := a.target(ctx, in.TargetInput)
	if err != nil {
		return ValidateResult{}, err
	}
	res := ValidateResult{Passed: true, Results: []drivers.CheckResult{}}
	failed := []string{}
	for _, spec := range in.Checks {
		heartbeat(ctx, spec.Name)
		r := drivers.RunCheck(ctx, spec, driverTarget(in.Application, in.Environment, *t), driverRelease(in.Release))
		res.Results = append(res.Results, r)
		if !r.Passed {
			res.Passed = false
			failed = append(failed, spec.Name+": "+r.Message)
		}
	}
	if res.Passed {
		a.markTarget(ctx, in.TargetInput, models.TargetValidated, fmt.Sprintf("%d checks passed", len(in.Checks)))
	} else {
		a.markTarget(ctx, in.TargetInput, models.TargetFailed, "validation failed: "+strings.Join(failed, "; "))
	}
	return res, nil
}

func (a *Activities) target(ctx context.Context, in TargetInput) (*models.Target, drivers.Driver, error) {
	t, err := a.Store.GetTarget(ctx, in.Target.ID)
	if err != nil {
		return nil, nil, a.planErr(err)
	}
	d, err := a.Drivers.For(t.Driver)
	if err != nil {
		return nil, nil, nonRetryable(ErrTypeDriver, err, "%v", err)
	}
	return t, d, nil
}

func (a *Activities) request(ctx context.Context, in TargetInput, t *models.Target, previous string) drivers.Request {
	return drivers.Request{
		Target:         driverTarget(in.Application, in.Environment, *t),
		Release:        driverRelease(in.Release),
		Previous:       previous,
		IdempotencyKey: in.Key,
		RetainData:     in.RetainData,
		Progress:       func(detail string) { heartbeat(ctx, detail) },
	}
}

func driverRelease(r ReleaseRef) drivers.Release {
	return drivers.Release{ID: r.ID, Version: r.Version, Artifacts: r.Artifacts}
}

// driverErr makes a driver's error final: each driver retries what is worth
// retrying (the http driver on 5xx and connection errors), and running a
// failed script or webhook again is not Transit's call. A worker that dies
// mid-step is another matter: its heartbeat stops and Temporal retries the
// step, which the idempotency key makes safe.
func (a *Activities) driverErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nonRetryable(ErrTypeDriver, err, "%v", err)
}

// markTarget records a target's state in the deployment; a failure to
// record is logged, not fatal: the workflow's own record is authoritative.
func (a *Activities) markTarget(ctx context.Context, in TargetInput, status, message string) {
	row := models.DeploymentTarget{DeploymentID: in.DeploymentID, TargetID: in.Target.ID, TargetName: in.Target.Name,
		Wave: in.Wave, Status: status, FromVersion: in.Target.CurrentVersion, ToVersion: in.Release.Version, Message: message}
	if err := a.Store.UpsertDeploymentTargets(ctx, []models.DeploymentTarget{row}); err != nil {
		a.log().WarnContext(ctx, "record target state", "deployment", in.DeploymentID, "target", in.Target.Name, "err", err)
	}
}

// logEvent puts the tail of a driver's output on the deployment's timeline, once per step.
func (a *Activities) logEvent(ctx context.Context, in TargetInput, action, log string) {
	if strings.TrimSpace(log) == "" {
		return
	}
	ev := models.DeploymentEvent{Type: "target_log", Message: fmt.Sprintf("%s on %s:\n%s", action, in.Target.Name, tail(log))}
	if err := a.Store.AppendEvent(ctx, in.DeploymentID, "log/"+in.Key, ev); err != nil {
		a.log().WarnContext(ctx, "record driver output", "deployment", in.DeploymentID, "target", in.Target.Name, "err", err)
	}
}

// tailBytes bounds the log kept in events and workflow history.
const tailBytes = 4 << 10

func tail(s string) string {
	if len(s) <= tailBytes {
		return s
	}
	return "…" + s[len(s)-tailBytes:]
}

// ObserveInput runs the probes on every target until Until.
type ObserveInput struct {
	DeploymentID string              `json:"deployment_id"`
	Application  string              `json:"application"`
	Environment  string              `json:"environment"`
	Targets      []models.PlanTarget `json:"targets"`
	Release      ReleaseRef          `json:"release"`
	Probes       []models.ProbeSpec  `json:"probes"`
	Until        time.Time           `json:"until"`
	// StopOnBreach returns at the first failed probe (before the point of
	// no return); otherwise a breach opens an incident and observing goes on.
	StopOnBreach     bool   `json:"stop_on_breach"`
	IncidentSeverity string `json:"incident_severity"`
}

// ObserveResult counts the probe runs.
type ObserveResult struct {
	Runs     int    `json:"runs"`
	Passed   int    `json:"passed"`
	Breached bool   `json:"breached"`
	Breach   string `json:"breach,omitempty"`
	// Incidents opened by breaches after the point of no return.
	Incidents int `json:"incidents"`
}

// Observe runs each probe on each target at the probe's interval until
// Until, heartbeating its counts: a long window costs one activity in the
// history, not one event per probe, and a retried attempt resumes the counts.
func (a *Activities) Observe(ctx context.Context, in ObserveInput) (ObserveResult, error) {
	var res ObserveResult
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &res)
	}
	targets := make([]drivers.Target, 0, len(in.Targets))
	for _, pt := range in.Targets {
		t, err := a.Store.GetTarget(ctx, pt.ID)
		if err != nil {
			return res, a.planErr(err)
		}
		targets = append(targets, driverTarget(in.Application, in.Environment, *t))
	}
	clock := a.clock()
	prober := drivers.Prober{Now: clock.Now}
	next := make([]time.Time, len(in.Probes))
	for i := range next {
		next[i] = clock.Now()
	}
	incidents := map[string]bool{}
	for {
		now := clock.Now()
		if !now.Before(in.Until) || len(in.Probes) == 0 {
			return res, nil
		}
		for i, spec := range in.Probes {
			if now.Before(next[i]) {
				continue
			}
			for _, t := range targets {
				r := prober.Run(ctx, spec, t, driverRelease(in.Release))
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				res.Runs++
				if r.Passed {
					res.Passed++
					continue
				}
				breach := fmt.Sprintf("probe %s failed on %s: %s", spec.Name, t.Name, r.Message)
				if in.StopOnBreach {
					res.Breached, res.Breach = true, breach
					return res, nil
				}
				if !incidents[spec.Name] {
					incidents[spec.Name] = true
					inc := &models.Incident{ID: "inc_" + in.DeploymentID + "_" + spec.Name, DeploymentID: in.DeploymentID,
						Severity: in.IncidentSeverity, Title: breach, Source: "probe:" + spec.Name}
					if err := a.Store.CreateIncident(ctx, actor(in.DeploymentID), inc); err != nil {
						return res, err
					}
					res.Incidents++
				}
			}
			// Fixed rate: every interval from the start, not from the end of
			// the last run, so the count of runs does not drift; a run that
			// fell more than an interval behind is not made up for.
			next[i] = next[i].Add(spec.Interval.D())
			if next[i].Before(now) {
				next[i] = now.Add(spec.Interval.D())
			}
		}
		wake := in.Until
		for _, n := range next {
			if n.Before(wake) {
				wake = n
			}
		}
		// Sleep in short steps, heartbeating each: a probe interval may be
		// longer than the heartbeat timeout, and a cancellation only arrives
		// with a heartbeat.
		for rest := wake.Sub(clock.Now()); ; rest = wake.Sub(clock.Now()) {
			heartbeat(ctx, res)
			if rest <= 0 {
				break
			}
			if err := clock.Sleep(ctx, min(rest, observeHeartbeatEvery)); err != nil {
				return res, err
			}
		}
	}
}

// observeHeartbeatEvery bounds Observe's sleeps between heartbeats.
const observeHeartbeatEvery = 10 * time.Second
