// Package auditfile writes and checks audit exports: JSON Lines of audit
// events with their hashes, closed by a head that Transit signed, for an
// auditor's archive. A check needs no server and no database.
package auditfile

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/transit-hq/transit/models"
)

// Line is one line of an export.
type Line struct {
	// Kind is "export" (the first line), "event" or "head" (the last).
	Kind string `json:"kind"`
	// On the export line.
	Since     *time.Time `json:"since,omitempty"`
	Until     *time.Time `json:"until,omitempty"`
	PublicKey string     `json:"public_key,omitempty"`
	// On an event line.
	Event *models.AuditEvent `json:"event,omitempty"`
	// On the head line: Transit's signed statement of the last event.
	Head *models.AuditHead `json:"head,omitempty"`
}

// Source is what an export reads: the audit log through the API.
type Source interface {
	// Events returns up to limit events after seq, in order.
	Events(after int64, limit int) ([]models.AuditEvent, error)
	// FirstSince returns the seq of the first event at or after t (0: none).
	FirstSince(t time.Time) (int64, error)
	// Head returns the signed head of row seq and the key that checks it.
	Head(seq int64) (models.AuditHead, string, error)
}

// Export writes the events from the first at or after since, in seq
// order, up to the last before until (a zero until: to the end), and a
// signed head of the last one. The rows are contiguous, so the chain can
// be checked link by link. progress, when set, hears the count so far.
func Export(src Source, w io.Writer, since, until time.Time, progress func(n int)) (int, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	start, err := src.FirstSince(since)
	if err != nil {
		return 0, err
	}
	header := Line{Kind: "export"}
	if !since.IsZero() {
		header.Since = &since
	}
	if !until.IsZero() {
		header.Until = &until
	}
	var (
		n    int
		last *models.AuditEvent
		head models.AuditHead
	)
	if start > 0 {
		after := start - 1
	pages:
		for {
			events, err := src.Events(after, 500)
			if err != nil {
				return n, err
			}
			for i := range events {
				ev := events[i]
				if !until.IsZero() && !ev.At.Before(until) {
					break pages
				}
				if n == 0 {
					// The key goes first, so that a reader knows it before
					// the events; it is fetched with the last head below.
					_, pub, err := src.Head(ev.Seq)
					if err != nil {
						return n, err
					}
					header.PublicKey = pub
					if err := enc.Encode(header); err != nil {
						return n, err
					}
				}
				if err := enc.Encode(Line{Kind: "event", Event: &ev}); err != nil {
					return n, err
				}
				last, after = &ev, ev.Seq
				n++
				if progress != nil && n%1000 == 0 {
					progress(n)
				}
			}
			if len(events) < 500 {
				break
			}
		}
	}
	if last == nil {
		return 0, errors.New("no audit events in that range")
	}
	if head, _, err = src.Head(last.Seq); err != nil {
		return n, err
	}
	if head.Hash != last.Hash {
		return n, fmt.Errorf("the server signed row %d with hash %s, but exported it with %s: the log changed during the export; export again", last.Seq, head.Hash, last.Hash)
	}
	return n, enc.Encode(Line{Kind: "head", Head: &head})
}

// Report is what a check found.
type Report struct {
	OK     bool   `json:"ok"`
	Events int    `json:"events"`
	First  int64  `json:"first_seq"`
	Last   int64  `json:"last_seq"`
	KeyID  string `json:"key_id,omitempty"`
	// KeyFromFile: the head was checked with the key the file itself
	// names, which proves nothing against whoever wrote the file.
	KeyFromFile bool `json:"key_from_file,omitempty"`
	// BadLine and BadSeq locate the first problem, Reason says it.
	BadLine int    `json:"bad_line,omitempty"`
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (r *Report) fail(line int, seq int64, format string, args ...any) Report {
	r.OK, r.BadLine, r.BadSeq, r.Reason = false, line, seq, fmt.Sprintf(format, args...)
	return *r
}

// Verify checks an export: each event's hash covers its content, each
// links to the one before, and the head, signed with pub, names the last
// event. With pub nil the key on the export line is used (and the report
// says so). An error means the file could not be read.
func Verify(r io.Reader, pub ed25519.PublicKey) (Report, error) {
	var rep Report
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var (
		lineNo int
		prev   *models.AuditEvent
		head   *models.AuditHead
	)
	for sc.Scan() {
		lineNo++
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return rep.fail(lineNo, 0, "line %d is not JSON: %v", lineNo, err), nil
		}
		switch {
		case head != nil:
			return rep.fail(lineNo, 0, "line %d comes after the head, which must be the last line", lineNo), nil
		case lineNo == 1 && l.Kind != "export":
			return rep.fail(lineNo, 0, "line 1 is %q, not the export line: this is not a Transit audit export", l.Kind), nil
		case lineNo == 1:
			if pub == nil {
				k, err := models.ParsePublicKey(l.PublicKey)
				if err != nil {
					return rep.fail(lineNo, 0, "the export line's public_key: %v", err), nil
				}
				pub, rep.KeyFromFile = k, true
			}
		case l.Kind == "event" && l.Event != nil:
			ev := l.Event
			switch {
			case prev == nil && ev.Seq == 1 && ev.PrevHash != "":
				return rep.fail(lineNo, ev.Seq, "row 1 links to a row before it"), nil
			case prev != nil && ev.Seq != prev.Seq+1:
				return rep.fail(lineNo, ev.Seq, "row %d follows row %d: rows are missing", ev.Seq, prev.Seq), nil
			case prev != nil && ev.PrevHash != prev.Hash:
				return rep.fail(lineNo, ev.Seq, "row %d's prev_hash is not the hash of row %d", ev.Seq, prev.Seq), nil
			case ev.ComputeHash() != ev.Hash:
				return rep.fail(lineNo, ev.Seq, "row %d's content does not match its hash: it was changed", ev.Seq), nil
			}
			if prev == nil {
				rep.First = ev.Seq
			}
			prev = ev
			rep.Events++
		case l.Kind == "head" && l.Head != nil:
			head = l.Head
			if err := head.Verify(pub); err != nil {
				return rep.fail(lineNo, head.Seq, "%v", err), nil
			}
			rep.KeyID = head.KeyID
			if prev == nil || head.Seq != prev.Seq || head.Hash != prev.Hash {
				return rep.fail(lineNo, head.Seq, "the signed head names row %d with hash %s, which is not the last row of the export", head.Seq, head.Hash), nil
			}
		default:
			return rep.fail(lineNo, 0, "line %d is neither an event nor the head", lineNo), nil
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read the export: %w", err)
	}
	if head == nil {
		seq := int64(0)
		if prev != nil {
			seq = prev.Seq
		}
		return rep.fail(lineNo, seq, "the export has no signed head: it was cut short, or its end was removed"), nil
	}
	rep.OK, rep.Last = true, prev.Seq
	return rep, nil
}
