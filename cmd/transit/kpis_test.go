package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// kpiReport is a report as the API would answer it.
func kpiReport(t *testing.T) string {
	t.Helper()
	v := func(f float64) *float64 { return &f }
	of := func(n int64) *int64 { return &n }
	def := func(name string) string { return models.KPIDefinitionOf(name).Counted }
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	r := models.KPIReport{From: from, To: from.Add(14 * 24 * time.Hour), ApplicationID: "app_1", EnvironmentID: "env_1", ComputedAt: from.Add(15 * 24 * time.Hour),
		DeploymentManagement: []models.KPI{
			{Name: models.KPISuccessfulDeploymentRate, Value: v(4.0 / 7), Unit: models.UnitRatio, Count: 4, Of: of(7), Counted: def(models.KPISuccessfulDeploymentRate)},
			{Name: models.KPIDeploymentErrors, Value: v(2), Unit: models.UnitCount, Count: 2, Breakdown: map[string]int64{"rolled_back": 1, "failed": 1}, Counted: def(models.KPIDeploymentErrors)},
			{Name: models.KPIDeploymentLeadTime, Value: v(3 * 3600), Unit: models.UnitSeconds, Count: 5, Counted: def(models.KPIDeploymentLeadTime)},
			{Name: models.KPIFinishedPerWeek, Value: v(4), Unit: models.UnitPerWeek, Count: 8, Counted: def(models.KPIFinishedPerWeek)},
		},
		WeeklyThroughput: []models.KPIWeek{{From: from, To: from.Add(7 * 24 * time.Hour), Submitted: 2, Finished: 3, Backlog: 1}},
		ComplianceIssues: []models.ComplianceIssue{{Kind: models.IssueEmergencyChange, DeploymentID: "dep_4", At: from.Add(24 * time.Hour),
			Message: "emergency change (INC-9): checkout is down"}},
		ReleaseManagement: []models.KPI{{Name: models.KPIUnresolvedKnownErrors, Value: v(2), Unit: models.UnitCount, Count: 2, Counted: def(models.KPIUnresolvedKnownErrors)}},
		DORA: []models.KPIGroup{{ApplicationID: "app_1", Application: "shop", EnvironmentID: "env_1", Environment: "prod", Position: 2, Production: true,
			KPIs: []models.KPI{
				{Name: models.KPIDeploymentFrequency, Value: v(5.0 / 14), Unit: models.UnitPerDay, Count: 5},
				{Name: models.KPILeadTimeForChanges, Value: v(82 * 3600), Unit: models.UnitSeconds, Count: 3},
				{Name: models.KPIChangeFailureRate, Value: v(0.6), Unit: models.UnitRatio, Count: 3, Of: of(5)},
				{Name: models.KPITimeToRestore, Unit: models.UnitSeconds, Note: "nothing restored"},
			}}},
	}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	return string(b)
}

// transit kpis asks for the range and scope its flags say, and prints the
// report as tables; -o json prints the API's answer.
func TestKPIsPrintsTheReport(t *testing.T) {
	f := newFakeAPI(t)
	body := kpiReport(t)
	f.on("GET", "/api/v1/kpis", 200, body)

	code, out, errOut := f.run("kpis", "--app", "shop", "--env", "prod", "--from", "2026-03-02T00:00:00Z", "--to", "2026-03-16T00:00:00Z")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "application=shop&environment=prod&from=2026-03-02T00%3A00%3A00Z&to=2026-03-16T00%3A00%3A00Z", f.last("GET", "/api/v1/kpis").query)
	for _, want := range []string{
		`KPIs from 2026-03-02 00:00 to 2026-03-16 00:00 \(application shop \(app_1\), environment prod \(env_1\)\)`,
		`Deployment management \(ITIL\)`,
		`successful_deployment_rate\s+57\.1%\s+4 of 7`,
		`deployment_errors\s+2\s+failed 1, rolled_back 1`,
		`deployment_lead_time\s+3h\s+median of 5`,
		`finished_per_week\s+4\.00/week\s+8 in the range`,
		`Weekly throughput\nWEEK FROM\s+TO\s+SUBMITTED\s+FINISHED\s+BACKLOG\n2026-03-02 00:00\s+2026-03-09 00:00\s+2\s+3\s+1\n`,
		`emergency_change\s+dep_4\s+emergency change \(INC-9\): checkout is down`,
		`unresolved_known_errors\s+2\s`,
		`\(how each was counted: transit kpis --explain\)`,
	} {
		require.Regexp(t, want, out)
	}
	row := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "shop") {
			row = l
		}
	}
	require.Regexp(t, `^shop\s+prod \*\s+0\.36/day\s+3d10h\s+60\.0%\s+-\s*$`, row)

	code, out, errOut = f.run("kpis", "--explain")
	require.Equal(t, 0, code, errOut)
	require.Empty(t, f.last("GET", "/api/v1/kpis").query, "the API's defaults: the last 30 days, everything")
	require.Contains(t, out, "- change_failure_rate (ratio): ")
	require.Contains(t, out, "- successful_deployment_rate (ratio): "+models.KPIDefinitionOf(models.KPISuccessfulDeploymentRate).Counted)

	code, out, errOut = f.run("kpis", "-o", "json")
	require.Equal(t, 0, code, errOut)
	require.JSONEq(t, body, out)

	code, _, errOut = f.run("kpis", "--from", "last tuesday")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `--from "last tuesday" must be an RFC 3339 time`)

	f.on("GET", "/api/v1/kpis", 422, `{"error":{"code":"validation_failed","message":"the request has invalid fields: environment: the application has no environment named \"qa\""}}`)
	code, _, errOut = f.run("kpis", "--app", "shop", "--env", "qa")
	require.Equal(t, exitRefused, code)
	require.Contains(t, errOut, `no environment named "qa"`)
}
