package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// The console: a few server-rendered pages for approvers and operators,
// embedded in the binary. It signs in with a token (kept in an HttpOnly,
// SameSite=Strict cookie, never in the page), and acts through the same
// paths as the API: the same rules, the same signed Updates, the same
// refusals.

//go:embed console/*.html console/style.css
var consoleFiles embed.FS

const sessionCookie = "transit_session"

var consoleTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"join": strings.Join,
}).ParseFS(consoleFiles, "console/*.html"))

// page is what every console page gets.
type page struct {
	Title     string
	Principal *models.Principal
	CSRF      string
	Flash     string
	Error     string
	Data      any
}

func (h *Handler) consoleRoutes(r *gin.Engine) {
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/approvals") })
	r.GET("/console/style.css", func(c *gin.Context) {
		c.Header("Cache-Control", "max-age=300")
		c.FileFromFS("console/style.css", http.FS(consoleFiles))
	})
	r.GET("/login", h.loginPage)
	r.POST("/login", h.login)
	r.GET("/login/oidc", h.loginOIDC)
	r.GET("/login/oidc/callback", h.loginOIDCCallback)
	s := r.Group("", h.consoleSession)
	s.POST("/logout", h.logout)
	s.GET("/approvals", h.approvalsPage)
	// A page shows what the API route it mirrors would: the same rule.
	s.GET("/deployments", h.consoleRule("GET /api/v1/deployments"), h.deploymentsPage)
	s.GET("/deployments/:id", h.consoleRule("GET /api/v1/deployments/:id"), h.deploymentPage)
	s.GET("/deployments/:id/live", h.consoleRule("GET /api/v1/deployments/:id"), h.deploymentLive)
	s.POST("/deployments/:id/vote", h.consoleVote)
	s.POST("/deployments/:id/control", h.consoleControl)
	s.GET("/targets", h.consoleRule("GET /api/v1/targets"), h.targetsPage)
}

// render writes a page, or a plain error when the template fails.
func (h *Handler) render(c *gin.Context, status int, name string, p page) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("X-Frame-Options", "DENY")
	c.Header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	c.Header("Referrer-Policy", "same-origin")
	c.Status(status)
	if err := consoleTemplates.ExecuteTemplate(c.Writer, name, p); err != nil {
		h.log.ErrorContext(c, "render console page", "page", name, "err", err)
	}
}

func (h *Handler) loginPage(c *gin.Context) {
	h.render(c, http.StatusOK, "login.html", page{Title: "Sign in", Flash: c.Query("flash"), Data: h.oidc.CanLogin()})
}

// login takes a pasted token (a Transit API token, or an OIDC JWT when
// OIDC is configured) and keeps it in the session cookie.
func (h *Handler) login(c *gin.Context) {
	// A sign-in form posted from another site would sign this browser in
	// as someone else (login CSRF).
	if site := c.GetHeader("Sec-Fetch-Site"); (site != "" && site != "same-origin" && site != "none") ||
		(c.GetHeader("Origin") != "" && c.GetHeader("Origin") != origin(c)) {
		h.render(c, http.StatusForbidden, "login.html", page{Title: "Sign in", Error: "this sign-in form was not sent from this console", Data: h.oidc.CanLogin()})
		return
	}
	secret := strings.TrimSpace(c.PostForm("token"))
	p, err := h.principalFor(c, secret)
	if secret == "" || err != nil {
		msg := "paste an API token (transit dev prints one) or a token of your identity provider"
		if err != nil {
			msg = "that token was refused: " + trimSentinel(err.Error())
		}
		h.render(c, http.StatusUnauthorized, "login.html", page{Title: "Sign in", Error: msg, Data: h.oidc.CanLogin()})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", HttpOnly: true,
		Secure: secureRequest(c), SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	h.log.InfoContext(c, "console sign-in", "subject", p.Subject, "via", p.Via)
	c.Redirect(http.StatusSeeOther, "/approvals")
}

func secureRequest(c *gin.Context) bool {
	return c.Request.TLS != nil || strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https")
}

func (h *Handler) logout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, MaxAge: -1,
		Secure: secureRequest(c), SameSite: http.SameSiteStrictMode})
	c.Redirect(http.StatusSeeOther, "/login?flash="+url.QueryEscape("signed out"))
}

// consoleSession requires a signed-in person, and a valid CSRF token on
// every form.
func (h *Handler) consoleSession(c *gin.Context) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck == "" {
		c.Redirect(http.StatusSeeOther, "/login")
		c.Abort()
		return
	}
	p, err := h.sessionPrincipal(c, ck)
	if err != nil {
		http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
		c.Redirect(http.StatusSeeOther, "/login?flash="+url.QueryEscape("sign in again: "+trimSentinel(err.Error())))
		c.Abort()
		return
	}
	c.Set(ctxPrincipal, p)
	if c.Request.Method == http.MethodPost && !hmac.Equal([]byte(c.PostForm("csrf")), []byte(h.csrfToken(ck))) {
		h.render(c, http.StatusForbidden, "error.html", page{Title: "Refused", Principal: &p,
			Error: "this form is stale or did not come from this console (no valid CSRF token): reload the page and try again"})
		c.Abort()
		return
	}
	c.Next()
}

// consoleRule refuses a page to whoever the API route it mirrors refuses.
func (h *Handler) consoleRule(route string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := principal(c)
		if err := h.mayUse(c, p, route, ""); err != nil {
			pg := h.base(c, "Not for you")
			pg.Error = refusalText(err)
			h.render(c, http.StatusForbidden, "error.html", pg)
			c.Abort()
			return
		}
		c.Next()
	}
}

// csrfToken binds forms to the session: an HMAC of the session cookie.
func (h *Handler) csrfToken(session string) string {
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte(session))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

func newCSRFKey(voteKey []byte) []byte {
	if len(voteKey) > 0 {
		m := hmac.New(sha256.New, voteKey)
		m.Write([]byte("transit console csrf"))
		return m.Sum(nil)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// base is the page frame for the signed-in person.
func (h *Handler) base(c *gin.Context, title string) page {
	p, _ := principal(c)
	ck, _ := c.Cookie(sessionCookie)
	return page{Title: title, Principal: &p, CSRF: h.csrfToken(ck), Flash: c.Query("flash"), Error: c.Query("error")}
}

// pendingApproval is one deployment the signed-in person may vote on.
type pendingApproval struct {
	D         models.Deployment
	Plan      models.Plan
	Approvals []models.Approval
	Targets   int
	// Required and Approvers are the quorum (an emergency change's own).
	Required  int
	Approvers []string
}

// approvalsPage lists the deployments awaiting a vote that the signed-in
// person may cast: in an approver group (or any, when the policy names
// none), not yet voted, and not their own request unless the policy allows
// it.
func (h *Handler) approvalsPage(c *gin.Context) {
	pg := h.base(c, "My approvals")
	p := *pg.Principal
	items, err := h.awaiting(c, p)
	if err != nil {
		pg.Error = "the deployments could not be read: " + err.Error()
	}
	pg.Data = items
	h.render(c, http.StatusOK, "approvals.html", pg)
}

func (h *Handler) awaiting(c *gin.Context, p models.Principal) ([]pendingApproval, error) {
	out := []pendingApproval{}
	after := ""
	for {
		pageOf, err := h.store.ListDeployments(c, store.ListOptions{Limit: store.MaxPageSize, After: after,
			Filters: map[string]string{"status": string(models.StatusAwaitingApproval)}})
		if err != nil {
			return out, err
		}
		for _, d := range pageOf.Items {
			if d.Plan.V == nil {
				continue
			}
			pol := d.Plan.V.Policy
			if _, approvers := d.Plan.V.Quorum(); !p.MayApprove(approvers) {
				continue
			}
			if d.RequestedBy == p.Subject && !pol.SelfApprovalAllowed {
				continue
			}
			votes, err := h.store.ListApprovals(c, d.ID)
			if err != nil {
				return out, err
			}
			if slices.ContainsFunc(votes, func(a models.Approval) bool { return a.Approver == p.Subject }) {
				continue
			}
			n := 0
			for _, w := range d.Plan.V.Waves {
				n += len(w)
			}
			required, approvers := d.Plan.V.Quorum()
			out = append(out, pendingApproval{D: d, Plan: *d.Plan.V, Approvals: votes, Targets: n, Required: required, Approvers: approvers})
		}
		if pageOf.NextCursor == "" {
			return out, nil
		}
		after = pageOf.NextCursor
	}
}

func (h *Handler) deploymentsPage(c *gin.Context) {
	pg := h.base(c, "Deployments")
	filters := map[string]string{}
	for _, f := range []string{"status", "application_id", "environment_id"} {
		if v := strings.TrimSpace(c.Query(f)); v != "" {
			filters[f] = v
		}
	}
	if app := filters["application_id"]; app != "" {
		if a, err := h.store.GetApplication(c, app); err == nil {
			filters["application_id"] = a.ID
		}
	}
	list, err := h.store.ListDeployments(c, store.ListOptions{Limit: 100, Filters: filters, Omit: []string{"plan"}, Newest: true,
		After: c.Query("before")})
	if err != nil {
		pg.Error = "the deployments could not be read: " + err.Error()
	}
	pg.Data = map[string]any{"Items": list.Items, "Next": list.NextCursor, "Status": c.Query("status"),
		"Application": c.Query("application_id"), "Statuses": models.AllStatuses}
	h.render(c, http.StatusOK, "deployments.html", pg)
}

// deploymentView is a deployment's page.
type deploymentView struct {
	DeploymentDetail
	Waves    [][]models.DeploymentTarget
	Events   []models.DeploymentEvent
	Controls []string // what the signed-in person may ask here
	CanVote  bool
}

func (h *Handler) deploymentView(c *gin.Context, p models.Principal, id string) (deploymentView, error) {
	det, err := h.deploymentDetail(c, id)
	if err != nil {
		return deploymentView{}, err
	}
	v := deploymentView{DeploymentDetail: det}
	byWave := map[int][]models.DeploymentTarget{}
	maxWave := 0
	for _, t := range det.Targets {
		byWave[t.Wave] = append(byWave[t.Wave], t)
		maxWave = max(maxWave, t.Wave)
	}
	for w := 0; w <= maxWave; w++ {
		if len(byWave[w]) > 0 {
			v.Waves = append(v.Waves, byWave[w])
		}
	}
	// The newest: a long deployment has more than a page shows.
	if v.Events, err = h.store.LastDeploymentEvents(c, id, consoleEvents); err != nil {
		return v, err
	}
	d := det.Deployment
	if !d.Status.Terminal() {
		for _, name := range models.ControlNames {
			if h.mayUse(c, p, "POST /api/v1/deployments/:id/"+name, d.ApplicationID) == nil {
				v.Controls = append(v.Controls, name)
			}
		}
	}
	v.CanVote = d.Status == models.StatusAwaitingApproval
	return v, nil
}

func (h *Handler) deploymentPage(c *gin.Context) {
	pg := h.base(c, "Deployment")
	v, err := h.deploymentView(c, *pg.Principal, c.Param("id"))
	if err != nil {
		status := http.StatusInternalServerError
		if models.IsNotFound(err) {
			status = http.StatusNotFound
		}
		pg.Error = trimSentinel(err.Error())
		h.render(c, status, "error.html", pg)
		return
	}
	pg.Title = "Deployment " + v.Deployment.ID
	pg.Data = v
	h.render(c, http.StatusOK, "deployment.html", pg)
}

// deploymentLive is the part of the deployment page that the page fetches
// again every few seconds.
func (h *Handler) deploymentLive(c *gin.Context) {
	pg := h.base(c, "")
	v, err := h.deploymentView(c, *pg.Principal, c.Param("id"))
	if err != nil {
		c.String(http.StatusNotFound, "")
		return
	}
	pg.Data = v
	h.render(c, http.StatusOK, "live", pg)
}

func (h *Handler) consoleVote(c *gin.Context) {
	p, _ := principal(c)
	id, decision := c.Param("id"), c.PostForm("decision")
	back := "/deployments/" + url.PathEscape(id)
	if h.mayUse(c, p, "GET /api/v1/deployments/:id", "") != nil {
		back = "/approvals" // a voter who may not read deployments
	}
	if decision != models.DecisionApprove && decision != models.DecisionReject {
		c.Redirect(http.StatusSeeOther, back+"?error="+url.QueryEscape("choose approve or reject"))
		return
	}
	comment := strings.TrimSpace(c.PostForm("comment"))
	ve := &models.ValidationError{}
	models.CheckText(ve, "comment", comment)
	if len(comment) > 4096 {
		ve.Add("comment", "must be at most 4096 characters")
	}
	if err := ve.Err(); err != nil {
		c.Redirect(http.StatusSeeOther, back+"?error="+url.QueryEscape(err.Error()))
		return
	}
	res, err := h.vote(c, p, id, decision, comment)
	if err != nil {
		c.Redirect(http.StatusSeeOther, back+"?error="+url.QueryEscape("your vote was refused: "+refusalText(err)))
		return
	}
	msg := fmt.Sprintf("you voted %s (%d of %d approvals)", decision, res.Approvals, res.Required)
	c.Redirect(http.StatusSeeOther, back+"?flash="+url.QueryEscape(msg))
}

func (h *Handler) consoleControl(c *gin.Context) {
	p, _ := principal(c)
	id, name := c.Param("id"), c.PostForm("action")
	back := "/deployments/" + url.PathEscape(id)
	if !slices.Contains(models.ControlNames, name) {
		c.Redirect(http.StatusSeeOther, back+"?error="+url.QueryEscape("unknown action"))
		return
	}
	reason := strings.TrimSpace(c.PostForm("reason"))
	ve := &models.ValidationError{}
	models.CheckText(ve, "reason", reason)
	if len(reason) > 4096 {
		ve.Add("reason", "must be at most 4096 characters")
	}
	if err := ve.Err(); err != nil {
		c.Redirect(http.StatusSeeOther, back+"?error="+url.QueryEscape(err.Error()))
		return
	}
	d, err := h.store.GetDeployment(c, id)
	if err == nil {
		err = h.mayUse(c, p, "POST /api/v1/deployments/:id/"+name, d.ApplicationID)
	}
	if err == nil {
		_, err = h.sendControl(c, p, id, name, reason)
	}
	if err != nil {
		c.Redirect(http.StatusSeeOther, back+"?error="+url.QueryEscape(name+" refused: "+refusalText(err)))
		return
	}
	c.Redirect(http.StatusSeeOther, back+"?flash="+url.QueryEscape("asked to "+name))
}

// refusalText is what a refused request says, as the API would say it.
func refusalText(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.message
	}
	return trimSentinel(err.Error())
}

// targetRow is one target: what runs there now and what would be rolled
// back to.
type targetRow struct {
	models.Target
	State models.TargetState
}

func (h *Handler) targetsPage(c *gin.Context) {
	pg := h.base(c, "What runs where")
	filters := map[string]string{}
	if env := strings.TrimSpace(c.Query("environment_id")); env != "" {
		filters["environment_id"] = env
	}
	list, err := h.store.ListTargets(c, store.ListOptions{Limit: store.MaxPageSize, Filters: filters, After: c.Query("after")})
	rows := []targetRow{}
	if err == nil {
		ids := make([]string, len(list.Items))
		for i, t := range list.Items {
			ids[i] = t.ID
		}
		var states map[string]models.TargetState
		if states, err = h.store.TargetStates(c, ids); err == nil {
			for _, t := range list.Items {
				rows = append(rows, targetRow{Target: t, State: states[t.ID]})
			}
		}
	}
	if err != nil {
		pg.Error = "the targets could not be read: " + err.Error()
	}
	pg.Data = map[string]any{"Rows": rows, "Next": list.NextCursor}
	h.render(c, http.StatusOK, "targets.html", pg)
}

// ---- sign-in at the identity provider (OIDC authorization code + PKCE)

const (
	loginCookie    = "transit_oidc_login"
	sessionVersion = "s1"
	loginVersion   = "l1"
)

// sealed is a value the server signs (with the console's key) and later
// trusts: a session after an IdP sign-in, or a sign-in under way.
func (h *Handler) seal(kind string, v any) string {
	b, _ := json.Marshal(v)
	body := base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte(kind + "." + body))
	return kind + "." + body + "." + hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) unseal(kind, s string, v any) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != kind {
		return false
	}
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte(kind + "." + parts[1]))
	if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(parts[2])) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	return err == nil && json.Unmarshal(b, v) == nil
}

// session is who signed in at the IdP, until when.
type session struct {
	P   models.Principal `json:"p"`
	Exp int64            `json:"exp"`
}

// sessionPrincipal is who the session cookie names: a session sealed at an
// IdP sign-in, or a pasted token checked as the API checks it.
func (h *Handler) sessionPrincipal(c *gin.Context, ck string) (models.Principal, error) {
	if strings.HasPrefix(ck, sessionVersion+".") {
		var s session
		if !h.unseal(sessionVersion, ck, &s) {
			return models.Principal{}, fmt.Errorf("the session is not one this server made: %w", models.ErrUnauthenticated)
		}
		if time.Now().Unix() > s.Exp {
			return models.Principal{}, fmt.Errorf("the session ended: %w", models.ErrUnauthenticated)
		}
		return s.P, nil
	}
	return h.principalFor(c, ck)
}

// consoleEvents is how many of a deployment's newest events its page shows.
const consoleEvents = 500

// pendingLogin is a sign-in under way: what the callback must see again.
type pendingLogin struct {
	State, Verifier, Nonce string
	Exp                    int64
}

// callbackURL is where the IdP sends people back: under TRANSIT_PUBLIC_URL
// when it was set, else where this request reached the server.
func (h *Handler) callbackURL(c *gin.Context) string {
	if h.publicURLSet {
		return h.publicURL + "/login/oidc/callback"
	}
	return origin(c) + "/login/oidc/callback"
}

// origin is where this request reached the server.
func origin(c *gin.Context) string {
	scheme := "http"
	if secureRequest(c) {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// loginOIDC sends the person to the IdP, with a state, a nonce and a PKCE
// verifier kept in a short-lived signed cookie.
func (h *Handler) loginOIDC(c *gin.Context) {
	cfg, err := h.oidc.LoginConfig(c, h.callbackURL(c))
	if err != nil {
		h.render(c, http.StatusServiceUnavailable, "login.html", page{Title: "Sign in", Error: "sign-in at the identity provider is not available: " + trimSentinel(err.Error())})
		return
	}
	pl := pendingLogin{State: randomToken(), Verifier: oauth2.GenerateVerifier(), Nonce: randomToken(), Exp: time.Now().Add(10 * time.Minute).Unix()}
	// Lax: the IdP's redirect back is a top-level navigation from its site.
	http.SetCookie(c.Writer, &http.Cookie{Name: loginCookie, Value: h.seal(loginVersion, pl), Path: "/login/oidc", HttpOnly: true,
		Secure: secureRequest(c), SameSite: http.SameSiteLaxMode, MaxAge: 600})
	c.Redirect(http.StatusFound, cfg.AuthCodeURL(pl.State, oauth2.S256ChallengeOption(pl.Verifier), oidc.Nonce(pl.Nonce)))
}

// loginOIDCCallback takes the IdP's answer: the state must be this
// browser's, the code is exchanged (with the PKCE verifier) for an ID token,
// which is verified (signature, issuer, audience: the client id, expiry,
// nonce); the session holds the principal it names until it expires (at
// most 12 h).
func (h *Handler) loginOIDCCallback(c *gin.Context) {
	fail := func(status int, msg string) {
		h.render(c, status, "login.html", page{Title: "Sign in", Error: msg, Data: h.oidc.CanLogin()})
	}
	ck, _ := c.Cookie(loginCookie)
	http.SetCookie(c.Writer, &http.Cookie{Name: loginCookie, Value: "", Path: "/login/oidc", MaxAge: -1, HttpOnly: true})
	var pl pendingLogin
	if !h.unseal(loginVersion, ck, &pl) || time.Now().Unix() > pl.Exp || c.Query("state") == "" ||
		!hmac.Equal([]byte(c.Query("state")), []byte(pl.State)) {
		fail(http.StatusBadRequest, "this sign-in did not start here, or took too long: sign in again")
		return
	}
	if e := c.Query("error"); e != "" {
		fail(http.StatusUnauthorized, "the identity provider refused the sign-in: "+e+" "+c.Query("error_description"))
		return
	}
	cfg, err := h.oidc.LoginConfig(c, h.callbackURL(c))
	if err != nil {
		fail(http.StatusServiceUnavailable, "sign-in at the identity provider is not available: "+trimSentinel(err.Error()))
		return
	}
	tok, err := cfg.Exchange(c, c.Query("code"), oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "the identity provider did not give a token for this sign-in: "+err.Error())
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	p, exp, err := h.oidc.LoginPrincipal(c, raw, pl.Nonce)
	if err != nil {
		fail(http.StatusUnauthorized, "the identity provider's token was refused: "+trimSentinel(err.Error()))
		return
	}
	until := time.Now().Add(12 * time.Hour)
	if exp.Before(until) {
		until = exp
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: h.seal(sessionVersion, session{P: p, Exp: until.Unix()}), Path: "/",
		HttpOnly: true, Secure: secureRequest(c), SameSite: http.SameSiteStrictMode, MaxAge: int(time.Until(until).Seconds())})
	h.log.InfoContext(c, "console sign-in", "subject", p.Subject, "via", "oidc login")
	// Strict cookies are not sent on this cross-site redirect chain's next
	// hop in every browser; a page of our own moves on.
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.String(http.StatusOK, `<!doctype html><meta http-equiv="refresh" content="0;url=/approvals"><a href="/approvals">Continue</a>`)
}
