package models

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// What planning does when another active deployment changes targets that
// share a value of the environment's conflict label (Policy.OnConflict).
const (
	// OnConflictWarn: the plan names the conflicts; the deployment goes on.
	OnConflictWarn = "warn"
	// OnConflictRefuse: the deployment ends rejected, naming the conflicts.
	OnConflictRefuse = "refuse"
	// OnConflictWait: the deployment waits (queued) until the conflicting
	// deployments submitted before it have ended, then plans again.
	OnConflictWait = "wait"
)

// OnConflictRules lists the values of Policy.OnConflict.
var OnConflictRules = []string{OnConflictWait, OnConflictWarn, OnConflictRefuse}

// ConflictRule is what planning does on a conflict: the policy's
// on_conflict, warn when it has none. An emergency change is never
// refused or held for a conflict: it is warned.
func (p Policy) ConflictRule(emergency bool) string {
	if p.OnConflict == "" || emergency {
		return OnConflictWarn
	}
	return p.OnConflict
}

// StartBasis says what decides when a deployment is expected to start.
type StartBasis string

// Start bases, from the one that holds it last.
const (
	// StartStarted: its rollout began (the time is when).
	StartStarted StartBasis = "started"
	// StartApproval: it waits for planning or approval; nothing else holds it.
	StartApproval StartBasis = "approval"
	// StartNow: nothing holds it.
	StartNow StartBasis = "now"
	// StartPaused: paused before its rollout: it starts when resumed.
	StartPaused StartBasis = "paused"
	// StartQueued: after the deployments ahead of it in its lane.
	StartQueued StartBasis = "queued"
	// StartNotBefore: the request's not_before.
	StartNotBefore StartBasis = "not_before"
	// StartWindow: the next change window of the environment.
	StartWindow StartBasis = "window"
	// StartFreeze: the end of a freeze of the environment.
	StartFreeze StartBasis = "freeze"
	// StartUnknown: no change window opens within 60 days.
	StartUnknown StartBasis = "unknown"
)

// Schedule is the forward schedule of change: the active deployments with
// their expected start and end, the freezes and change windows, and the
// conflicts between them, in [From, To).
type Schedule struct {
	From          time.Time             `json:"from"`
	To            time.Time             `json:"to"`
	GeneratedAt   time.Time             `json:"generated_at"`
	Deployments   []ScheduledDeployment `json:"deployments"`
	Freezes       []ScheduledFreeze     `json:"freezes"`
	ChangeWindows []ScheduledWindow     `json:"change_windows"`
	Conflicts     []ScheduleConflict    `json:"conflicts"`
}

// ScheduledDeployment is one active deployment in the schedule.
type ScheduledDeployment struct {
	ID             string     `json:"id"`
	ApplicationID  string     `json:"application_id"`
	Application    string     `json:"application"`
	EnvironmentID  string     `json:"environment_id"`
	Environment    string     `json:"environment"`
	ReleaseVersion string     `json:"release_version"`
	Scenario       string     `json:"scenario"`
	Status         Status     `json:"status"`
	RequestedBy    string     `json:"requested_by"`
	Reason         string     `json:"reason,omitempty"`
	Emergency      *Emergency `json:"emergency,omitempty"`
	NotBefore      *time.Time `json:"not_before,omitempty"`
	Hold           *Hold      `json:"hold,omitempty"`
	ExpectedStart  time.Time  `json:"expected_start"`
	StartBasis     StartBasis `json:"start_basis"`
	StartReason    string     `json:"start_reason"`
	ExpectedEnd    time.Time  `json:"expected_end"`
	EndReason      string     `json:"end_reason"`
	// Duration is how long it is expected to take, and how that was estimated.
	Duration DurationEstimate `json:"duration"`
	// Targets are the names of the targets it changes (all of the
	// environment's while it is not planned yet).
	Targets []string `json:"targets"`

	labels map[string]map[string]string // target name → labels
	lane   string
}

// Interval returns the expected start and end.
func (d ScheduledDeployment) Interval() (time.Time, time.Time) { return d.ExpectedStart, d.ExpectedEnd }

// Title says what it does in a line: "Deploy shop 2.0.0 to prod".
func (d ScheduledDeployment) Title() string {
	what := "Deploy"
	switch d.Scenario {
	case ScenarioDecommission:
		what = "Decommission"
	case ScenarioDowngrade:
		what = "Downgrade to"
	}
	s := fmt.Sprintf("%s %s %s to %s", what, d.Application, d.ReleaseVersion, d.Environment)
	if d.Scenario == ScenarioDecommission {
		s = fmt.Sprintf("Decommission %s %s from %s", d.Application, d.ReleaseVersion, d.Environment)
	}
	if d.Emergency != nil {
		s = "EMERGENCY: " + s
	}
	return s
}

// DurationEstimate is how long a deployment is expected to take (from the
// start of its rollout to its end, early life support included), and how
// that was worked out.
type DurationEstimate struct {
	Expected Duration `json:"expected"`
	// Basis is "history" (recent completed deployments of the same
	// application to the same environment) or "policy" (no history: the
	// environment's strategy and early life support).
	Basis string `json:"basis"`
	// Samples is how many past deployments the history gave.
	Samples int `json:"samples"`
	// Method says it in words.
	Method string `json:"method"`
}

// Estimate bases.
const (
	EstimateHistory = "history"
	EstimatePolicy  = "policy"
)

// DefaultWaveEstimate is what one wave is expected to take when there is
// no history to go by.
const DefaultWaveEstimate = 5 * time.Minute

// EstimateDuration estimates how long a deployment of lane ("shop to
// prod") takes: the median of samples (recent completed deployments, from
// the start of their rollout to their end) when there are any, else from
// the policy: waves × DefaultWaveEstimate, the bakes between them, and the
// longer of early life support and the point of no return.
func EstimateDuration(samples []time.Duration, p Policy, strategy Strategy, waves int, lane string) DurationEstimate {
	if len(samples) > 0 {
		s := append([]time.Duration(nil), samples...)
		slices.Sort(s)
		m := s[len(s)/2]
		if len(s)%2 == 0 {
			m = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		m = m.Round(time.Second)
		return DurationEstimate{Expected: Duration(m), Basis: EstimateHistory, Samples: len(s),
			Method: fmt.Sprintf("median of the last %s of %s (from the start of the rollout to the end), %s",
				Plural(len(s), "completed deployment"), lane, m)}
	}
	p.Normalize()
	waves = max(1, waves)
	after := max(p.EarlyLifeSupport.D(), p.PointOfNoReturn.D())
	d := time.Duration(waves)*DefaultWaveEstimate + time.Duration(waves-1)*strategy.Bake.D() + after
	method := fmt.Sprintf("no completed deployment of %s yet: from the policy, %s × %s", lane, Plural(waves, "wave"), DefaultWaveEstimate)
	if waves > 1 && strategy.Bake > 0 {
		method += fmt.Sprintf(" + %s of %s", Plural(waves-1, "bake"), strategy.Bake.D())
	}
	method += fmt.Sprintf(" + early life support %s = %s", after, d)
	return DurationEstimate{Expected: Duration(d), Basis: EstimatePolicy, Method: method}
}

// WaveCount is how many waves strategy makes of n targets (as planning
// builds them).
func WaveCount(s Strategy, n int) int {
	switch {
	case n <= 0:
		return 1
	case s.Kind == StrategyRolling:
		b := max(1, s.Batch)
		return (n + b - 1) / b
	case s.Kind == StrategyCanary:
		waves, prev := 0, 0
		for _, st := range s.Steps {
			end := st.Count
			if st.Percent > 0 {
				end = (n*st.Percent + 99) / 100
			}
			end = min(end, n)
			if end > prev {
				waves, prev = waves+1, end
			}
		}
		if prev < n {
			waves++
		}
		return max(1, waves)
	}
	return 1
}

// ScheduledFreeze is a freeze of one environment.
type ScheduledFreeze struct {
	ApplicationID string    `json:"application_id"`
	Application   string    `json:"application"`
	EnvironmentID string    `json:"environment_id"`
	Environment   string    `json:"environment"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Reason        string    `json:"reason"`
}

// ScheduledWindow is a weekly change window of one environment, with its
// occurrences in the schedule's range.
type ScheduledWindow struct {
	ApplicationID string     `json:"application_id"`
	Application   string     `json:"application"`
	EnvironmentID string     `json:"environment_id"`
	Environment   string     `json:"environment"`
	Days          []string   `json:"days"`
	Start         string     `json:"start"`
	End           string     `json:"end"`
	Timezone      string     `json:"timezone"`
	Occurrences   []Interval `json:"occurrences"`
}

// Interval is a span of time.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Conflict kinds.
const (
	// ConflictOverlap: two deployments expected to run at the same time
	// on targets that share a value of a conflict label.
	ConflictOverlap = "overlap"
	// ConflictFreeze: a deployment expected to run into a freeze.
	ConflictFreeze = "freeze"
)

// ScheduleConflict is a conflict in the schedule.
type ScheduleConflict struct {
	Kind string `json:"kind"`
	// Deployments are the ids of the deployments in conflict.
	Deployments []string `json:"deployments"`
	// Label and Values: the conflict label (a policy's conflict_label)
	// and the values both deployments' targets carry.
	Label  string   `json:"label,omitempty"`
	Values []string `json:"values,omitempty"`
	// Targets are the targets concerned, as application/environment/target.
	Targets []string `json:"targets,omitempty"`
	// Freeze is the freeze run into.
	Freeze *ScheduledFreeze `json:"freeze,omitempty"`
	// Start and End: when the conflict is expected.
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Message string    `json:"message"`
}

// LabelConflict is another active deployment whose targets share a value
// of a conflict label with a deployment's targets (see the plan step).
type LabelConflict struct {
	DeploymentID   string   `json:"deployment_id"`
	Application    string   `json:"application"`
	Environment    string   `json:"environment"`
	ReleaseVersion string   `json:"release_version"`
	Status         Status   `json:"status"`
	Label          string   `json:"label"`
	Values         []string `json:"values"`
	// Theirs and Ours are the targets that carry those values.
	Theirs []string `json:"theirs"`
	Ours   []string `json:"ours"`
}

// String says it in a line, for the plan and the timeline.
func (c LabelConflict) String() string {
	return fmt.Sprintf("%s (%s %s to %s, %s) also changes %s %s (its %s; here %s)", c.DeploymentID, c.Application,
		c.ReleaseVersion, c.Environment, c.Status, c.Label, strings.Join(c.Values, ", "), joinNames(c.Theirs), joinNames(c.Ours))
}

func joinNames(names []string) string {
	if len(names) > 10 {
		return strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
	}
	return strings.Join(names, ", ")
}

// SharedLabelValues returns the values of label that targets of both a and
// b carry (maps of target name → labels), sorted, with the names of the
// targets of each side that carry them.
func SharedLabelValues(label string, a, b map[string]map[string]string) (values, aNames, bNames []string) {
	if label == "" {
		return nil, nil, nil
	}
	av, bv := map[string]bool{}, map[string]bool{}
	for _, l := range a {
		if v := l[label]; v != "" {
			av[v] = true
		}
	}
	for _, l := range b {
		if v := l[label]; v != "" && av[v] {
			bv[v] = true
		}
	}
	if len(bv) == 0 {
		return nil, nil, nil
	}
	values = SortedKeys(bv)
	for _, n := range SortedKeys(a) {
		if bv[a[n][label]] {
			aNames = append(aNames, n)
		}
	}
	for _, n := range SortedKeys(b) {
		if bv[b[n][label]] {
			bNames = append(bNames, n)
		}
	}
	return values, aNames, bNames
}

// Occurrences returns the times the window is open that overlap [from, to), in UTC.
func (w ChangeWindow) Occurrences(from, to time.Time) []Interval {
	loc := time.UTC
	if w.Timezone != "" {
		if l, err := time.LoadLocation(w.Timezone); err == nil {
			loc = l
		}
	}
	startMin, ok1 := minutes(w.Start)
	endMin, ok2 := minutes(w.End)
	if !ok1 || !ok2 || !to.After(from) {
		return nil
	}
	var out []Interval
	local := from.In(loc)
	for d := -1; ; d++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+d, 0, 0, 0, 0, loc)
		if !day.Before(to) {
			break
		}
		if !w.hasDay(day.Weekday()) {
			continue
		}
		start := time.Date(day.Year(), day.Month(), day.Day(), startMin/60, startMin%60, 0, 0, loc)
		end := time.Date(day.Year(), day.Month(), day.Day(), endMin/60, endMin%60, 0, 0, loc)
		if !end.After(start) {
			end = time.Date(day.Year(), day.Month(), day.Day()+1, endMin/60, endMin%60, 0, 0, loc)
		}
		if start.Before(to) && end.After(from) {
			out = append(out, Interval{Start: start.UTC(), End: end.UTC()})
		}
	}
	return out
}

// ScheduleFacts are what a schedule is worked out from.
type ScheduleFacts struct {
	Now, From, To time.Time
	Applications  map[string]Application
	// Environments are the environments to show (their freezes and
	// windows), and those of every active deployment.
	Environments map[string]Environment
	// Targets are the targets of the environments, by environment id.
	Targets map[string][]Target
	// Active are the deployments not yet ended, of every application.
	Active []Deployment
	// RolloutStarts: when each deployment's rollout began (its first
	// deploying status), where known.
	RolloutStarts map[string]time.Time
	// Durations are the recent completed deployments' durations, by LaneKey.
	Durations map[string][]time.Duration
	// ApplicationID and EnvironmentID, when set, narrow what is listed;
	// conflicts with deployments outside them are still found.
	ApplicationID, EnvironmentID string
}

// LaneKey names a lane: one application to one environment.
func LaneKey(applicationID, environmentID string) string { return applicationID + "/" + environmentID }

// running reports whether a deployment in status s has begun changing
// targets (or observes them).
func running(s Status) bool {
	switch s {
	case StatusDeploying, StatusValidating, StatusRollingBack, StatusEarlyLifeSupport:
		return true
	}
	return false
}

// BuildSchedule works out the schedule: each active deployment's expected
// start (its rollout's start; or the latest of now, the end of the
// deployments ahead in its lane, not_before, and the next moment its
// environment's windows and freezes allow) and end (start + the estimate),
// the freezes and window occurrences in range, and the conflicts.
func BuildSchedule(f ScheduleFacts) Schedule {
	out := Schedule{From: f.From.UTC(), To: f.To.UTC(), GeneratedAt: f.Now.UTC(),
		Deployments: []ScheduledDeployment{}, Freezes: []ScheduledFreeze{}, ChangeWindows: []ScheduledWindow{}, Conflicts: []ScheduleConflict{}}
	now := f.Now.UTC()
	active := append([]Deployment(nil), f.Active...)
	sort.Slice(active, func(i, j int) bool { return active[i].ID < active[j].ID })
	laneEnd := map[string]time.Time{}
	laneLast := map[string]string{}
	byDeployment := map[string]ScheduledDeployment{}
	var all []ScheduledDeployment
	for _, d := range active {
		if d.Status.Terminal() {
			continue
		}
		env, ok := f.Environments[d.EnvironmentID]
		if !ok {
			continue
		}
		policy := env.Policy.V
		policy.Normalize()
		sd := ScheduledDeployment{ID: d.ID, ApplicationID: d.ApplicationID, Application: f.Applications[d.ApplicationID].Name,
			EnvironmentID: d.EnvironmentID, Environment: env.Name, ReleaseVersion: d.ReleaseVersion, Scenario: d.Scenario,
			Status: d.Status, RequestedBy: d.RequestedBy, Reason: d.Reason, Emergency: d.Emergency.V, NotBefore: d.NotBefore,
			Hold: d.Hold.V, labels: map[string]map[string]string{}, lane: LaneKey(d.ApplicationID, d.EnvironmentID)}
		if sd.Application == "" {
			sd.Application = d.ApplicationID
		}
		// Its targets: the plan's, else (not planned yet) the environment's.
		byID := map[string]Target{}
		for _, t := range f.Targets[d.EnvironmentID] {
			byID[t.ID] = t
		}
		strategy := policy.Strategy
		if d.Strategy.V != nil {
			strategy = *d.Strategy.V
		}
		waves := 0
		if pl := d.Plan.V; pl != nil && len(pl.Waves) > 0 {
			waves = len(pl.Waves)
			strategy = pl.Strategy
			for _, wave := range pl.Waves {
				for _, t := range wave {
					sd.Targets = append(sd.Targets, t.Name)
					sd.labels[t.Name] = byID[t.ID].Labels.V
				}
			}
		} else {
			for _, t := range f.Targets[d.EnvironmentID] {
				sd.Targets = append(sd.Targets, t.Name)
				sd.labels[t.Name] = t.Labels.V
			}
			waves = WaveCount(strategy, len(sd.Targets))
		}
		sort.Strings(sd.Targets)
		if sd.Targets == nil {
			sd.Targets = []string{}
		}
		lane := sd.Application + " to " + env.Name
		sd.Duration = EstimateDuration(f.Durations[sd.lane], policy, strategy, waves, lane)
		est := sd.Duration.Expected.D()

		rolloutStart, started := f.RolloutStarts[d.ID]
		switch {
		case running(d.Status) || (d.Status == StatusPaused && started):
			if !started {
				rolloutStart = d.UpdatedAt
			}
			sd.ExpectedStart, sd.StartBasis = rolloutStart.UTC(), StartStarted
			sd.StartReason = "its rollout began at " + rolloutStart.UTC().Format(time.RFC3339)
		default:
			t, basis, reason := now, StartNow, "nothing holds it"
			switch d.Status {
			case StatusPlanning:
				basis, reason = StartApproval, "the earliest: it is being planned, then waits for approval"
			case StatusAwaitingApproval:
				basis, reason = StartApproval, "the earliest: it waits for approval"
			case StatusPaused:
				basis, reason = StartPaused, "paused before its rollout: the earliest is when it is resumed"
			}
			if end, ok := laneEnd[sd.lane]; ok && end.After(t) {
				t, basis, reason = end, StartQueued, "after "+laneLast[sd.lane]+", ahead of it in the lane of "+lane+", is expected to end"
			}
			if pl := d.Plan.V; pl != nil && d.Status == StatusQueued {
				// on_conflict: wait: after the conflicting deployments it waits for.
				for _, id := range pl.AheadInQueue {
					if o, ok := byDeployment[id]; ok && o.lane != sd.lane && o.ExpectedEnd.After(t) {
						t, basis, reason = o.ExpectedEnd, StartQueued, "after "+id+" ("+o.Application+" to "+o.Environment+
							"), which it waits for (on_conflict: wait), is expected to end"
					}
				}
			}
			if d.NotBefore != nil && d.NotBefore.After(t) {
				t, basis, reason = d.NotBefore.UTC(), StartNotBefore, "not before "+d.NotBefore.UTC().Format(time.RFC3339)+", as requested"
			}
			if d.Emergency.V == nil {
				if hold := policy.HoldAt(t); hold != nil {
					open := policy.NextOpen(t)
					switch {
					case open.IsZero():
						basis, reason = StartUnknown, "no change window of "+env.Name+" opens within 60 days ("+hold.Reason+")"
					case hold.Kind == HoldFreeze:
						t, basis, reason = open.UTC(), StartFreeze, "the end of the "+hold.Reason
					default:
						t, basis, reason = open.UTC(), StartWindow, "the next change window of "+env.Name+" ("+policy.describeWindows()+")"
					}
				}
			} else if hold := policy.HoldAt(t); hold != nil {
				reason += "; an emergency change: passes " + hold.Reason
			}
			sd.ExpectedStart, sd.StartBasis, sd.StartReason = t.UTC(), basis, reason
		}
		sd.ExpectedEnd = sd.ExpectedStart.Add(est)
		sd.EndReason = "the expected start + " + est.String() + " (" + sd.Duration.Basis + ")"
		switch {
		case d.Status == StatusEarlyLifeSupport && d.ELSEndsAt != nil && d.ELSEndsAt.After(now):
			sd.ExpectedEnd, sd.EndReason = d.ELSEndsAt.UTC(), "its early life support ends then"
		case !sd.ExpectedEnd.After(now):
			sd.ExpectedEnd, sd.EndReason = now, "it has run longer than expected ("+est.String()+"): it may end any time"
		}
		laneEnd[sd.lane], laneLast[sd.lane] = sd.ExpectedEnd, sd.ID
		byDeployment[sd.ID] = sd
		all = append(all, sd)
	}

	listed := func(appID, envID string) bool {
		return (f.ApplicationID == "" || f.ApplicationID == appID) && (f.EnvironmentID == "" || f.EnvironmentID == envID)
	}
	inRange := func(start, end time.Time) bool { return start.Before(f.To) && end.After(f.From) }
	for _, d := range all {
		if listed(d.ApplicationID, d.EnvironmentID) && inRange(d.ExpectedStart, d.ExpectedEnd) {
			out.Deployments = append(out.Deployments, d)
		}
	}

	// Freezes and windows of the environments shown, by application and name.
	envs := make([]Environment, 0, len(f.Environments))
	for _, e := range f.Environments {
		if listed(e.ApplicationID, e.ID) {
			envs = append(envs, e)
		}
	}
	sort.Slice(envs, func(i, j int) bool {
		ai, aj := f.Applications[envs[i].ApplicationID].Name, f.Applications[envs[j].ApplicationID].Name
		if ai != aj {
			return ai < aj
		}
		if envs[i].Position != envs[j].Position {
			return envs[i].Position < envs[j].Position
		}
		return envs[i].Name < envs[j].Name
	})
	for _, e := range envs {
		app := f.Applications[e.ApplicationID].Name
		for _, fr := range e.Policy.V.Freezes {
			if inRange(fr.Start, fr.End) {
				out.Freezes = append(out.Freezes, ScheduledFreeze{ApplicationID: e.ApplicationID, Application: app,
					EnvironmentID: e.ID, Environment: e.Name, Start: fr.Start.UTC(), End: fr.End.UTC(), Reason: fr.Reason})
			}
		}
		for _, w := range e.Policy.V.ChangeWindows {
			tz := w.Timezone
			if tz == "" {
				tz = "UTC"
			}
			occ := w.Occurrences(f.From, f.To)
			if occ == nil {
				occ = []Interval{}
			}
			out.ChangeWindows = append(out.ChangeWindows, ScheduledWindow{ApplicationID: e.ApplicationID, Application: app,
				EnvironmentID: e.ID, Environment: e.Name, Days: w.Days, Start: w.Start, End: w.End, Timezone: tz, Occurrences: occ})
		}
	}

	// Conflicts: overlaps on shared label values, across applications, and
	// runs into freezes.
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			if a.lane == b.lane || !(listed(a.ApplicationID, a.EnvironmentID) || listed(b.ApplicationID, b.EnvironmentID)) {
				continue // one lane never runs two at once
			}
			start, end := later(a.ExpectedStart, b.ExpectedStart), earlier(a.ExpectedEnd, b.ExpectedEnd)
			if !start.Before(end) || !inRange(start, end) {
				continue
			}
			for _, label := range ConflictLabels(f.Environments[a.EnvironmentID].Policy.V, f.Environments[b.EnvironmentID].Policy.V) {
				values, an, bn := SharedLabelValues(label, a.labels, b.labels)
				if len(values) == 0 {
					continue
				}
				c := ScheduleConflict{Kind: ConflictOverlap, Deployments: []string{a.ID, b.ID}, Label: label, Values: values,
					Start: start, End: end}
				for _, n := range an {
					c.Targets = append(c.Targets, a.Application+"/"+a.Environment+"/"+n)
				}
				for _, n := range bn {
					c.Targets = append(c.Targets, b.Application+"/"+b.Environment+"/"+n)
				}
				c.Message = fmt.Sprintf("%s (%s) and %s (%s) are expected to run at the same time, from %s to %s, on targets that share %s %s",
					a.ID, a.Title(), b.ID, b.Title(), start.Format(time.RFC3339), end.Format(time.RFC3339), label, strings.Join(values, ", "))
				out.Conflicts = append(out.Conflicts, c)
			}
		}
	}
	for _, d := range all {
		if !listed(d.ApplicationID, d.EnvironmentID) || d.Emergency != nil {
			continue // an emergency change passes freezes
		}
		env := f.Environments[d.EnvironmentID]
		for _, fr := range env.Policy.V.Freezes {
			start, end := later(d.ExpectedStart, fr.Start.UTC()), earlier(d.ExpectedEnd, fr.End.UTC())
			if !start.Before(end) || !inRange(start, end) {
				continue
			}
			sf := ScheduledFreeze{ApplicationID: d.ApplicationID, Application: d.Application, EnvironmentID: d.EnvironmentID,
				Environment: d.Environment, Start: fr.Start.UTC(), End: fr.End.UTC(), Reason: fr.Reason}
			what := "a freeze of " + d.Environment
			if strings.TrimSpace(fr.Reason) != "" {
				what += " (" + fr.Reason + ")"
			}
			out.Conflicts = append(out.Conflicts, ScheduleConflict{Kind: ConflictFreeze, Deployments: []string{d.ID}, Freeze: &sf,
				Start: start, End: end, Message: fmt.Sprintf("%s (%s) is expected to run until %s, into %s from %s to %s",
					d.ID, d.Title(), d.ExpectedEnd.Format(time.RFC3339), what,
					fr.Start.UTC().Format(time.RFC3339), fr.End.UTC().Format(time.RFC3339))})
		}
	}
	sort.SliceStable(out.Conflicts, func(i, j int) bool { return out.Conflicts[i].Start.Before(out.Conflicts[j].Start) })
	return out
}

// ConflictLabels are the labels whose shared values make two deployments
// conflict: those either environment's policy names.
func ConflictLabels(a, b Policy) []string {
	var out []string
	for _, l := range []string{a.ConflictLabel, b.ConflictLabel} {
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ICalendar renders the schedule as an iCalendar feed (RFC 5545) for
// calendar clients: one event per deployment (its expected start and
// end), freeze, change window occurrence and conflict, in UTC, with CRLF
// line endings and lines folded at 75 octets. link, when set, gives a
// deployment's page.
func (s Schedule) ICalendar(link func(deploymentID string) string) []byte {
	w := &icalWriter{}
	stamp := icalTime(s.GeneratedAt)
	w.line("BEGIN", "VCALENDAR")
	w.line("VERSION", "2.0")
	w.line("PRODID", "-//Transit//Forward schedule of change//EN")
	w.line("CALSCALE", "GREGORIAN")
	w.line("METHOD", "PUBLISH")
	w.text("X-WR-CALNAME", "Transit: forward schedule of change")
	w.text("X-WR-CALDESC", fmt.Sprintf("Deployments, freezes, change windows and conflicts from %s to %s",
		s.From.Format(time.RFC3339), s.To.Format(time.RFC3339)))
	event := func(uid string, start, end time.Time, summary, description, category, status, transp, url string) {
		if !end.After(start) {
			end = start.Add(time.Minute)
		}
		w.line("BEGIN", "VEVENT")
		w.text("UID", uid)
		w.line("DTSTAMP", stamp)
		w.line("DTSTART", icalTime(start))
		w.line("DTEND", icalTime(end))
		w.text("SUMMARY", summary)
		w.text("DESCRIPTION", description)
		w.text("CATEGORIES", category)
		if status != "" {
			w.line("STATUS", status)
		}
		w.line("TRANSP", transp)
		if url != "" {
			w.line("URL", url)
		}
		w.line("END", "VEVENT")
	}
	conflictsOf := map[string][]string{}
	for _, c := range s.Conflicts {
		for _, id := range c.Deployments {
			conflictsOf[id] = append(conflictsOf[id], c.Message)
		}
	}
	for _, d := range s.Deployments {
		status := "TENTATIVE"
		if d.Status != StatusPlanning && d.Status != StatusAwaitingApproval && d.Status != StatusQueued {
			status = "CONFIRMED"
		}
		lines := []string{
			fmt.Sprintf("%s, requested by %s", strings.ReplaceAll(string(d.Status), "_", " "), d.RequestedBy),
			"Expected start: " + d.StartReason,
			"Expected end: " + d.EndReason,
			"Expected duration: " + d.Duration.Method,
			"Targets: " + joinNames(d.Targets),
		}
		if d.Emergency != nil {
			lines = append([]string{"An " + d.Emergency.String() + " (passes freezes and closed change windows)"}, lines...)
		}
		if d.Reason != "" {
			lines = append(lines, "Reason: "+d.Reason)
		}
		for _, c := range conflictsOf[d.ID] {
			lines = append(lines, "CONFLICT: "+c)
		}
		url := ""
		if link != nil {
			url = link(d.ID)
			lines = append(lines, url)
		}
		event(d.ID+"@transit", d.ExpectedStart, d.ExpectedEnd, d.Title()+" ("+strings.ReplaceAll(string(d.Status), "_", " ")+")",
			strings.Join(lines, "\n"), "DEPLOYMENT", status, "OPAQUE", url)
	}
	for _, f := range s.Freezes {
		summary := fmt.Sprintf("Freeze: %s %s", f.Application, f.Environment)
		if strings.TrimSpace(f.Reason) != "" {
			summary += " (" + f.Reason + ")"
		}
		event(fmt.Sprintf("freeze-%s-%s-%s@transit", f.EnvironmentID, icalTime(f.Start), icalTime(f.End)), f.Start, f.End, summary,
			fmt.Sprintf("No rollout of %s may run in %s (emergency changes excepted).", f.Application, f.Environment),
			"FREEZE", "CONFIRMED", "OPAQUE", "")
	}
	for i, cw := range s.ChangeWindows {
		for _, o := range cw.Occurrences {
			event(fmt.Sprintf("window-%s-%d-%s@transit", cw.EnvironmentID, i, icalTime(o.Start)), o.Start, o.End,
				fmt.Sprintf("Change window: %s %s", cw.Application, cw.Environment),
				fmt.Sprintf("Rollouts of %s to %s may run: %s %s-%s %s.", cw.Application, cw.Environment,
					strings.Join(cw.Days, ","), cw.Start, cw.End, cw.Timezone),
				"CHANGE-WINDOW", "CONFIRMED", "TRANSPARENT", "")
		}
	}
	for _, c := range s.Conflicts {
		uid := "conflict-" + c.Kind + "-" + strings.Join(c.Deployments, "-")
		summary := "Conflict: " + strings.Join(c.Deployments, " and ")
		switch c.Kind {
		case ConflictOverlap:
			uid += "-" + c.Label
			summary += " share " + c.Label + " " + strings.Join(c.Values, ", ")
		case ConflictFreeze:
			uid += "-" + icalTime(c.Freeze.Start)
			summary += " runs into a freeze"
		}
		event(uid+"@transit", c.Start, c.End, summary, c.Message, "CONFLICT", "", "TRANSPARENT", "")
	}
	w.line("END", "VCALENDAR")
	return []byte(w.b.String())
}

// icalTime writes t as an RFC 5545 UTC date-time: 20261220T000000Z.
func icalTime(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// icalWriter writes content lines: CRLF, folded at 75 octets.
type icalWriter struct{ b strings.Builder }

// line writes name:value, value as it is (a date-time, a URI, a token).
func (w *icalWriter) line(name, value string) { w.fold(name + ":" + value) }

// text writes name:value with value escaped as TEXT.
func (w *icalWriter) text(name, value string) { w.fold(name + ":" + ICalEscape(value)) }

// fold writes one content line, folded so that no line is longer than 75
// octets (a continuation starts with a space), never inside a UTF-8
// character.
func (w *icalWriter) fold(l string) {
	limit := 75
	for len(l) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(l[cut]) {
			cut--
		}
		w.b.WriteString(l[:cut])
		w.b.WriteString("\r\n ")
		l = l[cut:]
		limit = 74 // the leading space counts
	}
	w.b.WriteString(l)
	w.b.WriteString("\r\n")
}

// ICalEscape escapes a TEXT value (RFC 5545 3.3.11): a backslash, a
// semicolon and a comma are escaped, a newline is written \n, and other
// control characters are dropped.
func ICalEscape(s string) string {
	var b strings.Builder
	s = strings.ReplaceAll(s, "\r\n", "\n")
	for _, r := range s {
		switch {
		case r == '\\' || r == ';' || r == ',':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n' || r == '\r':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
