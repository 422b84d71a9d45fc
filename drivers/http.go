package drivers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/transit-hq/transit/models"
)

// HTTP driver defaults and protocol names.
const (
	// DefaultHTTPTimeout bounds one request of the http driver.
	DefaultHTTPTimeout = models.DefaultHTTPTimeout
	// DefaultHTTPRetries is how many times a request is retried after a 5xx
	// or a connection error.
	DefaultHTTPRetries = models.DefaultHTTPRetries
	// DefaultPollInterval is the pause between two status polls.
	DefaultPollInterval = 2 * time.Second
	// DefaultHTTPBackoff is the pause before the first retry; it doubles
	// after each retry, up to maxHTTPBackoff.
	DefaultHTTPBackoff = time.Second

	// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" when
	// the target's config has an hmac_secret.
	SignatureHeader = "X-Transit-Signature"
	// IdempotencyKeyHeader carries Request.IdempotencyKey, the same for
	// every retry of one step.
	IdempotencyKeyHeader = "Idempotency-Key"

	// WebhookSucceeded, WebhookFailed and WebhookRunning are the values of
	// WebhookStatus.Status.
	WebhookSucceeded = "succeeded"
	WebhookFailed    = "failed"
	WebhookRunning   = "running"
)

const (
	maxHTTPBackoff  = models.MaxHTTPBackoff
	maxResponseBody = 1 << 20
	redacted        = "[redacted]"
)

// WebhookPayload is the JSON body the http driver sends.
type WebhookPayload struct {
	Action          string            `json:"action"`
	Application     string            `json:"application"`
	Environment     string            `json:"environment"`
	Target          string            `json:"target"`
	ReleaseVersion  string            `json:"release_version"`
	PreviousVersion string            `json:"previous_version"`
	Artifacts       []models.Artifact `json:"artifacts"`
	IdempotencyKey  string            `json:"idempotency_key"`
	RetainData      bool              `json:"retain_data"`
}

// WebhookStatus is what the webhook and its status URL may answer. All
// fields are optional in the webhook's answer; a status URL must set Status.
type WebhookStatus struct {
	// Status is succeeded, failed or running (anything else counts as running).
	Status string `json:"status,omitempty"`
	// Version is what runs on the target now.
	Version string `json:"version,omitempty"`
	// Message explains a failure or the progress.
	Message string `json:"message,omitempty"`
}

// Sign returns the value of SignatureHeader for body: "sha256=" and the hex
// HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// HTTPOptions tune the http driver; the zero value is usable.
type HTTPOptions struct {
	// Client sends the requests (drivers.Client when nil); the timeout
	// of each request comes from the target's config.
	Client *http.Client
	// Backoff is the pause before the first retry, doubled after each
	// (DefaultHTTPBackoff when zero).
	Backoff time.Duration
	// Logger gets a line per request (slog.Default() when nil).
	Logger *slog.Logger
}

// HTTP changes a target by calling its webhook (models.HTTPConfig): it sends
// a WebhookPayload with the target's headers, its secret headers, an
// Idempotency-Key header and, with an hmac_secret, an X-Transit-Signature.
// 5xx answers and connection errors are retried with backoff; any other
// non-2xx answer fails at once. With a status_url, the driver then polls it
// until it reports succeeded or failed.
//
// Deploy first asks for the current version (action "current", one try)
// and leaves a target that already runs the release alone.
//
// Secrets are read at each call (env:NAME or file:/path) and never appear
// in errors, logs or Result.Log: any echo of one is redacted.
type HTTP struct {
	client  *http.Client
	backoff time.Duration
	log     *slog.Logger
}

var _ Driver = (*HTTP)(nil)

// NewHTTP returns the http driver.
func NewHTTP(opts HTTPOptions) *HTTP {
	h := &HTTP{client: opts.Client, backoff: opts.Backoff, log: opts.Logger}
	if h.client == nil {
		h.client = Client
	}
	if h.backoff <= 0 {
		h.backoff = DefaultHTTPBackoff
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.log = h.log.With("driver", models.DriverHTTP)
	return h
}

// Deploy calls the webhook with action deploy, unless the target already
// runs the release.
func (h *HTTP) Deploy(ctx context.Context, req Request) (Result, error) {
	cl, err := h.newCall(req.Target)
	if err != nil {
		return Result{}, err
	}
	current, err := h.current(ctx, cl, req.Target, 1)
	switch {
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("deploy %s to target %s: %w", req.Release.Version, req.Target.Name, ctx.Err())
	case err != nil:
		h.log.WarnContext(ctx, "current version unknown before deploy; deploying anyway",
			"target", req.Target.Name, "version", req.Release.Version, "error", err)
	case current != "" && current == req.Release.Version:
		h.log.InfoContext(ctx, "target already runs the version; deploy skipped",
			"target", req.Target.Name, "version", current)
		cl.transcript.Printf("[deploy] target %s already runs %s; deploy skipped", req.Target.Name, current)
		return Result{Version: current, Log: cl.transcript.String()}, nil
	}
	st, err := h.change(ctx, cl, ActionDeploy, req)
	if err != nil {
		return Result{Log: cl.transcript.String()}, fmt.Errorf("deploy %s to target %s: %w", req.Release.Version, req.Target.Name, err)
	}
	return Result{Version: versionOr(st.Version, req.Release.Version), Log: cl.transcript.String()}, nil
}

// Rollback calls the webhook with action rollback and release_version set
// to the version rolled back to.
func (h *HTTP) Rollback(ctx context.Context, req Request) (Result, error) {
	cl, err := h.newCall(req.Target)
	if err != nil {
		return Result{}, err
	}
	st, err := h.change(ctx, cl, ActionRollback, req)
	if err != nil {
		return Result{Log: cl.transcript.String()}, fmt.Errorf("roll target %s back to %s: %w", req.Target.Name, req.Release.Version, err)
	}
	return Result{Version: versionOr(st.Version, req.Release.Version), Log: cl.transcript.String()}, nil
}

// Remove calls the webhook with action remove.
func (h *HTTP) Remove(ctx context.Context, req Request) (Result, error) {
	cl, err := h.newCall(req.Target)
	if err != nil {
		return Result{}, err
	}
	if _, err := h.change(ctx, cl, ActionRemove, req); err != nil {
		return Result{Log: cl.transcript.String()}, fmt.Errorf("remove release from target %s: %w", req.Target.Name, err)
	}
	return Result{Version: "", Log: cl.transcript.String()}, nil
}

// Current calls the webhook with action current and returns the version of
// its answer.
func (h *HTTP) Current(ctx context.Context, t Target) (string, error) {
	cl, err := h.newCall(t)
	if err != nil {
		return "", err
	}
	return h.current(ctx, cl, t, 1+cl.retries)
}

// call is one use of a target's webhook: its config with secrets resolved.
type call struct {
	cfg     models.HTTPConfig
	method  string
	timeout time.Duration
	retries int
	poll    time.Duration
	// statusTimeout bounds the polling of the status URL.
	statusTimeout time.Duration
	headers       http.Header
	hmacKey       []byte
	secrets       []string
	transcript    *tailBuffer
}

func (h *HTTP) newCall(t Target) (*call, error) {
	var cfg models.HTTPConfig
	if err := models.DecodeStrict(t.Config, &cfg); err != nil {
		return nil, fmt.Errorf("http config of target %s: %w", t.Name, err)
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("http config of target %s: url is required", t.Name)
	}
	cl := &call{
		cfg:        cfg,
		method:     strings.ToUpper(cfg.Method),
		timeout:    cfg.Timeout.D(),
		retries:    cfg.Retries,
		poll:       cfg.PollInterval.D(),
		headers:    http.Header{},
		transcript: newTailBuffer(DefaultOutputTailKiB * 1024),
	}
	if cl.method == "" {
		cl.method = http.MethodPost
	}
	if cl.timeout <= 0 {
		cl.timeout = DefaultHTTPTimeout
	}
	if cl.retries <= 0 {
		cl.retries = DefaultHTTPRetries
	}
	if cl.poll <= 0 {
		cl.poll = DefaultPollInterval
	}
	if cl.statusTimeout = cfg.StatusTimeout.D(); cl.statusTimeout <= 0 {
		cl.statusTimeout = models.DefaultStatusTimeout
	}
	for k, v := range cfg.Headers {
		cl.headers.Set(k, v)
	}
	names := make([]string, 0, len(cfg.SecretHeaders))
	for k := range cfg.SecretHeaders {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v, err := ResolveSecret(cfg.SecretHeaders[name])
		if err != nil {
			return nil, fmt.Errorf("secret header %s of target %s: %w", name, t.Name, err)
		}
		cl.headers.Set(name, v)
		cl.secrets = append(cl.secrets, v)
	}
	if cfg.HMACSecret != "" {
		v, err := ResolveSecret(cfg.HMACSecret)
		if err != nil {
			return nil, fmt.Errorf("hmac secret of target %s: %w", t.Name, err)
		}
		cl.hmacKey = []byte(v)
		cl.secrets = append(cl.secrets, v)
	}
	return cl, nil
}

// ResolveSecret reads the secret ref names: "env:NAME" from the environment,
// "file:/path" from the file (trimmed). Its errors never hold the secret.
func ResolveSecret(ref models.SecretRef) (string, error) {
	s := string(ref)
	switch {
	case strings.HasPrefix(s, "env:"):
		name := strings.TrimPrefix(s, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		return strings.TrimSpace(v), nil
	case strings.HasPrefix(s, "file:"):
		path := strings.TrimPrefix(s, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", path)
		}
		return v, nil
	}
	return "", fmt.Errorf("secret reference must be env:NAME or file:/path")
}

// redact replaces every secret value in s.
func (cl *call) redact(s string) string {
	for _, v := range cl.secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, redacted)
		}
	}
	return s
}

// redactErr returns err with every secret value replaced; the chain of
// sentinel errors (context.Canceled, ErrTimeout) is kept.
func (cl *call) redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := cl.redact(msg); clean != msg {
		return redactedError{msg: clean, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }

// Unwrap keeps errors.Is working through the redaction.
func (e redactedError) Unwrap() error { return e.err }

func (cl *call) payload(action string, req Request) WebhookPayload {
	artifacts := req.Release.Artifacts
	if artifacts == nil {
		artifacts = []models.Artifact{}
	}
	return WebhookPayload{
		Action:          action,
		Application:     req.Target.Application,
		Environment:     req.Target.Environment,
		Target:          req.Target.Name,
		ReleaseVersion:  req.Release.Version,
		PreviousVersion: req.Previous,
		Artifacts:       artifacts,
		IdempotencyKey:  req.IdempotencyKey,
		RetainData:      req.RetainData,
	}
}

// current asks the webhook for the target's version.
func (h *HTTP) current(ctx context.Context, cl *call, t Target, attempts int) (string, error) {
	body, err := json.Marshal(cl.payload(ActionCurrent, Request{Target: t}))
	if err != nil {
		return "", fmt.Errorf("encode current request: %w", err)
	}
	st, err := h.send(ctx, cl, exchange{action: ActionCurrent, method: cl.method, url: cl.cfg.URL, body: body}, attempts, nil)
	switch {
	case err != nil && ctx.Err() != nil:
		return "", fmt.Errorf("current version of target %s: %w", t.Name, cl.redactErr(err))
	case err != nil:
		return "", fmt.Errorf("current version of target %s: %w: %w", t.Name, ErrUnreachable, cl.redactErr(err))
	}
	return st.Version, nil
}

// change calls the webhook for action and, with a status URL, polls it
// until the change is done.
func (h *HTTP) change(ctx context.Context, cl *call, action string, req Request) (WebhookStatus, error) {
	body, err := json.Marshal(cl.payload(action, req))
	if err != nil {
		return WebhookStatus{}, fmt.Errorf("encode %s request: %w", action, err)
	}
	ex := exchange{action: action, method: cl.method, url: cl.cfg.URL, body: body, key: req.IdempotencyKey}
	st, err := h.send(ctx, cl, ex, 1+cl.retries, req.Progress)
	if err != nil {
		return st, cl.redactErr(err)
	}
	if st.Status == WebhookFailed {
		return st, fmt.Errorf("webhook reported %s failed: %s", action, cl.redact(st.Message))
	}
	if cl.cfg.StatusURL == "" {
		return st, nil
	}
	statusURL, err := render("status_url", cl.cfg.StatusURL, templateDataFor(action, req))
	if err != nil {
		return st, err
	}
	final, err := h.pollStatus(ctx, cl, action, statusURL, req)
	if err != nil {
		return final, cl.redactErr(err)
	}
	if final.Version == "" {
		final.Version = st.Version
	}
	return final, nil
}

// pollStatus GETs statusURL every poll interval until it says succeeded or
// failed. Up to cl.retries transient errors in a row are tolerated.
func (h *HTTP) pollStatus(ctx context.Context, cl *call, action, statusURL string, req Request) (WebhookStatus, error) {
	ticker := time.NewTicker(cl.poll)
	defer ticker.Stop()
	start := time.Now()
	deadline := time.NewTimer(cl.statusTimeout)
	defer deadline.Stop()
	failures := 0
	for polls := 1; ; polls++ {
		select {
		case <-ctx.Done():
			return WebhookStatus{}, fmt.Errorf("wait for %s status: %w", action, context.Cause(ctx))
		case <-deadline.C:
			return WebhookStatus{}, fmt.Errorf("wait for %s status: %w: the status URL did not report succeeded or failed within status_timeout %s",
				action, ErrTimeout, cl.statusTimeout)
		case <-ticker.C:
		}
		st, retry, err := h.once(ctx, cl, exchange{action: action, method: http.MethodGet, url: statusURL, key: req.IdempotencyKey})
		switch {
		case err != nil && retry && failures < cl.retries && ctx.Err() == nil:
			failures++
			cl.transcript.Printf("[%s] status poll %d failed; polling again", action, polls)
			continue
		case err != nil:
			return st, fmt.Errorf("poll %s status: %w", action, err)
		}
		failures = 0
		switch st.Status {
		case WebhookSucceeded:
			cl.transcript.Printf("[%s] status %s: %s", action, st.Status, cl.redact(st.Message))
			return st, nil
		case WebhookFailed:
			cl.transcript.Printf("[%s] status %s: %s", action, st.Status, cl.redact(st.Message))
			return st, fmt.Errorf("webhook reported %s failed: %s", action, cl.redact(st.Message))
		}
		if req.Progress != nil {
			detail := fmt.Sprintf("%s %s for %s", action, orDefault(st.Status, WebhookRunning), time.Since(start).Round(time.Second))
			if st.Message != "" {
				detail += ": " + cl.redact(st.Message)
			}
			req.Progress(detail)
		}
	}
}

// exchange is one request of the driver.
type exchange struct {
	// action names it in the transcript.
	action string
	method string
	url    string
	// body is nil for a GET; it is signed when the target has an hmac_secret.
	body []byte
	// key is the Idempotency-Key header, none when "".
	key string
}

// send makes a request, retrying 5xx answers and connection errors up to
// attempts in all, with doubling backoff.
func (h *HTTP) send(ctx context.Context, cl *call, ex exchange, attempts int, progress func(string)) (WebhookStatus, error) {
	wait := h.backoff
	for attempt := 1; ; attempt++ {
		st, retry, err := h.once(ctx, cl, ex)
		if err == nil {
			return st, nil
		}
		if !retry || attempt >= attempts || ctx.Err() != nil {
			if attempt > 1 {
				return st, fmt.Errorf("after %d tries: %w", attempt, err)
			}
			return st, err
		}
		cl.transcript.Printf("[%s] try %d of %d failed; retrying in %s", ex.action, attempt, attempts, wait)
		h.log.WarnContext(ctx, "webhook request failed; retrying", "action", ex.action, "method", ex.method, "url", ex.url,
			"try", attempt, "of", attempts, "backoff", wait, "error", cl.redact(err.Error()))
		if progress != nil {
			progress(fmt.Sprintf("webhook try %d of %d failed; retrying in %s", attempt, attempts, wait))
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("after %d tries: %w (last error: %s)", attempt, context.Cause(ctx), cl.redact(err.Error()))
		case <-time.After(wait):
		}
		wait = min(2*wait, maxHTTPBackoff)
	}
}

// once makes one request and reads its answer; retry says whether the error
// is worth another try (a 5xx or a connection error).
func (h *HTTP) once(ctx context.Context, cl *call, ex exchange) (WebhookStatus, bool, error) {
	method, url, body := ex.method, ex.url, ex.body
	rctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	httpReq, err := http.NewRequestWithContext(rctx, method, url, rd)
	if err != nil {
		return WebhookStatus{}, false, fmt.Errorf("build %s %s: %w", method, url, err)
	}
	httpReq.Header = cl.headers.Clone()
	httpReq.Header.Set("User-Agent", "transit")
	httpReq.Header.Set("Accept", "application/json")
	if body != nil {
		httpReq.Header.Set("Content-Type", "application/json")
		if cl.hmacKey != nil {
			httpReq.Header.Set(SignatureHeader, Sign(cl.hmacKey, body))
		}
	}
	if ex.key != "" {
		httpReq.Header.Set(IdempotencyKeyHeader, ex.key)
	}
	start := time.Now()
	resp, err := h.client.Do(httpReq)
	if err != nil {
		if ctx.Err() != nil {
			return WebhookStatus{}, false, fmt.Errorf("%s %s: %w", method, url, context.Cause(ctx))
		}
		// err names the method and URL already.
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %s: %w", ErrTimeout, cl.timeout, err)
		}
		cl.transcript.Printf("[%s] %s", ex.action, cl.redact(err.Error()))
		return WebhookStatus{}, true, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		cl.transcript.Printf("[%s] %s %s: %s, reading the body failed", ex.action, method, url, resp.Status)
		return WebhookStatus{}, true, fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	// Redact first, then cut: a cut through a secret would leave a part of
	// it that redaction no longer recognises.
	clean := snippet([]byte(cl.redact(string(raw))))
	cl.transcript.Printf("[%s] %s %s: %s in %s: %s", ex.action, method, url, resp.Status, time.Since(start).Round(10*time.Microsecond), clean)
	h.log.DebugContext(ctx, "webhook answered", "action", ex.action, "method", method, "url", url, "status", resp.StatusCode)
	switch {
	case resp.StatusCode >= 500:
		return WebhookStatus{}, true, fmt.Errorf("%s %s answered %s: %s", method, url, resp.Status, clean)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return WebhookStatus{}, false, fmt.Errorf("%s %s answered %s: %s", method, url, resp.Status, clean)
	}
	var st WebhookStatus
	if len(bytes.TrimSpace(raw)) > 0 {
		// A body that is not a JSON object carries nothing for us.
		_ = json.Unmarshal(raw, &st)
	}
	return st, false, nil
}

func versionOr(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
