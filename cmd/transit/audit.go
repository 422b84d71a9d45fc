package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/internal/auditfile"
	"github.com/transit-hq/transit/models"
)

func (a *cli) auditCommand() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "audit",
		Short: "Save signed heads of the audit log, export it, verify an export",
	})
	cmd.AddCommand(a.auditHeadCommand(), a.auditExportCommand(), a.auditVerifyCommand())
	return cmd
}

func (a *cli) auditHeadCommand() *cobra.Command {
	var seq int64
	cmd := &cobra.Command{
		Use:     "head",
		Short:   "Print the signed head of the log, for an auditor to save",
		Example: `  transit audit head > head-2026-11-30.json`,
		Args:    noArgs,
	}
	cmd.Flags().Int64Var(&seq, "seq", 0, "the row to sign (default: the last)")
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var h apiclient.AuditHead
		return a.call(cmd.Context(), cf, func(ctx context.Context, c *apiclient.Client) (err error) {
			h, err = c.Head(ctx, seq)
			return err
		}, func(w io.Writer) {
			// The head is JSON in text too: what the auditor saves.
			_ = json.NewEncoder(w).Encode(h)
		})
	}
	return cmd
}

func (a *cli) auditExportCommand() *cobra.Command {
	var since, until, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the events and a signed head as JSON Lines",
		Long: `Write the audit events (in seq order, with their hashes) and a signed head of
the last one as JSON Lines, to --out or to standard output; progress goes to
standard error. With -o json and --out, a summary ({"events": N, "out": FILE})
on standard output.`,
		Example: `  transit audit export --since 2026-11-01T00:00:00Z --until 2026-12-01T00:00:00Z --out nov.jsonl`,
		Args:    noArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&since, "since", "", "first event time, RFC 3339 (default: the first event)")
	fs.StringVar(&until, "until", "", "events before this time, RFC 3339 (default: to the last)")
	fs.StringVar(&out, "out", "", "file to write, which must not exist yet (default: standard output)")
	cf := addClientFlags(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var from, to time.Time
		for _, f := range []struct {
			name, v string
			t       *time.Time
		}{{"since", since, &from}, {"until", until, &to}} {
			if f.v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, f.v)
			if err != nil {
				return usagef("--%s %q must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z", f.name, f.v)
			}
			*f.t = t
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		w := a.stdout
		var f *os.File
		if out != "" {
			f, err = os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("create %s (it must not exist yet): %w", out, err)
			}
			w = f
		}
		n, err := auditfile.Export(apiclient.AuditSource{Ctx: cmd.Context(), Client: c}, w, from, to, func(n int) {
			fmt.Fprintf(a.stderr, "exported %d events…\n", n)
		})
		if f != nil {
			// A half-written file is removed, so that a rerun may create it again.
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("close %s: %w", out, cerr)
			}
			if err != nil {
				_ = os.Remove(out)
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "exported %d events and a signed head\n", n)
		if cf.json() && out != "" {
			return json.NewEncoder(a.stdout).Encode(struct {
				Events int    `json:"events"`
				Out    string `json:"out"`
			}{n, out})
		}
		return nil
	}
	return cmd
}

func (a *cli) auditVerifyCommand() *cobra.Command {
	var (
		key    string
		output outputFormat = "text"
	)
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an export offline (no server needed)",
		Long: `Check an export offline, with no server: every hash, every link, and the
head's signature; it names the first line that differs. Without --public-key it
uses the key written in the file, which proves nothing against whoever wrote
the file. With -o json, the report as JSON.`,
		Example: `  transit audit verify nov.jsonl --public-key 3b6a27bc…`,
		Args:    oneArg("FILE"),
	}
	cmd.Flags().StringVar(&key, "public-key", "", "the key to check the head with: hex, or @FILE (GET /audit/head shows it); default: the key in the export itself")
	addOutputFlag(cmd, cmd.Flags(), &output)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := args[0]
		var pub ed25519.PublicKey
		if key != "" {
			k := key
			if strings.HasPrefix(k, "@") {
				b, err := os.ReadFile(k[1:])
				if err != nil {
					return fmt.Errorf("read the public key: %w", err)
				}
				k = string(b)
			}
			var err error
			if pub, err = models.ParsePublicKey(k); err != nil {
				return usagef("--public-key: %v", err)
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rep, err := auditfile.Verify(f, pub)
		if err != nil {
			return err
		}
		if output == "json" {
			if err := json.NewEncoder(a.stdout).Encode(rep); err != nil {
				return err
			}
		}
		if !rep.OK {
			return fmt.Errorf("%s does not verify: line %d (row %d): %s", path, rep.BadLine, rep.BadSeq, rep.Reason)
		}
		if output == "json" {
			return nil
		}
		fmt.Fprintf(a.stdout, "%s: ok, rows %d to %d (%d events), head signed by key %s\n", path, rep.First, rep.Last, rep.Events, rep.KeyID)
		if rep.KeyFromFile {
			fmt.Fprintln(a.stdout, "note: checked with the key named in the file itself; pass --public-key with the key you trust to rule out a forged export")
		}
		return nil
	}
	return cmd
}
