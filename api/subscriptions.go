package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// CreateSubscriptionRequest is the body of POST /subscriptions.
type CreateSubscriptionRequest struct {
	URL    string               `json:"url"`
	Events []models.NotifyEvent `json:"events"`
	// ApplicationID (an id or a name) and EnvironmentID keep only the
	// deployments of that application, or to that environment.
	ApplicationID string           `json:"application_id"`
	EnvironmentID string           `json:"environment_id"`
	Secret        models.SecretRef `json:"secret"`
	Format        string           `json:"format"`
	// Enabled defaults to true.
	Enabled     *bool  `json:"enabled"`
	Description string `json:"description"`
}

// UpdateSubscriptionRequest is the body of PATCH /subscriptions/{id};
// absent fields stay, and "" clears a filter.
type UpdateSubscriptionRequest struct {
	URL           *string               `json:"url"`
	Events        *[]models.NotifyEvent `json:"events"`
	ApplicationID *string               `json:"application_id"`
	EnvironmentID *string               `json:"environment_id"`
	Secret        *models.SecretRef     `json:"secret"`
	Format        *string               `json:"format"`
	Enabled       *bool                 `json:"enabled"`
	Description   *string               `json:"description"`
}

func (h *Handler) createSubscription(c *gin.Context) {
	var req CreateSubscriptionRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	sub := &models.Subscription{URL: req.URL, Events: models.NewJSON(req.Events), Secret: req.Secret, Format: req.Format,
		Enabled: req.Enabled == nil || *req.Enabled, Description: req.Description, PublicURL: h.publicURL}
	if err := h.subscriptionFilters(c, sub, &req.ApplicationID, &req.EnvironmentID); err != nil {
		h.fail(c, err)
		return
	}
	reply(h, c, http.StatusCreated, sub, h.store.CreateSubscription(c, actor(c), sub))
}

// subscriptionFilters sets the filters the request names: an application
// by id or name, an environment by id ("" clears either; nil leaves it).
func (h *Handler) subscriptionFilters(c *gin.Context, sub *models.Subscription, app, env *string) error {
	if app != nil {
		sub.ApplicationID = nil
		if *app != "" {
			id, err := h.resolveApplication(c, "application_id", *app)
			if err != nil {
				return err
			}
			sub.ApplicationID = &id
		}
	}
	if env != nil {
		sub.EnvironmentID = nil
		if *env != "" {
			id := *env
			sub.EnvironmentID = &id
		}
	}
	return nil
}

func (h *Handler) getSubscription(c *gin.Context) {
	sub, err := h.store.GetSubscription(c, c.Param("id"))
	reply(h, c, http.StatusOK, sub, err)
}

func (h *Handler) listSubscriptions(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Subscription], error) {
		if err := h.resolveApplicationFilter(c, o); err != nil {
			return store.Page[models.Subscription]{}, err
		}
		return h.store.ListSubscriptions(c, o)
	}, "application_id", "environment_id", "format")(c)
}

func (h *Handler) updateSubscription(c *gin.Context) {
	var req UpdateSubscriptionRequest
	if err := bind(c, &req); err != nil {
		h.fail(c, err)
		return
	}
	// The filters are resolved before the write, on a scratch copy: a
	// name that matches nothing is a 422, and changes nothing.
	var filters models.Subscription
	if err := h.subscriptionFilters(c, &filters, req.ApplicationID, req.EnvironmentID); err != nil {
		h.fail(c, err)
		return
	}
	sub, err := h.store.UpdateSubscription(c, actor(c), c.Param("id"), func(s *models.Subscription) {
		setIf(&s.URL, req.URL)
		if req.Events != nil {
			s.Events.V = *req.Events
		}
		if req.ApplicationID != nil {
			s.ApplicationID = filters.ApplicationID
		}
		if req.EnvironmentID != nil {
			s.EnvironmentID = filters.EnvironmentID
		}
		setIf(&s.Secret, req.Secret)
		setIf(&s.Format, req.Format)
		setIf(&s.Enabled, req.Enabled)
		setIf(&s.Description, req.Description)
		s.PublicURL = h.publicURL
	})
	reply(h, c, http.StatusOK, sub, err)
}

func (h *Handler) deleteSubscription(c *gin.Context) {
	h.noContent(c, h.store.DeleteSubscription(c, actor(c), c.Param("id")))
}

func (h *Handler) listDeliveries(c *gin.Context) {
	listHandler(h, func(c *gin.Context, o store.ListOptions) (store.Page[models.Delivery], error) {
		return h.store.ListDeliveries(c, c.Param("id"), o)
	}, "deployment_id", "event", "status")(c)
}

// startNotifications starts the Notification workflows of the deliveries
// that a request's writes put in the outbox (an incident reported, a
// deployment found orphaned), once the handler has returned. What it
// misses, the worker's sweeper starts.
func (h *Handler) startNotifications(c *gin.Context) {
	ctx, collected := store.CollectDeliveries(c.Request.Context(), h.startDeliveries)
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	collected.Flush()
}

// startDeliveries starts the deliveries' workflows in the background, so
// that no answer waits for them (notify.Notifier, as the worker does).
func (h *Handler) startDeliveries(ds []store.PendingDelivery) {
	if h.temporal == nil {
		return
	}
	h.notifier.StartSoon(ds)
}
