package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/models"
)

func (a *cli) kpisCommand() *cobra.Command {
	var (
		f        apiclient.KPIFilter
		from, to string
		explain  bool
	)
	cmd := &cobra.Command{
		Use:   "kpis [--from T] [--to T] [--app A] [--env E]",
		Short: "Show the deployment KPIs (ITIL, known errors, DORA's four keys)",
		Long: `Show the KPIs computed from the records over a range (default: the last 30
days): ITIL's deployment management metrics, the weekly throughput of the
deployment backlog, the compliance issues, the known errors, and DORA's four
keys per application and environment. --explain says how each was counted;
-o json prints the API's answer, which says it too.`,
		Example: `  transit kpis
  transit kpis --app checkout --env prod --from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z
  transit kpis --app checkout -o json`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&from, "from", "", "start of the range, RFC 3339 (default: 30 days before --to)")
	fs.StringVar(&to, "to", "", "end of the range, RFC 3339, excluded (default: now)")
	fs.StringVar(&f.Application, "app", "", "only this application (name or id)")
	fs.StringVar(&f.Environment, "env", "", "only this environment (id, or name with --app)")
	fs.BoolVar(&explain, "explain", false, "say how each KPI was counted")
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, t := range []struct {
			flag, value string
			dst         *time.Time
		}{{"from", from, &f.From}, {"to", to, &f.To}} {
			if t.value == "" {
				continue
			}
			v, err := time.Parse(time.RFC3339, t.value)
			if err != nil {
				return usagef("--%s %q must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z", t.flag, t.value)
			}
			*t.dst = v
		}
		var r models.KPIReport
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			r, err = c.KPIs(ctx, f)
			return err
		}, func(w io.Writer) { printKPIs(w, r, explain) })
	}
	return cmd
}

// printKPIs writes the report as tables.
func printKPIs(w io.Writer, r models.KPIReport, explain bool) {
	app, env := r.ApplicationID, r.EnvironmentID
	for _, g := range r.DORA { // the groups name them
		if g.ApplicationID == app {
			app = withID(g.Application, app)
		}
		if g.EnvironmentID == env {
			env = withID(g.Environment, env)
		}
	}
	scope := "every application"
	if app != "" {
		scope = "application " + app
	}
	if env != "" {
		scope += ", environment " + env
	}
	fmt.Fprintf(w, "KPIs from %s to %s (%s)\n\n", when(r.From), when(r.To), scope)

	fmt.Fprintln(w, "Deployment management (ITIL)")
	kpiTable(w, r.DeploymentManagement)

	fmt.Fprintln(w, "\nWeekly throughput")
	t := table(w, "WEEK FROM", "TO", "SUBMITTED", "FINISHED", "BACKLOG")
	for _, wk := range r.WeeklyThroughput {
		t.row(when(wk.From), when(wk.To), fmt.Sprint(wk.Submitted), fmt.Sprint(wk.Finished), fmt.Sprint(wk.Backlog))
	}
	t.flush()

	if len(r.ComplianceIssues) > 0 {
		fmt.Fprintln(w, "\nCompliance issues")
		t = table(w, "AT", "KIND", "DEPLOYMENT", "WHAT")
		for _, is := range r.ComplianceIssues {
			t.row(when(is.At), is.Kind, is.DeploymentID, is.Message)
		}
		t.flush()
	}

	fmt.Fprintln(w, "\nRelease management")
	kpiTable(w, r.ReleaseManagement)

	fmt.Fprintln(w, "\nDORA (per application and environment; * production: the application's highest position)")
	t = table(w, "APPLICATION", "ENVIRONMENT", "DEPLOYMENTS", "LEAD TIME FOR CHANGES", "CHANGE FAILURE RATE", "TIME TO RESTORE")
	for _, g := range r.DORA {
		env := g.Environment
		if g.Production {
			env += " *"
		}
		t.row(g.Application, env, kpiCell(models.FindKPI(g.KPIs, models.KPIDeploymentFrequency)),
			kpiCell(models.FindKPI(g.KPIs, models.KPILeadTimeForChanges)), kpiCell(models.FindKPI(g.KPIs, models.KPIChangeFailureRate)),
			kpiCell(models.FindKPI(g.KPIs, models.KPITimeToRestore)))
	}
	t.flush()

	if !explain {
		fmt.Fprintln(w, "\n(how each was counted: transit kpis --explain)")
		return
	}
	fmt.Fprintln(w, "\nHow each was counted (the range is [from, to))")
	seen := map[string]bool{}
	var all []models.KPI
	all = append(append(all, r.DeploymentManagement...), r.ReleaseManagement...)
	for _, g := range r.DORA {
		all = append(all, g.KPIs...)
	}
	for _, k := range all {
		if !seen[k.Name] {
			seen[k.Name] = true
			fmt.Fprintf(w, "- %s (%s): %s\n", k.Name, k.Unit, k.Counted)
		}
	}
}

// kpiTable writes KPIs as rows: the name, the value and what it is of.
func kpiTable(w io.Writer, kpis []models.KPI) {
	t := table(w, "KPI", "VALUE", "DETAIL")
	for _, k := range kpis {
		t.row(k.Name, kpiCell(&k), kpiDetail(k))
	}
	t.flush()
}

// kpiCell is a KPI's value as a person reads it: 57.1%, 3h30m, 0.36/day.
func kpiCell(k *models.KPI) string {
	if k == nil || k.Value == nil {
		return "-"
	}
	v := *k.Value
	switch k.Unit {
	case models.UnitRatio:
		return fmt.Sprintf("%.1f%%", v*100)
	case models.UnitSeconds:
		return kpiDuration(time.Duration(v * float64(time.Second)))
	case models.UnitPerDay:
		return fmt.Sprintf("%.2f/day", v)
	case models.UnitPerWeek:
		return fmt.Sprintf("%.2f/week", v)
	}
	return fmt.Sprintf("%g", v)
}

// kpiDuration rounds to the minute (to the second under one), in days
// and hours past two days: 45s, 3h, 36h30m, 4d13h.
func kpiDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	mins := int64(d.Round(time.Minute) / time.Minute)
	days, hours, m := mins/(24*60), mins/60%24, mins%60
	if days >= 2 {
		return fmt.Sprintf("%dd%dh", days, hours)
	}
	hours += days * 24
	switch {
	case hours == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", hours)
	}
	return fmt.Sprintf("%dh%dm", hours, m)
}

// kpiDetail says what a KPI's value is of: 4 of 7, median of 5, a
// breakdown, or why it has none.
func kpiDetail(k models.KPI) string {
	var parts []string
	switch {
	case k.Of != nil:
		parts = append(parts, fmt.Sprintf("%d of %d", k.Count, *k.Of))
	case k.Unit == models.UnitSeconds:
		parts = append(parts, fmt.Sprintf("median of %d", k.Count))
	case k.Unit == models.UnitPerDay || k.Unit == models.UnitPerWeek:
		parts = append(parts, fmt.Sprintf("%d in the range", k.Count))
	}
	if len(k.Breakdown) > 0 {
		keys := make([]string, 0, len(k.Breakdown))
		for key, n := range k.Breakdown {
			if n > 0 {
				keys = append(keys, key)
			}
		}
		sort.Strings(keys)
		for _, key := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", key, k.Breakdown[key]))
		}
	}
	if k.Note != "" {
		parts = append(parts, k.Note)
	}
	return strings.Join(parts, ", ")
}
