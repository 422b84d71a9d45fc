package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

// Page is one page of a list, and the cursor for the next one.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ListOptions selects one page of a list: at most Limit items whose id sorts
// after After, matching every filter (column → value).
type ListOptions struct {
	Limit   int
	After   string
	Filters map[string]string
	// Omit leaves these columns out of the items (a deployment's plan).
	Omit []string
	// Newest lists the newest first (After is then the cursor going back).
	Newest bool
}

// Limits of a page.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// kind describes one catalog resource to the generic code below.
type kind struct {
	name    string // as the audit log and errors name it
	table   string
	filters []string // columns a list may filter on
	refs    []ref    // who refers to a row of this kind
}

// ref is a table whose column points at a row; delete is refused while one does.
type ref struct {
	table, column, label string
}

var (
	kindApplication = kind{name: "application", table: "applications",
		filters: []string{"name", "owner_team"},
		refs: []ref{{"environments", "application_id", "environment"}, {"releases", "application_id", "release"},
			{"deployments", "application_id", "deployment"}, {"known_errors", "application_id", "known error"},
			{"notification_subscriptions", "application_id", "subscription"}}}
	kindEnvironment = kind{name: "environment", table: "environments",
		filters: []string{"application_id", "name"},
		refs: []ref{{"targets", "environment_id", "target"}, {"deployments", "environment_id", "deployment"},
			{"notification_subscriptions", "environment_id", "subscription"}}}
	kindTarget = kind{name: "target", table: "targets",
		filters: []string{"environment_id", "name", "driver"},
		refs:    []ref{{"deployment_targets", "target_id", "deployment"}}}
	kindRelease = kind{name: "release", table: "releases",
		filters: []string{"application_id", "version"},
		refs:    []ref{{"deployments", "release_id", "deployment"}, {"known_errors", "release_id", "known error"}}}
)

func get[T any](ctx context.Context, db *gorm.DB, k kind, id string) (*T, error) {
	var out T
	err := db.WithContext(ctx).Table(k.table).Where("id = ?", id).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%s %q: %w", k.name, id, models.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", k.name, id, err)
	}
	return &out, nil
}

func list[T any](ctx context.Context, db *gorm.DB, k kind, opt ListOptions, cursor func(T) string) (Page[T], error) {
	limit := opt.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	if limit > MaxPageSize {
		limit = MaxPageSize
	}
	q := db.WithContext(ctx).Table(k.table)
	for _, col := range k.filters {
		if v, ok := opt.Filters[col]; ok && v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	order := "id"
	switch {
	case opt.Newest && opt.After != "":
		q = q.Where("id < ?", opt.After)
	case opt.After != "":
		q = q.Where("id > ?", opt.After)
	}
	if opt.Newest {
		order = "id DESC"
	}
	if len(opt.Omit) > 0 {
		q = q.Omit(opt.Omit...)
	}
	var items []T
	if err := q.Order(order).Limit(limit + 1).Find(&items).Error; err != nil {
		return Page[T]{}, fmt.Errorf("list %ss: %w", k.name, err)
	}
	page := Page[T]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = cursor(items[limit-1])
	}
	if page.Items == nil {
		page.Items = []T{}
	}
	return page, nil
}

// create inserts v and audits it.
func create[T any](ctx context.Context, s *Store, actor Actor, k kind, id string, v *T, check func(tx *gorm.DB) error) error {
	return s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		if err := tx.Table(k.table).Create(v).Error; err != nil {
			return translate(err, k.name)
		}
		return au.record(tx, models.ActionCreate, k.name, id, nil, v)
	})
}

// update loads the row, lets mutate change it, saves it and audits before and after.
func update[T any](ctx context.Context, s *Store, actor Actor, k kind, id string, mutate func(tx *gorm.DB, v *T) error) (*T, error) {
	var out *T
	err := s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		before, err := get[T](ctx, tx, k, id)
		if err != nil {
			return err
		}
		after := *before
		if err := mutate(tx, &after); err != nil {
			return err
		}
		if err := tx.Table(k.table).Where("id = ?", id).Save(&after).Error; err != nil {
			return translate(err, k.name)
		}
		out = &after
		return au.record(tx, models.ActionUpdate, k.name, id, before, after)
	})
	return out, err
}

// remove deletes the row unless something refers to it, and audits it.
func remove[T any](ctx context.Context, s *Store, actor Actor, k kind, id string) error {
	return s.write(ctx, actor, func(tx *gorm.DB, au *auditor) error {
		before, err := get[T](ctx, tx, k, id)
		if err != nil {
			return err
		}
		var held []string
		for _, r := range k.refs {
			var n int64
			if err := tx.Table(r.table).Where(r.column+" = ?", id).Count(&n).Error; err != nil {
				return fmt.Errorf("count %ss of %s %s: %w", r.label, k.name, id, err)
			}
			if n > 0 {
				held = append(held, plural(n, r.label))
			}
		}
		if len(held) > 0 {
			return fmt.Errorf("%s %s is still referenced by %s; delete those first: %w",
				k.name, id, strings.Join(held, " and "), models.ErrConflict)
		}
		if err := tx.Table(k.table).Where("id = ?", id).Delete(new(T)).Error; err != nil {
			return translate(err, k.name)
		}
		return au.record(tx, models.ActionDelete, k.name, id, before, nil)
	})
}

func plural(n int64, label string) string {
	if n == 1 {
		return "1 " + label
	}
	return fmt.Sprintf("%d %ss", n, label)
}

// translate turns constraint violations into domain errors.
func translate(err error, what string) error {
	switch {
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("a %s with that name already exists: %w", what, models.ErrConflict)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return fmt.Errorf("the %s refers to something that does not exist, or is still referenced: %w", what, models.ErrConflict)
	}
	return fmt.Errorf("write %s: %w", what, err)
}

// exists returns ErrInvalid naming field when no row of k has id.
func exists(tx *gorm.DB, k kind, field, id string) error {
	var n int64
	if err := tx.Table(k.table).Where("id = ?", id).Count(&n).Error; err != nil {
		return fmt.Errorf("look up %s %s: %w", k.name, id, err)
	}
	if n == 0 {
		return models.Invalid(field, "no %s has id %q", k.name, id)
	}
	return nil
}

// unique returns ErrConflict when a row of k already matches where.
func unique(tx *gorm.DB, k kind, message string, where string, args ...any) error {
	var n int64
	if err := tx.Table(k.table).Where(where, args...).Count(&n).Error; err != nil {
		return fmt.Errorf("check %s is unique: %w", k.name, err)
	}
	if n > 0 {
		return fmt.Errorf("%s: %w", message, models.ErrConflict)
	}
	return nil
}

// --- applications

// CreateApplication validates and stores a new application.
func (s *Store) CreateApplication(ctx context.Context, actor Actor, a *models.Application) error {
	if err := a.Validate(); err != nil {
		return err
	}
	a.ID, a.CreatedBy = models.NewID(models.PrefixApplication), actor.Subject
	return create(ctx, s, actor, kindApplication, a.ID, a, func(tx *gorm.DB) error {
		return unique(tx, kindApplication, fmt.Sprintf("an application named %q already exists", a.Name), "name = ?", a.Name)
	})
}

// GetApplication loads an application by id, or by name when no id matches.
func (s *Store) GetApplication(ctx context.Context, idOrName string) (*models.Application, error) {
	if !strings.HasPrefix(idOrName, models.PrefixApplication+"_") {
		var a models.Application
		err := s.db.WithContext(ctx).Where("name = ?", idOrName).Take(&a).Error
		if err == nil {
			return &a, nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, fmt.Errorf("load application %s: %w", idOrName, err)
		}
	}
	return get[models.Application](ctx, s.db, kindApplication, idOrName)
}

// ListApplications lists applications; filters: name, owner_team.
func (s *Store) ListApplications(ctx context.Context, opt ListOptions) (Page[models.Application], error) {
	return list(ctx, s.db, kindApplication, opt, func(a models.Application) string { return a.ID })
}

// UpdateApplication applies mutate to an application and validates the result.
func (s *Store) UpdateApplication(ctx context.Context, actor Actor, id string, mutate func(*models.Application)) (*models.Application, error) {
	return update(ctx, s, actor, kindApplication, id, func(tx *gorm.DB, a *models.Application) error {
		old := a.Name
		mutate(a)
		if err := a.Validate(); err != nil {
			return err
		}
		if a.Name != old {
			return unique(tx, kindApplication, fmt.Sprintf("an application named %q already exists", a.Name), "name = ?", a.Name)
		}
		return nil
	})
}

// DeleteApplication deletes an application that nothing refers to.
func (s *Store) DeleteApplication(ctx context.Context, actor Actor, id string) error {
	return remove[models.Application](ctx, s, actor, kindApplication, id)
}

// --- environments

// CreateEnvironment validates and stores a new environment.
func (s *Store) CreateEnvironment(ctx context.Context, actor Actor, e *models.Environment) error {
	if err := e.Validate(); err != nil {
		return err
	}
	e.ID, e.CreatedBy = models.NewID(models.PrefixEnvironment), actor.Subject
	return create(ctx, s, actor, kindEnvironment, e.ID, e, func(tx *gorm.DB) error {
		if err := exists(tx, kindApplication, "application_id", e.ApplicationID); err != nil {
			return err
		}
		return unique(tx, kindEnvironment, fmt.Sprintf("application %s already has an environment named %q", e.ApplicationID, e.Name),
			"application_id = ? AND name = ?", e.ApplicationID, e.Name)
	})
}

// GetEnvironment loads an environment.
func (s *Store) GetEnvironment(ctx context.Context, id string) (*models.Environment, error) {
	return get[models.Environment](ctx, s.db, kindEnvironment, id)
}

// ListEnvironments lists environments; filters: application_id, name.
func (s *Store) ListEnvironments(ctx context.Context, opt ListOptions) (Page[models.Environment], error) {
	return list(ctx, s.db, kindEnvironment, opt, func(e models.Environment) string { return e.ID })
}

// UpdateEnvironment applies mutate to an environment and validates the result.
func (s *Store) UpdateEnvironment(ctx context.Context, actor Actor, id string, mutate func(*models.Environment)) (*models.Environment, error) {
	return update(ctx, s, actor, kindEnvironment, id, func(tx *gorm.DB, e *models.Environment) error {
		old := e.Name
		mutate(e)
		if err := e.Validate(); err != nil {
			return err
		}
		if e.Name != old {
			return unique(tx, kindEnvironment, fmt.Sprintf("application %s already has an environment named %q", e.ApplicationID, e.Name),
				"application_id = ? AND name = ?", e.ApplicationID, e.Name)
		}
		return nil
	})
}

// DeleteEnvironment deletes an environment that nothing refers to.
func (s *Store) DeleteEnvironment(ctx context.Context, actor Actor, id string) error {
	return remove[models.Environment](ctx, s, actor, kindEnvironment, id)
}

// --- targets

// CreateTarget validates and stores a new target.
func (s *Store) CreateTarget(ctx context.Context, actor Actor, t *models.Target) error {
	if t.Labels.V == nil {
		t.Labels.V = map[string]string{}
	}
	if err := t.Validate(); err != nil {
		return err
	}
	t.ID, t.CreatedBy = models.NewID(models.PrefixTarget), actor.Subject
	return create(ctx, s, actor, kindTarget, t.ID, t, func(tx *gorm.DB) error {
		if err := exists(tx, kindEnvironment, "environment_id", t.EnvironmentID); err != nil {
			return err
		}
		return unique(tx, kindTarget, fmt.Sprintf("environment %s already has a target named %q", t.EnvironmentID, t.Name),
			"environment_id = ? AND name = ?", t.EnvironmentID, t.Name)
	})
}

// GetTarget loads a target.
func (s *Store) GetTarget(ctx context.Context, id string) (*models.Target, error) {
	return get[models.Target](ctx, s.db, kindTarget, id)
}

// ListTargets lists targets; filters: environment_id, name, driver.
func (s *Store) ListTargets(ctx context.Context, opt ListOptions) (Page[models.Target], error) {
	return list(ctx, s.db, kindTarget, opt, func(t models.Target) string { return t.ID })
}

// UpdateTarget applies mutate to a target and validates the result.
func (s *Store) UpdateTarget(ctx context.Context, actor Actor, id string, mutate func(*models.Target)) (*models.Target, error) {
	return update(ctx, s, actor, kindTarget, id, func(tx *gorm.DB, t *models.Target) error {
		old := t.Name
		mutate(t)
		if err := t.Validate(); err != nil {
			return err
		}
		if t.Name != old {
			return unique(tx, kindTarget, fmt.Sprintf("environment %s already has a target named %q", t.EnvironmentID, t.Name),
				"environment_id = ? AND name = ?", t.EnvironmentID, t.Name)
		}
		return nil
	})
}

// DeleteTarget deletes a target that nothing refers to.
func (s *Store) DeleteTarget(ctx context.Context, actor Actor, id string) error {
	return remove[models.Target](ctx, s, actor, kindTarget, id)
}

// --- releases

// CreateRelease validates and stores a new, immutable release.
func (s *Store) CreateRelease(ctx context.Context, actor Actor, r *models.Release) error {
	if r.EntryCriteria.V == nil {
		r.EntryCriteria.V = map[string]string{}
	}
	if err := r.Validate(); err != nil {
		return err
	}
	r.ID, r.CreatedBy = models.NewID(models.PrefixRelease), actor.Subject
	return create(ctx, s, actor, kindRelease, r.ID, r, func(tx *gorm.DB) error {
		if err := exists(tx, kindApplication, "application_id", r.ApplicationID); err != nil {
			return err
		}
		return unique(tx, kindRelease, fmt.Sprintf("application %s already has release %s; releases are immutable, so publish a new version", r.ApplicationID, r.Version),
			"application_id = ? AND version = ?", r.ApplicationID, r.Version)
	})
}

// GetRelease loads a release.
func (s *Store) GetRelease(ctx context.Context, id string) (*models.Release, error) {
	return get[models.Release](ctx, s.db, kindRelease, id)
}

// ListReleases lists releases; filters: application_id, version.
func (s *Store) ListReleases(ctx context.Context, opt ListOptions) (Page[models.Release], error) {
	return list(ctx, s.db, kindRelease, opt, func(r models.Release) string { return r.ID })
}

// DeleteRelease deletes a release that nothing refers to.
func (s *Store) DeleteRelease(ctx context.Context, actor Actor, id string) error {
	return remove[models.Release](ctx, s, actor, kindRelease, id)
}

// FindRelease loads the release of an application (by id or name) with a version.
func (s *Store) FindRelease(ctx context.Context, application, version string) (*models.Release, error) {
	app, err := s.GetApplication(ctx, application)
	if err != nil {
		return nil, err
	}
	var r models.Release
	err = s.db.WithContext(ctx).Where("application_id = ? AND version = ?", app.ID, version).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("release %s of %s: %w", version, app.Name, models.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load release %s of %s: %w", version, app.Name, err)
	}
	return &r, nil
}

// ReleaseLifecycle is where a release stands in each environment of its
// application (by position): its last deployment there.
func (s *Store) ReleaseLifecycle(ctx context.Context, rel *models.Release) ([]models.LifecycleStep, error) {
	var envs []models.Environment
	if err := s.db.WithContext(ctx).Where("application_id = ?", rel.ApplicationID).Order("position, name").Find(&envs).Error; err != nil {
		return nil, fmt.Errorf("list environments of %s: %w", rel.ApplicationID, err)
	}
	var deps []models.Deployment
	if err := s.db.WithContext(ctx).Omit("plan").Where("release_id = ?", rel.ID).Order("id").Find(&deps).Error; err != nil {
		return nil, fmt.Errorf("list deployments of release %s: %w", rel.ID, err)
	}
	steps := make([]models.LifecycleStep, len(envs))
	at := map[string]int{}
	for i, e := range envs {
		steps[i] = models.LifecycleStep{EnvironmentID: e.ID, Environment: e.Name, Position: e.Position}
		at[e.ID] = i
	}
	for _, d := range deps {
		i, ok := at[d.EnvironmentID]
		if !ok {
			continue
		}
		st := &steps[i]
		st.Deployments++
		st.DeploymentID, st.Scenario, st.Status, st.FinishedAt = d.ID, d.Scenario, d.Status, d.FinishedAt
	}
	return steps, nil
}
