package drivers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/transit-hq/transit/models"
)

// DefaultProbeTimeout bounds each HTTP request of a probe.
const DefaultProbeTimeout = 10 * time.Second

// DefaultProbeRequests is the number of GETs of an http probe.
const DefaultProbeRequests = 5

// ProbeResult is the outcome of one run of an observation probe.
type ProbeResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Value is what was measured: the success ratio of an http probe, the
	// query's result of a prometheus probe, 1 or 0 for a simulated probe.
	Value float64 `json:"value"`
	// Message says what was measured and why it passed or failed.
	Message string `json:"message"`
	// Error says the probe could not measure at all: the monitoring system
	// did not answer, answered an error or nothing, or the probe is
	// misconfigured. That is no evidence either way, never a breach.
	Error bool `json:"error,omitempty"`
}

func probeError(name, format string, args ...any) ProbeResult {
	return ProbeResult{Name: name, Error: true, Message: fmt.Sprintf(format, args...)}
}

// RunProbe runs an observation probe on a target with the default Prober.
func RunProbe(ctx context.Context, spec models.ProbeSpec, t Target, r Release) ProbeResult {
	return Prober{}.Run(ctx, spec, t, r)
}

// Prober runs observation probes; the zero value is usable.
type Prober struct {
	// Client sends the requests (drivers.Client when nil).
	Client *http.Client
	// Timeout bounds each request (DefaultProbeTimeout when zero).
	Timeout time.Duration
	// Now tells the time (time.Now when nil); simulated probes draw their
	// outcome per probe interval.
	Now func() time.Time
}

// Run runs spec once against target t running release r.
//
// Types: http (requests GETs of url, a template over TemplateData; Value is
// the share answered with expect_status, 200 by default; passes when
// Value >= Threshold: the service not answering is a measurement, not an
// error), prometheus (an instant query, a template too, at
// url/api/v1/query; every series of a vector, or the scalar, must satisfy
// Value <comparison> Threshold; Prometheus failing, or an empty result, is
// an Error) and simulated (fails with failure_rate, drawn from seed,
// target, probe and the current interval).
func (p Prober) Run(ctx context.Context, spec models.ProbeSpec, t Target, r Release) ProbeResult {
	data := templateDataFor("probe", Request{Target: t, Release: r})
	switch spec.Type {
	case models.ProbeHTTP:
		var cfg models.HTTPProbeConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return probeError(spec.Name, "invalid http probe: %v", err)
		}
		return p.httpProbe(ctx, spec, cfg, data)
	case models.ProbePrometheus:
		var cfg models.PrometheusProbeConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return probeError(spec.Name, "invalid prometheus probe: %v", err)
		}
		return p.prometheusProbe(ctx, spec, cfg, data)
	case models.ProbeSimulated:
		var cfg models.SimulatedProbeConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return probeError(spec.Name, "invalid simulated probe: %v", err)
		}
		return p.simulatedProbe(spec, cfg, t, r)
	}
	return probeError(spec.Name, "unknown probe type %q: use http, prometheus or simulated", spec.Type)
}

func (p Prober) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultProbeTimeout
}

func (p Prober) httpProbe(ctx context.Context, spec models.ProbeSpec, cfg models.HTTPProbeConfig, data TemplateData) ProbeResult {
	res := ProbeResult{Name: spec.Name}
	target, err := render("url", cfg.URL, data)
	if err != nil {
		return probeError(spec.Name, "invalid http probe: %v", err)
	}
	n := cfg.Requests
	if n <= 0 {
		n = DefaultProbeRequests
	}
	want := cfg.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	ok := 0
	var lastFailure string
	for i := 0; i < n; i++ {
		status, body, err := httpGet(ctx, p.Client, target, p.timeout())
		switch {
		case ctx.Err() != nil:
			return probeError(spec.Name, "cancelled after %d of %d requests: %v", i, n, context.Cause(ctx))
		case err != nil:
			lastFailure = err.Error()
		case status != want:
			lastFailure = fmt.Sprintf("answered %d, want %d: %s", status, want, snippet(body))
		default:
			ok++
		}
	}
	res.Value = float64(ok) / float64(n)
	res.Passed = res.Value >= spec.Threshold
	res.Message = fmt.Sprintf("%d of %d GETs of %s answered %d: ratio %.2f, threshold %.2f",
		ok, n, target, want, res.Value, spec.Threshold)
	if lastFailure != "" {
		res.Message += "; last failure: " + lastFailure
	}
	return res
}

// promResponse is the envelope of the Prometheus HTTP API.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

func (p Prober) prometheusProbe(ctx context.Context, spec models.ProbeSpec, cfg models.PrometheusProbeConfig, data TemplateData) ProbeResult {
	query, err := render("query", cfg.Query, data)
	if err != nil {
		return probeError(spec.Name, "invalid prometheus probe: %v", err)
	}
	if !validComparison(cfg.Comparison) {
		return probeError(spec.Name, "invalid prometheus probe: comparison %q must be one of <, <=, >, >=", cfg.Comparison)
	}
	endpoint := strings.TrimRight(cfg.URL, "/") + "/api/v1/query?query=" + url.QueryEscape(query)
	status, body, err := httpGet(ctx, p.Client, endpoint, p.timeout())
	if err != nil {
		return probeError(spec.Name, "query %s: prometheus did not answer: %v", shortQuery(query), err)
	}
	var pr promResponse
	if err := json.Unmarshal(body, &pr); err != nil {
		return probeError(spec.Name, "query %s: prometheus answered %d with a body that is not its API's JSON: %s", shortQuery(query), status, snippet(body))
	}
	if pr.Status != "success" {
		return probeError(spec.Name, "query %s: prometheus answered %d, %s: %s", shortQuery(query), status, orDefault(pr.ErrorType, pr.Status), pr.Error)
	}
	samples, err := promSamples(pr)
	if err != nil {
		return probeError(spec.Name, "query %s: %v", shortQuery(query), err)
	}
	res := ProbeResult{Name: spec.Name, Passed: true}
	var failing []string
	for i, smp := range samples {
		ok := compare(smp.value, cfg.Comparison, spec.Threshold)
		if i == 0 || (!ok && res.Passed) {
			// JSON, and so Temporal, cannot carry ±Inf: Value is clamped.
			res.Value = math.Max(-math.MaxFloat64, math.Min(math.MaxFloat64, smp.value))
		}
		if !ok {
			res.Passed = false
			failing = append(failing, smp.series+" = "+formatFloat(smp.value))
		}
	}
	want := cfg.Comparison + " " + formatFloat(spec.Threshold)
	switch {
	case len(samples) == 1:
		verdict := "passed"
		if !res.Passed {
			verdict = "failed"
		}
		res.Message = fmt.Sprintf("query %s = %s, want %s: %s", shortQuery(query), formatFloat(samples[0].value), want, verdict)
	case res.Passed:
		res.Message = fmt.Sprintf("query %s: all %d series %s: passed", shortQuery(query), len(samples), want)
	default:
		shown := failing[:min(len(failing), 5)]
		more := ""
		if len(failing) > len(shown) {
			more = fmt.Sprintf(" and %d more", len(failing)-len(shown))
		}
		res.Message = fmt.Sprintf("query %s: %d of %d series not %s: %s%s", shortQuery(query), len(failing), len(samples), want,
			strings.Join(shown, ", "), more)
	}
	return res
}

// shortQuery quotes a query for a message, cut to a readable length.
func shortQuery(q string) string {
	return strconv.Quote(models.Cut(q, 160))
}

type promSample struct {
	series string
	value  float64
}

// promSamples reads every sample of an instant query: each series of a
// vector, or the scalar. An empty vector is an error: nothing matched, so
// there is nothing to compare.
func promSamples(pr promResponse) ([]promSample, error) {
	switch pr.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(pr.Data.Result, &vec); err != nil {
			return nil, fmt.Errorf("read vector result: %w", err)
		}
		if len(vec) == 0 {
			return nil, fmt.Errorf("the result is empty: no series matched, so there is nothing to compare")
		}
		out := make([]promSample, 0, len(vec))
		for _, s := range vec {
			v, err := sampleValue(s.Value)
			if err != nil {
				return nil, fmt.Errorf("series %s: %w", seriesName(s.Metric), err)
			}
			out = append(out, promSample{series: seriesName(s.Metric), value: v})
		}
		return out, nil
	case "scalar":
		var sample []any
		if err := json.Unmarshal(pr.Data.Result, &sample); err != nil {
			return nil, fmt.Errorf("read scalar result: %w", err)
		}
		v, err := sampleValue(sample)
		if err != nil {
			return nil, err
		}
		return []promSample{{series: "scalar", value: v}}, nil
	}
	return nil, fmt.Errorf("result type %q is not supported: the query must give a vector or a scalar", pr.Data.ResultType)
}

func sampleValue(sample []any) (float64, error) {
	if len(sample) != 2 {
		return 0, fmt.Errorf("a sample must be [time, \"value\"], got %d elements", len(sample))
	}
	s, ok := sample[1].(string)
	if !ok {
		return 0, fmt.Errorf("a sample value must be a string, got %v", sample[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q is not a number", s)
	}
	if math.IsNaN(v) {
		return v, fmt.Errorf("the value is NaN, which compares with nothing")
	}
	return v, nil
}

// seriesName writes a series' labels as PromQL does: {job="api",shard="b"}.
func seriesName(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range models.SortedKeys(labels) {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func validComparison(c string) bool {
	switch c {
	case "<", "<=", ">", ">=":
		return true
	}
	return false
}

func compare(v float64, op string, threshold float64) bool {
	switch op {
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	case ">":
		return v > threshold
	case ">=":
		return v >= threshold
	}
	return false
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func (p Prober) simulatedProbe(spec models.ProbeSpec, cfg models.SimulatedProbeConfig, t Target, r Release) ProbeResult {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	interval := spec.Interval.D()
	if interval <= 0 {
		interval = models.DefaultProbeInterval
	}
	slot := now().UnixNano() / int64(interval)
	rng := seededRand(cfg.Seed, "probe", spec.Name, simulatedKey(t), r.Version, strconv.FormatInt(slot, 10))
	res := ProbeResult{Name: spec.Name}
	if rng.Float64() < cfg.FailureRate {
		res.Message = fmt.Sprintf("simulated failure: failure rate %.2f, seed %d", cfg.FailureRate, cfg.Seed)
		return res
	}
	res.Passed, res.Value = true, 1
	res.Message = "simulated probe passed"
	return res
}
