package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// screenshotDir is where the console test saves its screenshots
// ($TRANSIT_SCREENSHOTS, else a folder under the system's temp dir).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("TRANSIT_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "transit-screenshots")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// browser starts headless Chromium (Debian's package), driven from Go.
func browser(t *testing.T) context.Context {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("NOT TESTED: chromium is not installed (CI=true: a missing browser is a failure; scripts/test.sh installs Debian's chromium)")
		}
		t.Skip("NOT TESTED: chromium is not installed — run `make test`, which installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start chromium")
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}

// An approver signs in on the console, sees the one deployment waiting for
// her vote (and not one she may not vote on), approves it with a comment,
// and watches it roll out; user text stays text, and a form without the
// session's CSRF token is refused.
func TestConsoleApprovalInARealBrowser(t *testing.T) {
	s := newStack(t, stackOptions{})
	ctx := browser(t)
	shots := screenshotDir(t)

	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	policy.Strategy = models.Strategy{Kind: models.StrategyRolling, Batch: 1, Bake: models.Duration(3 * time.Second)}
	c := s.seed("prod", 3, policy, `{"latency_min":"1s","latency_max":"1s"}`, "1.0.0")
	rita := s.issueToken("rita", "release-managers")
	const evil = `<script>window.pwned=1</script> & "quotes"`
	id := s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": c.env, "reason": evil})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)
	// One rita may not vote on: another group's.
	qa := policy
	qa.ApproverGroups = []string{"qa"}
	stage := s.must(201, "POST", "/api/v1/environments", map[string]any{"application_id": c.app, "name": "stage", "policy": qa}).str("id")
	s.must(201, "POST", "/api/v1/targets", map[string]any{"environment_id": stage, "name": "stage-01", "driver": "simulated", "config": map[string]any{}})
	s.waitStatus(s.deploy(s.admin, map[string]any{"release": c.releases["1.0.0"], "environment": stage}), 30*time.Second, models.StatusAwaitingApproval)

	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		require.NoError(t, err, "text of %s", sel)
		return v
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, name), png, 0o644))
	}

	run(chromedp.Navigate(s.baseURL+"/approvals"), // not signed in: the sign-in page
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), rita),
		chromedp.Submit(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("article.approval")))
	approvals, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("article.approval").length`))
	require.NoError(t, err)
	require.Equal(t, 1, approvals, "rita sees the one deployment she may vote on")
	pwned, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned === 1`))
	require.NoError(t, err)
	require.False(t, pwned, "the reason's <script> ran")
	require.Equal(t, evil, text("article.approval q"), "the reason is shown as text")
	screenshot("console-approvals.png")

	run(chromedp.SendKeys(chromedp.ID("comment-"+id), "dashboards are green"),
		chromedp.Click(chromedp.CSS("#approval-"+id+" button.approve")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	require.Contains(t, text("p.flash"), "you voted approve (1 of 1 approvals)")
	// The page follows the rollout on its own (it polls).
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`["deploying","validating"].includes(document.getElementById("status").textContent)`,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(200*time.Millisecond)))
	require.NoError(t, err, "the page never showed the rollout")
	run(chromedp.Sleep(2500 * time.Millisecond)) // a refresh or two: targets move
	status := text("#status")
	voteHidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("vote") === null || document.getElementById("vote").hidden`))
	require.NoError(t, err)
	require.True(t, voteHidden, "votes are closed: the form is gone")
	screenshot("console-deployment-mid-rollout.png")
	t.Logf("screenshots in %s (status on the second: %s)", shots, status)

	d := s.waitStatus(id, 2*time.Minute, models.StatusCompleted)
	require.Equal(t, string(models.StatusCompleted), d.str("deployment", "status"))
	votes := s.must(200, "GET", "/api/v1/audit?actor=rita&action=approve", nil).items()
	require.Len(t, votes, 1)
	require.Contains(t, strings.Join(s.events(id), "\n"), "rita voted approve via api: dashboards are green")

	// A form posted from elsewhere, with the session but without its CSRF
	// token, is refused and changes nothing.
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(s.baseURL)
	jar.SetCookies(base, []*http.Cookie{{Name: "transit_session", Value: rita}})
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.PostForm(s.baseURL+"/deployments/"+id+"/control", url.Values{"action": {"rollback"}})
	require.NoError(t, err)
	refused, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
	require.Contains(t, string(refused), "CSRF", "refused for its missing CSRF token")
	resp, err = (&http.Client{CheckRedirect: hc.CheckRedirect}).Get(s.baseURL + "/approvals")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "not signed in: sent to sign in")
	require.Equal(t, "/login", resp.Header.Get("Location"))

	// A page shows what its API route would: an auditor reads no deployments here either.
	auditor := s.issue(models.APIToken{Subject: "aud", Roles: models.NewJSON([]string{models.RoleAuditor})})
	jar.SetCookies(base, []*http.Cookie{{Name: "transit_session", Value: auditor}})
	for _, page := range []string{"/deployments", "/deployments/" + id, "/targets"} {
		resp, err = hc.Get(s.baseURL + page)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 403, resp.StatusCode, page)
	}
	// A sign-in form posted from another site is refused (login CSRF).
	req, _ := http.NewRequest("POST", s.baseURL+"/login", strings.NewReader("token="+url.QueryEscape(rita)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 403, resp.StatusCode)
}
