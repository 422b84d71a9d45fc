package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// Delivery of notifications: each is its own Notification workflow,
// which runs DeliverNotification until the receiver takes it.
const (
	// DeliveryTimeout bounds one POST to a receiver.
	DeliveryTimeout = 30 * time.Second
	// MaxRetryAfter bounds how long a receiver's Retry-After may make a
	// delivery wait.
	MaxRetryAfter = 10 * time.Minute
	// EventHeader names the event of a delivery.
	EventHeader = "X-Transit-Event"
)

// DeliverInput names the delivery to send.
type DeliverInput struct {
	DeliveryID string `json:"delivery_id"`
}

// DeliverResult is how a try ended: DeliveryDelivered, or the status the
// delivery had already (it was sent, or given up, or it is gone: "").
type DeliverResult struct {
	Status     string `json:"status"`
	StatusCode int    `json:"status_code,omitempty"`
	Attempt    int    `json:"attempt"`
}

// DeliverNotification POSTs a delivery's body to its subscription's URL,
// signed with the subscription's secret (X-Transit-Signature: sha256=…),
// with the delivery's id as Idempotency-Key, and records the try on the
// delivery. A 2xx delivers it. A 5xx, a 408, a 429 or a connection error
// is retried by Temporal with backoff (a Retry-After is honoured, up to
// MaxRetryAfter); any other answer is final (ErrTypeDeliveryRefused).
func (a *Activities) DeliverNotification(ctx context.Context, in DeliverInput) (DeliverResult, error) {
	attempt := 1
	if activity.IsActivity(ctx) {
		attempt = int(activity.GetInfo(ctx).Attempt)
	}
	d, sub, err := a.Store.DeliveryToSend(ctx, in.DeliveryID)
	if store.IsDeliveryGone(err) {
		a.log().InfoContext(ctx, "delivery gone (its subscription was deleted, or its write rolled back): nothing to send", "delivery", in.DeliveryID)
		return DeliverResult{Attempt: attempt}, nil
	}
	if err != nil {
		return DeliverResult{}, storeErr(err)
	}
	if d.Status == models.DeliveryDelivered || d.Status == models.DeliveryFailed {
		return DeliverResult{Status: d.Status, StatusCode: d.LastStatusCode, Attempt: attempt}, nil
	}
	code, retryAfter, sendErr := a.post(ctx, sub, d)
	result := store.DeliveryAttempt{Status: models.DeliveryDelivered, StatusCode: code, At: time.Now()}
	final := sendErr != nil && code != 0 && !retryableStatus(code) // a refusal: trying again would not help
	switch {
	case sendErr == nil:
	case final:
		result.Status, result.Error = models.DeliveryFailed, sendErr.Error()
	default:
		result.Status, result.Error = models.DeliveryRetrying, sendErr.Error()
	}
	if err := a.Store.RecordDeliveryAttempt(ctx, d.ID, result); err != nil {
		if sendErr == nil {
			// Delivered, but not recorded: the next try sends it again,
			// under the same Idempotency-Key.
			return DeliverResult{}, fmt.Errorf("delivered %s, but recording it failed: %w", d.ID, err)
		}
		a.log().WarnContext(ctx, "record a failed try of a delivery", "delivery", d.ID, "err", err)
	}
	switch {
	case sendErr == nil:
		return DeliverResult{Status: models.DeliveryDelivered, StatusCode: code, Attempt: attempt}, nil
	case final:
		return DeliverResult{}, temporal.NewNonRetryableApplicationError(sendErr.Error(), models.ErrTypeDeliveryRefused, nil)
	case retryAfter > 0:
		return DeliverResult{}, temporal.NewApplicationErrorWithOptions(sendErr.Error(), "DeliveryDeferred",
			temporal.ApplicationErrorOptions{NextRetryDelay: retryAfter})
	}
	return DeliverResult{}, sendErr
}

// post sends the delivery once. code is the receiver's status (0 when it
// did not answer); retryAfter is its Retry-After, when it asked to wait.
func (a *Activities) post(ctx context.Context, sub *models.Subscription, d *models.Delivery) (code int, retryAfter time.Duration, err error) {
	secret, err := drivers.ResolveSecret(sub.Secret)
	if err != nil {
		// The worker's environment or files may be fixed meanwhile.
		return 0, 0, fmt.Errorf("the signing secret of subscription %s (%s): %w", sub.ID, sub.Secret, err)
	}
	redact := func(s string) string { return strings.ReplaceAll(s, secret, "[redacted]") }
	body := []byte(d.Body)
	rctx, cancel := context.WithTimeout(ctx, DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build POST %s: %w", sub.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "transit")
	req.Header.Set(drivers.SignatureHeader, drivers.Sign([]byte(secret), body))
	req.Header.Set(drivers.IdempotencyKeyHeader, d.ID)
	req.Header.Set(EventHeader, string(d.Event))
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return 0, 0, fmt.Errorf("POST %s: no answer within %s", sub.URL, DeliveryTimeout)
		}
		return 0, 0, errors.New(redact(err.Error()))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp.StatusCode, 0, nil
	}
	answer := strings.TrimSpace(strings.ToValidUTF8(string(raw), ""))
	err = fmt.Errorf("POST %s answered %s: %s", sub.URL, resp.Status, models.Cut(redact(answer), 300))
	if retryableStatus(resp.StatusCode) {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return resp.StatusCode, retryAfter, err
}

// retryableStatus says whether an answer other than 2xx is worth another
// try: a 5xx, 408 (request timeout) or 429 (too many requests).
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// parseRetryAfter reads a Retry-After header (seconds, or an HTTP date),
// bounded to MaxRetryAfter; 0 when there is none.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// GiveUpInput names a delivery that will not be tried again, and why.
type GiveUpInput struct {
	DeliveryID string `json:"delivery_id"`
	Reason     string `json:"reason"`
}

// GiveUpNotification marks a delivery that could not be delivered as
// failed, keeping its last error; a delivered one stays delivered.
func (a *Activities) GiveUpNotification(ctx context.Context, in GiveUpInput) error {
	d, _, err := a.Store.DeliveryToSend(ctx, in.DeliveryID)
	if store.IsDeliveryGone(err) {
		return nil
	}
	if err != nil {
		return storeErr(err)
	}
	reason := in.Reason
	if d.LastError != "" && !strings.Contains(reason, d.LastError) {
		reason += "; last error: " + d.LastError
	}
	return storeErr(a.Store.GiveUpDelivery(ctx, d.ID, reason))
}

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
