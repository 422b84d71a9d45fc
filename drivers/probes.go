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
}

// RunProbe runs an observation probe on a target with the default Prober.
func RunProbe(ctx context.Context, spec models.ProbeSpec, t Target, r Release) ProbeResult {
	return Prober{}.Run(ctx, spec, t, r)
}

// Prober runs observation probes; the zero value is usable.
type Prober struct {
	// Client sends the requests (http.DefaultClient when nil).
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
// Value >= Threshold), prometheus (an instant query, a template too, at
// url/api/v1/query; Value is the first sample of a vector or the scalar;
// passes when Value <comparison> Threshold) and simulated (fails with
// failure_rate, drawn from seed, target, probe and the current interval).
func (p Prober) Run(ctx context.Context, spec models.ProbeSpec, t Target, r Release) ProbeResult {
	data := templateDataFor("probe", Request{Target: t, Release: r})
	res := ProbeResult{Name: spec.Name}
	switch spec.Type {
	case models.ProbeHTTP:
		var cfg models.HTTPProbeConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			res.Message = fmt.Sprintf("invalid http probe: %v", err)
			return res
		}
		return p.httpProbe(ctx, spec, cfg, data)
	case models.ProbePrometheus:
		var cfg models.PrometheusProbeConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			res.Message = fmt.Sprintf("invalid prometheus probe: %v", err)
			return res
		}
		return p.prometheusProbe(ctx, spec, cfg, data)
	case models.ProbeSimulated:
		var cfg models.SimulatedProbeConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			res.Message = fmt.Sprintf("invalid simulated probe: %v", err)
			return res
		}
		return p.simulatedProbe(spec, cfg, t, r)
	}
	res.Message = fmt.Sprintf("unknown probe type %q: use http, prometheus or simulated", spec.Type)
	return res
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
		res.Message = fmt.Sprintf("invalid http probe: %v", err)
		return res
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
			res.Value = float64(ok) / float64(n)
			res.Message = fmt.Sprintf("cancelled after %d of %d requests: %v", i, n, context.Cause(ctx))
			return res
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
	res := ProbeResult{Name: spec.Name}
	query, err := render("query", cfg.Query, data)
	if err != nil {
		res.Message = fmt.Sprintf("invalid prometheus probe: %v", err)
		return res
	}
	if !validComparison(cfg.Comparison) {
		res.Message = fmt.Sprintf("invalid prometheus probe: comparison %q must be one of <, <=, >, >=", cfg.Comparison)
		return res
	}
	endpoint := strings.TrimRight(cfg.URL, "/") + "/api/v1/query?query=" + url.QueryEscape(query)
	status, body, err := httpGet(ctx, p.Client, endpoint, p.timeout())
	if err != nil {
		res.Message = fmt.Sprintf("query %q: %v", query, err)
		return res
	}
	var pr promResponse
	if err := json.Unmarshal(body, &pr); err != nil {
		res.Message = fmt.Sprintf("query %q: prometheus answered %d with a body that is not its API's JSON: %s", query, status, snippet(body))
		return res
	}
	if pr.Status != "success" {
		res.Message = fmt.Sprintf("query %q: prometheus answered %d, %s: %s", query, status, orDefault(pr.ErrorType, pr.Status), pr.Error)
		return res
	}
	value, err := promValue(pr)
	if err != nil {
		res.Message = fmt.Sprintf("query %q: %v", query, err)
		return res
	}
	// JSON, and so Temporal, cannot carry ±Inf: Value is clamped, the
	// comparison and the message use the real value.
	res.Value = math.Max(-math.MaxFloat64, math.Min(math.MaxFloat64, value))
	res.Passed = compare(value, cfg.Comparison, spec.Threshold)
	verdict := "passed"
	if !res.Passed {
		verdict = "failed"
	}
	res.Message = fmt.Sprintf("query %q = %s, want %s %s: %s",
		query, formatFloat(value), cfg.Comparison, formatFloat(spec.Threshold), verdict)
	return res
}

// promValue reads the value of an instant query: the first sample of a
// vector, or a scalar.
func promValue(pr promResponse) (float64, error) {
	var sample []any
	switch pr.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal(pr.Data.Result, &vec); err != nil {
			return 0, fmt.Errorf("read vector result: %w", err)
		}
		if len(vec) == 0 {
			return 0, fmt.Errorf("the result is empty: no series matched, so there is nothing to compare")
		}
		sample = vec[0].Value
	case "scalar":
		if err := json.Unmarshal(pr.Data.Result, &sample); err != nil {
			return 0, fmt.Errorf("read scalar result: %w", err)
		}
	default:
		return 0, fmt.Errorf("result type %q is not supported: the query must give a vector or a scalar", pr.Data.ResultType)
	}
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
