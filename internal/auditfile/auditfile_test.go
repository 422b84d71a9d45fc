package auditfile_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/internal/auditfile"
	"github.com/transit-hq/transit/models"
)

// source is an audit log in memory, chained and signed as Transit does.
type source struct {
	events []models.AuditEvent
	key    *models.AuditKey
}

func newSource(t *testing.T, n int) *source {
	key, err := models.ReadAuditKey(filepath.Join(t.TempDir(), "k"), true)
	require.NoError(t, err)
	s := &source{key: key}
	prev := ""
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		ev := models.AuditEvent{Seq: int64(i), At: at.Add(time.Duration(i) * time.Hour), Actor: "alice", Action: "create",
			ResourceType: "application", ResourceID: "app_" + string(rune('a'+i)), After: models.JSONText(`{"name":"<b>x</b>"}`), PrevHash: prev}
		ev.Hash = ev.ComputeHash()
		prev = ev.Hash
		s.events = append(s.events, ev)
	}
	return s
}

func (s *source) Events(after int64, limit int) ([]models.AuditEvent, error) {
	var out []models.AuditEvent
	for _, e := range s.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *source) FirstSince(t time.Time) (int64, error) {
	for _, e := range s.events {
		if !e.At.Before(t) {
			return e.Seq, nil
		}
	}
	return 0, nil
}

func (s *source) Head(seq int64) (models.AuditHead, string, error) {
	e := s.events[seq-1]
	return s.key.Sign(models.AuditHead{Seq: e.Seq, Hash: e.Hash, At: e.At}), s.key.PublicHex(), nil
}

func TestExportVerifiesAndNamesWhatChanged(t *testing.T) {
	src := newSource(t, 1200)
	var buf bytes.Buffer
	var progress []int
	since := src.events[99].At                     // row 100
	until := src.events[1099].At.Add(-time.Second) // row 1100 is after it
	n, err := auditfile.Export(src, &buf, since, until, func(n int) { progress = append(progress, n) })
	require.NoError(t, err)
	require.Equal(t, 1000, n, "rows 100 to 1099")
	require.Equal(t, []int{1000}, progress, "progress is told every 1000 events")

	rep, err := auditfile.Verify(bytes.NewReader(buf.Bytes()), src.key.Public())
	require.NoError(t, err)
	require.True(t, rep.OK, rep.Reason)
	require.EqualValues(t, 100, rep.First)
	require.EqualValues(t, 1099, rep.Last)
	require.False(t, rep.KeyFromFile)

	rep, err = auditfile.Verify(bytes.NewReader(buf.Bytes()), nil)
	require.NoError(t, err)
	require.True(t, rep.OK)
	require.True(t, rep.KeyFromFile, "without a key, the report says the file's own key was used")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	check := func(ls []string) auditfile.Report {
		rep, err := auditfile.Verify(strings.NewReader(strings.Join(ls, "\n")), src.key.Public())
		require.NoError(t, err)
		require.False(t, rep.OK)
		return rep
	}
	changed := append([]string{}, lines...)
	changed[10] = strings.Replace(changed[10], `"alice"`, `"mallo"`, 1)
	rep = check(changed)
	require.Equal(t, 11, rep.BadLine)
	require.EqualValues(t, 109, rep.BadSeq)
	require.Contains(t, rep.Reason, "does not match its hash")

	dropped := append(append([]string{}, lines[:10]...), lines[11:]...)
	rep = check(dropped)
	require.Contains(t, rep.Reason, "rows are missing")

	rep = check(lines[:len(lines)-1])
	require.Contains(t, rep.Reason, "no signed head")

	// A head for a row the export does not end with.
	h, _, _ := src.Head(5)
	withOther := append(append([]string{}, lines[:len(lines)-1]...),
		`{"kind":"head","head":{"seq":5,"hash":"`+h.Hash+`","at":"`+h.At.Format(time.RFC3339Nano)+`","signed_at":"`+h.SignedAt.Format(time.RFC3339Nano)+`","key_id":"`+h.KeyID+`","signature":"`+h.Signature+`"}}`)
	rep = check(withOther)
	require.Contains(t, rep.Reason, "not the last row of the export")

	rep = check(append([]string{`{"kind":"event"}`}, lines[1:]...))
	require.Contains(t, rep.Reason, "not a Transit audit export")

	_, err = auditfile.Export(src, &bytes.Buffer{}, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, nil)
	require.ErrorContains(t, err, "no audit events in that range")
}
