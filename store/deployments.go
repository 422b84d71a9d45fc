package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/transit-hq/transit/models"
)

var kindDeployment = kind{name: "deployment", table: "deployments",
	filters: []string{"application_id", "environment_id", "release_id", "status", "requested_by"}}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// IdempotencyKey is a client's key for a request, and the fingerprint of
// that request.
type IdempotencyKey struct {
	Key         string
	RequestHash string
}

// errKeyRace: another request inserted the same key meanwhile.
var errKeyRace = errors.New("idempotency key inserted concurrently")

// CreateDeployment stores a submitted deployment. With an idempotency key,
// a repeated request by the same subject returns the first deployment and
// created=false; the same key for a different request is a conflict.
func (s *Store) CreateDeployment(ctx context.Context, actor Actor, d *models.Deployment, key IdempotencyKey) (out *models.Deployment, created bool, err error) {
	for attempt := 0; attempt < 2; attempt++ {
		out, created, err = s.createDeployment(ctx, actor, d, key)
		if !errors.Is(err, errKeyRace) {
			return out, created, err
		}
		// The other request won: this one now finds its deployment.
	}
	return nil, false, fmt.Errorf("idempotency key %q is in use by a request still being made: %w", key.Key, models.ErrConflict)
}

func (s *Store) createDeployment(ctx context.Context, actor Actor, d *models.Deployment, key IdempotencyKey) (out *models.Deployment, created bool, err error) {
	err = s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		if key.Key != "" {
			var row struct {
				DeploymentID string
				RequestHash  string
			}
			err := tx.Table("idempotency_keys").Select("deployment_id, request_hash").
				Where("subject = ? AND idem_key = ?", actor.Subject, key.Key).Take(&row).Error
			if err == nil {
				if row.RequestHash != key.RequestHash {
					return fmt.Errorf("Idempotency-Key %q was used for another request (deployment %s): use a new key: %w",
						key.Key, row.DeploymentID, models.ErrConflict)
				}
				out, err = get[models.Deployment](ctx, tx, kindDeployment, row.DeploymentID)
				return err
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		nd := *d
		if nd.ID == "" {
			nd.ID = models.NewID(models.PrefixDeployment)
		}
		nd.WorkflowID = models.WorkflowIDFor(nd.ID)
		nd.RequestedBy = actor.Subject
		if nd.Status == "" {
			nd.Status = models.StatusPlanning
		}
		if err := tx.Create(&nd).Error; err != nil {
			return translate(err, "deployment")
		}
		if key.Key != "" {
			err := tx.Exec(`INSERT INTO idempotency_keys (subject, idem_key, deployment_id, request_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
				actor.Subject, key.Key, nd.ID, key.RequestHash, now()).Error
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errKeyRace
			}
			if err != nil {
				return fmt.Errorf("record idempotency key: %w", err)
			}
		}
		out, created = &nd, true
		if err := insertEvent(tx, nd.ID, "submitted", models.DeploymentEvent{Type: models.EventSubmitted, Status: nd.Status,
			Message: submittedMessage(actor.Subject, &nd)}); err != nil {
			return err
		}
		return au.record(tx, models.ActionCreate, "deployment", nd.ID, nil, nd)
	})
	return out, created, err
}

// submittedMessage says who asked for what: "alice asked to decommission
// 1.0.0 (data retained): end of life"; the reason only when there is one.
func submittedMessage(subject string, d *models.Deployment) string {
	what := "deploy"
	switch d.Scenario {
	case models.ScenarioDecommission:
		what = "decommission"
	case models.ScenarioDowngrade:
		what = "downgrade to"
	}
	msg := fmt.Sprintf("%s asked to %s %s", subject, what, d.ReleaseVersion)
	if d.Scenario == models.ScenarioDecommission && d.RetainData {
		msg += " (data retained)"
	}
	if d.Reason != "" {
		msg += ": " + d.Reason
	}
	if e := d.Emergency.V; e != nil {
		msg += " — " + strings.ToUpper(e.String()[:1]) + e.String()[1:]
	}
	return msg
}

// FailDeploymentStart marks a deployment whose workflow could not be started
// as failed, and frees its idempotency key so that a retry starts afresh.
func (s *Store) FailDeploymentStart(ctx context.Context, actor Actor, id, message string) error {
	return s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		t := now()
		if err := tx.Model(&models.Deployment{}).Where("id = ?", id).
			Updates(map[string]any{"status": models.StatusFailed, "outcome": message, "finished_at": t, "updated_at": t}).Error; err != nil {
			return fmt.Errorf("mark deployment %s failed: %w", id, err)
		}
		if err := tx.Exec(`DELETE FROM idempotency_keys WHERE deployment_id = ?`, id).Error; err != nil {
			return fmt.Errorf("free idempotency key of %s: %w", id, err)
		}
		enqueue(tx, outboxEntry{deploymentID: id, event: models.NotifyFailed, message: message})
		return au.record(tx, models.ActionUpdate, "deployment", id, nil, map[string]any{"status": models.StatusFailed, "outcome": message})
	})
}

// GetDeployment loads a deployment.
func (s *Store) GetDeployment(ctx context.Context, id string) (*models.Deployment, error) {
	return get[models.Deployment](ctx, s.db, kindDeployment, id)
}

// ListDeployments lists deployments; filters: application_id,
// environment_id, release_id, status, requested_by.
func (s *Store) ListDeployments(ctx context.Context, opt ListOptions) (Page[models.Deployment], error) {
	return list(ctx, s.db, kindDeployment, opt, func(d models.Deployment) string { return d.ID })
}

// ListApprovals returns a deployment's votes in the order they were cast.
func (s *Store) ListApprovals(ctx context.Context, deploymentID string) ([]models.Approval, error) {
	var out []models.Approval
	err := s.db.WithContext(ctx).Where("deployment_id = ?", deploymentID).Order("at, approver").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list approvals of %s: %w", deploymentID, err)
	}
	return out, nil
}

// ListDeploymentTargets returns a deployment's targets by wave and name.
func (s *Store) ListDeploymentTargets(ctx context.Context, deploymentID string) ([]models.DeploymentTarget, error) {
	var out []models.DeploymentTarget
	err := s.db.WithContext(ctx).Where("deployment_id = ?", deploymentID).Order("wave, target_name").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list targets of %s: %w", deploymentID, err)
	}
	return out, nil
}

// ListDeploymentEvents returns a deployment's timeline after event id after.
func (s *Store) ListDeploymentEvents(ctx context.Context, deploymentID string, after int64, limit int) ([]models.DeploymentEvent, error) {
	var out []models.DeploymentEvent
	err := s.db.WithContext(ctx).Where("deployment_id = ? AND id > ?", deploymentID, after).Order("id").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", deploymentID, err)
	}
	return out, nil
}

// LastDeploymentEvents returns the newest n events of a deployment's
// timeline, oldest first.
func (s *Store) LastDeploymentEvents(ctx context.Context, deploymentID string, n int) ([]models.DeploymentEvent, error) {
	var out []models.DeploymentEvent
	if err := s.db.WithContext(ctx).Where("deployment_id = ?", deploymentID).Order("id DESC").Limit(n).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list events of %s: %w", deploymentID, err)
	}
	slices.Reverse(out)
	return out, nil
}

// DeploymentChange is what one step of the workflow changes on the
// deployment's row; nil fields stay.
type DeploymentChange struct {
	Status    *models.Status
	Scenario  *string
	WaveIndex *int
	WaveCount *int
	Plan      *models.Plan
	Outcome   *string
	PONRAt    *time.Time
	ELSEndsAt *time.Time
	// SetHold replaces the hold with Hold (nil: nothing holds it).
	SetHold bool
	Hold    *models.Hold
	// CloseTargets marks the deployment's targets still pending as not
	// started: the deployment ended before their turn.
	CloseTargets bool
}

// RecordStep records one step (see RecordSteps).
func (s *Store) RecordStep(ctx context.Context, actor Actor, deploymentID, key string, change DeploymentChange, ev models.DeploymentEvent) error {
	return s.RecordSteps(ctx, actor, deploymentID, []Step{{Key: key, Change: change, Event: ev}})
}

func insertEvent(tx *gorm.DB, deploymentID, key string, ev models.DeploymentEvent) error {
	ev.ID, ev.DeploymentID, ev.Key = 0, deploymentID, key
	ev.Message = models.CleanText(ev.Message)
	if ev.At.IsZero() {
		ev.At = now()
	}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&ev)
	if res.Error != nil {
		return fmt.Errorf("append event %s of %s: %w", key, deploymentID, res.Error)
	}
	if res.RowsAffected > 0 {
		enqueueStatus(tx, deploymentID, ev) // notifications of the status reached (store/subscriptions.go)
	}
	return nil
}

// RecordApproval stores a vote once and appends it to the timeline and audit log.
func (s *Store) RecordApproval(ctx context.Context, actor Actor, a models.Approval) error {
	return s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		var n int64
		if err := tx.Model(&models.Approval{}).Where("deployment_id = ? AND approver = ?", a.DeploymentID, a.Approver).Count(&n).Error; err != nil {
			return fmt.Errorf("check vote: %w", err)
		}
		if n > 0 {
			return nil
		}
		if a.At.IsZero() {
			a.At = now()
		}
		if err := tx.Create(&a).Error; err != nil {
			return translate(err, "approval")
		}
		msg := fmt.Sprintf("%s voted %s via %s", a.Approver, a.Decision, a.Via)
		if a.Comment != "" {
			msg += ": " + a.Comment
		}
		if err := insertEvent(tx, a.DeploymentID, "vote/"+a.Approver, models.DeploymentEvent{Type: models.EventVote, Message: msg,
			Status: models.StatusAwaitingApproval,
			Data:   models.NewJSON[any](a)}); err != nil {
			return err
		}
		person := &auditor{s: s, actor: Actor{Subject: a.Approver, RequestID: actor.RequestID}}
		return person.record(tx, a.Decision, "deployment", a.DeploymentID, nil,
			map[string]any{"decision": a.Decision, "comment": a.Comment, "via": a.Via})
	})
}

// AppendEvent adds a line to a deployment's timeline once per key, without
// changing the deployment (for example, an invalid signal that was ignored).
func (s *Store) AppendEvent(ctx context.Context, deploymentID, key string, ev models.DeploymentEvent) error {
	ev.Message = models.CleanText(ev.Message)
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return insertEvent(tx, deploymentID, key, ev)
	})
}

// UpsertDeploymentTargets writes the per-target rows of a deployment.
func (s *Store) UpsertDeploymentTargets(ctx context.Context, rows []models.DeploymentTarget) error {
	if len(rows) == 0 {
		return nil
	}
	t := now()
	for i := range rows {
		rows[i].UpdatedAt = t
		rows[i].Message = models.CleanText(rows[i].Message)
	}
	// In batches: a statement holds at most 65,535 parameters on Postgres.
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "deployment_id"}, {Name: "target_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"status", "from_version", "to_version", "message", "wave", "updated_at"}),
	}).CreateInBatches(&rows, 1000).Error
	if err != nil {
		return fmt.Errorf("write deployment targets: %w", err)
	}
	return nil
}

// SetTargetStatus records a target's status and message in a deployment,
// keeping its from and to versions (which say what the deployment meant to
// change, whatever happened since). With onlyIf set, only a row in one of
// those statuses changes; it reports whether one did.
func (s *Store) SetTargetStatus(ctx context.Context, deploymentID string, targetIDs []string, status, message string, onlyIf ...string) (int64, error) {
	q := s.db.WithContext(ctx).Model(&models.DeploymentTarget{}).Where("deployment_id = ? AND target_id IN ?", deploymentID, targetIDs)
	if len(onlyIf) > 0 {
		q = q.Where("status IN ?", onlyIf)
	}
	res := q.Updates(map[string]any{"status": status, "message": models.CleanText(message), "updated_at": now()})
	if res.Error != nil {
		return 0, fmt.Errorf("record target status in %s: %w", deploymentID, res.Error)
	}
	return res.RowsAffected, nil
}

// GetDeploymentTarget returns one target's row in a deployment.
func (s *Store) GetDeploymentTarget(ctx context.Context, deploymentID, targetID string) (*models.DeploymentTarget, error) {
	var row models.DeploymentTarget
	err := s.db.WithContext(ctx).Where("deployment_id = ? AND target_id = ?", deploymentID, targetID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("target %s in deployment %s: %w", targetID, deploymentID, models.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load target %s of deployment %s: %w", targetID, deploymentID, err)
	}
	return &row, nil
}

// TargetStates returns the state of each of the given targets (absent ones
// have none yet).
func (s *Store) TargetStates(ctx context.Context, targetIDs []string) (map[string]models.TargetState, error) {
	var rows []models.TargetState
	if err := s.db.WithContext(ctx).Where("target_id IN ?", targetIDs).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load target states: %w", err)
	}
	out := make(map[string]models.TargetState, len(rows))
	for _, r := range rows {
		out[r.TargetID] = r
	}
	return out, nil
}

// SetTargetCurrent records what now runs on a target, keeping its last known good.
func (s *Store) SetTargetCurrent(ctx context.Context, targetID, releaseID, version, deploymentID string) error {
	row := models.TargetState{TargetID: targetID, CurrentReleaseID: releaseID, CurrentVersion: version,
		UpdatedByDeployment: deploymentID, UpdatedAt: now()}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "target_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"current_release_id", "current_version", "updated_by_deployment", "updated_at"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("record current release of target %s: %w", targetID, err)
	}
	return nil
}

// CommitLastKnownGood makes the release the last known good of each target
// (or clears it, for a decommission: releaseID ""), in one statement per
// thousand targets.
func (s *Store) CommitLastKnownGood(ctx context.Context, actor Actor, deploymentID string, targetIDs []string, releaseID, version string) error {
	return s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		t := now()
		rows := make([]models.TargetState, len(targetIDs))
		for i, id := range targetIDs {
			rows[i] = models.TargetState{TargetID: id, CurrentReleaseID: releaseID, CurrentVersion: version,
				LastKnownGoodID: releaseID, LastKnownGoodVer: version, UpdatedByDeployment: deploymentID, UpdatedAt: t}
		}
		if len(rows) > 0 {
			if err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "target_id"}},
				DoUpdates: clause.AssignmentColumns([]string{"current_release_id", "current_version", "last_known_good_id", "last_known_good_ver", "updated_by_deployment", "updated_at"}),
			}).CreateInBatches(&rows, 1000).Error; err != nil {
				return fmt.Errorf("commit last known good of %d targets: %w", len(rows), err)
			}
		}
		if releaseID != "" { // the point of no return (a decommission has none)
			enqueue(tx, outboxEntry{deploymentID: deploymentID, event: models.NotifyPointOfNoReturn,
				message: fmt.Sprintf("point of no return passed: %s is the last known good of %s", version, models.Plural(len(targetIDs), "target"))})
		}
		return au.record(tx, models.ActionUpdate, "last_known_good", deploymentID, nil,
			map[string]any{"targets": len(targetIDs), "release_id": releaseID, "version": version})
	})
}

// LaneAhead returns the deployments of the same application to the same
// environment that are still active and were submitted before this one:
// they go first.
func (s *Store) LaneAhead(ctx context.Context, d *models.Deployment) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&models.Deployment{}).
		Where("application_id = ? AND environment_id = ? AND id < ? AND status NOT IN ?",
			d.ApplicationID, d.EnvironmentID, d.ID, models.TerminalStatuses).
		Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("find deployments ahead of %s: %w", d.ID, err)
	}
	return ids, nil
}

// CloseOrphan ends a deployment whose workflow is gone (terminated by an
// operator, say) while its row still says it is active, so that it no
// longer holds up the lane. A deployment that ended meanwhile is left alone.
func (s *Store) CloseOrphan(ctx context.Context, id, reason string) error {
	return s.write(ctx, Actor{Subject: "transit-worker"}, func(tx *gorm.DB, au *auditor) error {
		d, err := get[models.Deployment](ctx, tx, kindDeployment, id)
		if err != nil || d.Status.Terminal() {
			return err
		}
		t := now()
		if err := tx.Model(&models.Deployment{}).Where("id = ?", id).Updates(map[string]any{
			"status": models.StatusFailed, "outcome": reason, "finished_at": t, "updated_at": t,
			"hold": models.NewJSON[*models.Hold](nil)}).Error; err != nil {
			return fmt.Errorf("close orphaned deployment %s: %w", id, err)
		}
		if err := insertEvent(tx, id, "orphaned", models.DeploymentEvent{Type: models.EventOrphaned, Status: models.StatusFailed, Message: reason}); err != nil {
			return err
		}
		return au.record(tx, models.ActionUpdate, "deployment", id, map[string]any{"status": d.Status},
			map[string]any{"status": models.StatusFailed, "outcome": reason})
	})
}

// ActiveInLane returns the active deployments of the application to the
// environment other than exclude, oldest first, at most limit.
func (s *Store) ActiveInLane(ctx context.Context, applicationID, environmentID, exclude string, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&models.Deployment{}).
		Where("application_id = ? AND environment_id = ? AND id <> ? AND status NOT IN ?",
			applicationID, environmentID, exclude, models.TerminalStatuses).
		Order("id").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("find active deployments of the lane of %s: %w", exclude, err)
	}
	return ids, nil
}

// NextInLane returns the oldest active deployment of the application to the
// environment other than exclude, or "" when there is none.
func (s *Store) NextInLane(ctx context.Context, applicationID, environmentID, exclude string) (string, error) {
	ids, err := s.ActiveInLane(ctx, applicationID, environmentID, exclude, 1)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// RollingOutInLane returns the other deployments of the application to the
// environment that are changing targets now (deploying, paused mid-rollout,
// validating, rolling back): none may run beside another.
func (s *Store) RollingOutInLane(ctx context.Context, applicationID, environmentID, exclude string) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&models.Deployment{}).
		Where("application_id = ? AND environment_id = ? AND id <> ? AND status IN ?", applicationID, environmentID, exclude,
			[]models.Status{models.StatusDeploying, models.StatusPaused, models.StatusValidating, models.StatusRollingBack}).
		Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("find deployments rolling out beside %s: %w", exclude, err)
	}
	return ids, nil
}

// RecentOutcomes counts how the last n finished deployments to the
// environment ended: failed (rolled back or failed) out of total.
func (s *Store) RecentOutcomes(ctx context.Context, environmentID string, n int) (failed, total int, err error) {
	var statuses []models.Status
	err = s.db.WithContext(ctx).Model(&models.Deployment{}).
		Where("environment_id = ? AND status IN ?", environmentID,
			[]models.Status{models.StatusCompleted, models.StatusCompletedWithIssues, models.StatusRolledBack, models.StatusFailed}).
		Order("id DESC").Limit(n).Pluck("status", &statuses).Error
	if err != nil {
		return 0, 0, fmt.Errorf("recent outcomes of %s: %w", environmentID, err)
	}
	for _, st := range statuses {
		if st == models.StatusRolledBack || st == models.StatusFailed {
			failed++
		}
	}
	return failed, len(statuses), nil
}

// CreateIncident links an incident to a deployment.
func (s *Store) CreateIncident(ctx context.Context, actor Actor, in *models.Incident) error {
	_, err := s.CreateIncidentOnce(ctx, actor, in)
	return err
}

// CreateIncidentOnce links an incident to a deployment unless one with its
// id exists already (a retried activity); created says whether it did.
func (s *Store) CreateIncidentOnce(ctx context.Context, actor Actor, in *models.Incident) (created bool, err error) {
	v := &models.ValidationError{}
	if models.SeverityRank(in.Severity) < 0 {
		v.Add("severity", "%q must be one of critical, high, medium, low", in.Severity)
	}
	models.CheckText(v, "title", in.Title)
	if in.Title == "" {
		v.Add("title", "is required: say what is wrong")
	} else if len(in.Title) > models.IncidentTitleMax {
		v.Add("title", "must be at most %d characters", models.IncidentTitleMax)
	}
	if err := v.Err(); err != nil {
		return false, err
	}
	if in.ID == "" {
		in.ID = models.NewID("inc")
	}
	in.Status, in.ReportedBy, in.CreatedAt = models.IncidentOpen, actor.Subject, now()
	err = s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		var n int64
		if err := tx.Model(&models.Incident{}).Where("id = ?", in.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil // recorded already (a retried activity)
		}
		if err := exists(tx, kindDeployment, "deployment_id", in.DeploymentID); err != nil {
			return err
		}
		if err := tx.Create(in).Error; err != nil {
			return translate(err, "incident")
		}
		msg := fmt.Sprintf("%s incident linked by %s: %s", in.Severity, in.ReportedBy, in.Title)
		if err := insertEvent(tx, in.DeploymentID, "incident/"+in.ID, models.DeploymentEvent{Type: models.EventIncident,
			Message: msg}); err != nil {
			return err
		}
		enqueue(tx, outboxEntry{deploymentID: in.DeploymentID, event: models.NotifyIncidentOpened, key: in.ID, message: msg, incident: in})
		created = true
		return au.record(tx, models.ActionCreate, "incident", in.ID, nil, in)
	})
	if err == nil {
		flushDeliveries(ctx) // a probe's incident is told now, not when its long activity ends
	}
	return created, err
}

// ResolveIncident marks an incident of the deployment resolved, with the
// comment as its resolution; resolving it again changes nothing.
func (s *Store) ResolveIncident(ctx context.Context, actor Actor, deploymentID, id, comment string) (*models.Incident, error) {
	resolved := models.IncidentResolved
	var resolution *string
	if comment != "" {
		resolution = &comment
	}
	return s.UpdateIncident(ctx, actor, deploymentID, id, &resolved, resolution, nil)
}

// ListIncidents returns the incidents linked to a deployment.
func (s *Store) ListIncidents(ctx context.Context, deploymentID string) ([]models.Incident, error) {
	var out []models.Incident
	if err := s.db.WithContext(ctx).Where("deployment_id = ?", deploymentID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list incidents of %s: %w", deploymentID, err)
	}
	return out, nil
}

// LiveTokensOf returns a subject's tokens that are neither revoked nor expired.
func (s *Store) LiveTokensOf(ctx context.Context, subject string) ([]models.APIToken, error) {
	var toks []models.APIToken
	if err := s.db.WithContext(ctx).Where("subject = ? AND revoked_at IS NULL", subject).Order("id").Find(&toks).Error; err != nil {
		return nil, fmt.Errorf("look up the tokens of %s: %w", subject, err)
	}
	live := toks[:0]
	for _, t := range toks {
		if t.ExpiresAt == nil || time.Now().Before(*t.ExpiresAt) {
			live = append(live, t)
		}
	}
	return live, nil
}

// PrincipalOf returns who a subject is by its live tokens (those of
// LiveTokensOf): the union of their groups, roles and teams, with the
// tokens themselves. The subject is unknown when there are none.
func (s *Store) PrincipalOf(ctx context.Context, subject string) (models.Principal, []models.APIToken, error) {
	toks, err := s.LiveTokensOf(ctx, subject)
	if err != nil {
		return models.Principal{}, nil, err
	}
	groups, roles, teams := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, t := range toks {
		p := t.Principal()
		for set, names := range map[*map[string]bool][]string{&groups: p.Groups, &roles: p.Roles, &teams: p.Teams} {
			for _, n := range names {
				(*set)[n] = true
			}
		}
	}
	return models.Principal{Subject: subject, Groups: models.SortedKeys(groups), Roles: models.SortedKeys(roles),
		Teams: models.SortedKeys(teams)}, toks, nil
}

// SimulatedVersion returns what runs on a simulated target.
func (s *Store) SimulatedVersion(ctx context.Context, targetID string) (string, error) {
	var v []string
	if err := s.db.WithContext(ctx).Table("simulated_targets").Where("target_id = ?", targetID).Pluck("version", &v).Error; err != nil {
		return "", fmt.Errorf("read simulated target %s: %w", targetID, err)
	}
	if len(v) == 0 {
		return "", nil
	}
	return v[0], nil
}

// SetSimulatedVersion records what now runs on a simulated target and counts the change.
func (s *Store) SetSimulatedVersion(ctx context.Context, targetID, version string) error {
	err := s.db.WithContext(ctx).Exec(`INSERT INTO simulated_targets (target_id, version, changes, updated_at) VALUES (?, ?, 1, ?)
		ON CONFLICT (target_id) DO UPDATE SET version = excluded.version, changes = simulated_targets.changes + 1, updated_at = excluded.updated_at`,
		targetID, version, now()).Error
	if err != nil {
		return fmt.Errorf("write simulated target %s: %w", targetID, err)
	}
	return nil
}

// SimulatedChanges returns how many times each simulated target was changed.
func (s *Store) SimulatedChanges(ctx context.Context, targetIDs []string) (map[string]int, error) {
	var rows []struct {
		TargetID string
		Changes  int
	}
	if err := s.db.WithContext(ctx).Table("simulated_targets").Where("target_id IN ?", targetIDs).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.TargetID] = r.Changes
	}
	return out, nil
}

// CountDeploymentsByStatus counts deployments in each status.
func (s *Store) CountDeploymentsByStatus(ctx context.Context) (map[models.Status]int, error) {
	var rows []struct {
		Status models.Status
		N      int
	}
	if err := s.db.WithContext(ctx).Model(&models.Deployment{}).Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count deployments: %w", err)
	}
	out := map[models.Status]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

// SavePlan stores a deployment's plan, with the scenario it settled on and
// its number of waves.
func (s *Store) SavePlan(ctx context.Context, actor Actor, id string, plan *models.Plan) error {
	err := s.db.WithContext(ctx).Model(&models.Deployment{}).Where("id = ?", id).Updates(map[string]any{
		"plan": models.NewJSON(plan), "scenario": plan.Scenario, "wave_count": len(plan.Waves), "updated_at": now()}).Error
	if err != nil {
		return fmt.Errorf("save the plan of %s: %w", id, err)
	}
	return nil
}

// ActiveInEnvironment returns the deployments to an environment that may
// still wait for its windows and freezes: queued, scheduled, deploying or
// paused.
func (s *Store) ActiveInEnvironment(ctx context.Context, environmentID string) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&models.Deployment{}).
		Where("environment_id = ? AND status IN ?", environmentID,
			[]models.Status{models.StatusQueued, models.StatusAwaitingApproval, models.StatusScheduled, models.StatusDeploying, models.StatusPaused}).
		Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("find active deployments of environment %s: %w", environmentID, err)
	}
	return ids, nil
}

// InferScenario says what deploying version to an environment does, from
// what Transit recorded as running on its targets (planning asks the
// targets themselves, and may say otherwise).
func (s *Store) InferScenario(ctx context.Context, environmentID, version string) (string, error) {
	var running []string
	err := s.db.WithContext(ctx).Table("target_states").
		Joins("JOIN targets ON targets.id = target_states.target_id").
		Where("targets.environment_id = ?", environmentID).Pluck("target_states.current_version", &running).Error
	if err != nil {
		return "", fmt.Errorf("what runs in environment %s: %w", environmentID, err)
	}
	return models.InferScenario(running, version), nil
}
