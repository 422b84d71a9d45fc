package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

// Step is one step of a deployment's workflow to record: a change of its
// row, a line of its timeline and, for what a person did, an audit entry in
// that person's name.
type Step struct {
	// Key makes recording idempotent: a step whose key is recorded already
	// changes nothing.
	Key    string
	Change DeploymentChange
	Event  models.DeploymentEvent
	// Audit, when set, is audited in its actor's name, on the deployment.
	Audit *AuditEntry
	// Vote, when set, is stored as the approver's vote.
	Vote *models.Approval
}

// AuditEntry is what the audit log keeps of something a person (or the
// policy) did to a deployment.
type AuditEntry struct {
	// Actor is the subject who did it (the approver, the operator).
	Actor string
	// Action is what they did: approve, reject, pause, signal_ignored, …
	Action string
	Via    models.Via
	// Data is the rest: the comment, the reason, the groups.
	Data map[string]any
}

// RecordSteps records steps of one deployment in one transaction, each once
// (by key), in order. Status changes are audited as worker's; a step with
// an AuditEntry is audited in its actor's name. Text is cleaned first (see
// models.CleanText): what a driver printed must not stop the record.
func (s *Store) RecordSteps(ctx context.Context, worker Actor, deploymentID string, steps []Step) error {
	if len(steps) == 0 {
		return nil
	}
	return s.write(ctx, worker, func(tx *gorm.DB, au *auditor) error {
		keys := make([]string, len(steps))
		for i, st := range steps {
			keys[i] = st.Key
		}
		var done []string
		if err := tx.Model(&models.DeploymentEvent{}).Where("deployment_id = ? AND event_key IN ?", deploymentID, keys).
			Pluck("event_key", &done).Error; err != nil {
			return fmt.Errorf("check steps of %s: %w", deploymentID, err)
		}
		recorded := map[string]bool{}
		for _, k := range done {
			recorded[k] = true
		}
		current, err := get[models.Deployment](ctx, tx, kindDeployment, deploymentID)
		if err != nil {
			return err
		}
		status := current.Status
		for _, st := range steps {
			if recorded[st.Key] {
				continue
			}
			recorded[st.Key] = true
			if err := s.recordStep(tx, au, deploymentID, &status, st); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) recordStep(tx *gorm.DB, au *auditor, deploymentID string, status *models.Status, st Step) error {
	ev := st.Event
	ev.Message = models.CleanText(ev.Message)
	t := now()
	cols := st.Change.columns(t)
	before := *status
	if st.Change.Status != nil {
		*status = *st.Change.Status
	}
	ev.Status = *status
	if len(cols) > 1 {
		if err := tx.Model(&models.Deployment{}).Where("id = ?", deploymentID).Updates(cols).Error; err != nil {
			return fmt.Errorf("update deployment %s: %w", deploymentID, err)
		}
	}
	if st.Change.CloseTargets {
		if err := tx.Model(&models.DeploymentTarget{}).Where("deployment_id = ? AND status = ?", deploymentID, models.TargetPending).
			Updates(map[string]any{"status": models.TargetNotStarted, "message": "not started: the deployment ended before this target's turn",
				"updated_at": t}).Error; err != nil {
			return fmt.Errorf("close the targets of %s: %w", deploymentID, err)
		}
	}
	if st.Vote != nil {
		v := *st.Vote
		v.Comment = models.CleanText(v.Comment)
		if v.At.IsZero() {
			v.At = t
		}
		var n int64
		if err := tx.Model(&models.Approval{}).Where("deployment_id = ? AND approver = ?", v.DeploymentID, v.Approver).Count(&n).Error; err != nil {
			return fmt.Errorf("check vote: %w", err)
		}
		if n == 0 {
			if err := tx.Create(&v).Error; err != nil {
				return translate(err, "approval")
			}
		}
	}
	if err := insertEvent(tx, deploymentID, st.Key, ev); err != nil {
		return err
	}
	if st.Audit != nil {
		data := map[string]any{"via": st.Audit.Via, "event": ev.Message}
		for k, v := range st.Audit.Data {
			if str, ok := v.(string); ok {
				v = models.CleanText(str)
			}
			data[k] = v
		}
		person := &auditor{s: s, actor: Actor{Subject: orUnknown(st.Audit.Actor), RequestID: au.actor.RequestID}}
		if err := person.record(tx, st.Audit.Action, "deployment", deploymentID, nil, data); err != nil {
			return err
		}
	}
	if st.Change.Status == nil || *st.Change.Status == before {
		return nil // progress, not a change of state: the timeline has it
	}
	return au.record(tx, models.ActionUpdate, "deployment", deploymentID,
		map[string]any{"status": before}, map[string]any{"status": *st.Change.Status, "event": ev.Message})
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return models.CleanText(s)
}

// columns returns the deployment columns the change sets, with updated_at.
func (c DeploymentChange) columns(t time.Time) map[string]any {
	cols := map[string]any{"updated_at": t}
	if c.Status != nil {
		cols["status"] = *c.Status
		if c.Status.Terminal() {
			cols["finished_at"] = t
			cols["hold"] = models.NewJSON[*models.Hold](nil)
		} else {
			cols["finished_at"] = nil // a reset run of the workflow may take an ended deployment up again
		}
	}
	if c.Scenario != nil {
		cols["scenario"] = *c.Scenario
	}
	if c.WaveIndex != nil {
		cols["wave_index"] = *c.WaveIndex
	}
	if c.WaveCount != nil {
		cols["wave_count"] = *c.WaveCount
	}
	if c.Plan != nil {
		cols["plan"] = models.NewJSON(c.Plan)
	}
	if c.Outcome != nil {
		cols["outcome"] = models.CleanText(*c.Outcome)
	}
	if c.PONRAt != nil {
		cols["ponr_at"] = c.PONRAt.UTC()
	}
	if c.ELSEndsAt != nil {
		cols["els_ends_at"] = c.ELSEndsAt.UTC()
	}
	if c.SetHold {
		h := c.Hold
		if h != nil {
			cp := *h
			cp.Reason = models.CleanText(cp.Reason)
			h = &cp
		}
		cols["hold"] = models.NewJSON(h)
	}
	return cols
}
