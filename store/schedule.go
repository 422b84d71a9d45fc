package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/transit-hq/transit/models"
)

// activeStatuses are the statuses of a deployment that has not ended.
var activeStatuses = func() []models.Status {
	var out []models.Status
	for _, s := range models.AllStatuses {
		if !s.Terminal() {
			out = append(out, s)
		}
	}
	return out
}()

// historySamples is how many recent completed deployments of a lane the
// schedule's estimate of a duration goes by.
const historySamples = 10

// inChunks bounds the values of one IN (…) list.
const inChunks = 1000

// ScheduleQuery selects a schedule: the range, and optionally one
// application or environment (ids).
type ScheduleQuery struct {
	From, To      time.Time
	ApplicationID string
	EnvironmentID string
	// Now is when the schedule is worked out from (default: now).
	Now time.Time
}

// Schedule works out the forward schedule of change in [q.From, q.To): the
// active deployments of every application, with their expected start and
// end, the freezes and change windows, and the conflicts (see
// models.BuildSchedule).
func (s *Store) Schedule(ctx context.Context, q ScheduleQuery) (*models.Schedule, error) {
	if q.Now.IsZero() {
		q.Now = now()
	}
	f := models.ScheduleFacts{Now: q.Now, From: q.From, To: q.To, ApplicationID: q.ApplicationID, EnvironmentID: q.EnvironmentID,
		Applications: map[string]models.Application{}, Environments: map[string]models.Environment{},
		Durations: map[string][]time.Duration{}}
	var apps []models.Application
	if err := s.db.WithContext(ctx).Find(&apps).Error; err != nil {
		return nil, fmt.Errorf("schedule: load applications: %w", err)
	}
	for _, a := range apps {
		f.Applications[a.ID] = a
	}
	var envs []models.Environment
	if err := s.db.WithContext(ctx).Find(&envs).Error; err != nil {
		return nil, fmt.Errorf("schedule: load environments: %w", err)
	}
	for _, e := range envs {
		f.Environments[e.ID] = e
	}
	if err := s.db.WithContext(ctx).Where("status IN ?", activeStatuses).Order("id").Find(&f.Active).Error; err != nil {
		return nil, fmt.Errorf("schedule: load active deployments: %w", err)
	}
	envIDs, ids, lanes := map[string]bool{}, make([]string, 0, len(f.Active)), map[[2]string]bool{}
	for _, d := range f.Active {
		envIDs[d.EnvironmentID] = true
		ids = append(ids, d.ID)
		lanes[[2]string{d.ApplicationID, d.EnvironmentID}] = true
	}
	var err error
	if f.Targets, err = s.targetsOf(ctx, models.SortedKeys(envIDs)); err != nil {
		return nil, err
	}
	if f.RolloutStarts, err = s.rolloutStarts(ctx, ids); err != nil {
		return nil, err
	}
	for lane := range lanes {
		d, err := s.RecentDurations(ctx, lane[0], lane[1], historySamples)
		if err != nil {
			return nil, err
		}
		f.Durations[models.LaneKey(lane[0], lane[1])] = d
	}
	sch := models.BuildSchedule(f)
	return &sch, nil
}

// RecentDurations returns how long the last n completed deployments of the
// application to the environment took, newest first: from the start of
// their rollout (their first deploying status; when that is not recorded,
// their submission) to their end.
func (s *Store) RecentDurations(ctx context.Context, applicationID, environmentID string, n int) ([]time.Duration, error) {
	var done []models.Deployment
	err := s.db.WithContext(ctx).Model(&models.Deployment{}).Select("id", "created_at", "finished_at").
		Where("application_id = ? AND environment_id = ? AND status IN ? AND finished_at IS NOT NULL", applicationID, environmentID,
			[]models.Status{models.StatusCompleted, models.StatusCompletedWithIssues}).
		Order("finished_at DESC").Limit(n).Find(&done).Error
	if err != nil {
		return nil, fmt.Errorf("recent durations of %s to %s: %w", applicationID, environmentID, err)
	}
	ids := make([]string, len(done))
	for i, d := range done {
		ids[i] = d.ID
	}
	starts, err := s.rolloutStarts(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, len(done))
	for _, d := range done {
		start, ok := starts[d.ID]
		if !ok {
			start = d.CreatedAt
		}
		if dur := d.FinishedAt.Sub(start); dur > 0 {
			out = append(out, dur)
		}
	}
	return out, nil
}

// rolloutStarts returns when each deployment's rollout began: its first
// deploying status on the timeline (none for one that never rolled out).
func (s *Store) rolloutStarts(ctx context.Context, ids []string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for lo := 0; lo < len(ids); lo += inChunks {
		var rows []models.DeploymentEvent
		err := s.db.WithContext(ctx).Model(&models.DeploymentEvent{}).Select("deployment_id", "at").
			Where("deployment_id IN ? AND type = ? AND status = ?", ids[lo:min(lo+inChunks, len(ids))], models.EventStatus, models.StatusDeploying).
			Find(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("when the rollouts began: %w", err)
		}
		for _, r := range rows {
			if t, ok := out[r.DeploymentID]; !ok || r.At.Before(t) {
				out[r.DeploymentID] = r.At
			}
		}
	}
	return out, nil
}

// targetsOf returns the targets of the environments, by environment, by name.
func (s *Store) targetsOf(ctx context.Context, envIDs []string) (map[string][]models.Target, error) {
	out := map[string][]models.Target{}
	for lo := 0; lo < len(envIDs); lo += inChunks {
		var rows []models.Target
		if err := s.db.WithContext(ctx).Where("environment_id IN ?", envIDs[lo:min(lo+inChunks, len(envIDs))]).
			Order("name").Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("load the targets of %d environments: %w", len(envIDs), err)
		}
		for _, t := range rows {
			out[t.EnvironmentID] = append(out[t.EnvironmentID], t)
		}
	}
	return out, nil
}

// ConflictQuery asks which other active deployments conflict with one:
// their targets share a value of a conflict label with its targets.
type ConflictQuery struct {
	DeploymentID  string
	ApplicationID string
	EnvironmentID string
	// Label is the conflict label of the deployment's environment ("" for
	// none); the other deployments' environments may name theirs.
	Label string
	// TargetIDs are the deployment's targets.
	TargetIDs []string
	// SubmittedBefore keeps only the deployments submitted before this one.
	SubmittedBefore bool
}

// LabelConflicts returns the active deployments of other lanes (any
// application) whose targets share a value of a conflict label — the
// deployment environment's or theirs — with the deployment's targets, in
// the order they were submitted. Deployments of the same lane never run
// side by side, so they are left out.
func (s *Store) LabelConflicts(ctx context.Context, q ConflictQuery) ([]models.LabelConflict, error) {
	var others []models.Deployment
	db := s.db.WithContext(ctx).Omit("plan").Where("status IN ? AND id <> ? AND NOT (application_id = ? AND environment_id = ?)",
		activeStatuses, q.DeploymentID, q.ApplicationID, q.EnvironmentID)
	if q.SubmittedBefore {
		db = db.Where("id < ?", q.DeploymentID)
	}
	if q.Label == "" {
		// Only a label of theirs can make a conflict: only environments
		// that name one matter. Without this, every plan read every active
		// deployment, and thousands awaiting approval made each plan slower.
		db = db.Where("environment_id IN (SELECT id FROM environments WHERE " + s.jsonText("policy", "conflict_label") + " <> '')")
	}
	if err := db.Order("id").Find(&others).Error; err != nil {
		return nil, fmt.Errorf("find the deployments that may conflict with %s: %w", q.DeploymentID, err)
	}
	if len(others) == 0 {
		return nil, nil
	}
	envIDs := map[string]bool{q.EnvironmentID: true}
	for _, d := range others {
		envIDs[d.EnvironmentID] = true
	}
	var envs []models.Environment
	if err := s.db.WithContext(ctx).Where("id IN ?", models.SortedKeys(envIDs)).Find(&envs).Error; err != nil {
		return nil, fmt.Errorf("load environments: %w", err)
	}
	envByID := map[string]models.Environment{}
	for _, e := range envs {
		envByID[e.ID] = e
	}
	// The labels that make a conflict with each: ours, and its environment's.
	labelsOf := map[string][]string{}
	var need []string
	appIDs, needEnvs := map[string]bool{}, map[string]bool{q.EnvironmentID: true}
	for _, d := range others {
		var labels []string
		for _, l := range []string{q.Label, envByID[d.EnvironmentID].Policy.V.ConflictLabel} {
			if l != "" && (len(labels) == 0 || labels[0] != l) {
				labels = append(labels, l)
			}
		}
		if len(labels) > 0 {
			labelsOf[d.ID] = labels
			need = append(need, d.ID)
			appIDs[d.ApplicationID], needEnvs[d.EnvironmentID] = true, true
		}
	}
	if len(need) == 0 {
		return nil, nil
	}
	// Their plans (which targets they change), only now: a plan grows with the fleet.
	var full []models.Deployment
	for lo := 0; lo < len(need); lo += inChunks {
		var chunk []models.Deployment
		if err := s.db.WithContext(ctx).Where("id IN ?", need[lo:min(lo+inChunks, len(need))]).Order("id").Find(&chunk).Error; err != nil {
			return nil, fmt.Errorf("load the plans of the deployments that may conflict with %s: %w", q.DeploymentID, err)
		}
		full = append(full, chunk...)
	}
	targets, err := s.targetsOf(ctx, models.SortedKeys(needEnvs))
	if err != nil {
		return nil, err
	}
	var apps []models.Application
	if err := s.db.WithContext(ctx).Where("id IN ?", models.SortedKeys(appIDs)).Find(&apps).Error; err != nil {
		return nil, fmt.Errorf("load applications: %w", err)
	}
	appName := map[string]string{}
	for _, a := range apps {
		appName[a.ID] = a.Name
	}
	want := map[string]bool{}
	for _, id := range q.TargetIDs {
		want[id] = true
	}
	ours := map[string]map[string]string{}
	for _, t := range targets[q.EnvironmentID] {
		if want[t.ID] {
			ours[t.Name] = t.Labels.V
		}
	}
	var out []models.LabelConflict
	for _, d := range full {
		theirs := deploymentLabels(d, targets[d.EnvironmentID])
		for _, label := range labelsOf[d.ID] {
			values, ourNames, theirNames := models.SharedLabelValues(label, ours, theirs)
			if len(values) == 0 {
				continue
			}
			out = append(out, models.LabelConflict{DeploymentID: d.ID, Application: appName[d.ApplicationID],
				Environment: envByID[d.EnvironmentID].Name, ReleaseVersion: d.ReleaseVersion, Status: d.Status,
				Label: label, Values: values, Theirs: theirNames, Ours: ourNames})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].DeploymentID < out[j].DeploymentID })
	return out, nil
}

// deploymentLabels maps the names of a deployment's targets (its plan's;
// all of the environment's while it is not planned) to their labels.
func deploymentLabels(d models.Deployment, envTargets []models.Target) map[string]map[string]string {
	out := map[string]map[string]string{}
	byID := make(map[string]models.Target, len(envTargets))
	for _, t := range envTargets {
		byID[t.ID] = t
	}
	if p := d.Plan.V; p != nil && len(p.Waves) > 0 {
		for _, wave := range p.Waves {
			for _, t := range wave {
				out[t.Name] = byID[t.ID].Labels.V
			}
		}
		return out
	}
	for _, t := range envTargets {
		out[t.Name] = t.Labels.V
	}
	return out
}

// QueuedOnConflict returns the queued deployments, plans included, of the
// environments whose policy says on_conflict: wait, leaving out the lane
// of applicationID to environmentID: those that may wait for one of
// another lane. One query: every deployment that ends asks it.
func (s *Store) QueuedOnConflict(ctx context.Context, applicationID, environmentID string, limit int) ([]models.Deployment, error) {
	var out []models.Deployment
	err := s.db.WithContext(ctx).Where("status = ? AND NOT (application_id = ? AND environment_id = ?)", models.StatusQueued, applicationID, environmentID).
		Where("environment_id IN (SELECT id FROM environments WHERE "+s.jsonText("policy", "on_conflict")+" = ?)", models.OnConflictWait).
		Order("id").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("find the queued deployments that wait on conflicts: %w", err)
	}
	return out, nil
}

// jsonText is SQL for a text field of a JSON column: the empty string when absent.
func (s *Store) jsonText(column, field string) string {
	if s.dialect == DialectSQLite {
		return "COALESCE(json_extract(" + column + ", '$." + field + "'), '')"
	}
	return "COALESCE(" + column + "->>'" + field + "', '')"
}
