package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	promql "github.com/prometheus/prometheus/promql/parser"
)

// Driver names: how a target is changed.
const (
	DriverScript    = "script"
	DriverHTTP      = "http"
	DriverSimulated = "simulated"
)

// Drivers lists the known driver names.
var Drivers = []string{DriverHTTP, DriverScript, DriverSimulated}

// Check and probe types.
const (
	CheckHTTP      = "http"
	CheckScript    = "script"
	CheckTCP       = "tcp"
	CheckSimulated = "simulated"

	ProbeHTTP       = "http"
	ProbePrometheus = "prometheus"
	ProbeSimulated  = "simulated"
)

// Driver defaults that bound how long one change of a target may take.
const (
	// DefaultScriptTimeout bounds one run of a target's command.
	DefaultScriptTimeout = 10 * time.Minute
	// DefaultKillGrace is the time a process group has between SIGTERM and
	// SIGKILL.
	DefaultKillGrace = 5 * time.Second
	// DefaultHTTPTimeout bounds one request of the http driver.
	DefaultHTTPTimeout = 30 * time.Second
	// DefaultHTTPRetries is how many times a request is retried after a 5xx
	// or a connection error.
	DefaultHTTPRetries = 3
	// MaxHTTPBackoff is the longest pause between two tries of a request.
	MaxHTTPBackoff = 30 * time.Second
	// DefaultStatusTimeout bounds the polling of a webhook's status URL.
	DefaultStatusTimeout = 30 * time.Minute
)

// StepTimeout is the longest one change of a target with this driver and
// config may take: the workflow gives the step that long (and a margin), so
// that a slow but healthy change is never cut off and run again. An
// unreadable config gives the script default; the driver refuses it anyway.
func StepTimeout(driver string, raw json.RawMessage) time.Duration {
	switch driver {
	case DriverScript:
		var c ScriptConfig
		_ = DecodeStrict(raw, &c)
		t := c.Timeout.D()
		if t <= 0 {
			t = DefaultScriptTimeout
		}
		// "current" first, then the change itself, each with its grace.
		return 2 * (t + DefaultKillGrace)
	case DriverHTTP:
		var c HTTPConfig
		_ = DecodeStrict(raw, &c)
		t, r := c.Timeout.D(), c.Retries
		if t <= 0 {
			t = DefaultHTTPTimeout
		}
		if r <= 0 {
			r = DefaultHTTPRetries
		}
		total := t + time.Duration(r+1)*t + time.Duration(r)*MaxHTTPBackoff
		if c.StatusURL != "" {
			st := c.StatusTimeout.D()
			if st <= 0 {
				st = DefaultStatusTimeout
			}
			total += st
		}
		return total
	case DriverSimulated:
		var c SimulatedConfig
		_ = DecodeStrict(raw, &c)
		return c.LatencyMax.D()
	}
	return 2 * (DefaultScriptTimeout + DefaultKillGrace)
}

// ScriptConfig configures the script driver. Only an admin sets it, on the
// target; a deployment request never carries a command.
type ScriptConfig struct {
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	Shell   bool              `json:"shell,omitempty"`
	Workdir string            `json:"workdir,omitempty"`
	Timeout Duration          `json:"timeout,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// OutputTailKiB is how much of the end of the output goes into events.
	OutputTailKiB int `json:"output_tail_kib,omitempty"`
}

// SecretRef names a secret without holding it: "env:NAME" or "file:/path".
type SecretRef string

// Validate checks the reference's form.
func (s SecretRef) Validate() error {
	str := string(s)
	switch {
	case strings.HasPrefix(str, "env:") && envNameRe.MatchString(strings.TrimPrefix(str, "env:")):
		return nil
	case strings.HasPrefix(str, "file:") && filepath.IsAbs(strings.TrimPrefix(str, "file:")):
		return nil
	}
	return fmt.Errorf("%q must reference a secret as env:VARIABLE or file:/absolute/path, never hold its value", str)
}

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// HTTPConfig configures the http (webhook) driver.
type HTTPConfig struct {
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// SecretHeaders are headers whose values are secrets, by reference.
	SecretHeaders map[string]SecretRef `json:"secret_headers,omitempty"`
	// HMACSecret, when set, signs the body: X-Transit-Signature: sha256=<hex>.
	HMACSecret SecretRef `json:"hmac_secret,omitempty"`
	// StatusURL, when set, is polled until it reports done or failed.
	StatusURL    string   `json:"status_url,omitempty"`
	PollInterval Duration `json:"poll_interval,omitempty"`
	// StatusTimeout bounds how long the status URL is polled (default 30m).
	StatusTimeout Duration `json:"status_timeout,omitempty"`
	Timeout       Duration `json:"timeout,omitempty"`
	Retries       int      `json:"retries,omitempty"`
}

// SimulatedConfig configures the simulated driver: seeded latency and
// failure, for demos and benchmarks.
type SimulatedConfig struct {
	LatencyMin  Duration `json:"latency_min,omitempty"`
	LatencyMax  Duration `json:"latency_max,omitempty"`
	FailureRate float64  `json:"failure_rate,omitempty"`
	Seed        int64    `json:"seed,omitempty"`
	// Unreachable makes Current fail, as an unreachable host would.
	Unreachable bool `json:"unreachable,omitempty"`
}

// HTTPCheckConfig: GET URL (a template over the target), expect a status,
// and a body that contains the version or whose JSON path equals it.
type HTTPCheckConfig struct {
	URL            string `json:"url"`
	ExpectStatus   int    `json:"expect_status,omitempty"`
	BodyHasVersion bool   `json:"body_contains_version,omitempty"`
	JSONPath       string `json:"json_path,omitempty"`
}

// ScriptCheckConfig passes when the command exits 0.
type ScriptCheckConfig struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
}

// TCPCheckConfig passes when a connection to Address succeeds.
type TCPCheckConfig struct {
	Address string `json:"address"`
}

// SimulatedCheckConfig fails with FailureRate, or always for FailVersions.
type SimulatedCheckConfig struct {
	FailureRate  float64  `json:"failure_rate,omitempty"`
	FailVersions []string `json:"fail_versions,omitempty"`
	Seed         int64    `json:"seed,omitempty"`
}

// HTTPProbeConfig: the ratio of successful GETs over the window.
type HTTPProbeConfig struct {
	URL          string `json:"url"`
	ExpectStatus int    `json:"expect_status,omitempty"`
	Requests     int    `json:"requests,omitempty"`
}

// PrometheusProbeConfig: an instant PromQL query compared with the threshold.
type PrometheusProbeConfig struct {
	URL   string `json:"url"`
	Query string `json:"query"`
	// Comparison is how the result must relate to the threshold to pass.
	Comparison string `json:"comparison"`
}

// SimulatedProbeConfig fails with FailureRate.
type SimulatedProbeConfig struct {
	FailureRate float64 `json:"failure_rate,omitempty"`
	Seed        int64   `json:"seed,omitempty"`
}

// DecodeStrict decodes raw into out, refusing unknown fields. An empty raw
// decodes as {}.
func DecodeStrict(raw json.RawMessage, out any) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return Invalid(ute.Field, "must be a %s", ute.Type.String())
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return Invalid(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a known field")
		}
		return Invalid("", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// ValidateDriverConfig checks a target's driver name (recorded in parent
// under "driver") and returns the problems with its config.
func ValidateDriverConfig(driver string, raw json.RawMessage, parent *ValidationError) error {
	v := &ValidationError{}
	switch driver {
	case DriverScript:
		var c ScriptConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		c.validate(v)
	case DriverHTTP:
		var c HTTPConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		c.validate(v)
	case DriverSimulated:
		var c SimulatedConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		c.validate(v)
	case "":
		parent.Add("driver", "is required: one of %s", strings.Join(Drivers, ", "))
	default:
		parent.Add("driver", "%q is not a driver: use one of %s", driver, strings.Join(Drivers, ", "))
	}
	return v.Err()
}

func (c *ScriptConfig) validate(v *ValidationError) {
	if strings.TrimSpace(c.Command) == "" {
		v.Add("command", "is required")
	} else if !c.Shell && !filepath.IsAbs(c.Command) {
		v.Add("command", "%q must be an absolute path (or set shell: true to run it through /bin/sh)", c.Command)
	}
	if c.Workdir != "" && !filepath.IsAbs(c.Workdir) {
		v.Add("workdir", "%q must be an absolute path", c.Workdir)
	}
	if c.Timeout < 0 || c.Timeout.D() > 24*time.Hour {
		v.Add("timeout", "must be between 0 and 24h")
	}
	for _, k := range SortedKeys(c.Env) {
		if !envNameRe.MatchString(k) || strings.HasPrefix(k, "TRANSIT_") {
			v.Add("env", "%q must be a variable name that does not start with TRANSIT_", k)
		}
	}
	if c.OutputTailKiB < 0 || c.OutputTailKiB > 1024 {
		v.Add("output_tail_kib", "must be between 0 and 1024")
	}
}

func (c *HTTPConfig) validate(v *ValidationError) {
	validateURL(v, "url", c.URL, false)
	switch strings.ToUpper(c.Method) {
	case "", "POST", "PUT", "PATCH":
	default:
		v.Add("method", "%q must be POST, PUT or PATCH", c.Method)
	}
	for _, k := range SortedKeys(c.SecretHeaders) {
		if err := c.SecretHeaders[k].Validate(); err != nil {
			v.Add("secret_headers."+k, "%s", err.Error())
		}
	}
	for _, k := range SortedKeys(c.Headers) {
		if strings.EqualFold(k, "Authorization") {
			v.Add("headers."+k, "a credential must not be stored in plain headers: use secret_headers with env: or file:")
		}
	}
	if c.HMACSecret != "" {
		if err := c.HMACSecret.Validate(); err != nil {
			v.Add("hmac_secret", "%s", err.Error())
		}
	}
	if c.StatusURL != "" {
		validateURL(v, "status_url", c.StatusURL, true)
	}
	if c.PollInterval < 0 {
		v.Add("poll_interval", "must be positive")
	}
	if c.Timeout < 0 || c.Timeout.D() > 24*time.Hour {
		v.Add("timeout", "must be between 0 and 24h")
	}
	if c.StatusTimeout < 0 || c.StatusTimeout.D() > 24*time.Hour {
		v.Add("status_timeout", "must be between 0 and 24h")
	}
	if c.StatusTimeout != 0 && c.StatusURL == "" {
		v.Add("status_timeout", "only applies with a status_url")
	}
	if c.Retries < 0 || c.Retries > 20 {
		v.Add("retries", "must be between 0 and 20")
	}
}

func (c *SimulatedConfig) validate(v *ValidationError) {
	if c.LatencyMin < 0 || c.LatencyMax < 0 {
		v.Add("latency_min", "latencies must not be negative")
	}
	if c.LatencyMax != 0 && c.LatencyMax < c.LatencyMin {
		v.Add("latency_max", "must not be less than latency_min")
	}
	if c.LatencyMax.D() > time.Hour {
		v.Add("latency_max", "must be at most 1h")
	}
	if c.FailureRate < 0 || c.FailureRate > 1 {
		v.Add("failure_rate", "must be between 0 and 1")
	}
}

// ValidateCheckConfig checks a validation check's type and config.
func ValidateCheckConfig(kind string, raw json.RawMessage) error {
	v := &ValidationError{}
	switch kind {
	case CheckHTTP:
		var c HTTPCheckConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		validateURL(v, "url", c.URL, true)
		if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
			v.Add("expect_status", "must be an HTTP status between 100 and 599")
		}
	case CheckScript:
		var c ScriptCheckConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		if !filepath.IsAbs(c.Command) {
			v.Add("command", "%q must be an absolute path", c.Command)
		}
	case CheckTCP:
		var c TCPCheckConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		if !strings.Contains(c.Address, ":") {
			v.Add("address", "%q must be host:port", c.Address)
		}
	case CheckSimulated:
		var c SimulatedCheckConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		if c.FailureRate < 0 || c.FailureRate > 1 {
			v.Add("failure_rate", "must be between 0 and 1")
		}
	default:
		return Invalid("type", "%q must be one of http, script, tcp, simulated", kind)
	}
	return v.Err()
}

// ValidateProbeConfig checks an observation probe's type and config.
func ValidateProbeConfig(kind string, raw json.RawMessage) error {
	v := &ValidationError{}
	switch kind {
	case ProbeHTTP:
		var c HTTPProbeConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		validateURL(v, "url", c.URL, true)
		if c.Requests < 0 || c.Requests > 1000 {
			v.Add("requests", "must be between 1 and 1000")
		}
	case ProbePrometheus:
		var c PrometheusProbeConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		validateURL(v, "url", c.URL, false)
		if strings.TrimSpace(c.Query) == "" {
			v.Add("query", "is required: a PromQL expression")
		} else if err := checkPromQL(c.Query); err != nil {
			v.Add("query", "is not valid PromQL: %v", err)
		}
		switch c.Comparison {
		case "<", "<=", ">", ">=":
		default:
			v.Add("comparison", "%q must be one of <, <=, >, >=", c.Comparison)
		}
	case ProbeSimulated:
		var c SimulatedProbeConfig
		if err := DecodeStrict(raw, &c); err != nil {
			return err
		}
		if c.FailureRate < 0 || c.FailureRate > 1 {
			v.Add("failure_rate", "must be between 0 and 1")
		}
	default:
		return Invalid("type", "%q must be one of http, prometheus, simulated", kind)
	}
	return v.Err()
}

// validateURL checks an http(s) URL; templated URLs ({{.Target.Name}}) are
// parsed as templates first.
func validateURL(v *ValidationError, field, raw string, templated bool) {
	if raw == "" {
		v.Add(field, "is required")
		return
	}
	check := raw
	if templated && strings.Contains(raw, "{{") {
		if _, err := template.New(field).Option("missingkey=error").Parse(raw); err != nil {
			v.Add(field, "is not a valid template: %v", err)
			return
		}
		check = templateMarkRe.ReplaceAllString(raw, "1") // a stand-in that parses as host or port
	}
	u, err := url.Parse(check)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.Add(field, "%q must be an absolute http:// or https:// URL", raw)
	}
}

var templateMarkRe = regexp.MustCompile(`\{\{[^}]*\}\}`)

// checkPromQL parses a probe's query with Prometheus's own parser, template
// actions ({{.Target.Name}}) standing in as a plain word.
func checkPromQL(query string) error {
	if strings.Contains(query, "{{") {
		if _, err := template.New("query").Option("missingkey=error").Parse(query); err != nil {
			return fmt.Errorf("the template does not parse: %w", err)
		}
		query = templateMarkRe.ReplaceAllString(query, "x")
	}
	_, err := promql.NewParser(promql.Options{}).ParseExpr(query)
	return err
}

// SortedKeys returns the keys of m in order, for deterministic iteration.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
