package integration

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/internal/testenv"
	"github.com/transit-hq/transit/models"
)

// temporalCLI runs the pinned temporal CLI against the tests' dev server,
// as an operator would, and returns what it printed and how it ended.
func temporalCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.TemporalBinary()
	require.True(t, ok)
	cmd := exec.Command(bin, append(args, "--address", temporalServer.Address, "--namespace", "default")...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// signalCLI sends a Signal with the temporal CLI; input is its JSON.
func signalCLI(t *testing.T, deploymentID, name, input string) {
	t.Helper()
	out, err := temporalCLI(t, "workflow", "signal", "--workflow-id", models.WorkflowIDFor(deploymentID), "--name", name, "--input", input)
	require.NoError(t, err, out)
}

// updateCLI sends an Update with the temporal CLI and waits for it.
func updateCLI(t *testing.T, deploymentID, name, input string) (string, error) {
	t.Helper()
	return temporalCLI(t, "workflow", "update", "execute", "--workflow-id", models.WorkflowIDFor(deploymentID), "--name", name, "--input", input)
}

// scriptTarget adds a target whose script (testdata/record-target.sh)
// keeps its version in a folder and logs every call; it starts on version
// ("" for nothing). It returns the folder.
func (s *stack) scriptTarget(envID, name, version string, env map[string]string) string {
	s.t.Helper()
	script, err := filepath.Abs("testdata/record-target.sh")
	require.NoError(s.t, err)
	dir := filepath.Join(s.t.TempDir(), name)
	require.NoError(s.t, os.MkdirAll(dir, 0o755))
	if version != "" {
		require.NoError(s.t, os.WriteFile(filepath.Join(dir, "version"), []byte(version+"\n"), 0o644))
	}
	cfg := map[string]any{"command": script, "args": []string{dir}, "timeout": "2m"}
	if len(env) > 0 {
		cfg["env"] = env
	}
	s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": envID, "name": name, "driver": "script", "config": cfg})
	return dir
}

// call is one line of a script target's log.
type call struct {
	at     float64
	pid    int
	action string
	fields map[string]string
	what   string
}

// calls reads a script target's log.
func calls(t *testing.T, dir string) []call {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "calls"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []call
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) < 4 {
			continue
		}
		c := call{action: parts[2], fields: map[string]string{}}
		c.at, _ = strconv.ParseFloat(parts[0], 64)
		c.pid, _ = strconv.Atoi(parts[1])
		for _, p := range parts[3:] {
			if k, v, ok := strings.Cut(p, "="); ok {
				c.fields[k] = v
			} else {
				c.what = p
			}
		}
		out = append(out, c)
	}
	return out
}

// starts returns the calls that started an action.
func starts(cs []call, action string) []call {
	var out []call
	for _, c := range cs {
		if c.action == action && c.what == "start" {
			out = append(out, c)
		}
	}
	return out
}

func readVersion(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "version"))
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// rawGet sends a GET as admin and returns the response itself (headers and all).
func (s *stack) rawGet(path string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest("GET", s.baseURL+path, nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	resp.Body.Close()
	return resp
}
