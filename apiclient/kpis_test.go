package apiclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/models"
)

// KPIs sends the query the description declares, and reads the report.
func TestKPIsSpeakTheDescribedAPI(t *testing.T) {
	f := newFakeAPI(t)
	f.answer("GET /api/v1/kpis", 200, `{"from":"2026-03-02T00:00:00Z","to":"2026-03-16T00:00:00Z","application_id":"app_1","computed_at":"2026-03-16T00:00:01Z",
		"deployment_management":[{"name":"successful_deployment_rate","value":0.5,"unit":"ratio","count":1,"of":2,"counted":"completed among …"}],
		"weekly_throughput":[{"from":"2026-03-02T00:00:00Z","to":"2026-03-09T00:00:00Z","submitted":2,"finished":1,"backlog":1}],
		"compliance_issues":[],"release_management":[{"name":"unresolved_known_errors","value":3,"unit":"count","count":3,"counted":"…"}],
		"dora":[{"application_id":"app_1","application":"shop","environment_id":"env_1","environment":"prod","position":2,"production":true,
		"kpis":[{"name":"time_to_restore","value":null,"unit":"seconds","count":0,"counted":"…","note":"nothing restored"}]}]}`)
	from := time.Date(2026, 3, 2, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	r, err := f.client().KPIs(context.Background(), apiclient.KPIFilter{From: from, To: from.Add(14 * 24 * time.Hour), Application: "shop", Environment: "prod"})
	require.NoError(t, err)
	require.Equal(t, "application=shop&environment=prod&from=2026-03-02T00%3A00%3A00Z&to=2026-03-16T00%3A00%3A00Z", f.last().Query)
	require.Equal(t, 0.5, *models.FindKPI(r.DeploymentManagement, models.KPISuccessfulDeploymentRate).Value)
	require.True(t, r.DORA[0].Production)
	require.Nil(t, r.DORA[0].KPIs[0].Value)

	_, err = f.client().KPIs(context.Background(), apiclient.KPIFilter{})
	require.NoError(t, err)
	require.Empty(t, f.last().Query, "the API's defaults: no query")
}
