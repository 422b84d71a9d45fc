package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// receiver is a webhook receiver that checks every request's signature
// and keeps each delivery once, by its Idempotency-Key. While down it
// answers 503.
type receiver struct {
	t      *testing.T
	secret []byte
	srv    *httptest.Server
	down   atomic.Bool
	// status answers the requests of a path other than 200 (e.g. 410).
	status map[string]int

	mu          sync.Mutex
	tries       int            // requests, of any answer
	unavailable int            // answered 503
	badSigs     []string       // requests whose signature did not verify
	byKey       map[string]int // Idempotency-Key → requests answered 200
	bodies      map[string]map[string]json.RawMessage
	paths       map[string]string // Idempotency-Key → path
}

func newReceiver(t *testing.T, secret []byte) *receiver {
	r := &receiver{t: t, secret: secret, status: map[string]int{}, byKey: map[string]int{},
		bodies: map[string]map[string]json.RawMessage{}, paths: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	mac := hmac.New(sha256.New, r.secret)
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	key := req.Header.Get("Idempotency-Key")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if !hmac.Equal([]byte(want), []byte(req.Header.Get("X-Transit-Signature"))) || req.Method != http.MethodPost || key == "" {
		r.badSigs = append(r.badSigs, fmt.Sprintf("%s %s key %q signature %q", req.Method, req.URL.Path, key, req.Header.Get("X-Transit-Signature")))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.down.Load() {
		r.unavailable++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if code := r.status[req.URL.Path]; code != 0 {
		http.Error(w, "this hook is gone", code)
		return
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		r.badSigs = append(r.badSigs, "not a JSON object: "+string(body))
	}
	// X-Transit-Event names the event (the JSON body's "event"; a Slack
	// body has none, but the header is there).
	var event string
	_ = json.Unmarshal(fields["event"], &event)
	if got := req.Header.Get("X-Transit-Event"); got == "" || (event != "" && got != event) {
		r.badSigs = append(r.badSigs, fmt.Sprintf("X-Transit-Event %q for event %q", got, event))
	}
	r.byKey[key]++
	r.bodies[key], r.paths[key] = fields, req.URL.Path
	w.WriteHeader(http.StatusNoContent)
}

// received returns the deliveries to path taken (each once), by key.
func (r *receiver) received(path string) map[string]map[string]json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[string]json.RawMessage{}
	for key, b := range r.bodies {
		if r.paths[key] == path {
			out[key] = b
		}
	}
	return out
}

func str(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// An admin subscribes a real receiver to every event of an application.
// The receiver is down while the deployment (one approval) runs: the
// deployment does not wait for it, and once it is up every event arrives,
// signed, each exactly once: awaiting_approval (naming the approvers and
// the approval page), approved, started, point_of_no_return, completed,
// and incident.opened. A Slack subscription gets its message with a
// button; a receiver that refuses (410) is not tried again.
func TestNotificationsReachAReceiverThatWasDown(t *testing.T) {
	s := newStack(t, stackOptions{})
	secret := []byte("s3cret-hook-key-" + hex.EncodeToString(randomBytes(8)))
	secretFile := filepath.Join(t.TempDir(), "hook.key")
	require.NoError(t, os.WriteFile(secretFile, append(secret, '\n'), 0o600))
	rcv := newReceiver(t, secret)
	rcv.status["/gone"] = http.StatusGone
	rcv.down.Store(true)
	a := newAPIChecker(t, s) // every answer below is checked against api/openapi.json

	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	c := s.seed("prod", 2, policy, "", "1.0.0")
	rita := s.issueToken("rita", "release-managers")

	// Bad subscriptions are refused, naming what is wrong, and change nothing.
	good := map[string]any{"url": rcv.srv.URL + "/hooks/transit", "events": models.NotifyEvents, "secret": "file:" + secretFile,
		"application_id": c.app, "description": "release channel"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	for _, bad := range []struct {
		body   any
		status int
		says   string
	}{
		{with("events", []string{"deployment.completed", "deployment.exploded"}), 422, `events[1]: \"deployment.exploded\" is not an event`},
		{with("url", "ftp://example.com/x"), 422, "must be an http:// or https:// URL"},
		{with("secret", "hunter2"), 422, `secret: \"hunter2\" must reference a secret as env:VARIABLE or file:/absolute/path`},
		{with("application_id", "no-such-app"), 422, `no application has id or name \"no-such-app\"`},
		{with("environment_id", "env_missing"), 422, `no environment has id \"env_missing\"`},
		{with("format", "xml"), 422, "format"},
		{with("colour", "blue"), 400, "unknown field"},
	} {
		r := a.do(bad.status, "POST", "/api/v1/subscriptions", s.admin, bad.body)
		require.Contains(t, r.Raw, bad.says)
	}
	require.Empty(t, a.do(200, "GET", "/api/v1/subscriptions", s.admin, nil).items())

	sub := a.do(201, "POST", "/api/v1/subscriptions", s.admin, good)
	subID := sub.str("id")
	require.Equal(t, c.app, sub.str("application_id"))
	require.Equal(t, "json", sub.str("format"))
	require.Equal(t, "true", sub.str("enabled"))
	slack := a.do(201, "POST", "/api/v1/subscriptions", s.admin, map[string]any{"url": rcv.srv.URL + "/slack", "format": "slack",
		"events": []string{"deployment.awaiting_approval"}, "environment_id": c.env, "secret": "file:" + secretFile}).str("id")
	gone := s.must(201, "POST", "/api/v1/subscriptions", map[string]any{"url": rcv.srv.URL + "/gone",
		"events": []string{"deployment.completed"}, "secret": "file:" + secretFile}).str("id")
	// One that is switched off gets nothing.
	off := s.must(201, "POST", "/api/v1/subscriptions", map[string]any{"url": rcv.srv.URL + "/off",
		"events": models.NotifyEvents, "secret": "file:" + secretFile}).str("id")
	require.Equal(t, "false", a.do(200, "PATCH", "/api/v1/subscriptions/"+off, s.admin, map[string]any{"enabled": false}).str("enabled"))
	require.Len(t, a.do(200, "GET", "/api/v1/subscriptions?application_id="+c.app, s.admin, nil).items(), 1)

	// The deployment runs while the receiver is down, and is not held up.
	started := time.Now()
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "reason": "launch"})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	r := s.call("POST", "/api/v1/deployments/"+id+"/approvals", rita, map[string]any{"decision": "approve"})
	require.Equal(t, 200, r.Status, r.Raw)
	d := s.waitStatus(id, 60*time.Second, models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusRolledBack, models.StatusFailed)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"), d.str("deployment", "outcome"))
	took := time.Since(started)
	t.Logf("the deployment completed in %s while the receiver answered 503", took.Round(100*time.Millisecond))
	inc := s.must(201, "POST", "/api/v1/deployments/"+id+"/incidents", map[string]any{"severity": "low", "title": "checkout is slow"}).str("id")
	rcv.mu.Lock()
	require.Positive(t, rcv.unavailable, "the receiver was tried while it was down")
	require.Empty(t, rcv.byKey, "nothing was taken while it was down")
	rcv.mu.Unlock()

	// Up again: the retries bring everything, once.
	rcv.down.Store(false)
	want := []string{"deployment.approved", "deployment.awaiting_approval", "deployment.completed", "deployment.point_of_no_return",
		"deployment.started", "incident.opened"}
	require.EventuallyWithT(t, func(c *assertCollect) {
		var got []string
		for _, b := range rcv.received("/hooks/transit") {
			got = append(got, str(b["event"]))
		}
		sort.Strings(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			c.Errorf("received %v, waiting for %v", got, want)
		}
		if len(rcv.received("/slack")) != 1 {
			c.Errorf("no Slack message yet")
		}
	}, 120*time.Second, 500*time.Millisecond)
	delivered := time.Since(started)
	t.Logf("every event arrived %s after the deployment was submitted", delivered.Round(100*time.Millisecond))
	fmt.Printf("FIGURE notify_deployment_while_receiver_down_s=%.1f notify_all_delivered_s=%.1f\n", took.Seconds(), delivered.Seconds())

	rcv.mu.Lock()
	require.Empty(t, rcv.badSigs, "every request is signed with the subscription's secret")
	for key, n := range rcv.byKey {
		require.Equal(t, 1, n, "delivery %s was taken %d times", key, n)
	}
	rcv.mu.Unlock()
	for key, b := range rcv.received("/hooks/transit") {
		require.Equal(t, key, str(b["id"]), "the Idempotency-Key is the delivery's id")
		var dep models.NotificationDeployment
		require.NoError(t, json.Unmarshal(b["deployment"], &dep))
		require.Equal(t, id, dep.ID)
		require.Equal(t, "prod", dep.Environment)
		require.Equal(t, "1.0.0", dep.ReleaseVersion)
		require.Equal(t, "http://localhost:8080/api/v1/deployments/"+id, dep.URL)
		switch models.NotifyEvent(str(b["event"])) {
		case models.NotifyAwaitingApproval:
			var ap models.NotificationApproval
			require.NoError(t, json.Unmarshal(b["approval"], &ap))
			require.Equal(t, []string{"release-managers"}, ap.ApproverGroups)
			require.Equal(t, 1, ap.Required)
			require.Equal(t, "http://localhost:8080/approvals", ap.URL)
			require.Equal(t, models.StatusAwaitingApproval, dep.Status)
		case models.NotifyStarted:
			require.Equal(t, models.StatusDeploying, dep.Status)
		case models.NotifyCompleted:
			require.Equal(t, models.StatusCompleted, dep.Status)
			require.Contains(t, dep.Outcome, "handed over")
		case models.NotifyIncidentOpened:
			var in models.NotificationIncident
			require.NoError(t, json.Unmarshal(b["incident"], &in))
			require.Equal(t, inc, in.ID)
			require.Equal(t, "checkout is slow", in.Title)
		}
	}
	for _, b := range rcv.received("/slack") {
		var msg models.SlackMessage
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &msg))
		require.Contains(t, msg.Text, "1.0.0 to prod is awaiting approval (1 approval from release-managers)")
		require.Len(t, msg.Blocks, 2)
		require.Equal(t, "http://localhost:8080/approvals", msg.Blocks[1].Elements[0].URL)
	}

	// The deliveries, each with its tries and last error.
	require.EventuallyWithT(t, func(c *assertCollect) {
		items := s.must(200, "GET", "/api/v1/subscriptions/"+subID+"/deliveries", nil).items()
		if len(items) != len(want) {
			c.Errorf("%d deliveries listed", len(items))
			return
		}
		for _, it := range items {
			if it["status"] != models.DeliveryDelivered || it["delivered_at"] == nil {
				c.Errorf("delivery %v is %v", it["id"], it["status"])
			}
		}
	}, 20*time.Second, 200*time.Millisecond)
	items := a.do(200, "GET", "/api/v1/subscriptions/"+subID+"/deliveries?event=deployment.awaiting_approval", s.admin, nil).items()
	require.Len(t, items, 1)
	require.Greater(t, items[0]["attempts"], float64(1), "tried while the receiver was down")
	require.Contains(t, items[0]["last_error"], "503 Service Unavailable")
	require.EqualValues(t, 204, items[0]["last_status_code"])
	page := a.do(200, "GET", "/api/v1/subscriptions/"+subID+"/deliveries?limit=2", s.admin, nil)
	require.Len(t, page.items(), 2)
	require.NotEmpty(t, page.str("next_cursor"))
	a.do(400, "GET", "/api/v1/subscriptions/"+subID+"/deliveries?colour=blue", s.admin, nil)
	a.do(404, "GET", "/api/v1/subscriptions/sub_missing/deliveries", s.admin, nil)
	a.do(403, "GET", "/api/v1/subscriptions", rita, nil)

	// Each delivery ran as its own workflow, which ended.
	desc, err := s.temporal.DescribeWorkflowExecution(context.Background(), models.NotificationWorkflowID(items[0]["id"].(string)), "")
	require.NoError(t, err)
	require.Equal(t, "Completed", desc.WorkflowExecutionInfo.Status.String())

	// A receiver that refuses (410) is tried once, and the delivery fails.
	require.EventuallyWithT(t, func(c *assertCollect) {
		items := s.must(200, "GET", "/api/v1/subscriptions/"+gone+"/deliveries", nil).items()
		if len(items) != 1 || items[0]["status"] != models.DeliveryFailed {
			c.Errorf("deliveries of the refusing hook: %v", items)
		}
	}, 60*time.Second, 500*time.Millisecond)
	refused := s.must(200, "GET", "/api/v1/subscriptions/"+gone+"/deliveries", nil).items()[0]
	require.Contains(t, refused["last_error"], "410 Gone")
	require.EqualValues(t, 410, refused["last_status_code"])
	attempts := refused["attempts"].(float64)
	require.Empty(t, s.must(200, "GET", "/api/v1/subscriptions/"+off+"/deliveries", nil).items())
	require.Len(t, s.must(200, "GET", "/api/v1/subscriptions/"+slack+"/deliveries", nil).items(), 1)

	// Subscriptions are audited, and go with their deliveries.
	audit := s.must(200, "GET", "/api/v1/audit?resource_type=subscription", nil).items()
	require.Len(t, audit, 5, "4 created, 1 updated")
	a.do(204, "DELETE", "/api/v1/subscriptions/"+off, s.admin, nil)
	a.do(404, "GET", "/api/v1/subscriptions/"+off, s.admin, nil)
	a.do(200, "GET", "/api/v1/subscriptions/"+subID, s.admin, nil)
	time.Sleep(2 * time.Second)
	final := s.must(200, "GET", "/api/v1/subscriptions/"+gone+"/deliveries", nil).items()[0]
	require.Equal(t, attempts, final["attempts"], "a refused delivery is not tried again")
}
