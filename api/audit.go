package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// AuditPage is one page of audit events.
type AuditPage struct {
	Items      []models.AuditEvent `json:"items"`
	NextCursor string              `json:"next_cursor,omitempty"`
}

func (h *Handler) listAudit(c *gin.Context) {
	if _, err := listOptions(c, "actor", "action", "resource_type", "resource_id", "since", "until"); err != nil {
		h.fail(c, err)
		return
	}
	f := store.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action"),
		ResourceType: c.Query("resource_type"), ResourceID: c.Query("resource_id")}
	var err error
	if f.Since, err = queryTime(c, "since"); err != nil {
		h.fail(c, err)
		return
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		h.fail(c, err)
		return
	}
	limit := store.DefaultPageSize
	if s := c.Query("limit"); s != "" {
		limit, _ = strconv.Atoi(s) // checked by listOptions
	}
	var after int64
	if s := c.Query("cursor"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			h.fail(c, badRequest("cursor "+strconv.Quote(s)+" is not a cursor this list returned"))
			return
		}
	}
	events, err := h.store.ListAudit(c, f, after, limit+1)
	if err != nil {
		h.fail(c, err)
		return
	}
	page := AuditPage{Items: events}
	if len(events) > limit {
		page.Items = events[:limit]
		page.NextCursor = strconv.FormatInt(events[limit-1].Seq, 10)
	}
	if page.Items == nil {
		page.Items = []models.AuditEvent{}
	}
	c.JSON(http.StatusOK, page)
}

func queryTime(c *gin.Context, name string) (time.Time, error) {
	s := c.Query(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badRequest(name + " " + strconv.Quote(s) + " must be an RFC 3339 time, e.g. 2026-01-31T09:00:00Z")
	}
	// UTC, as the records are: SQLite compares times as text.
	return t.UTC(), nil
}

// AuditHeadResponse is a signed head and the key that checks it.
type AuditHeadResponse struct {
	models.AuditHead
	// PublicKey (hex) verifies the signature; an auditor keeps it with
	// the heads it saves.
	PublicKey string `json:"public_key"`
}

// auditHead signs the head of the log, or row ?seq=N: what an auditor
// saves, to prove later that the log still holds it.
func (h *Handler) auditHead(c *gin.Context) {
	if h.auditKey == nil {
		h.fail(c, &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
			message: "no audit key: heads are signed with the key file that TRANSIT_AUDIT_KEY names (transit dev makes one)"})
		return
	}
	var seq int64
	if s := c.Query("seq"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			h.fail(c, badRequest("seq "+strconv.Quote(s)+" must be a row number, 1 or more"))
			return
		}
		seq = n
	}
	row, err := h.store.AuditRow(c, seq)
	if err != nil {
		h.fail(c, err)
		return
	}
	head := h.auditKey.Sign(models.AuditHead{Seq: row.Seq, Hash: row.Hash, At: row.At})
	c.JSON(http.StatusOK, AuditHeadResponse{AuditHead: head, PublicKey: h.auditKey.PublicHex()})
}

// parseHead reads ?head=: a saved head as JSON, or that JSON in base64.
func parseHead(s string) (models.AuditHead, error) {
	var head models.AuditHead
	raw := []byte(strings.TrimSpace(s))
	if len(raw) > 0 && raw[0] != '{' {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawURLEncoding, base64.RawStdEncoding} {
			if b, err := enc.DecodeString(string(raw)); err == nil {
				raw = b
				break
			}
		}
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.Hash == "" {
		return head, models.Invalid("head", "must be a head that GET /audit/head returned, as JSON or base64 of it")
	}
	return head, nil
}

// verifyAudit recomputes the chain. 200 with ok=true when intact; 409 with
// the first broken link otherwise. With ?head=<a saved head>, the log must
// also still hold that head: a rewrite whose chain was recomputed, or a
// deleted tail, is found there.
func (h *Handler) verifyAudit(c *gin.Context) {
	if s := c.Query("head"); s != "" {
		h.verifyAgainstHead(c, s)
		return
	}
	rep, err := h.store.VerifyAudit(c)
	h.chainReport(c, rep, err)
}

// chainReport answers 200 for an intact chain, 409 naming the first row
// that is not.
func (h *Handler) chainReport(c *gin.Context, rep store.ChainReport, err error) {
	if err != nil {
		h.fail(c, err)
		return
	}
	status := http.StatusOK
	if !rep.OK {
		status = http.StatusConflict
	}
	c.JSON(status, rep)
}

func (h *Handler) verifyAgainstHead(c *gin.Context, s string) {
	head, err := parseHead(s)
	if err != nil {
		h.fail(c, err)
		return
	}
	if h.auditKey == nil {
		h.fail(c, &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
			message: "no audit key to check the head's signature with: set TRANSIT_AUDIT_KEY"})
		return
	}
	if err := head.Verify(h.auditKey.Public()); err != nil {
		h.fail(c, models.Invalid("head", "%s", err.Error()))
		return
	}
	rep, err := h.store.VerifyAuditAgainst(c, head)
	h.chainReport(c, rep, err)
}
