package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/models"
)

// The list and get verbs: text is aligned columns, -o json the API's answer.

func (a *cli) releasesCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "releases",
		Aliases: []string{"release"},
		Short:   "Create, list and show releases",
	})
	cmd.AddCommand(a.releaseCreateCommand(), a.releasesListCommand(), a.releasesGetCommand())
	return cmd
}

func (a *cli) releaseCreateCommand() *cobra.Command {
	var (
		app, version, notes string
		artifacts, criteria []string
	)
	cmd := &cobra.Command{
		Use:     "create --app NAME --version V --artifact NAME=IMAGE",
		Short:   "Register a release of an application (releases are immutable)",
		Example: `  transit release create --app checkout --version 2.4.0 --artifact api=checkout-api:2.4.0 --criterion tests=passed`,
		Args:    noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&app, "app", "", "application name or id")
	fs.StringVar(&version, "version", "", "release version (semver when it looks like semver)")
	fs.StringVar(&notes, "notes", "", "release notes")
	fs.StringArrayVar(&artifacts, "artifact", nil, "NAME=IMAGE (with a ':' or '/') or NAME=VERSION; repeatable")
	fs.StringArrayVar(&criteria, "criterion", nil, "entry criterion KEY=VALUE, e.g. tests=passed; repeatable")
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req := apiclient.CreateReleaseRequest{ApplicationID: app, Version: version, Notes: notes,
			Artifacts: []models.Artifact{}, EntryCriteria: map[string]string{}}
		for _, kv := range artifacts {
			name, val, ok := strings.Cut(kv, "=")
			if !ok {
				return usagef("--artifact %q must be NAME=IMAGE or NAME=VERSION", kv)
			}
			if strings.ContainsAny(val, ":/") {
				req.Artifacts = append(req.Artifacts, models.Artifact{Name: name, Image: val})
			} else {
				req.Artifacts = append(req.Artifacts, models.Artifact{Name: name, Version: val})
			}
		}
		for _, kv := range criteria {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usagef("--criterion %q must be KEY=VALUE", kv)
			}
			req.EntryCriteria[k] = v
		}
		var rel models.Release
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			rel, err = c.CreateRelease(ctx, req)
			return err
		}, func(w io.Writer) {
			fmt.Fprintf(w, "release %s %s created (%s)\n", app, rel.Version, rel.ID)
		})
	}
	return cmd
}

func (a *cli) releasesListCommand() *cobra.Command {
	var (
		f  apiclient.ReleaseFilter
		cf *clientFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List releases",
		Args:  noArgs,
	}
	cmd.Flags().StringVar(&f.ApplicationID, "app", "", "only this application's (name or id)")
	cmd.Flags().StringVar(&f.Version, "version", "", "only this version")
	addPageFlags(cmd, &f.ListOptions)
	cf = addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var page apiclient.Page[models.Release]
		names := newNames()
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			if page, err = c.ListReleases(ctx, f); err == nil && !cf.json() {
				for _, r := range page.Items {
					names.application(ctx, c, r.ApplicationID)
				}
			}
			return err
		}, func(w io.Writer) {
			t := table(w, "ID", "APPLICATION", "VERSION", "ARTIFACTS", "CREATED", "BY")
			for _, r := range page.Items {
				t.row(r.ID, names.apps[r.ApplicationID], r.Version, artifactList(r.Artifacts.V), when(r.CreatedAt), r.CreatedBy)
			}
			t.flush()
			a.more(page.NextCursor, len(page.Items), "releases")
		})
	}
	return cmd
}

func (a *cli) releasesGetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get RELEASE_ID",
		Short: "Show a release",
		Args:  oneArg("RELEASE_ID"),
	}
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var (
			r   models.Release
			app string
		)
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			if r, err = c.GetRelease(ctx, args[0]); err == nil && !cf.json() {
				app = newNames().application(ctx, c, r.ApplicationID)
			}
			return err
		}, func(w io.Writer) {
			t := table(w)
			t.row("id", r.ID)
			t.row("application", withID(app, r.ApplicationID))
			t.row("version", r.Version)
			t.row("artifacts", artifactList(r.Artifacts.V))
			t.row("entry criteria", pairs(r.EntryCriteria.V))
			t.row("notes", firstLine(r.Notes))
			t.row("created", when(r.CreatedAt)+" by "+r.CreatedBy)
			t.flush()
		})
	}
	return cmd
}

func (a *cli) deploymentsCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "deployments",
		Aliases: []string{"deployment"},
		Short:   "List and show deployments",
	})
	get := &cobra.Command{
		Use:   "get DEPLOYMENT_ID",
		Short: "Show a deployment (as transit status)",
		Args:  oneArg("DEPLOYMENT_ID"),
	}
	get.RunE = a.getDeployment(addClientFlags(get, false))
	cmd.AddCommand(a.deploymentsListCommand(), get)
	return cmd
}

func (a *cli) deploymentsListCommand() *cobra.Command {
	var (
		f      apiclient.DeploymentFilter
		env    string
		status string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List deployments, newest first",
		Args:  noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&status, "status", "", "only those in this status, e.g. deploying, awaiting_approval, completed")
	fs.StringVar(&f.ApplicationID, "app", "", "only this application's (name or id)")
	fs.StringVar(&env, "env", "", "only those to this environment (id, or name: with --app when several applications have it)")
	fs.StringVar(&f.ReleaseID, "release", "", "only those of this release (id)")
	addPageFlags(cmd, &f.ListOptions)
	_ = cmd.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(statuses(), cobra.ShellCompDirectiveNoFileComp))
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f.Status = models.Status(status)
		var page apiclient.Page[models.Deployment]
		names := newNames()
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			if env != "" {
				// Not under ctx, which keeps the answer to print: the list's.
				if f.EnvironmentID, err = environmentID(cmd.Context(), c, f.ApplicationID, env); err != nil {
					return err
				}
			}
			if page, err = c.ListDeployments(ctx, f); err == nil && !cf.json() {
				for _, d := range page.Items {
					names.application(ctx, c, d.ApplicationID)
					names.environment(ctx, c, d.EnvironmentID)
				}
			}
			return err
		}, func(w io.Writer) {
			t := table(w, "ID", "APPLICATION", "ENVIRONMENT", "VERSION", "SCENARIO", "STATUS", "REQUESTED BY", "CREATED")
			for _, d := range page.Items {
				t.row(d.ID, names.apps[d.ApplicationID], names.envs[d.EnvironmentID], d.ReleaseVersion, d.Scenario,
					string(d.Status), d.RequestedBy, when(d.CreatedAt))
			}
			t.flush()
			a.more(page.NextCursor, len(page.Items), "deployments")
		})
	}
	return cmd
}

// environmentID resolves --env: an id as it is, a name by the list of
// environments of that name (of app, when given).
func environmentID(ctx context.Context, c *apiclient.Client, app, env string) (string, error) {
	if strings.HasPrefix(env, models.PrefixEnvironment+"_") {
		return env, nil
	}
	page, err := c.ListEnvironments(ctx, apiclient.EnvironmentFilter{ApplicationID: app, Name: env})
	if err != nil {
		return "", err
	}
	switch len(page.Items) {
	case 0:
		where := ""
		if app != "" {
			where = " in application " + app
		}
		return "", &apiclient.Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no environment is named %q%s", env, where)}
	case 1:
		return page.Items[0].ID, nil
	}
	return "", usagef("several applications have an environment named %q: pass --app too, or the environment's id", env)
}

func (a *cli) applicationsCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "applications",
		Aliases: []string{"application", "apps"},
		Short:   "List and show applications",
	})
	list := &cobra.Command{
		Use:   "list",
		Short: "List applications",
		Args:  noArgs,
	}
	var f apiclient.ApplicationFilter
	list.Flags().StringVar(&f.OwnerTeam, "team", "", "only those of this owner team")
	addPageFlags(list, &f.ListOptions)
	listFlags := addClientFlags(list, false)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		var page apiclient.Page[models.Application]
		return a.call(cmd.Context(), listFlags, func(ctx context.Context, c *apiclient.Client) (err error) {
			page, err = c.ListApplications(ctx, f)
			return err
		}, func(w io.Writer) {
			t := table(w, "ID", "NAME", "OWNER TEAM", "DESCRIPTION")
			for _, app := range page.Items {
				t.row(app.ID, app.Name, app.OwnerTeam, firstLine(app.Description))
			}
			t.flush()
			a.more(page.NextCursor, len(page.Items), "applications")
		})
	}
	get := &cobra.Command{
		Use:   "get APPLICATION",
		Short: "Show an application (by id or name)",
		Args:  oneArg("APPLICATION (id or name)"),
	}
	getFlags := addClientFlags(get, false)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		var app models.Application
		return a.call(cmd.Context(), getFlags, func(ctx context.Context, c *apiclient.Client) (err error) {
			app, err = c.GetApplication(ctx, args[0])
			return err
		}, func(w io.Writer) {
			t := table(w)
			t.row("id", app.ID)
			t.row("name", app.Name)
			t.row("owner team", app.OwnerTeam)
			t.row("description", firstLine(app.Description))
			t.row("created", when(app.CreatedAt)+" by "+app.CreatedBy)
			t.flush()
		})
	}
	cmd.AddCommand(list, get)
	return cmd
}

func (a *cli) environmentsCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "environments",
		Aliases: []string{"environment", "envs"},
		Short:   "List and show environments",
	})
	list := &cobra.Command{
		Use:   "list",
		Short: "List environments",
		Args:  noArgs,
	}
	var f apiclient.EnvironmentFilter
	list.Flags().StringVar(&f.ApplicationID, "app", "", "only this application's (name or id)")
	list.Flags().StringVar(&f.Name, "name", "", "only those of this name")
	addPageFlags(list, &f.ListOptions)
	listFlags := addClientFlags(list, false)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		var page apiclient.Page[models.Environment]
		names := newNames()
		return a.call(cmd.Context(), listFlags, func(ctx context.Context, c *apiclient.Client) (err error) {
			if page, err = c.ListEnvironments(ctx, f); err == nil && !listFlags.json() {
				for _, e := range page.Items {
					names.application(ctx, c, e.ApplicationID)
				}
			}
			return err
		}, func(w io.Writer) {
			t := table(w, "ID", "APPLICATION", "NAME", "POSITION", "APPROVALS", "STRATEGY")
			for _, e := range page.Items {
				p := e.Policy.V
				t.row(e.ID, names.apps[e.ApplicationID], e.Name, fmt.Sprint(e.Position), approvals(p), orDefault(p.Strategy.Kind))
			}
			t.flush()
			a.more(page.NextCursor, len(page.Items), "environments")
		})
	}
	get := &cobra.Command{
		Use:   "get ENVIRONMENT_ID",
		Short: "Show an environment and its policy",
		Args:  oneArg("ENVIRONMENT_ID"),
	}
	getFlags := addClientFlags(get, false)
	get.RunE = func(cmd *cobra.Command, args []string) error {
		var (
			e   models.Environment
			app string
		)
		return a.call(cmd.Context(), getFlags, func(ctx context.Context, c *apiclient.Client) (err error) {
			if e, err = c.GetEnvironment(ctx, args[0]); err == nil && !getFlags.json() {
				app = newNames().application(ctx, c, e.ApplicationID)
			}
			return err
		}, func(w io.Writer) {
			p := e.Policy.V
			t := table(w)
			t.row("id", e.ID)
			t.row("application", withID(app, e.ApplicationID))
			t.row("name", e.Name)
			t.row("position", fmt.Sprint(e.Position))
			t.row("approvals", approvals(p))
			strategy, _ := json.Marshal(p.Strategy)
			t.row("strategy", string(strategy))
			t.row("change windows", fmt.Sprint(len(p.ChangeWindows)))
			t.row("freezes", fmt.Sprint(len(p.Freezes)))
			t.row("checks", fmt.Sprint(len(p.ValidationChecks)))
			t.row("early life support", p.EarlyLifeSupport.D().String())
			t.row("created", when(e.CreatedAt)+" by "+e.CreatedBy)
			t.flush()
			fmt.Fprintf(w, "(the whole policy: transit environments get %s -o json)\n", e.ID)
		})
	}
	cmd.AddCommand(list, get)
	return cmd
}

// addPageFlags gives a list verb --limit and --cursor.
func addPageFlags(cmd *cobra.Command, o *apiclient.ListOptions) {
	cmd.Flags().IntVar(&o.Limit, "limit", 0, "items per page, 1 to 500 (default: the API's, 50)")
	cmd.Flags().StringVar(&o.Cursor, "cursor", "", "the page after this cursor (the next_cursor of the previous page)")
}

// more says on standard error how to get the next page, if there is one.
func (a *cli) more(cursor string, n int, what string) {
	switch {
	case cursor != "":
		fmt.Fprintf(a.stderr, "more %s: --cursor %s\n", what, cursor)
	case n == 0:
		fmt.Fprintf(a.stderr, "no %s\n", what)
	}
}

// names looks applications' and environments' names up, once each; an id
// it cannot look up stands for itself.
type names struct {
	apps, envs map[string]string
}

func newNames() *names { return &names{apps: map[string]string{}, envs: map[string]string{}} }

func (n *names) application(ctx context.Context, c *apiclient.Client, id string) string {
	if name, ok := n.apps[id]; ok {
		return name
	}
	n.apps[id] = id
	if app, err := c.GetApplication(ctx, id); err == nil && app.Name != "" {
		n.apps[id] = app.Name
	}
	return n.apps[id]
}

func (n *names) environment(ctx context.Context, c *apiclient.Client, id string) string {
	if name, ok := n.envs[id]; ok {
		return name
	}
	n.envs[id] = id
	if env, err := c.GetEnvironment(ctx, id); err == nil && env.Name != "" {
		n.envs[id] = env.Name
	}
	return n.envs[id]
}

// textTable writes aligned columns.
type textTable struct{ tw *tabwriter.Writer }

func table(w io.Writer, header ...string) textTable {
	t := textTable{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t textTable) row(cells ...string) {
	for i, c := range cells {
		// A cell is one line, and a tab in it would shift the columns.
		cells[i] = strings.ReplaceAll(firstLine(c), "\t", " ")
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t textTable) flush() { _ = t.tw.Flush() }

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04")
}

func withID(name, id string) string {
	if name == "" || name == id {
		return id
	}
	return name + " (" + id + ")"
}

func artifactList(arts []models.Artifact) string {
	parts := make([]string, 0, len(arts))
	for _, a := range arts {
		v := a.Image
		if v == "" {
			v = a.Version
		}
		if a.Digest != "" {
			v += "@" + a.Digest
		}
		parts = append(parts, a.Name+"="+v)
	}
	return strings.Join(parts, ", ")
}

func pairs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

func approvals(p models.Policy) string {
	if p.ApprovalsRequired == 0 {
		return "none"
	}
	s := fmt.Sprint(p.ApprovalsRequired)
	if len(p.ApproverGroups) > 0 {
		s += " (" + strings.Join(p.ApproverGroups, ", ") + ")"
	}
	return s
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func statuses() []string {
	out := make([]string, len(models.AllStatuses))
	for i, s := range models.AllStatuses {
		out[i] = string(s)
	}
	return out
}
