package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

const testAudience = "transit"

// testKey is an RSA signing key with its key id.
type testKey struct {
	kid  string
	priv *rsa.PrivateKey
}

func newKey(t *testing.T, kid string) *testKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return &testKey{kid: kid, priv: priv}
}

// sign makes an RS256 JWT of claims.
func (k *testKey) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
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

// testIssuer is a real local OIDC issuer: discovery document and JWKS.
type testIssuer struct {
	srv *httptest.Server
	URL string

	mu        sync.Mutex
	published []jose.JSONWebKey

	discoveryHits, jwksHits atomic.Int32
}

// newTestIssuer starts an issuer publishing keys, on a fresh port.
func newTestIssuer(t *testing.T, keys ...*testKey) *testIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return startIssuerOn(t, ln, keys...)
}

// startIssuerOn starts an issuer serving on ln.
func startIssuerOn(t *testing.T, ln net.Listener, keys ...*testKey) *testIssuer {
	t.Helper()
	iss := &testIssuer{}
	iss.publish(keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.discoveryHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/keys",
			"authorization_endpoint":                iss.URL + "/auth",
			"token_endpoint":                        iss.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		iss.jwksHits.Add(1)
		iss.mu.Lock()
		set := jose.JSONWebKeySet{Keys: iss.published}
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	iss.srv = httptest.NewUnstartedServer(mux)
	_ = iss.srv.Listener.Close()
	iss.srv.Listener = ln
	iss.srv.Start()
	iss.URL = iss.srv.URL
	t.Cleanup(iss.srv.Close)
	return iss
}

// publish replaces the JWKS with the public halves of keys.
func (iss *testIssuer) publish(keys ...*testKey) {
	var set []jose.JSONWebKey
	for _, k := range keys {
		set = append(set, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"})
	}
	iss.mu.Lock()
	iss.published = set
	iss.mu.Unlock()
}

// claims returns valid claims for issuer url, with extra set (nil deletes).
func claims(url string, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": url,
		"aud": testAudience,
		"sub": "alice",
		"iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func (iss *testIssuer) config() Config {
	return Config{Issuer: iss.URL, Audience: testAudience}
}

// requireRefused checks err is an authentication failure whose message
// contains every one of want.
func requireRefused(t *testing.T, err error, want ...string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, models.ErrUnauthenticated)
	require.NotErrorIs(t, err, ErrIssuerUnavailable)
	for _, w := range want {
		require.Contains(t, err.Error(), w)
	}
}

func TestValidTokenMapsClaims(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	cfg := iss.config()
	cfg.GroupMap = map[string]Grant{
		"Platform Admins": {Roles: []string{models.RoleAdmin}, Teams: []string{"platform"}},
		"payments-devs":   {Roles: []string{models.RoleDeployer}, Teams: []string{"payments", "checkout"}},
		"not-a-member":    {Roles: []string{models.RoleAuditor}},
	}
	v := NewVerifier(cfg)
	require.Zero(t, iss.discoveryHits.Load(), "NewVerifier must not contact the issuer")

	tok := key.sign(t, claims(iss.URL, map[string]any{
		"aud":    []string{"other-client", testAudience},
		"groups": []string{"payments-devs", "Platform Admins", "UPPER", "sre", "sre", "bad name"},
		"teams":  "search",
		"roles":  []string{"viewer", "superuser", "viewer"},
	}))
	require.True(t, LooksLikeJWT(tok))

	p, err := v.Principal(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, models.Principal{
		Subject: "alice",
		// "Platform Admins", "UPPER" and "bad name" are no valid group names.
		Groups: []string{"payments-devs", "sre"},
		Teams:  []string{"checkout", "payments", "platform", "search"},
		// "superuser" is unknown; admin and deployer come from GroupMap.
		Roles: []string{models.RoleAdmin, models.RoleDeployer, models.RoleViewer},
		Via:   "oidc",
	}, p)

	// Discovery is done once and kept.
	_, err = v.Principal(context.Background(), tok)
	require.NoError(t, err)
	require.EqualValues(t, 1, iss.discoveryHits.Load())
}

func TestClaimsAbsentMeanNone(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())

	p, err := v.Principal(context.Background(), key.sign(t, claims(iss.URL, map[string]any{"groups": nil})))
	require.NoError(t, err)
	require.Equal(t, "alice", p.Subject)
	require.Equal(t, []string{}, p.Groups)
	require.Equal(t, []string{}, p.Teams)
	require.Equal(t, []string{}, p.Roles, "no default roles for an OIDC principal")
}

func TestCustomClaimNames(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	cfg := iss.config()
	cfg.SubjectClaim, cfg.GroupsClaim, cfg.TeamsClaim, cfg.RolesClaim = "email", "https://transit/groups", "squads", "transit_roles"
	v := NewVerifier(cfg)

	p, err := v.Principal(context.Background(), key.sign(t, claims(iss.URL, map[string]any{
		"email":                  "bob@example.com",
		"https://transit/groups": []string{"ops"},
		"groups":                 []string{"ignored"},
		"squads":                 []string{"search"},
		"transit_roles":          "auditor",
		"roles":                  []string{"admin"}, // not the configured claim
	})))
	require.NoError(t, err)
	require.Equal(t, models.Principal{Subject: "bob@example.com", Groups: []string{"ops"}, Teams: []string{"search"},
		Roles: []string{models.RoleAuditor}, Via: "oidc"}, p)
}

func TestExpiredToken(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())

	_, err := v.Principal(context.Background(), key.sign(t, claims(iss.URL, map[string]any{
		"iat": time.Now().Add(-2 * time.Hour).Unix(),
		"exp": time.Now().Add(-time.Minute).Unix(),
	})))
	requireRefused(t, err, "expired")

	_, err = v.Principal(context.Background(), key.sign(t, claims(iss.URL, map[string]any{"exp": nil})))
	requireRefused(t, err, "no exp")
}

func TestWrongAudience(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())

	_, err := v.Principal(context.Background(), key.sign(t, claims(iss.URL, map[string]any{"aud": "another-app"})))
	requireRefused(t, err, "audience", "another-app", testAudience)
}

func TestWrongIssuer(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())

	// Signed by a key the configured issuer publishes, but claiming another issuer.
	_, err := v.Principal(context.Background(), key.sign(t, claims("https://evil.example.com", nil)))
	requireRefused(t, err, "issuer", "https://evil.example.com")

	// From another IdP altogether: its own key and issuer.
	other := newKey(t, "other-idp")
	_, err = v.Principal(context.Background(), other.sign(t, claims("https://other-idp.example.com", nil)))
	requireRefused(t, err, "issuer", "https://other-idp.example.com")
}

func TestKeyRotation(t *testing.T) {
	oldKey, newKey_ := newKey(t, "2024"), newKey(t, "2025")
	iss := newTestIssuer(t, oldKey)
	v := NewVerifier(iss.config())
	ctx := context.Background()

	oldTok := oldKey.sign(t, claims(iss.URL, nil))
	_, err := v.Principal(ctx, oldTok)
	require.NoError(t, err)
	hits := iss.jwksHits.Load()

	// The issuer rotates: only the new key is published from now on.
	iss.publish(newKey_)
	p, err := v.Principal(ctx, newKey_.sign(t, claims(iss.URL, map[string]any{"sub": "carol"})))
	require.NoError(t, err, "a token signed with the rotated-in key must be accepted")
	require.Equal(t, "carol", p.Subject)
	require.Greater(t, iss.jwksHits.Load(), hits, "the unknown key id must make the verifier re-fetch the JWKS")

	// The retired key is no longer accepted, even though the verifier used it before.
	_, err = v.Principal(ctx, oldTok)
	requireRefused(t, err, "unknown signing key", `"2024"`)
}

func TestUnpublishedKey(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())
	ctx := context.Background()

	intruder := newKey(t, "intruder")
	_, err := v.Principal(ctx, intruder.sign(t, claims(iss.URL, nil)))
	requireRefused(t, err, "unknown signing key", `"intruder"`)

	// Same key id as the published key, different key material.
	forger := newKey(t, "k1")
	_, err = v.Principal(ctx, forger.sign(t, claims(iss.URL, nil)))
	requireRefused(t, err, "unknown signing key")

	// The genuine key still works after those attempts.
	_, err = v.Principal(ctx, key.sign(t, claims(iss.URL, nil)))
	require.NoError(t, err)
}

func TestUnsignedAndWrongAlgorithmTokens(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())
	payload, err := json.Marshal(claims(iss.URL, nil))
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString

	// alg "none", with a dummy signature so it has the shape of a JWT.
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + ".AAAA"
	_, err = v.Principal(context.Background(), none)
	requireRefused(t, err, "not a well-formed signed JWT")

	// HS256 keyed with the public key's bytes: the classic algorithm confusion.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key.priv.PublicKey.N.Bytes()}, nil)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	hs, err := jws.CompactSerialize()
	require.NoError(t, err)
	_, err = v.Principal(context.Background(), hs)
	requireRefused(t, err, "HS256")
}

func TestSubjectClaim(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	cfg := iss.config()
	cfg.SubjectClaim = "email"
	v := NewVerifier(cfg)
	ctx := context.Background()

	_, err := v.Principal(ctx, key.sign(t, claims(iss.URL, nil))) // has sub, no email
	requireRefused(t, err, "the token has no email claim")

	_, err = v.Principal(ctx, key.sign(t, claims(iss.URL, map[string]any{"email": ""})))
	requireRefused(t, err, "the token has no email claim")

	_, err = v.Principal(ctx, key.sign(t, claims(iss.URL, map[string]any{"email": 42})))
	requireRefused(t, err, "the token has no email claim")

	_, err = v.Principal(ctx, key.sign(t, claims(iss.URL, map[string]any{"email": strings.Repeat("a", 129)})))
	requireRefused(t, err, "longer than 128")

	_, err = v.Principal(ctx, key.sign(t, claims(iss.URL, map[string]any{"email": "eve\n@example.com"})))
	requireRefused(t, err, "control characters")

	p, err := v.Principal(ctx, key.sign(t, claims(iss.URL, map[string]any{"email": strings.Repeat("a", 128)})))
	require.NoError(t, err)
	require.Len(t, p.Subject, 128)
}

func TestMalformedListClaim(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())

	_, err := v.Principal(context.Background(), key.sign(t, claims(iss.URL, map[string]any{"groups": map[string]any{"a": 1}})))
	requireRefused(t, err, "groups claim is neither a string nor a list of strings")
}

func TestIssuerDownThenUp(t *testing.T) {
	// Take a free port, and leave it closed for now: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	url := "http://" + addr

	key := newKey(t, "k1")
	tok := key.sign(t, claims(url, nil))
	v := NewVerifier(Config{Issuer: url, Audience: testAudience})

	_, err = v.Principal(context.Background(), tok)
	require.NotErrorIs(t, err, models.ErrUnauthenticated, "an IdP outage is not a bad token")
	require.Contains(t, err.Error(), "cannot read the OIDC discovery document of "+url)

	// The IdP comes up; the same verifier now works.
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	iss := startIssuerOn(t, ln, key)
	require.Equal(t, url, iss.URL)

	p, err := v.Principal(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, "alice", p.Subject)
}

func TestKeysUnreachableAfterDiscovery(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())
	ctx := context.Background()
	_, err := v.Principal(ctx, key.sign(t, claims(iss.URL, nil)))
	require.NoError(t, err)

	iss.srv.Close() // the IdP goes down

	// A key already fetched keeps working.
	_, err = v.Principal(ctx, key.sign(t, claims(iss.URL, nil)))
	require.NoError(t, err)

	// A new key id cannot be checked: an outage, not a bad token.
	_, err = v.Principal(ctx, newKey(t, "k2").sign(t, claims(iss.URL, nil)))
	require.ErrorIs(t, err, ErrIssuerUnavailable)
	require.NotErrorIs(t, err, models.ErrUnauthenticated)
	require.Contains(t, err.Error(), "cannot fetch the signing keys")
}

func TestIssuerMismatchInDiscovery(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	// Configured with a trailing slash the IdP does not use.
	v := NewVerifier(Config{Issuer: iss.URL + "/", Audience: testAudience})

	_, err := v.Principal(context.Background(), key.sign(t, claims(iss.URL, nil)))
	require.Contains(t, err.Error(), "must match it exactly")
}

func TestConcurrentFirstUse(t *testing.T) {
	key := newKey(t, "k1")
	iss := newTestIssuer(t, key)
	v := NewVerifier(iss.config())
	tok := key.sign(t, claims(iss.URL, nil))

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = v.Principal(context.Background(), tok) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, iss.discoveryHits.Load(), "concurrent first calls share one discovery")
}

func TestNotConfiguredAndNotJWT(t *testing.T) {
	_, err := NewVerifier(Config{}).Principal(context.Background(), "a.b.c")
	requireRefused(t, err, "not configured")

	_, err = NewVerifier(Config{Issuer: "http://127.0.0.1:1", Audience: "x"}).Principal(context.Background(), "trt_abcdef")
	requireRefused(t, err, "not a JWT")
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_x": true,
		"trt_4bq3x7mzy2kq6fgh5vwd2ljr3xkyn4sa":         false,
		"a.b":                                          false,
		"a.b.c.d":                                      false,
		"a..c":                                         false,
		".b.c":                                         false,
		"a.b.":                                         false,
		"a.b.c=":                                       false, // padding is not base64url as JWTs use it
		"a.b+/.c":                                      false,
		"a.b.c d":                                      false,
		"":                                             false,
		"abc.def.g":                                    true,
	} {
		require.Equal(t, want, LooksLikeJWT(s), "LooksLikeJWT(%q)", s)
	}
}

func TestParseGroupMap(t *testing.T) {
	m, err := ParseGroupMap(" platform = admin ; payments-devs=deployer+viewer:payments+checkout;Oncall Team=:oncall;")
	require.NoError(t, err)
	require.Equal(t, map[string]Grant{
		"platform":      {Roles: []string{"admin"}},
		"payments-devs": {Roles: []string{"deployer", "viewer"}, Teams: []string{"payments", "checkout"}},
		"Oncall Team":   {Teams: []string{"oncall"}},
	}, m)

	m, err = ParseGroupMap("")
	require.NoError(t, err)
	require.Empty(t, m)

	for input, want := range map[string][]string{
		"ops=superuser+viewer+root":      {`unknown role(s) superuser, root`, "viewer, deployer"},
		"ops=admin;dev=boss":             {`group "dev"`, "unknown role(s) boss"},
		"ops":                            {`entry "ops" must look like group=role`},
		"=admin":                         {`entry "=admin"`},
		"ops=admin;ops=viewer":           {`group "ops" appears more than once`},
		"ops=admin:Bad Team":             {`team "Bad Team"`},
		"ops=:":                          {`group "ops" grants no role and no team`},
		"ops=nope;dev=deployer:BAD;x=y+": {"nope", "BAD", "y"}, // every problem is reported
	} {
		_, err := ParseGroupMap(input)
		require.Error(t, err, input)
		for _, w := range want {
			require.Contains(t, err.Error(), w, input)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}

	cfg, err := ConfigFromEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, Config{}, cfg, "nothing set: OIDC off")

	_, err = ConfigFromEnv(env(map[string]string{EnvIssuer: "https://idp.example.com"}))
	require.ErrorContains(t, err, "TRANSIT_OIDC_AUDIENCE is not")

	_, err = ConfigFromEnv(env(map[string]string{EnvAudience: "transit"}))
	require.ErrorContains(t, err, "TRANSIT_OIDC_ISSUER is not")

	_, err = ConfigFromEnv(env(map[string]string{EnvGroupMap: "ops=admin"}))
	require.ErrorContains(t, err, "TRANSIT_OIDC_GROUP_MAP is set but TRANSIT_OIDC_ISSUER")

	_, err = ConfigFromEnv(env(map[string]string{EnvIssuer: "idp.example.com", EnvAudience: "transit"}))
	require.ErrorContains(t, err, "must be an http(s) URL")

	_, err = ConfigFromEnv(env(map[string]string{EnvIssuer: "http://idp.example.com", EnvAudience: "transit"}))
	require.ErrorContains(t, err, "must use https")

	cfg, err = ConfigFromEnv(env(map[string]string{EnvIssuer: "http://127.0.0.1:5556", EnvAudience: "transit"}))
	require.NoError(t, err, "plain http on loopback, as in tests and a local IdP")
	require.Equal(t, "http://127.0.0.1:5556", cfg.Issuer)

	_, err = ConfigFromEnv(env(map[string]string{EnvIssuer: "https://idp.example.com", EnvAudience: "transit", EnvGroupMap: "ops=root"}))
	require.ErrorContains(t, err, "TRANSIT_OIDC_GROUP_MAP")
	require.ErrorContains(t, err, "root")

	cfg, err = ConfigFromEnv(env(map[string]string{
		EnvIssuer:       " https://idp.example.com/realms/main ",
		EnvAudience:     "transit",
		EnvSubjectClaim: "email",
		EnvGroupMap:     "ops=admin:platform",
	}))
	require.NoError(t, err)
	require.Equal(t, Config{
		Issuer: "https://idp.example.com/realms/main", Audience: "transit",
		SubjectClaim: "email", GroupsClaim: "groups", TeamsClaim: "teams", RolesClaim: "roles",
		GroupMap: map[string]Grant{"ops": {Roles: []string{"admin"}, Teams: []string{"platform"}}},
	}, cfg)
}
