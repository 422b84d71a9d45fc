// Package apiclient is a typed client of Transit's REST API (described in
// api/openapi.json), used by the transit CLI's client verbs.
//
// Every method sends a request struct that mirrors the API's own (the
// field names of package api's request types; apiclient's tests hold them
// to it, and to the OpenAPI description) and decodes the answer into the
// API's types. An answer of 300 or more is an *Error.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one Transit API with one token.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New returns a client of the API at baseURL (e.g. http://localhost:8080).
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: time.Minute}}
}

// Error is an error answer of the API: its HTTP status and the stable code
// and message of its body ({"error": {"code", "message", "details"}}).
type Error struct {
	Status  int
	Code    string
	Message string
	Details json.RawMessage
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
	if len(e.Details) > 0 && string(e.Details) != "null" {
		msg += "\n" + string(e.Details)
	}
	return msg
}

// Refused reports whether the API refused the request (a 4xx answer: the
// request, the token or the state of the resource is at fault, and
// repeating it unchanged will not help), as against failing (a 5xx).
func (e *Error) Refused() bool { return e.Status >= 400 && e.Status < 500 }

// Option changes one request.
type Option func(*http.Request)

// WithIdempotencyKey makes a POST repeat-safe: the API answers a request
// repeated with the same key with the first one's result.
func WithIdempotencyKey(key string) Option {
	return func(r *http.Request) {
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
	}
}

type captureKey struct{}

// CaptureBody returns a context under which each successful answer's body,
// as the API sent it, is also stored in *dst: what a caller prints when it
// wants the API's own JSON rather than the decoded value.
func CaptureBody(ctx context.Context, dst *json.RawMessage) context.Context {
	return context.WithValue(ctx, captureKey{}, dst)
}

// Do sends body (nil for none) to method path and decodes the answer into
// out (nil to drop it). path may carry a query.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, opts ...Option) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for _, o := range opts {
		o(req)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach Transit at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code    string          `json:"code"`
				Message string          `json:"message"`
				Details json.RawMessage `json:"details"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
		}
		return &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(raw))}
	}
	if dst, ok := ctx.Value(captureKey{}).(*json.RawMessage); ok && dst != nil {
		*dst = append((*dst)[:0], raw...)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Page is one page of a list: its items and, when there are more, the
// cursor of the next page.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ListOptions select one page of a list.
type ListOptions struct {
	// Limit is the number of items, 1 to 500 (0: the API's default, 50).
	Limit int
	// Cursor is the NextCursor of the previous page.
	Cursor string
}

func (o ListOptions) query(filters ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(filters); i += 2 {
		if filters[i+1] != "" {
			q.Set(filters[i], filters[i+1])
		}
	}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	return q
}

// withQuery appends q to path.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// pathOf joins /api/v1, fixed segments and escaped ids: pathOf("deployments", id, "events").
func pathOf(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}
