package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/identity"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// ErrorBody is the one JSON shape of every error Transit's API returns.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code, a message a person can act on, and
// optional details (for validation errors, the fields and what is wrong).
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   any    `json:"details,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// Stable error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeValidationFailed = "validation_failed"
	CodeBodyTooLarge     = "body_too_large"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
)

// apiError is an error that already knows its HTTP status and code.
type apiError struct {
	status  int
	code    string
	message string
	details any
}

func (e *apiError) Error() string { return e.message }

func badRequest(msg string) error {
	return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, message: msg}
}

// retryAfterSeconds is what a 503 asks a client to wait.
const retryAfterSeconds = 5

// fail writes err as the error body with the status it maps to. This is the
// one place where domain errors become HTTP statuses.
func (h *Handler) fail(c *gin.Context, err error) {
	body := ErrorDetail{Message: err.Error(), RequestID: requestID(c)}
	status := http.StatusInternalServerError
	var (
		ae *apiError
		ve *models.ValidationError
	)
	switch {
	case errors.As(err, &ae):
		status, body.Code, body.Message, body.Details = ae.status, ae.code, ae.message, ae.details
	case errors.As(err, &ve):
		status, body.Code = http.StatusUnprocessableEntity, CodeValidationFailed
		body.Message = "the request has invalid fields: " + ve.Error()
		body.Details = map[string]any{"fields": ve.Fields}
	case errors.Is(err, models.ErrNotFound):
		status, body.Code = http.StatusNotFound, CodeNotFound
	case errors.Is(err, models.ErrConflict):
		status, body.Code = http.StatusConflict, CodeConflict
	case errors.Is(err, models.ErrForbidden):
		status, body.Code = http.StatusForbidden, CodeForbidden
	case errors.Is(err, models.ErrUnauthenticated):
		status, body.Code = http.StatusUnauthorized, CodeUnauthenticated
		c.Header("WWW-Authenticate", `Bearer realm="transit"`)
	case errors.Is(err, identity.ErrIssuerUnavailable):
		status, body.Code = http.StatusServiceUnavailable, CodeUnavailable
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
		h.log.WarnContext(c.Request.Context(), "OIDC issuer unavailable", "err", err, "request_id", body.RequestID)
	case store.Unavailable(err):
		// An outage, not a bug: say so, and when to try again.
		status, body.Code = http.StatusServiceUnavailable, CodeUnavailable
		body.Message = "the database is not answering (restarting, or out of reach); nothing was changed: try again in a few seconds"
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
		h.log.WarnContext(c.Request.Context(), "database unavailable", "err", err, "request_id", body.RequestID,
			"method", c.Request.Method, "path", c.FullPath())
	default:
		body.Code = CodeInternal
		body.Message = "internal error; the server log has the details under this request id"
		h.log.ErrorContext(c.Request.Context(), "request failed", "err", err, "request_id", body.RequestID,
			"method", c.Request.Method, "path", c.FullPath())
	}
	if status < 500 {
		body.Message = trimSentinel(body.Message)
	}
	c.AbortWithStatusJSON(status, ErrorBody{Error: body})
}

// trimSentinel drops the trailing ": not found"-style suffix that wrapping a
// sentinel adds; the code already says it.
func trimSentinel(msg string) string {
	for _, s := range []error{models.ErrNotFound, models.ErrConflict, models.ErrForbidden, models.ErrUnauthenticated} {
		suffix := ": " + s.Error()
		if len(msg) > len(suffix) && msg[len(msg)-len(suffix):] == suffix {
			return msg[:len(msg)-len(suffix)]
		}
	}
	return msg
}

// notFoundRoute answers unknown paths in the same shape.
func (h *Handler) notFoundRoute(c *gin.Context) {
	h.fail(c, &apiError{status: http.StatusNotFound, code: CodeNotFound,
		message: "no such endpoint: " + c.Request.Method + " " + c.Request.URL.Path + " (see GET /api/v1 for the list)"})
}

func (h *Handler) methodNotAllowed(c *gin.Context) {
	h.fail(c, &apiError{status: http.StatusMethodNotAllowed, code: CodeBadRequest,
		message: c.Request.Method + " is not allowed on " + c.Request.URL.Path})
}
