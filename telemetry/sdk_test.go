package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/telemetry"
)

// What the SDK emits through the handler is served as Prometheus text: a
// counter whose tags vary shows the union of tag names, a gauge its last
// value, a timer a histogram in seconds; /healthz says whether Temporal
// answers.
func TestSDKMetricsAreServed(t *testing.T) {
	w := telemetry.NewWorker()
	h := w.SDK.Handler().WithTags(map[string]string{"namespace": "default"})
	h.Counter("temporal_request").Inc(2)
	h.WithTags(map[string]string{"operation": "StartWorkflow"}).Counter("temporal_request").Inc(1)
	h.Gauge("temporal_sticky_cache_size").Update(7)
	h.Gauge("temporal_sticky_cache_size").Update(5)
	tm := h.Timer("temporal_workflow_endtoend_latency")
	tm.Record(30 * time.Millisecond)
	tm.Record(2 * time.Second)
	h.Counter("bad-name.with dots").Inc(1)
	// The same series twice: a tag left out, and the same tag set to "".
	h.Counter("temporal_request").Inc(4)
	h.WithTags(map[string]string{"operation": ""}).Counter("temporal_request").Inc(1)

	var down atomic.Pointer[error]
	srv := httptest.NewServer(w.Handler(func(context.Context) error {
		if e := down.Load(); e != nil {
			return *e
		}
		return nil
	}))
	defer srv.Close()
	status, body := get(t, srv.URL+"/metrics")
	require.Equal(t, 200, status)
	for _, want := range []string{
		`temporal_request{namespace="default",operation=""} 7`, // 2 + 4 + 1, merged
		`temporal_request{namespace="default",operation="StartWorkflow"} 1`,
		`temporal_sticky_cache_size{namespace="default"} 5`,
		`temporal_workflow_endtoend_latency_seconds_bucket{namespace="default",le="0.05"} 1`,
		`temporal_workflow_endtoend_latency_seconds_bucket{namespace="default",le="2.5"} 2`,
		`temporal_workflow_endtoend_latency_seconds_count{namespace="default"} 2`,
		`bad_name_with_dots{namespace="default"} 1`,
		"go_goroutines",
	} {
		require.Contains(t, body, want)
	}

	status, body = get(t, srv.URL+"/healthz")
	require.Equal(t, 200, status, body)
	refused := errors.New("connection refused")
	down.Store(&refused)
	status, body = get(t, srv.URL+"/healthz")
	require.Equal(t, 503, status)
	require.Contains(t, body, "unreachable: connection refused")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
