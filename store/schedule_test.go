package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// scheduleWorld is a catalog for the schedule tests.
type scheduleWorld struct {
	t   *testing.T
	s   *store.Store
	ctx context.Context
}

func (w scheduleWorld) env(app *models.Application, name string, policy models.Policy) *models.Environment {
	w.t.Helper()
	e := &models.Environment{ApplicationID: app.ID, Name: name, Position: 1, Policy: models.NewJSON(policy)}
	require.NoError(w.t, e.Validate())
	require.NoError(w.t, w.s.CreateEnvironment(w.ctx, alice, e))
	return e
}

func (w scheduleWorld) target(env *models.Environment, name string, labels map[string]string) *models.Target {
	w.t.Helper()
	t := &models.Target{EnvironmentID: env.ID, Name: name, Driver: models.DriverSimulated,
		Config: models.NewJSON(json.RawMessage(`{}`)), Labels: models.NewJSON(labels)}
	require.NoError(w.t, w.s.CreateTarget(w.ctx, alice, t))
	return t
}

func (w scheduleWorld) release(app *models.Application, version string) *models.Release {
	w.t.Helper()
	r := &models.Release{ApplicationID: app.ID, Version: version, Artifacts: models.NewJSON([]models.Artifact{{Name: "a", Version: version}})}
	require.NoError(w.t, w.s.CreateRelease(w.ctx, alice, r))
	return r
}

// deployment stores a deployment of rel to env in status, with changes to its row.
func (w scheduleWorld) deployment(rel *models.Release, env *models.Environment, status models.Status, set map[string]any) *models.Deployment {
	w.t.Helper()
	d, _, err := w.s.CreateDeployment(w.ctx, alice, &models.Deployment{ApplicationID: rel.ApplicationID, EnvironmentID: env.ID,
		ReleaseID: rel.ID, ReleaseVersion: rel.Version, Scenario: models.ScenarioUpgrade, Status: status}, store.IdempotencyKey{})
	require.NoError(w.t, err)
	if len(set) > 0 {
		require.NoError(w.t, w.s.DB().Model(&models.Deployment{}).Where("id = ?", d.ID).Updates(set).Error)
	}
	return d
}

// completed stores a deployment that completed: its rollout began at
// start (a deploying status on its timeline; none when start is zero) and
// it finished at end.
func (w scheduleWorld) completed(rel *models.Release, env *models.Environment, created, start, end time.Time) {
	w.t.Helper()
	d := w.deployment(rel, env, models.StatusCompleted, map[string]any{"created_at": created, "finished_at": end})
	if !start.IsZero() {
		require.NoError(w.t, w.s.AppendEvent(w.ctx, d.ID, "status/deploying", models.DeploymentEvent{At: start,
			Type: models.EventStatus, Status: models.StatusDeploying, Message: "wave 1 of 1"}))
	}
}

// The schedule estimates each deployment's duration from its lane's recent
// history (the median, from the start of the rollout, or the submission
// when that is not recorded) or else from the policy; places each by what
// holds it (approval, the lane, not_before, a change window); and finds
// the conflicts: two applications' deployments on one host, a run into a
// freeze, but not an emergency change's.
func TestScheduleEstimatesAndConflicts(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		w := scheduleWorld{t: t, s: s, ctx: ctx}
		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // a Monday
		shop, billing := seedApp(t, s, "shop"), seedApp(t, s, "billing")
		shopProd := w.env(shop, "prod", models.Policy{ConflictLabel: "host", EarlyLifeSupport: models.Duration(time.Hour),
			Freezes: []models.Freeze{{Start: now.Add(90 * time.Minute), End: now.Add(3 * time.Hour), Reason: "board meeting, Q1"}}})
		require.Equal(t, models.OnConflictWarn, shopProd.Policy.V.OnConflict, "warn is the default")
		shopStaging := w.env(shop, "staging", models.Policy{ChangeWindows: []models.ChangeWindow{{Days: []string{"mon"}, Start: "14:00", End: "15:00"}}})
		// Only shop's policy names the label: that is enough.
		billingProd := w.env(billing, "prod", models.Policy{EarlyLifeSupport: models.Duration(30 * time.Minute)})
		shop1 := w.target(shopProd, "shop-01", map[string]string{"host": "h1"})
		shop2 := w.target(shopProd, "shop-02", map[string]string{"host": "h2"})
		w.target(shopStaging, "staging-01", map[string]string{"host": "h1"})
		bill1 := w.target(billingProd, "billing-01", map[string]string{"host": "h1", "zone": "a"})
		shopRel, billRel := w.release(shop, "1.0.0"), w.release(billing, "2.0.0")

		// History of shop to prod: 10m, 20m and 40m from the rollout's
		// start, and 30m from the submission of one that recorded none.
		base := now.Add(-48 * time.Hour)
		for i, d := range []time.Duration{10 * time.Minute, 20 * time.Minute, 40 * time.Minute} {
			start := base.Add(time.Duration(i) * time.Hour)
			w.completed(shopRel, shopProd, start.Add(-time.Hour), start, start.Add(d))
		}
		w.completed(shopRel, shopProd, base.Add(5*time.Hour), time.Time{}, base.Add(5*time.Hour+30*time.Minute))
		durations, err := s.RecentDurations(ctx, shop.ID, shopProd.ID, 10)
		require.NoError(t, err)
		require.ElementsMatch(t, []time.Duration{10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 30 * time.Minute}, durations)

		a := w.deployment(shopRel, shopProd, models.StatusAwaitingApproval, nil)
		plan := &models.Plan{Application: "shop", Environment: "prod", Strategy: models.Strategy{Kind: models.StrategyAllAtOnce},
			Waves: [][]models.PlanTarget{{{ID: shop1.ID, Name: "shop-01"}, {ID: shop2.ID, Name: "shop-02"}}}}
		require.NoError(t, s.SavePlan(ctx, alice, a.ID, plan))
		b := w.deployment(billRel, billingProd, models.StatusScheduled, nil)
		c := w.deployment(shopRel, shopProd, models.StatusQueued, nil)
		d := w.deployment(shopRel, shopProd, models.StatusQueued, map[string]any{"not_before": now.Add(80 * time.Minute)})
		e := w.deployment(shopRel, shopProd, models.StatusQueued, map[string]any{"not_before": now.Add(2 * time.Hour),
			"emergency": models.NewJSON(&models.Emergency{Reason: "checkout is down", Incident: "INC-1"})})
		f := w.deployment(shopRel, shopStaging, models.StatusScheduled, nil)
		w.deployment(shopRel, shopStaging, models.StatusFailed, nil) // ended: not in the schedule

		sch, err := s.Schedule(ctx, store.ScheduleQuery{Now: now, From: now, To: now.Add(14 * 24 * time.Hour)})
		require.NoError(t, err)
		byID := map[string]models.ScheduledDeployment{}
		for _, sd := range sch.Deployments {
			byID[sd.ID] = sd
		}
		require.Len(t, byID, 6, "the active deployments, of both applications")

		// a: awaiting approval; 25m, the median of 4 (10, 20, 30, 40).
		require.Equal(t, models.StartApproval, byID[a.ID].StartBasis)
		require.Equal(t, now, byID[a.ID].ExpectedStart)
		require.Equal(t, models.EstimateHistory, byID[a.ID].Duration.Basis)
		require.Equal(t, 4, byID[a.ID].Duration.Samples)
		require.Equal(t, models.Duration(25*time.Minute), byID[a.ID].Duration.Expected)
		require.Contains(t, byID[a.ID].Duration.Method, "median of the last 4 completed deployments of shop to prod")
		require.Equal(t, now.Add(25*time.Minute), byID[a.ID].ExpectedEnd)
		require.Equal(t, []string{"shop-01", "shop-02"}, byID[a.ID].Targets)

		// b: no history: 1 wave × 5m + early life support 30m.
		require.Equal(t, models.StartNow, byID[b.ID].StartBasis)
		require.Equal(t, models.EstimatePolicy, byID[b.ID].Duration.Basis)
		require.Equal(t, models.Duration(35*time.Minute), byID[b.ID].Duration.Expected)
		require.Contains(t, byID[b.ID].Duration.Method, "no completed deployment of billing to prod yet")
		require.Equal(t, []string{"billing-01"}, byID[b.ID].Targets, "not planned yet: the environment's targets")

		// c: after a, in its lane; d: not before 80m; e: an emergency,
		// in the freeze, which it passes; f: the next change window.
		require.Equal(t, models.StartQueued, byID[c.ID].StartBasis)
		require.Equal(t, now.Add(25*time.Minute), byID[c.ID].ExpectedStart)
		require.Contains(t, byID[c.ID].StartReason, a.ID)
		require.Equal(t, models.StartNotBefore, byID[d.ID].StartBasis)
		require.Equal(t, now.Add(80*time.Minute), byID[d.ID].ExpectedStart)
		require.Equal(t, models.StartNotBefore, byID[e.ID].StartBasis)
		require.Equal(t, now.Add(2*time.Hour), byID[e.ID].ExpectedStart)
		require.Contains(t, byID[e.ID].StartReason, "an emergency change: passes freeze: board meeting, Q1")
		require.NotNil(t, byID[e.ID].Emergency)
		require.Equal(t, models.StartWindow, byID[f.ID].StartBasis)
		require.Equal(t, time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC), byID[f.ID].ExpectedStart)

		// A deployment held by the freeze starts when it ends.
		g := w.deployment(shopRel, shopProd, models.StatusQueued, map[string]any{"not_before": now.Add(100 * time.Minute)})
		sch2, err := s.Schedule(ctx, store.ScheduleQuery{Now: now, From: now, To: now.Add(24 * time.Hour), ApplicationID: shop.ID})
		require.NoError(t, err)
		held := false
		for _, sd := range sch2.Deployments {
			require.Equal(t, shop.ID, sd.ApplicationID, "narrowed to shop")
			if sd.ID == g.ID {
				held = true
				require.Equal(t, models.StartFreeze, sd.StartBasis)
				require.Equal(t, now.Add(3*time.Hour), sd.ExpectedStart)
				require.Contains(t, sd.StartReason, "board meeting")
			}
		}
		require.True(t, held, "the held deployment is in the schedule")
		require.NoError(t, s.DB().Model(&models.Deployment{}).Where("id = ?", g.ID).Update("status", models.StatusCancelled).Error)

		// Conflicts: a and b on host h1 (across applications), b and c
		// too; d runs into the freeze; e, an emergency, does not count.
		var overlaps, freezes []models.ScheduleConflict
		for _, cf := range sch.Conflicts {
			switch cf.Kind {
			case models.ConflictOverlap:
				overlaps = append(overlaps, cf)
			case models.ConflictFreeze:
				freezes = append(freezes, cf)
			}
		}
		require.Len(t, overlaps, 2, "%+v", overlaps)
		ab := overlaps[0]
		require.Equal(t, []string{a.ID, b.ID}, ab.Deployments)
		require.Equal(t, "host", ab.Label)
		require.Equal(t, []string{"h1"}, ab.Values)
		require.Equal(t, []string{"shop/prod/shop-01", "billing/prod/billing-01"}, ab.Targets)
		require.Equal(t, now, ab.Start)
		require.Equal(t, now.Add(25*time.Minute), ab.End)
		require.Equal(t, []string{b.ID, c.ID}, overlaps[1].Deployments)
		require.Len(t, freezes, 1, "%+v", freezes)
		require.Equal(t, []string{d.ID}, freezes[0].Deployments)
		require.Equal(t, "board meeting, Q1", freezes[0].Freeze.Reason)
		require.Equal(t, now.Add(90*time.Minute), freezes[0].Start)
		require.Contains(t, freezes[0].Message, "into a freeze of prod (board meeting, Q1) from 2026-03-02T11:30:00Z")

		// Freezes and windows, with the window's occurrences in range.
		require.Len(t, sch.Freezes, 1)
		require.Len(t, sch.ChangeWindows, 1)
		require.Equal(t, []models.Interval{
			{Start: time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)},
			{Start: time.Date(2026, 3, 9, 14, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 9, 15, 0, 0, 0, time.UTC)},
		}, sch.ChangeWindows[0].Occurrences)

		// Narrowed to billing: its deployment, and its conflicts with shop's.
		onlyBilling, err := s.Schedule(ctx, store.ScheduleQuery{Now: now, From: now, To: now.Add(24 * time.Hour), ApplicationID: billing.ID})
		require.NoError(t, err)
		require.Len(t, onlyBilling.Deployments, 1)
		require.Len(t, onlyBilling.Conflicts, 2)

		// Out of range: nothing.
		later, err := s.Schedule(ctx, store.ScheduleQuery{Now: now, From: now.Add(30 * 24 * time.Hour), To: now.Add(31 * 24 * time.Hour)})
		require.NoError(t, err)
		require.Empty(t, later.Deployments)
		require.Empty(t, later.Conflicts)

		// At planning: b conflicts with every active deployment of shop to
		// prod on host h1 (a by its plan; the others by their
		// environment's targets), not with shop's staging (no label there).
		found, err := s.LabelConflicts(ctx, store.ConflictQuery{DeploymentID: b.ID, ApplicationID: billing.ID, EnvironmentID: billingProd.ID,
			TargetIDs: []string{bill1.ID}})
		require.NoError(t, err)
		var ids []string
		for _, c := range found {
			ids = append(ids, c.DeploymentID)
			require.Equal(t, "host", c.Label)
			require.Equal(t, []string{"h1"}, c.Values)
			require.Equal(t, []string{"shop-01"}, c.Theirs)
			require.Equal(t, []string{"billing-01"}, c.Ours)
		}
		require.Equal(t, []string{a.ID, c.ID, d.ID, e.ID}, ids)
		require.Equal(t, fmt.Sprintf("%s (shop 1.0.0 to prod, awaiting_approval) also changes host h1 (its shop-01; here billing-01)", a.ID), found[0].String())
		before, err := s.LabelConflicts(ctx, store.ConflictQuery{DeploymentID: b.ID, ApplicationID: billing.ID, EnvironmentID: billingProd.ID,
			TargetIDs: []string{bill1.ID}, SubmittedBefore: true})
		require.NoError(t, err)
		require.Len(t, before, 1, "only a was submitted before b")
		// A label that no target shares finds nothing; the same lane never conflicts.
		none, err := s.LabelConflicts(ctx, store.ConflictQuery{DeploymentID: c.ID, ApplicationID: shop.ID, EnvironmentID: shopProd.ID,
			Label: "zone", TargetIDs: []string{shop2.ID}})
		require.NoError(t, err)
		require.Empty(t, none, "shop-02 is on h2, and no shop target has a zone")
	})
}

// The estimate: the median of the history, else the policy's waves, bakes
// and early life support; waves as planning builds them.
func TestEstimateDuration(t *testing.T) {
	p := models.Policy{EarlyLifeSupport: models.Duration(time.Hour)}
	e := models.EstimateDuration([]time.Duration{3 * time.Minute, time.Minute, 2 * time.Minute}, p, models.Strategy{}, 1, "shop to prod")
	require.Equal(t, models.Duration(2*time.Minute), e.Expected)
	require.Equal(t, 3, e.Samples)
	canary := models.Strategy{Kind: models.StrategyCanary, Bake: models.Duration(10 * time.Minute),
		Steps: []models.CanaryStep{{Count: 1}, {Percent: 25}, {Percent: 100}}}
	require.Equal(t, 3, models.WaveCount(canary, 10))
	require.Equal(t, 2, models.WaveCount(canary, 2), "1, then 25% of 2 is 1 again, then 2")
	require.Equal(t, 4, models.WaveCount(models.Strategy{Kind: models.StrategyRolling, Batch: 3}, 10))
	require.Equal(t, 1, models.WaveCount(models.Strategy{Kind: models.StrategyAllAtOnce}, 10))
	e = models.EstimateDuration(nil, p, canary, 3, "shop to prod")
	require.Equal(t, models.EstimatePolicy, e.Basis)
	require.Equal(t, models.Duration(3*5*time.Minute+2*10*time.Minute+time.Hour), e.Expected)
	require.Equal(t, "no completed deployment of shop to prod yet: from the policy, 3 waves × 5m0s + 2 bakes of 10m0s + early life support 1h0m0s = 1h35m0s", e.Method)
}

// A window's occurrences follow its time zone across a change of the
// clocks, as the gate reads it: 02:00 does not exist in Paris on 29 March
// 2026, so that night's window ends at 03:00 summer time.
func TestChangeWindowOccurrences(t *testing.T) {
	w := models.ChangeWindow{Days: []string{"sat", "sun"}, Start: "22:00", End: "02:00", Timezone: "Europe/Paris"}
	// The clocks go forward on Sunday 29 March 2026 in Paris.
	occ := w.Occurrences(time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC))
	require.Equal(t, []models.Interval{
		{Start: time.Date(2026, 3, 28, 21, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{Start: time.Date(2026, 3, 29, 20, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)},
	}, occ)
}

// The iCalendar feed: CRLF, lines of at most 75 octets (folded, never
// inside a character), TEXT escaped; a strict parser reads back the
// events, their times and their text.
func TestScheduleICalendar(t *testing.T) {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	long := strings.Repeat("é, ", 40) + "end; a\\b\nsecond line"
	sch := models.Schedule{From: start, To: start.Add(24 * time.Hour), GeneratedAt: start,
		Deployments: []models.ScheduledDeployment{{ID: "dep_1", Application: "shop", Environment: "prod", ReleaseVersion: "1.0.0",
			Scenario: models.ScenarioUpgrade, Status: models.StatusScheduled, Reason: long, ExpectedStart: start,
			ExpectedEnd: start.Add(25 * time.Minute), StartReason: "nothing holds it", Targets: []string{"shop-01"}}},
		Freezes: []models.ScheduledFreeze{{EnvironmentID: "env_1", Application: "shop", Environment: "prod",
			Start: start.Add(time.Hour), End: start.Add(2 * time.Hour), Reason: "board, Q1"}},
	}
	raw := string(sch.ICalendar(func(id string) string { return "https://transit.example/deployments/" + id }))
	require.True(t, strings.HasSuffix(raw, "END:VCALENDAR\r\n"))
	for i, l := range strings.Split(strings.TrimSuffix(raw, "\r\n"), "\r\n") {
		require.LessOrEqual(t, len(l), 75, "line %d is longer than 75 octets: %q", i, l)
		require.NotContains(t, l, "\n", "line %d has a bare LF", i)
	}
	cal, err := ics.ParseCalendar(strings.NewReader(raw))
	require.NoError(t, err)
	events := cal.Events()
	require.Len(t, events, 2)
	got, err := events[0].GetStartAt()
	require.NoError(t, err)
	require.Equal(t, start, got.UTC())
	end, err := events[0].GetEndAt()
	require.NoError(t, err)
	require.Equal(t, start.Add(25*time.Minute), end.UTC())
	require.Equal(t, "dep_1@transit", events[0].Id())
	desc := events[0].GetProperty(ics.ComponentPropertyDescription).Value
	require.Contains(t, ics.FromText(desc), long, "the reason comes back whole, unfolded and unescaped")
	require.Equal(t, "Freeze: shop prod (board, Q1)", ics.FromText(events[1].GetProperty(ics.ComponentPropertySummary).Value))
}

// The deployments an ending one may have to wake: queued, in an
// environment that waits on conflicts, of another lane.
func TestQueuedOnConflict(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		w := scheduleWorld{t: t, s: s, ctx: context.Background()}
		shop, billing := seedApp(t, s, "shop"), seedApp(t, s, "billing")
		waits := w.env(billing, "prod", models.Policy{ConflictLabel: "host", OnConflict: models.OnConflictWait})
		warns := w.env(billing, "staging", models.Policy{ConflictLabel: "host"})
		shopProd := w.env(shop, "prod", models.Policy{ConflictLabel: "host", OnConflict: models.OnConflictWait})
		billRel, shopRel := w.release(billing, "2.0.0"), w.release(shop, "1.0.0")
		queued := w.deployment(billRel, waits, models.StatusQueued, nil)
		w.deployment(billRel, waits, models.StatusAwaitingApproval, nil) // not queued
		w.deployment(billRel, warns, models.StatusQueued, nil)           // warns only
		w.deployment(shopRel, shopProd, models.StatusQueued, nil)        // the asking lane's own
		got, err := s.QueuedOnConflict(w.ctx, shop.ID, shopProd.ID, 100)
		require.NoError(t, err)
		var ids []string
		for _, d := range got {
			ids = append(ids, d.ID)
		}
		require.Equal(t, []string{queued.ID}, ids)
	})
}
