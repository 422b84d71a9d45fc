package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/models"
)

// showDetails sets what the Temporal UI shows as the workflow's current
// details: the stage, the wave, the holds, the pending approvals, a pause,
// the point of no return. It is not a command: it can change freely.
func (d *deployment) showDetails() {
	workflow.SetCurrentDetails(d.safe, d.details())
}

func (d *deployment) details() string {
	var b strings.Builder
	p := d.Plan
	b.WriteString(fmt.Sprintf("**%s**", d.Status))
	if p.Application != "" {
		b.WriteString(fmt.Sprintf(" · %s %s %s to %s", orDash(p.Scenario), p.Application, p.ReleaseVersion, p.Environment))
	}
	b.WriteString("\n\n")
	if n := len(p.Waves); n > 0 {
		b.WriteString(fmt.Sprintf("- Plan: %s in %s, risk %s (%d)\n", models.Plural(d.targetCount(), "target"), models.Plural(n, "wave"), p.Risk.Level, p.Risk.Score))
		if d.WaveIndex > 0 {
			b.WriteString(fmt.Sprintf("- Wave %d of %d\n", d.WaveIndex, n))
		}
	}
	if d.Status == models.StatusAwaitingApproval {
		groups := "anyone signed in"
		if g := d.approverGroups(); len(g) > 0 {
			groups = strings.Join(g, ", ")
		}
		if d.in.Emergency != nil {
			b.WriteString("- " + d.in.Emergency.String() + "\n")
		}
		b.WriteString(fmt.Sprintf("- Approvals: %d of %d; may approve: %s", d.approvedCount(), d.required(), groups))
		var by []string
		for _, a := range d.Approvals {
			by = append(by, a.Approver+" "+a.Decision+"d")
		}
		if len(by) > 0 {
			b.WriteString(fmt.Sprintf(" (%s)", strings.Join(by, ", ")))
		}
		b.WriteString("\n")
	}
	if h := d.Hold; h != nil {
		b.WriteString(fmt.Sprintf("- Held (%s): %s", h.Kind, h.Reason))
		if h.Until != nil {
			b.WriteString(fmt.Sprintf(", until %s", h.Until.UTC().Format(time.RFC1123)))
		}
		b.WriteString("\n")
	}
	if d.Paused {
		b.WriteString(fmt.Sprintf("- Paused by %s", d.PausedBy))
		if d.PauseWhy != "" {
			b.WriteString(fmt.Sprintf(": %s", d.PauseWhy))
		}
		b.WriteString("; resume through Transit's API\n")
	}
	switch {
	case d.PastPONR:
		b.WriteString("- Past the point of no return: a failure now means an incident, not a rollback\n")
	case d.PONRAt != nil:
		b.WriteString(fmt.Sprintf("- Point of no return at %s\n", d.PONRAt.UTC().Format(time.RFC1123)))
	}
	if d.ELSEndsAt != nil && !d.Status.Terminal() {
		b.WriteString(fmt.Sprintf("- Early life support ends %s\n", d.ELSEndsAt.UTC().Format(time.RFC1123)))
	}
	if len(d.Left) > 0 {
		b.WriteString(fmt.Sprintf("- Failed: %s\n", joinMax(leftNames(d.Left), 10)))
	}
	if d.Outcome != "" {
		b.WriteString(fmt.Sprintf("- Outcome: %s\n", models.Cut(d.Outcome, 500)))
	}
	if d.in.Link != "" {
		b.WriteString(fmt.Sprintf("\n[Open in Transit](%s)\n", d.in.Link))
	}
	return b.String()
}

func leftNames(l []leftBehind) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = x.Name
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
