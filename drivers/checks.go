package drivers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transit-hq/transit/models"
)

// DefaultCheckPause is the pause between two tries of a validation check.
const DefaultCheckPause = 2 * time.Second

// CheckResult is the outcome of one validation check on one target.
type CheckResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Tries is the number of tries made (0 when the config is invalid).
	Tries int `json:"tries"`
	// Message says why the last try failed, or which try passed.
	Message string `json:"message"`
}

// RunCheck runs a validation check on a target with the default Checker.
func RunCheck(ctx context.Context, spec models.CheckSpec, t Target, r Release) CheckResult {
	return Checker{}.Run(ctx, spec, t, r)
}

// Checker runs validation checks; the zero value is usable.
type Checker struct {
	// Pause is the pause between tries (DefaultCheckPause when zero).
	Pause time.Duration
	// Client sends the GETs of http checks (a new http.Client when nil).
	Client *http.Client
	// KillGrace is the time a script check that times out has between
	// SIGTERM and SIGKILL (DefaultKillGrace when zero).
	KillGrace time.Duration
}

// checkTry is one try of a check, bounded by timeout.
type checkTry func(ctx context.Context, timeout time.Duration, try int) error

// Run runs spec on target t after release r was put on it: up to
// spec.Tries tries (models.DefaultCheckTries when zero), each bounded by
// spec.Timeout (models.DefaultCheckTimeout when zero), until one passes.
//
// Types: http (GET url, a template over TemplateData; the status must be
// expect_status, 200 by default; with body_contains_version the body must
// contain the version; with json_path, "a.b.0.c" into the JSON body must
// equal it), script (command exits 0; it sees TRANSIT_ACTION=check,
// TRANSIT_CHECK and the other TRANSIT_* variables), tcp (a connection to
// address, a template, succeeds) and simulated (fails for fail_versions,
// else with failure_rate, drawn per try from seed, target, version and try).
func (c Checker) Run(ctx context.Context, spec models.CheckSpec, t Target, r Release) CheckResult {
	res := CheckResult{Name: spec.Name}
	tries := spec.Tries
	if tries <= 0 {
		tries = models.DefaultCheckTries
	}
	timeout := spec.Timeout.D()
	if timeout <= 0 {
		timeout = models.DefaultCheckTimeout
	}
	pause := c.Pause
	if pause <= 0 {
		pause = DefaultCheckPause
	}
	try, err := c.prepare(spec, t, r)
	if err != nil {
		res.Message = fmt.Sprintf("invalid %s check: %v", spec.Type, err)
		return res
	}
	for n := 1; n <= tries; n++ {
		res.Tries = n
		err := try(ctx, timeout, n)
		if err == nil {
			res.Passed = true
			res.Message = fmt.Sprintf("passed on try %d of %d", n, tries)
			return res
		}
		res.Message = fmt.Sprintf("try %d of %d failed: %v", n, tries, err)
		if ctx.Err() != nil {
			res.Message = fmt.Sprintf("cancelled on try %d of %d: %v", n, tries, err)
			return res
		}
		if n < tries {
			select {
			case <-ctx.Done():
				res.Message += fmt.Sprintf("; cancelled before try %d: %v", n+1, context.Cause(ctx))
				return res
			case <-time.After(pause):
			}
		}
	}
	return res
}

func (c Checker) prepare(spec models.CheckSpec, t Target, r Release) (checkTry, error) {
	req := Request{Target: t, Release: r}
	data := templateDataFor(ActionCheck, req)
	switch spec.Type {
	case models.CheckHTTP:
		var cfg models.HTTPCheckConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return nil, err
		}
		url, err := render("url", cfg.URL, data)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, timeout time.Duration, _ int) error {
			return c.httpCheck(ctx, timeout, url, cfg, r.Version)
		}, nil
	case models.CheckScript:
		var cfg models.ScriptCheckConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return nil, err
		}
		if cfg.Command == "" {
			return nil, errors.New("command is required")
		}
		env := append(os.Environ(), transitEnv(ActionCheck, req)...)
		env = append(env, "TRANSIT_CHECK="+spec.Name)
		return func(ctx context.Context, timeout time.Duration, _ int) error {
			_, err := runCommand(ctx, command{
				Label:     "check " + spec.Name,
				Path:      cfg.Command,
				Args:      cfg.Args,
				Env:       env,
				Timeout:   timeout,
				Grace:     c.KillGrace,
				TailBytes: 4096,
			})
			return err
		}, nil
	case models.CheckTCP:
		var cfg models.TCPCheckConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return nil, err
		}
		addr, err := render("address", cfg.Address, data)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, timeout time.Duration, _ int) error {
			d := net.Dialer{Timeout: timeout}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("connect to %s: %w", addr, err)
			}
			return conn.Close()
		}, nil
	case models.CheckSimulated:
		var cfg models.SimulatedCheckConfig
		if err := models.DecodeStrict(spec.Config, &cfg); err != nil {
			return nil, err
		}
		return func(_ context.Context, _ time.Duration, n int) error {
			if slices.Contains(cfg.FailVersions, r.Version) {
				return fmt.Errorf("%w: version %s is set to fail", ErrSimulatedFailure, r.Version)
			}
			rng := seededRand(cfg.Seed, ActionCheck, spec.Name, simulatedKey(t), r.Version, strconv.Itoa(n))
			if rng.Float64() < cfg.FailureRate {
				return fmt.Errorf("%w: failure rate %.2f, seed %d", ErrSimulatedFailure, cfg.FailureRate, cfg.Seed)
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("unknown check type %q: use http, script, tcp or simulated", spec.Type)
}

func (c Checker) httpCheck(ctx context.Context, timeout time.Duration, url string, cfg models.HTTPCheckConfig, version string) error {
	status, body, err := httpGet(ctx, c.Client, url, timeout)
	if err != nil {
		return err
	}
	want := cfg.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	if status != want {
		return fmt.Errorf("GET %s answered %d, want %d: %s", url, status, want, snippet(body))
	}
	if cfg.BodyHasVersion && !bytes.Contains(body, []byte(version)) {
		return fmt.Errorf("GET %s: the body does not contain version %s: %s", url, version, snippet(body))
	}
	if cfg.JSONPath != "" {
		got, err := jsonPathValue(body, cfg.JSONPath)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		if got != version {
			return fmt.Errorf("GET %s: %s is %q, want %q", url, cfg.JSONPath, got, version)
		}
	}
	return nil
}

// httpGet GETs url within timeout and returns the status and (the first
// MiB of) the body.
func httpGet(ctx context.Context, client *http.Client, url string, timeout time.Duration) (int, []byte, error) {
	if client == nil {
		client = Client
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "transit")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, nil, fmt.Errorf("%w after %s: %w", ErrTimeout, timeout, err)
		}
		return 0, nil, err // names the method and URL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("GET %s: read the body: %w", url, err)
	}
	return resp.StatusCode, body, nil
}

// jsonPathValue returns the value at a dot path ("a.b.0.c", optionally
// starting with "$.") in a JSON document, as text: a string as it is, a
// number as written, anything else as JSON.
func jsonPathValue(body []byte, path string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("the body is not JSON (%v): %s", err, snippet(body))
	}
	p := strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	if p != "" {
		for i, seg := range strings.Split(p, ".") {
			at := strings.Join(strings.Split(p, ".")[:i+1], ".")
			switch node := v.(type) {
			case map[string]any:
				next, ok := node[seg]
				if !ok {
					return "", fmt.Errorf("the body has no %s", at)
				}
				v = next
			case []any:
				idx, err := strconv.Atoi(seg)
				if err != nil || idx < 0 || idx >= len(node) {
					return "", fmt.Errorf("the body has no %s (an array of %d)", at, len(node))
				}
				v = node[idx]
			default:
				return "", fmt.Errorf("the body has no %s: its parent is not an object", at)
			}
		}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case nil:
		return "", nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("encode %s: %w", path, err)
		}
		return string(b), nil
	}
}
