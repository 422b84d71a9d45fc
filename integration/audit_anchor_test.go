package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/models"
)

// A head saved by an auditor catches what the chain alone misses: the last
// row rewritten with its hash recomputed, and a deleted tail. An export
// made with the CLI verifies offline, and names the line that was changed.
func TestSavedAuditHeadCatchesRewrites(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, name := range []string{"one", "two", "three"} {
		s.must(201, "POST", "/api/v1/applications", map[string]any{"name": name, "owner_team": "x",
			"description": `<script>alert("` + name + `")</script> & more`})
	}
	// The auditor saves the head, row 4 (row 1 is the admin's token), and
	// the key, once.
	saved := s.must(200, "GET", "/api/v1/audit/head", nil)
	require.EqualValues(t, 4, saved.get("seq"))
	require.Equal(t, s.auditKey.PublicHex(), saved.str("public_key"))
	require.Equal(t, models.KeyID(s.auditKey.Public()), saved.str("key_id"))
	savedJSON := saved.Raw
	verifyHead := func(head string) response {
		return s.call("GET", "/api/v1/audit/verify?head="+url.QueryEscape(head), s.admin, nil)
	}
	r := verifyHead(savedJSON)
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, true, r.get("ok"))
	r = verifyHead(base64.StdEncoding.EncodeToString([]byte(savedJSON)))
	require.Equal(t, 200, r.Status, "a head in base64 is taken too: %s", r.Raw)

	// Later rows extend the head.
	s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "four", "owner_team": "x"})
	s.must(201, "POST", "/api/v1/applications", map[string]any{"name": "five", "owner_team": "x"})
	require.Equal(t, 200, verifyHead(savedJSON).Status)

	// An export, with the real CLI, verifies offline with the saved key.
	bin := transitBinary(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "audit.jsonl")
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TRANSIT_URL="+s.baseURL, "TRANSIT_TOKEN="+s.admin)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := cli("audit", "export", "--since", "2000-01-01T00:00:00Z", "--out", export)
	require.NoError(t, err, out)
	require.Contains(t, out, "exported 6 events and a signed head")
	out, err = cli("audit", "verify", export, "--public-key", s.auditKey.PublicHex())
	require.NoError(t, err, out)
	require.Contains(t, out, "ok, rows 1 to 6 (6 events)")
	require.NotContains(t, out, "key named in the file itself")

	// A changed line is found, and named.
	raw, err := os.ReadFile(export)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 8, "the export line, six events, the head")
	tampered := filepath.Join(dir, "tampered.jsonl")
	lines2 := append([]string{}, lines...)
	require.Contains(t, lines2[3], `\"two\"`)
	lines2[3] = strings.Replace(lines2[3], `\"two\"`, `\"owt\"`, 1)
	require.NoError(t, os.WriteFile(tampered, []byte(strings.Join(lines2, "\n")+"\n"), 0o600))
	out, err = cli("audit", "verify", tampered, "--public-key", s.auditKey.PublicHex())
	require.Error(t, err)
	require.Contains(t, out, "line 4 (row 3): row 3's content does not match its hash")
	// So is a cut tail, and a head signed by another key.
	cut := filepath.Join(dir, "cut.jsonl")
	require.NoError(t, os.WriteFile(cut, []byte(strings.Join(lines[:6], "\n")+"\n"), 0o600))
	out, err = cli("audit", "verify", cut)
	require.Error(t, err)
	require.Contains(t, out, "no signed head")
	other, err := models.ReadAuditKey(filepath.Join(dir, "other.key"), true)
	require.NoError(t, err)
	out, err = cli("audit", "verify", export, "--public-key", other.PublicHex())
	require.Error(t, err)
	require.Contains(t, out, "not by this key")

	// The database owner rewrites the last row and recomputes its hash:
	// the chain still holds, the saved head of that row does not.
	head6 := s.must(200, "GET", "/api/v1/audit/head", nil).Raw
	db := s.store.DB().WithContext(context.Background())
	var last models.AuditEvent
	require.NoError(t, db.Where("seq = 6").Take(&last).Error)
	last.After = models.JSONText(strings.Replace(string(last.After), "five", "evil", 1))
	last.Hash = last.ComputeHash()
	require.NoError(t, db.Exec(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`).Error)
	require.NoError(t, db.Exec(`UPDATE audit_events SET after = ?, hash = ? WHERE seq = 6`, last.After, last.Hash).Error)
	require.Equal(t, true, s.must(200, "GET", "/api/v1/audit/verify", nil).get("ok"), "the chain alone misses it")
	r = verifyHead(head6)
	require.Equal(t, 409, r.Status, r.Raw)
	require.EqualValues(t, 6, r.get("broken_seq"))
	require.Contains(t, r.str("reason"), "row 6 is not the row the saved head names")
	require.Equal(t, 200, verifyHead(savedJSON).Status, "the rows up to 4 are as they were")

	// A deleted tail: the chain holds, the saved head is gone.
	require.NoError(t, db.Exec(`DELETE FROM audit_events WHERE seq >= 5`).Error)
	require.NoError(t, db.Exec(`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`).Error)
	require.Equal(t, true, s.must(200, "GET", "/api/v1/audit/verify", nil).get("ok"), "the chain alone misses it")
	r = verifyHead(head6)
	require.Equal(t, 409, r.Status, r.Raw)
	require.EqualValues(t, 5, r.get("broken_seq"))
	require.Contains(t, r.str("reason"), "the log ends at row 4: rows 5 to 6 were deleted")

	// A head that Transit did not sign is refused, not believed.
	var forged map[string]any
	require.NoError(t, json.Unmarshal([]byte(savedJSON), &forged))
	forged["hash"] = strings.Repeat("0", 64)
	b, _ := json.Marshal(forged)
	r = verifyHead(string(b))
	require.Equal(t, 422, r.Status, r.Raw)
	require.Contains(t, r.Raw, "signature does not match")
	r = verifyHead("not a head")
	require.Equal(t, 422, r.Status, r.Raw)
}
