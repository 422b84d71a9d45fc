package drivers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// quietLogger keeps the drivers' logs out of the test output.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// testTarget returns a target of driver whose config is cfg.
func testTarget(t *testing.T, driver string, cfg any) Target {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	return Target{
		ID:          "tgt-01",
		Name:        "web-1",
		Application: "shop",
		Environment: "prod",
		Driver:      driver,
		Config:      raw,
		Labels:      map[string]string{"zone": "eu-1"},
	}
}

func testRelease(version string) Release {
	return Release{
		ID:      "rel-" + version,
		Version: version,
		Artifacts: []models.Artifact{
			{Name: "shop-api", Version: version, Image: "registry.example/shop-api:" + version, Digest: "sha256:abc"},
		},
	}
}

// testdataPath returns the absolute path of a file under testdata/.
func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	require.NoError(t, err)
	return p
}

// readPid reads a pid written by a test script.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var pid int
	_, err = fmt.Sscan(strings.TrimSpace(string(b)), &pid)
	require.NoError(t, err)
	require.Positive(t, pid)
	return pid
}

// processGone reports whether pid no longer runs: it does not exist or is
// a zombie waiting for its (new) parent to reap it.
func processGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name: "pid (comm) S …".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// progressRecorder collects Progress details.
type progressRecorder struct {
	mu      sync.Mutex
	details []string
}

func (p *progressRecorder) record(detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.details = append(p.details, detail)
}

func (p *progressRecorder) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.details...)
}

// killPid ends a process a test left running on purpose.
func killPid(pid int) error {
	return syscall.Kill(pid, syscall.SIGKILL)
}
