// Package testenv gives tests the real parts: a throwaway Postgres database
// and a Temporal dev server started from the pinned temporal binary.
//
// Postgres comes from TRANSIT_TEST_DATABASE_URL (an admin URL; `make test`
// sets it after starting this machine's Postgres). Without it a test is
// skipped with a loud message, and under CI=true it fails instead.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for admin statements
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/transit-hq/transit/models"
)

// EnvDatabaseURL names the admin Postgres URL for tests.
const EnvDatabaseURL = "TRANSIT_TEST_DATABASE_URL"

var announced sync.Map

// missing skips the test, or fails it under CI=true, saying what is missing.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := "NOT TESTED: " + what
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing server is a failure, not a skip)")
	}
	t.Skip(msg + " — run `make test`, which provides it")
}

// PostgresURL creates a throwaway database for this test and returns its
// URL; the database is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvDatabaseURL)
	if admin == "" {
		missing(t, EnvDatabaseURL+" is not set, so nothing ran against Postgres")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, loaded := announced.LoadOrStore("pg", true); !loaded {
		var version string
		if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&version); err != nil {
			t.Fatalf("Postgres at %s does not answer: %v", redact(admin), err)
		}
		fmt.Fprintf(os.Stderr, "testenv: using real Postgres %s at %s\n", version, redact(admin))
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "transit_test_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvDatabaseURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// TemporalBinary returns the pinned temporal CLI: $TRANSIT_TEMPORAL_BIN or
// bin/temporal at the repository root.
func TemporalBinary() (string, bool) {
	if p := os.Getenv("TRANSIT_TEMPORAL_BIN"); p != "" {
		_, err := os.Stat(p)
		return p, err == nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "temporal")
	_, err := os.Stat(p)
	return p, err == nil
}

// Temporal is a running dev server.
type Temporal struct {
	server   *testsuite.DevServer
	Address  string
	UIPort   int
	Database string // the SQLite file, "" when in memory
}

// TemporalOptions configures StartTemporal.
type TemporalOptions struct {
	// DBFile keeps the server's state in a file (for restart tests); empty is in memory.
	DBFile string
}

// StartTemporal starts a Temporal dev server from the pinned binary with
// Transit's search attributes registered. Call Stop when done.
func StartTemporal(opt TemporalOptions) (*Temporal, error) {
	bin, ok := TemporalBinary()
	if !ok {
		return nil, fmt.Errorf("the temporal CLI is not at %s: run `make bin/temporal`", bin)
	}
	args := []string{"--headless"}
	if opt.DBFile != "" {
		args = append(args, "--db-filename", opt.DBFile)
	}
	for _, sa := range models.SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	start := time.Now()
	var srv *testsuite.DevServer
	// A free port found now may be taken before the server binds it (another
	// run on this machine): try again on another.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		srv, err = testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{
			ExistingPath:  bin,
			ClientOptions: &client.Options{HostPort: "127.0.0.1:" + fmt.Sprint(port), Namespace: "default"},
			ExtraArgs:     args,
			LogLevel:      "error",
		})
		if err == nil {
			break
		}
		if attempt == 3 {
			return nil, fmt.Errorf("start Temporal dev server %s: %w", bin, err)
		}
	}
	fmt.Fprintf(os.Stderr, "testenv: real Temporal dev server (%s) at %s, up in %s\n", bin, srv.FrontendHostPort(), time.Since(start).Round(time.Millisecond))
	return &Temporal{server: srv, Address: srv.FrontendHostPort(), Database: opt.DBFile}, nil
}

// Stop stops the server.
func (t *Temporal) Stop() error { return t.server.Stop() }

// Client dials the server.
func (t *Temporal) Client(tb testing.TB) client.Client {
	tb.Helper()
	c, err := client.Dial(client.Options{HostPort: t.Address, Namespace: "default", Logger: quietLogger{}})
	if err != nil {
		tb.Fatalf("dial Temporal at %s: %v", t.Address, err)
	}
	tb.Cleanup(c.Close)
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RequireTemporal fails or skips (as for Postgres) when the pinned binary is missing.
func RequireTemporal(t testing.TB) {
	t.Helper()
	if p, ok := TemporalBinary(); !ok {
		missing(t, "the temporal CLI is not at "+p+", so nothing ran against a Temporal server")
	}
}

// quietLogger drops the SDK's info logs in tests; warnings and errors go to stderr.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(msg string, kv ...any) {
	if !strings.Contains(msg, "Failed to poll") {
		fmt.Fprintln(os.Stderr, append([]any{"temporal warn:", msg}, kv...)...)
	}
}
func (quietLogger) Error(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"temporal error:", msg}, kv...)...)
}
