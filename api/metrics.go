package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// metrics are the API's Prometheus metrics, on a registry of its own (one
// per router, so that tests can build several).
type metrics struct {
	kpis     *prometheus.Registry // the KPI gauges, served apart
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(st *store.Store, extra ...prometheus.Collector) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "transit_http_requests_total", Help: "HTTP requests served, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "transit_http_request_duration_seconds", Help: "Time to serve an HTTP request, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.registry.MustRegister(m.requests, m.latency, &deploymentsCollector{store: st},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(extra...)
	// The KPIs have their own scrape path: they change slowly, and their
	// count (about a second at 100,000 deployments, in the background)
	// stays off the path of the operational /metrics.
	m.kpis = prometheus.NewRegistry()
	m.kpis.MustRegister(&kpiCollector{store: st})
	return m
}

// observe records one request. Unknown paths share one route label and
// unknown methods one method label, so that no client can blow up the
// series (as promhttp bounds them).
func (m *metrics) observe(c *gin.Context, elapsed time.Duration) {
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	method := knownMethod(c.Request.Method)
	m.requests.WithLabelValues(method, route, strconv.Itoa(c.Writer.Status())).Inc()
	m.latency.WithLabelValues(method, route).Observe(elapsed.Seconds())
}

func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func (m *metrics) handler() gin.HandlerFunc {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	return func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) }
}

// kpiHandler serves the KPI gauges (GET /metrics/kpis).
func (m *metrics) kpiHandler() gin.HandlerFunc {
	h := promhttp.HandlerFor(m.kpis, promhttp.HandlerOpts{})
	return func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) }
}

// deploymentsCollector reports how many deployments are in each status.
// Counting is a scan of the table (tens of ms at 100,000 rows), so a
// scrape answers from the last count, and starts a new one in the
// background when that is older than countsMaxAge; only the first scrape
// waits for a count.
type deploymentsCollector struct {
	store *store.Store

	mu       sync.Mutex
	counts   map[models.Status]int
	countErr error
	at       time.Time
	counting bool
}

// countsMaxAge is how old the deployment counts of a scrape may be.
const countsMaxAge = 15 * time.Second

var deploymentsDesc = prometheus.NewDesc("transit_deployments", "Deployments by status.", []string{"status"}, nil)

func (d *deploymentsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deploymentsDesc }

func (d *deploymentsCollector) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	first := d.at.IsZero() && d.countErr == nil
	if !first && !d.counting && time.Since(d.at) > countsMaxAge {
		d.counting = true
		go d.count()
	}
	d.mu.Unlock()
	if first {
		d.count()
	}
	d.mu.Lock()
	counts, err := d.counts, d.countErr
	d.mu.Unlock()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(deploymentsDesc, err)
		return
	}
	for _, st := range models.AllStatuses {
		ch <- prometheus.MustNewConstMetric(deploymentsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}

// count reads the counts from the database.
func (d *deploymentsCollector) count() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := d.store.CountDeploymentsByStatus(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counting = false
	if err != nil {
		// Keep the last good counts, if any; report the error until a
		// count succeeds.
		d.countErr = err
		return
	}
	d.counts, d.countErr, d.at = counts, nil, time.Now()
}
