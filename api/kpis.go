package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// DefaultKPIRange is the range of GET /kpis when from is left out, and of
// the KPI gauges on /metrics.
const DefaultKPIRange = 30 * 24 * time.Hour

// kpiParams are the query parameters of GET /kpis.
var kpiParams = []string{"from", "to", "application", "environment"}

// kpis serves GET /kpis: the KPIs of a range (default: the last 30 days),
// of one application (id or name) and one of its environments (id, or
// name with the application), or of everything.
func (h *Handler) kpis(c *gin.Context) {
	for k := range c.Request.URL.Query() {
		known := false
		for _, p := range kpiParams {
			known = known || k == p
		}
		if !known {
			h.fail(c, badRequest(fmt.Sprintf("unknown query parameter %q: /kpis takes %s", k, strings.Join(kpiParams, ", "))))
			return
		}
	}
	var (
		f   store.KPIFilter
		err error
	)
	if f.From, err = queryTime(c, "from"); err != nil {
		h.fail(c, err)
		return
	}
	if f.To, err = queryTime(c, "to"); err != nil {
		h.fail(c, err)
		return
	}
	if f.To.IsZero() {
		f.To = time.Now().UTC().Truncate(time.Microsecond) // as the records' times: what finished before now is in
	}
	if f.From.IsZero() {
		f.From = f.To.Add(-DefaultKPIRange)
	}
	if app := c.Query("application"); app != "" {
		if f.ApplicationID, err = h.resolveApplication(c, "application", app); err != nil {
			h.fail(c, err)
			return
		}
	}
	if env := c.Query("environment"); env != "" {
		if f.EnvironmentID, f.ApplicationID, err = h.kpiEnvironment(c, f.ApplicationID, env); err != nil {
			h.fail(c, err)
			return
		}
	}
	report, err := h.store.KPIs(c, f)
	reply(h, c, http.StatusOK, report, err)
}

// kpiEnvironment resolves the environment filter: an id, or a name within
// the application (appID). It returns the environment's id and its
// application's.
func (h *Handler) kpiEnvironment(c *gin.Context, appID, ref string) (envID, envAppID string, err error) {
	if strings.HasPrefix(ref, models.PrefixEnvironment+"_") {
		env, err := h.store.GetEnvironment(c, ref)
		switch {
		case models.IsNotFound(err):
			return "", "", models.Invalid("environment", "no environment has id %q", ref)
		case err != nil:
			return "", "", err
		case appID != "" && env.ApplicationID != appID:
			return "", "", models.Invalid("environment", "%s (%s) is not an environment of the application named by application", ref, env.Name)
		}
		return env.ID, env.ApplicationID, nil
	}
	if appID == "" {
		return "", "", models.Invalid("environment", "%q is not an environment id: to name an environment, name its application too (application=…)", ref)
	}
	page, err := h.store.ListEnvironments(c, store.ListOptions{Limit: 1, Filters: map[string]string{"application_id": appID, "name": ref}})
	if err != nil {
		return "", "", err
	}
	if len(page.Items) == 0 {
		return "", "", models.Invalid("environment", "the application has no environment named %q", ref)
	}
	return page.Items[0].ID, appID, nil
}

// ---- the KPIs as Prometheus gauges

// kpiRefreshEvery is how old the gauges' snapshot may be before a scrape
// starts counting it again, in the background.
const kpiRefreshEvery = time.Minute

// kpiCollector reports the KPIs of the last 30 days per application and
// environment. Counting them reads every deployment of the range and
// verifies the audit chain, so a scrape never waits for it: it answers
// from the last snapshot, and starts a new count in the background when
// that is older than kpiRefreshEvery. The first scrape after a start
// starts the first count and has no KPI gauges yet.
type kpiCollector struct {
	store *store.Store

	mu         sync.Mutex
	snap       *models.KPISnapshot
	started    time.Time // the last count began
	refreshing bool
}

var (
	// kpiDescs: one gauge per KPI, by application and environment; the
	// release management KPIs by application.
	kpiDescs = func() map[string]*prometheus.Desc {
		out := map[string]*prometheus.Desc{}
		for _, d := range models.KPIDefinitions {
			labels := []string{"application", "environment"}
			if d.Name == models.KPIUnresolvedKnownErrors || d.Name == models.KPIIncidentsLinkedToKnownErrors {
				labels = []string{"application"}
			}
			out[d.Name] = prometheus.NewDesc(d.Metric, fmt.Sprintf("%s (%s; the last 30 days, counted every minute at most).", d.Counted, d.Unit), labels, nil)
		}
		return out
	}()
	kpiAuditChainDesc = prometheus.NewDesc("transit_kpi_audit_chain_intact",
		"1 when the audit log's hash chain verifies, 0 when it does not (counted with the KPIs).", nil, nil)
	kpiComputedDesc = prometheus.NewDesc("transit_kpi_computed_timestamp_seconds",
		"When the KPI gauges were counted (Unix time).", nil, nil)
)

func (k *kpiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range models.KPIDefinitions {
		ch <- kpiDescs[d.Name]
	}
	ch <- kpiAuditChainDesc
	ch <- kpiComputedDesc
}

func (k *kpiCollector) Collect(ch chan<- prometheus.Metric) {
	if k.store == nil {
		return
	}
	k.mu.Lock()
	if !k.refreshing && (k.started.IsZero() || time.Since(k.started) >= kpiRefreshEvery) {
		k.refreshing, k.started = true, time.Now()
		go k.refresh()
	}
	snap := k.snap
	k.mu.Unlock()
	if snap == nil {
		return
	}
	gauge := func(name string, v *float64, labels ...string) {
		if v != nil { // a KPI of nothing, or not tracked, has no sample
			ch <- prometheus.MustNewConstMetric(kpiDescs[name], prometheus.GaugeValue, *v, labels...)
		}
	}
	for _, g := range snap.Environments {
		for _, kpi := range g.KPIs {
			gauge(kpi.Name, kpi.Value, g.Application, g.Environment)
		}
	}
	for _, g := range snap.Applications {
		for _, kpi := range g.KPIs {
			gauge(kpi.Name, kpi.Value, g.Application)
		}
	}
	intact := 0.0
	if snap.AuditChainOK {
		intact = 1
	}
	ch <- prometheus.MustNewConstMetric(kpiAuditChainDesc, prometheus.GaugeValue, intact)
	ch <- prometheus.MustNewConstMetric(kpiComputedDesc, prometheus.GaugeValue, float64(snap.ComputedAt.UnixMilli())/1000)
}

// refresh counts the KPIs of the last 30 days. A count that fails keeps
// the last snapshot; the next scrape after kpiRefreshEvery tries again.
func (k *kpiCollector) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), kpiRefreshEvery)
	defer cancel()
	to := time.Now().UTC()
	snap, err := k.store.KPISnapshot(ctx, to.Add(-DefaultKPIRange), to)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refreshing = false
	if err != nil {
		slog.Default().Warn("the KPI gauges could not be counted; the last counts stay", "err", err)
		return
	}
	k.snap = snap
}
