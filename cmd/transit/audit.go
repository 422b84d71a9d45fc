package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/transit-hq/transit/apiclient"
	"github.com/transit-hq/transit/internal/auditfile"
	"github.com/transit-hq/transit/models"
)

const auditUsage = `usage:
  transit audit head [--seq N]                     print the signed head of the log, for an auditor to save
  transit audit export [--since T] [--until T] [--out FILE]
                                                  write the events and a signed head as JSON Lines
  transit audit verify FILE [--public-key HEX|@FILE]
                                                  check an export offline (no server needed)`

func runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, auditUsage)
		return errUsage
	}
	switch args[0] {
	case "head":
		return runAuditHead(ctx, args[1:])
	case "export":
		return runAuditExport(ctx, args[1:])
	case "verify":
		return runAuditVerify(args[1:])
	}
	fmt.Fprintf(os.Stderr, "transit audit: unknown command %q\n%s\n", args[0], auditUsage)
	return errUsage
}

func runAuditHead(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit head", flag.ContinueOnError)
	cf := newClientFlags(fs)
	seq := fs.Int64("seq", 0, "the row to sign (default: the last)")
	_, c, err := cf.parse(fs, args, "")
	if err != nil {
		return err
	}
	h, err := c.Head(ctx, *seq)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(h)
}

func runAuditExport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	cf := newClientFlags(fs)
	since := fs.String("since", "", "first event time, RFC 3339 (default: the first event)")
	until := fs.String("until", "", "events before this time, RFC 3339 (default: to the last)")
	out := fs.String("out", "", "file to write (default: standard output)")
	_, c, err := cf.parse(fs, args, "")
	if err != nil {
		return err
	}
	var from, to time.Time
	for _, f := range []struct {
		name, v string
		t       *time.Time
	}{{"since", *since, &from}, {"until", *until, &to}} {
		if f.v == "" {
			continue
		}
		if *f.t, err = time.Parse(time.RFC3339, f.v); err != nil {
			return fmt.Errorf("--%s %q must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z", f.name, f.v)
		}
	}
	var w io.Writer = os.Stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("create %s (it must not exist yet): %w", *out, err)
		}
		defer f.Close()
		w = f
	}
	n, err := auditfile.Export(apiclient.AuditSource{Ctx: ctx, Client: c}, w, from, to, func(n int) {
		fmt.Fprintf(os.Stderr, "exported %d events…\n", n)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "exported %d events and a signed head\n", n)
	return nil
}

func runAuditVerify(args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	key := fs.String("public-key", "", "the key to check the head with: hex, or @FILE (GET /audit/head shows it); default: the key in the export itself")
	path, err := parseVerb(fs, args, "FILE")
	if err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if *key != "" {
		k := *key
		if strings.HasPrefix(k, "@") {
			b, err := os.ReadFile(k[1:])
			if err != nil {
				return fmt.Errorf("read the public key: %w", err)
			}
			k = string(b)
		}
		if pub, err = models.ParsePublicKey(k); err != nil {
			return fmt.Errorf("--public-key: %w", err)
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
	if !rep.OK {
		return fmt.Errorf("%s does not verify: line %d (row %d): %s", path, rep.BadLine, rep.BadSeq, rep.Reason)
	}
	fmt.Printf("%s: ok, rows %d to %d (%d events), head signed by key %s\n", path, rep.First, rep.Last, rep.Events, rep.KeyID)
	if rep.KeyFromFile {
		fmt.Println("note: checked with the key named in the file itself; pass --public-key with the key you trust to rule out a forged export")
	}
	return nil
}
