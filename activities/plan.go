package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transit-hq/transit/drivers"
	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// PlanResult is the plan and what the workflow needs of it.
type PlanResult struct {
	Plan      models.Plan       `json:"plan"`
	Artifacts []models.Artifact `json:"artifacts"`
}

// Plan resolves the targets, builds the waves, checks the entry criteria
// and that every target answers, scores the risk, and finds the deployments
// ahead in the lane. Problems with the request are non-retryable.
func (a *Activities) Plan(ctx context.Context, in models.DeploymentInput) (PlanResult, error) {
	defer keepAlive(ctx)()
	app, err := a.Store.GetApplication(ctx, in.ApplicationID)
	if err != nil {
		return PlanResult{}, a.planErr(err)
	}
	env, err := a.Store.GetEnvironment(ctx, in.EnvironmentID)
	if err != nil {
		return PlanResult{}, a.planErr(err)
	}
	rel, err := a.Store.GetRelease(ctx, in.ReleaseID)
	if err != nil {
		return PlanResult{}, a.planErr(err)
	}
	targets, err := a.allTargets(ctx, env.ID)
	if err != nil {
		return PlanResult{}, err
	}
	if len(targets) == 0 {
		return PlanResult{}, nonRetryable(ErrTypeBadPlan, nil, "environment %s has no targets: add targets before deploying to it", env.Name)
	}
	ids := make([]string, len(targets))
	for i, t := range targets {
		ids[i] = t.ID
	}
	states, err := a.Store.TargetStates(ctx, ids)
	if err != nil {
		return PlanResult{}, err
	}

	knownErrs, err := a.knownErrors(ctx, rel, in.AcknowledgedKnownErrors)
	if err != nil {
		return PlanResult{}, err
	}
	policy := env.Policy.V
	policy.Normalize()
	strategy := policy.Strategy
	if in.Strategy != nil {
		strategy = *in.Strategy
	}
	plan := models.Plan{
		Application:     app.Name,
		OwnerTeam:       app.OwnerTeam,
		Emergency:       in.Emergency,
		KnownErrors:     knownErrs,
		Environment:     env.Name,
		ReleaseVersion:  rel.Version,
		Scenario:        in.Scenario,
		Strategy:        strategy,
		Policy:          policy,
		CurrentVersions: map[string]string{},
		TargetsPerRun:   a.targetsPerRun(),
	}

	// Entry criteria.
	failed := []string{}
	for _, k := range models.SortedKeys(rel.EntryCriteria.V) {
		c := models.Criterion{Name: k, Value: rel.EntryCriteria.V[k], Passed: true}
		if criterionFails(c.Value) {
			c.Passed, c.Reason = false, fmt.Sprintf("%q is not a passing value", c.Value)
			failed = append(failed, k+"="+c.Value)
		}
		plan.EntryCriteria = append(plan.EntryCriteria, c)
	}
	if len(failed) > 0 {
		return PlanResult{Plan: plan}, nonRetryable(ErrTypeEntryCriteria, nil,
			"release %s does not meet its entry criteria: %s", rel.Version, strings.Join(failed, ", "))
	}

	// Reachability: ask every target's driver what runs there.
	current, unreachable := a.currentVersions(ctx, app.Name, env.Name, targets)
	if len(unreachable) > 0 {
		return PlanResult{Plan: plan}, nonRetryable(ErrTypeUnreachable, nil,
			"%d of %d targets cannot be reached: %s", len(unreachable), len(targets), strings.Join(unreachable, "; "))
	}
	plan.CurrentVersions = current
	running := make([]string, 0, len(current))
	for _, t := range targets {
		running = append(running, current[t.Name])
	}
	if plan.Scenario == "" {
		plan.Scenario = models.InferScenario(running, rel.Version)
	}

	// A decommission touches only the targets where the release runs now.
	if plan.Scenario == models.ScenarioDecommission {
		var keep []models.Target
		for _, t := range targets {
			if current[t.Name] == rel.Version {
				keep = append(keep, t)
			} else {
				plan.Untouched = append(plan.Untouched, t.Name)
			}
		}
		if len(keep) == 0 {
			return PlanResult{Plan: plan}, nonRetryable(models.ErrTypeRefused, nil,
				"nothing to decommission: release %s runs on none of the %s of %s (%s)",
				rel.Version, models.Plural(len(targets), "target"), env.Name, whatRunsWhere(targets, current))
		}
		targets = keep
	}

	pts := make([]models.PlanTarget, len(targets))
	for i, t := range targets {
		pts[i] = models.PlanTarget{ID: t.ID, Name: t.Name, Driver: t.Driver,
			CurrentVersion: current[t.Name], LastKnownGoodID: states[t.ID].LastKnownGoodID,
			StepTimeout: models.Duration(models.StepTimeout(t.Driver, t.Config.V))}
	}
	plan.Waves = BuildWaves(pts, strategy)

	failedRecent, totalRecent, err := a.Store.RecentOutcomes(ctx, env.ID, 10)
	if err != nil {
		return PlanResult{}, err
	}
	lastPosition, err := a.isLastEnvironment(ctx, env)
	if err != nil {
		return PlanResult{}, err
	}
	plan.Risk = AssessRisk(RiskFacts{
		Scenario: plan.Scenario, Targets: len(targets), Artifacts: len(rel.Artifacts.V),
		FromVersions: current, ToVersion: rel.Version, Production: lastPosition,
		EnvironmentName: env.Name, RecentFailed: failedRecent, RecentTotal: totalRecent,
	})

	ahead, err := a.Store.LaneAhead(ctx, &models.Deployment{ID: in.DeploymentID, ApplicationID: app.ID, EnvironmentID: env.ID})
	if err != nil {
		return PlanResult{}, err
	}
	plan.AheadInQueue = ahead
	if plan.AheadInQueue == nil {
		plan.AheadInQueue = []string{}
	}
	// Other active deployments on targets that share a value of a conflict
	// label: warned, refused or waited for (activities/conflicts.go).
	if err := a.checkConflicts(ctx, in, &plan); err != nil {
		if len(plan.Conflicts) > 0 { // a refusal: the plan shows what it conflicts with
			_ = a.Store.SavePlan(ctx, actor(in.DeploymentID), in.DeploymentID, &plan)
		}
		return PlanResult{Plan: plan}, err
	}

	rows := []models.DeploymentTarget{}
	for w, wave := range plan.Waves {
		for _, t := range wave {
			rows = append(rows, models.DeploymentTarget{DeploymentID: in.DeploymentID, TargetID: t.ID, TargetName: t.Name,
				Wave: w + 1, Status: models.TargetPending, FromVersion: t.CurrentVersion, ToVersion: toVersion(plan.Scenario, rel.Version)})
		}
	}
	if err := a.Store.UpsertDeploymentTargets(ctx, rows); err != nil {
		return PlanResult{}, storeErr(err)
	}
	// The plan is stored here, once, so that the workflow does not carry it
	// through its history a second time to record it.
	if err := a.Store.SavePlan(ctx, actor(in.DeploymentID), in.DeploymentID, &plan); err != nil {
		return PlanResult{}, storeErr(err)
	}
	return PlanResult{Plan: plan, Artifacts: rel.Artifacts.V}, nil
}

func (a *Activities) targetsPerRun() int {
	if a.TargetsPerRun > 0 {
		return a.TargetsPerRun
	}
	return DefaultTargetsPerRun
}

// whatRunsWhere says which version runs on which targets: "2.0.0 on
// prod-01, prod-02; nothing on prod-03", naming at most 10 targets a version.
func whatRunsWhere(targets []models.Target, current map[string]string) string {
	byVersion := map[string][]string{}
	for _, t := range targets {
		byVersion[current[t.Name]] = append(byVersion[current[t.Name]], t.Name)
	}
	var parts []string
	versions := models.SortedKeys(byVersion)
	if len(versions) > 0 && versions[0] == "" {
		versions = append(versions[1:], "") // "nothing" last
	}
	for _, v := range versions {
		names := byVersion[v]
		list := strings.Join(names[:min(len(names), 10)], ", ")
		if len(names) > 10 {
			list += fmt.Sprintf(" and %d more", len(names)-10)
		}
		what := v
		if v == "" {
			what = "nothing"
		}
		parts = append(parts, what+" on "+list)
	}
	return strings.Join(parts, "; ")
}

func toVersion(scenario, version string) string {
	if scenario == models.ScenarioDecommission {
		return ""
	}
	return version
}

func (a *Activities) planErr(err error) error {
	if errors.Is(err, models.ErrNotFound) {
		return nonRetryable(ErrTypeBadPlan, err, "%v", err)
	}
	return err
}

func (a *Activities) allTargets(ctx context.Context, envID string) ([]models.Target, error) {
	var all []models.Target
	opt := store.ListOptions{Limit: store.MaxPageSize, Filters: map[string]string{"environment_id": envID}}
	for {
		page, err := a.Store.ListTargets(ctx, opt)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			break
		}
		opt.After = page.NextCursor
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, nil
}

func (a *Activities) isLastEnvironment(ctx context.Context, env *models.Environment) (bool, error) {
	page, err := a.Store.ListEnvironments(ctx, store.ListOptions{Limit: store.MaxPageSize,
		Filters: map[string]string{"application_id": env.ApplicationID}})
	if err != nil {
		return false, err
	}
	for _, e := range page.Items {
		if e.Position > env.Position {
			return false, nil
		}
	}
	return true, nil
}

// currentVersions asks each target's driver what runs there, a few at a
// time, and names the targets that did not answer.
func (a *Activities) currentVersions(ctx context.Context, app, env string, targets []models.Target) (map[string]string, []string) {
	var (
		mu          sync.Mutex
		wg          sync.WaitGroup
		current     = map[string]string{}
		unreachable []string
		sem         = make(chan struct{}, 8)
	)
	for _, t := range targets {
		wg.Add(1)
		go func(t models.Target) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			v, err := a.current(cctx, app, env, t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unreachable = append(unreachable, t.Name+": "+err.Error())
				return
			}
			current[t.Name] = v
		}(t)
	}
	wg.Wait()
	sort.Strings(unreachable)
	return current, unreachable
}

func (a *Activities) current(ctx context.Context, app, env string, t models.Target) (string, error) {
	d, err := a.Drivers.For(t.Driver)
	if err != nil {
		return "", err
	}
	return d.Current(ctx, driverTarget(app, env, t))
}

func driverTarget(app, env string, t models.Target) drivers.Target {
	return drivers.Target{ID: t.ID, Name: t.Name, Application: app, Environment: env, Driver: t.Driver,
		Config: t.Config.V, Labels: t.Labels.V}
}

// criterionFails reports whether an entry criterion's value says "not met".
func criterionFails(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "no", "failed", "failing", "fail", "pending", "missing", "blocked", "red":
		return true
	}
	return false
}

// BuildWaves batches targets (in the given order) into waves by strategy.
func BuildWaves(targets []models.PlanTarget, s models.Strategy) [][]models.PlanTarget {
	n := len(targets)
	var bounds []int // cumulative end index of each wave
	switch s.Kind {
	case models.StrategyRolling:
		batch := s.Batch
		if batch < 1 {
			batch = 1
		}
		for end := batch; ; end += batch {
			if end >= n {
				bounds = append(bounds, n)
				break
			}
			bounds = append(bounds, end)
		}
	case models.StrategyCanary:
		prev := 0
		for _, st := range s.Steps {
			end := st.Count
			if st.Percent > 0 {
				end = (n*st.Percent + 99) / 100 // round up: 25% of 10 is 3
			}
			if end > n {
				end = n
			}
			if end > prev {
				bounds = append(bounds, end)
				prev = end
			}
		}
		if prev < n {
			bounds = append(bounds, n)
		}
	default:
		bounds = []int{n}
	}
	waves := make([][]models.PlanTarget, 0, len(bounds))
	start := 0
	for _, end := range bounds {
		waves = append(waves, append([]models.PlanTarget(nil), targets[start:end]...))
		start = end
	}
	return waves
}

// RiskFacts are what the risk score is computed from.
type RiskFacts struct {
	Scenario        string
	Targets         int
	Artifacts       int
	FromVersions    map[string]string
	ToVersion       string
	Production      bool
	EnvironmentName string
	RecentFailed    int
	RecentTotal     int
}

// AssessRisk scores a change from 0 to 100 and says why.
func AssessRisk(f RiskFacts) models.Risk {
	r := models.Risk{Reasons: []string{}}
	add := func(points int, format string, args ...any) {
		r.Score += points
		r.Reasons = append(r.Reasons, fmt.Sprintf("+%d ", points)+fmt.Sprintf(format, args...))
	}
	switch {
	case f.Targets >= 10:
		add(15, "change size: %d targets", f.Targets)
	case f.Targets >= 3:
		add(5, "change size: %d targets", f.Targets)
	}
	if f.Artifacts > 1 {
		add(min(15, 5*(f.Artifacts-1)), "change size: %d artifacts", f.Artifacts)
	}
	if f.Production {
		add(25, "environment: %s is the last stage of the lifecycle (production)", f.EnvironmentName)
	}
	switch f.Scenario {
	case models.ScenarioInstall:
		add(15, "first release: nothing is running there to fall back to")
	case models.ScenarioDecommission:
		add(20, "decommission: the application is taken out of %s", f.EnvironmentName)
	case models.ScenarioDowngrade:
		add(15, "downgrade: an older version replaces a newer one (%s); data migrations may not run backwards", fromList(f.FromVersions))
		if jump := majorJump(f.FromVersions, f.ToVersion); jump != "" {
			add(20, "%s", jump)
		}
	default:
		if jump := majorJump(f.FromVersions, f.ToVersion); jump != "" {
			add(20, "%s", jump)
		}
	}
	if f.RecentTotal > 0 && f.RecentFailed > 0 {
		rate := float64(f.RecentFailed) / float64(f.RecentTotal)
		add(int(rate*30+0.5), "recent failure rate: %d of the last %d deployments to %s failed or rolled back",
			f.RecentFailed, f.RecentTotal, f.EnvironmentName)
	}
	if r.Score > 100 {
		r.Score = 100
	}
	switch {
	case r.Score < 25:
		r.Level = "low"
	case r.Score < 50:
		r.Level = "medium"
	case r.Score < 75:
		r.Level = "high"
	default:
		r.Level = "critical"
	}
	if len(r.Reasons) == 0 {
		r.Reasons = append(r.Reasons, "routine change: small, not production, with a clean recent record")
	}
	return r
}

// fromList names the versions that run now: "1.4.0" or "1.3.0, 1.4.0".
func fromList(from map[string]string) string {
	seen := map[string]bool{}
	var vs []string
	for _, k := range models.SortedKeys(from) {
		if v := from[k]; v != "" && !seen[v] {
			seen[v] = true
			vs = append(vs, v)
		}
	}
	sort.Strings(vs)
	return strings.Join(vs, ", ")
}

// majorJump describes a semver major version change, or returns "".
func majorJump(from map[string]string, to string) string {
	toMajor, ok := semverMajor(to)
	if !ok {
		return ""
	}
	for _, k := range models.SortedKeys(from) {
		if fm, ok := semverMajor(from[k]); ok && fm != toMajor {
			return fmt.Sprintf("major version change: %s to %s", from[k], to)
		}
	}
	return ""
}

func semverMajor(v string) (int, bool) {
	if !models.IsSemver(v) {
		return 0, false
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	n, err := strconv.Atoi(major)
	return n, err == nil
}

// knownErrors are the release's open known errors as the plan shows them,
// each marked acknowledged or not. A read that fails fails the plan (it is
// tried again): a standard change must not pass for want of them.
func (a *Activities) knownErrors(ctx context.Context, rel *models.Release, ack []string) ([]models.KnownErrorRef, error) {
	open, err := a.Store.OpenKnownErrors(ctx, rel)
	if err != nil {
		return nil, err
	}
	var out []models.KnownErrorRef
	for _, k := range open {
		out = append(out, models.KnownErrorRef{ID: k.ID, Title: k.Title, Severity: k.Severity,
			Workaround: models.Cut(k.Workaround, 500), Acknowledged: slices.Contains(ack, k.ID)})
	}
	return out, nil
}
