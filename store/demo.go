package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/transit-hq/transit/models"
)

// DemoApplication is the name of the application SeedDemo creates, and
// DemoTeam the team that owns it.
const (
	DemoApplication = "storefront"
	DemoTeam        = "web"
)

// SeedDemo creates an example catalog: the application "storefront"; dev,
// staging and prod environments with simulated targets and policies that
// show approvals, canaries and early life support; and release 1.0.0. Each
// piece that exists already is left as it is, so a run cut short is
// completed by the next one.
func SeedDemo(ctx context.Context, s *Store) error {
	actor := Actor{Subject: "transit-dev-demo"}
	app, err := s.GetApplication(ctx, DemoApplication)
	if models.IsNotFound(err) {
		app = &models.Application{Name: DemoApplication, OwnerTeam: DemoTeam, Description: "Example application seeded by transit dev --demo"}
		err = s.CreateApplication(ctx, actor, app)
	}
	if err != nil {
		return err
	}
	probe := []models.ProbeSpec{{Name: "error-rate", Type: models.ProbeSimulated,
		Config: json.RawMessage(`{"failure_rate":0}`), Interval: models.Duration(5 * time.Second), Threshold: 1}}
	check := []models.CheckSpec{{Name: "smoke", Type: models.CheckSimulated, Config: json.RawMessage(`{}`)}}
	envs := []struct {
		name    string
		targets int
		policy  models.Policy
	}{
		{"dev", 2, models.Policy{ApprovalsRequired: 0, SelfApprovalAllowed: true,
			PointOfNoReturn: models.Duration(5 * time.Second), EarlyLifeSupport: models.Duration(15 * time.Second),
			ValidationChecks: check, ObservationProbes: probe}},
		{"staging", 3, models.Policy{ApprovalsRequired: 1, SelfApprovalAllowed: true,
			Strategy:        models.Strategy{Kind: models.StrategyRolling, Batch: 1, Bake: models.Duration(5 * time.Second)},
			PointOfNoReturn: models.Duration(time.Minute), EarlyLifeSupport: models.Duration(2 * time.Minute),
			ValidationChecks: check, ObservationProbes: probe}},
		{"prod", 10, models.Policy{ApprovalsRequired: 2, ApproverGroups: []string{"release-managers", models.GroupAdmin},
			Strategy: models.Strategy{Kind: models.StrategyCanary, Bake: models.Duration(10 * time.Second),
				Steps: []models.CanaryStep{{Count: 1}, {Percent: 25}, {Percent: 100}}},
			PointOfNoReturn: models.Duration(2 * time.Minute), EarlyLifeSupport: models.Duration(5 * time.Minute),
			ValidationChecks: check, ObservationProbes: probe}},
	}
	for i, e := range envs {
		envID, err := s.findID(ctx, kindEnvironment, "application_id = ? AND name = ?", app.ID, e.name)
		if err != nil {
			return err
		}
		if envID == "" {
			env := &models.Environment{ApplicationID: app.ID, Name: e.name, Position: i, Policy: models.NewJSON(e.policy)}
			if err := s.CreateEnvironment(ctx, actor, env); err != nil {
				return fmt.Errorf("environment %s: %w", e.name, err)
			}
			envID = env.ID
		}
		for n := 1; n <= e.targets; n++ {
			name := fmt.Sprintf("%s-%02d", e.name, n)
			id, err := s.findID(ctx, kindTarget, "environment_id = ? AND name = ?", envID, name)
			if err != nil || id != "" {
				if err != nil {
					return err
				}
				continue
			}
			t := &models.Target{EnvironmentID: envID, Name: name, Driver: models.DriverSimulated,
				Config: models.NewJSON(json.RawMessage(`{"latency_min":"200ms","latency_max":"1s","seed":42}`))}
			if err := s.CreateTarget(ctx, actor, t); err != nil {
				return fmt.Errorf("target %s: %w", t.Name, err)
			}
		}
	}
	if id, err := s.findID(ctx, kindRelease, "application_id = ? AND version = ?", app.ID, "1.0.0"); err != nil || id != "" {
		return err
	}
	rel := &models.Release{ApplicationID: app.ID, Version: "1.0.0",
		Artifacts:     models.NewJSON([]models.Artifact{{Name: "storefront", Image: "storefront:1.0.0"}}),
		Notes:         "First release of the demo storefront.",
		EntryCriteria: models.NewJSON(map[string]string{"tests": "passed", "security_scan": "clean"})}
	return s.CreateRelease(ctx, actor, rel)
}

// findID returns the id of the row of k matching where, or "".
func (s *Store) findID(ctx context.Context, k kind, where string, args ...any) (string, error) {
	var ids []string
	if err := s.db.WithContext(ctx).Table(k.table).Where(where, args...).Limit(1).Pluck("id", &ids).Error; err != nil {
		return "", fmt.Errorf("look up %s: %w", k.name, err)
	}
	if len(ids) == 0 {
		return "", nil
	}
	return ids[0], nil
}
