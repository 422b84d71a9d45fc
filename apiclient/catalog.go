package apiclient

import (
	"context"
	"net/http"

	"github.com/transit-hq/transit/models"
)

// CreateReleaseRequest is the body of POST /releases (api.CreateReleaseRequest).
type CreateReleaseRequest struct {
	// ApplicationID is the application's id or name.
	ApplicationID string            `json:"application_id"`
	Version       string            `json:"version"`
	Artifacts     []models.Artifact `json:"artifacts"`
	Notes         string            `json:"notes,omitempty"`
	EntryCriteria map[string]string `json:"entry_criteria"`
}

// ReleaseFilter selects releases for ListReleases; empty fields do not filter.
type ReleaseFilter struct {
	// ApplicationID is an application's id or name.
	ApplicationID string
	Version       string
	ListOptions
}

// ApplicationFilter selects applications for ListApplications.
type ApplicationFilter struct {
	Name      string
	OwnerTeam string
	ListOptions
}

// EnvironmentFilter selects environments for ListEnvironments.
type EnvironmentFilter struct {
	// ApplicationID is an application's id or name.
	ApplicationID string
	Name          string
	ListOptions
}

// CreateRelease registers a release (releases are immutable).
func (c *Client) CreateRelease(ctx context.Context, req CreateReleaseRequest) (models.Release, error) {
	var out models.Release
	err := c.Do(ctx, http.MethodPost, pathOf("releases"), req, &out)
	return out, err
}

// GetRelease returns a release by id.
func (c *Client) GetRelease(ctx context.Context, id string) (models.Release, error) {
	var out models.Release
	err := c.Do(ctx, http.MethodGet, pathOf("releases", id), nil, &out)
	return out, err
}

// ListReleases returns one page of releases.
func (c *Client) ListReleases(ctx context.Context, f ReleaseFilter) (Page[models.Release], error) {
	var out Page[models.Release]
	q := f.query("application_id", f.ApplicationID, "version", f.Version)
	err := c.Do(ctx, http.MethodGet, withQuery(pathOf("releases"), q), nil, &out)
	return out, err
}

// GetApplication returns an application by id or name.
func (c *Client) GetApplication(ctx context.Context, idOrName string) (models.Application, error) {
	var out models.Application
	err := c.Do(ctx, http.MethodGet, pathOf("applications", idOrName), nil, &out)
	return out, err
}

// ListApplications returns one page of applications.
func (c *Client) ListApplications(ctx context.Context, f ApplicationFilter) (Page[models.Application], error) {
	var out Page[models.Application]
	q := f.query("name", f.Name, "owner_team", f.OwnerTeam)
	err := c.Do(ctx, http.MethodGet, withQuery(pathOf("applications"), q), nil, &out)
	return out, err
}

// GetEnvironment returns an environment by id.
func (c *Client) GetEnvironment(ctx context.Context, id string) (models.Environment, error) {
	var out models.Environment
	err := c.Do(ctx, http.MethodGet, pathOf("environments", id), nil, &out)
	return out, err
}

// ListEnvironments returns one page of environments.
func (c *Client) ListEnvironments(ctx context.Context, f EnvironmentFilter) (Page[models.Environment], error) {
	var out Page[models.Environment]
	q := f.query("application_id", f.ApplicationID, "name", f.Name)
	err := c.Do(ctx, http.MethodGet, withQuery(pathOf("environments"), q), nil, &out)
	return out, err
}
