// Package activities holds the deployment workflow's activities: the short
// recording steps and the long ones that change targets through drivers.
// Every activity is idempotent: running it twice leaves the same result.
package activities

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// Clock tells time and waits. Production uses RealClock; a benchmark or
// test may run early life support on a faster clock.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Activities are the deployment workflow's activities, with their
// dependencies injected.
type Activities struct {
	Store   *store.Store
	Drivers *drivers.Registry
	Clock   Clock
	Logger  *slog.Logger
	// Temporal, when set, lets the lane see deployments whose workflow is
	// gone (terminated outside Transit) and close them.
	Temporal WorkflowDescriber
	// StoreOutage is how long a step that changes a target waits out a
	// database that does not answer before it fails (DefaultStoreOutage
	// when zero). A database outage is not a failure of the target.
	StoreOutage time.Duration
	// TargetsPerRun bounds the targets one workflow run changes
	// (DefaultTargetsPerRun when zero); the plan carries it.
	TargetsPerRun int
}

// Defaults of Activities.
const (
	DefaultStoreOutage   = 10 * time.Minute
	DefaultTargetsPerRun = 500
)

// WorkflowDescriber is what the activities need of a Temporal client.
type WorkflowDescriber interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
}

// Error types that must not be retried (see models for what each means).
const (
	ErrTypeEntryCriteria = models.ErrTypeEntryCriteria
	ErrTypeUnreachable   = models.ErrTypeUnreachable
	ErrTypeBadPlan       = models.ErrTypeBadPlan
	ErrTypeDriver        = models.ErrTypeDriver
)

func (a *Activities) clock() Clock {
	if a.Clock == nil {
		return RealClock{}
	}
	return a.Clock
}

func (a *Activities) log() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

// actor is how the audit log names the worker acting for a deployment.
func actor(deploymentID string) store.Actor {
	return store.Actor{Subject: "transit-worker", RequestID: models.WorkflowIDFor(deploymentID)}
}

// storeErr makes a store error fit for Temporal: one that the database
// will refuse again (bad data) is not retried; any other is.
func storeErr(err error) error {
	if err != nil && store.Permanent(err) {
		return nonRetryable(models.ErrTypeBadData, err, "the database refused the record: %v", err)
	}
	return err
}

// storeCall runs fn, waiting out a database outage for up to StoreOutage
// with backoff and heartbeats: a step that changes a target must not fail,
// and so roll back, because the database was restarted. Other errors
// return at once.
func (a *Activities) storeCall(ctx context.Context, what string, fn func() error) error {
	budget := a.StoreOutage
	if budget <= 0 {
		budget = DefaultStoreOutage
	}
	deadline := a.clock().Now().Add(budget)
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !store.Unavailable(err) || ctx.Err() != nil {
			return err
		}
		if a.clock().Now().Add(wait).After(deadline) {
			return fmt.Errorf("%s: the database did not answer for %s: %w", what, budget, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			a.log().WarnContext(ctx, "database unavailable; waiting", "step", what, "attempt", attempt, "err", err)
		}
		heartbeat(ctx, "waiting for the database: "+what)
		if err := a.clock().Sleep(ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func nonRetryable(kind string, err error, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), kind, err)
}

// heartbeat records progress when running as an activity (and does nothing
// when called outside one, as in unit tests of helpers).
func heartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// keepAliveEvery is how often keepAlive heartbeats: well inside the
// shortest heartbeat timeout the workflow sets (15 s).
const keepAliveEvery = 5 * time.Second

// keepAlive heartbeats until the returned stop is called, so that an
// activity blocked in one long driver call (an HTTP request, a script, a
// check with several tries) is seen alive, and learns of its cancellation.
func keepAlive(ctx context.Context) (stop func()) {
	return heartbeatEvery(ctx, keepAliveEvery, nil)
}

// heartbeatEvery heartbeats every interval, with the details that details
// returns (none when nil), until the returned stop is called.
func heartbeatEvery(ctx context.Context, interval time.Duration, details func() []any) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				var d []any
				if details != nil {
					d = details()
				}
				activity.RecordHeartbeat(ctx, d...)
			}
		}
	}()
	return func() { close(done) }
}
