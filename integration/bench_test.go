package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
	transitworker "github.com/transit-hq/transit/worker"
)

// The goals of "Fleet scale and speed", each measured against bare
// Temporal (or the bare query) on the same dev server and Postgres, in one
// run: `make bench` (BENCH_QUICK=1 for smaller counts). Each prints
//
//	FIGURE <name> transit=<value> baseline=<value> ratio=<value> goal=<goal> <ok|miss>

// benchCounts are how much each figure runs.
type benchCounts struct {
	throughput, posts, waiting, fleet, rows int
}

func counts() benchCounts {
	if os.Getenv("BENCH_QUICK") == "1" {
		return benchCounts{throughput: 60, posts: 100, waiting: 100, fleet: 1000, rows: 20000}
	}
	return benchCounts{throughput: 100, posts: 200, waiting: 500, fleet: 10000, rows: 100000}
}

// want says whether a figure is measured: all of them, or those that
// BENCH_ONLY names (comma-separated), for a closer look at one.
func want(figure string) bool {
	only := os.Getenv("BENCH_ONLY")
	return only == "" || slices.Contains(strings.Split(only, ","), figure)
}

// benchConcurrency is how many requests or workflows go at once.
const benchConcurrency = 20

// bareActivities is the throughput baseline: a workflow that runs n no-op
// activities, as many as a deployment schedules, and then waits on as many
// timers of d as the deployment's policy had fire (its point of no return:
// a timer of 1 ms takes Temporal 1 s, the shortest it fires).
func bareActivities(ctx workflow.Context, n, timers int, d time.Duration) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	for i := 0; i < n; i++ {
		if err := workflow.ExecuteActivity(ctx, "noop").Get(ctx, nil); err != nil {
			return err
		}
	}
	for i := 0; i < timers; i++ {
		if err := workflow.Sleep(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// bareWaiting is the baseline of a deployment awaiting approval: a workflow
// blocked on a signal, with an Update that answers at once.
func bareWaiting(ctx workflow.Context) error {
	if err := workflow.SetUpdateHandler(ctx, "approve", func(ctx workflow.Context, who string) (string, error) {
		return who, nil
	}); err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, "done").Receive(ctx, nil)
	return nil
}

func noop(context.Context) error { return nil }

type figureLine struct {
	name                     string
	transit, baseline, ratio float64
	unit, goal               string
	ok                       bool
	note                     string
}

func (f figureLine) print() {
	verdict := "miss"
	if f.ok {
		verdict = "ok"
	}
	line := fmt.Sprintf("FIGURE %s transit=%.4g%s baseline=%.4g%s ratio=%.2f goal=%s %s", f.name, f.transit, f.unit, f.baseline, f.unit,
		f.ratio, f.goal, verdict)
	if f.note != "" {
		line += " (" + f.note + ")"
	}
	fmt.Println(line)
}

// p99 of durations, in milliseconds.
func p99(ds []time.Duration) float64 { return percentile(ds, 0.99) }

func percentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * q)
	return float64(s[i].Microseconds()) / 1000
}

// timed runs fn n times, benchConcurrency at once, and returns each run's
// duration and the whole span.
func timed(n int, fn func(i int)) ([]time.Duration, time.Duration) {
	out := make([]time.Duration, n)
	sem := make(chan struct{}, benchConcurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			fn(i)
			out[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	return out, time.Since(start)
}

// sideBySide runs n of Transit's requests and n of the baseline's,
// interleaved, benchConcurrency at once in all, so that both meet the same
// load, and returns each kind's durations.
func sideBySide(n int, transit, baseline func(i int)) (transitTook, baselineTook []time.Duration) {
	all, _ := timed(2*n, func(i int) {
		if i%2 == 0 {
			transit(i / 2)
		} else {
			baseline(i / 2)
		}
	})
	for i, d := range all {
		if i%2 == 0 {
			transitTook = append(transitTook, d)
		} else {
			baselineTook = append(baselineTook, d)
		}
	}
	return transitTook, baselineTook
}

// BenchmarkGoals measures every goal; run it with `make bench`.
func BenchmarkGoals(b *testing.B) {
	if os.Getenv("BENCH_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for the profile
	}
	n := counts()
	// The API and the worker with a database pool each, as `transit server`
	// and `transit worker` run in production.
	s := newStack(b, stackOptions{ownPools: true})
	ctx := context.Background()
	// The bare worker polls as Transit's does, so that the figures compare
	// the work, not the worker's settings.
	bw := sdkworker.New(s.temporal, s.taskQueue+"-bare", transitworker.WithPollers(sdkworker.Options{}))
	bw.RegisterWorkflow(bareActivities)
	bw.RegisterWorkflow(bareWaiting)
	bw.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: "noop"})
	require.NoError(b, bw.Start())
	defer bw.Stop()
	bare := func(id string) client.StartWorkflowOptions {
		return client.StartWorkflowOptions{ID: id, TaskQueue: s.taskQueue + "-bare"}
	}

	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "bench", "owner_team": "perf"}).str("id")
	rel := s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": app, "version": "1.0.0",
		"artifacts": []map[string]string{{"name": "bench", "version": "1"}}}).str("id")
	// envs makes k environments of one policy, each with targets targets
	// (one deployment per environment, so that no lane serialises them).
	envSeq := 0
	envs := func(k, targets int, policy models.Policy) []string {
		out := make([]string, k)
		timed(k, func(i int) {
			out[i] = s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app,
				"name": fmt.Sprintf("env-%d-%d", envSeq, i), "policy": policy}).str("id")
			for t := 0; t < targets; t++ {
				s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": out[i], "name": fmt.Sprintf("t%d", t),
					"driver": "simulated", "config": map[string]any{}})
			}
		})
		envSeq++
		return out
	}
	deploy := func(env string) (string, time.Duration) {
		t0 := time.Now()
		r := s.call("POST", "/api/v1/deployments", s.admin, map[string]any{"release": rel, "environment": env})
		took := time.Since(t0)
		if r.Status != 201 {
			b.Errorf("deploy: %d %s", r.Status, r.Raw)
			return "", took
		}
		return r.str("deployment", "id"), took
	}
	quick := models.Policy{PointOfNoReturn: models.Duration(time.Millisecond), EarlyLifeSupport: models.Duration(time.Millisecond),
		ValidationChecks: []models.CheckSpec{{Name: "smoke", Type: models.CheckSimulated, Tries: 1, Config: json.RawMessage(`{}`)}}}
	approval := quick
	approval.ApprovalsRequired, approval.ApproverGroups, approval.SelfApprovalAllowed = 1, []string{models.GroupAdmin}, true

	// ---- throughput: whole deployments (3 targets), 20 at a time.
	if path := os.Getenv("BENCH_CPU_PROFILE"); path != "" {
		// Where this process (API and worker) spends the throughput phase.
		f, err := os.Create(path)
		require.NoError(b, err)
		require.NoError(b, pprof.StartCPUProfile(f))
		defer f.Close()
	}
	if want("throughput") {
		targetEnvs := envs(n.throughput, 3, quick)
		ids := make([]string, len(targetEnvs))
		cpu0 := cpuNow()
		_, span := timed(len(targetEnvs), func(i int) {
			ids[i], _ = deploy(targetEnvs[i])
			var res models.DeploymentResult
			if err := s.temporal.GetWorkflow(ctx, models.WorkflowIDFor(ids[i]), "").Get(ctx, &res); err != nil || res.Status != models.StatusCompleted {
				b.Errorf("deployment %s: %v %+v", ids[i], err, res)
			}
		})
		transit := float64(len(ids)) / span.Seconds()
		pprof.StopCPUProfile() // (when started: BENCH_CPU_PROFILE)
		cpu1 := cpuNow()
		acts := s.countEvents(models.WorkflowIDFor(ids[0]), enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
		timers := s.countEvents(models.WorkflowIDFor(ids[0]), enumspb.EVENT_TYPE_TIMER_FIRED)
		_, bareSpan := timed(len(ids), func(i int) {
			run, err := s.temporal.ExecuteWorkflow(ctx, bare(fmt.Sprintf("bare-acts-%d", i)), bareActivities, acts, timers,
				quick.PointOfNoReturn.D())
			if err == nil {
				err = run.Get(ctx, nil)
			}
			if err != nil {
				b.Error(err)
			}
		})
		baseline := float64(len(ids)) / bareSpan.Seconds()
		cpu2 := cpuNow()
		// And without the timer, for what it costs: Temporal fires no timer
		// sooner than 1 s.
		_, untimedSpan := timed(len(ids), func(i int) {
			run, err := s.temporal.ExecuteWorkflow(ctx, bare(fmt.Sprintf("bare-untimed-%d", i)), bareActivities, acts, 0, time.Duration(0))
			if err == nil {
				err = run.Get(ctx, nil)
			}
			if err != nil {
				b.Error(err)
			}
		})
		untimed := float64(len(ids)) / untimedSpan.Seconds()
		figureLine{name: "throughput", transit: transit, baseline: baseline, ratio: transit / baseline, unit: "/s", goal: ">=0.9",
			ok: transit/baseline >= 0.9, note: fmt.Sprintf("%d deployments of 3 targets vs bare workflows of %d activities and %s of %s, %d at a time; "+
				"CPU ms per deployment: %s; per bare workflow: %s; bare workflows without the timer: %.3g/s (ratio %.2f)",
				len(ids), acts, models.Plural(timers, "timer"), quick.PointOfNoReturn.D(), benchConcurrency,
				cpu1.minus(cpu0).per(len(ids)), cpu2.minus(cpu1).per(len(ids)), untimed, transit/untimed)}.print()
	}

	// ---- POST /deployments and the approval round trip.
	if want("post_p99") || want("approval_p99") {
		waitEnvs := envs(n.posts, 1, approval)
		ids := make([]string, len(waitEnvs))
		posts, starts := sideBySide(len(waitEnvs), func(i int) { ids[i], _ = deploy(waitEnvs[i]) }, func(i int) {
			if _, err := s.temporal.ExecuteWorkflow(ctx, bare(fmt.Sprintf("bare-wait-%d", i)), bareWaiting); err != nil {
				b.Error(err)
			}
		})
		figureLine{name: "post_p99", transit: p99(posts), baseline: p99(starts), ratio: p99(posts) / p99(starts), unit: "ms", goal: "<=1.5",
			ok: p99(posts)/p99(starts) <= 1.5, note: fmt.Sprintf("%d POST /deployments vs as many ExecuteWorkflow, interleaved, %d at a time in all; p50 %.1f vs %.1f ms",
				len(ids), benchConcurrency, percentile(posts, 0.5), percentile(starts, 0.5))}.print()

		for _, id := range ids {
			s.waitStatus(id, 2*time.Minute, models.StatusAwaitingApproval)
		}
		// The bare Updates first, on a quiet server; then the votes, whose
		// deployments go on to roll out, as they would. (Not side by side:
		// the bare worker, idle while Transit's is busy, would poll with
		// fewer pollers, and its Updates wait for them.)
		updates, _ := timed(len(ids), func(i int) {
			h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: fmt.Sprintf("bare-wait-%d", i),
				UpdateName: "approve", Args: []any{"admin"}, WaitForStage: client.WorkflowUpdateStageCompleted})
			if err == nil {
				err = h.Get(ctx, nil)
			}
			if err != nil {
				b.Error(err)
			}
		})
		pool0 := s.poolStats()
		votes, _ := timed(len(ids), func(i int) {
			r := s.call("POST", "/api/v1/deployments/"+ids[i]+"/approvals", s.admin, map[string]any{"decision": "approve"})
			if r.Status != 200 {
				b.Errorf("approve %s: %d %s", ids[i], r.Status, r.Raw)
			}
		})
		figureLine{name: "approval_p99", transit: p99(votes), baseline: p99(updates), ratio: p99(votes) / p99(updates), unit: "ms", goal: "<=1.5",
			ok: p99(votes)/p99(updates) <= 1.5, note: fmt.Sprintf("%d POST approvals vs UpdateWorkflow (completed); p50 %.1f vs %.1f ms; %s",
				len(ids), percentile(votes, 0.5), percentile(updates, 0.5), s.poolStats().since(pool0))}.print()
		for i := range ids {
			_ = s.temporal.SignalWorkflow(ctx, fmt.Sprintf("bare-wait-%d", i), "", "done", nil)
		}
		// Let them end, so that the memory below is only the waiting ones'.
		for _, id := range ids {
			_ = s.temporal.GetWorkflow(ctx, models.WorkflowIDFor(id), "").Get(ctx, nil)
		}
	}

	// ---- memory per deployment awaiting approval, in this process's
	// workers (the API's garbage is collected before each reading).
	if want("memory_per_waiting") {
		// A warm-up of each kind first, not counted: what the first of many
		// costs once (database connections opened by the burst, caches,
		// protobuf descriptors) is not a waiting deployment's.
		warm := max(1, n.waiting/5)
		waitEnvs := envs(n.waiting+warm, 1, approval)
		ids := make([]string, len(waitEnvs))
		bareIDs := make([]string, len(waitEnvs))
		startWaiting := func(from, to int) {
			timed(to-from, func(i int) { ids[from+i], _ = deploy(waitEnvs[from+i]) })
			for _, id := range ids[from:to] {
				s.waitStatus(id, 2*time.Minute, models.StatusAwaitingApproval)
			}
		}
		startBare := func(from, to int) {
			timed(to-from, func(i int) {
				bareIDs[from+i] = fmt.Sprintf("bare-mem-%d", from+i)
				if _, err := s.temporal.ExecuteWorkflow(ctx, bare(bareIDs[from+i]), bareWaiting); err != nil {
					b.Error(err)
				}
			})
			for _, id := range bareIDs[from:to] {
				s.awaitFirstTask(id)
			}
		}
		profile := func(suffix string) {
			if path := os.Getenv("BENCH_HEAP_PROFILE"); path != "" {
				// Where the waiting deployments' memory goes:
				// go tool pprof -base F.before -top F.
				f, err := os.Create(path + suffix)
				require.NoError(b, err)
				require.NoError(b, pprof.WriteHeapProfile(f))
				require.NoError(b, f.Close())
			}
		}
		startWaiting(0, warm)
		startBare(0, warm)
		heap0, g0 := heapAndGoroutines()
		profile(".before")
		startWaiting(warm, len(ids))
		heap1, g1 := heapAndGoroutines()
		profile("")
		startBare(warm, len(ids))
		heap2, g2 := heapAndGoroutines()
		counted := float64(len(ids) - warm)
		per := float64(heap1-heap0) / counted / 1024
		bareper := float64(heap2-heap1) / counted / 1024
		figureLine{name: "memory_per_waiting", transit: per, baseline: bareper, ratio: per / bareper, unit: "KiB", goal: "<=1.5",
			ok: per/bareper <= 1.5, note: fmt.Sprintf("%d waiting of each, after %d of each not counted; goroutines each: %.2f vs %.2f",
				len(ids)-warm, warm, float64(g1-g0)/counted, float64(g2-g1)/counted)}.print()
		for i := range ids {
			_ = s.temporal.SignalWorkflow(ctx, bareIDs[i], "", "done", nil)
			_ = s.temporal.CancelWorkflow(ctx, models.WorkflowIDFor(ids[i]), "")
		}
		// Let them end, so that their ends do not load what is measured next.
		for i := range ids {
			_ = s.temporal.GetWorkflow(ctx, models.WorkflowIDFor(ids[i]), "").Get(ctx, nil)
		}
	}

	// ---- lists and metrics with many rows.
	if want("list_p99_100k") || want("metrics_100k") {
		listEnv := envs(1, 1, quick)[0]
		plan := models.Plan{Application: "bench", Environment: "list", ReleaseVersion: "1.0.0"}
		var wave []models.PlanTarget
		for i := 0; i < 10; i++ {
			wave = append(wave, models.PlanTarget{ID: fmt.Sprintf("tgt_%026d", i), Name: fmt.Sprintf("node-%03d", i), Driver: "simulated", CurrentVersion: "0.9.0"})
		}
		plan.Waves = [][]models.PlanTarget{wave}
		planJSON, err := json.Marshal(plan)
		require.NoError(b, err)
		start := time.Now()
		require.NoError(b, s.store.DB().Exec(`INSERT INTO deployments (id, application_id, environment_id, release_id, release_version,
			requested_by, status, workflow_id, plan, created_at, updated_at)
			SELECT 'dep_bench_' || lpad(g::text, 8, '0'), ?, ?, ?, '1.0.0', 'bench', (ARRAY['completed','failed','rolled_back'])[1 + g % 3],
				'deployment-bench-' || g, ?::jsonb, now(), now()
			FROM generate_series(1, ?) AS g`, app, listEnv, rel, string(planJSON), n.rows).Error)
		require.NoError(b, s.store.DB().Exec(`ANALYZE deployments`).Error)
		b.Logf("%d deployment rows inserted in %s", n.rows, time.Since(start).Round(time.Millisecond))

		var api, direct []time.Duration
		largest := 0
		for round := 0; round < 20; round++ {
			query := fmt.Sprintf("/api/v1/deployments?limit=50&environment_id=%s&status=completed", listEnv)
			opt := map[string]string{"environment_id": listEnv, "status": "completed"}
			cursor := ""
			for page := 0; page < 10; page++ {
				took, body := s.timedGet(query + "&cursor=" + cursor)
				api = append(api, took)
				largest = max(largest, len(body))
				t0 := time.Now()
				_, err := s.store.ListDeployments(ctx, store.ListOptions{Limit: 50, After: cursor, Filters: opt, Omit: []string{"plan"}})
				direct = append(direct, time.Since(t0))
				require.NoError(b, err)
				var page struct {
					NextCursor string `json:"next_cursor"`
				}
				require.NoError(b, json.Unmarshal(body, &page))
				cursor = page.NextCursor
			}
		}
		figureLine{name: "list_p99_100k", transit: p99(api), baseline: p99(direct), ratio: p99(api) / p99(direct), unit: "ms", goal: "<20ms,<200KB",
			ok: p99(api) < 20 && largest < 200*1024, note: fmt.Sprintf("%d rows; 200 pages of 50, filtered, 10 deep; the baseline is the store's own query; largest page %d KB",
				n.rows, largest/1024)}.print()

		s.timedGet("/metrics") // the first scrape counts
		time.Sleep(time.Second)
		var scrapes, health []time.Duration
		for i := 0; i < 100; i++ {
			took, _ := s.timedGet("/metrics")
			scrapes = append(scrapes, took)
			took, _ = s.timedGet("/healthz")
			health = append(health, took)
		}
		figureLine{name: "metrics_100k", transit: p99(scrapes), baseline: p99(health), ratio: p99(scrapes) / p99(health), unit: "ms", goal: "<5ms",
			ok: p99(scrapes) < 5, note: fmt.Sprintf("%d rows; 100 scrapes; the baseline is GET /healthz", n.rows)}.print()
	}

	// ---- one deployment of a large fleet.
	if want("history_10k_targets") {
		env := envs(1, 0, models.Policy{PointOfNoReturn: models.Duration(time.Millisecond), EarlyLifeSupport: models.Duration(time.Millisecond),
			Strategy: models.Strategy{Kind: models.StrategyRolling, Batch: 1000, MaxParallel: 100}})[0]
		require.NoError(b, s.store.DB().Exec(`INSERT INTO targets (id, environment_id, name, driver, config, created_by, created_at, updated_at)
			SELECT 'tgt_bench_' || lpad(g::text, 6, '0'), ?, 'node-' || lpad(g::text, 6, '0'), 'simulated', '{}', 'bench', now(), now()
			FROM generate_series(1, ?) AS g`, env, n.fleet).Error)
		t0 := time.Now()
		id, _ := deploy(env)
		d := s.waitStatus(id, 15*time.Minute, models.StatusCompleted, models.StatusFailed, models.StatusRolledBack, models.StatusRejected,
			models.StatusCompletedWithIssues)
		took := time.Since(t0)
		wf := models.WorkflowIDFor(id)
		events, size, largestEvent := s.historySize(wf)
		largestEvents, largestSize := events, size
		for _, child := range s.childWorkflows(wf) {
			e, sz, ev := s.historySize(child)
			largestEvents, largestSize, largestEvent = max(largestEvents, e), max(largestSize, sz), max(largestEvent, ev)
		}
		status := d.str("deployment", "status")
		mb := float64(largestSize) / (1 << 20)
		ok := status == string(models.StatusCompleted) && largestEvents < 10240 && mb < 10
		note := fmt.Sprintf("%d targets: %s in %s; the largest history %d events, %.2f MB; the deployment's own %d events, %.2f MB; the largest event %.2f MB",
			n.fleet, status, took.Round(time.Second), largestEvents, mb, events, float64(size)/(1<<20), float64(largestEvent)/(1<<20))
		if !ok {
			note += "; outcome: " + models.Cut(d.str("deployment", "outcome"), 300)
		}
		figureLine{name: "history_10k_targets", transit: float64(largestEvents), baseline: 10240, ratio: float64(largestEvents) / 10240,
			unit: "", goal: "<10240events,<10MB,completes", ok: ok, note: note}.print()
	}
	b.ReportMetric(1, "runs")
	fmt.Printf("FIGURE load_average %s\n", strings.TrimSpace(loadAverage()))
}

// timedGet sends a GET as admin and returns how long the answer took,
// read whole, and its body; anything but 200 fails.
func (s *stack) timedGet(path string) (time.Duration, []byte) {
	s.t.Helper()
	req, err := http.NewRequest("GET", s.baseURL+path, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(t0)
	require.NoError(s.t, err)
	require.Equal(s.t, 200, resp.StatusCode, "%s: %s", path, body)
	return took, body
}

func heapAndGoroutines() (uint64, int) {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, runtime.NumGoroutine()
}

// poolStats are the database pools' waits for a connection so far: the
// API's and the worker's.
type poolStats struct {
	apiWaits, workerWaits int64
	apiWait, workerWait   time.Duration
}

func (s *stack) poolStats() poolStats {
	waits := func(st *store.Store) (int64, time.Duration) {
		db, err := st.DB().DB()
		if err != nil {
			return 0, 0
		}
		stats := db.Stats()
		return stats.WaitCount, stats.WaitDuration
	}
	var p poolStats
	p.apiWaits, p.apiWait = waits(s.apiStore)
	p.workerWaits, p.workerWait = waits(s.store)
	return p
}

func (p poolStats) since(o poolStats) string {
	return fmt.Sprintf("meanwhile waits for a database connection: the API's %d (%s), the worker's %d (%s)",
		p.apiWaits-o.apiWaits, (p.apiWait - o.apiWait).Round(time.Millisecond),
		p.workerWaits-o.workerWaits, (p.workerWait - o.workerWait).Round(time.Millisecond))
}

// cpuTimes is the CPU time used so far by this process (the API and the
// workers), by the Temporal dev server and by Postgres (its ended
// backends included), in clock ticks.
type cpuTimes struct{ self, temporal, postgres int64 }

// cpuNow reads /proc (Linux only; zeros elsewhere).
func cpuNow() cpuTimes {
	var c cpuTimes
	c.self = procTicks("/proc/self/stat", false)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "temporal":
			c.temporal += procTicks("/proc/"+d.Name()+"/stat", false)
		case "postgres":
			c.postgres += procTicks("/proc/"+d.Name()+"/stat", true)
		}
	}
	return c
}

// procTicks is a process's user and system time, with its waited-for
// children's when children is set.
func procTicks(path string, children bool) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n := 2
	if children {
		n = 4
	}
	var sum int64
	for i := 11; i < 11+n && i < len(f); i++ { // utime, stime, cutime, cstime
		var v int64
		fmt.Sscan(f[i], &v)
		sum += v
	}
	return sum
}

func (c cpuTimes) minus(o cpuTimes) cpuTimes {
	return cpuTimes{c.self - o.self, c.temporal - o.temporal, c.postgres - o.postgres}
}

// per says the CPU time per item, in milliseconds (a tick is 10 ms).
func (c cpuTimes) per(n int) string {
	ms := func(t int64) float64 { return float64(t) * 10 / float64(n) }
	return fmt.Sprintf("transit %.0f, temporal %.0f, postgres %.0f", ms(c.self), ms(c.temporal), ms(c.postgres))
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return string(b)
}

// countEvents counts the events of one type in a workflow's history.
func (s *stack) countEvents(workflowID string, typ enumspb.EventType) int {
	s.t.Helper()
	n := 0
	for _, ev := range s.history(workflowID).Events {
		if ev.EventType == typ {
			n++
		}
	}
	return n
}

// historySize is a workflow's number of events, their size in bytes, and
// the size of the largest (Temporal refuses a payload over 2 MB).
func (s *stack) historySize(workflowID string) (events, size, largest int) {
	s.t.Helper()
	hist := s.history(workflowID)
	for _, ev := range hist.Events {
		largest = max(largest, proto.Size(ev))
	}
	return len(hist.Events), proto.Size(hist), largest
}

// awaitFirstTask waits until a workflow has run its first task (it is then
// in its worker's cache).
func (s *stack) awaitFirstTask(workflowID string) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		return s.countEvents(workflowID, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) > 0
	}, time.Minute, 50*time.Millisecond)
}
