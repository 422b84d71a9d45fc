// Package activities holds the deployment workflow's activities: the short
// recording steps and the long ones that change targets through drivers.
// Every activity is idempotent: running it twice leaves the same result.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// Clock tells time and waits. Production uses RealClock; a benchmark or
// test may run early life support on a faster clock.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Activities are the deployment workflow's activities, with their
// dependencies injected.
type Activities struct {
	Store   *store.Store
	Drivers *drivers.Registry
	Clock   Clock
	Logger  *slog.Logger
	// Temporal, when set, lets the lane see deployments whose workflow is
	// gone (terminated outside Transit) and close them.
	Temporal WorkflowDescriber
}

// WorkflowDescriber is what the activities need of a Temporal client.
type WorkflowDescriber interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Error types that must not be retried.
const (
	ErrTypeEntryCriteria = "EntryCriteria"
	ErrTypeUnreachable   = "Unreachable"
	ErrTypeBadPlan       = "BadPlan"
	ErrTypeDriver        = "Driver"
)

func (a *Activities) clock() Clock {
	if a.Clock == nil {
		return RealClock{}
	}
	return a.Clock
}

func (a *Activities) log() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

// actor is how the audit log names the worker acting for a deployment.
func actor(deploymentID string) store.Actor {
	return store.Actor{Subject: "transit-worker", RequestID: models.WorkflowIDFor(deploymentID)}
}

// RecordInput is one step of the workflow to write to the deployment's row,
// its timeline and the audit log.
type RecordInput struct {
	DeploymentID string         `json:"deployment_id"`
	Key          string         `json:"key"`
	Status       *models.Status `json:"status,omitempty"`
	Scenario     *string        `json:"scenario,omitempty"`
	WaveIndex    *int           `json:"wave_index,omitempty"`
	WaveCount    *int           `json:"wave_count,omitempty"`
	Plan         *models.Plan   `json:"plan,omitempty"`
	Outcome      *string        `json:"outcome,omitempty"`
	PONRAt       *time.Time     `json:"ponr_at,omitempty"`
	ELSEndsAt    *time.Time     `json:"els_ends_at,omitempty"`
	Type         string         `json:"type"`
	Message      string         `json:"message"`
	Data         any            `json:"data,omitempty"`
}

// Record writes one step, once per key.
func (a *Activities) Record(ctx context.Context, in RecordInput) error {
	change := store.DeploymentChange{Status: in.Status, Scenario: in.Scenario, WaveIndex: in.WaveIndex, WaveCount: in.WaveCount,
		Plan: in.Plan, Outcome: in.Outcome, PONRAt: in.PONRAt, ELSEndsAt: in.ELSEndsAt}
	ev := models.DeploymentEvent{Type: in.Type, Message: in.Message, Data: models.NewJSON(in.Data)}
	return a.Store.RecordStep(ctx, actor(in.DeploymentID), in.DeploymentID, in.Key, change, ev)
}

// RecordVote stores an accepted vote.
func (a *Activities) RecordVote(ctx context.Context, in models.Approval) error {
	return a.Store.RecordApproval(ctx, actor(in.DeploymentID), in)
}

// NoteInput is a line for the timeline that changes nothing else.
type NoteInput struct {
	DeploymentID string `json:"deployment_id"`
	Key          string `json:"key"`
	Type         string `json:"type"`
	Message      string `json:"message"`
}

// Note appends a line to the deployment's timeline.
func (a *Activities) Note(ctx context.Context, in NoteInput) error {
	return a.Store.AppendEvent(ctx, in.DeploymentID, in.Key, models.DeploymentEvent{Type: in.Type, Message: in.Message})
}

// PrincipalResult is what Transit knows of a subject.
type PrincipalResult struct {
	Groups []string `json:"groups"`
	Known  bool     `json:"known"`
}

// LookupPrincipal returns the groups of a subject, for votes that arrive as
// Signals and so carry no token.
func (a *Activities) LookupPrincipal(ctx context.Context, subject string) (PrincipalResult, error) {
	groups, known, err := a.Store.PrincipalGroups(ctx, subject)
	return PrincipalResult{Groups: groups, Known: known}, err
}

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

// ExitInput asks whether early life support's exit criteria are met.
type ExitInput struct {
	DeploymentID string              `json:"deployment_id"`
	Criteria     models.ExitCriteria `json:"criteria"`
	ProbeRuns    int                 `json:"probe_runs"`
	ProbePassed  int                 `json:"probe_passed"`
}

// ExitResult says whether the deployment is handed over, and why not.
type ExitResult struct {
	Met     bool     `json:"met"`
	Reasons []string `json:"reasons"`
}

// ExitCriteria checks open incidents at or above the blocking severity and
// the probe success ratio.
func (a *Activities) ExitCriteria(ctx context.Context, in ExitInput) (ExitResult, error) {
	incidents, err := a.Store.ListIncidents(ctx, in.DeploymentID)
	if err != nil {
		return ExitResult{}, err
	}
	res := ExitResult{Met: true, Reasons: []string{}}
	limit := models.SeverityRank(in.Criteria.MaxOpenIncidentSeverity)
	for _, inc := range incidents {
		if inc.Status == models.IncidentOpen && models.SeverityRank(inc.Severity) <= limit {
			res.Met = false
			res.Reasons = append(res.Reasons, fmt.Sprintf("open %s incident %s: %s", inc.Severity, inc.ID, inc.Title))
		}
	}
	if in.ProbeRuns > 0 {
		ratio := float64(in.ProbePassed) / float64(in.ProbeRuns)
		if ratio < in.Criteria.MinProbeSuccessRatio {
			res.Met = false
			res.Reasons = append(res.Reasons, fmt.Sprintf("probe success ratio %.3f is below %.3f (%d of %d runs passed)",
				ratio, in.Criteria.MinProbeSuccessRatio, in.ProbePassed, in.ProbeRuns))
		}
	}
	return res, nil
}

// CommitInput makes a release the last known good of targets.
type CommitInput struct {
	DeploymentID string   `json:"deployment_id"`
	TargetIDs    []string `json:"target_ids"`
	ReleaseID    string   `json:"release_id"`
	Version      string   `json:"version"`
}

// CommitLastKnownGood records the release (or none, for a decommission) as
// each target's last known good.
func (a *Activities) CommitLastKnownGood(ctx context.Context, in CommitInput) error {
	return a.Store.CommitLastKnownGood(ctx, actor(in.DeploymentID), in.DeploymentID, in.TargetIDs, in.ReleaseID, in.Version)
}

func nonRetryable(kind string, err error, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), kind, err)
}

// heartbeat records progress when running as an activity (and does nothing
// when called outside one, as in unit tests of helpers).
func heartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// keepAliveEvery is how often keepAlive heartbeats: well inside the
// shortest heartbeat timeout the workflow sets (15 s).
const keepAliveEvery = 5 * time.Second

// keepAlive heartbeats until the returned stop is called, so that an
// activity blocked in one long driver call (an HTTP request, a script, a
// check with several tries) is seen alive, and learns of its cancellation.
func keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(keepAliveEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}
