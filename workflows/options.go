package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/models"
)

// bookkeepingCtx is for the short local activities that read and write
// Transit's database (records, the lane, the gate, the commit): local, so
// they never wait in a task queue; retried with backoff until they land
// (the database may be restarting), except for data the database refuses.
func bookkeepingCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		Summary:             models.Cut(summary, 200),
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        200 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{models.ErrTypeBadData},
		},
	})
}

// lookupCtx is for looking up a voter's groups: bounded, so that a database
// outage refuses the vote with a reason instead of holding other signals.
func lookupCtx(ctx workflow.Context, subject string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		Summary:                models.Cut("look up who "+subject+" is (live API tokens)", 200),
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, MaximumInterval: 5 * time.Second},
	})
}

// planCtx is for planning: it asks every target (8 at a time, 30 s each at
// most), so it heartbeats.
func planCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		Summary:             summary,
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second,
			MaximumInterval: 30 * time.Second,
			MaximumAttempts: 20,
			NonRetryableErrorTypes: []string{models.ErrTypeEntryCriteria, models.ErrTypeUnreachable, models.ErrTypeBadPlan,
				models.ErrTypeRefused, models.ErrTypeBadData},
		},
	})
}

// stepMargin is added to a target's own step timeout: the activity's
// bookkeeping, and the wait for an earlier run of the same step to end.
const stepMargin = 5 * time.Minute

// targetCtx is for changing one target. Its time is the driver's own bound
// (from the target's config) and a margin, so that a long but healthy
// change is never cut off and run again. A heartbeat shows it is alive, so
// a worker that dies mid-step is noticed in seconds and the step retried
// (idempotently, by its key) on another worker.
func targetCtx(ctx workflow.Context, t models.PlanTarget, summary string) workflow.Context {
	step := t.StepTimeout.D()
	if step <= 0 { // planned before plans carried it
		step = 2 * (models.DefaultScriptTimeout + models.DefaultKillGrace)
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		Summary:             summary,
		StartToCloseTimeout: step + stepMargin,
		HeartbeatTimeout:    15 * time.Second,
		// A cancelled step is waited for, so that its rollback does not
		// race the change still under way.
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{models.ErrTypeBadPlan, models.ErrTypeDriver, models.ErrTypeBadData},
		},
	})
}

// validateCtx is for validation: checks have their own tries, so the
// activity itself is tried again only if the worker fails.
func validateCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
	})
}

// observeCtx is for an observation window of length span: one long
// activity that heartbeats its counts, so the history stays small however
// long it runs; a cancel is waited for, so that no probe outlives the
// workflow.
func observeCtx(ctx workflow.Context, span time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: span + 10*time.Minute,
		HeartbeatTimeout:    time.Minute,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 5 * time.Second,
			MaximumInterval: time.Minute,
			MaximumAttempts: 10,
		},
	})
}
