package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// CreateDeploymentRequest is the body of POST /deployments.
type CreateDeploymentRequest struct {
	// Release is a release id; or give Application and Version.
	Release     string `json:"release"`
	Application string `json:"application"`
	Version     string `json:"version"`
	// Environment is an environment id, or its name within the release's application.
	Environment string           `json:"environment"`
	Scenario    string           `json:"scenario"`
	Strategy    *models.Strategy `json:"strategy"`
	NotBefore   *time.Time       `json:"not_before"`
	RetainData  bool             `json:"retain_data"`
	Reason      string           `json:"reason"`
	// Emergency makes it an emergency change: {"reason": "…", "incident": "INC-123"}.
	Emergency *models.Emergency `json:"emergency"`
	// AcknowledgeKnownErrors lists the release's open known errors (ids)
	// that the requester read and accepts.
	AcknowledgeKnownErrors []string `json:"acknowledge_known_errors"`
}

// DeploymentResponse is a deployment with where to watch it.
type DeploymentResponse struct {
	Deployment *models.Deployment `json:"deployment"`
	WorkflowID string             `json:"workflow_id"`
	TemporalUI string             `json:"temporal_ui"`
}

// DeploymentDetail is GET /deployments/{id}: the row, its plan, votes,
// per-target states, incidents, and the workflow's live state when it runs.
type DeploymentDetail struct {
	DeploymentResponse
	Approvals []models.Approval         `json:"approvals"`
	Targets   []models.DeploymentTarget `json:"targets"`
	Incidents []models.Incident         `json:"incidents"`
	Live      *models.DeploymentState   `json:"live,omitempty"`
}

func (h *Handler) uiLink(workflowID string) string {
	if h.uiURL == "" {
		return ""
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", h.uiURL, url.PathEscape(h.namespace), url.PathEscape(workflowID))
}

func (h *Handler) createDeployment(c *gin.Context) {
	var req CreateDeploymentRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	rel, env, err := h.resolveDeployment(c, req)
	if err != nil {
		h.fail(c, err)
		return
	}
	in := models.DeploymentInput{ApplicationID: rel.ApplicationID, EnvironmentID: env.ID, ReleaseID: rel.ID,
		Scenario: req.Scenario, Strategy: req.Strategy, NotBefore: req.NotBefore, RetainData: req.RetainData,
		Reason: strings.TrimSpace(req.Reason), Emergency: req.Emergency, AcknowledgedKnownErrors: req.AcknowledgeKnownErrors}
	if err := in.Validate(); err != nil {
		h.fail(c, err)
		return
	}
	app, err := h.store.GetApplication(c, rel.ApplicationID)
	if err == nil {
		err = h.mayDeploy(c, app, env, in.Strategy)
	}
	if err != nil {
		h.fail(c, err)
		return
	}
	key := c.GetHeader("Idempotency-Key")
	if len(key) > 200 {
		h.fail(c, badRequest("Idempotency-Key must be at most 200 characters"))
		return
	}
	scenario := in.Scenario
	if scenario == "" {
		// What Transit knows runs there; planning asks the targets themselves.
		if scenario, err = h.store.InferScenario(c, env.ID, rel.Version); err != nil {
			h.fail(c, err)
			return
		}
	}
	if err := h.promoted(c, rel, env, scenario); err != nil {
		h.fail(c, err)
		return
	}
	if scenario != models.ScenarioDecommission {
		if err := h.knownErrorsAcknowledged(c, rel, env, in.AcknowledgedKnownErrors); err != nil {
			h.fail(c, err)
			return
		}
	}
	d := &models.Deployment{ApplicationID: in.ApplicationID, EnvironmentID: in.EnvironmentID, ReleaseID: in.ReleaseID,
		ReleaseVersion: rel.Version, Scenario: scenario, Strategy: models.NewJSON(in.Strategy), NotBefore: in.NotBefore,
		RetainData: in.RetainData, Reason: in.Reason, Emergency: models.NewJSON(in.Emergency)}
	d, created, err := h.store.CreateDeployment(c, actor(c), d, store.IdempotencyKey{Key: key, RequestHash: requestHash(in)})
	if err != nil {
		h.fail(c, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
		if d.Status.Terminal() {
			c.JSON(status, DeploymentResponse{Deployment: d, WorkflowID: d.WorkflowID, TemporalUI: h.uiLink(d.WorkflowID)})
			return
		}
	}
	in.DeploymentID, in.RequestedBy = d.ID, d.RequestedBy
	in.Link = h.publicURL + "/deployments/" + d.ID // the console's page
	opts := client.StartWorkflowOptions{
		ID:                    d.WorkflowID,
		TaskQueue:             h.taskQueue,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: models.StartAttributes(app.Name, env.Name, rel.Version),
		StaticSummary:         emergencyMark(in.Emergency) + summary(d.Scenario, app.Name, rel.Version, env.Name),
		StaticDetails: fmt.Sprintf("Deployment %s requested by %s.\n\nReason: %s\n\nTransit: [%s](%s)",
			d.ID, d.RequestedBy, orNone(in.Reason), in.Link, in.Link),
	}
	if err := h.start(c, opts, in); err != nil {
		msg := "the deployment could not be started because Temporal did not answer: " + err.Error()
		if created {
			// Nothing runs it: end it, and free its key for a retry.
			if ferr := h.store.FailDeploymentStart(context.WithoutCancel(c), actor(c), d.ID, msg); ferr != nil {
				h.log.ErrorContext(c, "mark deployment failed", "deployment", d.ID, "err", ferr)
			}
			msg += "; nothing was deployed, try again when Temporal is reachable"
		} else {
			msg += "; deployment " + d.ID + " is kept: repeat the request with the same Idempotency-Key to start it"
		}
		h.fail(c, &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable, message: msg})
		return
	}
	c.JSON(status, DeploymentResponse{Deployment: d, WorkflowID: d.WorkflowID, TemporalUI: h.uiLink(d.WorkflowID)})
}

// promoted refuses a release that has not passed the environments the
// policy's promotion asks for (a decommission needs none).
func (h *Handler) promoted(c *gin.Context, rel *models.Release, env *models.Environment, scenario string) error {
	pr := env.Policy.V.Promotion
	if !pr.Required() || scenario == models.ScenarioDecommission {
		return nil
	}
	steps, err := h.store.ReleaseLifecycle(c, rel)
	if err != nil {
		return err
	}
	if gaps := pr.Gap(env, steps, time.Now()); len(gaps) > 0 {
		return fmt.Errorf("release %s may not go to %s yet: %s (the promotion policy of %s): %w",
			rel.Version, env.Name, strings.Join(gaps, "; "), env.Name, models.ErrConflict)
	}
	return nil
}

// mayDeploy refuses a deployer another team's application, and a
// strategy looser than the environment's: only a release_manager may
// loosen it.
func (h *Handler) mayDeploy(c *gin.Context, app *models.Application, env *models.Environment, strategy *models.Strategy) error {
	if err := teamOwns(c, app); err != nil {
		return err
	}
	if !c.GetBool(ctxTeamBound) || strategy == nil {
		return nil
	}
	policy := env.Policy.V
	policy.Normalize()
	if loose := strategy.Loosens(policy.Strategy); len(loose) > 0 {
		return &apiError{status: http.StatusForbidden, code: CodeForbidden,
			message: fmt.Sprintf("a deployer may only tighten environment %s's strategy; this one loosens it: %s. Leave strategy out, tighten it, or ask a release_manager",
				env.Name, strings.Join(loose, "; "))}
	}
	return nil
}

func emergencyMark(e *models.Emergency) string {
	if e == nil {
		return ""
	}
	return "EMERGENCY: "
}

// summary is the workflow's title in the Temporal UI: "Deploy shop 2.0.0 to
// prod", "Decommission shop 1.0.0 from prod".
func summary(scenario, app, version, env string) string {
	if scenario == models.ScenarioDecommission {
		return fmt.Sprintf("Decommission %s %s from %s", app, version, env)
	}
	return fmt.Sprintf("%s %s %s to %s", models.Verb(scenario), app, version, env)
}

// start starts the deployment's workflow, once: a workflow that already
// runs (a repeated request, or a start whose answer was lost) is success.
func (h *Handler) start(c *gin.Context, opts client.StartWorkflowOptions, in models.DeploymentInput) error {
	_, err := h.temporal.ExecuteWorkflow(c, opts, models.WorkflowDeployment, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err == nil || errors.As(err, &started) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c), 5*time.Second)
	defer cancel()
	if _, derr := h.temporal.DescribeWorkflowExecution(ctx, opts.ID, ""); derr == nil {
		return nil
	}
	return err
}

// requestHash fingerprints what a deployment request asks for, so that an
// Idempotency-Key reused for a different request is refused.
func requestHash(in models.DeploymentInput) string {
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func orNone(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// resolveDeployment finds the release and environment a request names.
func (h *Handler) resolveDeployment(c *gin.Context, req CreateDeploymentRequest) (*models.Release, *models.Environment, error) {
	v := &models.ValidationError{}
	var rel *models.Release
	switch {
	case req.Release != "":
		r, err := h.store.GetRelease(c, req.Release)
		if models.IsNotFound(err) {
			v.Add("release", "no release has id %q", req.Release)
		} else if err != nil {
			return nil, nil, err
		}
		rel = r
	case req.Application != "" && req.Version != "":
		appID, err := h.resolveApplication(c, "application", req.Application)
		if err != nil {
			return nil, nil, err
		}
		page, err := h.store.ListReleases(c, store.ListOptions{Limit: 1, Filters: map[string]string{"application_id": appID, "version": req.Version}})
		if err != nil {
			return nil, nil, err
		}
		if len(page.Items) == 0 {
			v.Add("version", "application %s has no release %q", req.Application, req.Version)
		} else {
			rel = &page.Items[0]
		}
	default:
		v.Add("release", "is required: a release id, or application and version")
	}
	if req.Environment == "" {
		v.Add("environment", "is required: an environment id, or its name")
	}
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	env, err := h.store.GetEnvironment(c, req.Environment)
	if models.IsNotFound(err) {
		page, lerr := h.store.ListEnvironments(c, store.ListOptions{Limit: 1, Filters: map[string]string{"application_id": rel.ApplicationID, "name": req.Environment}})
		if lerr != nil {
			return nil, nil, lerr
		}
		if len(page.Items) == 0 {
			return nil, nil, models.Invalid("environment", "the release's application has no environment with id or name %q", req.Environment)
		}
		env, err = &page.Items[0], nil
	}
	if err != nil {
		return nil, nil, err
	}
	if env.ApplicationID != rel.ApplicationID {
		return nil, nil, models.Invalid("environment", "environment %s belongs to another application than release %s", env.ID, rel.ID)
	}
	return rel, env, nil
}

func (h *Handler) getDeployment(c *gin.Context) {
	out, err := h.deploymentDetail(c, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// deploymentDetail is what GET /deployments/{id} (and the console's page)
// shows.
func (h *Handler) deploymentDetail(c *gin.Context, id string) (DeploymentDetail, error) {
	d, err := h.store.GetDeployment(c, id)
	if err != nil {
		return DeploymentDetail{}, err
	}
	out := DeploymentDetail{DeploymentResponse: DeploymentResponse{Deployment: d, WorkflowID: d.WorkflowID, TemporalUI: h.uiLink(d.WorkflowID)}}
	if out.Approvals, err = h.store.ListApprovals(c, d.ID); err != nil {
		return out, err
	}
	if out.Targets, err = h.store.ListDeploymentTargets(c, d.ID); err != nil {
		return out, err
	}
	if out.Incidents, err = h.store.ListIncidents(c, d.ID); err != nil {
		return out, err
	}
	if !d.Status.Terminal() {
		// The workflow is the source of truth while it runs; the row may lag
		// by a step. Best effort: the row alone is still a full answer.
		qctx, cancel := context.WithTimeout(c, 2*time.Second)
		defer cancel()
		if v, err := h.temporal.QueryWorkflow(qctx, d.WorkflowID, "", models.QueryStatus); err == nil {
			var live models.DeploymentState
			if v.Get(&live) == nil {
				out.Live = &live
			}
		}
		if closed, err := h.reconcile(c, d); err == nil && closed != nil {
			out.Deployment = closed
		}
	}
	return out, nil
}

// reconcile closes a deployment whose workflow ended outside Transit (an
// operator terminated it) while its row still says it is active, and wakes
// the next deployment of its lane. It returns the closed row, or nil.
func (h *Handler) reconcile(c *gin.Context, d *models.Deployment) (*models.Deployment, error) {
	ctx, cancel := context.WithTimeout(c, 2*time.Second)
	defer cancel()
	desc, err := h.temporal.DescribeWorkflowExecution(ctx, d.WorkflowID, "")
	if err != nil {
		return nil, err
	}
	switch st := desc.GetWorkflowExecutionInfo().GetStatus(); st {
	case enums.WORKFLOW_EXECUTION_STATUS_TERMINATED, enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
		enums.WORKFLOW_EXECUTION_STATUS_FAILED, enums.WORKFLOW_EXECUTION_STATUS_CANCELED:
		reason := "its workflow ended outside Transit (" + st.String() + ") without recording an outcome"
		if err := h.store.CloseOrphan(context.WithoutCancel(c), d.ID, reason); err != nil {
			return nil, err
		}
		if next, err := h.store.NextInLane(c, d.ApplicationID, d.EnvironmentID, d.ID); err == nil && next != "" {
			_ = h.temporal.SignalWorkflow(ctx, models.WorkflowIDFor(next), "", models.SignalLaneFree, nil)
		}
		return h.store.GetDeployment(c, d.ID)
	}
	return nil, nil
}

func (h *Handler) listDeployments(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Deployment], error) {
		// A page carries no plans (a plan grows with the fleet), unless
		// asked for with include=plan; GET /deployments/{id} has it.
		switch include := o.Filters["include"]; include {
		case "":
			o.Omit = []string{"plan"}
		case "plan":
		default:
			return store.Page[models.Deployment]{}, badRequest(fmt.Sprintf("include %q: the only value is plan", include))
		}
		delete(o.Filters, "include")
		if err := h.resolveApplicationFilter(c, o); err != nil {
			return store.Page[models.Deployment]{}, err
		}
		return h.store.ListDeployments(c, o)
	}, "application_id", "environment_id", "release_id", "status", "requested_by", "include")(c)
}

// EventsPage is one page of a deployment's timeline.
type EventsPage struct {
	Items      []models.DeploymentEvent `json:"items"`
	NextCursor string                   `json:"next_cursor,omitempty"`
}

func (h *Handler) listDeploymentEvents(c *gin.Context) {
	opt, err := listOptions(c)
	if err != nil {
		h.fail(c, err)
		return
	}
	if _, err := h.store.GetDeployment(c, c.Param("id")); err != nil {
		h.fail(c, err)
		return
	}
	limit := opt.Limit
	if limit == 0 {
		limit = store.MaxPageSize
	}
	var after int64
	if opt.After != "" {
		if after, err = strconv.ParseInt(opt.After, 10, 64); err != nil {
			h.fail(c, badRequest("cursor "+strconv.Quote(opt.After)+" is not a cursor this list returned"))
			return
		}
	}
	events, err := h.store.ListDeploymentEvents(c, c.Param("id"), after, limit+1)
	if err != nil {
		h.fail(c, err)
		return
	}
	page := EventsPage{Items: events}
	if len(events) > limit {
		page.Items = events[:limit]
		page.NextCursor = strconv.FormatInt(events[limit-1].ID, 10)
	}
	if page.Items == nil {
		page.Items = []models.DeploymentEvent{}
	}
	c.JSON(http.StatusOK, page)
}

// ApprovalRequest is the body of POST /deployments/{id}/approvals.
type ApprovalRequest struct {
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
}

func (h *Handler) approve(c *gin.Context) {
	var req ApprovalRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	if req.Decision != models.DecisionApprove && req.Decision != models.DecisionReject {
		h.fail(c, models.Invalid("decision", "%q must be approve or reject", req.Decision))
		return
	}
	if len(req.Comment) > 4096 {
		h.fail(c, models.Invalid("comment", "must be at most 4096 characters"))
		return
	}
	p, _ := principal(c)
	res, err := h.vote(c, p, c.Param("id"), req.Decision, req.Comment)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// vote sends p's vote, signed, through the deployment's Update: the path of
// the API and of the console alike.
func (h *Handler) vote(c *gin.Context, p models.Principal, id, decision, comment string) (models.VoteResult, error) {
	var res models.VoteResult
	// The voter's roles go with its groups (as role:…), signed, for a
	// policy that asks for a role (an emergency change's release managers).
	groups := p.ApproverGroups()
	err := h.update(c, id, decision, func(depID string) any {
		v := models.VoteInput{Approver: p.Subject, Groups: groups, Comment: comment}
		v.Proof = h.sign(depID, decision, p.Subject, groups, comment)
		return v
	}, &res)
	return res, err
}

// sign proves to the worker that the API authenticated this request (see
// models.SignedRequest); without a vote key there is no proof, and the
// worker looks the subject up.
func (h *Handler) sign(deploymentID, name, subject string, groups []string, text string) models.Proof {
	if len(h.voteKey) == 0 {
		return models.Proof{}
	}
	return models.SignedRequest{DeploymentID: deploymentID, Name: name, Subject: subject, Groups: groups, Text: text,
		IssuedAt: time.Now().UTC()}.Sign(h.voteKey)
}

// ControlRequest is the body of pause, resume, abort and rollback (optional).
type ControlRequest struct {
	Reason string `json:"reason"`
}

func (h *Handler) control(name string) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req ControlRequest
		if c.Request.ContentLength != 0 {
			if err := bind(c, &req); err != nil {
				h.fail(c, err)
				return
			}
		}
		if len(req.Reason) > 4096 {
			h.fail(c, models.Invalid("reason", "must be at most 4096 characters"))
			return
		}
		p, _ := principal(c)
		res, err := h.sendControl(c, p, c.Param("id"), name, req.Reason)
		if err != nil {
			h.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"accepted": name, "status": res.Status})
	}
}

// sendControl sends p's pause, resume, abort or rollback, signed.
func (h *Handler) sendControl(c *gin.Context, p models.Principal, id, name, reason string) (models.ControlResult, error) {
	var res models.ControlResult
	err := h.update(c, id, name, func(depID string) any {
		return models.ControlInput{By: p.Subject, Reason: reason, Proof: h.sign(depID, name, p.Subject, nil, reason)}
	}, &res)
	return res, err
}

// update sends an Update to a deployment's workflow and waits for its
// result; the validator's refusal becomes 403, 409 or 422 with its reason.
// With an Idempotency-Key, the Update's id is derived from it: a retried
// request gets the first one's answer, not a refusal as a second vote.
func (h *Handler) update(c *gin.Context, id, name string, arg func(deploymentID string) any, result any) error {
	key := c.GetHeader("Idempotency-Key")
	if len(key) > 200 {
		return badRequest("Idempotency-Key must be at most 200 characters")
	}
	d, err := h.store.GetDeployment(c, id)
	if err != nil {
		return err
	}
	if d.Status.Terminal() {
		return fmt.Errorf("deployment %s has ended (%s): %w", id, d.Status, models.ErrConflict)
	}
	ctx, cancel := context.WithTimeout(c, 30*time.Second)
	defer cancel()
	opts := client.UpdateWorkflowOptions{
		WorkflowID: d.WorkflowID, UpdateName: name, Args: []any{arg(d.ID)}, WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	if key != "" {
		p, _ := principal(c)
		sum := sha256.Sum256([]byte(p.Subject + "\n" + name + "\n" + key))
		opts.UpdateID = "api-" + hex.EncodeToString(sum[:16])
	}
	handle, err := h.temporal.UpdateWorkflow(ctx, opts)
	if err == nil {
		err = handle.Get(ctx, result)
	}
	return h.updateErr(d, err)
}

func (h *Handler) updateErr(d *models.Deployment, err error) error {
	if err == nil {
		return nil
	}
	var (
		appErr   *temporal.ApplicationError
		notFound *serviceerror.NotFound
	)
	switch {
	case errors.As(err, &appErr):
		status := map[string]int{models.ErrTypeForbidden: http.StatusForbidden, models.ErrTypeConflict: http.StatusConflict,
			models.ErrTypeInvalid: http.StatusUnprocessableEntity}[appErr.Type()]
		code := map[int]string{http.StatusForbidden: CodeForbidden, http.StatusConflict: CodeConflict,
			http.StatusUnprocessableEntity: CodeValidationFailed}[status]
		if status == 0 {
			return fmt.Errorf("update of %s: %w", d.ID, err)
		}
		return &apiError{status: status, code: code, message: appErr.Message()}
	case errors.As(err, &notFound):
		return fmt.Errorf("deployment %s is not running any more: %w", d.ID, models.ErrConflict)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
			message: fmt.Sprintf("the deployment's workflow did not answer within 30s; the request may still take effect: check GET /api/v1/deployments/%s before repeating it", d.ID)}
	}
	return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
		message: fmt.Sprintf("the deployment's workflow did not answer: %v; try again", err)}
}

// IncidentRequest is the body of POST /deployments/{id}/incidents.
type IncidentRequest struct {
	Severity string `json:"severity"`
	Title    string `json:"title"`
}

func (h *Handler) createIncident(c *gin.Context) {
	var req IncidentRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	if _, err := h.store.GetDeployment(c, c.Param("id")); err != nil {
		h.fail(c, err)
		return
	}
	inc := &models.Incident{DeploymentID: c.Param("id"), Severity: req.Severity, Title: req.Title, Source: "api"}
	reply(h, c, http.StatusCreated, inc, h.store.CreateIncident(c, actor(c), inc))
}

// ResolveIncidentRequest is the body of POST /deployments/{id}/incidents/{incident}/resolve.
type ResolveIncidentRequest struct {
	Comment string `json:"comment"`
}

func (h *Handler) resolveIncident(c *gin.Context) {
	var req ResolveIncidentRequest
	if c.Request.ContentLength != 0 {
		if err := bind(c, &req); err != nil {
			h.fail(c, err)
			return
		}
	}
	inc, err := h.store.ResolveIncident(c, actor(c), c.Param("id"), c.Param("incident"), strings.TrimSpace(req.Comment))
	reply(h, c, http.StatusOK, inc, err)
}

func (h *Handler) listIncidents(c *gin.Context) {
	if _, err := h.store.GetDeployment(c, c.Param("id")); err != nil {
		h.fail(c, err)
		return
	}
	items, err := h.store.ListIncidents(c, c.Param("id"))
	reply(h, c, http.StatusOK, gin.H{"items": items}, err)
}
