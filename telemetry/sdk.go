// Package telemetry exposes a worker's metrics to Prometheus: the
// Temporal SDK's own, through the SDK's metrics handler
// (client.Options.MetricsHandler), and Transit's, which the workflow and
// the activities emit through the same handler.
package telemetry

import (
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/transit-hq/transit/models"
)

// SDKMetrics is a client.MetricsHandler that keeps what the SDK (and code
// using its handler) emits, and a prometheus.Collector that shows it.
// Counters become counters, gauges gauges, and timers histograms in
// seconds (name_seconds). A metric whose tags vary is shown with the union
// of its tag names, a missing one as "".
type SDKMetrics struct {
	mu     sync.RWMutex
	series map[string]*series         // by name and tags
	labels map[string]map[string]bool // the tag names seen per metric
}

// NewSDKMetrics returns an empty handler.
func NewSDKMetrics() *SDKMetrics {
	return &SDKMetrics{series: map[string]*series{}, labels: map[string]map[string]bool{}}
}

type kind int

const (
	counter kind = iota
	gauge
	timer
)

// buckets are the histogram bounds of timers, in seconds.
var buckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

type series struct {
	name   string
	kind   kind
	tags   map[string]string
	value  atomic.Uint64 // float64 bits: a counter's total or a gauge's value
	mu     sync.Mutex    // timers
	counts []uint64
	sum    float64
	n      uint64
}

func (s *series) add(v float64) {
	for {
		old := s.value.Load()
		if s.value.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (s *series) Inc(d int64)      { s.add(float64(d)) }
func (s *series) Update(v float64) { s.value.Store(math.Float64bits(v)) }
func (s *series) Record(d time.Duration) {
	sec := d.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.SearchFloat64s(buckets, sec)
	if i < len(buckets) {
		s.counts[i]++
	}
	s.sum += sec
	s.n++
}

// helps describes Transit's own metrics.
var helps = map[string]string{
	models.MetricDeploymentsStarted:  "Deployment workflows started.",
	models.MetricDeploymentsFinished: "Deployments that ended, by status.",
	models.MetricTargetSteps:         "Target steps (driver calls) run, by driver, action (deploy, rollback, remove, validate) and result (ok, failed).",
}

var invalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)

func clean(name string) string {
	name = invalid.ReplaceAllString(name, "_")
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		name = "_" + name
	}
	return name
}

func (m *SDKMetrics) get(name string, k kind, tags map[string]string) *series {
	name = clean(name)
	if k == timer {
		name += "_seconds"
	}
	clean := make(map[string]string, len(tags))
	for key, v := range tags {
		clean[invalidLabel(key)] = v
	}
	var b strings.Builder
	b.WriteString(name)
	for _, key := range slices.Sorted(maps.Keys(clean)) {
		b.WriteString("\x00" + key + "=" + clean[key])
	}
	id := b.String()
	m.mu.RLock()
	s := m.series[id]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.series[id]; s == nil {
		s = &series{name: name, kind: k, tags: clean}
		if k == timer {
			s.counts = make([]uint64, len(buckets))
		}
		m.series[id] = s
		if m.labels[name] == nil {
			m.labels[name] = map[string]bool{}
		}
		for key := range clean {
			m.labels[name][key] = true
		}
	}
	return s
}

func invalidLabel(key string) string {
	key = clean(key)
	if strings.HasPrefix(key, "__") {
		key = "x" + key
	}
	return key
}

// handler is the SDKMetrics with a set of tags.
type handler struct {
	m    *SDKMetrics
	tags map[string]string
}

// Handler returns the client.MetricsHandler to give the Temporal client.
func (m *SDKMetrics) Handler() client.MetricsHandler { return handler{m: m} }

func (h handler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return handler{m: h.m, tags: merged}
}

func (h handler) Counter(name string) client.MetricsCounter { return h.m.get(name, counter, h.tags) }
func (h handler) Gauge(name string) client.MetricsGauge     { return h.m.get(name, gauge, h.tags) }
func (h handler) Timer(name string) client.MetricsTimer     { return h.m.get(name, timer, h.tags) }

// Describe sends nothing: the metrics are made as the SDK emits them.
func (m *SDKMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series.
func (m *SDKMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.RLock()
	all := slices.Collect(maps.Values(m.series))
	keys := map[string][]string{}
	for name, set := range m.labels {
		keys[name] = slices.Sorted(maps.Keys(set))
	}
	m.mu.RUnlock()
	// Series whose label values come out the same (a tag left out, and the
	// same tag set to "") are one series to Prometheus: they are merged
	// (counters and timers add up, a gauge keeps one value), and a name
	// used for two kinds keeps the first, so that a scrape never fails on
	// a duplicate.
	type merged struct {
		kind   kind
		name   string
		values []string
		value  float64
		counts []uint64
		sum    float64
		n      uint64
	}
	out := map[string]*merged{}
	kindOf := map[string]kind{}
	var order []string
	for _, s := range all {
		if k, ok := kindOf[s.name]; ok && k != s.kind {
			continue
		}
		kindOf[s.name] = s.kind
		names := keys[s.name]
		values := make([]string, len(names))
		for i, n := range names {
			values[i] = s.tags[n]
		}
		id := s.name + "\x00" + strings.Join(values, "\x00")
		mg := out[id]
		if mg == nil {
			mg = &merged{kind: s.kind, name: s.name, values: values, counts: make([]uint64, len(buckets))}
			out[id] = mg
			order = append(order, id)
		}
		switch s.kind {
		case counter:
			mg.value += math.Float64frombits(s.value.Load())
		case gauge:
			mg.value = math.Float64frombits(s.value.Load())
		case timer:
			s.mu.Lock()
			for i := range buckets {
				mg.counts[i] += s.counts[i]
			}
			mg.n += s.n
			mg.sum += s.sum
			s.mu.Unlock()
		}
	}
	descs := map[string]*prometheus.Desc{}
	for _, id := range order {
		mg := out[id]
		d := descs[mg.name]
		if d == nil {
			help := helps[mg.name]
			if help == "" {
				help = "Temporal SDK metric " + mg.name + " (see the SDK's metrics reference)."
			}
			d = prometheus.NewDesc(mg.name, help, keys[mg.name], nil)
			descs[mg.name] = d
		}
		switch mg.kind {
		case counter:
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, mg.value, mg.values...)
		case gauge:
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, mg.value, mg.values...)
		case timer:
			cum := map[float64]uint64{}
			var running uint64
			for i, b := range buckets {
				running += mg.counts[i]
				cum[b] = running
			}
			ch <- prometheus.MustNewConstHistogram(d, mg.n, mg.sum, cum, mg.values...)
		}
	}
}
