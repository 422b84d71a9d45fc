package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/api"
)

func loadOpenAPI(t *testing.T, raw []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "api/openapi.json is not a valid OpenAPI document")
	return doc
}

// The description is a valid OpenAPI 3.1 document.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t, api.OpenAPI())
	require.True(t, doc.IsOpenAPI31OrLater(), "openapi: %s", doc.OpenAPI)
	require.Contains(t, doc.Components.SecuritySchemes, "bearer")
	require.Equal(t, "bearer", doc.Components.SecuritySchemes["bearer"].Value.Scheme)
	require.NotNil(t, doc.Components.Schemas["Error"])
}

var ginParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath spells a gin route's path as OpenAPI does: /x/:id is /x/{id}.
func openAPIPath(ginPath string) string { return ginParam.ReplaceAllString(ginPath, "{$1}") }

// Every route under /api/v1 is described, with its method, its path
// parameters and at least one success response; and nothing is described
// that the router does not serve.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t, api.OpenAPI())
	engine, ok := api.NewRouter(api.Options{}).(*gin.Engine)
	require.True(t, ok)

	served := map[string]bool{}
	for _, r := range engine.Routes() {
		if r.Path != "/api/v1" && !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		path := openAPIPath(r.Path)
		key := r.Method + " " + path
		served[key] = true
		item := doc.Paths.Value(path)
		require.NotNil(t, item, "route %s %s is not in api/openapi.json (as %s)", r.Method, r.Path, path)
		op := item.GetOperation(r.Method)
		require.NotNil(t, op, "route %s %s is in api/openapi.json, but not its method %s", r.Method, r.Path, r.Method)

		// Its path parameters are declared.
		declared := map[string]bool{}
		for _, params := range []openapi3.Parameters{item.Parameters, op.Parameters} {
			for _, p := range params {
				if p.Value.In == openapi3.ParameterInPath {
					declared[p.Value.Name] = true
				}
			}
		}
		for _, m := range ginParam.FindAllStringSubmatch(r.Path, -1) {
			require.True(t, declared[m[1]], "%s: path parameter %q is not declared", key, m[1])
		}
		require.Len(t, declared, len(ginParam.FindAllString(r.Path, -1)), "%s declares path parameters it does not have", key)

		// It says what success looks like, and how it fails.
		var success, failure bool
		for status := range op.Responses.Map() {
			success = success || strings.HasPrefix(status, "2")
			failure = failure || strings.HasPrefix(status, "4") || strings.HasPrefix(status, "5")
		}
		require.True(t, success, "%s has no success response", key)
		if path != "/api/v1/openapi.json" {
			require.True(t, failure, "%s has no error response", key)
			require.NotNil(t, op.Responses.Status(401), "%s: every authenticated route answers 401 without a token", key)
		}
	}

	var described []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	sort.Strings(described)
	for _, key := range described {
		require.True(t, served[key], "api/openapi.json describes %s, which the router does not serve", key)
	}
	require.Len(t, described, len(served))
}

// The description is served, without a token, as JSON.
func TestOpenAPIIsServed(t *testing.T) {
	h := api.NewRouter(api.Options{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	require.NotEmpty(t, rec.Header().Get("X-Request-ID"))
	var v map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v))
	require.Equal(t, "3.1.0", v["openapi"])
	doc := loadOpenAPI(t, rec.Body.Bytes())
	require.NotNil(t, doc.Paths.Value("/api/v1/deployments"))
	sec := doc.Paths.Value("/api/v1/openapi.json").Get.Security
	require.True(t, sec != nil && len(*sec) == 0, "the description says that it is public (security: [])")
}
