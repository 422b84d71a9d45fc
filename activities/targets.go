package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
	// Release is the release to deploy, or the one to roll back to: by ID,
	// or by Version alone when it ran before Transit knew the target; empty
	// on a rollback means "remove" (nothing ran there before).
	Release ReleaseRef `json:"release"`
	// Previous is the version the step moves the target away from ("": the
	// version the plan found there).
	Previous   string `json:"previous,omitempty"`
	RetainData bool   `json:"retain_data"`
	// Undo marks a step that undoes this deployment's change of the target
	// (a rollback, or a removed release put back): a target the deployment
	// never touched is left alone.
	Undo bool `json:"undo,omitempty"`
	// Key is the idempotency key: the same for every retry of one step.
	Key string `json:"key"`
}

// TargetResult is what a change left on the target.
type TargetResult struct {
	Version string `json:"version"`
	// LastKnownGood is the release to roll back to (empty: none, remove).
	LastKnownGood ReleaseRef `json:"last_known_good,omitzero"`
	Log           string     `json:"log,omitempty"`
	// Skipped: an undo found that the deployment never touched the target.
	Skipped bool `json:"skipped,omitempty"`
}

func (in TargetInput) previous() string {
	if in.Previous != "" {
		return in.Previous
	}
	return in.Target.CurrentVersion
}

// DeployTarget puts the release on one target through its driver, with
// heartbeats and an idempotency key. A database outage on the way is waited
// out (StoreOutage): it is not a failure of the target.
func (a *Activities) DeployTarget(ctx context.Context, in TargetInput) (TargetResult, error) {
	defer keepAlive(ctx)()
	t, d, err := a.target(ctx, in)
	if err != nil {
		return TargetResult{}, err
	}
	if in.Undo {
		if skip, err := a.untouched(ctx, in); skip || err != nil {
			return TargetResult{Skipped: skip}, err
		}
	}
	var states map[string]models.TargetState
	if err := a.storeCall(ctx, "load target state", func() (err error) {
		states, err = a.Store.TargetStates(ctx, []string{t.ID})
		return err
	}); err != nil {
		return TargetResult{}, err
	}
	lkg := ReleaseRef{ID: states[t.ID].LastKnownGoodID, Version: states[t.ID].LastKnownGoodVer}
	if err := a.mark(ctx, in, models.TargetDeploying, "deploying "+in.Release.Version); err != nil {
		return TargetResult{}, err
	}
	res, err := d.Deploy(ctx, a.request(ctx, in, t, in.previous()))
	countStep(ctx, t.Driver, "deploy", err == nil)
	if err != nil {
		_ = a.mark(ctx, in, failedStatus(in), err.Error())
		return TargetResult{}, a.driverErr(ctx, err)
	}
	if err := a.storeCall(ctx, "record the target's version", func() error {
		return a.Store.SetTargetCurrent(ctx, t.ID, in.Release.ID, res.Version, in.DeploymentID)
	}); err != nil {
		return TargetResult{}, err
	}
	status, msg := models.TargetDeployed, "now runs "+res.Version
	if in.Undo {
		status, msg = models.TargetRolledBack, "decommission undone: runs "+res.Version+" again"
	}
	if err := a.mark(ctx, in, status, msg); err != nil {
		return TargetResult{}, err
	}
	a.logEvent(ctx, in, "deploy", res.Log)
	return TargetResult{Version: res.Version, LastKnownGood: lkg, Log: tail(res.Log)}, nil
}

// RollbackTarget undoes the deployment's change of one target: it returns
// it to the release it is given (the last known good, or what ran there
// before), or removes the release when nothing ran there before. A target
// the deployment never touched is left alone.
func (a *Activities) RollbackTarget(ctx context.Context, in TargetInput) (TargetResult, error) {
	defer keepAlive(ctx)()
	t, d, err := a.target(ctx, in)
	if err != nil {
		return TargetResult{}, err
	}
	if skip, err := a.untouched(ctx, in); skip || err != nil {
		return TargetResult{Skipped: skip}, err
	}
	if err := a.resolveRelease(ctx, in.Application, &in.Release); err != nil {
		return TargetResult{}, err
	}
	var res drivers.Result
	remove := in.Release.ID == "" && in.Release.Version == ""
	if remove {
		res, err = d.Remove(ctx, a.request(ctx, in, t, in.previous()))
		countStep(ctx, t.Driver, "remove", err == nil)
	} else {
		res, err = d.Rollback(ctx, a.request(ctx, in, t, in.previous()))
		countStep(ctx, t.Driver, "rollback", err == nil)
	}
	if err != nil {
		_ = a.mark(ctx, in, models.TargetRollbackErr, err.Error())
		return TargetResult{}, a.driverErr(ctx, err)
	}
	if err := a.storeCall(ctx, "record the target's version", func() error {
		return a.Store.SetTargetCurrent(ctx, t.ID, in.Release.ID, res.Version, in.DeploymentID)
	}); err != nil {
		return TargetResult{}, err
	}
	msg := "rolled back to " + in.Release.Version
	if remove {
		msg = "rolled back: nothing ran there before, so the release was removed"
	}
	if err := a.mark(ctx, in, models.TargetRolledBack, msg); err != nil {
		return TargetResult{}, err
	}
	a.logEvent(ctx, in, "rollback", res.Log)
	return TargetResult{Version: res.Version, Log: tail(res.Log)}, nil
}

// resolveRelease fills in what the workflow knows of a release by id alone
// (its version and artifacts), or by version alone (its artifacts, when
// Transit knows it). A version Transit does not know is passed on as it is.
func (a *Activities) resolveRelease(ctx context.Context, application string, r *ReleaseRef) error {
	switch {
	case r.ID != "" && r.Version == "":
		var rel *models.Release
		if err := a.storeCall(ctx, "load release", func() (err error) {
			rel, err = a.Store.GetRelease(ctx, r.ID)
			return err
		}); err != nil {
			return a.planErr(err)
		}
		*r = ReleaseRef{ID: rel.ID, Version: rel.Version, Artifacts: rel.Artifacts.V}
	case r.ID == "" && r.Version != "":
		var rel *models.Release
		err := a.storeCall(ctx, "find release", func() (err error) {
			rel, err = a.Store.FindRelease(ctx, application, r.Version)
			return err
		})
		switch {
		case err == nil:
			*r = ReleaseRef{ID: rel.ID, Version: rel.Version, Artifacts: rel.Artifacts.V}
		case !errors.Is(err, models.ErrNotFound):
			return err
		}
	}
	return nil
}

// untouched reports whether the deployment never started to change the
// target (its row is still pending): there is nothing to undo, and undoing
// anyway could remove a version that ran before Transit knew the target.
func (a *Activities) untouched(ctx context.Context, in TargetInput) (bool, error) {
	var row *models.DeploymentTarget
	err := a.storeCall(ctx, "load the target's row", func() (err error) {
		row, err = a.Store.GetDeploymentTarget(ctx, in.DeploymentID, in.Target.ID)
		return err
	})
	switch {
	case errors.Is(err, models.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case row.Status == models.TargetPending || row.Status == models.TargetNotStarted:
		_ = a.mark(ctx, in, models.TargetNotStarted, "the rollout stopped before this target: nothing to undo")
		return true, nil
	}
	return false, nil
}

// RemoveTarget takes the release off a target (decommission), passing
// retain_data to the driver.
func (a *Activities) RemoveTarget(ctx context.Context, in TargetInput) (TargetResult, error) {
	defer keepAlive(ctx)()
	t, d, err := a.target(ctx, in)
	if err != nil {
		return TargetResult{}, err
	}
	if err := a.mark(ctx, in, models.TargetDeploying, "removing "+in.Release.Version); err != nil {
		return TargetResult{}, err
	}
	res, err := d.Remove(ctx, a.request(ctx, in, t, in.previous()))
	countStep(ctx, t.Driver, "remove", err == nil)
	if err != nil {
		_ = a.mark(ctx, in, models.TargetFailed, err.Error())
		return TargetResult{}, a.driverErr(ctx, err)
	}
	if err := a.storeCall(ctx, "record the target's version", func() error {
		return a.Store.SetTargetCurrent(ctx, t.ID, "", "", in.DeploymentID)
	}); err != nil {
		return TargetResult{}, err
	}
	msg := "removed " + in.Release.Version
	if in.RetainData {
		msg += "; data retained"
	}
	if err := a.mark(ctx, in, models.TargetRemoved, msg); err != nil {
		return TargetResult{}, err
	}
	a.logEvent(ctx, in, "remove", res.Log)
	return TargetResult{Version: "", LastKnownGood: in.Release, Log: tail(res.Log)}, nil
}

func failedStatus(in TargetInput) string {
	if in.Undo {
		return models.TargetRollbackErr
	}
	return models.TargetFailed
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
	countStep(ctx, t.Driver, "validate", res.Passed)
	status, msg := models.TargetValidated, models.Plural(len(in.Checks), "check")+" passed"
	if !res.Passed {
		status, msg = models.TargetFailed, "validation failed: "+strings.Join(failed, "; ")
	}
	if err := a.mark(ctx, in.TargetInput, status, msg); err != nil {
		return res, err
	}
	return res, nil
}

func (a *Activities) target(ctx context.Context, in TargetInput) (*models.Target, drivers.Driver, error) {
	var t *models.Target
	if err := a.storeCall(ctx, "load target "+in.Target.Name, func() (err error) {
		t, err = a.Store.GetTarget(ctx, in.Target.ID)
		return err
	}); err != nil {
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

// mark records a target's status in the deployment (keeping the versions
// the plan set), waiting out a database outage.
func (a *Activities) mark(ctx context.Context, in TargetInput, status, message string) error {
	return a.storeCall(ctx, "record the target's status", func() error {
		_, err := a.Store.SetTargetStatus(ctx, in.DeploymentID, []string{in.Target.ID}, status, message)
		return storeErr(err)
	})
}

// logEvent puts the tail of a driver's output on the deployment's timeline, once per step.
func (a *Activities) logEvent(ctx context.Context, in TargetInput, action, log string) {
	if strings.TrimSpace(log) == "" {
		return
	}
	ev := models.DeploymentEvent{Type: models.EventTargetLog, Message: fmt.Sprintf("%s on %s:\n%s", action, in.Target.Name, tail(log))}
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

// countStep counts one target step for the worker's metrics
// (models.MetricTargetSteps).
func countStep(ctx context.Context, driver, action string, ok bool) {
	if !activity.IsActivity(ctx) {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	activity.GetMetricsHandler(ctx).WithTags(map[string]string{"driver": driver, "action": action, "result": result}).
		Counter(models.MetricTargetSteps).Inc(1)
}
