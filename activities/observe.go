package activities

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
)

// ObserveInput runs the probes on every target until Until.
type ObserveInput struct {
	DeploymentID string              `json:"deployment_id"`
	Application  string              `json:"application"`
	Environment  string              `json:"environment"`
	Targets      []models.PlanTarget `json:"targets"`
	Release      ReleaseRef          `json:"release"`
	Probes       []models.ProbeSpec  `json:"probes"`
	Until        time.Time           `json:"until"`
	// StopOnBreach returns at the first breach (before the point of no
	// return); otherwise a breach opens an incident and observing goes on.
	StopOnBreach     bool   `json:"stop_on_breach"`
	IncidentSeverity string `json:"incident_severity"`
}

// ObserveResult counts the probe runs. It is also the activity's heartbeat,
// so that a retried attempt goes on from the counts of the last one.
type ObserveResult struct {
	Runs   int `json:"runs"`
	Passed int `json:"passed"`
	// Failed counts runs that measured and missed the threshold.
	Failed int `json:"failed"`
	// Errors counts runs that could not measure (the monitoring system down,
	// an empty answer): no evidence either way, never a breach.
	Errors   int    `json:"errors"`
	Breached bool   `json:"breached"`
	Breach   string `json:"breach,omitempty"`
	// Unobservable: before the point of no return, a probe could not measure
	// on a target for error_tolerance runs in a row. The deployment's health
	// is unknown, which is neither a breach nor a pass: the workflow decides.
	Unobservable bool   `json:"unobservable,omitempty"`
	Why          string `json:"why,omitempty"`
	// Incidents opened after the point of no return.
	Incidents int `json:"incidents"`
	// Streaks are the runs in a row that missed (or failed to measure), per
	// probe and target.
	Streaks map[string]Streak `json:"streaks,omitempty"`
}

// Streak is how many runs in a row of one probe on one target missed the
// threshold, or could not measure.
type Streak struct {
	Misses int `json:"misses,omitempty"`
	Errors int `json:"errors,omitempty"`
}

// Summary says what was observed: "12 probe runs: 10 passed, 1 failed, 1
// could not measure".
func (r ObserveResult) Summary() string {
	s := fmt.Sprintf("%s: %d passed, %d failed", models.Plural(r.Runs, "probe run"), r.Passed, r.Failed)
	if r.Errors > 0 {
		s += fmt.Sprintf(", %d could not measure", r.Errors)
	}
	return s
}

// Add sums two windows' counts.
func (r ObserveResult) Add(o ObserveResult) ObserveResult {
	r.Runs += o.Runs
	r.Passed += o.Passed
	r.Failed += o.Failed
	r.Errors += o.Errors
	r.Incidents += o.Incidents
	return r
}

// observeParallel bounds the probe runs under way at once.
const observeParallel = 8

// observeHeartbeatEvery is how often Observe heartbeats its counts, whatever
// its probes are doing: well inside the one-minute heartbeat timeout.
const observeHeartbeatEvery = 5 * time.Second

// Observe runs each probe on each target at the probe's interval until
// Until: one long activity that heartbeats its counts, so that a long window
// costs a few history events, not one per probe run. The runs of a round go
// in parallel (at most 8 at once) and never past Until.
func (a *Activities) Observe(ctx context.Context, in ObserveInput) (ObserveResult, error) {
	o := &observer{a: a, in: in}
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &o.res)
	}
	if o.res.Streaks == nil {
		o.res.Streaks = map[string]Streak{}
	}
	stop := heartbeatEvery(ctx, observeHeartbeatEvery, func() []any { return []any{o.snapshot()} })
	defer stop()
	for _, pt := range in.Targets {
		var t *models.Target
		err := a.storeCall(ctx, "load target "+pt.Name, func() (err error) {
			t, err = a.Store.GetTarget(ctx, pt.ID)
			return err
		})
		if err != nil {
			return o.snapshot(), a.planErr(err)
		}
		o.targets = append(o.targets, driverTarget(in.Application, in.Environment, *t))
	}
	return o.run(ctx)
}

type observer struct {
	a       *Activities
	in      ObserveInput
	targets []drivers.Target

	mu  sync.Mutex
	res ObserveResult
}

func (o *observer) snapshot() ObserveResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.res
	r.Streaks = make(map[string]Streak, len(o.res.Streaks))
	for k, v := range o.res.Streaks {
		r.Streaks[k] = v
	}
	return r
}

func (o *observer) run(ctx context.Context) (ObserveResult, error) {
	clock := o.a.clock()
	prober := drivers.Prober{Now: clock.Now}
	next := make([]time.Time, len(o.in.Probes))
	for i := range next {
		next[i] = clock.Now()
	}
	for {
		now := clock.Now()
		if !now.Before(o.in.Until) || len(o.in.Probes) == 0 || len(o.targets) == 0 {
			return o.snapshot(), nil
		}
		var due []int
		for i := range o.in.Probes {
			if !now.Before(next[i]) {
				due = append(due, i)
			}
		}
		if len(due) > 0 {
			done, err := o.round(ctx, prober, due)
			if err != nil || done {
				return o.snapshot(), err
			}
			heartbeat(ctx, o.snapshot())
		}
		for _, i := range due {
			// Fixed rate: every interval from the start, so the count of
			// runs does not drift; a run that fell more than an interval
			// behind is not made up for.
			next[i] = next[i].Add(o.in.Probes[i].Interval.D())
			if next[i].Before(now) {
				next[i] = now.Add(o.in.Probes[i].Interval.D())
			}
		}
		wake := o.in.Until
		for _, n := range next {
			if n.Before(wake) {
				wake = n
			}
		}
		if rest := wake.Sub(clock.Now()); rest > 0 {
			if err := clock.Sleep(ctx, rest); err != nil {
				return o.snapshot(), err
			}
		}
	}
}

// round runs the due probes on every target in parallel, each run bounded by
// the end of the window, and counts them in a fixed order. done says the
// activity must return (a breach or an unobservable deployment before the
// point of no return).
func (o *observer) round(ctx context.Context, prober drivers.Prober, due []int) (done bool, err error) {
	rctx, cancel := context.WithDeadline(ctx, o.in.Until)
	defer cancel()
	type run struct {
		probe, target int
		res           drivers.ProbeResult
	}
	runs := make([]run, 0, len(due)*len(o.targets))
	for _, p := range due {
		for t := range o.targets {
			runs = append(runs, run{probe: p, target: t})
		}
	}
	sem := make(chan struct{}, observeParallel)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func(r *run) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r.res = prober.Run(rctx, o.in.Probes[r.probe], o.targets[r.target], driverRelease(o.in.Release))
		}(&runs[i])
	}
	wg.Wait()
	if ctx.Err() != nil {
		return true, ctx.Err()
	}
	cutOff := rctx.Err() != nil // the window ended during the round
	for _, r := range runs {
		if cutOff && !r.res.Passed {
			continue // cut off by the end of the window: not a measurement
		}
		if stop, err := o.count(ctx, o.in.Probes[r.probe], o.targets[r.target], r.res); stop || err != nil {
			return true, err
		}
	}
	return false, nil
}

// count adds one run to the counts and acts on a streak that reached its
// probe's tolerance.
func (o *observer) count(ctx context.Context, spec models.ProbeSpec, t drivers.Target, r drivers.ProbeResult) (stop bool, err error) {
	key := spec.Name + "/" + t.Name
	tolerance, errTolerance := max(1, spec.Tolerance), max(1, spec.ErrorTolerance)
	o.mu.Lock()
	o.res.Runs++
	st := o.res.Streaks[key]
	var breach, blind string
	switch {
	case r.Error:
		o.res.Errors++
		st.Errors++
		if st.Errors >= errTolerance {
			blind = fmt.Sprintf("probe %s could not measure on %s for %s: %s",
				spec.Name, t.Name, models.Plural(st.Errors, "run")+" in a row", r.Message)
		}
	case r.Passed:
		o.res.Passed++
		st = Streak{}
	default:
		o.res.Failed++
		st.Errors = 0
		st.Misses++
		if st.Misses >= tolerance {
			breach = fmt.Sprintf("probe %s breached on %s", spec.Name, t.Name)
			if tolerance > 1 {
				breach += fmt.Sprintf(" (%d runs in a row)", st.Misses)
			}
			breach += ": " + r.Message
		}
	}
	o.res.Streaks[key] = st
	if o.in.StopOnBreach {
		switch {
		case breach != "":
			o.res.Breached, o.res.Breach = true, breach
		case blind != "":
			o.res.Unobservable, o.res.Why = true, blind
		}
	}
	o.mu.Unlock()
	if o.in.StopOnBreach {
		return breach != "" || blind != "", nil
	}
	// After the point of no return: fix forward. One incident per probe
	// (and one when it cannot measure), whatever the number of runs.
	switch {
	case breach != "":
		return false, o.incident(ctx, spec.Name, "probe:"+spec.Name, breach)
	case blind != "":
		return false, o.incident(ctx, spec.Name+"-unobservable", "probe:"+spec.Name, "not observable: "+blind)
	}
	return false, nil
}

// incident opens an incident once (its id is derived from the deployment
// and the probe), with a title cut to fit: the counts are in the heartbeat
// already, and an over-long message must not lose the breach.
func (o *observer) incident(ctx context.Context, name, source, title string) error {
	inc := &models.Incident{ID: "inc_" + o.in.DeploymentID + "_" + strings.ReplaceAll(name, " ", "_"),
		DeploymentID: o.in.DeploymentID, Severity: o.in.IncidentSeverity, Source: source,
		Title: models.Cut(models.CleanText(title), models.IncidentTitleMax)}
	if models.SeverityRank(inc.Severity) < 0 {
		inc.Severity = models.DefaultBlockingSeverity
	}
	var created bool
	err := o.a.storeCall(ctx, "open incident", func() (err error) {
		created, err = o.a.Store.CreateIncidentOnce(ctx, actor(o.in.DeploymentID), inc)
		return err
	})
	if err != nil {
		return storeErr(fmt.Errorf("open incident for %s: %w", title, err))
	}
	if created {
		o.mu.Lock()
		o.res.Incidents++
		o.mu.Unlock()
	}
	return nil
}

// ExitInput asks whether early life support's exit criteria are met.
type ExitInput struct {
	DeploymentID string              `json:"deployment_id"`
	Criteria     models.ExitCriteria `json:"criteria"`
	ProbeRuns    int                 `json:"probe_runs"`
	ProbePassed  int                 `json:"probe_passed"`
	ProbeFailed  int                 `json:"probe_failed"`
	ProbeErrors  int                 `json:"probe_errors"`
	// Probes is how many probes the policy runs; with any, a window in
	// which none produced a value is not evidence of health.
	Probes int `json:"probes"`
}

// ExitResult says whether the deployment is handed over, and why not.
type ExitResult struct {
	Met     bool     `json:"met"`
	Reasons []string `json:"reasons"`
}

// ExitCriteria checks open incidents at or above the blocking severity and
// the probe success ratio over the runs that measured something.
func (a *Activities) ExitCriteria(ctx context.Context, in ExitInput) (ExitResult, error) {
	incidents, err := a.Store.ListIncidents(ctx, in.DeploymentID)
	if err != nil {
		return ExitResult{}, err
	}
	res := ExitResult{Met: true, Reasons: []string{}}
	limit := models.SeverityRank(in.Criteria.MaxOpenIncidentSeverity)
	for _, inc := range incidents {
		if inc.Status == models.IncidentOpen && models.SeverityRank(inc.Severity) <= limit {
			res.Met = false
			res.Reasons = append(res.Reasons, fmt.Sprintf("open %s incident %s: %s", inc.Severity, inc.ID, inc.Title))
		}
	}
	measured := in.ProbePassed + in.ProbeFailed
	if in.Probes == 0 && in.ProbeFailed == 0 && in.ProbeErrors == 0 {
		measured = in.ProbeRuns // as deployments started before the counts were split report them
	}
	switch {
	case in.Probes > 0 && measured == 0:
		res.Met = false
		res.Reasons = append(res.Reasons, fmt.Sprintf("no probe measured anything (%s, %d could not measure): health is unknown",
			models.Plural(in.ProbeRuns, "run"), in.ProbeErrors))
	case measured > 0:
		ratio := float64(in.ProbePassed) / float64(measured)
		if ratio < in.Criteria.MinProbeSuccessRatio {
			res.Met = false
			res.Reasons = append(res.Reasons, fmt.Sprintf("probe success ratio %.3f is below %.3f (%d of %d measured runs passed)",
				ratio, in.Criteria.MinProbeSuccessRatio, in.ProbePassed, measured))
		}
	}
	return res, nil
}

// CommitInput makes a release the last known good of targets.
type CommitInput struct {
	DeploymentID string   `json:"deployment_id"`
	TargetIDs    []string `json:"target_ids"`
	ReleaseID    string   `json:"release_id"`
	Version      string   `json:"version"`
}

// CommitLastKnownGood records the release (or none, for a decommission) as
// each target's last known good.
func (a *Activities) CommitLastKnownGood(ctx context.Context, in CommitInput) error {
	return storeErr(a.Store.CommitLastKnownGood(ctx, actor(in.DeploymentID), in.DeploymentID, in.TargetIDs, in.ReleaseID, in.Version))
}
