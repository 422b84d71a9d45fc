package models

import (
	"fmt"
	"slices"
	"strings"
)

// Roles: what a principal may do. See api/authz.go for the rule of every
// route.
const (
	// RoleViewer reads everything except tokens.
	RoleViewer = "viewer"
	// RoleDeployer submits deployments of applications its teams own, and
	// pauses, resumes, aborts and rolls them back, and reports and resolves
	// incidents on them.
	RoleDeployer = "deployer"
	// RoleReleaseManager may do what a deployer may, for every
	// application, and creates and updates applications and releases.
	RoleReleaseManager = "release_manager"
	// RoleAuditor reads the audit log and verifies it.
	RoleAuditor = "auditor"
	// RoleAdmin may do everything, including environments, targets and
	// tokens.
	RoleAdmin = "admin"
)

// Roles lists every role, in order of reach.
var Roles = []string{RoleViewer, RoleDeployer, RoleReleaseManager, RoleAuditor, RoleAdmin}

// HasRole reports whether p holds role. An admin holds every role.
func (p Principal) HasRole(role string) bool {
	return slices.Contains(p.Roles, role) || slices.Contains(p.Roles, RoleAdmin)
}

// InTeam reports whether p belongs to team (never to the empty team).
func (p Principal) InTeam(team string) bool {
	return team != "" && slices.Contains(p.Teams, team)
}

// DefaultRoles is what a token without roles gets, and what tokens made
// before roles existed became: an admin group's token is an admin; any
// other may deploy and manage releases, as every token could before.
func DefaultRoles(groups []string) []string {
	if slices.Contains(groups, GroupAdmin) {
		return []string{RoleAdmin}
	}
	return []string{RoleDeployer, RoleReleaseManager}
}

// CheckRoles validates a list of role names.
func CheckRoles(v *ValidationError, field string, roles []string) {
	for i, r := range roles {
		if !slices.Contains(Roles, r) {
			v.Add(fmt.Sprintf("%s[%d]", field, i), "unknown role %q: one of %s", r, strings.Join(Roles, ", "))
		}
	}
}

// ApproverGroups are the groups a vote of p carries: its groups, and its
// roles as RolePrefix+role (an admin's: every role), so that a policy may
// ask for a role.
func (p Principal) ApproverGroups() []string {
	roles := p.Roles
	if p.HasRole(RoleAdmin) {
		roles = Roles
	}
	out := slices.Clone(p.Groups)
	for _, r := range roles {
		out = append(out, RolePrefix+r)
	}
	return out
}

// MayApprove reports whether p is among approvers (groups, or roles as
// RolePrefix+role); no approvers means anyone signed in.
func (p Principal) MayApprove(approvers []string) bool {
	if len(approvers) == 0 {
		return true
	}
	mine := p.ApproverGroups()
	return slices.ContainsFunc(approvers, func(g string) bool { return slices.Contains(mine, g) })
}
