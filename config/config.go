// Package config reads Transit's configuration from environment variables.
// The README's configuration table lists every variable; keep them in step.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/transit-hq/transit/identity"
	"github.com/transit-hq/transit/models"
)

// Environment variable names.
const (
	EnvDatabaseURL       = "TRANSIT_DATABASE_URL"
	EnvTemporalAddress   = "TRANSIT_TEMPORAL_ADDRESS"
	EnvTemporalNamespace = "TRANSIT_TEMPORAL_NAMESPACE"
	EnvTemporalTLS       = "TRANSIT_TEMPORAL_TLS"
	EnvTemporalTLSCert   = "TRANSIT_TEMPORAL_TLS_CERT"
	EnvTemporalTLSKey    = "TRANSIT_TEMPORAL_TLS_KEY"
	EnvTemporalTLSCA     = "TRANSIT_TEMPORAL_TLS_CA"
	EnvTemporalTLSServer = "TRANSIT_TEMPORAL_TLS_SERVER_NAME"
	EnvTemporalAPIKey    = "TRANSIT_TEMPORAL_API_KEY"
	EnvTemporalUIURL     = "TRANSIT_TEMPORAL_UI_URL"
	EnvTaskQueue         = "TRANSIT_TASK_QUEUE"
	EnvHTTPAddr          = "TRANSIT_HTTP_ADDR"
	EnvLogLevel          = "TRANSIT_LOG_LEVEL"
	EnvLogFormat         = "TRANSIT_LOG_FORMAT"
	EnvVoteKey           = "TRANSIT_VOTE_KEY"
	EnvStoreOutage       = "TRANSIT_STORE_OUTAGE_TIMEOUT"
	EnvTargetsPerRun     = "TRANSIT_TARGETS_PER_RUN"
	EnvWorkflowCache     = "TRANSIT_WORKFLOW_CACHE_SIZE"
	EnvMaxActivities     = "TRANSIT_MAX_CONCURRENT_ACTIVITIES"
	EnvAuditKey          = "TRANSIT_AUDIT_KEY"
	EnvPublicURL         = "TRANSIT_PUBLIC_URL"
	EnvWorkerMetricsAddr = "TRANSIT_WORKER_METRICS_ADDR"
)

// Defaults.
const (
	DefaultTemporalAddress   = "localhost:7233"
	DefaultTemporalNamespace = "default"
	DefaultTemporalUIURL     = "http://localhost:8233"
	DefaultTaskQueue         = models.DefaultTaskQueue
	DefaultHTTPAddr          = ":8080"
	DefaultPublicURL         = "http://localhost:8080"
	DefaultWorkerMetrics     = ":9090"
	DefaultStoreOutage       = 10 * time.Minute
	// DefaultWorkflowCache is how many deployments a worker keeps in memory
	// between their workflow tasks (about 24 KiB each while one awaits
	// approval, by make bench: 10,000 take about 240 MB). A deployment
	// out of the cache is replayed from its history when it next wakes.
	DefaultWorkflowCache = 10000
	// DefaultMaxActivities bounds the activities a worker runs at once:
	// target steps (a script is a process), checks and observations.
	DefaultMaxActivities = 200
)

// Config is the whole of Transit's configuration.
type Config struct {
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	TemporalTLS       TLS
	// TemporalAPIKey authenticates to Temporal (Temporal Cloud); "" for none.
	TemporalAPIKey string
	// TemporalEnv: Temporal's own settings (TEMPORAL_ADDRESS,
	// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS, a profile of
	// temporal.toml) apply where no TRANSIT_TEMPORAL_* variable is set.
	// Set (the address, the namespace) says which TRANSIT_ ones were.
	TemporalEnv                              bool
	TemporalAddressSet, TemporalNamespaceSet bool
	TemporalUIURL                            string
	// PublicURL is where people reach Transit's API: the links to a
	// deployment shown in the Temporal UI are absolute, under it.
	PublicURL string
	// WorkerMetricsAddr is where `transit worker` serves /metrics and /healthz.
	WorkerMetricsAddr string
	TaskQueue         string
	HTTPAddr          string
	LogLevel          slog.Level
	LogFormat         string
	// VoteKey is the key the API signs votes and controls with, and the
	// worker checks them with (the same on both); nil when unset.
	VoteKey []byte
	// StoreOutage is how long a target step waits out a database outage.
	StoreOutage time.Duration
	// TargetsPerRun bounds the targets one workflow run changes.
	TargetsPerRun int
	// WorkflowCache and MaxActivities size a worker (see their defaults).
	WorkflowCache, MaxActivities int
	// OIDC configures sign-in with an identity provider's JWTs (the
	// TRANSIT_OIDC_* variables); a zero Issuer means off.
	OIDC identity.Config
	// AuditKey signs audit heads: the key file that TRANSIT_AUDIT_KEY
	// names, kept outside the database; nil when unset.
	AuditKey *models.AuditKey
}

// TLS configures the connection to Temporal. Enabled with no files uses the
// system roots (as Temporal Cloud needs); Cert and Key give mutual TLS.
type TLS struct {
	Enabled    bool
	CertFile   string
	KeyFile    string
	CAFile     string
	ServerName string
}

// Load reads the configuration from getenv (os.Getenv in production),
// naming every bad value.
func Load(getenv func(string) string) (Config, error) {
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		TemporalEnv:          true,
		TemporalAddressSet:   get(EnvTemporalAddress, "") != "",
		TemporalNamespaceSet: get(EnvTemporalNamespace, "") != "",
		TemporalAPIKey:       get(EnvTemporalAPIKey, ""),
		DatabaseURL:          get(EnvDatabaseURL, ""),
		TemporalAddress:      get(EnvTemporalAddress, DefaultTemporalAddress),
		TemporalNamespace:    get(EnvTemporalNamespace, DefaultTemporalNamespace),
		TemporalUIURL:        strings.TrimRight(get(EnvTemporalUIURL, DefaultTemporalUIURL), "/"),
		PublicURL:            strings.TrimRight(get(EnvPublicURL, DefaultPublicURL), "/"),
		WorkerMetricsAddr:    get(EnvWorkerMetricsAddr, DefaultWorkerMetrics),
		TaskQueue:            get(EnvTaskQueue, DefaultTaskQueue),
		HTTPAddr:             get(EnvHTTPAddr, DefaultHTTPAddr),
		LogFormat:            get(EnvLogFormat, "text"),
		TemporalTLS: TLS{
			CertFile:   get(EnvTemporalTLSCert, ""),
			KeyFile:    get(EnvTemporalTLSKey, ""),
			CAFile:     get(EnvTemporalTLSCA, ""),
			ServerName: get(EnvTemporalTLSServer, ""),
		},
	}
	var problems []string
	if s := get(EnvTemporalTLS, "false"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s=%q must be true or false", EnvTemporalTLS, s))
		}
		c.TemporalTLS.Enabled = b || c.TemporalTLS.CertFile != "" || c.TemporalTLS.CAFile != ""
	}
	if (c.TemporalTLS.CertFile == "") != (c.TemporalTLS.KeyFile == "") {
		problems = append(problems, fmt.Sprintf("%s and %s go together: set both for mutual TLS, or neither", EnvTemporalTLSCert, EnvTemporalTLSKey))
	}
	if err := c.LogLevel.UnmarshalText([]byte(get(EnvLogLevel, "info"))); err != nil {
		problems = append(problems, fmt.Sprintf("%s=%q must be debug, info, warn or error", EnvLogLevel, getenv(EnvLogLevel)))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		problems = append(problems, fmt.Sprintf("%s=%q must be text or json", EnvLogFormat, c.LogFormat))
	}
	if v := get(EnvVoteKey, ""); v != "" {
		key, err := ReadKey(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", EnvVoteKey, err))
		}
		c.VoteKey = key
	}
	oidc, err := identity.ConfigFromEnv(getenv)
	if err != nil {
		problems = append(problems, err.Error())
	}
	c.OIDC = oidc
	if v := get(EnvAuditKey, ""); v != "" {
		key, err := models.ReadAuditKey(v, false)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", EnvAuditKey, err))
		}
		c.AuditKey = key
	}
	c.StoreOutage = DefaultStoreOutage
	if v := get(EnvStoreOutage, ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			problems = append(problems, fmt.Sprintf("%s=%q must be a duration of at least 1s, e.g. 10m", EnvStoreOutage, v))
		}
		c.StoreOutage = d
	}
	for _, n := range []struct {
		env      string
		into     *int
		def, min int
		max      int
	}{
		// 0: the worker's default (activities.DefaultTargetsPerRun).
		{EnvTargetsPerRun, &c.TargetsPerRun, 0, models.MinTargetsPerRun, models.MaxTargetsPerRun},
		{EnvWorkflowCache, &c.WorkflowCache, DefaultWorkflowCache, 100, 1000000},
		{EnvMaxActivities, &c.MaxActivities, DefaultMaxActivities, 1, 10000},
	} {
		*n.into = n.def
		if v := get(n.env, ""); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < n.min || x > n.max {
				problems = append(problems, fmt.Sprintf("%s=%q must be a whole number from %d to %d", n.env, v, n.min, n.max))
			}
			*n.into = x
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// RequireDatabase fails when no database URL is set, as production commands need one.
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return fmt.Errorf("configuration: %s is required, e.g. postgres://transit:secret@db:5432/transit?sslmode=disable", EnvDatabaseURL)
	}
	return nil
}

// Logger builds the process's slog logger.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ClientTLS returns the tls.Config for Temporal, or nil when TLS is off.
func (t TLS) ClientTLS() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load Temporal client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read Temporal CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate found", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ReadKey reads a secret key: "file:/path" reads the file, anything else is
// the key itself. Either way it must be at least 32 characters (after
// trimming), as `transit dev` makes them (64 hex digits).
func ReadKey(v string) ([]byte, error) {
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read the key: %w", err)
		}
		v = string(b)
	}
	v = strings.TrimSpace(v)
	if len(v) < models.MinVoteKeyBytes {
		return nil, fmt.Errorf("the key must be at least %d characters (e.g. `openssl rand -hex 32`)", models.MinVoteKeyBytes)
	}
	return []byte(v), nil
}
