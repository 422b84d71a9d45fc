package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// CreateKnownErrorRequest is the body of POST /known-errors.
type CreateKnownErrorRequest struct {
	// Application is an application id or name.
	Application string `json:"application"`
	// Release links it to one release of the application (an id); left
	// out, it is carried by every release until it is resolved.
	Release     string `json:"release"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Workaround  string `json:"workaround"`
	Severity    string `json:"severity"`
}

// UpdateKnownErrorRequest is the body of PATCH /known-errors/{id}; absent fields stay.
type UpdateKnownErrorRequest struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	Workaround  *string `json:"workaround"`
	Severity    *string `json:"severity"`
	Status      *string `json:"status"`
}

func (h *Handler) createKnownError(c *gin.Context) {
	var req CreateKnownErrorRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	appID, err := h.resolveApplication(c, "application", req.Application)
	if err != nil {
		h.fail(c, err)
		return
	}
	k := &models.KnownError{ApplicationID: appID, ReleaseID: req.Release, Title: req.Title, Description: req.Description,
		Workaround: req.Workaround, Severity: req.Severity}
	reply(h, c, http.StatusCreated, k, h.store.CreateKnownError(c, actor(c), k))
}

func (h *Handler) listKnownErrors(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.KnownError], error) {
		if err := h.resolveApplicationFilter(c, o); err != nil {
			return store.Page[models.KnownError]{}, err
		}
		return h.store.ListKnownErrors(c, o)
	}, "application_id", "release_id", "status", "severity")(c)
}

func (h *Handler) getKnownError(c *gin.Context) {
	k, err := h.store.GetKnownError(c, c.Param("id"))
	reply(h, c, http.StatusOK, k, err)
}

func (h *Handler) updateKnownError(c *gin.Context) {
	var req UpdateKnownErrorRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	k, err := h.store.UpdateKnownError(c, actor(c), c.Param("id"), func(k *models.KnownError) {
		setIf(&k.Title, req.Title)
		setIf(&k.Description, req.Description)
		setIf(&k.Workaround, req.Workaround)
		setIf(&k.Severity, req.Severity)
		setIf(&k.Status, req.Status)
	})
	reply(h, c, http.StatusOK, k, err)
}

// UpdateIncidentRequest is the body of PATCH /deployments/{id}/incidents/{incident}.
type UpdateIncidentRequest struct {
	Status       *string `json:"status"`
	Resolution   *string `json:"resolution"`
	KnownErrorID *string `json:"known_error_id"`
}

func (h *Handler) updateIncident(c *gin.Context) {
	var req UpdateIncidentRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	if req.Resolution != nil {
		trimmed := strings.TrimSpace(*req.Resolution)
		req.Resolution = &trimmed
	}
	inc, err := h.store.UpdateIncident(c, actor(c), c.Param("id"), c.Param("incident"), req.Status, req.Resolution, req.KnownErrorID)
	reply(h, c, http.StatusOK, inc, err)
}

// knownErrorsAcknowledged refuses a release that carries open known errors
// the request did not acknowledge, or, where the policy refuses them, any.
func (h *Handler) knownErrorsAcknowledged(c *gin.Context, rel *models.Release, env *models.Environment, ack []string) error {
	open, err := h.store.OpenKnownErrors(c, rel)
	if err != nil {
		return err
	}
	ids := make([]string, len(open))
	for i, k := range open {
		ids[i] = k.ID
	}
	for i, id := range ack {
		if !slices.Contains(ids, id) {
			return models.Invalid(fmt.Sprintf("acknowledge_known_errors[%d]", i), "%q is not an open known error of release %s", id, rel.Version)
		}
	}
	var missing []string
	for _, k := range open {
		if env.Policy.V.KnownErrors == models.KnownErrorsRefuse || !slices.Contains(ack, k.ID) {
			missing = append(missing, fmt.Sprintf("%s (%s: %s)", k.ID, k.Severity, k.Title))
		}
	}
	switch {
	case len(missing) == 0:
		return nil
	case env.Policy.V.KnownErrors == models.KnownErrorsRefuse:
		return fmt.Errorf("release %s carries open known errors, and the policy of %s takes none: %s: %w",
			rel.Version, env.Name, strings.Join(missing, "; "), models.ErrConflict)
	}
	return fmt.Errorf("release %s carries open known errors that this request does not acknowledge: %s; read their workarounds and list their ids in acknowledge_known_errors: %w",
		rel.Version, strings.Join(missing, "; "), models.ErrConflict)
}
