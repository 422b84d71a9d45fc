// Package drivers changes deployment targets (script, http, simulated),
// runs validation checks and early-life-support probes. It imports only
// models; the activities wire it to Temporal (heartbeats) and the store.
package drivers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/transit-hq/transit/models"
)

// Target is what a driver needs to know of a target.
type Target struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Application string            `json:"application"`
	Environment string            `json:"environment"`
	Driver      string            `json:"driver"`
	Config      json.RawMessage   `json:"config"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// Release is what a driver needs to know of a release.
type Release struct {
	ID        string            `json:"id"`
	Version   string            `json:"version"`
	Artifacts []models.Artifact `json:"artifacts"`
}

// Action names, as TRANSIT_ACTION gives them to scripts.
const (
	ActionDeploy   = "deploy"
	ActionRollback = "rollback"
	ActionRemove   = "remove"
	ActionCurrent  = "current"
)

// Request is one change to one target.
type Request struct {
	Target Target
	// Release is the release to deploy, or to roll back to (Rollback).
	Release Release
	// Previous is the version running before, "" when none.
	Previous string
	// IdempotencyKey is the same for every retry of one step.
	IdempotencyKey string
	// RetainData asks Remove to keep the target's data.
	RetainData bool
	// Progress, when set, is called while long work goes on (the activity
	// turns it into a Temporal heartbeat).
	Progress func(detail string)
	// lock is the step's lock while a script driver runs it.
	lock *stepLock
}

// Result is what a change left behind.
type Result struct {
	// Version is what runs on the target now ("" after Remove).
	Version string `json:"version"`
	// Log is the tail of the driver's output.
	Log string `json:"log,omitempty"`
}

// Driver changes one kind of target.
type Driver interface {
	// Deploy puts req.Release on the target; idempotent by req.IdempotencyKey
	// and by Current: a target that already runs the version is left alone.
	Deploy(ctx context.Context, req Request) (Result, error)
	// Rollback returns the target to req.Release (its last known good).
	Rollback(ctx context.Context, req Request) (Result, error)
	// Remove takes the release off the target, keeping data when req.RetainData.
	Remove(ctx context.Context, req Request) (Result, error)
	// Current returns the version running on the target ("" for none); an
	// error means the target cannot be reached.
	Current(ctx context.Context, t Target) (string, error)
}

// Registry finds the driver for a target.
type Registry struct {
	drivers map[string]Driver
}

// NewRegistry returns a registry of the given drivers by name.
func NewRegistry(byName map[string]Driver) *Registry {
	return &Registry{drivers: byName}
}

// For returns the driver named name.
func (r *Registry) For(name string) (Driver, error) {
	d, ok := r.drivers[name]
	if !ok {
		return nil, fmt.Errorf("no driver %q is configured on this worker", name)
	}
	return d, nil
}
