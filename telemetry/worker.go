package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Worker holds a worker process's metrics: the SDK's and Transit's (both
// in SDK), and Go's and the process's.
type Worker struct {
	SDK      *SDKMetrics
	Registry *prometheus.Registry
}

// NewWorker returns a worker's metrics, ready for Handler.
func NewWorker() *Worker {
	w := &Worker{SDK: NewSDKMetrics(), Registry: prometheus.NewRegistry()}
	w.Registry.MustRegister(w.SDK, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return w
}

// Handler serves /metrics (Prometheus) and /healthz: 200 while health
// returns nil (Temporal answers), else 503 with the reason.
func (w *Worker) Handler(health func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		rw.Header().Set("Content-Type", "application/json")
		if err := health(ctx); err != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(rw).Encode(map[string]string{"status": "unhealthy", "temporal": "unreachable: " + err.Error()})
			return
		}
		_ = json.NewEncoder(rw).Encode(map[string]string{"status": "ok", "temporal": "ok"})
	})
	return mux
}
