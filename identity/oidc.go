package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/transit-hq/transit/models"
)

// ErrIssuerUnavailable: the IdP's discovery document or signing keys could
// not be fetched, so a token could not be checked. It is an outage (or a
// misconfigured issuer), not a bad token, so it does not wrap
// models.ErrUnauthenticated; a caller should answer 503.
var ErrIssuerUnavailable = errors.New("OIDC issuer unavailable")

const (
	// httpTimeout bounds each request to the IdP (discovery, JWKS), so a
	// hung IdP cannot hold a key refresh, and every request waiting on it,
	// forever.
	httpTimeout = 10 * time.Second
	// maxTokenLen refuses absurd bearer values before parsing them.
	maxTokenLen = 64 << 10
	// maxSubjectLen matches models.APIToken's subject limit.
	maxSubjectLen = 128
)

// Verifier checks OIDC bearer JWTs against one issuer. Safe for concurrent
// use.
type Verifier struct {
	cfg    Config
	client *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // set once discovery has succeeded
	login    *oidc.IDTokenVerifier // for the console's ID tokens (audience ClientID)
	endpoint oauth2.Endpoint       // the IdP's authorization and token endpoints
	pending  chan struct{}         // closed when the running discovery ends; nil if none runs
	lastErr  error                 // why the last discovery failed
}

// NewVerifier does not contact the issuer; discovery happens on first use and
// is retried on later calls if it failed (so a server starts even when the
// IdP is briefly down). Safe for concurrent use.
func NewVerifier(cfg Config) *Verifier {
	return &Verifier{cfg: cfg.withDefaults(), client: &http.Client{Timeout: httpTimeout}}
}

// LooksLikeJWT reports whether a bearer secret has the shape of a JWT (three
// base64url parts separated by dots), so the caller can tell it from an API
// token.
func LooksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.ContainsFunc(p, func(r rune) bool {
			return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return false
		}
	}
	return true
}

// Principal verifies signature (issuer's JWKS via discovery), expiry,
// audience and issuer, then maps claims.
//
// Subject comes from SubjectClaim (must be a non-empty string of at most 128
// characters, else the token is refused). Groups/Teams/Roles claims may be a
// JSON array of strings or a single string; absent means none. Groups and
// teams that are not valid names are dropped; roles are filtered to known
// role names; GroupMap grants (matched on the IdP's raw group names) are
// added; results are deduplicated and sorted. Via = "oidc".
//
// A refused token gives an error wrapping models.ErrUnauthenticated; an IdP
// that cannot be reached gives one wrapping ErrIssuerUnavailable.
func (v *Verifier) Principal(ctx context.Context, rawJWT string) (models.Principal, error) {
	if v.cfg.Issuer == "" {
		return models.Principal{}, fmt.Errorf("OIDC sign-in is not configured: %w", models.ErrUnauthenticated)
	}
	if len(rawJWT) > maxTokenLen {
		return models.Principal{}, refuse("the token is longer than %d bytes", maxTokenLen)
	}
	if !LooksLikeJWT(rawJWT) {
		return models.Principal{}, refuse("the bearer token is not a JWT")
	}
	verifier, err := v.idTokenVerifier(ctx)
	if err != nil {
		return models.Principal{}, err
	}
	tok, err := verifier.Verify(ctx, rawJWT)
	if err != nil {
		return models.Principal{}, v.explain(ctx, rawJWT, err)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return models.Principal{}, refuse("cannot read the token's claims: %v", err)
	}
	return v.mapClaims(claims)
}

// idTokenVerifier returns the go-oidc verifier, running discovery if it has
// not succeeded yet. One discovery runs at a time; callers arriving while it
// runs share its result. It runs detached from ctx, so one caller giving up
// does not fail the others.
func (v *Verifier) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	if v.verifier != nil {
		defer v.mu.Unlock()
		return v.verifier, nil
	}
	if v.pending == nil {
		v.pending = make(chan struct{})
		go v.discover(v.pending)
	}
	done := v.pending
	v.mu.Unlock()

	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for OIDC discovery of %s: %w", v.cfg.Issuer, ctx.Err())
	case <-done:
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	return nil, v.lastErr
}

// discover fetches the issuer's discovery document and, on success, keeps a
// verifier whose key set (go-oidc's RemoteKeySet) re-fetches the JWKS when
// it meets an unknown key id: that is how key rotation is followed.
func (v *Verifier) discover(done chan struct{}) {
	ctx := oidc.ClientContext(context.Background(), v.client)
	var verifier, login *oidc.IDTokenVerifier
	var endpoint oauth2.Endpoint
	provider, err := oidc.NewProvider(ctx, v.cfg.Issuer)
	var mismatch *oidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		// Causes are formatted with %v, not %w, throughout: a wrapped
		// net.Error would make the API take this for a database outage.
		err = fmt.Errorf("the discovery document of %s names the issuer %q: %s must match it exactly (including any trailing slash): %w",
			v.cfg.Issuer, mismatch.Discovered, EnvIssuer, ErrIssuerUnavailable)
	case err != nil:
		err = fmt.Errorf("cannot read the OIDC discovery document of %s: %v: %w", v.cfg.Issuer, err, ErrIssuerUnavailable)
	default:
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if cerr := provider.Claims(&meta); cerr != nil || meta.JWKSURI == "" {
			err = fmt.Errorf("the OIDC discovery document of %s has no jwks_uri: %w", v.cfg.Issuer, ErrIssuerUnavailable)
		} else {
			// Algorithms default to those the discovery document lists (RS256 if none).
			verifier = provider.Verifier(&oidc.Config{ClientID: v.cfg.Audience})
			if v.cfg.ClientID != "" {
				login, endpoint = provider.Verifier(&oidc.Config{ClientID: v.cfg.ClientID}), provider.Endpoint()
			}
		}
	}

	v.mu.Lock()
	v.verifier, v.login, v.endpoint, v.lastErr, v.pending = verifier, login, endpoint, err, nil
	v.mu.Unlock()
	close(done)
}

// explain turns a go-oidc verification error into one saying why the token
// was refused. go-oidc decides; this only words it. Apart from expiry, its
// errors are plain strings, so they are recognised by stable fragments, and
// anything unrecognised still gives a refusal carrying go-oidc's text.
func (v *Verifier) explain(ctx context.Context, raw string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("verify OIDC token: %w", ctx.Err())
	}
	hdr, claims := peek(raw)
	msg := err.Error()
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		if expired.Expiry.IsZero() {
			return refuse("the token has no exp (expiry) claim")
		}
		return refuse("the token expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "fetching keys"):
		return fmt.Errorf("cannot fetch the signing keys of OIDC issuer %s to check the token: %s: %w",
			v.cfg.Issuer, strings.TrimPrefix(msg, "failed to verify signature: "), ErrIssuerUnavailable)
	case strings.Contains(msg, "failed to verify signature"):
		// A token from another IdP fails here, before go-oidc looks at its
		// issuer; say so, it is the likelier mistake.
		if claims.Issuer != "" && claims.Issuer != v.cfg.Issuer {
			return refuse("the token was issued by %.200q, not by the configured issuer %q", claims.Issuer, v.cfg.Issuer)
		}
		return refuse("the token is signed by an unknown signing key (key id %.64q is not among the keys %s publishes, or the signature is wrong)",
			hdr.KeyID, v.cfg.Issuer)
	case strings.Contains(msg, "issued by a different provider"):
		return refuse("the token was issued by %.200q, not by the configured issuer %q", claims.Issuer, v.cfg.Issuer)
	case strings.Contains(msg, "expected audience"):
		return refuse("wrong audience: the token is for %.200s, not %q", string(claims.Audience), v.cfg.Audience)
	case strings.Contains(msg, "nbf"):
		return refuse("the token is not valid yet (its nbf, not before, time is in the future)")
	case strings.Contains(msg, "malformed jwt"):
		return refuse("the token is not a well-formed signed JWT: %s", strings.TrimPrefix(msg, "oidc: malformed jwt: "))
	default:
		return refuse("%s", strings.TrimPrefix(msg, "oidc: "))
	}
}

// peek decodes a JWT's header and payload without checking anything, only
// to word error messages. Fields it cannot read stay empty.
func peek(raw string) (hdr struct {
	KeyID string `json:"kid"`
}, claims struct {
	Issuer   string          `json:"iss"`
	Audience json.RawMessage `json:"aud"`
}) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil {
		_ = json.Unmarshal(b, &hdr)
	}
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
		_ = json.Unmarshal(b, &claims)
	}
	return
}

// mapClaims builds the principal from verified claims.
func (v *Verifier) mapClaims(claims map[string]json.RawMessage) (models.Principal, error) {
	subject, err := v.subject(claims)
	if err != nil {
		return models.Principal{}, err
	}
	groups, err := stringList(claims, v.cfg.GroupsClaim)
	if err != nil {
		return models.Principal{}, err
	}
	teams, err := stringList(claims, v.cfg.TeamsClaim)
	if err != nil {
		return models.Principal{}, err
	}
	roles, err := stringList(claims, v.cfg.RolesClaim)
	if err != nil {
		return models.Principal{}, err
	}
	// Grants match the IdP's group names as sent, so a group such as
	// "Platform Admins" can be mapped even though it is no valid group name.
	for _, g := range groups {
		if grant, ok := v.cfg.GroupMap[g]; ok {
			roles = append(roles, grant.Roles...)
			teams = append(teams, grant.Teams...)
		}
	}
	validName := nameRe.MatchString
	knownRole := func(r string) bool { return slices.Contains(models.Roles, r) }
	return models.Principal{
		Subject: subject,
		Groups:  sortedSet(groups, validName),
		Teams:   sortedSet(teams, validName),
		Roles:   sortedSet(roles, knownRole),
		Via:     "oidc",
	}, nil
}

// subject reads the subject claim strictly: it names the actor in the audit
// log, so a bad one refuses the token rather than being patched up.
func (v *Verifier) subject(claims map[string]json.RawMessage) (string, error) {
	name := v.cfg.SubjectClaim
	raw, ok := claims[name]
	var s string
	if !ok || json.Unmarshal(raw, &s) != nil || strings.TrimSpace(s) == "" {
		return "", refuse("the token has no %s claim", name)
	}
	if len(s) > maxSubjectLen {
		return "", refuse("the token's %s claim is longer than %d characters", name, maxSubjectLen)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", refuse("the token's %s claim contains control characters", name)
	}
	return s, nil
}

// stringList reads a claim that is a JSON array of strings or a single
// string; absent or null means none. Any other shape refuses the token: it
// means the IdP is not sending what Transit is configured to read.
func stringList(claims map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := claims[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many, nil
	}
	return nil, refuse("the token's %s claim is neither a string nor a list of strings", name)
}

// sortedSet returns the items that keep accepts, sorted and deduplicated;
// never nil, so a principal's lists encode as [] rather than null.
func sortedSet(items []string, keep func(string) bool) []string {
	out := []string{}
	for _, s := range items {
		if keep(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// refuse returns a "not authenticated" error saying why.
func refuse(format string, args ...any) error {
	return fmt.Errorf("OIDC token refused: "+format+": %w", append(args, models.ErrUnauthenticated)...)
}

// CanLogin reports whether the console may send people to the IdP to sign
// in (a client id is configured).
func (v *Verifier) CanLogin() bool { return v != nil && v.cfg.ClientID != "" }

// LoginConfig is the OAuth2 configuration of the console's sign-in: the
// authorization code flow (with PKCE) at the IdP, back to redirectURL.
func (v *Verifier) LoginConfig(ctx context.Context, redirectURL string) (*oauth2.Config, error) {
	if !v.CanLogin() {
		return nil, refuse("sign-in at the identity provider is not configured (%s)", EnvClientID)
	}
	if _, err := v.idTokenVerifier(ctx); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return &oauth2.Config{ClientID: v.cfg.ClientID, ClientSecret: v.cfg.ClientSecret, Endpoint: v.endpoint,
		RedirectURL: redirectURL, Scopes: []string{oidc.ScopeOpenID, "profile", "email", "groups"}}, nil
}

// LoginPrincipal verifies the ID token the console's sign-in received
// (audience: the client id, and the nonce it sent), and maps its claims as
// Principal does. It returns when the token expires.
func (v *Verifier) LoginPrincipal(ctx context.Context, rawIDToken, nonce string) (models.Principal, time.Time, error) {
	if !v.CanLogin() {
		return models.Principal{}, time.Time{}, refuse("sign-in at the identity provider is not configured (%s)", EnvClientID)
	}
	if _, err := v.idTokenVerifier(ctx); err != nil {
		return models.Principal{}, time.Time{}, err
	}
	v.mu.Lock()
	login := v.login
	v.mu.Unlock()
	tok, err := login.Verify(ctx, rawIDToken)
	if err != nil {
		return models.Principal{}, time.Time{}, v.explain(ctx, rawIDToken, err)
	}
	if nonce == "" || tok.Nonce != nonce {
		return models.Principal{}, time.Time{}, refuse("the ID token's nonce is not the one this sign-in sent (a replayed token?)")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return models.Principal{}, time.Time{}, refuse("cannot read the token's claims: %v", err)
	}
	p, err := v.mapClaims(claims)
	return p, tok.Expiry, err
}
