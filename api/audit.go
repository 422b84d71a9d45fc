package api

import (
	"net/http"
	"strconv"
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
	return t, nil
}

// verifyAudit recomputes the chain. 200 with ok=true when intact; 409 with
// the first broken link otherwise.
func (h *Handler) verifyAudit(c *gin.Context) {
	rep, err := h.store.VerifyAudit(c)
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
