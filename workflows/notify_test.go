package workflows_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/workflows"
)

// notifyActs stands for the activities in OnActivity; its methods are never called.
var notifyActs *activities.Activities

// notifyEnv runs the Notification workflow with DeliverNotification
// answering with deliver, each try's workflow time kept in tries, and
// GiveUpNotification's reasons kept in gaveUp.
type notifyEnv struct {
	env    *testsuite.TestWorkflowEnvironment
	mu     sync.Mutex
	tries  []time.Time
	gaveUp []string
}

func newNotifyEnv(t *testing.T, deliver func(try int) (activities.DeliverResult, error)) *notifyEnv {
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	n := &notifyEnv{env: ts.NewTestWorkflowEnvironment()}
	n.env.RegisterWorkflow(workflows.Notification)
	n.env.RegisterActivity(notifyActs)
	n.env.OnActivity(notifyActs.DeliverNotification, mock.Anything, activities.DeliverInput{DeliveryID: "dlv_1"}).Return(
		func(context.Context, activities.DeliverInput) (activities.DeliverResult, error) {
			n.mu.Lock()
			n.tries = append(n.tries, n.env.Now())
			try := len(n.tries)
			n.mu.Unlock()
			return deliver(try)
		})
	n.env.OnActivity(notifyActs.GiveUpNotification, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GiveUpInput) error {
		require.Equal(t, "dlv_1", in.DeliveryID)
		n.mu.Lock()
		n.gaveUp = append(n.gaveUp, in.Reason)
		n.mu.Unlock()
		return nil
	})
	return n
}

func (n *notifyEnv) run(t *testing.T) models.NotificationResult {
	n.env.ExecuteWorkflow(workflows.Notification, models.NotificationInput{DeliveryID: "dlv_1"})
	require.True(t, n.env.IsWorkflowCompleted())
	require.NoError(t, n.env.GetWorkflowError())
	var res models.NotificationResult
	require.NoError(t, n.env.GetWorkflowResult(&res))
	return res
}

// gaps returns the waits between tries.
func (n *notifyEnv) gaps() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(n.tries); i++ {
		out = append(out, n.tries[i].Sub(n.tries[i-1]).Round(time.Second))
	}
	return out
}

// A receiver that is down is tried again with a growing backoff until it
// answers; nothing is given up.
func TestNotificationRetriesUntilDelivered(t *testing.T) {
	n := newNotifyEnv(t, func(try int) (activities.DeliverResult, error) {
		if try < 4 {
			return activities.DeliverResult{}, errors.New("POST http://hooks/x answered 503 Service Unavailable")
		}
		return activities.DeliverResult{Status: models.DeliveryDelivered, StatusCode: 200, Attempt: try}, nil
	})
	res := n.run(t)
	require.Equal(t, models.DeliveryDelivered, res.Status)
	require.Equal(t, 4, res.Attempts)
	require.Equal(t, []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}, n.gaps())
	require.Empty(t, n.gaveUp)
}

// The backoff stops growing at ten minutes, and a Retry-After the
// activity passes on (NextRetryDelay) is honoured.
func TestNotificationBackoffIsBounded(t *testing.T) {
	n := newNotifyEnv(t, func(try int) (activities.DeliverResult, error) {
		switch {
		case try == 1:
			return activities.DeliverResult{}, temporal.NewApplicationErrorWithOptions("answered 429", "DeliveryDeferred",
				temporal.ApplicationErrorOptions{NextRetryDelay: 42 * time.Second})
		case try < 12:
			return activities.DeliverResult{}, errors.New("connection refused")
		}
		return activities.DeliverResult{Status: models.DeliveryDelivered, Attempt: try}, nil
	})
	res := n.run(t)
	require.Equal(t, models.DeliveryDelivered, res.Status)
	gaps := n.gaps()
	require.Equal(t, 42*time.Second, gaps[0], "Retry-After")
	require.Equal(t, workflows.DeliveryMaxRetry, gaps[len(gaps)-1])
	for _, g := range gaps {
		require.LessOrEqual(t, g, workflows.DeliveryMaxRetry)
	}
}

// A refusal (a 4xx) is final: one try, and the delivery is marked failed.
func TestNotificationRefusedIsNotRetried(t *testing.T) {
	n := newNotifyEnv(t, func(int) (activities.DeliverResult, error) {
		return activities.DeliverResult{}, temporal.NewNonRetryableApplicationError("POST http://hooks/x answered 404 Not Found",
			models.ErrTypeDeliveryRefused, nil)
	})
	res := n.run(t)
	require.Equal(t, models.DeliveryFailed, res.Status)
	require.Len(t, n.tries, 1)
	require.Len(t, n.gaveUp, 1)
	require.Equal(t, "refused: POST http://hooks/x answered 404 Not Found", n.gaveUp[0])
}

// A delivery the activity cannot work on (its data was refused) is not
// tried again, and its failure says why, not that a day ran out.
func TestNotificationOfBadDataFailsAtOnce(t *testing.T) {
	n := newNotifyEnv(t, func(int) (activities.DeliverResult, error) {
		return activities.DeliverResult{}, temporal.NewNonRetryableApplicationError("delivery dlv_1 does not exist", models.ErrTypeBadData, nil)
	})
	res := n.run(t)
	require.Equal(t, models.DeliveryFailed, res.Status)
	require.Len(t, n.tries, 1)
	require.Equal(t, []string{"failed: delivery dlv_1 does not exist"}, n.gaveUp)
}

// A receiver down for more than a day: the delivery is given up after 24
// hours of tries, and marked failed saying so.
func TestNotificationGivesUpAfterADay(t *testing.T) {
	n := newNotifyEnv(t, func(int) (activities.DeliverResult, error) {
		return activities.DeliverResult{}, errors.New("connection refused")
	})
	start := n.env.Now()
	res := n.run(t)
	require.Equal(t, models.DeliveryFailed, res.Status)
	require.Len(t, n.gaveUp, 1)
	require.Contains(t, n.gaveUp[0], "not delivered in 23h")
	require.Contains(t, n.gaveUp[0], "(24h0m0s at most); the last: connection refused")
	last := n.tries[len(n.tries)-1]
	require.LessOrEqual(t, last.Sub(start), workflows.DeliveryGiveUpAfter)
	require.Greater(t, last.Sub(start), workflows.DeliveryGiveUpAfter-workflows.DeliveryMaxRetry-time.Minute)
	require.Greater(t, len(n.tries), 140, "about one try every ten minutes for a day")
}
