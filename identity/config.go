// Package identity turns OIDC bearer JWTs, issued by an identity provider
// (IdP), into the principal a request acts as.
package identity

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/transit-hq/transit/models"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvIssuer       = "TRANSIT_OIDC_ISSUER"
	EnvAudience     = "TRANSIT_OIDC_AUDIENCE"
	EnvSubjectClaim = "TRANSIT_OIDC_SUBJECT_CLAIM"
	EnvGroupsClaim  = "TRANSIT_OIDC_GROUPS_CLAIM"
	EnvTeamsClaim   = "TRANSIT_OIDC_TEAMS_CLAIM"
	EnvRolesClaim   = "TRANSIT_OIDC_ROLES_CLAIM"
	EnvGroupMap     = "TRANSIT_OIDC_GROUP_MAP"
	// The console's sign-in (authorization code flow with PKCE).
	EnvClientID     = "TRANSIT_OIDC_CLIENT_ID"
	EnvClientSecret = "TRANSIT_OIDC_CLIENT_SECRET"
)

// Default claim names.
const (
	DefaultSubjectClaim = "sub"
	DefaultGroupsClaim  = "groups"
	DefaultTeamsClaim   = "teams"
	DefaultRolesClaim   = "roles"
)

// nameRe is what the repository accepts as a group or team name (the same
// rule as models' resource names).
var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Config configures OIDC sign-in. Zero Issuer means OIDC is off.
type Config struct {
	// Issuer is the IdP's issuer URL, exactly as its discovery document and
	// its tokens' "iss" claim spell it.
	Issuer string
	// Audience is the value the tokens' "aud" claim must contain.
	Audience string

	SubjectClaim string // default "sub"
	GroupsClaim  string // default "groups"
	TeamsClaim   string // default "teams"
	RolesClaim   string // default "roles"

	// GroupMap maps an IdP group to roles and teams it grants (added to any
	// from claims).
	GroupMap map[string]Grant

	// ClientID (and ClientSecret, for a confidential client) let the
	// console sign people in at the IdP; the ID tokens it gets are for
	// ClientID. Empty: the console takes pasted tokens only.
	ClientID, ClientSecret string
}

// Grant is what membership of one IdP group gives.
type Grant struct {
	Roles, Teams []string
}

// withDefaults fills in the default claim names.
func (c Config) withDefaults() Config {
	if c.SubjectClaim == "" {
		c.SubjectClaim = DefaultSubjectClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	if c.TeamsClaim == "" {
		c.TeamsClaim = DefaultTeamsClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	return c
}

// ConfigFromEnv reads TRANSIT_OIDC_ISSUER, TRANSIT_OIDC_AUDIENCE,
// TRANSIT_OIDC_SUBJECT_CLAIM, TRANSIT_OIDC_GROUPS_CLAIM,
// TRANSIT_OIDC_TEAMS_CLAIM, TRANSIT_OIDC_ROLES_CLAIM and
// TRANSIT_OIDC_GROUP_MAP using the given getenv. Issuer set without audience
// (or the reverse) is an error, and so is any other OIDC variable set while
// the issuer is not (it would be silently ignored). With none set it returns
// the zero Config: OIDC off. Claim names left unset get their defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	cfg := Config{
		Issuer:       get(EnvIssuer),
		Audience:     get(EnvAudience),
		SubjectClaim: get(EnvSubjectClaim),
		GroupsClaim:  get(EnvGroupsClaim),
		TeamsClaim:   get(EnvTeamsClaim),
		RolesClaim:   get(EnvRolesClaim),
		ClientID:     get(EnvClientID),
		ClientSecret: get(EnvClientSecret),
	}
	groupMap := get(EnvGroupMap)

	switch {
	case cfg.Issuer == "" && cfg.Audience == "":
		for _, k := range []string{EnvSubjectClaim, EnvGroupsClaim, EnvTeamsClaim, EnvRolesClaim, EnvGroupMap, EnvClientID, EnvClientSecret} {
			if get(k) != "" {
				return Config{}, fmt.Errorf("%s is set but %s and %s are not: set both to turn on OIDC sign-in", k, EnvIssuer, EnvAudience)
			}
		}
		return Config{}, nil // OIDC off
	case cfg.Issuer == "":
		return Config{}, fmt.Errorf("%s is set but %s is not: set both to turn on OIDC sign-in, or neither", EnvAudience, EnvIssuer)
	case cfg.Audience == "":
		return Config{}, fmt.Errorf("%s is set but %s is not: set both to turn on OIDC sign-in, or neither (the audience is the client id tokens are issued for)", EnvIssuer, EnvAudience)
	}

	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return Config{}, fmt.Errorf("%s %q must be an http(s) URL such as https://idp.example.com/realms/main", EnvIssuer, cfg.Issuer)
	}
	if h := strings.ToLower(u.Hostname()); u.Scheme == "http" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
		// Plain http is for an IdP on this machine only: elsewhere its keys could be swapped on the way.
		return Config{}, fmt.Errorf("%s %q must use https: plain http is allowed only for localhost, 127.0.0.1 or ::1", EnvIssuer, cfg.Issuer)
	}
	if cfg.ClientSecret != "" && cfg.ClientID == "" {
		return Config{}, fmt.Errorf("%s is set but %s is not", EnvClientSecret, EnvClientID)
	}
	if cfg.GroupMap, err = ParseGroupMap(groupMap); err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvGroupMap, err)
	}
	return cfg.withDefaults(), nil
}

// ParseGroupMap parses "group=role+role:team+team;group2=role" : entries
// separated by ';', group '=' roles joined by '+', optionally ':' teams
// joined by '+'. Unknown roles are an error naming them. The group is the
// IdP's group name as it appears in the groups claim; teams must be valid
// team names. An empty string gives an empty map.
func ParseGroupMap(s string) (map[string]Grant, error) {
	m := map[string]Grant{}
	var errs []error
	for entry := range strings.SplitSeq(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // allows a trailing ';'
		}
		group, rest, ok := strings.Cut(entry, "=")
		group = strings.TrimSpace(group)
		if !ok || group == "" {
			errs = append(errs, fmt.Errorf("entry %q must look like group=role+role:team+team", entry))
			continue
		}
		if _, dup := m[group]; dup {
			errs = append(errs, fmt.Errorf("group %q appears more than once", group))
			continue
		}
		rolesPart, teamsPart, _ := strings.Cut(rest, ":")
		g := Grant{Roles: splitPlus(rolesPart), Teams: splitPlus(teamsPart)}

		var unknown []string
		for _, r := range g.Roles {
			if !slices.Contains(models.Roles, r) {
				unknown = append(unknown, r)
			}
		}
		if len(unknown) > 0 {
			errs = append(errs, fmt.Errorf("group %q: unknown role(s) %s: roles are %s",
				group, strings.Join(unknown, ", "), strings.Join(models.Roles, ", ")))
		}
		for _, t := range g.Teams {
			if !nameRe.MatchString(t) {
				errs = append(errs, fmt.Errorf("group %q: team %q must be 1-63 lower case letters, digits, '.', '_' or '-', starting with a letter or digit", group, t))
			}
		}
		if len(g.Roles) == 0 && len(g.Teams) == 0 {
			errs = append(errs, fmt.Errorf("group %q grants no role and no team", group))
		}
		m[group] = g
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// splitPlus splits a '+'-joined list, trimming spaces and dropping empty items.
func splitPlus(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, "+") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
