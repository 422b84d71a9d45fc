package legacy

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// recordCtx is for the short recording activities: retried until they
// succeed (the database may be down for a while), each try bounded.
func recordCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	})
}

// finalCtx is for the record of the final status: retried until it lands.
func finalCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	})
}

// planCtx is for planning: it asks every target (8 at a time, 30 s each at
// most), so it heartbeats.
func planCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{"EntryCriteria", "Unreachable", "BadPlan"},
		},
	})
}

// deployCtx is for changing one target: a heartbeat shows it is alive, so a
// worker that dies mid-deploy is noticed in seconds and the step retried
// (idempotently) on another worker.
func deployCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    15 * time.Second,
		// A cancelled deploy is waited for, so that its rollback does not
		// race the change still under way (the cancel arrives with the
		// next heartbeat, within seconds).
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{"BadPlan", "Driver"},
		},
	})
}

// validateCtx is for validation: checks have their own tries, so the
// activity itself is tried once more only if the worker fails.
func validateCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
	})
}

// observeCtx is for an observation window of length span: one long
// activity that heartbeats, so the history stays small however long it runs.
func observeCtx(ctx workflow.Context, span time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: span + 10*time.Minute,
		HeartbeatTimeout:    time.Minute,
		WaitForCancellation: false,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 5 * time.Second,
			MaximumInterval: time.Minute,
			MaximumAttempts: 10,
		},
	})
}
