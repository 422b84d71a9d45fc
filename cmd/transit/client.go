package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/models"
)

// clientFlags are the flags every client verb takes.
type clientFlags struct {
	url   *string
	token *string
}

func newClientFlags(fs *flag.FlagSet) clientFlags {
	def := os.Getenv("TRANSIT_URL")
	if def == "" {
		def = "http://localhost:8080"
	}
	return clientFlags{
		url:   fs.String("url", def, "Transit API base URL ($TRANSIT_URL)"),
		token: fs.String("token", "", "API token (default $TRANSIT_TOKEN, then .transit/admin.token)"),
	}
}

func (f clientFlags) client() (*apiclient.Client, error) {
	token := *f.token
	if token == "" {
		token = os.Getenv("TRANSIT_TOKEN")
	}
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(".transit", "admin.token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token == "" {
		return nil, errors.New("no API token: pass --token or set TRANSIT_TOKEN (transit dev saves one in .transit/admin.token)")
	}
	return apiclient.New(*f.url, token), nil
}

// parse parses a verb's flags and its positional argument, and returns a
// client of the API.
func (f clientFlags) parse(fs *flag.FlagSet, args []string, positional string) (string, *apiclient.Client, error) {
	arg, err := parseVerb(fs, args, positional)
	if err != nil {
		return "", nil, err
	}
	c, err := f.client()
	return arg, c, err
}

// parseVerb parses flags that may come before or after the one positional
// argument (the deployment id).
func parseVerb(fs *flag.FlagSet, args []string, positional string) (string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return "", errUsage
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if positional == "" {
		if len(pos) > 0 {
			return "", fmt.Errorf("unexpected argument %q", pos[0])
		}
		return "", nil
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("usage: transit %s %s [flags]", fs.Name(), positional)
	}
	return pos[0], nil
}

func runDeploy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	cf := newClientFlags(fs)
	app := fs.String("app", "", "application name or id")
	version := fs.String("version", "", "release version")
	release := fs.String("release", "", "release id (instead of --app and --version)")
	env := fs.String("env", "", "environment name or id (required)")
	scenario := fs.String("scenario", "", "install, upgrade or decommission (default: inferred)")
	strategy := fs.String("strategy", "", `strategy as JSON, e.g. '{"kind":"canary","steps":[1,"25%","100%"],"bake":"10m"}'`)
	notBefore := fs.String("not-before", "", "earliest start, RFC 3339")
	retain := fs.Bool("retain-data", false, "decommission: keep the targets' data")
	reason := fs.String("reason", "", "why this change")
	key := fs.String("idempotency-key", "", "repeat-safe key: the same key returns the same deployment")
	watch := fs.Bool("watch", false, "follow the deployment until it ends")
	_, c, err := cf.parse(fs, args, "")
	if err != nil {
		return err
	}
	body := map[string]any{"release": *release, "application": *app, "version": *version, "environment": *env,
		"scenario": *scenario, "retain_data": *retain, "reason": *reason}
	if *strategy != "" {
		body["strategy"] = json.RawMessage(*strategy)
	}
	if *notBefore != "" {
		body["not_before"] = *notBefore
	}
	var out apiclient.Deployment
	var headers map[string]string
	if *key != "" {
		headers = map[string]string{"Idempotency-Key": *key}
	}
	if err := c.DoWithHeaders(ctx, http.MethodPost, "/api/v1/deployments", headers, body, &out); err != nil {
		return err
	}
	fmt.Printf("deployment %s submitted: %s of %s to %s\n  status:      %s\n  temporal UI: %s\n",
		out.Deployment.ID, orDash(out.Deployment.Scenario), out.Deployment.ReleaseVersion, *env, out.Deployment.Status, out.TemporalUI)
	if *watch {
		return watchDeployment(ctx, c, out.Deployment.ID)
	}
	fmt.Printf("follow it with: transit watch %s\n", out.Deployment.ID)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "(inferred when planned)"
	}
	return s
}

func runVote(ctx context.Context, decision string, args []string) error {
	fs := flag.NewFlagSet(decision, flag.ContinueOnError)
	cf := newClientFlags(fs)
	comment := fs.String("comment", "", "a comment for the record")
	id, c, err := cf.parse(fs, args, "DEPLOYMENT_ID")
	if err != nil {
		return err
	}
	var res models.VoteResult
	if err := c.Do(ctx, http.MethodPost, "/api/v1/deployments/"+id+"/approvals",
		map[string]string{"decision": decision, "comment": *comment}, &res); err != nil {
		return err
	}
	fmt.Printf("%s recorded: %d of %d approvals\n", decision, res.Approvals, res.Required)
	return nil
}

func runControl(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cf := newClientFlags(fs)
	reason := fs.String("reason", "", "why")
	id, c, err := cf.parse(fs, args, "DEPLOYMENT_ID")
	if err != nil {
		return err
	}
	var res map[string]any
	if err := c.Do(ctx, http.MethodPost, "/api/v1/deployments/"+id+"/"+name, map[string]string{"reason": *reason}, &res); err != nil {
		return err
	}
	fmt.Printf("%s accepted (deployment was %v)\n", name, res["status"])
	return nil
}

func runStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	cf := newClientFlags(fs)
	id, c, err := cf.parse(fs, args, "DEPLOYMENT_ID")
	if err != nil {
		return err
	}
	d, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	printStatus(d)
	return nil
}

func printStatus(d apiclient.Deployment) {
	dep := d.Deployment
	fmt.Printf("deployment %s: %s of %s\n  status:   %s", dep.ID, orDash(dep.Scenario), dep.ReleaseVersion, dep.Status)
	if dep.WaveCount > 0 {
		fmt.Printf(" (wave %d of %d)", dep.WaveIndex, dep.WaveCount)
	}
	fmt.Println()
	if dep.Plan.V != nil {
		fmt.Printf("  risk:     %s (%d): %s\n", dep.Plan.V.Risk.Level, dep.Plan.V.Risk.Score, strings.Join(dep.Plan.V.Risk.Reasons, "; "))
	}
	if d.Live != nil && d.Live.Required > 0 {
		fmt.Printf("  approvals: %d of %d\n", len(d.Approvals), d.Live.Required)
	}
	if dep.Outcome != "" {
		fmt.Printf("  outcome:  %s\n", dep.Outcome)
	}
	for _, t := range d.Targets {
		fmt.Printf("  wave %d  %-20s %-16s %s → %s  %s\n", t.Wave, t.TargetName, t.Status, orNone(t.FromVersion), orNone(t.ToVersion), firstLine(t.Message))
	}
	fmt.Printf("  temporal UI: %s\n", d.TemporalUI)
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

func runWatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	cf := newClientFlags(fs)
	id, c, err := cf.parse(fs, args, "DEPLOYMENT_ID")
	if err != nil {
		return err
	}
	return watchDeployment(ctx, c, id)
}

// watchDeployment prints the timeline as it grows; the exit status is 0
// only when the deployment was handed over.
func watchDeployment(ctx context.Context, c *apiclient.Client, id string) error {
	d, err := c.Watch(ctx, id, time.Second, func(ev models.DeploymentEvent) {
		fmt.Printf("%s  %-20s %s\n", ev.At.Local().Format("15:04:05"), ev.Status, ev.Message)
	})
	if err != nil {
		return err
	}
	fmt.Println()
	printStatus(d)
	if d.Deployment.Status != models.StatusCompleted {
		return fmt.Errorf("deployment %s ended %s", id, d.Deployment.Status)
	}
	return nil
}

func runRelease(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: transit release create --app NAME --version V --artifact NAME=IMAGE_OR_VERSION [--notes TEXT] [--criterion KEY=VALUE]")
	}
	fs := flag.NewFlagSet("release create", flag.ContinueOnError)
	cf := newClientFlags(fs)
	app := fs.String("app", "", "application name or id")
	version := fs.String("version", "", "release version (semver when it looks like semver)")
	notes := fs.String("notes", "", "release notes")
	var artifacts, criteria multiFlag
	fs.Var(&artifacts, "artifact", "NAME=IMAGE (with a ':' or '/') or NAME=VERSION; repeatable")
	fs.Var(&criteria, "criterion", "entry criterion KEY=VALUE, e.g. tests=passed; repeatable")
	_, c, err := cf.parse(fs, args[1:], "")
	if err != nil {
		return err
	}
	body := map[string]any{"application_id": *app, "version": *version, "notes": *notes}
	arts := []models.Artifact{}
	for _, a := range artifacts {
		name, val, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("--artifact %q must be NAME=IMAGE or NAME=VERSION", a)
		}
		if strings.ContainsAny(val, ":/") {
			arts = append(arts, models.Artifact{Name: name, Image: val})
		} else {
			arts = append(arts, models.Artifact{Name: name, Version: val})
		}
	}
	body["artifacts"] = arts
	crit := map[string]string{}
	for _, kv := range criteria {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--criterion %q must be KEY=VALUE", kv)
		}
		crit[k] = v
	}
	body["entry_criteria"] = crit
	var rel models.Release
	if err := c.Do(ctx, http.MethodPost, "/api/v1/releases", body, &rel); err != nil {
		return err
	}
	fmt.Printf("release %s %s created (%s)\n", *app, rel.Version, rel.ID)
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
