package api_test

import (
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/api"
)

// The README prints the rule of every route as the code has it.
func TestReadmePrintsTheAccessRules(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.True(t, strings.Contains(string(readme), api.RulesTable()),
		"README.md does not hold the access table of api/authz.go; paste this under \"Who may do what\":\n%s", api.RulesTable())
}

// Every route under /api/v1 has a rule, and every rule a route.
func TestEveryRouteHasAnAccessRule(t *testing.T) {
	engine, ok := api.NewRouter(api.Options{}).(*gin.Engine)
	require.True(t, ok)
	rules := api.RouteRules()
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1") || r.Path == "/api/v1/openapi.json" { // the description is public
			continue
		}
		key := r.Method + " " + r.Path
		routes[key] = true
		require.Contains(t, rules, key, "route %s has no rule in api/authz.go, so no one may use it", key)
	}
	for key := range rules {
		require.True(t, routes[key], "rule %s names no route", key)
	}
}
