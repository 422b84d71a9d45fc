package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/internal/testenv"
	"github.com/transit-hq/transit/models"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// transitBinary builds cmd/transit once for the package's tests.
func transitBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "transit-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "transit")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/transit")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/transit: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// process is a transit subcommand running as its own process.
type process struct {
	cmd  *exec.Cmd
	out  *strings.Builder
	mu   sync.Mutex
	done chan struct{}
}

func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(transitBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &process{cmd: cmd, out: &strings.Builder{}, done: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = cmd.Stderr
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// kill sends SIGKILL to the process group and waits for it.
func (p *process) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (s *stack) workerEnv() []string {
	return []string{
		"TRANSIT_DATABASE_URL=" + s.dbURL,
		"TRANSIT_TEMPORAL_ADDRESS=" + temporalServer.Address,
		"TRANSIT_TASK_QUEUE=" + s.taskQueue,
		"TRANSIT_VOTE_KEY=" + string(s.voteKey),
		"TRANSIT_LOG_LEVEL=warn",
		"TRANSIT_WORKER_METRICS_ADDR=127.0.0.1:0", // tests run side by side
	}
}

// `transit worker` serves /metrics and /healthz on its own address: the
// Temporal SDK's metrics and Transit's (deployments started and finished,
// target steps by driver and result).
func TestWorkerServesMetrics(t *testing.T) {
	s := newStack(t, stackOptions{noWorker: true})
	c := s.seed("prod", 2, quickPolicy(), "", "1.0.0")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := append(s.workerEnv(), "TRANSIT_WORKER_METRICS_ADDR="+addr, "TRANSIT_LOG_LEVEL=info")
	w := startProcess(t, env, "worker")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, time.Minute, models.StatusCompleted)

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err, "worker output:\n%s", w.output())
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	status, body := get("/healthz")
	require.Equal(t, 200, status, body)
	require.Contains(t, body, `"temporal":"ok"`)
	require.EventuallyWithT(t, func(c *assertCollect) {
		_, m := get("/metrics")
		// Transit's carry the SDK's tags too (namespace, task queue, …).
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^transit_deployments_started\{[^}]*workflow_type="Deployment"[^}]*\} 1$`),
			regexp.MustCompile(`(?m)^transit_deployments_finished\{[^}]*status="completed"[^}]*\} 1$`),
			regexp.MustCompile(`(?m)^transit_target_steps\{action="deploy",[^}]*driver="simulated",[^}]*result="ok"[^}]*\} 2$`),
			regexp.MustCompile(`(?m)^transit_target_steps\{action="validate",[^}]*driver="simulated",[^}]*result="ok"[^}]*\} 2$`),
		} {
			if !want.MatchString(m) {
				c.Errorf("worker /metrics has no %s:\n%s", want, grepLines(m, "transit_"))
			}
		}
		for _, want := range []string{
			"# HELP transit_target_steps Target steps",
			"temporal_workflow_task_schedule_to_start_latency_seconds_bucket{",
			"temporal_activity_execution_latency_seconds_count{",
			"temporal_worker_task_slots_available{",
			"temporal_sticky_cache_size",
			"go_goroutines",
		} {
			if !strings.Contains(m, want) {
				c.Errorf("worker /metrics has no %q:\n%s", want, grepLines(m, "transit_"))
			}
		}
	}, 20*time.Second, 500*time.Millisecond)
}

// The worker process is killed (SIGKILL) in the middle of a wave and
// started again: the deployment completes and no target is deployed twice.
func TestWorkerKilledMidWave(t *testing.T) {
	s := newStack(t, stackOptions{noWorker: true})
	policy := quickPolicy()
	policy.PointOfNoReturn, policy.EarlyLifeSupport = models.Duration(time.Second), models.Duration(time.Second)
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 3}
	c := s.seed("prod", 6, policy, `{"latency_min":"3s","latency_max":"3s"}`, "1.0.0")

	first := startProcess(t, s.workerEnv(), "worker")
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	require.EventuallyWithT(t, func(co *assertCollect) {
		d := s.must(200, "GET", "/api/v1/deployments/"+id, nil)
		if !strings.Contains(d.str("targets"), `"status":"deploying"`) {
			co.Errorf("no target is deploying yet (status %s)", d.str("deployment", "status"))
		}
	}, 60*time.Second, 100*time.Millisecond, "worker output:\n%s", first.output())
	first.kill()
	t.Logf("worker killed mid-wave")

	second := startProcess(t, s.workerEnv(), "worker")
	d := s.waitStatus(id, 2*time.Minute, models.StatusCompleted, models.StatusFailed, models.StatusRolledBack)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), "%s\nworker:\n%s", d.str("deployment", "outcome"), second.output())

	changes, err := s.store.SimulatedChanges(context.Background(), c.targets)
	require.NoError(t, err)
	for _, tid := range c.targets {
		require.Equal(t, 1, changes[tid], "target %s was deployed %d times", tid, changes[tid])
	}
}

// skipClock is a clock whose Sleep returns at once and moves the clock on
// by the time slept: early life support's days pass as fast as the probes
// run, and each probe still runs at its simulated minute.
type skipClock struct {
	offset *atomic.Int64 // nanoseconds slept so far
}

func newSkipClock() skipClock { return skipClock{offset: &atomic.Int64{}} }

func (c skipClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c skipClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		c.offset.Add(int64(d))
	}
	return nil
}

// Seven simulated days of early life support with a probe every minute
// keep the workflow history small: the probes run in one heartbeating
// activity, not as workflow events.
func TestSevenDaysOfEarlyLifeSupportKeepHistoryBounded(t *testing.T) {
	s := newStack(t, stackOptions{clock: newSkipClock()})
	policy := quickPolicy()
	policy.PointOfNoReturn = models.Duration(time.Second)
	policy.EarlyLifeSupport = models.Duration(7 * 24 * time.Hour)
	policy.ObservationProbes = []models.ProbeSpec{{Name: "errors", Type: models.ProbeSimulated, Config: []byte(`{}`), Interval: models.Duration(time.Minute)}}
	c := s.seed("prod", 2, policy, "", "1.0.0")

	start := time.Now()
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	d := s.waitStatus(id, 3*time.Minute, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusFailed, models.StatusRolledBack)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))

	// 7 days × 24 h × 60 probes an hour × 2 targets.
	outcome := d.str("deployment", "outcome")
	var runs, passed int
	_, err := fmt.Sscanf(outcome[strings.Index(outcome, "(")+1:], "%d probe runs: %d passed", &runs, &passed)
	require.NoError(t, err, outcome)
	require.GreaterOrEqual(t, runs, 7*24*60*2-4, outcome)
	n := s.historyLength(models.WorkflowIDFor(id))
	t.Logf("7 simulated days of ELS, %d probe runs, in %s: %d history events", runs, time.Since(start).Round(time.Second), n)
	fmt.Printf("FIGURE history_events_7_days_els=%d probe_runs=%d\n", n, runs)
	require.Less(t, n, 100, "the history must not grow with the probes")
}

// `transit dev --demo` (what `make run` starts) comes up with its own
// Temporal dev server, and the demo catalog deploys from end to end; Ctrl-C
// stops everything and leaves no process behind.
func TestDevDemoEndToEnd(t *testing.T) {
	testenv.RequireTemporal(t)
	bin, _ := testenv.TemporalBinary()
	dir := t.TempDir()
	httpPort, tPort, uiPort := freePort(t), freePort(t), freePort(t)
	startDev := func() *process {
		p := startProcess(t, []string{"TRANSIT_DATABASE_URL="}, "dev", "--demo", "--dir", dir, "--temporal-bin", bin,
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--temporal-port", fmt.Sprint(tPort), "--ui-port", fmt.Sprint(uiPort))
		require.EventuallyWithT(t, func(c *assertCollect) {
			if !strings.Contains(p.output(), "Transit is running") {
				c.Errorf("not up yet")
			}
		}, 90*time.Second, 200*time.Millisecond, "output:\n%s", p.output())
		return p
	}
	p := startDev()
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	require.NoError(t, err)
	require.Contains(t, p.output(), strings.TrimSpace(string(token)), "the bootstrap token is printed")

	s := &stack{t: t, admin: strings.TrimSpace(string(token)), baseURL: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	require.Equal(t, 200, s.call("GET", "/readyz", "", nil).Status)
	apps := s.must(200, "GET", "/api/v1/applications?name=storefront", nil).items()
	require.Len(t, apps, 1)
	require.Len(t, s.must(200, "GET", "/api/v1/environments?application_id=storefront", nil).items(), 3)

	// The demo's deployer is printed too: it may deploy storefront, whose
	// team it is in, but not set environments; the audit key was made.
	deployer, err := os.ReadFile(filepath.Join(dir, "deployer.token"))
	require.NoError(t, err)
	require.Contains(t, p.output(), strings.TrimSpace(string(deployer)), "the demo deployer's token is printed")
	who := s.call("GET", "/api/v1/whoami", strings.TrimSpace(string(deployer)), nil)
	require.Equal(t, `["deployer"]`, who.str("roles"), who.Raw)
	require.Equal(t, `["web"]`, who.str("teams"))
	require.Equal(t, 403, s.call("POST", "/api/v1/environments", strings.TrimSpace(string(deployer)),
		map[string]any{"application_id": "storefront", "name": "qa"}).Status)
	require.FileExists(t, filepath.Join(dir, "audit.key"))
	require.NotEmpty(t, s.must(200, "GET", "/api/v1/audit/head", nil).str("signature"))

	// One more command deploys the demo: the CLI, following it to the end.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := exec.CommandContext(ctx, transitBinary(t), "deploy", "--app", "storefront", "--version", "1.0.0", "--env", "dev",
		"--reason", "demo", "--watch", "--url", s.baseURL, "--token", s.admin)
	out, err := cli.CombinedOutput()
	require.NoError(t, err, "transit deploy --watch:\n%s", out)
	for _, want := range []string{"submitted", "awaiting_approval", "deploying", "early_life_support", "status:   completed", "handed over"} {
		require.Contains(t, string(out), want)
	}
	id := strings.Fields(string(out))[1]
	require.True(t, strings.HasPrefix(id, "dep_"), string(out))
	d := s.must(200, "GET", "/api/v1/deployments/"+id, nil)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Contains(t, d.str("temporal_ui"), fmt.Sprintf("localhost:%d", uiPort))

	// The Web UI answers on its port.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", uiPort), 2*time.Second)
	require.NoError(t, err, "the Temporal Web UI listens")
	conn.Close()

	// Ctrl-C: everything stops, the dev server too.
	require.NoError(t, syscall.Kill(p.cmd.Process.Pid, syscall.SIGINT))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("transit dev did not stop within 30s of SIGINT:\n%s", p.output())
	}
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), p.output())
	_, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tPort), time.Second)
	require.Error(t, err, "the Temporal dev server stopped with it")

	// Restarting keeps the state (SQLite and Temporal under --dir) and the token.
	p2 := startDev()
	require.Contains(t, p2.output(), s.admin, "the saved admin token still works and is shown again")
	require.Equal(t, string(models.StatusCompleted), s.must(200, "GET", "/api/v1/deployments/"+id, nil).str("deployment", "status"))
	desc, err := describeOverCLI(bin, tPort, models.WorkflowIDFor(id))
	require.NoError(t, err, desc)
	require.Contains(t, desc, "COMPLETED", "Temporal kept the workflow's history across the restart")
	require.NoError(t, syscall.Kill(p2.cmd.Process.Pid, syscall.SIGINT))
	<-p2.done
}

func describeOverCLI(bin string, port int, workflowID string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "workflow", "describe", "--address", fmt.Sprintf("127.0.0.1:%d", port), "-w", workflowID).CombinedOutput()
	return string(out), err
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
