package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/transit-hq/transit/models"
)

// KPIFilter selects the KPIs of KPIs; zero fields take the API's default
// (the last 30 days, every application and environment).
type KPIFilter struct {
	// From and To bound the range [From, To).
	From, To time.Time
	// Application is an application's id or name.
	Application string
	// Environment is an environment's id, or its name with Application.
	Environment string
}

// KPIs returns the KPIs of a range (GET /kpis), each with how it was
// counted.
func (c *Client) KPIs(ctx context.Context, f KPIFilter) (models.KPIReport, error) {
	q := url.Values{}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339))
	}
	if f.Application != "" {
		q.Set("application", f.Application)
	}
	if f.Environment != "" {
		q.Set("environment", f.Environment)
	}
	var out models.KPIReport
	err := c.Do(ctx, http.MethodGet, withQuery(pathOf("kpis"), q), nil, &out)
	return out, err
}
