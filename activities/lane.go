package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/transit-hq/transit/models"
)

// LaneInput names a deployment waiting for its turn.
type LaneInput struct {
	DeploymentID  string `json:"deployment_id"`
	ApplicationID string `json:"application_id"`
	EnvironmentID string `json:"environment_id"`
}

// LaneAhead returns the active deployments of the same application to the
// same environment that were submitted earlier.
func (a *Activities) LaneAhead(ctx context.Context, in LaneInput) ([]string, error) {
	ahead, err := a.Store.LaneAhead(ctx, &models.Deployment{ID: in.DeploymentID, ApplicationID: in.ApplicationID, EnvironmentID: in.EnvironmentID})
	if err == nil { // and, with on_conflict: wait, the conflicting ones (activities/conflicts.go)
		var more []string
		more, err = a.conflictsAhead(ctx, in)
		ahead = append(ahead, more...)
	}
	if err != nil || a.Temporal == nil {
		return ahead, err
	}
	live := ahead[:0]
	for _, id := range ahead {
		gone, why, err := a.workflowGone(ctx, id)
		if err != nil {
			return nil, err
		}
		if !gone {
			live = append(live, id)
			continue
		}
		if err := a.Store.CloseOrphan(ctx, id, why); err != nil {
			return nil, err
		}
		a.log().WarnContext(ctx, "closed a deployment whose workflow is gone", "deployment", id, "reason", why)
	}
	return live, nil
}

// orphanAge is how old a deployment with no workflow must be before it is
// taken as orphaned: the API creates the row just before it starts the workflow.
const orphanAge = 2 * time.Minute

// workflowGone reports whether the deployment's workflow no longer runs.
func (a *Activities) workflowGone(ctx context.Context, id string) (bool, string, error) {
	resp, err := a.Temporal.DescribeWorkflowExecution(ctx, models.WorkflowIDFor(id), "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		d, gerr := a.Store.GetDeployment(ctx, id)
		if gerr != nil {
			return false, "", gerr
		}
		return time.Since(d.CreatedAt) > orphanAge, "its workflow does not exist in Temporal", nil
	case err != nil:
		return false, "", fmt.Errorf("describe the workflow of deployment %s: %w", id, err)
	}
	status := resp.GetWorkflowExecutionInfo().GetStatus()
	if status == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return false, "", nil
	}
	return true, "its workflow ended outside Transit (" + status.String() + ") without recording an outcome", nil
}

// NextInLane returns the workflow id of the deployment whose turn comes
// after this one ends, or "".
func (a *Activities) NextInLane(ctx context.Context, in LaneInput) (string, error) {
	id, err := a.Store.NextInLane(ctx, in.ApplicationID, in.EnvironmentID, in.DeploymentID)
	if err != nil || id == "" {
		return "", err
	}
	return models.WorkflowIDFor(id), nil
}

// laneWakeLimit bounds how many waiting deployments one that ends wakes.
const laneWakeLimit = 20

// WakeLane returns the workflow ids of the deployments still active in the
// lane of one that ends, oldest first (at most 20): each is woken and looks
// for itself whether its turn has come, so that one whose workflow is gone
// cannot keep the next one waiting.
func (a *Activities) WakeLane(ctx context.Context, in LaneInput) ([]string, error) {
	ids, err := a.Store.ActiveInLane(ctx, in.ApplicationID, in.EnvironmentID, in.DeploymentID, laneWakeLimit)
	if err != nil {
		return nil, err
	}
	waiting, err := a.waitingOnConflict(ctx, in) // other lanes' deployments that wait for this one (on_conflict: wait)
	if err != nil {
		a.log().WarnContext(ctx, "could not find the deployments waiting on a conflict; they look again on their own", "err", err)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = models.WorkflowIDFor(id)
	}
	return append(out, waiting...), nil
}

// GateInput asks whether a deployment may change targets now.
type GateInput struct {
	DeploymentID  string     `json:"deployment_id"`
	ApplicationID string     `json:"application_id"`
	EnvironmentID string     `json:"environment_id"`
	NotBefore     *time.Time `json:"not_before,omitempty"`
	// Emergency: an emergency change passes freezes and closed windows.
	Emergency bool `json:"emergency,omitempty"`
}

// GateResult says whether the deployment may go on; if not, what holds it.
type GateResult struct {
	Open bool         `json:"open"`
	Hold *models.Hold `json:"hold,omitempty"`
	// Passed says which hold an emergency change passes.
	Passed string `json:"passed,omitempty"`
}

// Gate reads the environment's policy as it is now (not as it was when the
// deployment was planned) and says whether a rollout may run: not before
// not_before, inside a change window, outside every freeze, and not beside
// another rollout of the same lane. Time zones are worked out here, outside
// the workflow's deterministic code.
func (a *Activities) Gate(ctx context.Context, in GateInput) (GateResult, error) {
	now := a.clock().Now().UTC()
	if in.NotBefore != nil && in.NotBefore.After(now) {
		until := in.NotBefore.UTC()
		return GateResult{Hold: &models.Hold{Kind: models.HoldNotBefore, Until: &until,
			Reason: "not before " + until.Format(time.RFC3339) + ", as requested"}}, nil
	}
	env, err := a.Store.GetEnvironment(ctx, in.EnvironmentID)
	if err != nil {
		return GateResult{}, err
	}
	policy := env.Policy.V
	passed := ""
	if hold := policy.HoldAt(now); hold != nil && in.Emergency {
		passed = "an emergency change: passes " + hold.Reason
	} else if hold != nil {
		if hold.Kind == models.HoldWindow && hold.Until != nil {
			// The next opening may itself fall in a freeze: say when it
			// really opens.
			if open := policy.NextOpen(now); !open.IsZero() {
				u := open.UTC()
				hold.Until = &u
			}
		}
		return GateResult{Hold: hold}, nil
	}
	busy, err := a.Store.RollingOutInLane(ctx, in.ApplicationID, in.EnvironmentID, in.DeploymentID)
	if err != nil {
		return GateResult{}, err
	}
	if len(busy) > 0 {
		return GateResult{Hold: &models.Hold{Kind: models.HoldQueued,
			Reason: fmt.Sprintf("%s of the same application to %s is rolling out: rollouts of one lane never run side by side",
				strings.Join(busy, ", "), env.Name)}}, nil
	}
	return GateResult{Open: true, Passed: passed}, nil
}
