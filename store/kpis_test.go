package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// kpiAt reads an RFC 3339 time of the seeded history.
func kpiAt(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v.UTC()
}

// kpiIncident is an incidents row with only the columns every schema
// version has (another may add some).
type kpiIncident struct {
	ID           string
	DeploymentID string
	Severity     string
	Title        string
	Status       string
	ReportedBy   string
	CreatedAt    time.Time
	ResolvedAt   *time.Time
}

func (kpiIncident) TableName() string { return "incidents" }

// kpiHistory is the hand-seeded history of TestKPIsOnAHandSeededHistory.
type kpiHistory struct {
	shop, blog              string // application ids
	staging, prod, blogProd string // environment ids
	from, to                time.Time
	p2, p3, p4              string
}

// seedKPIHistory writes, row by row, two applications' deployments around
// the range [2026-03-02, 2026-03-16) (two weeks, Monday to Monday).
//
// shop/prod (position 2: production) is planned under a policy of 2
// approvals, a change window Monday to Friday 09:00-17:00 UTC and a
// freeze on 2026-03-12; shop/staging (position 1) under one that needs no
// approval and has no window; blog/prod (its only environment) needs 1.
//
//	id  env      submitted    not_before  rollout started        finished          status                 votes
//	P0  prod     02-25 10:00              02-25 11:00            02-26 10:00       completed              (before the range)
//	P8  prod     02-27 10:00                                                       scheduled              (still waiting)
//	S1  staging  03-01 10:00              03-01 11:00            03-02 01:00       completed              policy
//	P1  prod     03-02 09:00              03-02 10:00 (+10:30)   03-02 12:00       completed              alice, bob (api)
//	B1  blog     03-05 10:00              03-05 10:30            03-05 11:00       completed              dave (update)
//	S2  staging  03-08 09:00  03-08 10:00 03-08 09:30            03-08 10:00       completed              policy
//	P2  prod     03-09 08:00  03-09 14:00 03-09 15:00            03-09 16:00       rolled_back            alice (api), bob (signal, 03-09 09:00)
//	P3  prod     03-10 09:00              03-10 20:00            03-11 10:00       completed_with_issues  alice (api)
//	P4  prod     03-12 10:00              03-12 11:00 (freeze)   03-12 13:00       completed              carol (api); an emergency change
//	P5  prod     03-13 09:00                                                       awaiting_approval
//	P6  prod     03-14 10:00                                     03-14 11:00       rejected
//	P7  prod     03-15 10:00                                     03-15 10:05       failed                 (planning failed)
//
// Releases: 1.0.0 on 02-20, 1.1.0 on 03-01 (S1, P1), 1.2.0 on 03-08 (the
// rest). Incidents: I1 (high) on P3, opened 03-10 22:00, resolved 03-11
// 02:00, an instance of the known error KE1; I2 (low) on S2, opened 03-08
// 12:00, still open.
func seedKPIHistory(t *testing.T, s *store.Store) kpiHistory {
	t.Helper()
	db := s.DB()
	at := func(v string) time.Time { return kpiAt(t, "2026-"+v+":00Z") }
	ptr := func(v string) *time.Time { x := at(v); return &x }
	h := kpiHistory{shop: "app_kpi_shop", blog: "app_kpi_blog", staging: "env_kpi_staging", prod: "env_kpi_prod", blogProd: "env_kpi_blog",
		from: at("03-02T00:00"), to: at("03-16T00:00")}
	create := func(v any) { require.NoError(t, db.Create(v).Error) }

	for _, a := range []models.Application{{ID: h.shop, Name: "shop", OwnerTeam: "web"}, {ID: h.blog, Name: "blog", OwnerTeam: "web"}} {
		a.CreatedBy, a.CreatedAt, a.UpdatedAt = "test", at("01-01T00:00"), at("01-01T00:00")
		create(&a)
	}
	weekdays := []models.ChangeWindow{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "09:00", End: "17:00", Timezone: "UTC"}}
	prodPolicy := models.Policy{ApprovalsRequired: 2, ChangeWindows: weekdays,
		Freezes: []models.Freeze{{Start: at("03-12T00:00"), End: at("03-13T00:00"), Reason: "audit week"}}}
	stagingPolicy := models.Policy{ApprovalsRequired: 0}
	blogPolicy := models.Policy{ApprovalsRequired: 1}
	for _, e := range []models.Environment{
		{ID: h.staging, ApplicationID: h.shop, Name: "staging", Position: 1, Policy: models.NewJSON(stagingPolicy)},
		{ID: h.prod, ApplicationID: h.shop, Name: "prod", Position: 2, Policy: models.NewJSON(prodPolicy)},
		{ID: h.blogProd, ApplicationID: h.blog, Name: "prod", Position: 0, Policy: models.NewJSON(blogPolicy)},
	} {
		e.CreatedBy, e.CreatedAt, e.UpdatedAt = "test", at("01-01T00:00"), at("01-01T00:00")
		create(&e)
	}
	releases := map[string]string{}
	for _, r := range []struct{ id, app, version, created string }{
		{"rel_kpi_100", h.shop, "1.0.0", "02-20T00:00"}, {"rel_kpi_110", h.shop, "1.1.0", "03-01T00:00"},
		{"rel_kpi_120", h.shop, "1.2.0", "03-08T00:00"}, {"rel_kpi_blog", h.blog, "3.0.0", "03-05T00:00"},
	} {
		releases[r.version] = r.id
		create(&models.Release{ID: r.id, ApplicationID: r.app, Version: r.version, CreatedBy: "test", CreatedAt: at(r.created),
			Artifacts: models.NewJSON([]models.Artifact{{Name: "api", Version: r.version}}), EntryCriteria: models.NewJSON(map[string]string{})})
	}

	type dep struct {
		id, env, version, submitted, notBefore string
		starts                                 []string
		finished                               string
		status                                 models.Status
		emergency                              *models.Emergency
	}
	policies := map[string]models.Policy{h.prod: prodPolicy, h.staging: stagingPolicy, h.blogProd: blogPolicy}
	apps := map[string]string{h.prod: h.shop, h.staging: h.shop, h.blogProd: h.blog}
	for _, d := range []dep{
		{id: "dep_kpi_p0", env: h.prod, version: "1.0.0", submitted: "02-25T10:00", starts: []string{"02-25T11:00"}, finished: "02-26T10:00", status: models.StatusCompleted},
		{id: "dep_kpi_p8", env: h.prod, version: "1.1.0", submitted: "02-27T10:00", status: models.StatusScheduled},
		{id: "dep_kpi_s1", env: h.staging, version: "1.1.0", submitted: "03-01T10:00", starts: []string{"03-01T11:00"}, finished: "03-02T01:00", status: models.StatusCompleted},
		{id: "dep_kpi_p1", env: h.prod, version: "1.1.0", submitted: "03-02T09:00", starts: []string{"03-02T10:30", "03-02T10:00"}, finished: "03-02T12:00", status: models.StatusCompleted},
		{id: "dep_kpi_b1", env: h.blogProd, version: "3.0.0", submitted: "03-05T10:00", starts: []string{"03-05T10:30"}, finished: "03-05T11:00", status: models.StatusCompleted},
		{id: "dep_kpi_s2", env: h.staging, version: "1.2.0", submitted: "03-08T09:00", notBefore: "03-08T10:00", starts: []string{"03-08T09:30"}, finished: "03-08T10:00", status: models.StatusCompleted},
		{id: "dep_kpi_p2", env: h.prod, version: "1.2.0", submitted: "03-09T08:00", notBefore: "03-09T14:00", starts: []string{"03-09T15:00"}, finished: "03-09T16:00", status: models.StatusRolledBack},
		{id: "dep_kpi_p3", env: h.prod, version: "1.2.0", submitted: "03-10T09:00", starts: []string{"03-10T20:00"}, finished: "03-11T10:00", status: models.StatusCompletedWithIssues},
		{id: "dep_kpi_p4", env: h.prod, version: "1.2.0", submitted: "03-12T10:00", starts: []string{"03-12T11:00"}, finished: "03-12T13:00", status: models.StatusCompleted,
			emergency: &models.Emergency{Reason: "checkout is down", Incident: "INC-9"}},
		{id: "dep_kpi_p5", env: h.prod, version: "1.2.0", submitted: "03-13T09:00", status: models.StatusAwaitingApproval},
		{id: "dep_kpi_p6", env: h.prod, version: "1.2.0", submitted: "03-14T10:00", finished: "03-14T11:00", status: models.StatusRejected},
		{id: "dep_kpi_p7", env: h.prod, version: "1.2.0", submitted: "03-15T10:00", finished: "03-15T10:05", status: models.StatusFailed},
	} {
		row := models.Deployment{ID: d.id, ApplicationID: apps[d.env], EnvironmentID: d.env, ReleaseID: releases[d.version], ReleaseVersion: d.version,
			RequestedBy: "rita", Status: d.status, WorkflowID: models.WorkflowIDFor(d.id), CreatedAt: at(d.submitted), UpdatedAt: at(d.submitted),
			Emergency: models.NewJSON(d.emergency)}
		if d.notBefore != "" {
			row.NotBefore = ptr(d.notBefore)
		}
		if d.finished != "" {
			row.FinishedAt = ptr(d.finished)
		}
		if len(d.starts) > 0 { // planned: the plan holds the policy it was planned under
			row.Plan = models.NewJSON(&models.Plan{Environment: d.env, ReleaseVersion: d.version, Policy: policies[d.env], Emergency: d.emergency})
		}
		create(&row)
		create(&models.DeploymentEvent{DeploymentID: d.id, Key: "submitted", At: at(d.submitted), Type: models.EventSubmitted, Status: models.StatusPlanning})
		for i, st := range d.starts {
			create(&models.DeploymentEvent{DeploymentID: d.id, Key: "deploying/" + string(rune('a'+i)), At: at(st), Type: models.EventStatus, Status: models.StatusDeploying})
		}
	}
	// A progress line in the window does not start P3's rollout: only a
	// move to deploying does.
	create(&models.DeploymentEvent{DeploymentID: "dep_kpi_p3", Key: "wave-1", At: at("03-10T10:00"), Type: models.EventProgress, Status: models.StatusDeploying})

	for _, v := range []models.Approval{
		{DeploymentID: "dep_kpi_s1", Approver: "policy:staging", Via: string(models.ViaPolicy), At: at("03-01T10:30")},
		{DeploymentID: "dep_kpi_p1", Approver: "alice", Via: string(models.ViaAPI), At: at("03-02T09:10")},
		{DeploymentID: "dep_kpi_p1", Approver: "bob", Via: string(models.ViaAPI), At: at("03-02T09:20")},
		{DeploymentID: "dep_kpi_b1", Approver: "dave", Via: string(models.ViaUpdate), At: at("03-05T10:10")},
		{DeploymentID: "dep_kpi_s2", Approver: "policy:staging", Via: string(models.ViaPolicy), At: at("03-08T09:05")},
		{DeploymentID: "dep_kpi_p2", Approver: "alice", Via: string(models.ViaAPI), At: at("03-09T08:30")},
		{DeploymentID: "dep_kpi_p2", Approver: "bob", Via: string(models.ViaSignal), At: at("03-09T09:00")},
		{DeploymentID: "dep_kpi_p3", Approver: "alice", Via: string(models.ViaAPI), At: at("03-10T09:30")},
		{DeploymentID: "dep_kpi_p4", Approver: "carol", Via: string(models.ViaAPI), At: at("03-12T10:30")},
	} {
		v.Decision = models.DecisionApprove
		create(&v)
	}
	create(&kpiIncident{ID: "inc_kpi_1", DeploymentID: "dep_kpi_p3", Severity: "high", Title: "slow checkout", Status: models.IncidentResolved,
		ReportedBy: "probe", CreatedAt: at("03-10T22:00"), ResolvedAt: ptr("03-11T02:00")})
	create(&kpiIncident{ID: "inc_kpi_2", DeploymentID: "dep_kpi_s2", Severity: "low", Title: "a typo", Status: models.IncidentOpen,
		ReportedBy: "rita", CreatedAt: at("03-08T12:00")})
	// Known errors: KE1 open since 03-01; KE2 resolved on 03-20, after
	// the range; KE3 resolved on 03-05; KE4 recorded on 03-17; KE5 blog's.
	for _, k := range []models.KnownError{
		{ID: "ke_kpi_1", ApplicationID: h.shop, Status: models.KnownErrorOpen, CreatedAt: at("03-01T00:00")},
		{ID: "ke_kpi_2", ApplicationID: h.shop, Status: models.KnownErrorResolved, CreatedAt: at("02-01T00:00"), ResolvedAt: ptr("03-20T00:00")},
		{ID: "ke_kpi_3", ApplicationID: h.shop, Status: models.KnownErrorResolved, CreatedAt: at("02-01T00:00"), ResolvedAt: ptr("03-05T00:00")},
		{ID: "ke_kpi_4", ApplicationID: h.shop, Status: models.KnownErrorOpen, CreatedAt: at("03-17T00:00")},
		{ID: "ke_kpi_5", ApplicationID: h.blog, Status: models.KnownErrorOpen, CreatedAt: at("03-01T00:00")},
	} {
		k.Title, k.Severity, k.CreatedBy, k.UpdatedAt = "a known error", "medium", "test", k.CreatedAt
		create(&k)
	}
	require.NoError(t, db.Exec(`UPDATE incidents SET known_error_id = ? WHERE id = ?`, "ke_kpi_1", "inc_kpi_1").Error)
	h.p2, h.p3, h.p4 = "dep_kpi_p2", "dep_kpi_p3", "dep_kpi_p4"
	return h
}

// kpiValue returns the value of the KPI name, failing when it is null.
func kpiValue(t *testing.T, list []models.KPI, name string) float64 {
	t.Helper()
	k := models.FindKPI(list, name)
	require.NotNil(t, k, "no KPI %s", name)
	require.NotNil(t, k.Value, "KPI %s is null: %s", name, k.Note)
	require.NotEmpty(t, k.Counted, "KPI %s says how it was counted", name)
	return *k.Value
}

func kpiGroup(t *testing.T, groups []models.KPIGroup, app, env string) models.KPIGroup {
	t.Helper()
	for _, g := range groups {
		if g.Application == app && g.Environment == env {
			return g
		}
	}
	t.Fatalf("no group %s/%s in %+v", app, env, groups)
	return models.KPIGroup{}
}

const hour = 3600.0

// Every KPI on a small history seeded row by row, with the values worked
// out by hand (see seedKPIHistory for the rows).
func TestKPIsOnAHandSeededHistory(t *testing.T) {
	dialects(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		h := seedKPIHistory(t, s)
		r, err := s.KPIs(ctx, store.KPIFilter{From: h.from, To: h.to, ApplicationID: h.shop})
		require.NoError(t, err)
		dm := r.DeploymentManagement

		// Finished in the range with an outcome of their rollout: P1, P2,
		// P3, P4, S1, S2 (6; P6 rejected, P7 failed at planning before any
		// rollout, and P0 before the range are not); completed: P1, P4, S1,
		// S2 (4). 4/6.
		require.InDelta(t, 4.0/6, kpiValue(t, dm, models.KPISuccessfulDeploymentRate), 1e-9)
		k := models.FindKPI(dm, models.KPISuccessfulDeploymentRate)
		require.EqualValues(t, 4, k.Count)
		require.EqualValues(t, 6, *k.Of)
		// Errors: P2 rolled back, P7 failed.
		require.Equal(t, 2.0, kpiValue(t, dm, models.KPIDeploymentErrors))
		require.Equal(t, map[string]int64{"rolled_back": 1, "failed": 1}, models.FindKPI(dm, models.KPIDeploymentErrors).Breakdown)
		// Incidents opened in the range: I1 (high), I2 (low).
		require.Equal(t, 2.0, kpiValue(t, dm, models.KPIDeploymentIncidents))
		require.Equal(t, map[string]int64{"critical": 0, "high": 1, "medium": 0, "low": 1}, models.FindKPI(dm, models.KPIDeploymentIncidents).Breakdown)
		// Rollouts started in the range: P1 (Mon 10:00, its first move to
		// deploying), S2, P2, P3, P4 (S1 started before it): 5. On
		// schedule: P1 (in the window), P2 (in the window, after its
		// not_before). Not: S2 (09:30, before its not_before 10:00), P3
		// (20:00, outside the window; a progress line at 10:00 is no
		// start), P4 (in the freeze, an emergency). 2/5.
		require.InDelta(t, 2.0/5, kpiValue(t, dm, models.KPIScheduleAdherence), 1e-9)
		// Lead time, submitted → handed over (completed or with issues):
		// S2 1h, P1 3h, P4 3h, S1 15h, P3 25h; median 3h.
		require.Equal(t, 3*hour, kpiValue(t, dm, models.KPIDeploymentLeadTime))
		require.EqualValues(t, 5, models.FindKPI(dm, models.KPIDeploymentLeadTime).Count)
		// Submitted in the range: P1-P7 and S2 (8; S1 and P8 before it).
		require.Equal(t, 8.0, kpiValue(t, dm, models.KPIDeploymentsSubmitted))
		// Finished in the range: P1, P2, P3, P4, P6, P7, S1, S2 (8).
		require.Equal(t, 8.0, kpiValue(t, dm, models.KPIDeploymentsFinished))
		require.Equal(t, map[string]int64{"completed": 4, "completed_with_issues": 1, "rolled_back": 1, "rejected": 1, "failed": 1},
			models.FindKPI(dm, models.KPIDeploymentsFinished).Breakdown)
		// Not finished at the end: P5 (awaiting approval), P8 (scheduled).
		require.Equal(t, 2.0, kpiValue(t, dm, models.KPIDeploymentBacklog))
		// 8 finished in 2 weeks.
		require.Equal(t, 4.0, kpiValue(t, dm, models.KPIFinishedPerWeek))
		// Week 1 [03-02, 03-09): submitted P1, S2; finished S1, P1, S2;
		// backlog at its end P8. Week 2 [03-09, 03-16): submitted P2-P7
		// (6); finished P2, P3, P4, P6, P7 (5); backlog P5, P8.
		require.Len(t, r.WeeklyThroughput, 2)
		require.Equal(t, models.KPIWeek{From: h.from, To: kpiAt(t, "2026-03-09T00:00:00Z"), Submitted: 2, Finished: 3, Backlog: 1}, r.WeeklyThroughput[0])
		require.Equal(t, models.KPIWeek{From: kpiAt(t, "2026-03-09T00:00:00Z"), To: h.to, Submitted: 6, Finished: 5, Backlog: 2}, r.WeeklyThroughput[1])
		// Compliance: P2's signal vote (03-09 09:00), P3 started with 1 of
		// 2 approvals (03-10 20:00), P4 an emergency change (03-12 10:00).
		// P1 has 2 of 2, P4 1 of its emergency quorum of 1, S2 the policy's.
		// The audit chain (empty) is intact. B1's vote is blog's.
		require.Equal(t, 3.0, kpiValue(t, dm, models.KPIComplianceIssues))
		require.Equal(t, map[string]int64{"no_quorum": 1, "emergency_change": 1, "vote_outside_api": 1, "audit_chain_broken": 0},
			models.FindKPI(dm, models.KPIComplianceIssues).Breakdown)
		require.Len(t, r.ComplianceIssues, 3)
		require.Equal(t, []string{models.IssueVoteOutsideAPI, models.IssueNoQuorum, models.IssueEmergencyChange},
			[]string{r.ComplianceIssues[0].Kind, r.ComplianceIssues[1].Kind, r.ComplianceIssues[2].Kind})
		require.Equal(t, h.p2, r.ComplianceIssues[0].DeploymentID)
		require.Contains(t, r.ComplianceIssues[0].Message, "bob voted approve via a Temporal signal")
		require.Equal(t, h.p3, r.ComplianceIssues[1].DeploymentID)
		require.Contains(t, r.ComplianceIssues[1].Message, "1 of the 2 approvals")
		require.Equal(t, h.p4, r.ComplianceIssues[2].DeploymentID)
		require.Equal(t, "emergency change (INC-9): checkout is down", r.ComplianceIssues[2].Message)

		// DORA: staging (position 1) and prod (2, production), in that order.
		require.Len(t, r.DORA, 2)
		staging, prod := r.DORA[0], r.DORA[1]
		require.Equal(t, []string{"staging", "prod"}, []string{staging.Environment, prod.Environment})
		require.False(t, staging.Production)
		require.True(t, prod.Production)
		// prod: P1, P2, P3, P4 finished with an outcome of their rollout
		// (P7 failed at planning: no change): 4 in 14 days.
		require.InDelta(t, 4.0/14, kpiValue(t, prod.KPIs, models.KPIDeploymentFrequency), 1e-9)
		// Release created → handed over: P1 03-01 00:00 → 03-02 12:00 36h;
		// P3 03-08 00:00 → 03-11 10:00 82h; P4 → 03-12 13:00 109h. Median 82h.
		require.Equal(t, 82*hour, kpiValue(t, prod.KPIs, models.KPILeadTimeForChanges))
		// P2 rolled back, P3 with issues: 2 of 4 (P7 changed nothing).
		require.InDelta(t, 2.0/4, kpiValue(t, prod.KPIs, models.KPIChangeFailureRate), 1e-9)
		// I1 opened 22:00 → resolved 02:00: 4h; P2 rolled back 03-09
		// 16:00 → the next completed, P4 (P3 had issues), 03-12 13:00:
		// 69h. Median (4h + 69h) / 2 = 36.5h.
		require.Equal(t, 36.5*hour, kpiValue(t, prod.KPIs, models.KPITimeToRestore))
		require.Equal(t, map[string]int64{"incidents": 1, "rollbacks": 1, "unrestored": 0}, models.FindKPI(prod.KPIs, models.KPITimeToRestore).Breakdown)
		// staging: S1, S2 completed: 2 in 14 days; lead for changes S1
		// 03-01 00:00 → 03-02 01:00 25h, S2 03-08 00:00 → 10:00 10h:
		// median 17.5h; no failure; I2 is still open: nothing restored.
		require.InDelta(t, 2.0/14, kpiValue(t, staging.KPIs, models.KPIDeploymentFrequency), 1e-9)
		require.Equal(t, 17.5*hour, kpiValue(t, staging.KPIs, models.KPILeadTimeForChanges))
		require.Equal(t, 0.0, kpiValue(t, staging.KPIs, models.KPIChangeFailureRate))
		ttr := models.FindKPI(staging.KPIs, models.KPITimeToRestore)
		require.Nil(t, ttr.Value)
		require.Equal(t, map[string]int64{"incidents": 0, "rollbacks": 0, "unrestored": 1}, ttr.Breakdown)

		// Known errors of shop not resolved at the end of the range: KE1
		// (open) and KE2 (resolved after it); not KE3 (resolved before
		// it) nor KE4 (recorded after it). Incidents linked to one: I1 of
		// I1 and I2.
		rm := r.ReleaseManagement
		require.Equal(t, 2.0, kpiValue(t, rm, models.KPIUnresolvedKnownErrors))
		require.Equal(t, 0.5, kpiValue(t, rm, models.KPIIncidentsLinkedToKnownErrors))

		// One environment: prod alone.
		r, err = s.KPIs(ctx, store.KPIFilter{From: h.from, To: h.to, ApplicationID: h.shop, EnvironmentID: h.prod})
		require.NoError(t, err)
		// P1-P7 submitted in the range; P1, P2, P3, P4 started, on
		// schedule P1, P2.
		require.Equal(t, 7.0, kpiValue(t, r.DeploymentManagement, models.KPIDeploymentsSubmitted))
		require.InDelta(t, 2.0/4, kpiValue(t, r.DeploymentManagement, models.KPIScheduleAdherence), 1e-9)
		require.Len(t, r.DORA, 1)
		require.True(t, r.DORA[0].Production)

		// Every application: blog's B1 too (completed; dave's vote by Update):
		// 5 completed of 7 rolled out.
		r, err = s.KPIs(ctx, store.KPIFilter{From: h.from, To: h.to})
		require.NoError(t, err)
		require.InDelta(t, 5.0/7, kpiValue(t, r.DeploymentManagement, models.KPISuccessfulDeploymentRate), 1e-9)
		require.Equal(t, 4.0, kpiValue(t, r.DeploymentManagement, models.KPIComplianceIssues))
		// KE1, KE2 and blog's KE5.
		require.Equal(t, 3.0, kpiValue(t, r.ReleaseManagement, models.KPIUnresolvedKnownErrors))
		require.Len(t, r.DORA, 3)
		blog := kpiGroup(t, r.DORA, "blog", "prod")
		require.True(t, blog.Production, "an application's only environment is its production")
		// B1: released 03-05 00:00, handed over 11:00.
		require.Equal(t, 11*hour, kpiValue(t, blog.KPIs, models.KPILeadTimeForChanges))

		// The gauges' snapshot: per application and environment.
		snap, err := s.KPISnapshot(ctx, h.from, h.to)
		require.NoError(t, err)
		require.True(t, snap.AuditChainOK)
		require.Len(t, snap.Environments, 3)
		sp := kpiGroup(t, snap.Environments, "shop", "prod")
		require.InDelta(t, 2.0/4, kpiValue(t, sp.KPIs, models.KPIChangeFailureRate), 1e-9)
		// P2's signal vote, P3's quorum, P4's emergency.
		require.Equal(t, 3.0, kpiValue(t, sp.KPIs, models.KPIComplianceIssues))
		require.Equal(t, 0.0, kpiValue(t, kpiGroup(t, snap.Environments, "shop", "staging").KPIs, models.KPIComplianceIssues))
		require.Equal(t, 1.0, kpiValue(t, kpiGroup(t, snap.Environments, "blog", "prod").KPIs, models.KPIComplianceIssues))
		require.Len(t, snap.Applications, 2)
		require.Equal(t, "blog", snap.Applications[0].Application)
		// blog's KE5.
		require.Equal(t, 1.0, kpiValue(t, snap.Applications[0].KPIs, models.KPIUnresolvedKnownErrors))
		require.Equal(t, 2.0, kpiValue(t, snap.Applications[1].KPIs, models.KPIUnresolvedKnownErrors))

		// A broken audit chain is an issue of every report.
		require.NoError(t, s.DB().Exec(`INSERT INTO audit_events (seq, at, actor, action, resource_type, resource_id, request_id, prev_hash, hash)
			VALUES (1, ?, 'mallory', 'update', 'deployment', 'dep_kpi_p3', '', 'forged', 'forged')`, kpiAt(t, "2026-03-20T00:00:00Z")).Error)
		r, err = s.KPIs(ctx, store.KPIFilter{From: h.from, To: h.to, ApplicationID: h.shop})
		require.NoError(t, err)
		require.Equal(t, 4.0, kpiValue(t, r.DeploymentManagement, models.KPIComplianceIssues))
		first := r.ComplianceIssues[0]
		require.Equal(t, models.IssueAuditChainBroken, first.Kind, "the broken chain comes first")
		require.Contains(t, first.Message, "breaks at row 1")
		snap, err = s.KPISnapshot(ctx, h.from, h.to)
		require.NoError(t, err)
		require.False(t, snap.AuditChainOK)
	})
}

// A range must run forwards and span at most 366 days.
func TestKPIRangeIsChecked(t *testing.T) {
	s := open(t, "sqlite://"+t.TempDir()+"/transit.db")
	ctx := context.Background()
	from := kpiAt(t, "2026-03-02T00:00:00Z")
	_, err := s.KPIs(ctx, store.KPIFilter{From: from, To: from})
	require.ErrorIs(t, err, models.ErrInvalid)
	require.Contains(t, err.Error(), "from: must be before to")
	_, err = s.KPIs(ctx, store.KPIFilter{From: from, To: from.Add(367 * 24 * time.Hour)})
	require.ErrorIs(t, err, models.ErrInvalid)
	require.Contains(t, err.Error(), "at most 366 days")
	// An empty history: ratios and medians of nothing are null, and say why.
	r, err := s.KPIs(ctx, store.KPIFilter{From: from, To: from.Add(24 * time.Hour)})
	require.NoError(t, err)
	k := models.FindKPI(r.DeploymentManagement, models.KPISuccessfulDeploymentRate)
	require.Nil(t, k.Value)
	require.NotEmpty(t, k.Note)
	require.Equal(t, 0.0, kpiValue(t, r.DeploymentManagement, models.KPIDeploymentsSubmitted))
	require.Len(t, r.WeeklyThroughput, 1, "a range shorter than a week is one (short) week")
	require.Empty(t, r.DORA)
}
