package drivers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// scriptTarget returns a target run by testdata/target.sh with its state in
// a fresh directory, which it also returns.
func scriptTarget(t *testing.T, mutate func(*models.ScriptConfig)) (Target, string) {
	t.Helper()
	state := t.TempDir()
	cfg := models.ScriptConfig{
		Command: testdataPath(t, "target.sh"),
		Workdir: state,
		Env:     map[string]string{"STATE_DIR": state},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return testTarget(t, models.DriverScript, cfg), state
}

func newTestScript() *Script {
	return NewScript(ScriptOptions{KillGrace: 300 * time.Millisecond, ProgressInterval: 50 * time.Millisecond, Logger: quietLogger})
}

// calls returns the actions target.sh was run with, in order.
func calls(t *testing.T, state string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(b))
}

// scriptEnv returns the TRANSIT_* variables of the last run of action.
func scriptEnv(t *testing.T, state, action string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "env."+action))
	require.NoError(t, err)
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return env
}

func TestScriptDeploySetsEnvironmentAndReportsVersion(t *testing.T) {
	tgt, state := scriptTarget(t, nil)
	s := newTestScript()
	req := Request{Target: tgt, Release: testRelease("1.4.0"), Previous: "1.3.9", IdempotencyKey: "dep-1/web-1/deploy"}

	res, err := s.Deploy(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "1.4.0", res.Version)
	require.Contains(t, res.Log, "deploying 1.4.0 over 1.3.9")
	require.Contains(t, res.Log, "deployed 1.4.0")
	require.Equal(t, []string{"current", "deploy"}, calls(t, state))

	env := scriptEnv(t, state, "deploy")
	require.Equal(t, "deploy", env["TRANSIT_ACTION"])
	require.Equal(t, "shop", env["TRANSIT_APPLICATION"])
	require.Equal(t, "prod", env["TRANSIT_ENVIRONMENT"])
	require.Equal(t, "web-1", env["TRANSIT_TARGET"])
	require.Equal(t, "1.4.0", env["TRANSIT_RELEASE_VERSION"])
	require.Equal(t, "1.3.9", env["TRANSIT_PREVIOUS_VERSION"])
	require.Equal(t, "dep-1/web-1/deploy", env["TRANSIT_IDEMPOTENCY_KEY"])
	require.Equal(t, "false", env["TRANSIT_RETAIN_DATA"])
	var artifacts []models.Artifact
	require.NoError(t, json.Unmarshal([]byte(env["TRANSIT_ARTIFACTS"]), &artifacts))
	require.Equal(t, req.Release.Artifacts, artifacts)

	pwd, err := os.ReadFile(filepath.Join(state, "pwd.deploy"))
	require.NoError(t, err)
	require.Equal(t, state, strings.TrimSpace(string(pwd)), "the command runs in the configured workdir")

	current, err := s.Current(context.Background(), tgt)
	require.NoError(t, err)
	require.Equal(t, "1.4.0", current, "the last line of stdout is the version")
}

func TestScriptDeployIsIdempotent(t *testing.T) {
	tgt, state := scriptTarget(t, nil)
	s := newTestScript()
	req := Request{Target: tgt, Release: testRelease("2.0.0"), IdempotencyKey: "k"}

	first, err := s.Deploy(context.Background(), req)
	require.NoError(t, err)
	second, err := s.Deploy(context.Background(), req)
	require.NoError(t, err)

	require.Equal(t, "2.0.0", first.Version)
	require.Equal(t, "2.0.0", second.Version)
	require.Contains(t, second.Log, "already runs 2.0.0")
	require.Equal(t, []string{"current", "deploy", "current"}, calls(t, state), "the second deploy only asks for the current version")
}

func TestScriptDeployFailureHasExitCodeAndOutput(t *testing.T) {
	tgt, state := scriptTarget(t, func(c *models.ScriptConfig) { c.Env["FAIL_DEPLOY"] = "3.0.0" })
	s := newTestScript()

	res, err := s.Deploy(context.Background(), Request{Target: tgt, Release: testRelease("3.0.0")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "exited with code 3")
	require.Contains(t, err.Error(), "no space left on device")
	var exitErr *ExitError
	require.ErrorAs(t, err, &exitErr)
	require.Equal(t, 3, exitErr.Code)
	require.Empty(t, res.Version)
	require.Contains(t, res.Log, "no space left on device", "stderr is in the log too")
	_, err = os.Stat(filepath.Join(state, "version"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestScriptCurrent(t *testing.T) {
	tgt, state := scriptTarget(t, nil)
	s := newTestScript()

	v, err := s.Current(context.Background(), tgt)
	require.NoError(t, err)
	require.Empty(t, v, "no output means nothing runs")

	require.NoError(t, os.WriteFile(filepath.Join(state, "version"), []byte("  1.2.3  \n\n"), 0o600))
	v, err = s.Current(context.Background(), tgt)
	require.NoError(t, err)
	require.Equal(t, "1.2.3", v, "stderr and earlier stdout lines are ignored, the line is trimmed")

	require.NoError(t, os.WriteFile(filepath.Join(state, "unreachable"), nil, 0o600))
	_, err = s.Current(context.Background(), tgt)
	require.ErrorIs(t, err, ErrUnreachable)
	require.Contains(t, err.Error(), "exited with code 7")
	require.Contains(t, err.Error(), "no route to host")
}

func TestScriptDeployGoesOnWhenCurrentFails(t *testing.T) {
	tgt, state := scriptTarget(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(state, "unreachable"), nil, 0o600))
	res, err := newTestScript().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.NoError(t, err)
	require.Equal(t, "1.0.0", res.Version)
	require.Equal(t, []string{"current", "deploy"}, calls(t, state))
}

func TestScriptRollbackAndRemove(t *testing.T) {
	tgt, state := scriptTarget(t, nil)
	s := newTestScript()
	ctx := context.Background()

	_, err := s.Deploy(ctx, Request{Target: tgt, Release: testRelease("2.0.0")})
	require.NoError(t, err)

	res, err := s.Rollback(ctx, Request{Target: tgt, Release: testRelease("1.9.0"), Previous: "2.0.0", IdempotencyKey: "rb"})
	require.NoError(t, err)
	require.Equal(t, "1.9.0", res.Version)
	env := scriptEnv(t, state, "rollback")
	require.Equal(t, "rollback", env["TRANSIT_ACTION"])
	require.Equal(t, "1.9.0", env["TRANSIT_RELEASE_VERSION"])
	require.Equal(t, "2.0.0", env["TRANSIT_PREVIOUS_VERSION"])
	v, err := s.Current(ctx, tgt)
	require.NoError(t, err)
	require.Equal(t, "1.9.0", v)

	res, err = s.Remove(ctx, Request{Target: tgt, Release: testRelease("1.9.0"), RetainData: true})
	require.NoError(t, err)
	require.Empty(t, res.Version)
	require.Equal(t, "true", scriptEnv(t, state, "remove")["TRANSIT_RETAIN_DATA"])
	require.FileExists(t, filepath.Join(state, "data"), "retain_data keeps the data")
	v, err = s.Current(ctx, tgt)
	require.NoError(t, err)
	require.Empty(t, v)

	_, err = s.Remove(ctx, Request{Target: tgt})
	require.NoError(t, err)
	require.NoFileExists(t, filepath.Join(state, "data"))
}

func TestScriptShellPassesArgs(t *testing.T) {
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		Command: `echo "$TRANSIT_ACTION for $TRANSIT_TARGET: $1 $2 $GREETING" | tr a-z A-Z`,
		Args:    []string{"first", "second"},
		Shell:   true,
		Env:     map[string]string{"GREETING": "hello"},
	})
	v, err := newTestScript().Current(context.Background(), tgt)
	require.NoError(t, err)
	require.Equal(t, "CURRENT FOR WEB-1: FIRST SECOND HELLO", v)
}

func TestScriptWithoutShellDoesNotInterpret(t *testing.T) {
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		Command: "/bin/echo",
		Args:    []string{"$HOME", "; rm -rf /"},
	})
	v, err := newTestScript().Current(context.Background(), tgt)
	require.NoError(t, err)
	require.Equal(t, "$HOME ; rm -rf /", v)
}

func TestScriptOutputTail(t *testing.T) {
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		Command:       `[ "$TRANSIT_ACTION" = current ] && exit 0; i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done; echo "the end" >&2`,
		Shell:         true,
		OutputTailKiB: 1,
	})
	res, err := newTestScript().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.NoError(t, err)
	require.LessOrEqual(t, len(res.Log), 1024)
	require.Greater(t, len(res.Log), 900)
	require.True(t, strings.HasSuffix(res.Log, "line 2999\nthe end\n"), "log ends with the last output: %q", res.Log[len(res.Log)-40:])
	require.NotContains(t, res.Log, "line 1\n")
}

func TestScriptProgress(t *testing.T) {
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		Command: `[ "$TRANSIT_ACTION" = current ] && exit 0; echo "copying files"; sleep 0.4`,
		Shell:   true,
	})
	var p progressRecorder
	_, err := newTestScript().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), Progress: p.record})
	require.NoError(t, err)
	details := p.all()
	require.GreaterOrEqual(t, len(details), 3, "progress every 50ms over 400ms")
	require.Contains(t, details[len(details)-1], "script deploy running for")
	require.Contains(t, details[len(details)-1], "copying files")
}

func TestScriptTimeout(t *testing.T) {
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		Command: `[ "$TRANSIT_ACTION" = current ] && exit 0; echo "waiting for the load balancer"; sleep 30`,
		Shell:   true,
		Timeout: models.Duration(200 * time.Millisecond),
	})
	start := time.Now()
	res, err := newTestScript().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.ErrorIs(t, err, ErrTimeout)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Contains(t, err.Error(), "ended on SIGTERM", "sh and sleep end on SIGTERM, no SIGKILL needed")
	require.Contains(t, err.Error(), "waiting for the load balancer")
	require.Contains(t, res.Log, "waiting for the load balancer")
}

// startStubborn starts a deploy of testdata/stubborn.sh in mode and waits
// until its child runs; it returns the cancel function, the deploy's
// outcome channel and the pids of the script and its child.
func startStubborn(t *testing.T, s *Script, mode string) (context.CancelFunc, <-chan error, int, int) {
	t.Helper()
	pids := t.TempDir()
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		Command: testdataPath(t, "stubborn.sh"),
		Args:    []string{mode},
		Env:     map[string]string{"PID_DIR": pids},
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		_, err := s.Deploy(ctx, Request{Target: tgt, Release: testRelease("1.0.0")})
		done <- err
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(pids, "leader"))
		return err == nil
	}, 5*time.Second, 10*time.Millisecond)
	leader, child := readPid(t, filepath.Join(pids, "leader")), readPid(t, filepath.Join(pids, "child"))
	require.False(t, processGone(leader))
	require.False(t, processGone(child))
	return cancel, done, leader, child
}

func TestScriptCancelKillsGroupThatIgnoresSIGTERM(t *testing.T) {
	const grace = 300 * time.Millisecond
	s := NewScript(ScriptOptions{KillGrace: grace, Logger: quietLogger})
	cancel, done, leader, child := startStubborn(t, s, "ignore")

	cancelled := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deploy did not return after cancel")
	}
	elapsed := time.Since(cancelled)
	t.Logf("script ignoring SIGTERM: deploy returned %s after cancel (grace %s): %v", elapsed, grace, err)

	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "killed with SIGKILL")
	require.GreaterOrEqual(t, elapsed, grace, "SIGKILL only after the grace period")
	require.Less(t, elapsed, grace+3*time.Second)
	require.True(t, processGone(leader), "the script is gone")
	require.Eventually(t, func() bool { return processGone(child) }, 2*time.Second, 10*time.Millisecond, "its child is gone")
}

func TestScriptCancelKillsGrandchildOfAnExitedScript(t *testing.T) {
	// A grace long enough that "the script left, its child still runs" is
	// seen before the SIGKILL, even on a busy machine.
	const grace = 2 * time.Second
	s := NewScript(ScriptOptions{KillGrace: grace, Logger: quietLogger})
	cancel, done, leader, child := startStubborn(t, s, "exit")

	cancelled := time.Now()
	cancel()
	// The script leaves at once; its child ignores SIGTERM.
	require.Eventually(t, func() bool { return processGone(leader) }, grace, 5*time.Millisecond)
	require.False(t, processGone(child), "the child outlives SIGTERM")

	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deploy did not return after cancel")
	}
	elapsed := time.Since(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "killed with SIGKILL")
	require.GreaterOrEqual(t, elapsed, grace)
	require.Eventually(t, func() bool { return processGone(child) }, 2*time.Second, 10*time.Millisecond, "the child is killed with the group")
}

func TestScriptCancelOfPoliteScriptIsQuick(t *testing.T) {
	s := NewScript(ScriptOptions{KillGrace: 5 * time.Second, Logger: quietLogger})
	cancel, done, leader, child := startStubborn(t, s, "polite")

	cancelled := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("deploy did not return after cancel")
	}
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "ended on SIGTERM")
	require.Less(t, time.Since(cancelled), time.Second, "no wait for the grace period")
	require.True(t, processGone(leader))
	require.Eventually(t, func() bool { return processGone(child) }, 2*time.Second, 10*time.Millisecond)
}

func TestScriptLeavesBackgroundProcessOfSuccessfulRun(t *testing.T) {
	pids := t.TempDir()
	tgt := testTarget(t, models.DriverScript, models.ScriptConfig{
		// A daemon that keeps the output pipe open must not hold up the step.
		Command: `sleep 30 & echo $! > "$PID_DIR/daemon"; echo started`,
		Shell:   true,
		Env:     map[string]string{"PID_DIR": pids},
	})
	start := time.Now()
	res, err := newTestScript().Remove(context.Background(), Request{Target: tgt})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 3*time.Second)
	require.Contains(t, res.Log, "started")
	daemon := readPid(t, filepath.Join(pids, "daemon"))
	require.False(t, processGone(daemon), "a process left behind by a successful run is left alone")
	require.NoError(t, killPid(daemon))
}

func TestScriptInvalidConfig(t *testing.T) {
	tgt := testTarget(t, models.DriverScript, map[string]any{"command": "/bin/true", "shel": true})
	_, err := newTestScript().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1")})
	require.ErrorIs(t, err, models.ErrInvalid)
	require.Contains(t, err.Error(), "shel")

	tgt = testTarget(t, models.DriverScript, models.ScriptConfig{Command: "/does/not/exist"})
	_, err = newTestScript().Remove(context.Background(), Request{Target: tgt})
	require.ErrorIs(t, err, os.ErrNotExist)
}
