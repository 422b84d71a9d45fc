package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

// write runs fn in a transaction with an auditor that appends to the audit
// log in the same transaction.
func (s *Store) write(ctx context.Context, actor Actor, fn func(tx *gorm.DB, au *auditor) error) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(tx, &auditor{s: s, actor: actor})
	})
	if err == nil {
		s.sealSoon()
	}
	return err
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

// appendAudit writes ev. On Postgres it goes into audit_pending, in the
// writer's own transaction and without any lock, so that writers never wait
// for each other; the sealer (SealAudit) chains the committed events into
// audit_events soon after. SQLite, with its single writer, chains ev at
// once, as does a Postgres schema from before audit_pending.
func (s *Store) appendAudit(tx *gorm.DB, ev *models.AuditEvent) error {
	if ev.Actor == "" {
		ev.Actor = "system"
	}
	if s.pendingAudit {
		p := auditPending{At: ev.At, Actor: ev.Actor, Action: ev.Action, ResourceType: ev.ResourceType, ResourceID: ev.ResourceID,
			Before: ev.Before, After: ev.After, RequestID: ev.RequestID}
		if err := tx.Create(&p).Error; err != nil {
			return fmt.Errorf("append audit event: %w", err)
		}
		return nil
	}
	return s.chain(tx, []models.AuditEvent{*ev})
}

// chain links events, in order, after the head of the chain and inserts
// them. On Postgres it locks audit_events against every other appender
// until tx ends (SQLite has one writer anyway).
func (s *Store) chain(tx *gorm.DB, events []models.AuditEvent) error {
	if s.dialect == DialectPostgres {
		if err := tx.Exec(`LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE`).Error; err != nil {
			return fmt.Errorf("lock audit log: %w", err)
		}
	}
	var last models.AuditEvent
	if err := tx.Order("seq DESC").Limit(1).Take(&last).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("read audit chain head: %w", err)
	}
	for i := range events {
		events[i].Seq, events[i].PrevHash = last.Seq+1, last.Hash
		events[i].Hash = events[i].ComputeHash()
		last = events[i]
	}
	if err := tx.CreateInBatches(events, 500).Error; err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return nil
}

// auditPending is an audit event written but not chained yet.
type auditPending struct {
	ID           int64 `gorm:"primaryKey"`
	At           time.Time
	Actor        string
	Action       string
	ResourceType string
	ResourceID   string
	Before       models.JSONText
	After        models.JSONText
	RequestID    string
}

func (auditPending) TableName() string { return "audit_pending" }

// sealBatch bounds the events one seal transaction chains.
const sealBatch = 2000

// sealLock is the advisory lock that makes one sealer run at a time.
const sealLock = 727369

// sealer runs sealAudit in the background after writes: at most one at a
// time per Store, and again if writes came while it ran.
type sealer struct {
	mu      sync.Mutex
	running bool
	again   bool
	closed  bool
	done    sync.WaitGroup
}

// sealSoon chains what was written, in the background.
func (s *Store) sealSoon() {
	if !s.pendingAudit {
		return
	}
	s.seal.mu.Lock()
	if s.seal.closed {
		s.seal.mu.Unlock()
		return
	}
	if s.seal.running {
		s.seal.again = true
		s.seal.mu.Unlock()
		return
	}
	s.seal.running = true
	s.seal.done.Add(1)
	s.seal.mu.Unlock()
	go func() {
		defer s.seal.done.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := s.SealAudit(ctx); err != nil {
				// The events are kept; the next write or read seals them.
				s.logger().Warn("seal the audit log", "err", err)
			}
			cancel()
			s.seal.mu.Lock()
			if !s.seal.again || s.seal.closed {
				s.seal.running = false
				s.seal.mu.Unlock()
				return
			}
			s.seal.again = false
			s.seal.mu.Unlock()
		}
	}()
}

// SealAudit chains every committed pending event into audit_events, in id
// order, under an advisory lock so that sealers take turns. Reads of the audit log seal first, so they see every
// event that was written. It reads with READ COMMITTED, so that each
// sealer sees what the one before it chained.
func (s *Store) SealAudit(ctx context.Context) error {
	if !s.pendingAudit {
		return nil
	}
	for {
		var n int
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, sealLock).Error; err != nil {
				return fmt.Errorf("lock the audit chain: %w", err)
			}
			var pending []auditPending
			if err := tx.Order("id").Limit(sealBatch).Find(&pending).Error; err != nil {
				return fmt.Errorf("read pending audit events: %w", err)
			}
			if n = len(pending); n == 0 {
				return nil
			}
			events := make([]models.AuditEvent, n)
			ids := make([]int64, n)
			for i, p := range pending {
				events[i] = models.AuditEvent{At: p.At.UTC(), Actor: p.Actor, Action: p.Action, ResourceType: p.ResourceType,
					ResourceID: p.ResourceID, Before: p.Before, After: p.After, RequestID: p.RequestID}
				ids[i] = p.ID
			}
			// Under the advisory lock; chain's table lock keeps out a
			// process of an older version that appends directly.
			if err := s.chain(tx, events); err != nil {
				return err
			}
			return tx.Where("id IN ?", ids).Delete(&auditPending{}).Error
		}, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			return err
		}
		if n < sealBatch {
			return nil
		}
	}
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
	if err := s.SealAudit(ctx); err != nil {
		return nil, err
	}
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
	if err := s.SealAudit(ctx); err != nil {
		return rep, err
	}
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

// AuditRow returns the audit event at seq, or the last one when seq is 0
// (models.ErrNotFound when there is none).
func (s *Store) AuditRow(ctx context.Context, seq int64) (*models.AuditEvent, error) {
	if err := s.SealAudit(ctx); err != nil {
		return nil, err
	}
	q := s.db.WithContext(ctx)
	if seq > 0 {
		q = q.Where("seq = ?", seq)
	} else {
		q = q.Order("seq DESC")
	}
	var ev models.AuditEvent
	err := q.Limit(1).Take(&ev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		if seq > 0 {
			return nil, fmt.Errorf("audit row %d: %w", seq, models.ErrNotFound)
		}
		return nil, fmt.Errorf("the audit log is empty: %w", models.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read the audit log: %w", err)
	}
	return &ev, nil
}

// VerifyAuditAgainst verifies the whole chain, and that it still holds
// the row a saved head names, with the same hash: a chain recomputed
// after a rewrite holds together, but no longer contains the head.
func (s *Store) VerifyAuditAgainst(ctx context.Context, head models.AuditHead) (ChainReport, error) {
	rep, err := s.VerifyAudit(ctx)
	if err != nil || !rep.OK {
		return rep, err
	}
	switch {
	case head.Seq > rep.HeadSeq:
		rep.OK, rep.BrokenSeq = false, rep.HeadSeq+1
		rep.Reason = fmt.Sprintf("the saved head is row %d, but the log ends at row %d: rows %d to %d were deleted",
			head.Seq, rep.HeadSeq, rep.HeadSeq+1, head.Seq)
		return rep, nil
	case head.Seq < 1:
		rep.OK, rep.Reason = false, "the saved head names no row"
		return rep, nil
	}
	row, err := s.AuditRow(ctx, head.Seq)
	if err != nil {
		return rep, err
	}
	if row.Hash != head.Hash {
		rep.OK, rep.BrokenSeq = false, head.Seq
		rep.Reason = fmt.Sprintf("row %d is not the row the saved head names: its hash is %s, the head's %s; the log was rewritten at or before row %d",
			head.Seq, row.Hash, head.Hash, head.Seq)
	}
	return rep, nil
}
