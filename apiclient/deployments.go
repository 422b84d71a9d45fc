package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/transit-hq/transit/models"
)

// CreateDeploymentRequest is the body of POST /deployments (api.CreateDeploymentRequest).
type CreateDeploymentRequest struct {
	// Release is a release id; or give Application (id or name) and Version.
	Release     string `json:"release,omitempty"`
	Application string `json:"application,omitempty"`
	Version     string `json:"version,omitempty"`
	// Environment is an environment id, or its name within the release's application.
	Environment string `json:"environment"`
	// Scenario is install, upgrade, downgrade or decommission; empty: inferred.
	Scenario string `json:"scenario,omitempty"`
	// Strategy overrides the environment's; nil: the environment's.
	Strategy   *models.Strategy `json:"strategy,omitempty"`
	NotBefore  *time.Time       `json:"not_before,omitempty"`
	RetainData bool             `json:"retain_data,omitempty"`
	Reason     string           `json:"reason,omitempty"`
	// Emergency makes it an emergency change, with why (and the incident).
	Emergency              *models.Emergency `json:"emergency,omitempty"`
	AcknowledgeKnownErrors []string          `json:"acknowledge_known_errors,omitempty"`
}

// DeploymentResponse is what POST /deployments returns (api.DeploymentResponse).
type DeploymentResponse struct {
	Deployment models.Deployment `json:"deployment"`
	WorkflowID string            `json:"workflow_id"`
	TemporalUI string            `json:"temporal_ui"`
}

// Deployment is what GET /deployments/{id} returns (api.DeploymentDetail):
// the row, its plan, votes, per-target states, incidents, and the
// workflow's live state while it runs.
type Deployment struct {
	Deployment models.Deployment         `json:"deployment"`
	WorkflowID string                    `json:"workflow_id"`
	TemporalUI string                    `json:"temporal_ui"`
	Approvals  []models.Approval         `json:"approvals"`
	Targets    []models.DeploymentTarget `json:"targets"`
	Incidents  []models.Incident         `json:"incidents"`
	Live       *models.DeploymentState   `json:"live,omitempty"`
}

// DeploymentFilter selects deployments for ListDeployments; empty fields
// do not filter.
type DeploymentFilter struct {
	// ApplicationID is an application's id or name.
	ApplicationID string
	EnvironmentID string
	ReleaseID     string
	Status        models.Status
	RequestedBy   string
	// IncludePlan asks for each deployment's plan (left out by default).
	IncludePlan bool
	ListOptions
}

// ApprovalRequest is the body of POST /deployments/{id}/approvals (api.ApprovalRequest).
type ApprovalRequest struct {
	// Decision is approve or reject.
	Decision string `json:"decision"`
	Comment  string `json:"comment,omitempty"`
}

// ControlRequest is the body of pause, resume, abort and rollback (api.ControlRequest).
type ControlRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ControlResult is what a control returns: which one was accepted, and the
// deployment's status when it was.
type ControlResult struct {
	Accepted string        `json:"accepted"`
	Status   models.Status `json:"status"`
}

// The controls of a running deployment.
const (
	ControlPause    = "pause"
	ControlResume   = "resume"
	ControlAbort    = "abort"
	ControlRollback = "rollback"
)

// EventsPage is one page of a deployment's timeline.
type EventsPage = Page[models.DeploymentEvent]

// CreateDeployment submits a deployment. With WithIdempotencyKey, a
// repeated request returns the first one's deployment.
func (c *Client) CreateDeployment(ctx context.Context, req CreateDeploymentRequest, opts ...Option) (DeploymentResponse, error) {
	var out DeploymentResponse
	err := c.Do(ctx, http.MethodPost, pathOf("deployments"), req, &out, opts...)
	return out, err
}

// GetDeployment returns a deployment in full.
func (c *Client) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.Do(ctx, http.MethodGet, pathOf("deployments", id), nil, &out)
	return out, err
}

// ListDeployments returns one page of deployments, newest first.
func (c *Client) ListDeployments(ctx context.Context, f DeploymentFilter) (Page[models.Deployment], error) {
	include := ""
	if f.IncludePlan {
		include = "plan"
	}
	q := f.query("application_id", f.ApplicationID, "environment_id", f.EnvironmentID, "release_id", f.ReleaseID,
		"status", string(f.Status), "requested_by", f.RequestedBy, "include", include)
	var out Page[models.Deployment]
	err := c.Do(ctx, http.MethodGet, withQuery(pathOf("deployments"), q), nil, &out)
	return out, err
}

// DeploymentEvents returns the deployment's timeline after cursor (the
// NextCursor of the previous page, or the id of the last event seen; empty:
// from the start), up to o.Limit events (0: up to 500).
func (c *Client) DeploymentEvents(ctx context.Context, id string, o ListOptions) (EventsPage, error) {
	var out EventsPage
	err := c.Do(ctx, http.MethodGet, withQuery(pathOf("deployments", id, "events"), o.query()), nil, &out)
	return out, err
}

// Vote approves or rejects a deployment that awaits approval.
func (c *Client) Vote(ctx context.Context, id string, req ApprovalRequest, opts ...Option) (models.VoteResult, error) {
	var out models.VoteResult
	err := c.Do(ctx, http.MethodPost, pathOf("deployments", id, "approvals"), req, &out, opts...)
	return out, err
}

// Approve votes for a deployment.
func (c *Client) Approve(ctx context.Context, id, comment string, opts ...Option) (models.VoteResult, error) {
	return c.Vote(ctx, id, ApprovalRequest{Decision: models.DecisionApprove, Comment: comment}, opts...)
}

// Reject votes against a deployment, which ends it.
func (c *Client) Reject(ctx context.Context, id, comment string, opts ...Option) (models.VoteResult, error) {
	return c.Vote(ctx, id, ApprovalRequest{Decision: models.DecisionReject, Comment: comment}, opts...)
}

// Control sends one of ControlPause, ControlResume, ControlAbort and
// ControlRollback to a running deployment.
func (c *Client) Control(ctx context.Context, id, control string, req ControlRequest, opts ...Option) (ControlResult, error) {
	switch control {
	case ControlPause, ControlResume, ControlAbort, ControlRollback:
	default:
		return ControlResult{}, fmt.Errorf("%q is not a control: pause, resume, abort or rollback", control)
	}
	var out ControlResult
	err := c.Do(ctx, http.MethodPost, pathOf("deployments", id, control), req, &out, opts...)
	return out, err
}

// Pause holds a deployment before its next wave.
func (c *Client) Pause(ctx context.Context, id, reason string, opts ...Option) (ControlResult, error) {
	return c.Control(ctx, id, ControlPause, ControlRequest{Reason: reason}, opts...)
}

// Resume lets a paused deployment go on.
func (c *Client) Resume(ctx context.Context, id, reason string, opts ...Option) (ControlResult, error) {
	return c.Control(ctx, id, ControlResume, ControlRequest{Reason: reason}, opts...)
}

// Abort stops a deployment.
func (c *Client) Abort(ctx context.Context, id, reason string, opts ...Option) (ControlResult, error) {
	return c.Control(ctx, id, ControlAbort, ControlRequest{Reason: reason}, opts...)
}

// Rollback rolls a deployment back.
func (c *Client) Rollback(ctx context.Context, id, reason string, opts ...Option) (ControlResult, error) {
	return c.Control(ctx, id, ControlRollback, ControlRequest{Reason: reason}, opts...)
}

// Watch passes each new event of the deployment to print, polling every
// every, until the deployment ends; it returns its final state.
func (c *Client) Watch(ctx context.Context, id string, every time.Duration, print func(models.DeploymentEvent)) (Deployment, error) {
	var last int64
	drain := func() error {
		for {
			page, err := c.DeploymentEvents(ctx, id, ListOptions{Cursor: cursorAfter(last)})
			if err != nil {
				return err
			}
			for _, ev := range page.Items {
				print(ev)
				last = ev.ID
			}
			if page.NextCursor == "" || len(page.Items) == 0 {
				return nil
			}
		}
	}
	for {
		if err := drain(); err != nil {
			return Deployment{}, err
		}
		d, err := c.GetDeployment(ctx, id)
		if err != nil {
			return d, err
		}
		if d.Deployment.Status.Terminal() {
			// The last events may have been written after the drain;
			// missing them is no reason to fail a deployment that ended.
			_ = drain()
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(every):
		}
	}
}

func cursorAfter(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}
