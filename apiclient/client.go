// Package apiclient is a small client of Transit's REST API, used by the
// transit CLI's client verbs.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/transit-hq/transit/models"
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

// Error is an error answer of the API.
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

// Do sends body (nil for none) to method path and decodes the answer into out (nil to drop it).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.DoWithHeaders(ctx, method, path, nil, body, out)
}

// DoWithHeaders is Do with extra request headers (such as Idempotency-Key).
func (c *Client) DoWithHeaders(ctx context.Context, method, path string, headers map[string]string, body, out any) error {
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
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("reach Transit at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
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
	if out == nil || len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// Deployment is what GET /deployments/{id} returns.
type Deployment struct {
	Deployment models.Deployment         `json:"deployment"`
	WorkflowID string                    `json:"workflow_id"`
	TemporalUI string                    `json:"temporal_ui"`
	Approvals  []models.Approval         `json:"approvals"`
	Targets    []models.DeploymentTarget `json:"targets"`
	Incidents  []models.Incident         `json:"incidents"`
	Live       *models.DeploymentState   `json:"live"`
}

// Deploy submits a deployment.
func (c *Client) Deploy(ctx context.Context, req map[string]any) (Deployment, error) {
	var out Deployment
	err := c.Do(ctx, http.MethodPost, "/api/v1/deployments", req, &out)
	return out, err
}

// Get returns a deployment.
func (c *Client) Get(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.Do(ctx, http.MethodGet, "/api/v1/deployments/"+id, nil, &out)
	return out, err
}

// Events returns the deployment's timeline after the cursor.
func (c *Client) Events(ctx context.Context, id, cursor string) ([]models.DeploymentEvent, string, error) {
	var page struct {
		Items      []models.DeploymentEvent `json:"items"`
		NextCursor string                   `json:"next_cursor"`
	}
	path := "/api/v1/deployments/" + id + "/events"
	if cursor != "" {
		path += "?cursor=" + cursor
	}
	err := c.Do(ctx, http.MethodGet, path, nil, &page)
	return page.Items, page.NextCursor, err
}

// Watch prints each new event of the deployment through print until it ends,
// and returns its final state.
func (c *Client) Watch(ctx context.Context, id string, every time.Duration, print func(models.DeploymentEvent)) (Deployment, error) {
	var last int64
	for {
		for {
			events, _, err := c.Events(ctx, id, fmt.Sprint(last))
			if err != nil {
				return Deployment{}, err
			}
			for _, ev := range events {
				print(ev)
				last = ev.ID
			}
			if len(events) < 500 {
				break
			}
		}
		d, err := c.Get(ctx, id)
		if err != nil {
			return d, err
		}
		if d.Deployment.Status.Terminal() {
			events, _, err := c.Events(ctx, id, fmt.Sprint(last))
			if err == nil {
				for _, ev := range events {
					print(ev)
				}
			}
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(every):
		}
	}
}
