package apiclient

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/transit-hq/transit/models"
)

// AuditHead is what GET /audit/head returns: a signed head and its key.
type AuditHead struct {
	models.AuditHead
	PublicKey string `json:"public_key"`
}

// Head returns the signed head of row seq (0: the last row).
func (c *Client) Head(ctx context.Context, seq int64) (AuditHead, error) {
	path := "/api/v1/audit/head"
	if seq > 0 {
		path += "?seq=" + strconv.FormatInt(seq, 10)
	}
	var h AuditHead
	err := c.Do(ctx, "GET", path, nil, &h)
	return h, err
}

// AuditSource reads the audit log through the API, for auditfile.Export.
type AuditSource struct {
	Ctx    context.Context
	Client *Client
}

type auditPage struct {
	Items []models.AuditEvent `json:"items"`
}

// Events returns up to limit events after seq.
func (s AuditSource) Events(after int64, limit int) ([]models.AuditEvent, error) {
	var p auditPage
	err := s.Client.Do(s.Ctx, "GET", "/api/v1/audit?limit="+strconv.Itoa(limit)+"&cursor="+strconv.FormatInt(after, 10), nil, &p)
	return p.Items, err
}

// FirstSince returns the seq of the first event at or after t (0: none).
func (s AuditSource) FirstSince(t time.Time) (int64, error) {
	q := url.Values{"limit": {"1"}}
	if !t.IsZero() {
		q.Set("since", t.UTC().Format(time.RFC3339))
	}
	var p auditPage
	if err := s.Client.Do(s.Ctx, "GET", "/api/v1/audit?"+q.Encode(), nil, &p); err != nil || len(p.Items) == 0 {
		return 0, err
	}
	return p.Items[0].Seq, nil
}

// Head returns the signed head of row seq and the key that checks it.
func (s AuditSource) Head(seq int64) (models.AuditHead, string, error) {
	h, err := s.Client.Head(s.Ctx, seq)
	return h.AuditHead, h.PublicKey, err
}
