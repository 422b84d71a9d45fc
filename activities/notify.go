package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
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
	hc := &http.Client{Transport: drivers.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
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
