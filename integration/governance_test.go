package integration

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// A release is promoted, not teleported: prod refuses it until it has
// completed in staging, names what is missing, and GET /releases/{id}
// shows where it stands; a minimum soak is counted from the handover.
func TestPromotionThroughTheLifecycle(t *testing.T) {
	s := newStack(t, stackOptions{})
	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "shop", "owner_team": "web"}).str("id")
	env := func(name string, position int, policy models.Policy) string {
		id := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app, "name": name, "position": position, "policy": policy}).str("id")
		s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": id, "name": name + "-01", "driver": "simulated",
			"config": json.RawMessage(`{"latency_min":"10ms","latency_max":"20ms"}`)})
		return id
	}
	staging := env("staging", 1, quickPolicy())
	prodPolicy := quickPolicy()
	prodPolicy.Promotion = models.Promotion{Previous: true}
	prod := env("prod", 2, prodPolicy)
	euPolicy := quickPolicy()
	euPolicy.Promotion = models.Promotion{Requires: []string{"staging"}, MinSoak: models.Duration(time.Hour)}
	eu := env("prod-eu", 3, euPolicy)
	rel := s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": app, "version": "1.0.0",
		"artifacts": []map[string]string{{"name": "shop", "image": "shop:1"}}}).str("id")

	r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": rel, "environment": prod})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Equal(t, "release 1.0.0 may not go to prod yet: it has not been deployed to staging (the promotion policy of prod)", r.str("error", "message"))
	require.Len(t, s.must(200, "GET", "/api/v1/deployments?environment_id="+prod, nil).items(), 0, "a refusal changes nothing")

	id := s.deploy(s.admin, map[string]any{"release": rel, "environment": staging})
	s.waitStatus(id, time.Minute, models.StatusCompleted)
	life := s.must(200, "GET", "/api/v1/releases/"+rel, nil)
	steps, ok := life.get("lifecycle").([]any)
	require.True(t, ok, life.Raw)
	require.Len(t, steps, 3)
	first := steps[0].(map[string]any)
	require.Equal(t, "staging", first["environment"])
	require.Equal(t, "completed", first["status"])
	require.Equal(t, id, first["deployment_id"])
	require.NotEmpty(t, first["finished_at"])
	require.EqualValues(t, 0, steps[1].(map[string]any)["deployments"])

	s.waitStatus(s.deploy(s.admin, map[string]any{"release": rel, "environment": prod}), time.Minute, models.StatusCompleted)

	r = s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": rel, "environment": eu})
	require.Equal(t, 409, r.Status, r.Raw)
	require.Contains(t, r.str("error", "message"), "it has soaked in staging for 0s of the 1h0m0s required")

	// A soak needs somewhere to soak.
	r = s.call("POST", "/api/v1/environments", s.admin, map[string]any{"application_id": app, "name": "bad", "policy": map[string]any{
		"promotion": map[string]any{"min_soak": "1h"}}})
	require.Equal(t, 422, r.Status, "a soak without environments to soak in: %s", r.Raw)
}
