package drivers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

func probeSpec(t *testing.T, kind string, cfg any, threshold float64) models.ProbeSpec {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	return models.ProbeSpec{Name: kind + "-probe", Type: kind, Config: raw, Interval: models.Duration(time.Minute), Threshold: threshold}
}

func TestHTTPProbeRatio(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/shop/web-1/ping" {
			http.Error(w, "unexpected path", http.StatusNotFound)
			return
		}
		// Requests 2 and 4 of every 5 fail.
		if i := n.Add(1); i%5 == 2 || i%5 == 4 {
			http.Error(w, "overloaded", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "pong")
	}))
	t.Cleanup(srv.Close)
	cfg := models.HTTPProbeConfig{URL: srv.URL + "/{{.Application}}/{{.Target.Name}}/ping"}
	tgt, rel := testTarget(t, models.DriverSimulated, nil), testRelease("1.0.0")

	res := RunProbe(context.Background(), probeSpec(t, models.ProbeHTTP, cfg, 0.5), tgt, rel)
	require.True(t, res.Passed, res.Message)
	require.InDelta(t, 0.6, res.Value, 1e-9)
	require.Equal(t, int32(5), n.Load(), "5 requests by default")
	require.Contains(t, res.Message, "3 of 5 GETs")
	require.Contains(t, res.Message, "overloaded")

	res = RunProbe(context.Background(), probeSpec(t, models.ProbeHTTP, cfg, 0.8), tgt, rel)
	require.False(t, res.Passed)
	require.InDelta(t, 0.6, res.Value, 1e-9)

	cfg.Requests = 10
	cfg.ExpectStatus = http.StatusInternalServerError
	res = RunProbe(context.Background(), probeSpec(t, models.ProbeHTTP, cfg, 0.4), tgt, rel)
	require.True(t, res.Passed, res.Message)
	require.InDelta(t, 0.4, res.Value, 1e-9, "4 of 10 answered the expected 500")
	require.Equal(t, int32(20), n.Load())
}

func TestHTTPProbeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := RunProbe(context.Background(), probeSpec(t, models.ProbeHTTP, models.HTTPProbeConfig{URL: url, Requests: 2}, 0.5),
		testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Zero(t, res.Value)
	require.Contains(t, res.Message, "refused")
}

// prometheus is a fake Prometheus answering /api/v1/query with body and
// status; it records the last query.
func prometheus(t *testing.T, status int, body string) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var query atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		query.Store(r.URL.Query().Get("query"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &query
}

func TestPrometheusProbe(t *testing.T) {
	const vector = `{"status":"success","data":{"resultType":"vector","result":[
		{"metric":{"job":"shop"},"value":[1712345678.123,"0.002"]},
		{"metric":{"job":"other"},"value":[1712345678.123,"0.9"]}]}}`
	const scalar = `{"status":"success","data":{"resultType":"scalar","result":[1712345678.123,"42"]}}`
	const empty = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	const matrix = `{"status":"success","data":{"resultType":"matrix","result":[]}}`
	const bad = `{"status":"error","errorType":"bad_data","error":"1:8: parse error: unexpected end of input"}`
	const inf = `{"status":"success","data":{"resultType":"scalar","result":[1712345678.123,"+Inf"]}}`
	const nan = `{"status":"success","data":{"resultType":"scalar","result":[1712345678.123,"NaN"]}}`

	tests := []struct {
		name       string
		status     int
		body       string
		comparison string
		threshold  float64
		pass       bool
		value      float64
		message    string
		// errored: Prometheus could not measure; no evidence, no breach.
		errored bool
	}{
		// Every series is compared: shard "other" breaches while "shop" is fine.
		{"one series of two breaches", 200, vector, "<", 0.01, false, 0.9, `1 of 2 series not < 0.01: {job="other"} = 0.9`, false},
		{"every series passes", 200, vector, "<", 1, true, 0.002, `all 2 series < 1: passed`, false},
		{"the other series breaches", 200, vector, ">=", 0.01, false, 0.002, `1 of 2 series not >= 0.01: {job="shop"} = 0.002`, false},
		{"scalar", 200, scalar, ">", 40, true, 42, "= 42, want > 40", false},
		{"scalar equal is <=", 200, scalar, "<=", 42, true, 42, "passed", false},
		{"scalar equal is not <", 200, scalar, "<", 42, false, 42, "failed", false},
		{"empty", 200, empty, "<", 1, false, 0, "the result is empty", true},
		{"matrix", 200, matrix, "<", 1, false, 0, `result type "matrix" is not supported`, true},
		{"error", 400, bad, "<", 1, false, 0, "prometheus answered 400, bad_data: 1:8: parse error", true},
		{"not json", 502, "<html>bad gateway</html>", "<", 1, false, 0, "answered 502 with a body that is not its API's JSON", true},
		{"infinity", 200, inf, "<", 1, false, math.MaxFloat64, "= +Inf, want < 1: failed", false},
		{"nan", 200, nan, "<", 1, false, 0, "NaN", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, query := prometheus(t, tc.status, tc.body)
			cfg := models.PrometheusProbeConfig{
				URL:        srv.URL + "/",
				Query:      `sum(rate(http_errors_total{app="{{.Application}}",version="{{.Release.Version}}"}[5m]))`,
				Comparison: tc.comparison,
			}
			res := RunProbe(context.Background(), probeSpec(t, models.ProbePrometheus, cfg, tc.threshold), testTarget(t, models.DriverSimulated, nil), testRelease("1.4.0"))
			require.Equal(t, tc.pass, res.Passed, res.Message)
			require.Equal(t, tc.errored, res.Error, res.Message)
			require.Equal(t, tc.value, res.Value)
			require.Contains(t, res.Message, tc.message)
			require.Equal(t, `sum(rate(http_errors_total{app="shop",version="1.4.0"}[5m]))`, query.Load(), "the query is rendered and escaped")
			_, err := json.Marshal(res)
			require.NoError(t, err, "the result can travel as JSON")
		})
	}
}

func TestPrometheusProbeInvalidComparison(t *testing.T) {
	srv, query := prometheus(t, 200, `{}`)
	res := RunProbe(context.Background(),
		probeSpec(t, models.ProbePrometheus, models.PrometheusProbeConfig{URL: srv.URL, Query: "up", Comparison: "=="}, 1),
		testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Contains(t, res.Message, `comparison "==" must be one of`)
	require.Nil(t, query.Load(), "nothing is asked")
}

func TestSimulatedProbe(t *testing.T) {
	tgt, rel := testTarget(t, models.DriverSimulated, nil), testRelease("1.0.0")
	res := RunProbe(context.Background(), probeSpec(t, models.ProbeSimulated, models.SimulatedProbeConfig{}, 0), tgt, rel)
	require.True(t, res.Passed)
	require.Equal(t, 1.0, res.Value)

	res = RunProbe(context.Background(), probeSpec(t, models.ProbeSimulated, models.SimulatedProbeConfig{FailureRate: 1}, 0), tgt, rel)
	require.False(t, res.Passed)
	require.Zero(t, res.Value)
	require.Contains(t, res.Message, "simulated failure")
}

func TestSimulatedProbeIsSeededPerInterval(t *testing.T) {
	spec := probeSpec(t, models.ProbeSimulated, models.SimulatedProbeConfig{FailureRate: 0.5, Seed: 5}, 0)
	tgt, rel := testTarget(t, models.DriverSimulated, nil), testRelease("1.0.0")
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	runs := func() []bool {
		var out []bool
		for i := range 40 {
			now := base.Add(time.Duration(i) * time.Minute)
			p := Prober{Now: func() time.Time { return now }}
			out = append(out, p.Run(context.Background(), spec, tgt, rel).Passed)
		}
		return out
	}
	first := runs()
	require.Equal(t, first, runs(), "the same seed and intervals give the same outcomes")
	require.InDelta(t, 20, count(first), 10, "about half pass: %v", first)

	// Two runs within one interval agree.
	p1 := Prober{Now: func() time.Time { return base.Add(5 * time.Second) }}
	p2 := Prober{Now: func() time.Time { return base.Add(55 * time.Second) }}
	require.Equal(t, p1.Run(context.Background(), spec, tgt, rel).Passed, p2.Run(context.Background(), spec, tgt, rel).Passed)
}

func TestProbeInvalid(t *testing.T) {
	res := RunProbe(context.Background(), models.ProbeSpec{Name: "p", Type: "ping"}, Target{}, Release{})
	require.False(t, res.Passed)
	require.Contains(t, res.Message, `unknown probe type "ping"`)

	res = RunProbe(context.Background(), models.ProbeSpec{Name: "p", Type: models.ProbeHTTP, Config: json.RawMessage(`{"url":"http://x","count":3}`)}, Target{}, Release{})
	require.False(t, res.Passed)
	require.Contains(t, res.Message, "count")
}
