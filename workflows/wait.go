package workflows

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/models"
)

// await blocks until cond holds. Meanwhile it takes the signals from the
// inbox as they arrive (in order), and turns the workflow's cancellation
// into a cancel stop. It is the one place the deployment's own coroutine
// waits, so that a waiting deployment costs a single coroutine.
func (d *deployment) await(cond func() bool) {
	for {
		d.showDetails()
		_ = workflow.Await(d.safe, func() bool {
			return cond() || d.inbox.pending() || (!d.cancelSeen && d.work.Err() != nil) || (d.rec.refused != "" && d.Stop == nil)
		})
		if !d.cancelSeen && d.work.Err() != nil {
			d.cancelSeen = true
			d.requestStop(stopRequest{Kind: models.StopCancel, By: "temporal", Reason: "the workflow was cancelled"})
		}
		if d.rec.refused != "" && d.Stop == nil {
			// What the deployment does must be on record: stop rather than
			// go on unrecorded.
			d.requestStop(stopRequest{Kind: models.StopFailure, Reason: d.rec.refused})
		}
		if d.inbox.pending() {
			d.handleSignals()
			continue
		}
		if cond() {
			// What the condition lets happen next starts after the answer
			// to an Update, if one is being answered; then everything is
			// looked at again.
			if d.answered != nil && !d.answered.IsReady() {
				d.afterAnswer(d.safe)
				continue
			}
			return
		}
	}
}

// sleep waits for dur unless a stop comes first, or wake says so. It
// reports whether the whole time passed. summary names the timer in the
// Temporal UI.
func (d *deployment) sleep(dur time.Duration, summary string, wake func() bool) bool {
	tctx, cancel := workflow.WithCancel(d.work)
	defer cancel()
	t := workflow.NewTimerWithOptions(tctx, dur, workflow.TimerOptions{Summary: summary})
	d.await(func() bool { return t.IsReady() || d.Stop != nil || (wake != nil && wake()) })
	return t.IsReady() && t.Get(d.safe, nil) == nil && d.Stop == nil
}

// requestStop records why the deployment must stop; the first reason wins.
func (d *deployment) requestStop(s stopRequest) {
	if d.Stop == nil {
		d.Stop = &s
	}
}

func isCancel(err error) bool {
	return temporal.IsCanceledError(err)
}

// rootMessage is the innermost message of an activity error, for people.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeoutErr *temporal.TimeoutError
	if errors.As(err, &timeoutErr) {
		return "timed out (" + timeoutErr.TimeoutType().String() + ")"
	}
	var canceledErr *temporal.CanceledError
	if errors.As(err, &canceledErr) {
		return "cancelled"
	}
	return err.Error()
}

// joinMax joins at most n items, saying how many more there are.
func joinMax(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + ", and " + strconv.Itoa(len(items)-n) + " more"
}

func names(ts []models.PlanTarget) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return joinMax(out, 20)
}
