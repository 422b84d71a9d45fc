package api

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// Bounds of GET /schedule's range.
const (
	defaultScheduleSpan = 14 * 24 * time.Hour
	maxScheduleSpan     = 92 * 24 * time.Hour
)

// calendarType is the media type of the iCalendar feed.
const calendarType = "text/calendar"

// getSchedule is GET /schedule: the forward schedule of change in
// [from, to) (default: the next 14 days), as JSON, or as an iCalendar feed
// with ?format=ics or Accept: text/calendar.
func (h *Handler) getSchedule(c *gin.Context) {
	allowed := map[string]bool{"from": true, "to": true, "application_id": true, "environment_id": true, "format": true}
	for k := range c.Request.URL.Query() {
		if !allowed[k] {
			h.fail(c, badRequest(fmt.Sprintf("unknown query parameter %q: the schedule takes from, to, application_id, environment_id and format", k)))
			return
		}
	}
	ics := false
	switch f := c.Query("format"); f {
	case "":
		ics = acceptsCalendar(c.GetHeader("Accept"))
	case "ics":
		ics = true
	case "json":
	default:
		h.fail(c, badRequest(fmt.Sprintf("format %q must be json or ics", f)))
		return
	}
	q := store.ScheduleQuery{Now: time.Now().UTC().Truncate(time.Second)}
	var err error
	if q.From, err = queryTime(c, "from"); err != nil {
		h.fail(c, err)
		return
	}
	if q.To, err = queryTime(c, "to"); err != nil {
		h.fail(c, err)
		return
	}
	if q.From.IsZero() {
		q.From = q.Now
	}
	if q.To.IsZero() {
		q.To = q.From.Add(defaultScheduleSpan)
	}
	q.From, q.To = q.From.UTC(), q.To.UTC()
	switch {
	case !q.To.After(q.From):
		h.fail(c, models.Invalid("to", "must be after from (%s)", q.From.Format(time.RFC3339)))
		return
	case q.To.Sub(q.From) > maxScheduleSpan:
		h.fail(c, models.Invalid("to", "the schedule spans at most %d days: ask for several ranges", int(maxScheduleSpan.Hours()/24)))
		return
	}
	if ref := c.Query("application_id"); ref != "" {
		if q.ApplicationID, err = h.resolveApplication(c, "application_id", ref); err != nil {
			h.fail(c, err)
			return
		}
	}
	if ref := c.Query("environment_id"); ref != "" {
		env, err := h.store.GetEnvironment(c, ref)
		switch {
		case models.IsNotFound(err):
			h.fail(c, models.Invalid("environment_id", "no environment has id %q", ref))
			return
		case err != nil:
			h.fail(c, err)
			return
		}
		q.EnvironmentID = env.ID
	}
	sch, err := h.store.Schedule(c, q)
	if err != nil {
		h.fail(c, err)
		return
	}
	if !ics {
		c.JSON(http.StatusOK, sch)
		return
	}
	c.Header("Content-Disposition", `inline; filename="transit-schedule.ics"`)
	c.Data(http.StatusOK, calendarType+"; charset=utf-8", sch.ICalendar(func(id string) string {
		return h.publicURL + "/deployments/" + url.PathEscape(id)
	}))
}

// acceptsCalendar reports whether an Accept header asks for text/calendar
// rather than JSON (the first of the two it names, by quality).
func acceptsCalendar(accept string) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || (mt != calendarType && mt != "application/json") {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if _, err := fmt.Sscanf(s, "%g", &q); err != nil {
				continue
			}
		}
		if q > bestQ {
			best, bestQ = mt, q
		}
	}
	return best == calendarType && bestQ > 0
}
