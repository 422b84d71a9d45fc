package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The token transit dev saves in .transit/admin.token goes only to an API
// on this machine, never to a remote one.
func TestDevTokenIsOnlyForLoopback(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("TRANSIT_TOKEN", "")
	require.NoError(t, os.MkdirAll(".transit", 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(".transit", "admin.token"), []byte("trt_dev\n"), 0o600))

	for _, u := range []string{"http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080", ""} {
		c, err := (&clientFlags{url: u}).client()
		require.NoError(t, err, u)
		require.Equal(t, "trt_dev", c.Token, u)
	}
	for _, u := range []string{"https://transit.example.com", "http://10.0.0.5:8080", "http://localhost.example.com"} {
		_, err := (&clientFlags{url: u}).client()
		require.ErrorContains(t, err, "no API token", u)
	}
}
