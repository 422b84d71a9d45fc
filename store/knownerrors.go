package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

var kindKnownError = kind{name: "known error", table: "known_errors",
	filters: []string{"application_id", "release_id", "status", "severity"},
	refs:    []ref{{"incidents", "known_error_id", "incident"}}}

// CreateKnownError records a known error of an application (or of one of
// its releases).
func (s *Store) CreateKnownError(ctx context.Context, actor Actor, k *models.KnownError) error {
	if k.Status == "" {
		k.Status = models.KnownErrorOpen
	}
	if err := k.Validate(); err != nil {
		return err
	}
	k.ID, k.CreatedBy = models.NewID(models.PrefixKnownError), actor.Subject
	k.CreatedAt = now()
	k.UpdatedAt = k.CreatedAt
	if k.Status == models.KnownErrorResolved {
		at := k.CreatedAt
		k.ResolvedAt = &at
	}
	return create(ctx, s, actor, kindKnownError, k.ID, k, func(tx *gorm.DB) error {
		if err := exists(tx, kindApplication, "application_id", k.ApplicationID); err != nil {
			return err
		}
		if k.ReleaseID == "" {
			return nil
		}
		var rel models.Release
		if err := tx.Table("releases").Where("id = ?", k.ReleaseID).Take(&rel).Error; err != nil {
			return models.Invalid("release_id", "no release has id %q", k.ReleaseID)
		}
		if rel.ApplicationID != k.ApplicationID {
			return models.Invalid("release_id", "release %s is not of application %s", k.ReleaseID, k.ApplicationID)
		}
		return nil
	})
}

// GetKnownError returns one known error.
func (s *Store) GetKnownError(ctx context.Context, id string) (*models.KnownError, error) {
	return get[models.KnownError](ctx, s.db, kindKnownError, id)
}

// ListKnownErrors lists known errors; filters application_id, release_id,
// status, severity.
func (s *Store) ListKnownErrors(ctx context.Context, opt ListOptions) (Page[models.KnownError], error) {
	return list(ctx, s.db, kindKnownError, opt, func(k models.KnownError) string { return k.ID })
}

// UpdateKnownError changes a known error; resolving it stamps resolved_at.
func (s *Store) UpdateKnownError(ctx context.Context, actor Actor, id string, mutate func(*models.KnownError)) (*models.KnownError, error) {
	return update(ctx, s, actor, kindKnownError, id, func(_ *gorm.DB, k *models.KnownError) error {
		was := k.Status
		mutate(k)
		if err := k.Validate(); err != nil {
			return err
		}
		k.UpdatedAt = now()
		switch {
		case k.Status == models.KnownErrorResolved && was != models.KnownErrorResolved:
			at := k.UpdatedAt
			k.ResolvedAt = &at
		case k.Status == models.KnownErrorOpen:
			k.ResolvedAt = nil
		}
		return nil
	})
}

// OpenKnownErrors returns the open known errors a release carries: its
// own, and those of its application that name no release.
func (s *Store) OpenKnownErrors(ctx context.Context, rel *models.Release) ([]models.KnownError, error) {
	var out []models.KnownError
	err := s.db.WithContext(ctx).Where("application_id = ? AND status = ? AND (release_id = ? OR release_id = '')",
		rel.ApplicationID, models.KnownErrorOpen, rel.ID).Order("id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list the open known errors of release %s: %w", rel.ID, err)
	}
	return out, nil
}

// UpdateIncident resolves or reopens an incident of the deployment, with a
// resolution, and links it to a known error; the timeline and the audit
// log say so.
func (s *Store) UpdateIncident(ctx context.Context, actor Actor, deploymentID, id string, status, resolution, knownErrorID *string) (*models.Incident, error) {
	v := &models.ValidationError{}
	if status != nil && *status != models.IncidentOpen && *status != models.IncidentResolved {
		v.Add("status", "%q must be open or resolved", *status)
	}
	if resolution != nil {
		models.CheckText(v, "resolution", *resolution)
		if len(*resolution) > 4096 {
			v.Add("resolution", "must be at most 4096 characters")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var out models.Incident
	err := s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		if err := tx.Where("id = ? AND deployment_id = ?", id, deploymentID).Take(&out).Error; err != nil {
			return fmt.Errorf("deployment %s has no incident %q: %w", deploymentID, id, models.ErrNotFound)
		}
		before := out
		if knownErrorID != nil && *knownErrorID != "" {
			var k models.KnownError
			if err := tx.Where("id = ?", *knownErrorID).Take(&k).Error; err != nil {
				return models.Invalid("known_error_id", "no known error has id %q", *knownErrorID)
			}
			var app string
			if err := tx.Table("deployments").Where("id = ?", deploymentID).Pluck("application_id", &app).Error; err != nil {
				return err
			}
			if k.ApplicationID != app {
				return models.Invalid("known_error_id", "known error %s is of another application", k.ID)
			}
		}
		if knownErrorID != nil {
			out.KnownErrorID = *knownErrorID
		}
		if resolution != nil {
			out.Resolution = *resolution
		}
		if status != nil && *status != out.Status {
			out.Status = *status
			if out.Status == models.IncidentResolved {
				at := now()
				out.ResolvedAt = &at
			} else {
				out.ResolvedAt = nil
			}
		}
		if before.Status == out.Status && before.Resolution == out.Resolution && before.KnownErrorID == out.KnownErrorID {
			return nil // nothing changes: nothing to record
		}
		// Only if the status is still the one read: of two concurrent
		// resolves, the second records nothing.
		res := tx.Model(&models.Incident{}).Where("id = ? AND status = ?", id, before.Status).Updates(map[string]any{"status": out.Status,
			"resolved_at": out.ResolvedAt, "resolution": out.Resolution, "known_error_id": out.KnownErrorID})
		if res.Error != nil {
			return fmt.Errorf("update incident %s: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("incident %s is no longer %s: another change came first: %w", id, before.Status, models.ErrConflict)
		}
		if before.Status != out.Status {
			msg := fmt.Sprintf("%s incident %s by %s: %s", out.Severity, map[string]string{models.IncidentResolved: "resolved",
				models.IncidentOpen: "reopened"}[out.Status], actor.Subject, out.Title)
			if out.Resolution != "" && out.Status == models.IncidentResolved {
				msg += " (" + out.Resolution + ")"
			}
			key := fmt.Sprintf("incident-%s/%s/%d", out.Status, id, time.Now().UnixNano())
			if err := insertEvent(tx, deploymentID, key, models.DeploymentEvent{Type: models.EventIncident, Message: msg}); err != nil {
				return err
			}
		}
		return au.record(tx, models.ActionUpdate, "incident", id, before, out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
