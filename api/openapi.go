package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDocument describes every route under /api/v1 in OpenAPI 3.1. It is
// written by hand; api/openapi_test.go checks that it names every route of
// NewRouter and nothing else, and the integration tests check real
// responses against its schemas.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 description of the API (a copy).
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// openAPI serves the description. It is public: it says what the API
// does, not what it holds.
func (h *Handler) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDocument)
}
