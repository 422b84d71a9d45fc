package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
)

// recorder writes the deployment's steps to the database in the order they
// happened, in batches, off the deployment's own path: a vote is answered
// as soon as the workflow has decided, and its record follows. A coroutine
// drains the queue and ends when it is empty, so a waiting deployment has
// none.
type recorder struct {
	queue   []activities.RecordInput
	running bool
	// refused is why the database refused a step for good, if it did.
	refused string
}

// recordBatch bounds the steps of one RecordSteps call.
const recordBatch = 50

// record queues a step, keyed by this run and its sequence number: a
// retried batch records each step once, and a run started by a reset of
// the workflow records its own steps anew.
func (d *deployment) record(in activities.RecordInput) {
	d.seq++
	in.DeploymentID, in.Key = d.in.DeploymentID, fmt.Sprintf("%s/%d", d.runID, d.seq)
	d.rec.queue = append(d.rec.queue, in)
	if !d.rec.running {
		d.rec.running = true
		workflow.Go(d.safe, d.drainRecords)
	}
}

func (d *deployment) drainRecords(ctx workflow.Context) {
	defer func() { d.rec.running = false }()
	for len(d.rec.queue) > 0 {
		d.afterAnswer(ctx)
		n := min(len(d.rec.queue), recordBatch)
		batch := d.rec.queue[:n:n]
		d.rec.queue = d.rec.queue[n:]
		err := d.writeSteps(ctx, batch)
		if err == nil {
			continue
		}
		// The database refused the batch for good (retries end only for
		// that). Write the steps one by one, a refused one without its
		// text, so that everything else lands, the status above all.
		for _, step := range batch {
			if d.writeSteps(ctx, []activities.RecordInput{step}) == nil {
				continue
			}
			reason := rootMessage(err)
			d.rec.refused = fmt.Sprintf("recording a step failed for good: %s", reason)
			step.Message = "(this step's text could not be recorded: " + models.Cut(reason, 200) + ")"
			step.Data, step.Audit = nil, nil
			if step.Outcome != nil {
				short := "(the outcome could not be recorded: " + models.Cut(reason, 200) + ")"
				step.Outcome = &short
			}
			_ = d.writeSteps(ctx, []activities.RecordInput{step})
		}
	}
}

func (d *deployment) writeSteps(ctx workflow.Context, steps []activities.RecordInput) error {
	summary := "record: " + steps[0].Message
	if len(steps) > 1 {
		summary = fmt.Sprintf("record %d steps: %s", len(steps), steps[0].Message)
	}
	err := workflow.ExecuteLocalActivity(bookkeepingCtx(ctx, summary), a.RecordSteps,
		activities.StepsInput{DeploymentID: d.in.DeploymentID, Steps: steps}).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if err != nil && !(errors.As(err, &appErr) && appErr.Type() == models.ErrTypeBadData) {
		// Only refused data ends the retries; anything else is a bug here.
		workflow.GetLogger(ctx).Error("record steps", "deployment", d.in.DeploymentID, "error", err)
	}
	return err
}

// flushRecords waits until every queued step is written.
func (d *deployment) flushRecords() {
	_ = workflow.Await(d.safe, func() bool { return !d.rec.running && len(d.rec.queue) == 0 })
}

// transition moves the deployment to status, upserts the stage search
// attribute and records the step. An illegal transition is a bug: it
// panics, which fails the workflow task until the code is fixed, and loses
// nothing.
func (d *deployment) transition(status models.Status, message string, with func(*activities.RecordInput)) {
	if !d.Status.CanBecome(status) {
		panic(fmt.Sprintf("illegal transition of deployment %s from %s to %s", d.in.DeploymentID, d.Status, status))
	}
	d.Status = status
	d.showDetails()
	_ = workflow.UpsertTypedSearchAttributes(d.safe, models.KeyStage.ValueSet(string(status)))
	in := activities.RecordInput{Status: &status, Type: models.EventStatus, Message: message}
	if with != nil {
		with(&in)
	}
	d.record(in)
}

// progress records a step that does not change the status.
func (d *deployment) progress(message string, with func(*activities.RecordInput)) {
	in := activities.RecordInput{Type: models.EventProgress, Message: message}
	if with != nil {
		with(&in)
	}
	d.record(in)
}
