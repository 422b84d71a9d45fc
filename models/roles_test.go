package models_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func TestStrategyLoosens(t *testing.T) {
	two := 2
	base := models.Strategy{Kind: models.StrategyRolling, Batch: 5, Bake: models.Duration(time.Minute), MaxFailures: 1,
		MaxTotalFailures: &two, MaxParallel: 10}
	tighter := models.Strategy{Kind: models.StrategyRolling, Batch: 2, Bake: models.Duration(2 * time.Minute), MaxFailures: 0,
		MaxTotalFailures: &two, MaxParallel: 5}
	require.Empty(t, tighter.Loosens(base))
	require.Empty(t, base.Loosens(base), "the same strategy loosens nothing")

	ten := 10
	for name, c := range map[string]struct {
		s    models.Strategy
		want string
	}{
		"more failures":       {models.Strategy{Kind: models.StrategyRolling, Batch: 5, Bake: base.Bake, MaxFailures: 10, MaxTotalFailures: &two, MaxParallel: 10}, "max_failures 10"},
		"more total failures": {models.Strategy{Kind: models.StrategyRolling, Batch: 5, Bake: base.Bake, MaxFailures: 1, MaxTotalFailures: &ten, MaxParallel: 10}, "max_total_failures 10"},
		"no total limit":      {models.Strategy{Kind: models.StrategyRolling, Batch: 5, Bake: base.Bake, MaxFailures: 1, MaxParallel: 10}, "max_total_failures is unset"},
		"larger batch":        {models.Strategy{Kind: models.StrategyRolling, Batch: 50, Bake: base.Bake, MaxFailures: 1, MaxTotalFailures: &two, MaxParallel: 10}, "batch 50"},
		"all at once":         {models.Strategy{Kind: models.StrategyAllAtOnce, Bake: base.Bake, MaxFailures: 1, MaxTotalFailures: &two, MaxParallel: 10}, "kind all_at_once"},
		"shorter bake":        {models.Strategy{Kind: models.StrategyRolling, Batch: 5, MaxFailures: 1, MaxTotalFailures: &two, MaxParallel: 10}, "bake 0s is shorter"},
		"more in parallel":    {models.Strategy{Kind: models.StrategyRolling, Batch: 5, Bake: base.Bake, MaxFailures: 1, MaxTotalFailures: &two, MaxParallel: 100}, "max_parallel 100"},
	} {
		t.Run(name, func(t *testing.T) {
			got := c.s.Loosens(base)
			require.Len(t, got, 1, "%v", got)
			require.Contains(t, got[0], c.want)
		})
	}

	// Against all at once, any kind is tighter; canaries compare step by step.
	open := models.Strategy{Kind: models.StrategyAllAtOnce, MaxParallel: 10}
	require.Empty(t, models.Strategy{Kind: models.StrategyCanary, Steps: []models.CanaryStep{{Count: 1}}, MaxParallel: 10}.Loosens(open))
	canary := models.Strategy{Kind: models.StrategyCanary, MaxParallel: 10, Steps: []models.CanaryStep{{Count: 1}, {Percent: 25}, {Percent: 100}}}
	narrower := canary
	narrower.Steps = []models.CanaryStep{{Count: 1}, {Percent: 10}, {Percent: 50}, {Percent: 100}}
	require.Empty(t, narrower.Loosens(canary))
	wider := canary
	wider.Steps = []models.CanaryStep{{Count: 3}, {Percent: 25}, {Percent: 100}}
	require.NotEmpty(t, wider.Loosens(canary))
	fewer := canary
	fewer.Steps = []models.CanaryStep{{Count: 1}, {Percent: 100}}
	require.NotEmpty(t, fewer.Loosens(canary), "fewer steps reach 100% sooner")
}

func TestRolesOfTokens(t *testing.T) {
	require.Equal(t, []string{models.RoleAdmin}, models.DefaultRoles([]string{"admin", "x"}))
	require.Equal(t, []string{models.RoleDeployer, models.RoleReleaseManager}, models.DefaultRoles(nil))

	p := (&models.APIToken{Subject: "dana", Teams: models.NewJSON([]string{"web"}), Roles: models.NewJSON([]string{models.RoleDeployer})}).Principal()
	require.True(t, p.HasRole(models.RoleDeployer))
	require.False(t, p.HasRole(models.RoleReleaseManager))
	require.True(t, p.InTeam("web"))
	require.False(t, p.InTeam(""), "no one is in the empty team")
	admin := models.Principal{Roles: []string{models.RoleAdmin}}
	require.True(t, admin.HasRole(models.RoleAuditor), "an admin holds every role")

	bad := &models.APIToken{Subject: "x", Roles: models.NewJSON([]string{"superuser"}), Teams: models.NewJSON([]string{"Has Space"})}
	err := bad.Validate()
	require.ErrorContains(t, err, `unknown role "superuser"`)
	require.ErrorContains(t, err, "teams[0]")
}

func TestPromotionGap(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	done := now.Add(-2 * time.Hour)
	steps := []models.LifecycleStep{
		{EnvironmentID: "e1", Environment: "dev", Position: 0, Deployments: 1, Scenario: "install", Status: models.StatusCompleted, FinishedAt: &done},
		{EnvironmentID: "e2", Environment: "staging", Position: 1, Deployments: 2, DeploymentID: "dep_2", Scenario: "upgrade", Status: models.StatusRolledBack},
		{EnvironmentID: "e3", Environment: "prod", Position: 2},
	}
	prod := &models.Environment{ID: "e3", Name: "prod", Position: 2}
	gaps := models.Promotion{Previous: true}.Gap(prod, steps, now)
	require.Equal(t, []string{"its last deployment to staging (dep_2) is upgrade rolled_back, not completed"}, gaps)

	require.Empty(t, models.Promotion{Requires: []string{"dev"}}.Gap(prod, steps, now))
	require.Equal(t, []string{"it has soaked in dev for 2h0m0s of the 24h0m0s required"},
		models.Promotion{Requires: []string{"dev"}, MinSoak: models.Duration(24 * time.Hour)}.Gap(prod, steps, now))
	require.Equal(t, []string{"it has not been deployed to qa"}, models.Promotion{Requires: []string{"qa"}}.Gap(prod, steps, now))

	removed := append([]models.LifecycleStep{}, steps...)
	removed[0].Scenario = models.ScenarioDecommission
	require.Contains(t, models.Promotion{Requires: []string{"dev"}}.Gap(prod, removed, now)[0], "decommission completed, not completed")
	require.Empty(t, models.Promotion{}.Gap(prod, steps, now), "no promotion asks nothing")
}

func TestStandardChangeAndKnownErrors(t *testing.T) {
	plan := models.Plan{Scenario: models.ScenarioUpgrade, Risk: models.Risk{Score: 10, Level: "low"}}
	sc := &models.StandardChange{MaxRisk: 30}
	ok, _ := sc.Matches(plan)
	require.True(t, ok)
	plan.KnownErrors = []models.KnownErrorRef{{ID: "ke_1", Acknowledged: true}}
	ok, why := sc.Matches(plan)
	require.False(t, ok, "by default, a known error makes it a normal change")
	require.Equal(t, "the release carries open known errors", why)
	sc.RequiresKnownErrorsAcknowledged = true
	ok, _ = sc.Matches(plan)
	require.True(t, ok, "acknowledged, it may be standard when the rule says so")
	plan.KnownErrors = append(plan.KnownErrors, models.KnownErrorRef{ID: "ke_2"})
	ok, why = sc.Matches(plan)
	require.False(t, ok)
	require.Contains(t, why, "not acknowledged")
	plan.Scenario = models.ScenarioDowngrade
	ok, why = sc.Matches(plan)
	require.False(t, ok)
	require.Contains(t, why, "a downgrade is not a standard change here")
}
