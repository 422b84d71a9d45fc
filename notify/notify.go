// Package notify starts the Notification workflow of each delivery in the
// notification outbox: right after the write that queued it (from the API's
// requests and the worker's activities), and in a sweep for what that
// missed. The delivery itself is activities.DeliverNotification.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// WorkflowStarter is what starting deliveries needs of a Temporal client.
type WorkflowStarter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// Notifier starts the Notification workflow of each delivery in the
// outbox: right after the write that queued it (Interceptor), and, for
// what that missed (Temporal down, a worker that died), in a sweep at
// start-up and every SweepEvery (Run). Starting is idempotent: a
// delivery's workflow id is fixed, and a second start is refused.
type Notifier struct {
	Store     *store.Store
	Temporal  WorkflowStarter
	TaskQueue string
	Logger    *slog.Logger

	inflight sync.WaitGroup
}

// Sweeper timings.
const (
	// SweepEvery is how often the sweeper looks for deliveries without a
	// workflow.
	SweepEvery = time.Minute
	// SweepGrace leaves a new delivery to the write that queued it for
	// this long before the sweeper starts it.
	SweepGrace = 30 * time.Second
	// sweepBatch bounds one query of the sweeper.
	sweepBatch = 100
)

func (n *Notifier) log() *slog.Logger {
	if n.Logger == nil {
		return slog.Default()
	}
	return n.Logger
}

// Start starts the deliveries' workflows, and records those that run.
func (n *Notifier) Start(ctx context.Context, ds []store.PendingDelivery) error {
	var started []string
	var errs []error
	for _, d := range ds {
		opts := client.StartWorkflowOptions{
			ID:                       models.NotificationWorkflowID(d.ID),
			TaskQueue:                n.TaskQueue,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			StaticSummary:            models.Cut(fmt.Sprintf("%s of %s to %s", d.Event, d.DeploymentID, d.URL), 200),
		}
		_, err := n.Temporal.ExecuteWorkflow(ctx, opts, models.WorkflowNotification, models.NotificationInput{DeliveryID: d.ID})
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if err != nil && !errors.As(err, &already) {
			errs = append(errs, fmt.Errorf("start the workflow of delivery %s: %w", d.ID, err))
			continue
		}
		started = append(started, d.ID)
	}
	if err := n.Store.MarkDeliveriesStarted(ctx, started); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// StartSoon starts the deliveries in the background, so that the write
// that queued them (a deployment's record) never waits for Temporal. What
// fails here, the sweeper starts later.
func (n *Notifier) StartSoon(ds []store.PendingDelivery) {
	n.inflight.Add(1)
	go func() {
		defer n.inflight.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := n.Start(ctx, ds); err != nil {
			n.log().WarnContext(ctx, "start notifications; the sweeper will try again", "deliveries", len(ds), "err", err)
		}
	}()
}

// Sweep starts the workflows of the deliveries that have none, older than
// SweepGrace; it returns how many it started.
func (n *Notifier) Sweep(ctx context.Context) (int, error) {
	total := 0
	before := time.Now().Add(-SweepGrace)
	for range 10 { // at most 1,000 a sweep: the next takes the rest
		ds, err := n.Store.UnstartedDeliveries(ctx, before, sweepBatch)
		if err != nil || len(ds) == 0 {
			return total, err
		}
		if err := n.Start(ctx, ds); err != nil {
			return total, err
		}
		total += len(ds)
		if len(ds) < sweepBatch {
			break
		}
	}
	return total, nil
}

// Run sweeps now and every interval until ctx ends (SweepEvery when
// interval is 0), then waits for the starts under way.
func (n *Notifier) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = SweepEvery
	}
	defer n.inflight.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		switch started, err := n.Sweep(ctx); {
		case err != nil && ctx.Err() == nil:
			n.log().WarnContext(ctx, "sweep the notification outbox", "err", err)
		case started > 0:
			n.log().InfoContext(ctx, "started notifications the sweep found", "deliveries", started)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Interceptor starts the deliveries that an activity's writes put in the
// outbox as soon as the activity returns (RecordSteps, CommitLastKnownGood
// and the others): they are committed by then.
func (n *Notifier) Interceptor() interceptor.WorkerInterceptor {
	return &notifyInterceptor{n: n}
}

type notifyInterceptor struct {
	interceptor.WorkerInterceptorBase
	n *Notifier
}

func (w *notifyInterceptor) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &notifyActivity{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, n: w.n}
}

type notifyActivity struct {
	interceptor.ActivityInboundInterceptorBase
	n *Notifier
}

func (i *notifyActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	ctx, collected := store.CollectDeliveries(ctx, i.n.StartSoon)
	// Flushed whatever the outcome: a write that committed before a later
	// step failed has its deliveries started now; one that was rolled back
	// has none in the outbox, and its workflows find nothing to send.
	defer collected.Flush()
	return i.Next.ExecuteActivity(ctx, in)
}
