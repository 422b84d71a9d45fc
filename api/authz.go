package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/models"
)

// scope says which object's team a team-bound role must belong to.
type scope int

const (
	// scopeNone: the route acts on no team's object.
	scopeNone scope = iota
	// scopeDeployment: the application of deployment {id}.
	scopeDeployment
	// scopeBody: the application the request names; the handler checks it
	// (teamOwns) once it has resolved it.
	scopeBody
)

// rule is who may use one route. An admin may use every route.
type rule struct {
	Method, Path string
	// Anyone authenticated may use it (what it does may still depend on
	// who asks: a vote counts only from an eligible approver).
	Anyone bool
	// Roles may use it on every object.
	Roles []string
	// TeamRoles may use it on objects of applications their teams own.
	TeamRoles []string
	Scope     scope
}

var (
	readers      = []string{models.RoleViewer, models.RoleDeployer, models.RoleReleaseManager}
	auditReaders = append(readers[:len(readers):len(readers)], models.RoleAuditor)
	managers     = []string{models.RoleReleaseManager}
	deployers    = []string{models.RoleDeployer}
	adminsOnly   = []string{}
)

// rules is the rule of every route under /api/v1: one table, printed in
// the README (see RulesTable) and walked by a test for every role. A route
// without a rule is refused to everyone.
var rules = []rule{
	{Method: "GET", Path: "/api/v1", Anyone: true},
	{Method: "GET", Path: "/api/v1/whoami", Anyone: true},

	{Method: "GET", Path: "/api/v1/applications", Roles: readers},
	{Method: "GET", Path: "/api/v1/applications/:id", Roles: readers},
	{Method: "POST", Path: "/api/v1/applications", Roles: managers},
	{Method: "PATCH", Path: "/api/v1/applications/:id", Roles: managers},
	{Method: "DELETE", Path: "/api/v1/applications/:id", Roles: managers},

	{Method: "GET", Path: "/api/v1/environments", Roles: readers},
	{Method: "GET", Path: "/api/v1/environments/:id", Roles: readers},
	{Method: "POST", Path: "/api/v1/environments", Roles: adminsOnly},
	{Method: "PATCH", Path: "/api/v1/environments/:id", Roles: adminsOnly},
	{Method: "DELETE", Path: "/api/v1/environments/:id", Roles: adminsOnly},

	{Method: "GET", Path: "/api/v1/targets", Roles: readers},
	{Method: "GET", Path: "/api/v1/targets/:id", Roles: readers},
	{Method: "POST", Path: "/api/v1/targets", Roles: adminsOnly},
	{Method: "PATCH", Path: "/api/v1/targets/:id", Roles: adminsOnly},
	{Method: "DELETE", Path: "/api/v1/targets/:id", Roles: adminsOnly},

	{Method: "GET", Path: "/api/v1/releases", Roles: readers},
	{Method: "GET", Path: "/api/v1/releases/:id", Roles: readers},
	{Method: "POST", Path: "/api/v1/releases", Roles: managers},
	{Method: "DELETE", Path: "/api/v1/releases/:id", Roles: managers},

	{Method: "GET", Path: "/api/v1/deployments", Roles: readers},
	{Method: "GET", Path: "/api/v1/deployments/:id", Roles: readers},
	{Method: "GET", Path: "/api/v1/deployments/:id/events", Roles: readers},
	{Method: "GET", Path: "/api/v1/deployments/:id/incidents", Roles: readers},
	{Method: "POST", Path: "/api/v1/deployments", Roles: managers, TeamRoles: deployers, Scope: scopeBody},
	{Method: "POST", Path: "/api/v1/deployments/:id/approvals", Anyone: true},
	{Method: "POST", Path: "/api/v1/deployments/:id/pause", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},
	{Method: "POST", Path: "/api/v1/deployments/:id/resume", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},
	{Method: "POST", Path: "/api/v1/deployments/:id/abort", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},
	{Method: "POST", Path: "/api/v1/deployments/:id/rollback", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},
	{Method: "POST", Path: "/api/v1/deployments/:id/incidents", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},
	{Method: "POST", Path: "/api/v1/deployments/:id/incidents/:incident/resolve", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},

	{Method: "PATCH", Path: "/api/v1/deployments/:id/incidents/:incident", Roles: managers, TeamRoles: deployers, Scope: scopeDeployment},

	{Method: "GET", Path: "/api/v1/known-errors", Roles: readers},
	{Method: "GET", Path: "/api/v1/known-errors/:id", Roles: readers},
	{Method: "POST", Path: "/api/v1/known-errors", Roles: managers},
	{Method: "PATCH", Path: "/api/v1/known-errors/:id", Roles: managers},

	{Method: "GET", Path: "/api/v1/schedule", Roles: readers},

	{Method: "GET", Path: "/api/v1/kpis", Roles: auditReaders},

	{Method: "GET", Path: "/api/v1/audit", Roles: auditReaders},
	{Method: "GET", Path: "/api/v1/audit/verify", Roles: auditReaders},
	{Method: "GET", Path: "/api/v1/audit/head", Roles: auditReaders},

	{Method: "GET", Path: "/api/v1/tokens", Roles: adminsOnly},
	{Method: "POST", Path: "/api/v1/tokens", Roles: adminsOnly},
	{Method: "DELETE", Path: "/api/v1/tokens/:id", Roles: adminsOnly},

	{Method: "GET", Path: "/api/v1/subscriptions", Roles: adminsOnly},
	{Method: "POST", Path: "/api/v1/subscriptions", Roles: adminsOnly},
	{Method: "GET", Path: "/api/v1/subscriptions/:id", Roles: adminsOnly},
	{Method: "PATCH", Path: "/api/v1/subscriptions/:id", Roles: adminsOnly},
	{Method: "DELETE", Path: "/api/v1/subscriptions/:id", Roles: adminsOnly},
	{Method: "GET", Path: "/api/v1/subscriptions/:id/deliveries", Roles: adminsOnly},
}

var rulesByRoute = func() map[string]rule {
	m := make(map[string]rule, len(rules))
	for _, r := range rules {
		m[r.Method+" "+r.Path] = r
	}
	return m
}()

// allows reports whether p may use the route at all, and whether only on
// objects of its teams' applications.
func (r rule) allows(p models.Principal) (ok, teamBound bool) {
	switch {
	case r.Anyone || p.HasRole(models.RoleAdmin) || hasAny(p, r.Roles):
		return true, false
	case hasAny(p, r.TeamRoles):
		return true, true
	}
	return false, false
}

func hasAny(p models.Principal, roles []string) bool {
	for _, role := range roles {
		if p.HasRole(role) {
			return true
		}
	}
	return false
}

// who says in words who may use the route.
func (r rule) who() string {
	if r.Anyone {
		return "anyone signed in"
	}
	parts := append([]string{}, r.Roles...)
	for _, role := range r.TeamRoles {
		parts = append(parts, role+" (own team's applications)")
	}
	return strings.Join(append(parts, "admin"), ", ")
}

const ctxTeamBound = "transit.team_bound"

// authorize applies the route's rule. A team-bound principal acting on a
// deployment must belong to the team that owns its application; on a
// request that names an application, the handler checks it (teamOwns).
func (h *Handler) authorize(c *gin.Context) {
	p, _ := principal(c)
	route := c.Request.Method + " " + c.FullPath()
	if err := h.mayUse(c, p, route, ""); err != nil {
		h.fail(c, err)
		return
	}
	r := rulesByRoute[route]
	_, teamBound := r.allows(p)
	c.Set(ctxTeamBound, teamBound)
	if teamBound && r.Scope == scopeDeployment {
		d, err := h.store.GetDeployment(c, c.Param("id"))
		if models.IsNotFound(err) {
			c.Next() // the handler says it is not there
			return
		}
		if err == nil {
			err = h.mayUse(c, p, route, d.ApplicationID)
		}
		if err != nil {
			h.fail(c, err)
			return
		}
	}
	c.Next()
}

// teamOwns refuses a team-bound principal (a deployer, as authorize found
// it) an application that none of its teams owns; for the handlers whose
// application comes from the request body (scopeBody).
func teamOwns(c *gin.Context, app *models.Application) error {
	if !c.GetBool(ctxTeamBound) {
		return nil
	}
	p, _ := principal(c)
	return notOwned(p, app)
}

func notOwned(p models.Principal, app *models.Application) error {
	if p.InTeam(app.OwnerTeam) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, code: CodeForbidden,
		message: fmt.Sprintf("application %s is owned by team %q; a deployer acts only on its own teams' applications (yours: %s), a release_manager on every one",
			app.Name, app.OwnerTeam, orNone(strings.Join(p.Teams, ", ")))}
}

// mayUse reports whether p may use route ("POST /api/v1/deployments/:id/pause")
// on an object of the application (empty: none), by the rules table: the
// API's middleware asks it, and the console before it shows a button and
// before it acts.
func (h *Handler) mayUse(c *gin.Context, p models.Principal, route, applicationID string) error {
	r, found := rulesByRoute[route]
	if !found {
		return &apiError{status: http.StatusForbidden, code: CodeForbidden, message: "this route (" + route + ") has no access rule, so no one may use it"}
	}
	ok, teamBound := r.allows(p)
	if !ok {
		return &apiError{status: http.StatusForbidden, code: CodeForbidden,
			message: fmt.Sprintf("%s %s needs one of the roles: %s; you (%s) have: %s", r.Method, shortPath(r.Path),
				r.who(), p.Subject, orNone(strings.Join(p.Roles, ", ")))}
	}
	if !teamBound || applicationID == "" {
		return nil
	}
	app, err := h.store.GetApplication(c, applicationID)
	if err != nil {
		return err
	}
	return notOwned(p, app)
}

// apiRule applies the rule of an /api/v1 route to a route outside it.
func (h *Handler) apiRule(route string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := principal(c)
		if err := h.mayUse(c, p, route, ""); err != nil {
			h.fail(c, err)
			return
		}
		c.Next()
	}
}

// RulesTable renders the rule of every route as a Markdown table, as the
// README prints it.
func RulesTable() string {
	var b strings.Builder
	b.WriteString("| route | who may use it |\n| --- | --- |\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "| `%s %s` | %s |\n", r.Method, shortPath(r.Path), r.who())
	}
	return b.String()
}

// shortPath is a route's path under /api/v1, as the README names it.
func shortPath(path string) string {
	if p := strings.TrimPrefix(path, "/api/v1"); p != "" {
		return p
	}
	return "/"
}

// RouteRules maps each /api/v1 route ("POST /api/v1/deployments") to who
// may use it, for tests that walk every route.
func RouteRules() map[string]string {
	m := make(map[string]string, len(rules))
	for _, r := range rules {
		m[r.Method+" "+r.Path] = r.who()
	}
	return m
}
