// Command testreport reads `go test -json` on stdin and prints what a person
// needs from a long run: each package's result line as go test prints it,
// the full output of every failed test, the lines that show which real
// servers were used ("testenv: …") and the measured figures ("FIGURE …"),
// skipped tests with their reasons, and a closing "N passed, N failed" line.
// It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	var (
		outputs              = map[string]*strings.Builder{} // package/test → output
		seen                 = map[string]bool{}
		passed, failed, skip int
		skipped              []string
		failedPkgs           []string
	)
	key := func(e event) string { return e.Package + "/" + e.Test }
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Println(string(line)) // not JSON: a build error or the like
			continue
		}
		switch e.Action {
		case "output", "build-output":
			out := e.Output
			trimmed := strings.TrimSpace(out)
			if strings.HasPrefix(trimmed, "testenv:") || strings.HasPrefix(trimmed, "FIGURE ") {
				if !seen[trimmed] {
					seen[trimmed] = true
					fmt.Println(trimmed)
				}
			}
			b := outputs[key(e)]
			if b == nil {
				b = &strings.Builder{}
				outputs[key(e)] = b
			}
			b.WriteString(out)
			if e.Action == "build-output" {
				fmt.Print(out)
			}
		case "pass", "fail", "skip":
			if e.Test == "" {
				switch e.Action {
				case "pass":
					fmt.Printf("ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
				case "skip":
					fmt.Printf("?   \t%s\t[no test files]\n", e.Package)
				case "fail":
					if b := outputs[key(e)]; b != nil && b.Len() > 0 {
						fmt.Print(b.String())
					}
					fmt.Printf("FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
					failedPkgs = append(failedPkgs, e.Package)
				}
				continue
			}
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
				fmt.Printf("--- FAIL: %s (%s)\n", e.Test, e.Package)
				if b := outputs[key(e)]; b != nil {
					fmt.Print(b.String())
				}
			}
		}
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		fmt.Println("SKIPPED", s)
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skip)
	if failed > 0 || len(failedPkgs) > 0 {
		os.Exit(1)
	}
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
