package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/models"
)

// cli is where the commands print.
type cli struct {
	stdout, stderr io.Writer
}

// outputFormat is the value of --output: text or json.
type outputFormat string

func (f *outputFormat) String() string { return string(*f) }
func (f *outputFormat) Type() string   { return "text|json" }
func (f *outputFormat) Set(v string) error {
	switch v {
	case "text", "json":
		*f = outputFormat(v)
		return nil
	}
	return fmt.Errorf("%q is not an output format: text or json", v)
}

// clientFlags are the flags every client verb takes.
type clientFlags struct {
	url, token string
	output     outputFormat
}

// addClientFlags gives cmd --url, --token and --output; persistent, for a
// group whose commands all talk to the API.
func addClientFlags(cmd *cobra.Command, persistent bool) *clientFlags {
	def := os.Getenv("TRANSIT_URL")
	if def == "" {
		def = "http://localhost:8080"
	}
	f := &clientFlags{output: "text"}
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVar(&f.url, "url", def, "Transit API base URL ($TRANSIT_URL)")
	fs.StringVar(&f.token, "token", "", "API token (default $TRANSIT_TOKEN, then .transit/admin.token)")
	addOutputFlag(cmd, fs, &f.output)
	return f
}

func addOutputFlag(cmd *cobra.Command, fs *pflag.FlagSet, out *outputFormat) {
	fs.VarP(out, "output", "o", "text, or json: the API's answer, alone, on standard output")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

func (f *clientFlags) json() bool { return f.output == "json" }

// client returns a client of the API, with the token of --token,
// $TRANSIT_TOKEN or .transit/admin.token. The last, the token transit dev
// saves, is used only for an API on this machine.
func (f *clientFlags) client() (*apiclient.Client, error) {
	token := f.token
	if token == "" {
		token = os.Getenv("TRANSIT_TOKEN")
	}
	if token == "" && isLoopback(f.url) {
		if b, err := os.ReadFile(filepath.Join(".transit", "admin.token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token == "" {
		return nil, usagef("no API token: pass --token or set TRANSIT_TOKEN (transit dev saves one in .transit/admin.token)")
	}
	return apiclient.New(f.url, token), nil
}

// isLoopback says whether the URL's host is this machine: localhost,
// 127.0.0.1, ::1 or none at all.
func isLoopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Hostname()) {
	case "", "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// call runs one request of a client verb. With -o json it prints the
// API's answer; else text, which prints it as text.
func (a *cli) call(ctx context.Context, f *clientFlags, do func(context.Context, *apiclient.Client) error, text func(io.Writer)) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if f.json() {
		ctx = apiclient.CaptureBody(ctx, &raw)
	}
	if err := do(ctx, c); err != nil {
		return err
	}
	if f.json() {
		return a.printJSON(raw)
	}
	text(a.stdout)
	return nil
}

// printJSON writes an answer of the API, as it came, on one line.
func (a *cli) printJSON(raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return fmt.Errorf("the API's answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := a.stdout.Write(buf.Bytes())
	return err
}

func (a *cli) deployCommand() *cobra.Command {
	var (
		app, version, release, env, scenario, strategy, notBefore, reason, key, emergency, incident string
		retain, watch                                                                               bool
		acknowledge                                                                                 []string
	)
	cmd := &cobra.Command{
		Use:   "deploy --app NAME --version V --env ENV",
		Short: "Deploy a release to an environment",
		Long: `Deploy a release to an environment: the release by --app and --version, or by
--release; the environment by id or by name. With --watch, follow it to the
end: the exit status is 0 only if it completed (4 if it did not). With -o json,
the API's answer (with --watch: the final state of the deployment, the
timeline going to standard error).`,
		Example: `  transit deploy --app storefront --version 1.0.0 --env dev --reason "first release" --watch
  transit deploy --release rel_01J… --env prod --strategy '{"kind":"canary","steps":[1,"25%","100%"],"bake":"10m"}'`,
		Args: noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&app, "app", "", "application name or id")
	fs.StringVar(&version, "version", "", "release version")
	fs.StringVar(&release, "release", "", "release id (instead of --app and --version)")
	fs.StringVar(&env, "env", "", "environment name or id (required)")
	fs.StringVar(&scenario, "scenario", "", "install, upgrade, downgrade or decommission (default: inferred)")
	fs.StringVar(&strategy, "strategy", "", `strategy as JSON, e.g. '{"kind":"canary","steps":[1,"25%","100%"],"bake":"10m"}'`)
	fs.StringVar(&notBefore, "not-before", "", "earliest start, RFC 3339")
	fs.BoolVar(&retain, "retain-data", false, "decommission: keep the targets' data")
	fs.StringVar(&reason, "reason", "", "why this change")
	fs.StringVar(&emergency, "emergency", "", "make it an emergency change, saying why (its own approvals; it may pass a freeze)")
	fs.StringVar(&incident, "incident", "", "the incident an emergency change answers, e.g. INC-123")
	fs.StringSliceVar(&acknowledge, "acknowledge", nil, "open known errors of the release (ids) that you read and accept")
	fs.StringVar(&key, "idempotency-key", "", "repeat-safe key: the same key returns the same deployment")
	fs.BoolVar(&watch, "watch", false, "follow the deployment until it ends")
	_ = cmd.RegisterFlagCompletionFunc("scenario", cobra.FixedCompletions(
		[]string{models.ScenarioInstall, models.ScenarioUpgrade, models.ScenarioDowngrade, models.ScenarioDecommission}, cobra.ShellCompDirectiveNoFileComp))
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req := apiclient.CreateDeploymentRequest{Release: release, Application: app, Version: version, Environment: env,
			Scenario: scenario, RetainData: retain, Reason: reason, AcknowledgeKnownErrors: acknowledge}
		switch {
		case emergency != "":
			req.Emergency = &models.Emergency{Reason: emergency, Incident: incident}
		case incident != "":
			return usagef("--incident goes with --emergency REASON")
		}
		if strategy != "" {
			var s models.Strategy
			dec := json.NewDecoder(strings.NewReader(strategy))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&s); err != nil {
				return usagef("--strategy %s: %v", strategy, err)
			}
			req.Strategy = &s
		}
		if notBefore != "" {
			t, err := time.Parse(time.RFC3339, notBefore)
			if err != nil {
				return usagef("--not-before %q must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z", notBefore)
			}
			req.NotBefore = &t
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		var raw json.RawMessage
		if cf.json() && !watch {
			ctx = apiclient.CaptureBody(ctx, &raw)
		}
		out, err := c.CreateDeployment(ctx, req, apiclient.WithIdempotencyKey(key))
		if err != nil {
			return err
		}
		if cf.json() && !watch {
			return a.printJSON(raw)
		}
		w := a.stdout
		if cf.json() {
			w = a.stderr // the final state alone goes to standard output
		}
		d := out.Deployment
		fmt.Fprintf(w, "deployment %s submitted: %s of %s to %s\n  status:      %s\n  temporal UI: %s\n",
			d.ID, orDash(d.Scenario), d.ReleaseVersion, env, d.Status, out.TemporalUI)
		if watch {
			return a.watchDeployment(cmd.Context(), c, d.ID, cf.json())
		}
		fmt.Fprintf(w, "follow it with: transit watch %s\n", d.ID)
		return nil
	}
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "(inferred when planned)"
	}
	return s
}

func (a *cli) voteCommand(decision string) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   decision + " DEPLOYMENT_ID",
		Short: map[string]string{"approve": "Approve a deployment that awaits approval", "reject": "Reject a deployment that awaits approval"}[decision],
		Args:  oneArg("DEPLOYMENT_ID"),
	}
	cmd.Flags().StringVar(&comment, "comment", "", "a comment for the record")
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res models.VoteResult
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			res, err = c.Vote(ctx, args[0], apiclient.ApprovalRequest{Decision: decision, Comment: comment})
			return err
		}, func(w io.Writer) {
			fmt.Fprintf(w, "%s recorded: %d of %d approvals\n", decision, res.Approvals, res.Required)
		})
	}
	return cmd
}

func (a *cli) controlCommand(name string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: name + " DEPLOYMENT_ID",
		Short: map[string]string{
			apiclient.ControlPause:    "Pause a running deployment before its next wave",
			apiclient.ControlResume:   "Resume a paused deployment",
			apiclient.ControlAbort:    "Abort a deployment",
			apiclient.ControlRollback: "Roll a deployment back",
		}[name],
		Args: oneArg("DEPLOYMENT_ID"),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var res apiclient.ControlResult
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			res, err = c.Control(ctx, args[0], name, apiclient.ControlRequest{Reason: reason})
			return err
		}, func(w io.Writer) {
			fmt.Fprintf(w, "%s accepted (deployment was %v)\n", name, res.Status)
		})
	}
	return cmd
}

func (a *cli) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status DEPLOYMENT_ID",
		Short: "Show a deployment: status, risk, approvals, targets",
		Args:  oneArg("DEPLOYMENT_ID"),
	}
	cmd.RunE = a.getDeployment(addClientFlags(cmd, false))
	return cmd
}

func (a *cli) getDeployment(cf *clientFlags) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var d apiclient.Deployment
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			d, err = c.GetDeployment(ctx, args[0])
			return err
		}, func(w io.Writer) { printStatus(w, d) })
	}
}

func printStatus(w io.Writer, d apiclient.Deployment) {
	dep := d.Deployment
	fmt.Fprintf(w, "deployment %s: %s of %s\n  status:   %s", dep.ID, orDash(dep.Scenario), dep.ReleaseVersion, dep.Status)
	if dep.WaveCount > 0 {
		fmt.Fprintf(w, " (wave %d of %d)", dep.WaveIndex, dep.WaveCount)
	}
	fmt.Fprintln(w)
	if dep.Plan.V != nil {
		fmt.Fprintf(w, "  risk:     %s (%d): %s\n", dep.Plan.V.Risk.Level, dep.Plan.V.Risk.Score, strings.Join(dep.Plan.V.Risk.Reasons, "; "))
	}
	if d.Live != nil && d.Live.Required > 0 {
		fmt.Fprintf(w, "  approvals: %d of %d\n", len(d.Approvals), d.Live.Required)
	}
	if dep.Outcome != "" {
		fmt.Fprintf(w, "  outcome:  %s\n", dep.Outcome)
	}
	for _, t := range d.Targets {
		fmt.Fprintf(w, "  wave %d  %-20s %-16s %s → %s  %s\n", t.Wave, t.TargetName, t.Status, orNone(t.FromVersion), orNone(t.ToVersion), firstLine(t.Message))
	}
	fmt.Fprintf(w, "  temporal UI: %s\n", d.TemporalUI)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func (a *cli) watchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch DEPLOYMENT_ID",
		Short: "Follow a deployment's timeline until it ends",
		Long: `Follow a deployment's timeline until it ends. The exit status is 0 if it
completed (or completed with issues), 4 if it ended otherwise. With -o json,
the final state of the deployment, as GET /deployments/{id} answers it, on
standard output; the timeline goes to standard error.`,
		Args: oneArg("DEPLOYMENT_ID"),
	}
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := cf.client()
		if err != nil {
			return err
		}
		return a.watchDeployment(cmd.Context(), c, args[0], cf.json())
	}
	return cmd
}

// notCompletedError is a deployment that ended otherwise than completed.
type notCompletedError struct {
	id     string
	status models.Status
}

func (e *notCompletedError) Error() string {
	return fmt.Sprintf("deployment %s ended %s", e.id, e.status)
}

// watchDeployment prints the timeline as it grows, and then the final
// state; it returns a notCompletedError unless the deployment was handed
// over (completed, or completed with issues).
func (a *cli) watchDeployment(ctx context.Context, c *apiclient.Client, id string, asJSON bool) error {
	w := a.stdout
	if asJSON {
		w = a.stderr
	}
	d, err := c.Watch(ctx, id, time.Second, func(ev models.DeploymentEvent) {
		fmt.Fprintf(w, "%s  %-20s %s\n", ev.At.Local().Format("15:04:05"), ev.Status, ev.Message)
	})
	if err != nil {
		return err
	}
	if asJSON {
		var raw json.RawMessage
		if d, err = c.GetDeployment(apiclient.CaptureBody(ctx, &raw), id); err != nil {
			return err
		}
		if err := a.printJSON(raw); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(w)
		printStatus(w, d)
	}
	switch d.Deployment.Status {
	case models.StatusCompleted, models.StatusCompletedWithIssues:
		return nil
	}
	return &notCompletedError{id: id, status: d.Deployment.Status}
}
