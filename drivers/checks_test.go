package drivers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

var testChecker = Checker{Pause: 5 * time.Millisecond, KillGrace: 100 * time.Millisecond}

func checkSpec(t *testing.T, kind string, cfg any, tries int) models.CheckSpec {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	return models.CheckSpec{Name: kind + "-check", Type: kind, Config: raw, Timeout: models.Duration(time.Second), Tries: tries}
}

// versionServer answers GET /health/<target> with its status and body; it
// counts the requests and fails the first failFirst of them with 503.
type versionServer struct {
	*httptest.Server
	requests  atomic.Int32
	failFirst int32
	body      string
	status    int
}

func newVersionServer(t *testing.T, body string) *versionServer {
	vs := &versionServer{body: body, status: http.StatusOK}
	vs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := vs.requests.Add(1)
		if r.URL.Path != "/health/web-1" || r.URL.Query().Get("zone") != "eu-1" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusNotFound)
			return
		}
		if n <= vs.failFirst {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(vs.status)
		fmt.Fprint(w, vs.body)
	}))
	t.Cleanup(vs.Close)
	return vs
}

func (vs *versionServer) url() string {
	return vs.URL + `/health/{{.Target.Name}}?zone={{index .Target.Labels "zone"}}`
}

func TestHTTPCheck(t *testing.T) {
	vs := newVersionServer(t, `{"app":{"build":{"version":"1.4.0"}},"items":[{"v":"x"},{"v":"1.4.0"}],"n":2}`)
	tgt := testTarget(t, models.DriverSimulated, nil)

	tests := []struct {
		name   string
		cfg    models.HTTPCheckConfig
		pass   bool
		reason string
	}{
		{"status only", models.HTTPCheckConfig{URL: vs.url()}, true, ""},
		{"body has version", models.HTTPCheckConfig{URL: vs.url(), BodyHasVersion: true}, true, ""},
		{"json path", models.HTTPCheckConfig{URL: vs.url(), JSONPath: "app.build.version"}, true, ""},
		{"json path with $ and index", models.HTTPCheckConfig{URL: vs.url(), JSONPath: "$.items.1.v"}, true, ""},
		{"json path other value", models.HTTPCheckConfig{URL: vs.url(), JSONPath: "items.0.v"}, false, `items.0.v is "x", want "1.4.0"`},
		{"json path missing", models.HTTPCheckConfig{URL: vs.url(), JSONPath: "app.commit"}, false, "the body has no app.commit"},
		{"json path through a number", models.HTTPCheckConfig{URL: vs.url(), JSONPath: "n.x"}, false, "its parent is not an object"},
		{"other status expected", models.HTTPCheckConfig{URL: vs.url(), ExpectStatus: http.StatusNoContent}, false, "answered 200, want 204"},
		{"wrong path", models.HTTPCheckConfig{URL: vs.URL + "/nope"}, false, "answered 404, want 200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := testChecker.Run(context.Background(), checkSpec(t, models.CheckHTTP, tc.cfg, 2), tgt, testRelease("1.4.0"))
			require.Equal(t, "http-check", res.Name)
			require.Equal(t, tc.pass, res.Passed, res.Message)
			if tc.pass {
				require.Equal(t, 1, res.Tries)
				require.Equal(t, "passed on try 1 of 2", res.Message)
			} else {
				require.Equal(t, 2, res.Tries)
				require.Contains(t, res.Message, "try 2 of 2 failed")
				require.Contains(t, res.Message, tc.reason)
			}
		})
	}
}

func TestHTTPCheckBodyLacksVersion(t *testing.T) {
	vs := newVersionServer(t, "running 1.3.9")
	res := testChecker.Run(context.Background(),
		checkSpec(t, models.CheckHTTP, models.HTTPCheckConfig{URL: vs.url(), BodyHasVersion: true}, 3),
		testTarget(t, models.DriverSimulated, nil), testRelease("1.4.0"))
	require.False(t, res.Passed)
	require.Equal(t, 3, res.Tries)
	require.Equal(t, int32(3), vs.requests.Load())
	require.Contains(t, res.Message, "does not contain version 1.4.0: running 1.3.9")
}

func TestHTTPCheckPassesOnLaterTry(t *testing.T) {
	vs := newVersionServer(t, "1.4.0")
	vs.failFirst = 2
	res := testChecker.Run(context.Background(),
		checkSpec(t, models.CheckHTTP, models.HTTPCheckConfig{URL: vs.url(), BodyHasVersion: true}, 5),
		testTarget(t, models.DriverSimulated, nil), testRelease("1.4.0"))
	require.True(t, res.Passed, res.Message)
	require.Equal(t, 3, res.Tries)
	require.Equal(t, "passed on try 3 of 5", res.Message)
}

func TestHTTPCheckTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	spec := checkSpec(t, models.CheckHTTP, models.HTTPCheckConfig{URL: srv.URL}, 2)
	spec.Timeout = models.Duration(50 * time.Millisecond)
	start := time.Now()
	res := testChecker.Run(context.Background(), spec, testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Equal(t, 2, res.Tries)
	require.Contains(t, res.Message, "timed out after 50ms")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestScriptCheck(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	require.NoError(t, os.WriteFile(script, []byte(`#!/bin/sh
echo "try" >> "$1/tries"
echo "checking $TRANSIT_TARGET for $TRANSIT_RELEASE_VERSION ($TRANSIT_ACTION $TRANSIT_CHECK)"
[ "$TRANSIT_RELEASE_VERSION" = "$2" ] || { echo "wrong version" >&2; exit 2; }
`), 0o755))
	tgt := testTarget(t, models.DriverSimulated, nil)

	res := testChecker.Run(context.Background(),
		checkSpec(t, models.CheckScript, models.ScriptCheckConfig{Command: script, Args: []string{dir, "1.4.0"}}, 3),
		tgt, testRelease("1.4.0"))
	require.True(t, res.Passed, res.Message)
	require.Equal(t, 1, res.Tries)

	require.NoError(t, os.Remove(filepath.Join(dir, "tries")))
	res = testChecker.Run(context.Background(),
		checkSpec(t, models.CheckScript, models.ScriptCheckConfig{Command: script, Args: []string{dir, "9.9.9"}}, 3),
		tgt, testRelease("1.4.0"))
	require.False(t, res.Passed)
	require.Equal(t, 3, res.Tries)
	require.Contains(t, res.Message, "check script-check exited with code 2")
	require.Contains(t, res.Message, "checking web-1 for 1.4.0 (check script-check)")
	require.Contains(t, res.Message, "wrong version")
	tries, err := os.ReadFile(filepath.Join(dir, "tries"))
	require.NoError(t, err)
	require.Equal(t, "try\ntry\ntry\n", string(tries), "the script ran once per try")
}

func TestScriptCheckTimeoutKillsScript(t *testing.T) {
	spec := checkSpec(t, models.CheckScript, models.ScriptCheckConfig{Command: "/bin/sleep", Args: []string{"30"}}, 1)
	spec.Timeout = models.Duration(100 * time.Millisecond)
	start := time.Now()
	res := testChecker.Run(context.Background(), spec, testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Contains(t, res.Message, "timed out after 100ms")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	tgt := testTarget(t, models.DriverSimulated, nil)
	tgt.Labels["host"] = "127.0.0.1"

	res := testChecker.Run(context.Background(),
		checkSpec(t, models.CheckTCP, models.TCPCheckConfig{Address: `{{index .Target.Labels "host"}}:` + port}, 3),
		tgt, testRelease("1"))
	require.True(t, res.Passed, res.Message)
	require.Equal(t, 1, res.Tries)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := closed.Addr().String()
	require.NoError(t, closed.Close())
	res = testChecker.Run(context.Background(), checkSpec(t, models.CheckTCP, models.TCPCheckConfig{Address: addr}, 2), tgt, testRelease("1"))
	require.False(t, res.Passed)
	require.Equal(t, 2, res.Tries)
	require.Contains(t, res.Message, "connect to "+addr)
	require.Contains(t, res.Message, "refused")
}

func TestSimulatedCheck(t *testing.T) {
	tgt := testTarget(t, models.DriverSimulated, nil)

	res := testChecker.Run(context.Background(), checkSpec(t, models.CheckSimulated, models.SimulatedCheckConfig{}, 3), tgt, testRelease("1.0.0"))
	require.True(t, res.Passed)
	require.Equal(t, 1, res.Tries)

	res = testChecker.Run(context.Background(),
		checkSpec(t, models.CheckSimulated, models.SimulatedCheckConfig{FailVersions: []string{"1.0.0"}}, 4), tgt, testRelease("1.0.0"))
	require.False(t, res.Passed)
	require.Equal(t, 4, res.Tries)
	require.Contains(t, res.Message, "version 1.0.0 is set to fail")

	res = testChecker.Run(context.Background(), checkSpec(t, models.CheckSimulated, models.SimulatedCheckConfig{FailureRate: 1}, 2), tgt, testRelease("1.0.0"))
	require.False(t, res.Passed)
	require.Equal(t, 2, res.Tries)
}

func TestSimulatedCheckTriesAreSeeded(t *testing.T) {
	// With a failure rate of one half, the tries needed differ between
	// targets but are the same for the same seed.
	spec := checkSpec(t, models.CheckSimulated, models.SimulatedCheckConfig{FailureRate: 0.5, Seed: 11}, 10)
	triesOf := func() []int {
		var out []int
		for i := range 30 {
			tgt := testTarget(t, models.DriverSimulated, nil)
			tgt.ID = fmt.Sprint("tgt-", i)
			res := testChecker.Run(context.Background(), spec, tgt, testRelease("1.0.0"))
			out = append(out, res.Tries)
		}
		return out
	}
	first := triesOf()
	require.Equal(t, first, triesOf())
	seen := map[int]bool{}
	for _, n := range first {
		seen[n] = true
	}
	require.True(t, seen[1] && seen[2], "some targets pass at once, some on a retry: %v", first)
}

func TestCheckInvalidConfig(t *testing.T) {
	spec := models.CheckSpec{Name: "bad", Type: models.CheckHTTP, Config: json.RawMessage(`{"url":"http://x","expect":200}`), Tries: 3}
	res := testChecker.Run(context.Background(), spec, testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Zero(t, res.Tries)
	require.Contains(t, res.Message, "invalid http check")
	require.Contains(t, res.Message, "expect")

	spec = models.CheckSpec{Name: "bad", Type: models.CheckHTTP, Config: json.RawMessage(`{"url":"http://x/{{.Nope}}"}`)}
	res = testChecker.Run(context.Background(), spec, testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Contains(t, res.Message, "Nope")

	res = RunCheck(context.Background(), models.CheckSpec{Name: "x", Type: "ping"}, Target{}, Release{})
	require.False(t, res.Passed)
	require.Contains(t, res.Message, `unknown check type "ping"`)
}

func TestCheckStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	slow := Checker{Pause: 10 * time.Second}
	start := time.Now()
	res := slow.Run(ctx, checkSpec(t, models.CheckSimulated, models.SimulatedCheckConfig{FailureRate: 1}, 5), testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.False(t, res.Passed)
	require.Equal(t, 1, res.Tries)
	require.Contains(t, res.Message, "cancelled before try 2")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestRunCheckUsesDefaults(t *testing.T) {
	vs := newVersionServer(t, "ok")
	spec := checkSpec(t, models.CheckHTTP, models.HTTPCheckConfig{URL: vs.url()}, 0)
	spec.Timeout = 0
	res := RunCheck(context.Background(), spec, testTarget(t, models.DriverSimulated, nil), testRelease("1"))
	require.True(t, res.Passed, res.Message)
	require.Equal(t, "passed on try 1 of 3", res.Message, "models.DefaultCheckTries when tries is 0")
}

// A wave's requests to one host reuse their connections: the second wave
// of 40 at once opens none (net/http's default keeps 2 per host, and the
// second wave would open 38).
func TestRequestsToOneHostReuseConnections(t *testing.T) {
	var mu sync.Mutex
	opened := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // long enough that the wave's requests overlap
		fmt.Fprint(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	wave := func() int {
		mu.Lock()
		before := opened
		mu.Unlock()
		var wg sync.WaitGroup
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, body, err := httpGet(context.Background(), nil, srv.URL, 5*time.Second)
				assert.NoError(t, err)
				assert.Equal(t, 200, status)
				assert.Equal(t, "ok", string(body))
			}()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return opened - before
	}
	first := wave()
	require.Greater(t, first, 2, "the first wave's requests overlap")
	require.Zero(t, wave(), "the second wave reuses the first's %d connections", first)
}
