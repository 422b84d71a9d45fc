package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/identity"
	"github.com/transit-hq/transit/models"
)

// issuer is a real local OIDC issuer: a discovery document and a JWKS,
// and tokens signed with a key the test makes (and may rotate).
type issuer struct {
	*httptest.Server
	mu  sync.Mutex
	key *rsa.PrivateKey
	kid string
	// The console's sign-in: who signs in at /authorize, and the codes given.
	loginAs map[string]any
	codes   map[string]authRequest
}

// authRequest is what /authorize was asked, kept for /token.
type authRequest struct{ nonce, challenge string }

func newIssuer(t *testing.T) *issuer {
	iss := &issuer{}
	iss.rotate(t, "k1")
	iss.codes = map[string]authRequest{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss.URL, "jwks_uri": iss.URL + "/keys",
			"authorization_endpoint": iss.URL + "/auth", "token_endpoint": iss.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	// The person signs in at once (as loginAs) and is sent back with a code.
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("client_id") != "transit-console" {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		code := "code-" + q.Get("state")
		iss.mu.Lock()
		iss.codes[code] = authRequest{nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
		iss.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+url.QueryEscape(code)+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		iss.mu.Lock()
		req, ok := iss.codes[r.Form.Get("code")]
		delete(iss.codes, r.Form.Get("code"))
		who := iss.loginAs
		iss.mu.Unlock()
		sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		claims := map[string]any{"aud": "transit-console", "nonce": req.nonce}
		for k, v := range who {
			claims[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600,
			"id_token": iss.token(t, fmt.Sprint(who["sub"]), claims)})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		defer iss.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &iss.key.PublicKey, KeyID: iss.kid, Algorithm: "RS256", Use: "sig"}}})
	})
	iss.Server = httptest.NewServer(mux)
	t.Cleanup(iss.Close)
	return iss
}

// rotate makes a new signing key; the JWKS publishes only it from now on.
func (iss *issuer) rotate(t *testing.T, kid string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	iss.mu.Lock()
	iss.key, iss.kid = key, kid
	iss.mu.Unlock()
}

// token signs claims (on top of valid ones for subject; nil deletes one).
func (iss *issuer) token(t *testing.T, subject string, extra map[string]any) string {
	claims := map[string]any{"iss": iss.URL, "aud": "transit", "sub": subject,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	iss.mu.Lock()
	key, kid := iss.key, iss.kid
	iss.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	raw, err := jws.CompactSerialize()
	require.NoError(t, err)
	return raw
}

// An identity provider's people sign in with its JWTs: roles and teams
// come from claims or from the group map, the API's rules apply to them,
// and the audit log names the subject the token names.
func TestSignInWithOIDC(t *testing.T) {
	iss := newIssuer(t)
	groupMap, err := identity.ParseGroupMap("Release Managers=release_manager")
	require.NoError(t, err)
	s := newStack(t, stackOptions{oidc: &identity.Config{Issuer: iss.URL, Audience: "transit", GroupMap: groupMap}})
	policy := quickPolicy()
	policy.ApprovalsRequired = 1
	policy.ApproverGroups = []string{"release-managers"}
	c := s.seed("prod", 1, policy, "", "1.0.0") // owned by team web

	// A deployer of web, from claims.
	dana := iss.token(t, "dana@example.com", map[string]any{"roles": []string{"deployer"}, "teams": []string{"web"}})
	who := s.call("GET", "/api/v1/whoami", dana, nil)
	require.Equal(t, 200, who.Status, who.Raw)
	require.Equal(t, "dana@example.com", who.str("subject"))
	require.Equal(t, `["deployer"]`, who.str("roles"))
	require.Equal(t, "oidc", who.str("via"))
	r := s.call("POST", "/api/v1/environments", dana, map[string]any{"application_id": c.app, "name": "qa"})
	require.Equal(t, 403, r.Status, "a deployer from the IdP is still only a deployer: %s", r.Raw)
	id := s.deploy(dana, map[string]any{"release": c.releases["1.0.0"], "environment": c.env})
	s.waitStatus(id, 30*time.Second, models.StatusAwaitingApproval)

	// An approver whose role comes from the group map.
	rita := iss.token(t, "rita@example.com", map[string]any{"groups": []string{"release-managers", "Release Managers"}})
	who = s.call("GET", "/api/v1/whoami", rita, nil)
	require.Equal(t, `["release_manager"]`, who.str("roles"), who.Raw)
	r = s.call("POST", "/api/v1/deployments/"+id+"/approvals", rita, map[string]any{"decision": "approve", "comment": "signed in"})
	require.Equal(t, 200, r.Status, r.Raw)
	s.waitStatus(id, time.Minute, models.StatusCompleted)
	require.EventuallyWithT(t, func(c *assertCollect) {
		if len(s.must(200, "GET", "/api/v1/audit?actor=rita@example.com&action=approve", nil).items()) != 1 {
			c.Errorf("the approval is not in the audit log under the token's subject yet")
		}
	}, 10*time.Second, 200*time.Millisecond)
	require.Len(t, s.must(200, "GET", "/api/v1/audit?actor=dana@example.com&resource_type=deployment&action=create", nil).items(), 1)

	// Refused: expired, another audience, no subject, a key the issuer
	// no longer publishes; a rotated key is taken.
	for name, tok := range map[string]string{
		"expired":       iss.token(t, "dana@example.com", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}),
		"wrong aud":     iss.token(t, "dana@example.com", map[string]any{"aud": "another-app"}),
		"no subject":    iss.token(t, "", map[string]any{"sub": nil}),
		"forged issuer": iss.token(t, "dana@example.com", map[string]any{"iss": "https://evil.example"}),
	} {
		r := s.call("GET", "/api/v1/whoami", tok, nil)
		require.Equal(t, 401, r.Status, "%s: %s", name, r.Raw)
		require.Equal(t, "unauthenticated", r.str("error", "code"), name)
	}
	old := dana
	iss.rotate(t, "k2")
	fresh := iss.token(t, "dana@example.com", map[string]any{"roles": []string{"viewer"}})
	r = s.call("GET", "/api/v1/whoami", fresh, nil)
	require.Equal(t, 200, r.Status, "a token of the rotated key: %s", r.Raw)
	r = s.call("GET", "/api/v1/whoami", old, nil)
	require.Equal(t, 401, r.Status, "a token of a key no longer published: %s", r.Raw)
	require.Contains(t, r.str("error", "message"), "signing key")
}

// The console signs people in at the identity provider (authorization code
// with PKCE): the session names the ID token's subject, with roles from the
// group map; a callback that this browser did not start is refused.
func TestConsoleSignInAtTheIdentityProvider(t *testing.T) {
	iss := newIssuer(t)
	groupMap, err := identity.ParseGroupMap("Release Managers=release_manager")
	require.NoError(t, err)
	s := newStack(t, stackOptions{oidc: &identity.Config{Issuer: iss.URL, Audience: "transit", ClientID: "transit-console", GroupMap: groupMap}})
	iss.mu.Lock()
	iss.loginAs = map[string]any{"sub": "rita@example.com", "groups": []string{"Release Managers", "release-managers"}}
	iss.mu.Unlock()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(s.baseURL + "/login")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(page), `href="/login/oidc"`, "the sign-in page offers the identity provider")

	resp, err = browser.Get(s.baseURL + "/login/oidc") // → the IdP → back, signed in
	require.NoError(t, err)
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(page))
	require.Contains(t, string(page), `url=/approvals`, "a page of the console's own moves on (a browser follows it)")
	resp, err = browser.Get(s.baseURL + "/approvals")
	require.NoError(t, err)
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(page))
	require.Contains(t, string(page), "My approvals")
	require.Contains(t, string(page), "rita@example.com")
	u, _ := url.Parse(s.baseURL)
	var session string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "transit_session" {
			session = ck.Value
		}
	}
	require.True(t, strings.HasPrefix(session, "s1."), "a sealed session, not a token: %q", session)

	// A forged session, and a callback this browser did not start.
	other, _ := cookiejar.New(nil)
	other.SetCookies(u, []*http.Cookie{{Name: "transit_session", Value: session[:len(session)-4] + "0000"}})
	noRedirect := &http.Client{Jar: other, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Get(s.baseURL + "/approvals")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a forged session signs no one in")
	resp, err = noRedirect.Get(s.baseURL + "/login/oidc/callback?code=code-x&state=x")
	require.NoError(t, err)
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode)
	require.Contains(t, string(page), "this sign-in did not start here")
}
