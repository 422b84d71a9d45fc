package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/config"
)

// Temporal's own environment configuration (TEMPORAL_*, a profile of
// temporal.toml) reaches the client; TRANSIT_TEMPORAL_* overrides it; an
// API key comes with TLS.
func TestTemporalSettingsComeFromTheSDKsEnvironmentToo(t *testing.T) {
	load := func() config.Config {
		cfg, err := config.Load(os.Getenv)
		require.NoError(t, err)
		return cfg
	}
	toml := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(toml, []byte(`
[profile.cloud]
address = "prod.a1b2c.tmprl.cloud:7233"
namespace = "prod.a1b2c"
api_key = "key-from-profile"
`), 0o600))
	t.Setenv("TEMPORAL_CONFIG_FILE", toml)
	t.Setenv("TEMPORAL_PROFILE", "cloud")
	opts, err := temporalOptions(load(), slog.Default())
	require.NoError(t, err)
	require.Equal(t, "prod.a1b2c.tmprl.cloud:7233", opts.HostPort)
	require.Equal(t, "prod.a1b2c", opts.Namespace)
	require.NotNil(t, opts.Credentials, "the profile's API key")
	require.NotNil(t, opts.ConnectionOptions.TLS, "an API key goes over TLS")

	t.Setenv("TEMPORAL_ADDRESS", "other:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "from-env")
	opts, err = temporalOptions(load(), slog.Default())
	require.NoError(t, err)
	require.Equal(t, "other:7233", opts.HostPort, "TEMPORAL_ADDRESS over the profile")
	require.Equal(t, "from-env", opts.Namespace)

	t.Setenv("TRANSIT_TEMPORAL_ADDRESS", "transit-says:7233")
	t.Setenv("TRANSIT_TEMPORAL_NAMESPACE", "transit-ns")
	t.Setenv("TRANSIT_TEMPORAL_API_KEY", "transit-key")
	cfg := load()
	require.Equal(t, "transit-key", cfg.TemporalAPIKey, "TRANSIT_TEMPORAL_API_KEY over the profile's key")
	opts, err = temporalOptions(cfg, slog.Default())
	require.NoError(t, err)
	require.Equal(t, "transit-says:7233", opts.HostPort, "TRANSIT_TEMPORAL_* overrides")
	require.Equal(t, "transit-ns", opts.Namespace)
	require.NotNil(t, opts.Credentials, "the TRANSIT_TEMPORAL_API_KEY")

	// Nothing set at all: Transit's defaults.
	for _, k := range []string{"TEMPORAL_CONFIG_FILE", "TEMPORAL_PROFILE", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE",
		"TRANSIT_TEMPORAL_ADDRESS", "TRANSIT_TEMPORAL_NAMESPACE", "TRANSIT_TEMPORAL_API_KEY"} {
		t.Setenv(k, "")
	}
	t.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(t.TempDir(), "none.toml"))
	opts, err = temporalOptions(load(), slog.Default())
	require.NoError(t, err)
	require.Equal(t, config.DefaultTemporalAddress, opts.HostPort)
	require.Equal(t, config.DefaultTemporalNamespace, opts.Namespace)
	require.Nil(t, opts.Credentials)
	require.Nil(t, opts.ConnectionOptions.TLS)
}
