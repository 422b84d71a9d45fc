package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// A real small HTTP service on a loopback port, deployed by the script
// driver through the REST API and a real Temporal server: version 2 goes
// out to the first wave, the http check confirms that it answers, a forced
// failure in the next wave rolls the service back, and version 1 answers
// again.
func TestScriptDriverDeploysCheckedAndRolledBack(t *testing.T) {
	s := newStack(t, stackOptions{})
	dir := t.TempDir()
	serviceBin := filepath.Join(dir, "service")
	build := exec.Command("go", "build", "-o", serviceBin, "./testdata/service")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	script, err := filepath.Abs("testdata/deploy-service.sh")
	require.NoError(t, err)

	policy := models.Policy{
		Strategy:         models.Strategy{Kind: models.StrategyRolling, Batch: 1},
		PointOfNoReturn:  models.Duration(time.Second),
		EarlyLifeSupport: models.Duration(time.Second),
		ValidationChecks: []models.CheckSpec{{Name: "version", Type: models.CheckHTTP, Tries: 5, Timeout: models.Duration(2 * time.Second),
			Config: json.RawMessage(`{"url":"http://127.0.0.1:{{.Target.Labels.port}}/","expect_status":200,"json_path":"version"}`)}},
	}
	app := s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "greeter", "owner_team": "web"}).str("id")
	env := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": app, "name": "prod", "policy": policy}).str("id")
	ports := map[string]int{}
	for _, name := range []string{"svc-a", "svc-b"} {
		port := freePort(t)
		ports[name] = port
		state := filepath.Join(dir, name)
		cfg := map[string]any{"command": script, "args": []string{state, strconv.Itoa(port), serviceBin}, "timeout": "30s"}
		if name == "svc-b" {
			cfg["env"] = map[string]string{"FAIL_VERSION": "2.0.0"}
		}
		s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": env, "name": name, "driver": "script",
			"config": cfg, "labels": map[string]string{"port": strconv.Itoa(port)}})
		t.Cleanup(func() { stopService(state) })
	}
	rel := map[string]string{}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		rel[v] = s.must(201, "POST", "/api/v1/releases", map[string]any{"application_id": app, "version": v,
			"artifacts": []map[string]string{{"name": "greeter", "version": v}}}).str("id")
	}

	first := s.deploy(s.admin, map[string]any{"release": rel["1.0.0"], "environment": env})
	d := s.waitStatus(first, 90*time.Second, models.StatusCompleted, models.StatusRolledBack, models.StatusFailed)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	require.Equal(t, "1.0.0", serviceVersion(t, ports["svc-a"]))
	require.Equal(t, "1.0.0", serviceVersion(t, ports["svc-b"]))

	second := s.deploy(s.admin, map[string]any{"release": rel["2.0.0"], "environment": env})
	d = s.waitStatus(second, 90*time.Second, models.StatusCompleted, models.StatusRolledBack, models.StatusFailed)
	require.Equal(t, string(models.StatusRolledBack), d.str("deployment", "status"), d.str("deployment", "outcome"))
	timeline := strings.Join(s.events(second), "\n")
	require.Contains(t, timeline, "wave 1 checks passed (version) on 1 target", "the http check saw version 2 answer on svc-a")
	require.Contains(t, timeline, "version 2.0.0 answers on port", "the script's output is on the timeline")
	require.Contains(t, d.str("deployment", "outcome"), "forced failure: this target refuses version 2.0.0")
	require.Contains(t, d.str("deployment", "outcome"), "2 targets rolled back to what ran before", "svc-a, and svc-b, whose failed deploy may have been half done")
	require.Equal(t, "1.0.0", serviceVersion(t, ports["svc-a"]), "svc-a was rolled back and restarted on version 1")
	require.Equal(t, "1.0.0", serviceVersion(t, ports["svc-b"]))
	require.Contains(t, timeline, "rollback on svc-a")
}

func serviceVersion(t *testing.T, port int) string {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var body struct{ Version string }
	require.NoError(t, json.Unmarshal(raw, &body), string(raw))
	return body.Version
}

func stopService(state string) {
	raw, err := os.ReadFile(filepath.Join(state, "pid"))
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
