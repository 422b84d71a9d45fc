package drivers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"unicode/utf8"

	"github.com/transit-hq/transit/models"
)

// ActionCheck is TRANSIT_ACTION for a script validation check.
const ActionCheck = "check"

// ErrUnreachable marks an error of Current: the target could not be asked
// what it runs.
var ErrUnreachable = errors.New("target unreachable")

// ErrTimeout marks a command or request that ran out of time.
var ErrTimeout = errors.New("timed out")

// TemplateData is what the templates of drivers, checks and probes see
// (status_url, check urls and addresses, probe urls and PromQL queries):
// {{.Target.Name}}, {{.Target.ID}}, {{index .Target.Labels "zone"}},
// {{.Release.Version}}, {{.Application}}, {{.Environment}},
// {{.IdempotencyKey}}, {{.Previous}}, {{.Action}}.
type TemplateData struct {
	Action         string
	Target         Target
	Release        Release
	Previous       string
	IdempotencyKey string
	Application    string
	Environment    string
}

func templateDataFor(action string, req Request) TemplateData {
	return TemplateData{
		Action:         action,
		Target:         req.Target,
		Release:        req.Release,
		Previous:       req.Previous,
		IdempotencyKey: req.IdempotencyKey,
		Application:    req.Target.Application,
		Environment:    req.Target.Environment,
	}
}

// render executes text as a template over data. Text without "{{" is
// returned as it is.
func render(name, text string, data TemplateData) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse %s template: %w", name, err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render %s template: %w", name, err)
	}
	return b.String(), nil
}

// transitEnv returns the TRANSIT_* variables a script sees.
func transitEnv(action string, req Request) []string {
	artifacts := req.Release.Artifacts
	if artifacts == nil {
		artifacts = []models.Artifact{}
	}
	js, err := json.Marshal(artifacts)
	if err != nil { // cannot happen: artifacts are plain strings
		js = []byte("[]")
	}
	return []string{
		"TRANSIT_ACTION=" + action,
		"TRANSIT_APPLICATION=" + req.Target.Application,
		"TRANSIT_ENVIRONMENT=" + req.Target.Environment,
		"TRANSIT_TARGET=" + req.Target.Name,
		"TRANSIT_TARGET_ID=" + req.Target.ID,
		"TRANSIT_RELEASE_VERSION=" + req.Release.Version,
		"TRANSIT_PREVIOUS_VERSION=" + req.Previous,
		"TRANSIT_ARTIFACTS=" + string(js),
		"TRANSIT_IDEMPOTENCY_KEY=" + req.IdempotencyKey,
		"TRANSIT_RETAIN_DATA=" + strconv.FormatBool(req.RetainData),
	}
}

// seededRand returns a PRNG determined by seed and parts.
func seededRand(seed int64, parts ...string) *rand.Rand {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer {
	if max <= 0 {
		max = DefaultOutputTailKiB * 1024
	}
	return &tailBuffer{max: max}
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

// Printf appends a formatted line.
func (b *tailBuffer) Printf(format string, args ...any) {
	fmt.Fprintf(b, format+"\n", args...)
}

// String returns the tail, starting on a whole UTF-8 character.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(trimToValidStart(lastBytes(b.buf, b.max)))
}

// LastLine returns the last non-empty line written.
func (b *tailBuffer) LastLine() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return lastLine(string(lastBytes(b.buf, b.max)))
}

func lastBytes(p []byte, n int) []byte {
	if len(p) > n {
		return p[len(p)-n:]
	}
	return p
}

// trimToValidStart drops the continuation bytes of a character cut in two.
func trimToValidStart(p []byte) []byte {
	for i := 0; i < len(p) && i < utf8.UTFMax; i++ {
		if utf8.RuneStart(p[i]) {
			return p[i:]
		}
	}
	return p
}

// tailString returns the last n bytes of s, starting on a whole character.
func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + string(trimToValidStart([]byte(s[len(s)-n:])))
}

// lastLine returns the last non-blank line of s, trimmed.
func lastLine(s string) string {
	s = strings.TrimRight(s, " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// snippet shortens a response body for an error message.
func snippet(body []byte) string {
	body = bytes.TrimSpace(body)
	const max = 512
	if len(body) > max {
		return strings.ToValidUTF8(string(body[:max]), "") + "…"
	}
	return string(body)
}

// Client is the HTTP client of the http driver, checks, probes and
// notifications when none is given. It keeps up to MaxIdlePerHost
// connections open to each host, as many requests as a wave may send at
// once: net/http's default keeps 2, so each wave of 40 steps against one
// deployer opened 38 connections anew (TestRequestsToOneHostReuseConnections),
// a TLS handshake each.
var Client = &http.Client{Transport: Transport}

// Transport is Client's: net/http's default transport (proxy from the
// environment, dial and TLS timeouts) with more idle connections kept.
var Transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = MaxIdlePerHost
	t.MaxIdleConns = 10 * MaxIdlePerHost
	return t
}()

// MaxIdlePerHost is how many idle connections Transport keeps to a host.
const MaxIdlePerHost = 100
