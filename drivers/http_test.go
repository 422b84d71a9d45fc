package drivers

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// webhook is a fake deployment service: it records what it receives and
// answers through handle (by default 200 with the version it runs).
type webhook struct {
	t      *testing.T
	mu     sync.Mutex
	got    []receivedCall
	server *httptest.Server
	// version is what "runs" on the target; deploys and rollbacks set it.
	version string
	// handle, when set, answers instead of the default.
	handle func(w http.ResponseWriter, r *http.Request, p WebhookPayload, n int)
}

type receivedCall struct {
	Method  string
	Path    string
	Header  http.Header
	Body    []byte
	Payload WebhookPayload
}

func newWebhook(t *testing.T) *webhook {
	wh := &webhook{t: t}
	wh.server = httptest.NewServer(http.HandlerFunc(wh.serve))
	t.Cleanup(wh.server.Close)
	return wh
}

func (wh *webhook) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var p WebhookPayload
	if len(body) > 0 {
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
	}
	wh.mu.Lock()
	wh.got = append(wh.got, receivedCall{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Payload: p})
	n := 0
	for _, c := range wh.got {
		if c.Payload.Action == p.Action && c.Path == r.URL.Path {
			n++
		}
	}
	handle := wh.handle
	wh.mu.Unlock()
	if handle != nil {
		handle(w, r, p, n)
		return
	}
	wh.mu.Lock()
	switch p.Action {
	case ActionDeploy, ActionRollback:
		wh.version = p.ReleaseVersion
	case ActionRemove:
		wh.version = ""
	}
	v := wh.version
	wh.mu.Unlock()
	writeJSON(w, http.StatusOK, WebhookStatus{Version: v})
}

// calls returns the requests received for action ("" for all).
func (wh *webhook) calls(action string) []receivedCall {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	var out []receivedCall
	for _, c := range wh.got {
		if action == "" || c.Payload.Action == action {
			out = append(out, c)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newTestHTTP() *HTTP {
	return NewHTTP(HTTPOptions{Backoff: 10 * time.Millisecond, Logger: quietLogger})
}

func TestHTTPDeploySendsPayloadAndHeaders(t *testing.T) {
	wh := newWebhook(t)
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{
		URL:     wh.server.URL + "/deploy",
		Headers: map[string]string{"X-Team": "payments"},
	})
	req := Request{Target: tgt, Release: testRelease("1.4.0"), Previous: "1.3.0", IdempotencyKey: "dep-7/web-1/deploy"}

	res, err := newTestHTTP().Deploy(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "1.4.0", res.Version)

	all := wh.calls("")
	require.Len(t, all, 2, "current, then deploy")
	require.Equal(t, ActionCurrent, all[0].Payload.Action)
	require.Empty(t, all[0].Header.Get(IdempotencyKeyHeader))

	got := all[1]
	require.Equal(t, http.MethodPost, got.Method)
	require.Equal(t, "/deploy", got.Path)
	require.Equal(t, WebhookPayload{
		Action:          ActionDeploy,
		Application:     "shop",
		Environment:     "prod",
		Target:          "web-1",
		ReleaseVersion:  "1.4.0",
		PreviousVersion: "1.3.0",
		Artifacts:       req.Release.Artifacts,
		IdempotencyKey:  "dep-7/web-1/deploy",
		RetainData:      false,
	}, got.Payload)
	require.Equal(t, "dep-7/web-1/deploy", got.Header.Get(IdempotencyKeyHeader))
	require.Equal(t, "payments", got.Header.Get("X-Team"))
	require.Equal(t, "application/json", got.Header.Get("Content-Type"))
	require.Empty(t, got.Header.Get(SignatureHeader), "no signature without an hmac_secret")
	require.Contains(t, res.Log, "200 OK")
}

func TestHTTPDeployTakesVersionFromAnswer(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, p WebhookPayload, _ int) {
		if p.Action == ActionCurrent {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"version": p.ReleaseVersion + "+build.7"})
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL, Method: "put"})
	res, err := newTestHTTP().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("2.0.0")})
	require.NoError(t, err)
	require.Equal(t, "2.0.0+build.7", res.Version)
	require.Equal(t, http.MethodPut, wh.calls(ActionDeploy)[0].Method)
}

func TestHTTPDeployIsIdempotentByCurrent(t *testing.T) {
	wh := newWebhook(t)
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL})
	h := newTestHTTP()
	req := Request{Target: tgt, Release: testRelease("3.1.0"), IdempotencyKey: "k"}

	_, err := h.Deploy(context.Background(), req)
	require.NoError(t, err)
	res, err := h.Deploy(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, "3.1.0", res.Version)
	require.Contains(t, res.Log, "already runs 3.1.0")
	require.Len(t, wh.calls(ActionDeploy), 1, "the second deploy is not sent")
	require.Len(t, wh.calls(ActionCurrent), 2)
}

func TestHTTPSignsBodyWithHMAC(t *testing.T) {
	t.Setenv("TRANSIT_TEST_HMAC", "  s3cret-signing-key\n")
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, r *http.Request, _ WebhookPayload, _ int) {
		wh.mu.Lock()
		body := wh.got[len(wh.got)-1].Body
		wh.mu.Unlock()
		want := Sign([]byte("s3cret-signing-key"), body)
		if !hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(want)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		writeJSON(w, http.StatusOK, WebhookStatus{})
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL, HMACSecret: "env:TRANSIT_TEST_HMAC"})

	_, err := newTestHTTP().Remove(context.Background(), Request{Target: tgt, IdempotencyKey: "rm"})
	require.NoError(t, err)
	sig := wh.calls(ActionRemove)[0].Header.Get(SignatureHeader)
	require.True(t, strings.HasPrefix(sig, "sha256="))
	require.Len(t, sig, len("sha256=")+64)

	// The same server refuses a body signed with another key.
	t.Setenv("TRANSIT_TEST_HMAC", "another-key")
	_, err = newTestHTTP().Remove(context.Background(), Request{Target: tgt, IdempotencyKey: "rm"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "401")
}

func TestHTTPSecretHeadersFromEnvAndFile(t *testing.T) {
	const envSecret, fileSecret = "tok-from-env-8d1f", "tok-from-file-77aa"
	t.Setenv("TRANSIT_TEST_TOKEN", envSecret)
	path := filepath.Join(t.TempDir(), "api-key")
	require.NoError(t, os.WriteFile(path, []byte(fileSecret+"\n"), 0o600))

	wh := newWebhook(t)
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{
		URL: wh.server.URL,
		SecretHeaders: map[string]models.SecretRef{
			"Authorization": "env:TRANSIT_TEST_TOKEN",
			"X-Api-Key":     models.SecretRef("file:" + path),
		},
	})
	res, err := newTestHTTP().Rollback(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), Previous: "1.1.0"})
	require.NoError(t, err)
	require.Equal(t, "1.0.0", res.Version)
	got := wh.calls(ActionRollback)[0]
	require.Equal(t, envSecret, got.Header.Get("Authorization"))
	require.Equal(t, fileSecret, got.Header.Get("X-Api-Key"), "the file's content is trimmed")
	require.Equal(t, "1.0.0", got.Payload.ReleaseVersion, "a rollback names the version rolled back to")
	require.Equal(t, "1.1.0", got.Payload.PreviousVersion)
}

func TestHTTPSecretsNeverInErrorsOrLog(t *testing.T) {
	const secret = "tok-very-secret-5c2e"
	t.Setenv("TRANSIT_TEST_TOKEN", secret)
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, r *http.Request, _ WebhookPayload, _ int) {
		// A careless server echoes the credential it refuses.
		http.Error(w, "token "+r.Header.Get("Authorization")+" is expired", http.StatusForbidden)
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{
		URL:           wh.server.URL,
		SecretHeaders: map[string]models.SecretRef{"Authorization": "env:TRANSIT_TEST_TOKEN"},
	})
	res, err := newTestHTTP().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "403")
	require.Contains(t, err.Error(), "token [redacted] is expired")
	require.NotContains(t, err.Error(), secret)
	require.NotContains(t, res.Log, secret)
	require.Contains(t, res.Log, "[redacted]")
	require.Len(t, wh.calls(ActionDeploy), 1, "a 4xx is not retried")

	_, err = newTestHTTP().Current(context.Background(), tgt)
	require.ErrorIs(t, err, ErrUnreachable)
	require.NotContains(t, err.Error(), secret)
}

func TestHTTPMissingSecretFails(t *testing.T) {
	wh := newWebhook(t)
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{
		URL:           wh.server.URL,
		SecretHeaders: map[string]models.SecretRef{"Authorization": "env:TRANSIT_TEST_UNSET_VARIABLE"},
	})
	_, err := newTestHTTP().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "TRANSIT_TEST_UNSET_VARIABLE is not set")
	require.Empty(t, wh.calls(""), "nothing is sent without the secret")
}

func TestHTTPRetriesServerErrorsThenSucceeds(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, p WebhookPayload, n int) {
		if p.Action == ActionDeploy && n <= 2 {
			http.Error(w, "upstream busy", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, http.StatusOK, WebhookStatus{})
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL})
	var p progressRecorder
	res, err := newTestHTTP().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), IdempotencyKey: "same-key", Progress: p.record})
	require.NoError(t, err)
	require.Equal(t, "1.0.0", res.Version)
	deploys := wh.calls(ActionDeploy)
	require.Len(t, deploys, 3)
	for _, c := range deploys {
		require.Equal(t, "same-key", c.Header.Get(IdempotencyKeyHeader), "every retry carries the same key")
	}
	require.Contains(t, res.Log, "503 Service Unavailable")
	require.Len(t, p.all(), 2, "progress at each retry")
}

func TestHTTPGivesUpAfterRetries(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, _ WebhookPayload, _ int) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL, Retries: 2})
	_, err := newTestHTTP().Rollback(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0")})
	require.Error(t, err)
	require.Contains(t, err.Error(), "after 3 tries")
	require.Contains(t, err.Error(), "500")
	require.Len(t, wh.calls(ActionRollback), 3)
}

func TestHTTPDoesNotRetryClientErrors(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, _ WebhookPayload, _ int) {
		http.Error(w, "unknown target web-1", http.StatusUnprocessableEntity)
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL, Retries: 5})
	_, err := newTestHTTP().Remove(context.Background(), Request{Target: tgt})
	require.Error(t, err)
	require.Contains(t, err.Error(), "422")
	require.Contains(t, err.Error(), "unknown target web-1")
	require.Len(t, wh.calls(ActionRemove), 1)
}

func TestHTTPRetriesConnectionErrors(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, _ WebhookPayload, n int) {
		if n == 1 {
			// Drop the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		writeJSON(w, http.StatusOK, WebhookStatus{Version: "9.9.9"})
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL})
	res, err := newTestHTTP().Remove(context.Background(), Request{Target: tgt})
	require.NoError(t, err)
	require.Empty(t, res.Version)
	require.Len(t, wh.calls(ActionRemove), 2)
	require.Contains(t, res.Log, "EOF")
}

func TestHTTPRequestTimeout(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, r *http.Request, _ WebhookPayload, _ int) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL, Timeout: models.Duration(50 * time.Millisecond), Retries: 1})
	start := time.Now()
	_, err := newTestHTTP().Remove(context.Background(), Request{Target: tgt})
	require.ErrorIs(t, err, ErrTimeout)
	require.Contains(t, err.Error(), "after 2 tries")
	require.Less(t, time.Since(start), 2*time.Second)
	require.Len(t, wh.calls(ActionRemove), 2, "a timeout is retried")
}

func TestHTTPCancelStopsRetries(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, _ WebhookPayload, _ int) {
		http.Error(w, "down", http.StatusBadGateway)
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL, Retries: 10})
	h := NewHTTP(HTTPOptions{Backoff: 10 * time.Second, Logger: quietLogger})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Remove(ctx, Request{Target: tgt})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second, "the backoff wait ends with the context")
	require.Len(t, wh.calls(ActionRemove), 1)
}

func TestHTTPPollsStatusURL(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, r *http.Request, p WebhookPayload, n int) {
		switch {
		case p.Action == ActionCurrent:
			writeJSON(w, http.StatusOK, WebhookStatus{Version: "0.9.0"})
		case r.Method == http.MethodPost:
			writeJSON(w, http.StatusAccepted, WebhookStatus{Status: WebhookRunning, Message: "queued"})
		case r.URL.Path != "/jobs/web-1/dep-9/2.0.0":
			http.Error(w, "no such job "+r.URL.Path, http.StatusNotFound)
		case n <= 2:
			writeJSON(w, http.StatusOK, WebhookStatus{Status: WebhookRunning, Message: fmt.Sprintf("step %d of 3", n)})
		default:
			writeJSON(w, http.StatusOK, WebhookStatus{Status: WebhookSucceeded, Version: "2.0.0-r1", Message: "done"})
		}
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{
		URL:          wh.server.URL + "/deploy",
		StatusURL:    wh.server.URL + "/jobs/{{.Target.Name}}/{{.IdempotencyKey}}/{{.Release.Version}}",
		PollInterval: models.Duration(20 * time.Millisecond),
	})
	var p progressRecorder
	res, err := newTestHTTP().Deploy(context.Background(), Request{Target: tgt, Release: testRelease("2.0.0"), IdempotencyKey: "dep-9", Progress: p.record})
	require.NoError(t, err)
	require.Equal(t, "2.0.0-r1", res.Version)
	polls := 0
	for _, c := range wh.calls("") {
		if c.Method == http.MethodGet {
			polls++
			require.Equal(t, "dep-9", c.Header.Get(IdempotencyKeyHeader))
		}
	}
	require.Equal(t, 3, polls)
	require.Equal(t, []string{"deploy running for 0s: step 1 of 3", "deploy running for 0s: step 2 of 3"}, p.all())
	require.Contains(t, res.Log, "[deploy] status succeeded: done")
	require.Contains(t, res.Log, "[current] POST "+wh.server.URL+"/deploy: 200 OK")
}

func TestHTTPStatusReportsFailure(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, r *http.Request, _ WebhookPayload, _ int) {
		if r.Method == http.MethodPost {
			writeJSON(w, http.StatusAccepted, WebhookStatus{Status: WebhookRunning})
			return
		}
		writeJSON(w, http.StatusOK, WebhookStatus{Status: WebhookFailed, Message: "health check failed on web-1"})
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{
		URL:          wh.server.URL,
		StatusURL:    wh.server.URL + "/status?key={{urlquery .IdempotencyKey}}",
		PollInterval: models.Duration(10 * time.Millisecond),
	})
	_, err := newTestHTTP().Rollback(context.Background(), Request{Target: tgt, Release: testRelease("1.0.0"), IdempotencyKey: "a b"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "webhook reported rollback failed: health check failed on web-1")
}

func TestHTTPImmediateFailedStatus(t *testing.T) {
	wh := newWebhook(t)
	wh.handle = func(w http.ResponseWriter, _ *http.Request, _ WebhookPayload, _ int) {
		writeJSON(w, http.StatusOK, WebhookStatus{Status: WebhookFailed, Message: "quota exceeded"})
	}
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL})
	_, err := newTestHTTP().Remove(context.Background(), Request{Target: tgt})
	require.Error(t, err)
	require.Contains(t, err.Error(), "quota exceeded")
}

func TestHTTPCurrent(t *testing.T) {
	wh := newWebhook(t)
	wh.version = "4.2.0"
	tgt := testTarget(t, models.DriverHTTP, models.HTTPConfig{URL: wh.server.URL})
	h := newTestHTTP()

	v, err := h.Current(context.Background(), tgt)
	require.NoError(t, err)
	require.Equal(t, "4.2.0", v)
	got := wh.calls(ActionCurrent)[0].Payload
	require.Equal(t, "web-1", got.Target)
	require.Equal(t, "shop", got.Application)

	wh.mu.Lock()
	wh.handle = func(w http.ResponseWriter, _ *http.Request, _ WebhookPayload, _ int) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}
	wh.mu.Unlock()
	_, err = h.Current(context.Background(), tgt)
	require.ErrorIs(t, err, ErrUnreachable)
	require.Contains(t, err.Error(), "503")
	require.Len(t, wh.calls(ActionCurrent), 1+4, "current is retried too")
}

func TestSignIsHMACSHA256(t *testing.T) {
	// RFC 4231 test case 2.
	require.Equal(t, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		Sign([]byte("Jefe"), []byte("what do ya want for nothing?")))
}
