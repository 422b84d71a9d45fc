package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PGCluster is a Postgres server that one test owns, in a folder and on a
// port of its own: the test may stop it and start it again (a database
// outage), and no other test is affected.
type PGCluster struct {
	bin  string
	dir  string
	port int
	// runAs is the user that runs the server ("" for the current one):
	// Postgres refuses to run as root.
	runAs string
	URL   string
}

// OwnPostgres creates and starts a Postgres cluster for this test, stopped
// and removed when the test ends.
func OwnPostgres(t testing.TB) *PGCluster {
	t.Helper()
	bin, ok := postgresBin()
	if !ok {
		missing(t, "no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql, so a test-owned cluster cannot be made")
	}
	c := &PGCluster{bin: bin}
	dir, err := os.MkdirTemp("", "transit-test-pgcluster-")
	if err != nil {
		t.Fatalf("make a folder for the cluster: %v", err)
	}
	c.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, Postgres needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("give the cluster's folder to postgres: %v", err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// A port chosen now may be taken by the time the server binds it: try a few.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		c.port = port
		if err = c.Start(); err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("start the test's Postgres cluster: %v", err)
		}
	}
	t.Cleanup(func() { _, _ = c.run("pg_ctl", "-D", data, "-m", "immediate", "stop") })
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	fmt.Fprintf(os.Stderr, "testenv: a test-owned real Postgres cluster in %s on port %d\n", dir, c.port)
	return c
}

// Stop stops the server (fast shutdown: connections are cut).
func (c *PGCluster) Stop() error {
	out, err := c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// Start starts the server and waits until it takes connections.
func (c *PGCluster) Start() error {
	data := filepath.Join(c.dir, "data")
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir)
	out, err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "30", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return nil
}

func (c *PGCluster) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	ctxOut, err := runWithTimeout(cmd, time.Minute)
	return ctxOut, err
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return []byte(out.String()), fmt.Errorf("%s did not finish within %s", cmd.Path, d)
	}
}

func postgresBin() (string, bool) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], true
		}
	}
	return "", false
}
