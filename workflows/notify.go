package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
)

// Delivery retries: from a few seconds up to ten minutes apart, for a day.
const (
	// DeliveryFirstRetry is the wait before the second try.
	DeliveryFirstRetry = 5 * time.Second
	// DeliveryMaxRetry bounds the wait between two tries.
	DeliveryMaxRetry = 10 * time.Minute
	// DeliveryGiveUpAfter is how long a delivery is tried before it is
	// given up as failed.
	DeliveryGiveUpAfter = 24 * time.Hour
	// deliveryMaxAttempts is far more tries than fit in a day.
	deliveryMaxAttempts = 1000
)

// Notification delivers one notification of the outbox (its id is
// models.NotificationWorkflowID): DeliverNotification, tried again with
// backoff while the receiver is down or busy, until it answers 2xx,
// refuses it (a 4xx other than 408 and 429), or a day has passed. A
// delivery that was not delivered is marked failed, with its last error.
// It runs apart from the deployment, which never waits for it.
func Notification(ctx workflow.Context, in models.NotificationInput) (models.NotificationResult, error) {
	start := workflow.Now(ctx)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		Summary:                "deliver " + in.DeliveryID,
		StartToCloseTimeout:    activities.DeliveryTimeout + 30*time.Second,
		ScheduleToCloseTimeout: DeliveryGiveUpAfter,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    DeliveryFirstRetry,
			BackoffCoefficient: 2,
			MaximumInterval:    DeliveryMaxRetry,
			// The day ends the tries first (about 150); a bound, not the limit.
			MaximumAttempts:        deliveryMaxAttempts,
			NonRetryableErrorTypes: []string{models.ErrTypeDeliveryRefused, models.ErrTypeBadData},
		},
	})
	var res activities.DeliverResult
	err := workflow.ExecuteActivity(actx, a.DeliverNotification, activities.DeliverInput{DeliveryID: in.DeliveryID}).Get(ctx, &res)
	if err == nil {
		return models.NotificationResult{Status: res.Status, Attempts: res.Attempt}, nil
	}
	var appErr *temporal.ApplicationError
	var reason string
	switch {
	case errors.As(err, &appErr) && appErr.Type() == models.ErrTypeDeliveryRefused:
		reason = "refused: " + rootMessage(err)
	case errors.As(err, &appErr) && appErr.Type() == models.ErrTypeBadData:
		// Not tried again (e.g. a delivery the database no longer has).
		reason = "failed: " + rootMessage(err)
	default:
		// Out of time: the next try would have come after the day.
		reason = fmt.Sprintf("not delivered in %s of tries (%s at most); the last: %s",
			workflow.Now(ctx).Sub(start).Round(time.Minute), DeliveryGiveUpAfter, rootMessage(err))
	}
	gctx := bookkeepingCtx(ctx, "mark delivery "+in.DeliveryID+" failed")
	if gerr := workflow.ExecuteLocalActivity(gctx, a.GiveUpNotification, activities.GiveUpInput{DeliveryID: in.DeliveryID, Reason: reason}).Get(ctx, nil); gerr != nil {
		workflow.GetLogger(ctx).Error("mark a delivery failed", "delivery", in.DeliveryID, "error", gerr)
	}
	return models.NotificationResult{Status: models.DeliveryFailed, LastError: reason}, nil
}
