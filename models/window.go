package models

import (
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the same zones on every worker: window times are workflow state
)

// NextOpen returns the first moment at or after t when a rollout may run:
// inside one of the policy's change windows (any time, when it has none)
// and outside every freeze. It looks at most 60 days ahead and returns the
// zero time when nothing opens in that span.
func (p *Policy) NextOpen(t time.Time) time.Time {
	limit := t.Add(60 * 24 * time.Hour)
	for candidate := t; candidate.Before(limit); {
		if end, frozen := p.frozenAt(candidate); frozen {
			candidate = end
			continue
		}
		if len(p.ChangeWindows) == 0 {
			return candidate
		}
		next := time.Time{}
		for _, w := range p.ChangeWindows {
			start, open := w.openAt(candidate)
			if open {
				return candidate
			}
			if !start.IsZero() && (next.IsZero() || start.Before(next)) {
				next = start
			}
		}
		if next.IsZero() {
			return time.Time{}
		}
		candidate = next
	}
	return time.Time{}
}

// frozenAt returns the end of the freeze covering t, if any.
func (p *Policy) frozenAt(t time.Time) (time.Time, bool) {
	for _, f := range p.Freezes {
		if !t.Before(f.Start) && t.Before(f.End) {
			return f.End, true
		}
	}
	return time.Time{}, false
}

// openAt reports whether t is inside the window, and otherwise when it
// next opens (within 8 days).
func (w ChangeWindow) openAt(t time.Time) (time.Time, bool) {
	loc := time.UTC
	if w.Timezone != "" {
		if l, err := time.LoadLocation(w.Timezone); err == nil {
			loc = l
		}
	}
	startMin, ok1 := minutes(w.Start)
	endMin, ok2 := minutes(w.End)
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	local := t.In(loc)
	var next time.Time
	// Look at yesterday too: a window may run past midnight.
	for d := -1; d <= 8; d++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+d, 0, 0, 0, 0, loc)
		if !w.hasDay(day.Weekday()) {
			continue
		}
		// Wall-clock times of that day, right on days when the clocks change.
		start := time.Date(day.Year(), day.Month(), day.Day(), startMin/60, startMin%60, 0, 0, loc)
		end := time.Date(day.Year(), day.Month(), day.Day(), endMin/60, endMin%60, 0, 0, loc)
		if !end.After(start) {
			end = time.Date(day.Year(), day.Month(), day.Day()+1, endMin/60, endMin%60, 0, 0, loc)
		}
		if !t.Before(start) && t.Before(end) {
			return time.Time{}, true
		}
		if start.After(t) && (next.IsZero() || start.Before(next)) {
			next = start
		}
	}
	return next, false
}

func (w ChangeWindow) hasDay(d time.Weekday) bool {
	name := strings.ToLower(d.String()[:3])
	for _, x := range w.Days {
		if strings.ToLower(x) == name {
			return true
		}
	}
	return false
}

func minutes(hhmm string) (int, bool) {
	h, m, ok := strings.Cut(hhmm, ":")
	if !ok {
		return 0, false
	}
	hi, err1 := strconv.Atoi(h)
	mi, err2 := strconv.Atoi(m)
	return hi*60 + mi, err1 == nil && err2 == nil
}

// HoldAt says what keeps a rollout from running at t under this policy: a
// freeze (with its reason, until it ends), or no open change window (until
// the next one opens); nil when a rollout may run.
func (p *Policy) HoldAt(t time.Time) *Hold {
	for _, f := range p.Freezes {
		if !t.Before(f.Start) && t.Before(f.End) {
			end := f.End.UTC()
			reason := "freeze until " + end.Format(time.RFC3339)
			if strings.TrimSpace(f.Reason) != "" {
				reason = "freeze: " + f.Reason + " (until " + end.Format(time.RFC3339) + ")"
			}
			return &Hold{Kind: HoldFreeze, Reason: reason, Until: &end}
		}
	}
	if len(p.ChangeWindows) == 0 {
		return nil
	}
	var next time.Time
	for _, w := range p.ChangeWindows {
		start, open := w.openAt(t)
		if open {
			return nil
		}
		if !start.IsZero() && (next.IsZero() || start.Before(next)) {
			next = start
		}
	}
	h := &Hold{Kind: HoldWindow, Reason: "outside the change windows (" + p.describeWindows() + ")"}
	if !next.IsZero() {
		n := next.UTC()
		h.Until = &n
		h.Reason += "; the next opens at " + n.Format(time.RFC3339)
	}
	return h
}

func (p *Policy) describeWindows() string {
	parts := make([]string, len(p.ChangeWindows))
	for i, w := range p.ChangeWindows {
		tz := w.Timezone
		if tz == "" {
			tz = "UTC"
		}
		parts[i] = strings.Join(w.Days, ",") + " " + w.Start + "-" + w.End + " " + tz
	}
	return strings.Join(parts, "; ")
}
