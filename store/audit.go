package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

// write runs fn in a transaction with an auditor that appends to the audit
// log in the same transaction.
func (s *Store) write(ctx context.Context, actor Actor, fn func(tx *gorm.DB, au *auditor) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(tx, &auditor{s: s, actor: actor})
	})
}

type auditor struct {
	s     *Store
	actor Actor
}

// record appends one audit event: the resource as it was and as it is.
func (a *auditor) record(tx *gorm.DB, action, resourceType, resourceID string, before, after any) error {
	ev := models.AuditEvent{
		At:           time.Now().UTC().Truncate(time.Microsecond),
		Actor:        a.actor.Subject,
		Action:       action,
		ResourceType: resourceType,
		ResourceID:   resourceID,
		RequestID:    a.actor.RequestID,
	}
	var err error
	if ev.Before, err = marshalOrNil(before); err != nil {
		return err
	}
	if ev.After, err = marshalOrNil(after); err != nil {
		return err
	}
	return a.s.appendAudit(tx, &ev)
}

func marshalOrNil(v any) (models.JSONText, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode audit snapshot: %w", err)
	}
	return models.JSONText(b), nil
}

// appendAudit chains ev to the last event and inserts it. Appends are
// serialised: on Postgres by a table lock held to the end of the
// transaction, on SQLite by its single writer.
func (s *Store) appendAudit(tx *gorm.DB, ev *models.AuditEvent) error {
	if s.dialect == DialectPostgres {
		if err := tx.Exec(`LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE`).Error; err != nil {
			return fmt.Errorf("lock audit log: %w", err)
		}
	}
	var last models.AuditEvent
	err := tx.Order("seq DESC").Limit(1).Take(&last).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		ev.Seq, ev.PrevHash = 1, ""
	case err != nil:
		return fmt.Errorf("read audit chain head: %w", err)
	default:
		ev.Seq, ev.PrevHash = last.Seq+1, last.Hash
	}
	if ev.Actor == "" {
		ev.Actor = "system"
	}
	ev.Hash = ev.ComputeHash()
	if err := tx.Create(ev).Error; err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	return nil
}

// AuditFilter selects audit events.
type AuditFilter struct {
	Actor        string
	Action       string
	ResourceType string
	ResourceID   string
	Since, Until time.Time
}

// ListAudit returns events in order, after the cursor seq.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter, after int64, limit int) ([]models.AuditEvent, error) {
	q := s.db.WithContext(ctx).Model(&models.AuditEvent{}).Where("seq > ?", after)
	for _, w := range []struct{ col, val string }{
		{"actor", f.Actor}, {"action", f.Action}, {"resource_type", f.ResourceType}, {"resource_id", f.ResourceID},
	} {
		if w.val != "" {
			q = q.Where(w.col+" = ?", w.val)
		}
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", f.Until.UTC())
	}
	var out []models.AuditEvent
	if err := q.Order("seq").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

// ChainReport is the outcome of verifying the audit chain.
type ChainReport struct {
	OK       bool   `json:"ok"`
	Checked  int64  `json:"checked"`
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// BrokenSeq is the first row whose link does not hold.
	BrokenSeq int64  `json:"broken_seq,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// VerifyAudit recomputes the whole chain and names the first broken link.
func (s *Store) VerifyAudit(ctx context.Context) (ChainReport, error) {
	var rep ChainReport
	prevHash, prevSeq := "", int64(0)
	const batch = 1000
	for {
		var rows []models.AuditEvent
		if err := s.db.WithContext(ctx).Where("seq > ?", prevSeq).Order("seq").Limit(batch).Find(&rows).Error; err != nil {
			return rep, fmt.Errorf("read audit events: %w", err)
		}
		for _, ev := range rows {
			rep.Checked++
			var reason string
			switch {
			case ev.Seq != prevSeq+1:
				reason = fmt.Sprintf("rows %d to %d are missing: the chain has a gap", prevSeq+1, ev.Seq-1)
			case ev.PrevHash != prevHash:
				reason = fmt.Sprintf("prev_hash does not match the hash of row %d", prevSeq)
			case ev.ComputeHash() != ev.Hash:
				reason = "the row's content does not match its hash: it was changed after it was written"
			}
			if reason != "" {
				rep.BrokenSeq, rep.Reason = ev.Seq, reason
				return rep, nil
			}
			prevHash, prevSeq = ev.Hash, ev.Seq
		}
		if len(rows) < batch {
			break
		}
	}
	rep.OK, rep.HeadSeq, rep.HeadHash = true, prevSeq, prevHash
	return rep, nil
}
