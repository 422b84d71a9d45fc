package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goTestJSON runs `go test -json` on a throwaway module holding the given
// test file, and returns what it printed: real output of real failures.
func goTestJSON(t *testing.T, testFile string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module scratch\n\ngo 1.21\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x_test.go"), []byte(testFile), 0o644))
	cmd := exec.Command("go", append([]string{"test", "-json", "-count=1"}, append(args, "./...")...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, _ := cmd.CombinedOutput() // failing is the point
	return string(out)
}

func run(t *testing.T, input string, requireServers bool) (string, int) {
	t.Helper()
	var b strings.Builder
	code := report(strings.NewReader(input), &b, requireServers)
	return b.String(), code
}

func TestPassingRunCountsEveryTest(t *testing.T) {
	in := goTestJSON(t, `package scratch
import ("fmt"; "testing")
func TestA(t *testing.T) { fmt.Println("testenv: using real Postgres 15"); fmt.Println("testenv: real Temporal dev server") }
func TestB(t *testing.T) { t.Run("sub", func(t *testing.T) {}) }
func TestC(t *testing.T) { t.Skip("no network here") }
`)
	out, code := run(t, in, true)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "3 passed, 0 failed, 1 skipped", "TestA, TestB and TestB/sub")
	require.Contains(t, out, "SKIPPED scratch TestC: x_test.go:5: no network here")
}

// A test that hangs until the package times out is named and counted as
// failed; "1 passed, 0 failed" would be a lie.
func TestTimeoutNamesTheHungTest(t *testing.T) {
	in := goTestJSON(t, `package scratch
import ("testing"; "time")
func TestQuick(t *testing.T) {}
func TestHangs(t *testing.T) { t.Run("forever", func(t *testing.T) { time.Sleep(time.Hour) }) }
`, "-timeout", "2s")
	out, code := run(t, in, false)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "--- DID NOT FINISH: TestHangs/forever (scratch)")
	require.Contains(t, out, "1 passed, 1 failed, 0 skipped")
}

// A package that does not build fails the run, and says so.
func TestBuildFailureIsAFailure(t *testing.T) {
	in := goTestJSON(t, `package scratch
import "testing"
func TestX(t *testing.T) { undefinedThing() }
`)
	out, code := run(t, in, false)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "undefinedThing")
	require.Contains(t, out, "FAILED PACKAGE scratch failed to build")
	require.Contains(t, out, "0 passed, 1 failed")
}

// TestMain exiting before the tests (a missing server, say) fails the run.
func TestTestMainExitIsAFailure(t *testing.T) {
	in := goTestJSON(t, `package scratch
import ("fmt"; "os"; "testing")
func TestMain(m *testing.M) { fmt.Println("cannot start the server"); os.Exit(1) }
func TestNeverRuns(t *testing.T) {}
`)
	out, code := run(t, in, false)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "cannot start the server")
	require.Contains(t, out, "FAILED PACKAGE scratch failed outside any test")
	require.Contains(t, out, "0 passed, 1 failed")
}

// Without a line that shows the real servers, -require-servers fails.
func TestRunWithoutRealServersFails(t *testing.T) {
	in := goTestJSON(t, `package scratch
import "testing"
func TestA(t *testing.T) {}
`)
	out, code := run(t, in, true)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "the real-part tests did not run")
	_, code = run(t, in, false)
	require.Equal(t, 0, code)
}

// Input that cannot be read in full is an error, not a short count.
func TestUnreadableInputIsAnError(t *testing.T) {
	in := io.MultiReader(strings.NewReader(`{"Action":"run","Package":"p","Test":"TestA"}`+"\n"), errReader{})
	var b strings.Builder
	code := report(in, &b, false)
	require.Equal(t, 1, code)
	require.Contains(t, b.String(), "could not read all of go test's output")
	require.Contains(t, b.String(), "--- DID NOT FINISH: p/TestA")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken pipe") }
