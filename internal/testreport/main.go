// Command testreport reads `go test -json` on stdin and prints what a person
// needs from a long run: each package's result line as go test prints it,
// the full output of every failed test, the lines that show which real
// servers were used ("testenv: …") and the measured figures ("FIGURE …"),
// skipped tests with their reasons, and a closing "N passed, N failed" line
// that tells the truth in every failure mode:
//
//   - a test still running when the package died (a timeout, a panic in
//     another goroutine) is named and counted as failed;
//   - a package that failed outside any test (it did not build, TestMain
//     exited) is counted as a failure, not as "0 failed";
//   - input it could not read is an error, not a short count;
//   - with -require-servers, a run that shows no real Postgres and no real
//     Temporal server ("testenv:" lines) fails: it did not test what the
//     README says it does.
//
// It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	requireServers := flag.Bool("require-servers", false, "fail unless the output shows a real Postgres and a real Temporal server were used")
	flag.Parse()
	os.Exit(report(os.Stdin, os.Stdout, *requireServers))
}

type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	FailedBuild string
}

// report reads the events from in, writes the report to out and returns
// the exit code.
func report(in io.Reader, out io.Writer, requireServers bool) int {
	var (
		outputs              = map[string]*strings.Builder{} // package/test → output
		seen                 = map[string]bool{}
		running              = map[string]bool{} // package/test started, not ended
		failedInPkg          = map[string]int{}
		passed, failed, skip int
		skipped              []string
		pkgFailures          []string
		servers              []string
	)
	key := func(e event) string { return e.Package + "/" + e.Test }
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintln(out, string(line)) // not JSON: a build error or the like
			continue
		}
		switch e.Action {
		case "run":
			if e.Test != "" {
				running[key(e)] = true
			}
		case "output", "build-output":
			text := e.Output
			trimmed := strings.TrimSpace(text)
			if strings.HasPrefix(trimmed, "testenv:") || strings.HasPrefix(trimmed, "FIGURE ") {
				if !seen[trimmed] {
					seen[trimmed] = true
					fmt.Fprintln(out, trimmed)
					if strings.HasPrefix(trimmed, "testenv:") {
						servers = append(servers, trimmed)
					}
				}
			}
			b := outputs[key(e)]
			if b == nil {
				b = &strings.Builder{}
				outputs[key(e)] = b
			}
			b.WriteString(text)
			if e.Action == "build-output" {
				fmt.Fprint(out, text)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				switch e.Action {
				case "pass":
					fmt.Fprintf(out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
				case "skip":
					fmt.Fprintf(out, "?   \t%s\t[no test files]\n", e.Package)
				case "fail":
					if b := outputs[key(e)]; b != nil && b.Len() > 0 {
						fmt.Fprint(out, b.String())
					}
					fmt.Fprintf(out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
					unfinished := unfinishedIn(running, e.Package)
					for _, name := range unfinished {
						failed++
						fmt.Fprintf(out, "--- DID NOT FINISH: %s (%s): still running when the package ended (a timeout, or a panic elsewhere)\n", name, e.Package)
					}
					for k := range running {
						if strings.HasPrefix(k, e.Package+"/") {
							delete(running, k)
						}
					}
					if failedInPkg[e.Package] == 0 && len(unfinished) == 0 {
						// No test failed, yet the package did: it did not build,
						// TestMain exited, or it panicked outside a test.
						failed++
						why := "outside any test (TestMain, init, or a panic)"
						if e.FailedBuild != "" {
							why = "to build"
						}
						pkgFailures = append(pkgFailures, fmt.Sprintf("%s failed %s", e.Package, why))
					}
				}
				continue
			}
			delete(running, key(e))
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skip++
				reason := ""
				if b := outputs[key(e)]; b != nil {
					reason = lastMeaningful(b.String())
				}
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason))
			case "fail":
				failed++
				failedInPkg[e.Package]++
				fmt.Fprintf(out, "--- FAIL: %s (%s)\n", e.Test, e.Package)
				if b := outputs[key(e)]; b != nil {
					fmt.Fprint(out, b.String())
				}
			}
		}
	}
	code := 0
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "TESTREPORT: could not read all of go test's output (%v): the counts below are incomplete\n", err)
		failed++
		code = 1
	}
	// Tests still running at the end of the stream, with no package result.
	var left []string
	for k := range running {
		left = append(left, k)
	}
	sort.Strings(left)
	for _, k := range left {
		failed++
		fmt.Fprintf(out, "--- DID NOT FINISH: %s: the output ended while it ran\n", k)
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		fmt.Fprintln(out, "SKIPPED", s)
	}
	for _, p := range pkgFailures {
		fmt.Fprintln(out, "FAILED PACKAGE", p)
	}
	if requireServers && !(mentions(servers, "Postgres") && mentions(servers, "Temporal")) {
		fmt.Fprintln(out, "TESTREPORT: no \"testenv:\" line shows a real Postgres and a real Temporal server: the real-part tests did not run")
		failed++
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", passed, failed, skip)
	if failed > 0 {
		code = 1
	}
	return code
}

// unfinishedIn returns the tests of pkg that started and did not end.
func unfinishedIn(running map[string]bool, pkg string) []string {
	var out []string
	for k := range running {
		if name, ok := strings.CutPrefix(k, pkg+"/"); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	// A parent test is running while its subtests are: name only the
	// innermost.
	var leaves []string
	for i, n := range out {
		if i+1 < len(out) && strings.HasPrefix(out[i+1], n+"/") {
			continue
		}
		leaves = append(leaves, n)
	}
	return leaves
}

func mentions(lines []string, word string) bool {
	for _, l := range lines {
		if strings.Contains(l, word) {
			return true
		}
	}
	return false
}

func lastMeaningful(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "---") && !strings.HasPrefix(l, "===") {
			return l
		}
	}
	return ""
}
