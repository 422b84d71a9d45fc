package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// reply writes v with status, or the error.
func reply[T any](h *Handler, c *gin.Context, status int, v T, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(status, v)
}

// listHandler serves a paginated, filtered list.
func listHandler[T any](h *Handler, list func(*gin.Context, store.ListOptions) (store.Page[T], error), filters ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		opt, err := listOptions(c, filters...)
		if err != nil {
			h.fail(c, err)
			return
		}
		page, err := list(c, opt)
		reply(h, c, http.StatusOK, page, err)
	}
}

// resolveApplication accepts an application's id or its name.
func (h *Handler) resolveApplication(c *gin.Context, field, idOrName string) (string, error) {
	if idOrName == "" {
		return "", models.Invalid(field, "is required: an application id or name")
	}
	app, err := h.store.GetApplication(c, idOrName)
	if err != nil {
		if models.IsNotFound(err) {
			return "", models.Invalid(field, "no application has id or name %q", idOrName)
		}
		return "", err
	}
	return app.ID, nil
}

// resolveApplicationFilter lets a list's application_id filter name the
// application instead.
func (h *Handler) resolveApplicationFilter(c *gin.Context, o store.ListOptions) error {
	ref := o.Filters["application_id"]
	if ref == "" {
		return nil
	}
	id, err := h.resolveApplication(c, "application_id", ref)
	o.Filters["application_id"] = id
	return err
}

// --- applications

// CreateApplicationRequest is the body of POST /applications.
type CreateApplicationRequest struct {
	Name        string `json:"name"`
	OwnerTeam   string `json:"owner_team"`
	Description string `json:"description"`
}

// UpdateApplicationRequest is the body of PATCH /applications/{id}; absent fields stay.
type UpdateApplicationRequest struct {
	Name        *string `json:"name"`
	OwnerTeam   *string `json:"owner_team"`
	Description *string `json:"description"`
}

func (h *Handler) createApplication(c *gin.Context) {
	var req CreateApplicationRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	app := &models.Application{Name: req.Name, OwnerTeam: req.OwnerTeam, Description: req.Description}
	reply(h, c, http.StatusCreated, app, h.store.CreateApplication(c, actor(c), app))
}

func (h *Handler) getApplication(c *gin.Context) {
	app, err := h.store.GetApplication(c, c.Param("id"))
	reply(h, c, http.StatusOK, app, err)
}

func (h *Handler) listApplications(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Application], error) {
		return h.store.ListApplications(c, o)
	}, "name", "owner_team")(c)
}

func (h *Handler) updateApplication(c *gin.Context) {
	var req UpdateApplicationRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	id, err := h.applicationID(c, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	app, err := h.store.UpdateApplication(c, actor(c), id, func(a *models.Application) {
		setIf(&a.Name, req.Name)
		setIf(&a.OwnerTeam, req.OwnerTeam)
		setIf(&a.Description, req.Description)
	})
	reply(h, c, http.StatusOK, app, err)
}

func (h *Handler) deleteApplication(c *gin.Context) {
	id, err := h.applicationID(c, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	h.noContent(c, h.store.DeleteApplication(c, actor(c), id))
}

// applicationID resolves a path's application id or name, as GET does.
func (h *Handler) applicationID(c *gin.Context, idOrName string) (string, error) {
	app, err := h.store.GetApplication(c, idOrName)
	if err != nil {
		return "", err
	}
	return app.ID, nil
}

// --- environments

// CreateEnvironmentRequest is the body of POST /environments.
type CreateEnvironmentRequest struct {
	// ApplicationID is the application's id or name.
	ApplicationID string         `json:"application_id"`
	Name          string         `json:"name"`
	Position      int            `json:"position"`
	Policy        *models.Policy `json:"policy"`
}

// UpdateEnvironmentRequest is the body of PATCH /environments/{id}; absent
// fields stay, a policy given replaces the whole policy.
type UpdateEnvironmentRequest struct {
	Name     *string        `json:"name"`
	Position *int           `json:"position"`
	Policy   *models.Policy `json:"policy"`
}

func (h *Handler) createEnvironment(c *gin.Context) {
	var req CreateEnvironmentRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	appID, err := h.resolveApplication(c, "application_id", req.ApplicationID)
	if err != nil {
		h.fail(c, err)
		return
	}
	env := &models.Environment{ApplicationID: appID, Name: req.Name, Position: req.Position}
	if req.Policy != nil {
		env.Policy.V = *req.Policy
	}
	reply(h, c, http.StatusCreated, env, h.store.CreateEnvironment(c, actor(c), env))
}

func (h *Handler) getEnvironment(c *gin.Context) {
	env, err := h.store.GetEnvironment(c, c.Param("id"))
	reply(h, c, http.StatusOK, env, err)
}

func (h *Handler) listEnvironments(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Environment], error) {
		if err := h.resolveApplicationFilter(c, o); err != nil {
			return store.Page[models.Environment]{}, err
		}
		return h.store.ListEnvironments(c, o)
	}, "application_id", "name")(c)
}

func (h *Handler) updateEnvironment(c *gin.Context) {
	var req UpdateEnvironmentRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	env, err := h.store.UpdateEnvironment(c, actor(c), c.Param("id"), func(e *models.Environment) {
		setIf(&e.Name, req.Name)
		setIf(&e.Position, req.Position)
		setIf(&e.Policy.V, req.Policy)
	})
	if err == nil && req.Policy != nil {
		h.policyChanged(c, env.ID)
	}
	reply(h, c, http.StatusOK, env, err)
}

// policyChanged tells the deployments of an environment that may be held
// by its windows or freezes to read them again: a new freeze holds them
// before their next wave, a lifted one lets them go now. Best effort: each
// also reads the policy again before each wave, and at the end of a hold.
func (h *Handler) policyChanged(c *gin.Context, envID string) {
	ids, err := h.store.ActiveInEnvironment(c, envID)
	if err != nil {
		h.log.WarnContext(c, "find deployments to tell of a policy change", "environment", envID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c), 5*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := h.temporal.SignalWorkflow(ctx, models.WorkflowIDFor(id), "", models.SignalPolicyChanged, nil); err != nil {
			h.log.WarnContext(c, "tell a deployment of a policy change", "deployment", id, "err", err)
		}
	}
}

func (h *Handler) deleteEnvironment(c *gin.Context) {
	h.noContent(c, h.store.DeleteEnvironment(c, actor(c), c.Param("id")))
}

// --- targets

// CreateTargetRequest is the body of POST /targets.
type CreateTargetRequest struct {
	EnvironmentID string            `json:"environment_id"`
	Name          string            `json:"name"`
	Driver        string            `json:"driver"`
	Config        json.RawMessage   `json:"config"`
	Labels        map[string]string `json:"labels"`
}

// UpdateTargetRequest is the body of PATCH /targets/{id}; absent fields stay.
// The driver cannot change: create a new target instead.
type UpdateTargetRequest struct {
	Name   *string            `json:"name"`
	Config *json.RawMessage   `json:"config"`
	Labels *map[string]string `json:"labels"`
}

func (h *Handler) createTarget(c *gin.Context) {
	var req CreateTargetRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	t := &models.Target{EnvironmentID: req.EnvironmentID, Name: req.Name, Driver: req.Driver,
		Config: models.NewJSON(compactJSON(req.Config)), Labels: models.NewJSON(req.Labels)}
	reply(h, c, http.StatusCreated, t, h.store.CreateTarget(c, actor(c), t))
}

func (h *Handler) getTarget(c *gin.Context) {
	t, err := h.store.GetTarget(c, c.Param("id"))
	reply(h, c, http.StatusOK, t, err)
}

func (h *Handler) listTargets(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Target], error) {
		return h.store.ListTargets(c, o)
	}, "environment_id", "name", "driver")(c)
}

func (h *Handler) updateTarget(c *gin.Context) {
	var req UpdateTargetRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	t, err := h.store.UpdateTarget(c, actor(c), c.Param("id"), func(t *models.Target) {
		setIf(&t.Name, req.Name)
		if req.Config != nil {
			t.Config.V = compactJSON(*req.Config)
		}
		setIf(&t.Labels.V, req.Labels)
	})
	reply(h, c, http.StatusOK, t, err)
}

func (h *Handler) deleteTarget(c *gin.Context) {
	h.noContent(c, h.store.DeleteTarget(c, actor(c), c.Param("id")))
}

// --- releases

// CreateReleaseRequest is the body of POST /releases. Releases are immutable:
// there is no update.
type CreateReleaseRequest struct {
	// ApplicationID is the application's id or name.
	ApplicationID string            `json:"application_id"`
	Version       string            `json:"version"`
	Artifacts     []models.Artifact `json:"artifacts"`
	Notes         string            `json:"notes"`
	EntryCriteria map[string]string `json:"entry_criteria"`
}

func (h *Handler) createRelease(c *gin.Context) {
	var req CreateReleaseRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	appID, err := h.resolveApplication(c, "application_id", req.ApplicationID)
	if err != nil {
		h.fail(c, err)
		return
	}
	r := &models.Release{ApplicationID: appID, Version: req.Version, Artifacts: models.NewJSON(req.Artifacts),
		Notes: req.Notes, EntryCriteria: models.NewJSON(req.EntryCriteria)}
	reply(h, c, http.StatusCreated, r, h.store.CreateRelease(c, actor(c), r))
}

// ReleaseDetail is GET /releases/{id}: the release, and where it stands in
// each environment of its application's lifecycle.
type ReleaseDetail struct {
	*models.Release
	Lifecycle []models.LifecycleStep `json:"lifecycle"`
}

func (h *Handler) getRelease(c *gin.Context) {
	r, err := h.store.GetRelease(c, c.Param("id"))
	if err != nil {
		h.fail(c, err)
		return
	}
	steps, err := h.store.ReleaseLifecycle(c, r)
	reply(h, c, http.StatusOK, ReleaseDetail{Release: r, Lifecycle: steps}, err)
}

func (h *Handler) listReleases(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Release], error) {
		if err := h.resolveApplicationFilter(c, o); err != nil {
			return store.Page[models.Release]{}, err
		}
		return h.store.ListReleases(c, o)
	}, "application_id", "version")(c)
}

func (h *Handler) deleteRelease(c *gin.Context) {
	h.noContent(c, h.store.DeleteRelease(c, actor(c), c.Param("id")))
}

// --- tokens

// CreateTokenRequest is the body of POST /tokens.
type CreateTokenRequest struct {
	Subject     string     `json:"subject"`
	Groups      []string   `json:"groups"`
	Teams       []string   `json:"teams"`
	Roles       []string   `json:"roles"`
	Description string     `json:"description"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// CreateTokenResponse shows the secret, this once.
type CreateTokenResponse struct {
	models.APIToken
	Token string `json:"token"`
}

func (h *Handler) createToken(c *gin.Context) {
	var req CreateTokenRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	t := &models.APIToken{Subject: req.Subject, Groups: models.NewJSON(req.Groups), Teams: models.NewJSON(req.Teams),
		Roles: models.NewJSON(req.Roles), Description: req.Description, ExpiresAt: req.ExpiresAt}
	secret := store.NewTokenSecret()
	if err := h.store.CreateToken(c, actor(c), t, secret); err != nil {
		h.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, CreateTokenResponse{APIToken: *t, Token: secret})
}

func (h *Handler) listTokens(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.APIToken], error) {
		return h.store.ListTokens(c, o)
	}, "subject")(c)
}

func (h *Handler) revokeToken(c *gin.Context) {
	t, err := h.store.RevokeToken(c, actor(c), c.Param("id"))
	reply(h, c, http.StatusOK, t, err)
}

// --- helpers

func (h *Handler) noContent(c *gin.Context, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// compactJSON stores config without the client's whitespace; empty stays {}.
func compactJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw // bind has decoded it already, so this does not happen
	}
	return buf.Bytes()
}
