package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

// KPIs are computed from the records as they are (deployments, their
// timeline, votes, incidents, releases, the audit chain): no table of
// their own. models.KPIDefinitions says how each is counted.

// KPIFilter selects what the KPIs count: the range [From, To), and
// optionally one application and one of its environments (ids).
type KPIFilter struct {
	From, To      time.Time
	ApplicationID string
	EnvironmentID string
}

// MaxKPIRange is the longest range the KPIs are computed over.
const MaxKPIRange = 366 * 24 * time.Hour

// kpiWeek is the length of a week of the weekly throughput.
const kpiWeek = 7 * 24 * time.Hour

func (f KPIFilter) check() error {
	v := &models.ValidationError{}
	switch {
	case f.From.IsZero() || f.To.IsZero():
		v.Add("from", "a KPI range needs both from and to")
	case !f.From.Before(f.To):
		v.Add("from", "must be before to (%s)", f.To.UTC().Format(time.RFC3339))
	case f.To.Sub(f.From) > MaxKPIRange:
		v.Add("to", "the range is at most %d days; it is %.1f", int(MaxKPIRange.Hours()/24), f.To.Sub(f.From).Hours()/24)
	}
	return v.Err()
}

// scope narrows a query on deployments (as alias) to the filter's
// application and environment.
func (f KPIFilter) scope(q *gorm.DB, alias string) *gorm.DB {
	if f.ApplicationID != "" {
		q = q.Where(alias+".application_id = ?", f.ApplicationID)
	}
	if f.EnvironmentID != "" {
		q = q.Where(alias+".environment_id = ?", f.EnvironmentID)
	}
	return q
}

// checkedKPIs checks the filter, loads what its KPIs count and verifies
// the audit chain.
func (s *Store) checkedKPIs(ctx context.Context, f KPIFilter) (*kpiSet, ChainReport, error) {
	if err := f.check(); err != nil {
		return nil, ChainReport{}, err
	}
	set, err := s.loadKPIs(ctx, f)
	if err != nil {
		return nil, ChainReport{}, err
	}
	chain, err := s.VerifyAudit(ctx)
	if err != nil {
		return nil, ChainReport{}, fmt.Errorf("verify the audit chain for the KPIs: %w", err)
	}
	return set, chain, nil
}

// KPIs computes the KPI report of the filter.
func (s *Store) KPIs(ctx context.Context, f KPIFilter) (*models.KPIReport, error) {
	set, chain, err := s.checkedKPIs(ctx, f)
	if err != nil {
		return nil, err
	}
	issues := set.issues()
	if !chain.OK {
		// First: it is about the whole log, and a long list is cut.
		issues = append([]models.ComplianceIssue{{Kind: models.IssueAuditChainBroken, At: set.computedAt,
			Message: fmt.Sprintf("the audit log's hash chain breaks at row %d: %s", chain.BrokenSeq, chain.Reason)}}, issues...)
	}
	r := &models.KPIReport{From: f.From.UTC(), To: f.To.UTC(), ApplicationID: f.ApplicationID, EnvironmentID: f.EnvironmentID,
		ComputedAt: set.computedAt, DeploymentManagement: set.deploymentManagement(issues), WeeklyThroughput: set.weeks(),
		ReleaseManagement: set.releaseManagement(""), DORA: []models.KPIGroup{}}
	if len(issues) > models.MaxComplianceIssues {
		issues = issues[:models.MaxComplianceIssues]
	}
	r.ComplianceIssues = issues
	byEnv := set.split(false)
	for _, env := range set.envs {
		if env.inScope {
			r.DORA = append(r.DORA, env.group(set.part(byEnv, env.ID).dora()))
		}
	}
	return r, nil
}

// KPISnapshot computes every KPI of the range per application and
// environment (deployment management and DORA) and per application
// (release management), for the Prometheus gauges.
func (s *Store) KPISnapshot(ctx context.Context, from, to time.Time) (*models.KPISnapshot, error) {
	f := KPIFilter{From: from, To: to}
	set, chain, err := s.checkedKPIs(ctx, f)
	if err != nil {
		return nil, err
	}
	snap := &models.KPISnapshot{From: f.From.UTC(), To: f.To.UTC(), ComputedAt: set.computedAt, AuditChainOK: chain.OK,
		Environments: []models.KPIGroup{}, Applications: []models.KPIGroup{}}
	byEnv, byApp := set.split(false), set.split(true)
	for _, env := range set.envs {
		sub := set.part(byEnv, env.ID)
		snap.Environments = append(snap.Environments, env.group(append(sub.deploymentManagement(sub.issues()), sub.dora()...)))
	}
	for _, app := range set.apps {
		sub := set.part(byApp, app.ID)
		snap.Applications = append(snap.Applications, models.KPIGroup{ApplicationID: app.ID, Application: app.Name,
			KPIs: sub.releaseManagement(app.ID)})
	}
	return snap, nil
}

// ---- what the KPIs are computed from

type kpiDeployment struct {
	ID               string
	ApplicationID    string
	EnvironmentID    string
	Status           models.Status
	CreatedAt        time.Time
	FinishedAt       *time.Time
	NotBefore        *time.Time
	Emergency        models.JSONValue[*models.Emergency]
	ReleaseCreatedAt *time.Time

	startedAt *time.Time     // its first move to deploying
	policy    *models.Policy // the policy it was planned under
}

type kpiVote struct {
	DeploymentID string
	Approver     string
	Decision     string
	Via          models.Via
	At           time.Time
}

type kpiIncident struct {
	ID            string
	DeploymentID  string
	ApplicationID string
	EnvironmentID string
	Severity      string
	CreatedAt     time.Time
	ResolvedAt    *time.Time
	KnownErrorID  string
}

// kpiGood is a completed deployment, which restores its lane after a rollback.
type kpiGood struct {
	ApplicationID string
	EnvironmentID string
	FinishedAt    time.Time
}

type kpiEnvironment struct {
	ID            string
	ApplicationID string
	Name          string
	Position      int
	Application   string

	production bool
	inScope    bool
}

func (e kpiEnvironment) group(kpis []models.KPI) models.KPIGroup {
	return models.KPIGroup{ApplicationID: e.ApplicationID, Application: e.Application, EnvironmentID: e.ID, Environment: e.Name,
		Position: e.Position, Production: e.production, KPIs: kpis}
}

type kpiApplication struct {
	ID   string
	Name string
}

// kpiSet is the records the KPIs of one filter are computed from; only
// narrows it to one environment or application.
type kpiSet struct {
	from, to   time.Time
	computedAt time.Time
	deps       []*kpiDeployment // submitted before to, not finished before from
	votes      []kpiVote        // of deps
	incidents  []kpiIncident    // opened in the range
	goods      []kpiGood        // completed, finished at or after from
	envs       []kpiEnvironment
	apps       []kpiApplication
	unresolved map[string]int64 // known errors not resolved at to, by application
}

func (s *Store) loadKPIs(ctx context.Context, f KPIFilter) (*kpiSet, error) {
	set := &kpiSet{from: f.From, to: f.To, computedAt: now(), unresolved: map[string]int64{}}
	db := s.db.WithContext(ctx)
	active := func(q *gorm.DB) *gorm.DB {
		return f.scope(q, "d").Where("d.created_at < ? AND (d.finished_at IS NULL OR d.finished_at >= ?)", f.To, f.From)
	}

	err := active(db.Table("deployments AS d").
		Select("d.id, d.application_id, d.environment_id, d.status, d.created_at, d.finished_at, d.not_before, d.emergency, r.created_at AS release_created_at").
		Joins("LEFT JOIN releases r ON r.id = d.release_id")).
		Order("d.id").Scan(&set.deps).Error
	if err != nil {
		return nil, fmt.Errorf("read the deployments for the KPIs: %w", err)
	}
	byID := make(map[string]*kpiDeployment, len(set.deps))
	ids := make([]string, 0, len(set.deps))
	for _, d := range set.deps {
		byID[d.ID] = d
		ids = append(ids, d.ID)
	}

	// When each rollout started: its first move to deploying.
	starts, err := s.rolloutStarts(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read the KPIs: %w", err)
	}
	for id, at := range starts {
		byID[id].startedAt = &at
	}

	// The policy each rollout that started in the range was planned under.
	var started []string
	for _, d := range set.deps {
		if d.startedAt != nil && set.in(*d.startedAt) {
			started = append(started, d.ID)
		}
	}
	policyExpr := "json_extract(plan, '$.policy')"
	if s.dialect == DialectPostgres {
		policyExpr = "plan->'policy'"
	}
	for len(started) > 0 {
		n := min(len(started), inChunks)
		var rows []struct {
			ID     string
			Policy *string
		}
		if err := db.Table("deployments").Select("id, "+policyExpr+" AS policy").Where("id IN ?", started[:n]).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("read the plans' policies for the KPIs: %w", err)
		}
		for _, r := range rows {
			if r.Policy == nil || byID[r.ID] == nil {
				continue
			}
			var p models.Policy
			if err := json.Unmarshal([]byte(*r.Policy), &p); err == nil {
				byID[r.ID].policy = &p
			}
		}
		started = started[n:]
	}

	err = active(db.Table("approvals AS a").Select("a.deployment_id, a.approver, a.decision, a.via, a.at").
		Joins("JOIN deployments d ON d.id = a.deployment_id")).Order("a.at, a.approver").Scan(&set.votes).Error
	if err != nil {
		return nil, fmt.Errorf("read the votes for the KPIs: %w", err)
	}

	err = f.scope(db.Table("incidents AS i").
		Select("i.id, i.deployment_id, d.application_id, d.environment_id, i.severity, i.created_at, i.resolved_at, i.known_error_id").
		Joins("JOIN deployments d ON d.id = i.deployment_id"), "d").
		Where("i.created_at >= ? AND i.created_at < ?", f.From, f.To).Order("i.created_at, i.id").Scan(&set.incidents).Error
	if err != nil {
		return nil, fmt.Errorf("read the incidents for the KPIs: %w", err)
	}

	err = f.scope(db.Table("deployments AS d").Select("d.application_id, d.environment_id, d.finished_at"), "d").
		Where("d.status = ? AND d.finished_at >= ?", models.StatusCompleted, f.From).Order("d.finished_at").Scan(&set.goods).Error
	if err != nil {
		return nil, fmt.Errorf("read the completed deployments for the KPIs: %w", err)
	}

	// Every environment of the applications in scope: the highest
	// position of an application is its production.
	q := db.Table("environments AS e").Select("e.id, e.application_id, e.name, e.position, a.name AS application").
		Joins("JOIN applications a ON a.id = e.application_id")
	if f.ApplicationID != "" {
		q = q.Where("e.application_id = ?", f.ApplicationID)
	}
	if err := q.Order("a.name, e.position, e.name").Scan(&set.envs).Error; err != nil {
		return nil, fmt.Errorf("read the environments for the KPIs: %w", err)
	}
	highest := map[string]int{}
	for _, e := range set.envs {
		if p, ok := highest[e.ApplicationID]; !ok || e.Position > p {
			highest[e.ApplicationID] = e.Position
		}
	}
	for i := range set.envs {
		e := &set.envs[i]
		e.production = e.Position == highest[e.ApplicationID]
		e.inScope = f.EnvironmentID == "" || e.ID == f.EnvironmentID
	}
	aq := db.Table("applications").Select("id, name")
	if f.ApplicationID != "" {
		aq = aq.Where("id = ?", f.ApplicationID)
	}
	if err := aq.Order("name").Scan(&set.apps).Error; err != nil {
		return nil, fmt.Errorf("read the applications for the KPIs: %w", err)
	}

	// Known errors not resolved at the end of the range, per application.
	var unresolved []struct {
		ApplicationID string
		N             int64
	}
	kq := db.Table("known_errors").Select("application_id, COUNT(*) AS n").
		Where("created_at < ? AND (status <> ? OR (resolved_at IS NOT NULL AND resolved_at >= ?))", f.To, models.KnownErrorResolved, f.To)
	if f.ApplicationID != "" {
		kq = kq.Where("application_id = ?", f.ApplicationID)
	}
	if err := kq.Group("application_id").Scan(&unresolved).Error; err != nil {
		return nil, fmt.Errorf("read the known errors for the KPIs: %w", err)
	}
	for _, r := range unresolved {
		set.unresolved[r.ApplicationID] = r.N
	}
	return set, nil
}

func (k *kpiSet) in(t time.Time) bool { return !t.Before(k.from) && t.Before(k.to) }

func (k *kpiSet) finishedIn(d *kpiDeployment) bool {
	return d.FinishedAt != nil && d.Status.Terminal() && k.in(*d.FinishedAt)
}

// split partitions the set by environment (byApp false) or by
// application, in one pass: key → the records of that key.
func (k *kpiSet) split(byApp bool) map[string]*kpiSet {
	out := map[string]*kpiSet{}
	part := func(app, env string) *kpiSet {
		key := env
		if byApp {
			key = app
		}
		if p := out[key]; p != nil {
			return p
		}
		p := *k
		p.deps, p.votes, p.incidents, p.goods = nil, nil, nil, nil
		out[key] = &p
		return &p
	}
	of := map[string]*kpiSet{} // deployment id → its part
	for _, d := range k.deps {
		p := part(d.ApplicationID, d.EnvironmentID)
		p.deps = append(p.deps, d)
		of[d.ID] = p
	}
	for _, v := range k.votes {
		if p := of[v.DeploymentID]; p != nil {
			p.votes = append(p.votes, v)
		}
	}
	for _, in := range k.incidents {
		p := part(in.ApplicationID, in.EnvironmentID)
		p.incidents = append(p.incidents, in)
	}
	for _, g := range k.goods {
		p := part(g.ApplicationID, g.EnvironmentID)
		p.goods = append(p.goods, g)
	}
	return out
}

// part is the records of one key of split, none when it has none.
func (k *kpiSet) part(parts map[string]*kpiSet, key string) *kpiSet {
	if p := parts[key]; p != nil {
		return p
	}
	p := *k
	p.deps, p.votes, p.incidents, p.goods = nil, nil, nil, nil
	return &p
}

// ---- the figures

func newKPI(name string) models.KPI {
	d := models.KPIDefinitionOf(name)
	return models.KPI{Name: name, Unit: d.Unit, Counted: d.Counted}
}

func countKPI(name string, n int64, breakdown map[string]int64) models.KPI {
	k := newKPI(name)
	v := float64(n)
	k.Value, k.Count, k.Breakdown = &v, n, breakdown
	return k
}

func ratioKPI(name string, n, of int64, none string) models.KPI {
	k := newKPI(name)
	k.Count, k.Of = n, &of
	if of == 0 {
		k.Note = none
		return k
	}
	v := float64(n) / float64(of)
	k.Value = &v
	return k
}

func medianKPI(name string, samples []time.Duration, none string) models.KPI {
	k := newKPI(name)
	k.Count = int64(len(samples))
	if len(samples) == 0 {
		k.Note = none
		return k
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	m := samples[len(samples)/2].Seconds()
	if len(samples)%2 == 0 {
		m = (samples[len(samples)/2-1].Seconds() + m) / 2
	}
	k.Value = &m
	return k
}

func rateKPI(name string, n int64, per time.Duration, span time.Duration) models.KPI {
	k := newKPI(name)
	v := float64(n) / (float64(span) / float64(per))
	k.Value, k.Count = &v, n
	return k
}

var (
	rolloutOutcomes = []models.Status{models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusRolledBack, models.StatusFailed}
	handedOver      = []models.Status{models.StatusCompleted, models.StatusCompletedWithIssues}
)

// rolledOut reports whether a finished deployment changed something: a
// failure before its rollout began (at planning, or its start) changed
// nothing, and counts neither as a deployment nor as a failed change.
func (d *kpiDeployment) rolledOut() bool {
	return slices.Contains(rolloutOutcomes, d.Status) && (d.Status != models.StatusFailed || d.startedAt != nil)
}

// deploymentManagement is ITIL's deployment management metrics; issues
// are the compliance issues to count.
func (k *kpiSet) deploymentManagement(issues []models.ComplianceIssue) []models.KPI {
	var outcomes, completed, submitted, finished, backlog, started, onSchedule int64
	errs := map[string]int64{string(models.StatusRolledBack): 0, string(models.StatusFailed): 0}
	byStatus := map[string]int64{}
	var lead []time.Duration
	for _, d := range k.deps {
		if k.in(d.CreatedAt) {
			submitted++
		}
		if d.FinishedAt == nil || !d.FinishedAt.Before(k.to) {
			backlog++ // every dep was submitted before to
		}
		if d.startedAt != nil && k.in(*d.startedAt) {
			started++
			if d.onSchedule() {
				onSchedule++
			}
		}
		if !k.finishedIn(d) {
			continue
		}
		finished++
		byStatus[string(d.Status)]++
		if d.rolledOut() {
			outcomes++
		}
		switch d.Status {
		case models.StatusCompleted:
			completed++
		case models.StatusRolledBack, models.StatusFailed:
			errs[string(d.Status)]++
		}
		if slices.Contains(handedOver, d.Status) {
			lead = append(lead, d.FinishedAt.Sub(d.CreatedAt))
		}
	}
	severities := map[string]int64{}
	for _, s := range models.Severities {
		severities[s] = 0
	}
	for _, in := range k.incidents {
		severities[in.Severity]++
	}
	kinds := map[string]int64{}
	for _, kind := range models.ComplianceIssueKinds {
		kinds[kind] = 0
	}
	for _, is := range issues {
		kinds[is.Kind]++
	}
	return []models.KPI{
		ratioKPI(models.KPISuccessfulDeploymentRate, completed, outcomes, "no deployment finished in the range with an outcome of its rollout"),
		countKPI(models.KPIDeploymentErrors, errs[string(models.StatusRolledBack)]+errs[string(models.StatusFailed)], errs),
		countKPI(models.KPIDeploymentIncidents, int64(len(k.incidents)), severities),
		ratioKPI(models.KPIScheduleAdherence, onSchedule, started, "no rollout started in the range"),
		medianKPI(models.KPIDeploymentLeadTime, lead, "no deployment was handed over in the range"),
		countKPI(models.KPIDeploymentsSubmitted, submitted, nil),
		countKPI(models.KPIDeploymentsFinished, finished, byStatus),
		countKPI(models.KPIDeploymentBacklog, backlog, nil),
		rateKPI(models.KPIFinishedPerWeek, finished, kpiWeek, k.to.Sub(k.from)),
		countKPI(models.KPIComplianceIssues, int64(len(issues)), kinds),
	}
}

// onSchedule says whether the rollout started within its planned window.
func (d *kpiDeployment) onSchedule() bool {
	at := *d.startedAt
	if d.NotBefore != nil && at.Before(*d.NotBefore) {
		return false
	}
	return d.policy == nil || d.policy.HoldAt(at) == nil
}

// weeks is the weekly throughput: 7 days from the range's start.
func (k *kpiSet) weeks() []models.KPIWeek {
	out := []models.KPIWeek{}
	for start := k.from; start.Before(k.to); start = start.Add(kpiWeek) {
		end := start.Add(kpiWeek)
		if end.After(k.to) {
			end = k.to
		}
		w := models.KPIWeek{From: start.UTC(), To: end.UTC()}
		for _, d := range k.deps {
			if !d.CreatedAt.Before(start) && d.CreatedAt.Before(end) {
				w.Submitted++
			}
			if d.FinishedAt != nil && !d.FinishedAt.Before(start) && d.FinishedAt.Before(end) {
				w.Finished++
			}
			if d.CreatedAt.Before(end) && (d.FinishedAt == nil || !d.FinishedAt.Before(end)) {
				w.Backlog++
			}
		}
		out = append(out, w)
	}
	return out
}

// issues are the deployment-related compliance issues of the set (the
// audit chain's is the caller's), oldest first.
func (k *kpiSet) issues() []models.ComplianceIssue {
	out := []models.ComplianceIssue{}
	votes := map[string][]kpiVote{}
	for _, v := range k.votes {
		votes[v.DeploymentID] = append(votes[v.DeploymentID], v)
	}
	for _, d := range k.deps {
		issue := func(kind string, at time.Time, msg string) {
			out = append(out, models.ComplianceIssue{Kind: kind, DeploymentID: d.ID, ApplicationID: d.ApplicationID,
				EnvironmentID: d.EnvironmentID, At: at.UTC(), Message: msg})
		}
		if e := d.Emergency.V; e != nil && k.in(d.CreatedAt) {
			issue(models.IssueEmergencyChange, d.CreatedAt, e.String())
		}
		if d.startedAt != nil && k.in(*d.startedAt) && d.policy != nil {
			required, what := d.policy.ApprovalsRequired, "approvals"
			if d.Emergency.V != nil {
				required, _ = d.policy.EmergencyQuorum()
				what = "emergency approvals"
			}
			approves, byPolicy := 0, false
			for _, v := range votes[d.ID] {
				if v.Decision == models.DecisionApprove {
					approves++
					byPolicy = byPolicy || v.Via == models.ViaPolicy
				}
			}
			if !byPolicy && approves < required {
				issue(models.IssueNoQuorum, *d.startedAt, fmt.Sprintf("its rollout started with %d of the %d %s its policy requires", approves, required, what))
			}
		}
		for _, v := range votes[d.ID] {
			if (v.Via == models.ViaSignal || v.Via == models.ViaUpdate) && k.in(v.At) {
				issue(models.IssueVoteOutsideAPI, v.At, fmt.Sprintf("%s voted %s via a Temporal %s, not through the API", v.Approver, v.Decision, v.Via))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].DeploymentID < out[j].DeploymentID
	})
	return out
}

// dora is DORA's four keys.
func (k *kpiSet) dora() []models.KPI {
	var (
		deployments, failures int64
		lead, restore         []time.Duration
		breakdown             = map[string]int64{"incidents": 0, "rollbacks": 0, "unrestored": 0}
	)
	for _, d := range k.deps {
		if !k.finishedIn(d) || !d.rolledOut() {
			continue
		}
		deployments++
		switch d.Status {
		case models.StatusRolledBack, models.StatusFailed, models.StatusCompletedWithIssues:
			failures++
		}
		if slices.Contains(handedOver, d.Status) && d.ReleaseCreatedAt != nil {
			lead = append(lead, d.FinishedAt.Sub(*d.ReleaseCreatedAt))
		}
		if d.Status == models.StatusRolledBack {
			var next *time.Time
			for i := range k.goods {
				g := &k.goods[i]
				if g.ApplicationID == d.ApplicationID && g.EnvironmentID == d.EnvironmentID && g.FinishedAt.After(*d.FinishedAt) &&
					(next == nil || g.FinishedAt.Before(*next)) {
					next = &g.FinishedAt
				}
			}
			if next == nil {
				breakdown["unrestored"]++
				continue
			}
			breakdown["rollbacks"]++
			restore = append(restore, next.Sub(*d.FinishedAt))
		}
	}
	for _, in := range k.incidents {
		if in.ResolvedAt == nil {
			breakdown["unrestored"]++
			continue
		}
		breakdown["incidents"]++
		restore = append(restore, in.ResolvedAt.Sub(in.CreatedAt))
	}
	ttr := medianKPI(models.KPITimeToRestore, restore, "nothing that began in the range has been restored")
	ttr.Breakdown = breakdown
	return []models.KPI{
		rateKPI(models.KPIDeploymentFrequency, deployments, 24*time.Hour, k.to.Sub(k.from)),
		medianKPI(models.KPILeadTimeForChanges, lead, "no deployment was handed over in the range"),
		ratioKPI(models.KPIChangeFailureRate, failures, deployments, "no deployment finished in the range with an outcome of its rollout"),
		ttr,
	}
}

// releaseManagement is the known errors' KPIs, of one application ("":
// of every application in the set).
func (k *kpiSet) releaseManagement(appID string) []models.KPI {
	var unresolved, linked int64
	for app, n := range k.unresolved {
		if appID == "" || app == appID {
			unresolved += n
		}
	}
	for _, in := range k.incidents {
		if in.KnownErrorID != "" {
			linked++
		}
	}
	return []models.KPI{
		countKPI(models.KPIUnresolvedKnownErrors, unresolved, nil),
		ratioKPI(models.KPIIncidentsLinkedToKnownErrors, linked, int64(len(k.incidents)), "no incident was opened in the range"),
	}
}
