// Package api is Transit's REST API: a gin router, its handlers, the auth
// middleware and the request and response types.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/transit-hq/transit/identity"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/notify"
	"github.com/transit-hq/transit/store"
)

// Temporal is what the API needs of a Temporal client.
type Temporal interface {
	CheckHealth(ctx context.Context, req *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Handler holds what every handler needs. No globals.
type Handler struct {
	store     *store.Store
	temporal  Temporal
	log       *slog.Logger
	taskQueue string
	namespace string
	uiURL     string
	publicURL string
	// publicURLSet: PublicURL was given (not the default).
	publicURLSet bool
	metrics      *metrics
	voteKey      []byte
	auditKey     *models.AuditKey
	oidc         *identity.Verifier
	// csrfKey binds the console's forms to their session.
	csrfKey []byte
	// notifier starts the notifications a request's writes queued.
	notifier *notify.Notifier
}

// Options configures the API.
type Options struct {
	Store    *store.Store
	Temporal Temporal
	Logger   *slog.Logger
	// TaskQueue is where deployments are started.
	TaskQueue string
	// Namespace and TemporalUIURL build links into the Temporal UI.
	Namespace     string
	TemporalUIURL string
	// Collectors join /metrics (transit dev: the worker's).
	Collectors []prometheus.Collector
	// PublicURL is where people reach this API, for absolute links in the
	// Temporal UI (default http://localhost:8080).
	PublicURL string
	// VoteKey signs the votes and controls the API sends to a deployment's
	// workflow, so that the worker knows the API authenticated them (the
	// worker holds the same key). Without it the worker looks every
	// voter up.
	VoteKey []byte
	// AuditKey signs audit heads (GET /audit/head); nil: no heads.
	AuditKey *models.AuditKey
	// OIDC, when set, accepts bearer JWTs from its issuer as well as
	// Transit's own tokens.
	OIDC *identity.Verifier
}

// NewRouter builds the HTTP handler of the whole API.
func NewRouter(opt Options) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	h := &Handler{store: opt.Store, temporal: opt.Temporal, log: opt.Logger,
		taskQueue: opt.TaskQueue, namespace: opt.Namespace, uiURL: opt.TemporalUIURL, publicURL: strings.TrimRight(opt.PublicURL, "/"), voteKey: opt.VoteKey, auditKey: opt.AuditKey, oidc: opt.OIDC}
	if h.taskQueue == "" {
		h.taskQueue = models.DefaultTaskQueue
	}
	h.publicURLSet = h.publicURL != ""
	if h.publicURL == "" {
		h.publicURL = "http://localhost:8080"
	}
	if h.namespace == "" {
		h.namespace = "default"
	}
	h.metrics = newMetrics(opt.Store, opt.Collectors...)
	h.csrfKey = newCSRFKey(opt.VoteKey)
	if h.log == nil {
		h.log = slog.Default()
	}
	h.notifier = &notify.Notifier{Store: opt.Store, Temporal: opt.Temporal, TaskQueue: h.taskQueue, Logger: h.log}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(h.requestID, h.accessLog, h.recoverPanic, h.saneInput)
	r.NoRoute(h.notFoundRoute)
	r.NoMethod(h.methodNotAllowed)

	r.GET("/healthz", h.healthz)
	r.GET("/readyz", h.readyz)
	r.GET("/metrics", h.metrics.handler())
	// The KPIs say more than operations needs to: a token that may read them.
	r.GET("/metrics/kpis", h.authenticate, h.apiRule("GET /api/v1/kpis"), h.metrics.kpiHandler())
	h.consoleRoutes(r)
	r.GET("/api/v1/openapi.json", h.openAPI) // public: outside the authenticated group

	// Who may use each route: the table in authz.go.
	// startNotifications: see api/subscriptions.go.
	v1 := r.Group("/api/v1", h.authenticate, h.authorize, h.startNotifications)
	v1.GET("", h.index)
	v1.GET("/whoami", h.whoami)

	v1.POST("/applications", h.createApplication)
	v1.GET("/applications", h.listApplications)
	v1.GET("/applications/:id", h.getApplication)
	v1.PATCH("/applications/:id", h.updateApplication)
	v1.DELETE("/applications/:id", h.deleteApplication)

	v1.GET("/environments", h.listEnvironments)
	v1.GET("/environments/:id", h.getEnvironment)
	v1.GET("/targets", h.listTargets)
	v1.GET("/targets/:id", h.getTarget)

	v1.POST("/releases", h.createRelease)
	v1.GET("/releases", h.listReleases)
	v1.GET("/releases/:id", h.getRelease)
	v1.DELETE("/releases/:id", h.deleteRelease)

	v1.POST("/deployments", h.createDeployment)
	v1.GET("/deployments", h.listDeployments)
	v1.GET("/deployments/:id", h.getDeployment)
	v1.GET("/deployments/:id/events", h.listDeploymentEvents)
	v1.POST("/deployments/:id/approvals", h.approve)
	v1.POST("/deployments/:id/pause", h.control(models.UpdatePause))
	v1.POST("/deployments/:id/resume", h.control(models.UpdateResume))
	v1.POST("/deployments/:id/abort", h.control(models.UpdateAbort))
	v1.POST("/deployments/:id/rollback", h.control(models.UpdateRollback))
	v1.POST("/deployments/:id/incidents", h.createIncident)
	v1.GET("/deployments/:id/incidents", h.listIncidents)
	v1.POST("/deployments/:id/incidents/:incident/resolve", h.resolveIncident)
	v1.PATCH("/deployments/:id/incidents/:incident", h.updateIncident)
	v1.POST("/known-errors", h.createKnownError)
	v1.GET("/known-errors", h.listKnownErrors)
	v1.GET("/known-errors/:id", h.getKnownError)
	v1.PATCH("/known-errors/:id", h.updateKnownError)

	// The forward schedule of change, as JSON or iCalendar (api/schedule.go).
	v1.GET("/schedule", h.getSchedule)

	// KPIs computed from the records, with how each was counted (api/kpis.go).
	v1.GET("/kpis", h.kpis)

	v1.GET("/audit", h.listAudit)
	v1.GET("/audit/verify", h.verifyAudit)
	v1.GET("/audit/head", h.auditHead)

	// Environments (their policies: approvals, checks) and targets (the
	// commands and URLs the workers run) are the platform's to set.
	v1.POST("/environments", h.createEnvironment)
	v1.PATCH("/environments/:id", h.updateEnvironment)
	v1.DELETE("/environments/:id", h.deleteEnvironment)
	v1.POST("/targets", h.createTarget)
	v1.PATCH("/targets/:id", h.updateTarget)
	v1.DELETE("/targets/:id", h.deleteTarget)
	v1.POST("/tokens", h.createToken)
	v1.GET("/tokens", h.listTokens)
	v1.DELETE("/tokens/:id", h.revokeToken)

	// Notification subscriptions: where the events go, signed (admins).
	v1.POST("/subscriptions", h.createSubscription)
	v1.GET("/subscriptions", h.listSubscriptions)
	v1.GET("/subscriptions/:id", h.getSubscription)
	v1.PATCH("/subscriptions/:id", h.updateSubscription)
	v1.DELETE("/subscriptions/:id", h.deleteSubscription)
	v1.GET("/subscriptions/:id/deliveries", h.listDeliveries)
	return r
}

const (
	ctxRequestID = "transit.request_id"
	ctxPrincipal = "transit.principal"
)

// requestID takes X-Request-ID from the caller (when sane) or makes one,
// and echoes it.
func (h *Handler) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if len(id) == 0 || len(id) > 64 || strings.ContainsAny(id, " \t\r\n") {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

func (h *Handler) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	h.metrics.observe(c, time.Since(start))
	level := slog.LevelInfo
	switch {
	case c.Request.URL.Path == "/healthz" || c.Request.URL.Path == "/readyz" || c.Request.URL.Path == "/metrics" || c.Request.URL.Path == "/metrics/kpis":
		level = slog.LevelDebug // probes every few seconds; /readyz says what is down
	case c.Writer.Status() >= 500:
		level = slog.LevelError
	}
	attrs := []any{"method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
		"elapsed_ms", time.Since(start).Milliseconds(), "request_id", requestID(c)}
	if p, ok := principal(c); ok {
		attrs = append(attrs, "subject", p.Subject)
	}
	h.log.Log(c.Request.Context(), level, "http request", attrs...)
}

// recoverPanic turns a panic into a 500 in the usual shape, so that no
// input can bring the process down.
func (h *Handler) recoverPanic(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			h.log.ErrorContext(c.Request.Context(), "panic in handler", "panic", r, "request_id", requestID(c))
			h.fail(c, &apiError{status: http.StatusInternalServerError, code: CodeInternal,
				message: "internal error; the server log has the details under this request id"})
		}
	}()
	c.Next()
}

// saneInput refuses path and query values that the database cannot store
// (invalid UTF-8, a NUL), naming them, before any handler sees them.
func (h *Handler) saneInput(c *gin.Context) {
	v := &models.ValidationError{}
	for _, p := range c.Params {
		models.CheckText(v, p.Key, p.Value)
	}
	q := c.Request.URL.Query()
	for _, k := range models.SortedKeys(q) {
		if models.TextProblem(k) != "" {
			models.CheckText(v, "query parameter", k)
			continue
		}
		for _, val := range q[k] {
			models.CheckText(v, k, val)
		}
	}
	if err := v.Err(); err != nil {
		h.fail(c, err)
		return
	}
	c.Next()
}

// authenticate requires a valid bearer token and sets the principal.
func (h *Handler) authenticate(c *gin.Context) {
	auth := c.GetHeader("Authorization")
	scheme, secret, ok := strings.Cut(auth, " ")
	if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		h.fail(c, &apiError{status: http.StatusUnauthorized, code: CodeUnauthenticated,
			message: "missing bearer token: send Authorization: Bearer <token> (transit dev prints an admin token at start-up)"})
		c.Header("WWW-Authenticate", `Bearer realm="transit"`)
		return
	}
	p, err := h.principalFor(c.Request.Context(), secret)
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Set(ctxPrincipal, p)
	c.Next()
}

// principalFor is who a bearer secret is: a Transit API token, or a JWT
// of the OIDC issuer when one is configured.
func (h *Handler) principalFor(ctx context.Context, secret string) (models.Principal, error) {
	secret = strings.TrimSpace(secret)
	if identity.LooksLikeJWT(secret) {
		if h.oidc == nil {
			return models.Principal{}, &apiError{status: http.StatusUnauthorized, code: CodeUnauthenticated,
				message: "this is a JWT, but OIDC sign-in is not configured here (TRANSIT_OIDC_ISSUER, TRANSIT_OIDC_AUDIENCE): use a Transit API token"}
		}
		return h.oidc.Principal(ctx, secret)
	}
	tok, err := h.store.Authenticate(ctx, secret)
	if err != nil {
		return models.Principal{}, err
	}
	return tok.Principal(), nil
}

func principal(c *gin.Context) (models.Principal, bool) {
	v, ok := c.Get(ctxPrincipal)
	if !ok {
		return models.Principal{}, false
	}
	p, ok := v.(models.Principal)
	return p, ok
}

// actor is who the audit log records for this request.
func actor(c *gin.Context) store.Actor {
	p, _ := principal(c)
	return store.Actor{Subject: p.Subject, RequestID: requestID(c)}
}

func (h *Handler) index(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{
		"name": "transit", "api": "v1",
		"resources": []string{"/api/v1/applications", "/api/v1/environments", "/api/v1/targets",
			"/api/v1/releases", "/api/v1/deployments", "/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/head", "/api/v1/openapi.json", "/api/v1/subscriptions", "/api/v1/schedule", "/api/v1/known-errors", "/api/v1/kpis", "/api/v1/tokens", "/api/v1/whoami"},
	})
}

func (h *Handler) whoami(c *gin.Context) {
	p, _ := principal(c)
	c.JSON(http.StatusOK, p)
}

func (h *Handler) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 when the database and Temporal both answer, else 503
// naming which did not.
func (h *Handler) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := gin.H{}
	ready := true
	if err := h.store.Ping(ctx); err != nil {
		checks["database"], ready = "unreachable: "+err.Error(), false
	} else {
		checks["database"] = "ok"
	}
	switch {
	case h.temporal == nil:
		checks["temporal"], ready = "not configured", false
	default:
		if _, err := h.temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			checks["temporal"], ready = "unreachable: "+err.Error(), false
		} else {
			checks["temporal"] = "ok"
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ready, "checks": checks})
}
