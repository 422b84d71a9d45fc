package integration

import (
	"bufio"
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// kpiOf returns the KPI name of a JSON list of KPIs (an answer's), and
// requires that it says how it was counted, as models.KPIDefinitions does.
func kpiOf(t *testing.T, list any, name string) map[string]any {
	t.Helper()
	items, _ := list.([]any)
	for _, it := range items {
		k := it.(map[string]any)
		if k["name"] == name {
			require.Equal(t, models.KPIDefinitionOf(name).Counted, k["counted"], "%s says how it was counted", name)
			return k
		}
	}
	t.Fatalf("no KPI %s in %v", name, list)
	return nil
}

// kpiGauge reads one sample of /metrics: the metric with exactly these
// labels ("" for none); ok is false when there is none.
func kpiGauge(metrics, metric, labels string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(metrics))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prefix := metric + labels + " "
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, prefix), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// GET /api/v1/kpis over HTTP, on a real deployment (through the workflow,
// so on the timeline and votes the worker records) and on a history
// seeded row by row with values worked out by hand; the gauges on
// /metrics; and the errors, named.
func TestKPIsOverHTTP(t *testing.T) {
	s := newStack(t, stackOptions{})
	a := newAPIChecker(t, s)
	ctx := context.Background()

	// A real deployment: one approval, by alice through the API.
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	c := s.seed("prod", 2, policy, "", "1.0.0")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, time.Minute, models.StatusAwaitingApproval)
	alice := s.issueToken("alice")
	r := s.call("POST", "/api/v1/deployments/"+id+"/approvals", alice, map[string]any{"decision": "approve"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(id, 2*time.Minute, models.StatusCompleted)

	// A history seeded row by row, from base B (10 days ago, on the hour),
	// to an environment planned under 2 approvals and no window:
	//
	//	D1  submitted B     started B+1h   completed B+3h      alice, bob (api)
	//	D2  submitted B+24h started B+25h  rolled_back B+26h   alice (api): 1 of 2
	//	D3  submitted B+48h started B+49h  completed B+50h     carol (api); an emergency change (quorum 1)
	//
	// The release was created at B-21h. An incident (high) on D2 was
	// opened at B+25h30m and resolved at B+27h30m.
	base := time.Now().UTC().Truncate(time.Hour).Add(-10 * 24 * time.Hour)
	at := func(h float64) time.Time { return base.Add(time.Duration(h * float64(time.Hour))) }
	ptr := func(h float64) *time.Time { v := at(h); return &v }
	db := s.store.DB().WithContext(ctx)
	create := func(v any) { require.NoError(t, db.Create(v).Error) }
	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "kpi-history", "owner_team": "web"}).str("id")
	envPolicy := models.Policy{ApprovalsRequired: 2}
	env := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app, "name": "prod", "position": 1, "policy": envPolicy}).str("id")
	create(&models.Release{ID: "rel_kpi_http", ApplicationID: app, Version: "2.0.0", CreatedBy: "test", CreatedAt: at(-21),
		Artifacts: models.NewJSON([]models.Artifact{{Name: "api", Version: "2.0.0"}}), EntryCriteria: models.NewJSON(map[string]string{})})
	for _, d := range []struct {
		id                        string
		submitted, started, ended float64
		status                    models.Status
		emergency                 *models.Emergency
		voters                    []string
	}{
		{"dep_kpi_http_1", 0, 1, 3, models.StatusCompleted, nil, []string{"alice", "bob"}},
		{"dep_kpi_http_2", 24, 25, 26, models.StatusRolledBack, nil, []string{"alice"}},
		{"dep_kpi_http_3", 48, 49, 50, models.StatusCompleted, &models.Emergency{Reason: "checkout is down"}, []string{"carol"}},
	} {
		create(&models.Deployment{ID: d.id, ApplicationID: app, EnvironmentID: env, ReleaseID: "rel_kpi_http", ReleaseVersion: "2.0.0",
			RequestedBy: "rita", Status: d.status, WorkflowID: models.WorkflowIDFor(d.id), CreatedAt: at(d.submitted), UpdatedAt: at(d.ended),
			FinishedAt: ptr(d.ended), Emergency: models.NewJSON(d.emergency), Plan: models.NewJSON(&models.Plan{Policy: envPolicy, Emergency: d.emergency})})
		create(&models.DeploymentEvent{DeploymentID: d.id, Key: "deploying", At: at(d.started), Type: models.EventStatus, Status: models.StatusDeploying})
		for i, v := range d.voters {
			create(&models.Approval{DeploymentID: d.id, Approver: v, Decision: models.DecisionApprove, Via: string(models.ViaAPI), At: at(d.submitted + 0.1*float64(i+1))})
		}
	}
	create(&models.Incident{ID: "inc_kpi_http", DeploymentID: "dep_kpi_http_2", Severity: "high", Title: "errors", Status: models.IncidentResolved,
		ReportedBy: "probe", CreatedAt: at(25.5), ResolvedAt: ptr(27.5)})

	q := url.Values{"application": {"kpi-history"}, "from": {base.Format(time.RFC3339)}, "to": {base.Add(7 * 24 * time.Hour).Format(time.RFC3339)}}
	r = a.do(200, "GET", "/api/v1/kpis?"+q.Encode(), s.admin, nil)
	require.Equal(t, app, r.str("application_id"), "the application named is resolved to its id")
	dm := r.get("deployment_management")
	// D1, D3 completed of D1, D2, D3.
	rate := kpiOf(t, dm, models.KPISuccessfulDeploymentRate)
	require.InDelta(t, 2.0/3, rate["value"], 1e-9)
	require.EqualValues(t, 2, rate["count"])
	require.EqualValues(t, 3, rate["of"])
	require.EqualValues(t, 1, kpiOf(t, dm, models.KPIDeploymentErrors)["value"])
	require.EqualValues(t, 1, kpiOf(t, dm, models.KPIDeploymentIncidents)["value"])
	// No window, no not_before: every rollout started on schedule.
	require.EqualValues(t, 1, kpiOf(t, dm, models.KPIScheduleAdherence)["value"])
	// Submitted → handed over: D1 3h, D3 2h; median 2.5h.
	require.EqualValues(t, 2.5*3600, kpiOf(t, dm, models.KPIDeploymentLeadTime)["value"])
	// D2's quorum (1 of 2), D3 an emergency change.
	issues := kpiOf(t, dm, models.KPIComplianceIssues)
	require.EqualValues(t, 2, issues["value"])
	require.Equal(t, map[string]any{"no_quorum": 1.0, "emergency_change": 1.0, "vote_outside_api": 0.0, "audit_chain_broken": 0.0}, issues["breakdown"])
	require.Len(t, r.get("compliance_issues"), 2)
	require.Equal(t, []any{map[string]any{"from": base.Format(time.RFC3339), "to": base.Add(7 * 24 * time.Hour).Format(time.RFC3339),
		"submitted": 3.0, "finished": 3.0, "backlog": 0.0}}, r.get("weekly_throughput"))
	require.EqualValues(t, 0, kpiOf(t, r.get("release_management"), models.KPIUnresolvedKnownErrors)["value"])
	dora, _ := r.get("dora").([]any)
	require.Len(t, dora, 1)
	prod := dora[0].(map[string]any)
	require.Equal(t, "prod", prod["environment"])
	require.Equal(t, true, prod["production"], "its only environment is its production")
	// 3 deployments in 7 days.
	require.InDelta(t, 3.0/7, kpiOf(t, prod["kpis"], models.KPIDeploymentFrequency)["value"], 1e-9)
	// Release created (B-21h) → handed over: D1 24h, D3 71h; median 47.5h.
	require.EqualValues(t, 47.5*3600, kpiOf(t, prod["kpis"], models.KPILeadTimeForChanges)["value"])
	// D2 rolled back, of 3.
	cfr := kpiOf(t, prod["kpis"], models.KPIChangeFailureRate)
	require.InDelta(t, 1.0/3, cfr["value"], 1e-9)
	require.Contains(t, cfr["counted"], "rolled_back, failed or completed_with_issues")
	// The incident 2h; D2 rolled back at B+26h → D3 completed at B+50h:
	// 24h. Median 13h.
	require.EqualValues(t, 13*3600, kpiOf(t, prod["kpis"], models.KPITimeToRestore)["value"])

	// The real deployment, over the default range (the last 30 days):
	// one handed over, on schedule, with its quorum, recorded by the worker.
	r = a.do(200, "GET", "/api/v1/kpis?application="+c.app, s.admin, nil)
	dm = r.get("deployment_management")
	require.EqualValues(t, 1, kpiOf(t, dm, models.KPISuccessfulDeploymentRate)["value"])
	require.EqualValues(t, 1, kpiOf(t, dm, models.KPIScheduleAdherence)["value"], "its rollout started, on the timeline")
	require.EqualValues(t, 0, kpiOf(t, dm, models.KPIComplianceIssues)["value"], "alice's vote is its quorum")
	require.Greater(t, kpiOf(t, dm, models.KPIDeploymentLeadTime)["value"], 0.0)
	from, err := time.Parse(time.RFC3339, r.str("from"))
	require.NoError(t, err)
	to, err := time.Parse(time.RFC3339, r.str("to"))
	require.NoError(t, err)
	require.Equal(t, 30*24*time.Hour, to.Sub(from), "the default range is 30 days")

	// One environment by name, with its application; an auditor may read them.
	auditor := s.issue(models.APIToken{Subject: "otto", Roles: models.NewJSON([]string{models.RoleAuditor})})
	r = a.do(200, "GET", "/api/v1/kpis?application=kpi-history&environment=prod&"+url.Values{"from": q["from"], "to": q["to"]}.Encode(), auditor, nil)
	require.Equal(t, env, r.str("environment_id"))

	// Bad values are named.
	for _, bad := range []struct {
		query  string
		status int
		field  string
	}{
		{"from=yesterday", 400, "from"},
		{"to=2026-13-01", 400, "to"},
		{"colour=blue", 400, "colour"},
		{"from=2026-03-10T00:00:00Z&to=2026-03-01T00:00:00Z", 422, "from"},
		{"from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 422, "to"},
		{"application=nope", 422, "application"},
		{"environment=prod", 422, "environment"},
		{"environment=env_missing", 422, "environment"},
		{"application=kpi-history&environment=qa", 422, "environment"},
		{"application=kpi-history&environment=" + c.env, 422, "environment"},
	} {
		r := a.do(bad.status, "GET", "/api/v1/kpis?"+bad.query, s.admin, nil)
		require.Contains(t, r.str("error", "message"), bad.field, bad.query)
		if bad.status == 422 {
			require.Contains(t, r.str("error", "details"), `"field":"`+bad.field+`"`, bad.query)
		}
	}

	realApp := s.must(200, "GET", "/api/v1/applications/"+c.app, nil).str("name")
	// The gauges: counted in the background (the first scrape starts the
	// count), for the last 30 days, by application and environment.
	require.EventuallyWithT(t, func(col *assertCollect) {
		require.Equal(t, 401, s.call("GET", "/metrics/kpis", "", nil).Status, "the KPIs need a token")
		m := s.call("GET", "/metrics/kpis", s.admin, nil).Raw
		labels := `{application="kpi-history",environment="prod"}`
		for metric, want := range map[string]float64{
			"transit_kpi_change_failure_ratio":          1.0 / 3,
			"transit_kpi_deployments_finished":          3,
			"transit_kpi_compliance_issues":             2,
			"transit_kpi_time_to_restore_seconds":       13 * 3600,
			"transit_kpi_lead_time_for_changes_seconds": 47.5 * 3600,
		} {
			got, ok := kpiGauge(m, metric, labels)
			if !ok {
				col.Errorf("no %s%s yet", metric, labels)
				continue
			}
			if diff := got - want; diff > 1e-9 || diff < -1e-9 {
				col.Errorf("%s%s is %v, not %v", metric, labels, got, want)
			}
		}
		if v, ok := kpiGauge(m, "transit_kpi_unresolved_known_errors", `{application="kpi-history"}`); !ok || v != 0 {
			col.Errorf("transit_kpi_unresolved_known_errors of kpi-history: %v %v", v, ok)
		}
		if v, ok := kpiGauge(m, "transit_kpi_audit_chain_intact", ""); !ok || v != 1 {
			col.Errorf("transit_kpi_audit_chain_intact: %v %v", v, ok)
		}
		if _, ok := kpiGauge(m, "transit_kpi_successful_deployment_ratio", `{application="`+realApp+`",environment="prod"}`); !ok {
			col.Errorf("no gauge of the real deployment's environment")
		}
	}, 30*time.Second, 300*time.Millisecond)
}
