package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/transit-hq/transit/api"
	"github.com/transit-hq/transit/config"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
	"github.com/transit-hq/transit/telemetry"
	transitworker "github.com/transit-hq/transit/worker"
)

// devOptions are the flags of transit dev.
type devOptions struct {
	dir, temporalBin, httpAddr string
	demo                       bool
	temporalPort, uiPort       int
}

func (a *cli) devCommand() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on one machine: Temporal dev server + UI, worker and API on SQLite",
		Long: `Run the whole of Transit on one machine: the Temporal dev server (with its Web
UI) as a child process, the worker and the API in this process, on an embedded
SQLite database unless TRANSIT_DATABASE_URL says otherwise. Everything it keeps
lives under --dir, the admin token too. Ctrl-C stops everything.`,
		Example: "  transit dev --demo",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runDev(cmd.Context(), o, a.stderr) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dir, "dir", ".transit", "folder for the SQLite database, Temporal's state, logs and the admin token")
	fs.BoolVar(&o.demo, "demo", false, "seed an example catalog (application, dev/staging/prod, simulated targets, a release)")
	fs.StringVar(&o.temporalBin, "temporal-bin", "", "path to the temporal CLI (default: $TRANSIT_TEMPORAL_BIN, ./bin/temporal, then $PATH)")
	fs.IntVar(&o.temporalPort, "temporal-port", 7233, "Temporal frontend gRPC port")
	fs.IntVar(&o.uiPort, "ui-port", 8233, "Temporal Web UI port")
	fs.StringVar(&o.httpAddr, "http-addr", "", "API listen address (default $TRANSIT_HTTP_ADDR or :8080)")
	return cmd
}

// runDev runs the whole of Transit on one machine: the Temporal dev server
// (with its Web UI) as a child process, the worker and the API in this
// process, on an embedded SQLite database unless TRANSIT_DATABASE_URL says
// otherwise. Everything it keeps lives under o.dir; what a person reads
// goes to stderr.
func runDev(ctx context.Context, o devOptions, stderr io.Writer) error {
	cfg, logger, err := loadConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", o.dir, err)
	}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = "sqlite://" + filepath.Join(o.dir, "transit.db")
	}
	if o.httpAddr != "" {
		cfg.HTTPAddr = o.httpAddr
	}
	cfg.TemporalAddress = "127.0.0.1:" + strconv.Itoa(o.temporalPort)
	cfg.TemporalEnv = false // its own dev server, whatever TEMPORAL_* says
	cfg.TemporalUIURL = "http://localhost:" + strconv.Itoa(o.uiPort)
	bin, err := findTemporal(o.temporalBin)
	if err != nil {
		return err
	}

	// Listen first: a busy port should fail before anything starts.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (--http-addr): %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()

	for flagName, port := range map[string]int{"--temporal-port": o.temporalPort, "--ui-port": o.uiPort} {
		if err := portFree(port); err != nil {
			return fmt.Errorf("port %d is in use (another Temporal dev server, or transit dev, still running?): stop it or pass %s: %w", port, flagName, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	temporal, err := startTemporal(bin, o.dir, o.temporalPort, o.uiPort, logger)
	if err != nil {
		return err
	}
	defer temporal.stop(logger)
	var temporalDied atomic.Bool
	go func() {
		select {
		case <-temporal.done:
			if ctx.Err() == nil {
				temporalDied.Store(true)
				logger.Error("the Temporal dev server exited; stopping Transit", "log", temporal.logPath)
				cancel()
			}
		case <-ctx.Done():
		}
	}()

	// The worker's metrics (the SDK's and Transit's) join the API's /metrics.
	tm := telemetry.NewWorker()
	tc, err := dialTemporal(ctx, cfg, logger, 2*time.Minute, tm.SDK.Handler())
	if err != nil {
		return fmt.Errorf("%w (Temporal's log: %s)", err, temporal.logPath)
	}
	defer tc.Close()

	st, err := store.Open(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer st.Close()

	token, err := bootstrapToken(ctx, st, filepath.Join(o.dir, "admin.token"))
	if err != nil {
		return err
	}
	demoLine := ""
	if o.demo {
		if err := store.SeedDemo(ctx, st); err != nil {
			return fmt.Errorf("seed demo catalog: %w", err)
		}
		path := filepath.Join(o.dir, "deployer.token")
		deployer, err := demoDeployerToken(ctx, st, path)
		if err != nil {
			return err
		}
		demoLine = fmt.Sprintf("    Deployer     %s\n                 (dana, a deployer of team %s, which owns %s; saved in %s)\n",
			deployer, store.DemoTeam, store.DemoApplication, path)
	}

	if cfg.VoteKey == nil {
		if cfg.VoteKey, err = devVoteKey(filepath.Join(o.dir, "vote.key")); err != nil {
			return err
		}
	}
	if cfg.AuditKey == nil {
		// Outside the database, so that whoever can rewrite the database
		// cannot sign a head.
		if cfg.AuditKey, err = models.ReadAuditKey(filepath.Join(o.dir, "audit.key"), true); err != nil {
			return err
		}
	}
	w := transitworker.New(tc, workerOptions(cfg, st, logger))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()

	apiURL := "http://" + displayAddr(ln.Addr().String())
	fmt.Fprintf(stderr, `
  Transit is running.

    Console      %s/                   (sign in with a token below)
    API          %s/api/v1            (health: %s/healthz)
    Temporal UI  %s
    Temporal     %s   namespace %s, task queue %s
    Database     %s
    Admin token  %s
                 (saved in %s; export TRANSIT_TOKEN=$(cat %s))
%s
  Try:
    curl -H "Authorization: Bearer %s" %s/api/v1/applications

  Ctrl-C stops everything.

`, apiURL, apiURL, apiURL, cfg.TemporalUIURL, cfg.TemporalAddress, cfg.TemporalNamespace, cfg.TaskQueue,
		redactURL(cfg.DatabaseURL), token, filepath.Join(o.dir, "admin.token"), filepath.Join(o.dir, "admin.token"), demoLine, token, apiURL)

	if os.Getenv(config.EnvPublicURL) == "" {
		cfg.PublicURL = apiURL // where this one listens
	}
	opts := apiOptions(cfg, st, tc, logger)
	opts.Collectors = append(opts.Collectors, tm.SDK)
	err = serveListener(ctx, ln, logger, api.NewRouter(opts))
	logger.Info("shutting down")
	if temporalDied.Load() {
		return fmt.Errorf("the Temporal dev server exited unexpectedly; its log is %s", temporal.logPath)
	}
	return err
}

func portFree(port int) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return l.Close()
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at > 0 {
		if scheme := strings.Index(u, "://"); scheme > 0 && scheme < at {
			return u[:scheme+3] + "…" + u[at:]
		}
	}
	return u
}

// findTemporal looks for the temporal CLI: the flag, $TRANSIT_TEMPORAL_BIN,
// ./bin/temporal, then $PATH.
func findTemporal(flagValue string) (string, error) {
	for _, p := range []string{flagValue, os.Getenv("TRANSIT_TEMPORAL_BIN"), filepath.Join("bin", "temporal")} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return filepath.Abs(p)
		}
		if p == flagValue {
			return "", fmt.Errorf("--temporal-bin %s: no such file", p)
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("the temporal CLI was not found: run 'make bin/temporal' (builds it from source), or pass --temporal-bin")
}

type temporalProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// startTemporal starts the dev server in its own process group; Pdeathsig
// kills it if this process dies without stopping it.
func startTemporal(bin, dir string, port, uiPort int, logger *slog.Logger) (*temporalProcess, error) {
	logPath := filepath.Join(dir, "temporal.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", logPath, err)
	}
	args := []string{"server", "start-dev",
		"--db-filename", filepath.Join(dir, "temporal.db"),
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--ui-port", strconv.Itoa(uiPort),
		"--namespace", "default",
		"--log-level", "warn",
	}
	for _, sa := range models.SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &temporalProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	logger.Info("Temporal dev server starting", "pid", cmd.Process.Pid, "port", port, "ui_port", uiPort, "log", logPath)
	return p, nil
}

// stop sends SIGTERM to the dev server's process group and SIGKILL after 10 s.
func (p *temporalProcess) stop(logger *slog.Logger) {
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		logger.Warn("Temporal dev server did not stop in 10s; killing it")
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// bootstrapToken returns the admin token saved in path if it still works,
// else issues a new one and saves it (mode 0600).
func bootstrapToken(ctx context.Context, st *store.Store, path string) (string, error) {
	return savedToken(ctx, st, path, &models.APIToken{Subject: "admin", Groups: models.NewJSON([]string{models.GroupAdmin}),
		Roles: models.NewJSON([]string{models.RoleAdmin}), Description: "bootstrap token of transit dev"})
}

// demoDeployerToken is the --demo catalog's non-admin: a deployer of the
// team that owns the demo application, so that a newcomer can try what a
// deployer may do, and what it may not.
func demoDeployerToken(ctx context.Context, st *store.Store, path string) (string, error) {
	return savedToken(ctx, st, path, &models.APIToken{Subject: "dana", Groups: models.NewJSON([]string{}),
		Teams: models.NewJSON([]string{store.DemoTeam}), Roles: models.NewJSON([]string{models.RoleDeployer}),
		Description: "demo deployer of team " + store.DemoTeam + " (transit dev --demo)"})
}

// savedToken returns the token saved in path if it still works, else
// issues t and saves its secret (mode 0600).
func savedToken(ctx context.Context, st *store.Store, path string, t *models.APIToken) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		secret := strings.TrimSpace(string(b))
		if _, err := st.Authenticate(ctx, secret); err == nil {
			return secret, nil
		}
	}
	secret := store.NewTokenSecret()
	if err := st.CreateToken(ctx, store.Actor{Subject: "transit-dev"}, t, secret); err != nil {
		return "", fmt.Errorf("issue the token of %s: %w", t.Subject, err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save the token of %s: %w", t.Subject, err)
	}
	return secret, nil
}

// devVoteKey returns the key saved in path, making one the first time: the
// API signs votes and controls with it and the worker checks them, so
// that a vote's groups never rest on the caller's word.
func devVoteKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return config.ReadKey(string(b))
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("make a vote key: %w", err)
	}
	key := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save the vote key: %w", err)
	}
	return []byte(key), nil
}
