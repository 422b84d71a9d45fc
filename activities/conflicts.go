package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// checkConflicts finds the other active deployments (any application,
// other lanes) whose targets share a value of a conflict label with the
// plan's targets, names them in the plan and on the timeline, and applies
// the environment's on_conflict:
//   - warn: the deployment goes on;
//   - refuse: it is refused (it ends rejected, naming the conflicts);
//   - wait: the conflicting deployments submitted before it are added to
//     the ones it waits for, as in its lane (see conflictsAhead), and it
//     plans again when they have ended.
//
// An emergency change is only warned.
func (a *Activities) checkConflicts(ctx context.Context, in models.DeploymentInput, plan *models.Plan) error {
	var ids []string
	for _, wave := range plan.Waves {
		for _, t := range wave {
			ids = append(ids, t.ID)
		}
	}
	found, err := a.Store.LabelConflicts(ctx, store.ConflictQuery{DeploymentID: in.DeploymentID, ApplicationID: in.ApplicationID,
		EnvironmentID: in.EnvironmentID, Label: plan.Policy.ConflictLabel, TargetIDs: ids})
	if err != nil || len(found) == 0 {
		return err
	}
	rule := plan.Policy.ConflictRule(in.Emergency != nil)
	seen := map[string]bool{}
	for _, c := range found {
		line := c.String()
		if rule == models.OnConflictWait && c.DeploymentID < in.DeploymentID {
			line += "; waits for it to end"
			if !seen[c.DeploymentID] {
				plan.AheadInQueue = append(plan.AheadInQueue, c.DeploymentID)
			}
		}
		seen[c.DeploymentID] = true
		plan.Conflicts = append(plan.Conflicts, line)
	}
	summary := fmt.Sprintf("conflicts with %s (on_conflict: %s): %s", models.Plural(len(seen), "active deployment"), rule,
		strings.Join(plan.Conflicts, "; "))
	if rule == models.OnConflictRefuse {
		return nonRetryable(models.ErrTypeRefused, nil, "refused by the conflict policy of %s: %s", plan.Environment, summary)
	}
	sum := sha256.Sum256([]byte(summary))
	if err := a.Store.AppendEvent(ctx, in.DeploymentID, "plan-conflicts/"+hex.EncodeToString(sum[:8]), models.DeploymentEvent{
		Type: models.EventProgress, Message: "planning found " + summary}); err != nil {
		return storeErr(err)
	}
	return nil
}

// conflictsAhead returns the deployments that a deployment whose
// environment says on_conflict: wait still waits for: the active ones of
// other lanes, submitted before it, whose targets share a value of a
// conflict label with its planned targets.
func (a *Activities) conflictsAhead(ctx context.Context, in LaneInput) ([]string, error) {
	env, err := a.Store.GetEnvironment(ctx, in.EnvironmentID)
	if models.IsNotFound(err) || (err == nil && env.Policy.V.OnConflict != models.OnConflictWait) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := a.Store.GetDeployment(ctx, in.DeploymentID)
	if models.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	plan := d.Plan.V
	if plan == nil || env.Policy.V.ConflictRule(d.Emergency.V != nil) != models.OnConflictWait {
		return nil, nil
	}
	var ids []string
	for _, wave := range plan.Waves {
		for _, t := range wave {
			ids = append(ids, t.ID)
		}
	}
	found, err := a.Store.LabelConflicts(ctx, store.ConflictQuery{DeploymentID: in.DeploymentID, ApplicationID: in.ApplicationID,
		EnvironmentID: in.EnvironmentID, Label: env.Policy.V.ConflictLabel, TargetIDs: ids, SubmittedBefore: true})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range found {
		if len(out) == 0 || out[len(out)-1] != c.DeploymentID {
			out = append(out, c.DeploymentID)
		}
	}
	return out, nil
}

// waitingOnConflict returns the workflow ids of the queued deployments of
// other lanes that wait for this one because of a conflict (their plan
// names it ahead of them), so that it wakes them when it ends.
func (a *Activities) waitingOnConflict(ctx context.Context, in LaneInput) ([]string, error) {
	queued, err := a.Store.QueuedOnConflict(ctx, in.ApplicationID, in.EnvironmentID, store.MaxPageSize)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range queued {
		if p := d.Plan.V; p != nil && slices.Contains(p.AheadInQueue, in.DeploymentID) {
			out = append(out, models.WorkflowIDFor(d.ID))
		}
		if len(out) >= laneWakeLimit {
			break
		}
	}
	return out, nil
}
