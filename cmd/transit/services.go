package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"

	"github.com/spf13/cobra"

	"github.com/transit-hq/transit/api"
	"github.com/transit-hq/transit/config"
	"github.com/transit-hq/transit/identity"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
	"github.com/transit-hq/transit/telemetry"
	transitworker "github.com/transit-hq/transit/worker"
)

func loadConfig() (config.Config, *slog.Logger, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return cfg, nil, err
	}
	logger := cfg.Logger(os.Stderr)
	slog.SetDefault(logger)
	return cfg, logger, nil
}

// production reads the configuration and opens the database (migrating
// it). The caller closes the store.
func production(ctx context.Context) (config.Config, *slog.Logger, *store.Store, error) {
	cfg, logger, err := loadConfig()
	if err != nil {
		return cfg, nil, nil, err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return cfg, nil, nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, logger)
	return cfg, logger, st, err
}

func (a *cli) serverCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Run the REST API (configured by TRANSIT_* variables)",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runServer(cmd.Context()) },
	}
}

func (a *cli) workerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker (configured by TRANSIT_* variables)",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runWorker(cmd.Context()) },
	}
}

func (a *cli) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations and exit",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.runMigrate(cmd.Context()) },
	}
}

func (a *cli) tokensCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "tokens",
		Short: "Issue API tokens straight into the database",
	})
	var subject, groups, teams, roles, desc string
	issue := &cobra.Command{
		Use:   "issue --subject NAME",
		Short: "Issue an API token straight into the database (bootstrap an admin for 'transit server')",
		Long: `Issue an API token straight into the database, where TRANSIT_DATABASE_URL says:
the way to bootstrap an admin for 'transit server'. The token is printed once,
on standard output; only its SHA-256 is stored.`,
		Example: "  transit tokens issue --subject admin --roles admin\n" +
			"  transit tokens issue --subject ci --roles deployer --teams payments --description 'CI of payments'",
		Args: noArgs,
	}
	fs := issue.Flags()
	fs.StringVar(&subject, "subject", "", "who the token acts as (required)")
	fs.StringVar(&groups, "groups", "", "comma-separated approver groups, e.g. release-managers")
	fs.StringVar(&teams, "teams", "", "comma-separated teams, whose applications a deployer may deploy")
	fs.StringVar(&roles, "roles", "", "comma-separated roles: "+strings.Join(models.Roles, ", ")+" (default: admin for the admin group, else deployer,release_manager)")
	fs.StringVar(&desc, "description", "", "what the token is for")
	issue.RunE = func(cmd *cobra.Command, _ []string) error {
		_, _, st, err := production(cmd.Context())
		if err != nil {
			return err
		}
		defer st.Close()
		t := &models.APIToken{Subject: subject, Groups: models.NewJSON(splitList(groups)), Teams: models.NewJSON(splitList(teams)),
			Roles: models.NewJSON(splitList(roles)), Description: desc}
		secret := store.NewTokenSecret()
		if err := st.CreateToken(cmd.Context(), store.Actor{Subject: "cli:" + currentUser()}, t, secret); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "issued token %s for %s (roles: %s; teams: %s; groups: %s); it is shown once:\n", t.ID, t.Subject,
			strings.Join(t.Roles.V, ","), strings.Join(t.Teams.V, ","), strings.Join(t.Groups.V, ","))
		fmt.Fprintln(a.stdout, secret)
		return nil
	}
	cmd.AddCommand(issue)
	return cmd
}

func runServer(ctx context.Context) error {
	cfg, logger, st, err := production(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	// Lazy: the API starts while Temporal is down, and /readyz says so.
	tc, err := newTemporalClient(cfg, logger, true)
	if err != nil {
		return err
	}
	defer tc.Close()
	if cfg.AuditKey == nil {
		logger.Warn("no " + config.EnvAuditKey + ": the API signs no audit heads, so a rewrite of the database that recomputes the chain goes unseen")
	}
	return serveHTTP(ctx, cfg, logger, api.NewRouter(apiOptions(cfg, st, tc, logger)))
}

func runWorker(ctx context.Context) error {
	cfg, logger, st, err := production(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tm := telemetry.NewWorker()
	tc, err := dialTemporal(ctx, cfg, logger, time.Minute, tm.SDK.Handler())
	if err != nil {
		return err
	}
	defer tc.Close()
	// Its own address: /metrics (the SDK's and Transit's) and /healthz.
	ln, err := net.Listen("tcp", cfg.WorkerMetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", cfg.WorkerMetricsAddr, config.EnvWorkerMetricsAddr, err)
	}
	go func() {
		health := func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}
		if err := serveListener(ctx, ln, logger, tm.Handler(health)); err != nil {
			logger.Error("worker metrics server", "err", err)
		}
	}()
	logger.Info("worker metrics", "addr", ln.Addr().String())
	if cfg.VoteKey == nil {
		logger.Warn("no " + config.EnvVoteKey + ": votes through the API cannot be proven, so every voter's groups are looked up from its tokens")
	}
	w := transitworker.New(tc, workerOptions(cfg, st, logger))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	addr, ns := temporalTarget(cfg, logger)
	logger.Info("worker started", "task_queue", cfg.TaskQueue, "temporal", addr, "namespace", ns)
	<-ctx.Done()
	logger.Info("worker stopping")
	w.Stop()
	return nil
}

func (a *cli) runMigrate(ctx context.Context) error {
	_, _, st, err := production(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "schema at version %d (%s)\n", v, st.Dialect())
	return nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

func workerOptions(cfg config.Config, st *store.Store, logger *slog.Logger) transitworker.Options {
	return transitworker.Options{TaskQueue: cfg.TaskQueue, Store: st, Logger: logger, VoteKey: cfg.VoteKey,
		StoreOutage: cfg.StoreOutage, TargetsPerRun: cfg.TargetsPerRun,
		WorkflowCacheSize: cfg.WorkflowCache, MaxConcurrentActivities: cfg.MaxActivities}
}

func apiOptions(cfg config.Config, st *store.Store, tc client.Client, logger *slog.Logger) api.Options {
	var oidc *identity.Verifier
	if cfg.OIDC.Issuer != "" {
		oidc = identity.NewVerifier(cfg.OIDC)
		logger.Info("OIDC sign-in on", "issuer", cfg.OIDC.Issuer, "audience", cfg.OIDC.Audience)
	}
	return api.Options{OIDC: oidc, Store: st, Temporal: tc, Logger: logger, TaskQueue: cfg.TaskQueue, VoteKey: cfg.VoteKey, AuditKey: cfg.AuditKey,
		Namespace: cfg.TemporalNamespace, TemporalUIURL: cfg.TemporalUIURL, PublicURL: cfg.PublicURL}
}

// serveHTTP serves h on cfg.HTTPAddr until ctx ends, then drains for up to 10 s.
func serveHTTP(ctx context.Context, cfg config.Config, logger *slog.Logger, h http.Handler) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", cfg.HTTPAddr, config.EnvHTTPAddr, err)
	}
	return serveListener(ctx, ln, logger, h)
}

func serveListener(ctx context.Context, ln net.Listener, logger *slog.Logger, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("API listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("HTTP server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("HTTP shutdown: %w", err)
	}
	return nil
}

// temporalTarget is the address and namespace temporalOptions resolves.
func temporalTarget(cfg config.Config, logger *slog.Logger) (string, string) {
	opts, err := temporalOptions(cfg, logger)
	if err != nil {
		return cfg.TemporalAddress, cfg.TemporalNamespace
	}
	return opts.HostPort, opts.Namespace
}

// temporalOptions is how to reach Temporal: the SDK's environment
// configuration first (a profile of temporal.toml, then TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*: as the temporal CLI
// and every SDK read them), with each TRANSIT_TEMPORAL_* variable that is
// set overriding it, and Transit's defaults for what neither sets.
func temporalOptions(cfg config.Config, logger *slog.Logger) (client.Options, error) {
	var opts client.Options
	if cfg.TemporalEnv {
		var err error
		if opts, err = envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{}); err != nil {
			return client.Options{}, fmt.Errorf("Temporal's environment configuration (TEMPORAL_*, temporal.toml): %w", err)
		}
	}
	if cfg.TemporalAddressSet || opts.HostPort == "" {
		opts.HostPort = cfg.TemporalAddress
	}
	if cfg.TemporalNamespaceSet || opts.Namespace == "" {
		opts.Namespace = cfg.TemporalNamespace
	}
	tlsCfg, err := cfg.TemporalTLS.ClientTLS()
	if err != nil {
		return client.Options{}, err
	}
	if tlsCfg != nil {
		opts.ConnectionOptions.TLS = tlsCfg
	}
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
		if opts.ConnectionOptions.TLS == nil {
			opts.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12} // an API key goes over TLS only
		}
	}
	opts.Logger = log.NewStructuredLogger(logger.With("component", "temporal"))
	return opts, nil
}

func newTemporalClient(cfg config.Config, logger *slog.Logger, lazy bool, metrics ...client.MetricsHandler) (client.Client, error) {
	opts, err := temporalOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	if len(metrics) > 0 {
		opts.MetricsHandler = metrics[0]
	}
	if lazy {
		return client.NewLazyClient(opts)
	}
	return client.Dial(opts)
}

// dialTemporal connects, retrying until Temporal answers or wait runs out.
func dialTemporal(ctx context.Context, cfg config.Config, logger *slog.Logger, wait time.Duration, metrics client.MetricsHandler) (client.Client, error) {
	deadline := time.Now().Add(wait)
	for attempt := 1; ; attempt++ {
		c, err := newTemporalClient(cfg, logger, false, metrics)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			addr, ns := temporalTarget(cfg, logger)
			return nil, fmt.Errorf("connect to Temporal at %s (namespace %s; set by %s or TEMPORAL_ADDRESS): %w",
				addr, ns, config.EnvTemporalAddress, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			addr, _ := temporalTarget(cfg, logger)
			logger.Info("waiting for Temporal", "address", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
