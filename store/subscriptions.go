package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/transit-hq/transit/models"
)

var (
	kindSubscription = kind{name: "subscription", table: "notification_subscriptions",
		filters: []string{"application_id", "environment_id", "format"}}
	kindDelivery = kind{name: "delivery", table: "notification_deliveries",
		filters: []string{"subscription_id", "deployment_id", "event", "status"}}
)

// --- subscriptions

// CreateSubscription validates and stores a new subscription; its filters
// must name an application and an environment that exist (and the
// environment must be the application's).
func (s *Store) CreateSubscription(ctx context.Context, actor Actor, sub *models.Subscription) error {
	if err := sub.Validate(); err != nil {
		return err
	}
	sub.ID, sub.CreatedBy = models.NewID(models.PrefixSubscription), actor.Subject
	return create(ctx, s, actor, kindSubscription, sub.ID, sub, func(tx *gorm.DB) error {
		return checkFilters(tx, sub)
	})
}

// GetSubscription loads a subscription.
func (s *Store) GetSubscription(ctx context.Context, id string) (*models.Subscription, error) {
	return get[models.Subscription](ctx, s.db, kindSubscription, id)
}

// ListSubscriptions lists subscriptions; filters: application_id,
// environment_id, format.
func (s *Store) ListSubscriptions(ctx context.Context, opt ListOptions) (Page[models.Subscription], error) {
	return list(ctx, s.db, kindSubscription, opt, func(sub models.Subscription) string { return sub.ID })
}

// UpdateSubscription applies mutate to a subscription and validates the
// result. Deliveries already in the outbox keep the body they were built
// with, and go to the subscription's URL as it is when they are sent.
func (s *Store) UpdateSubscription(ctx context.Context, actor Actor, id string, mutate func(*models.Subscription)) (*models.Subscription, error) {
	return update(ctx, s, actor, kindSubscription, id, func(tx *gorm.DB, sub *models.Subscription) error {
		mutate(sub)
		if err := sub.Validate(); err != nil {
			return err
		}
		return checkFilters(tx, sub)
	})
}

// DeleteSubscription deletes a subscription and its deliveries; one being
// sent is dropped.
func (s *Store) DeleteSubscription(ctx context.Context, actor Actor, id string) error {
	return remove[models.Subscription](ctx, s, actor, kindSubscription, id)
}

// checkFilters refuses filters that name nothing, or an environment of
// another application than the one named.
func checkFilters(tx *gorm.DB, sub *models.Subscription) error {
	if sub.ApplicationID != nil {
		if err := exists(tx, kindApplication, "application_id", *sub.ApplicationID); err != nil {
			return err
		}
	}
	if sub.EnvironmentID == nil {
		return nil
	}
	var apps []string
	if err := tx.Table(kindEnvironment.table).Where("id = ?", *sub.EnvironmentID).Pluck("application_id", &apps); err.Error != nil {
		return fmt.Errorf("look up environment %s: %w", *sub.EnvironmentID, err.Error)
	}
	switch {
	case len(apps) == 0:
		return models.Invalid("environment_id", "no environment has id %q", *sub.EnvironmentID)
	case sub.ApplicationID != nil && apps[0] != *sub.ApplicationID:
		return models.Invalid("environment_id", "environment %s belongs to application %s, not to %s: leave application_id out, or name the environment's own",
			*sub.EnvironmentID, apps[0], *sub.ApplicationID)
	}
	return nil
}

// ListDeliveries lists a subscription's deliveries, oldest first; filters:
// deployment_id, event, status.
func (s *Store) ListDeliveries(ctx context.Context, subscriptionID string, opt ListOptions) (Page[models.Delivery], error) {
	if _, err := s.GetSubscription(ctx, subscriptionID); err != nil {
		return Page[models.Delivery]{}, err
	}
	filters := map[string]string{}
	for k, v := range opt.Filters {
		filters[k] = v
	}
	filters["subscription_id"] = subscriptionID
	opt.Filters = filters
	return list(ctx, s.db, kindDelivery, opt, func(d models.Delivery) string { return d.ID })
}

// --- the outbox

// PendingDelivery is a delivery whose workflow is to be started.
type PendingDelivery struct {
	ID           string
	DeploymentID string
	Event        models.NotifyEvent
	URL          string
}

// NewDeliveries collects the deliveries that writes made with its context
// put in the outbox, so that whoever made the writes starts their
// workflows once the writes are committed (the store does not know
// Temporal). What it misses, the sweeper starts (UnstartedDeliveries).
type NewDeliveries struct {
	mu    sync.Mutex
	seen  map[string]bool
	list  []PendingDelivery
	start func([]PendingDelivery)
}

type newDeliveriesKey struct{}

// CollectDeliveries returns ctx carrying a collector of new deliveries;
// Flush passes those collected so far to start.
func CollectDeliveries(ctx context.Context, start func([]PendingDelivery)) (context.Context, *NewDeliveries) {
	nd := &NewDeliveries{seen: map[string]bool{}, start: start}
	return context.WithValue(ctx, newDeliveriesKey{}, nd), nd
}

func (nd *NewDeliveries) add(p PendingDelivery) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if !nd.seen[p.ID] {
		nd.seen[p.ID] = true
		nd.list = append(nd.list, p)
	}
}

// Flush hands the deliveries collected since the last flush to start. Call
// it once the writes are committed; a delivery of a write that was rolled
// back meanwhile is not in the outbox, and its workflow finds nothing to do.
func (nd *NewDeliveries) Flush() {
	if nd == nil {
		return
	}
	nd.mu.Lock()
	list := nd.list
	nd.list = nil
	nd.mu.Unlock()
	if len(list) > 0 && nd.start != nil {
		nd.start(list)
	}
}

// flushDeliveries flushes the collector ctx carries, if any: for a write
// that has just committed.
func flushDeliveries(ctx context.Context) {
	if nd, ok := ctx.Value(newDeliveriesKey{}).(*NewDeliveries); ok {
		nd.Flush()
	}
}

// outboxEntry is one event to put in the outbox of every subscription that
// wants it.
type outboxEntry struct {
	deploymentID string
	event        models.NotifyEvent
	// key tells apart events of one kind for one deployment (an incident's
	// id); "" sends the event once per deployment.
	key      string
	at       time.Time
	message  string
	incident *models.Incident
}

// enqueueStatus puts the event a timeline line stands for (a status a
// deployment reached) in the outbox. It is called with every line that is
// newly inserted.
func enqueueStatus(tx *gorm.DB, deploymentID string, ev models.DeploymentEvent) {
	if ev.Type != models.EventStatus && ev.Type != models.EventOrphaned {
		return
	}
	event := models.NotifyEventFor(ev.Status)
	if event == "" {
		return
	}
	enqueue(tx, outboxEntry{deploymentID: deploymentID, event: event, at: ev.At, message: ev.Message})
}

// enqueue writes one delivery per enabled subscription that wants the
// event and whose filters match the deployment, in tx, each once (a
// retried write finds it there). The body is built now, from the
// deployment as tx sees it. Notifications never fail the write they ride
// on: they are written in a savepoint, and a failure is logged and
// dropped (the write goes on without them).
func enqueue(tx *gorm.DB, e outboxEntry) {
	ctx := tx.Statement.Context
	if err := tx.Transaction(func(sp *gorm.DB) error { return enqueueErr(sp, e) }); err != nil {
		tx.Logger.Error(ctx, "notifications of %s for deployment %s not queued: %v", e.event, e.deploymentID, err)
	}
}

func enqueueErr(tx *gorm.DB, e outboxEntry) error {
	var subs []models.Subscription
	if err := tx.Where("enabled = ?", true).Order("id").Find(&subs).Error; err != nil {
		return fmt.Errorf("load subscriptions: %w", err)
	}
	subs = slices.DeleteFunc(subs, func(s models.Subscription) bool { return !s.Wants(e.event) })
	if len(subs) == 0 {
		return nil
	}
	var d deploymentSummary
	err := tx.Table("deployments AS d").
		Select(`d.id, d.application_id, d.environment_id, d.release_version, d.scenario, d.status, d.outcome, d.requested_by, d.reason,
			a.name AS application, e.name AS environment`).
		Joins("JOIN applications a ON a.id = d.application_id").
		Joins("JOIN environments e ON e.id = d.environment_id").
		Where("d.id = ?", e.deploymentID).Take(&d).Error
	if err != nil {
		return fmt.Errorf("load deployment %s: %w", e.deploymentID, err)
	}
	subs = slices.DeleteFunc(subs, func(s models.Subscription) bool {
		return (s.ApplicationID != nil && *s.ApplicationID != d.ApplicationID) ||
			(s.EnvironmentID != nil && *s.EnvironmentID != d.EnvironmentID)
	})
	if len(subs) == 0 {
		return nil
	}
	var quorum *models.Plan
	if e.event == models.NotifyAwaitingApproval {
		var plan models.JSONValue[*models.Plan]
		if err := tx.Table("deployments").Select("plan").Where("id = ?", e.deploymentID).Row().Scan(&plan); err != nil {
			return fmt.Errorf("load the plan of %s: %w", e.deploymentID, err)
		}
		if plan.V == nil {
			return nil
		}
		if n, _ := plan.V.Quorum(); n == 0 {
			return nil // the policy approves it at once: no one is asked
		}
		if ok, _ := plan.V.Policy.StandardChange.Matches(*plan.V); ok && plan.V.Emergency == nil {
			return nil // a standard change: the policy approves it, no one is asked
		}
		quorum = plan.V
	}
	at := e.at
	if at.IsZero() {
		at = now()
	}
	collector, _ := tx.Statement.Context.Value(newDeliveriesKey{}).(*NewDeliveries)
	for _, sub := range subs {
		n := d.notification(sub.PublicURL)
		n.ID, n.Event, n.At, n.Message = models.NewID(models.PrefixDelivery), e.event, at.UTC(), models.CleanText(e.message)
		if quorum != nil {
			required, groups := quorum.Quorum()
			n.Approval = &models.NotificationApproval{Required: required,
				ApproverGroups: append([]string{}, groups...), URL: sub.PublicURL + "/approvals"}
		}
		if in := e.incident; in != nil {
			n.Incident = &models.NotificationIncident{ID: in.ID, Severity: in.Severity, Title: models.CleanText(in.Title),
				Source: in.Source, ReportedBy: in.ReportedBy}
		}
		var body any = n
		if sub.Format == models.FormatSlack {
			body = n.Slack()
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode the body: %w", err)
		}
		t := now()
		row := models.Delivery{ID: n.ID, SubscriptionID: sub.ID, DeploymentID: e.deploymentID, Event: e.event, EventKey: e.key,
			Body: models.JSONText(raw), Status: models.DeliveryPending, CreatedAt: t, UpdatedAt: t}
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
		if res.Error != nil {
			return fmt.Errorf("queue %s for subscription %s: %w", e.event, sub.ID, res.Error)
		}
		if res.RowsAffected > 0 && collector != nil {
			collector.add(PendingDelivery{ID: row.ID, DeploymentID: e.deploymentID, Event: e.event, URL: sub.URL})
		}
	}
	return nil
}

// deploymentSummary is what a notification says of a deployment.
type deploymentSummary struct {
	ID             string
	ApplicationID  string
	EnvironmentID  string
	ReleaseVersion string
	Scenario       string
	Status         models.Status
	Outcome        string
	RequestedBy    string
	Reason         string
	Application    string
	Environment    string
}

func (d deploymentSummary) notification(publicURL string) models.Notification {
	return models.Notification{Deployment: models.NotificationDeployment{
		ID: d.ID, ApplicationID: d.ApplicationID, Application: d.Application, EnvironmentID: d.EnvironmentID, Environment: d.Environment,
		ReleaseVersion: d.ReleaseVersion, Scenario: d.Scenario, Status: d.Status, Outcome: d.Outcome, RequestedBy: d.RequestedBy,
		Reason: d.Reason, URL: publicURL + "/api/v1/deployments/" + d.ID}}
}

// --- sending

// DeliveryToSend loads a delivery and its subscription.
func (s *Store) DeliveryToSend(ctx context.Context, id string) (*models.Delivery, *models.Subscription, error) {
	d, err := get[models.Delivery](ctx, s.db, kindDelivery, id)
	if err != nil {
		return nil, nil, err
	}
	sub, err := s.GetSubscription(ctx, d.SubscriptionID)
	if err != nil {
		return nil, nil, err
	}
	return d, sub, nil
}

// DeliveryAttempt is the result of one try to send a delivery.
type DeliveryAttempt struct {
	// Status is DeliveryDelivered, DeliveryRetrying or DeliveryFailed.
	Status string
	// StatusCode is the receiver's answer (0: none, a connection error).
	StatusCode int
	Error      string
	At         time.Time
}

// RecordDeliveryAttempt counts a try and records its result; last_error
// stays the last failed try's. A delivery that was delivered already stays
// so (a retried activity).
func (s *Store) RecordDeliveryAttempt(ctx context.Context, id string, a DeliveryAttempt) error {
	at := a.At.UTC().Truncate(time.Microsecond)
	cols := map[string]any{"status": a.Status, "attempts": gorm.Expr("attempts + 1"),
		"last_status_code": a.StatusCode, "last_attempt_at": at, "updated_at": now(), "started_at": gorm.Expr("COALESCE(started_at, ?)", at)}
	if a.Error != "" { // a success keeps the error of the try before it
		cols["last_error"] = models.Cut(models.CleanText(a.Error), 2000)
	}
	if a.Status == models.DeliveryDelivered {
		cols["delivered_at"] = at
	}
	err := s.db.WithContext(ctx).Model(&models.Delivery{}).Where("id = ? AND status <> ?", id, models.DeliveryDelivered).Updates(cols).Error
	if err != nil {
		return fmt.Errorf("record a try of delivery %s: %w", id, err)
	}
	return nil
}

// GiveUpDelivery marks a delivery that is not delivered as failed, for
// good, with the reason.
func (s *Store) GiveUpDelivery(ctx context.Context, id, reason string) error {
	err := s.db.WithContext(ctx).Model(&models.Delivery{}).Where("id = ? AND status IN ?", id, []string{models.DeliveryPending, models.DeliveryRetrying}).
		Updates(map[string]any{"status": models.DeliveryFailed, "last_error": models.Cut(models.CleanText(reason), 2000), "updated_at": now()}).Error
	if err != nil {
		return fmt.Errorf("give up delivery %s: %w", id, err)
	}
	return nil
}

// MarkDeliveriesStarted records that the deliveries' workflows were started.
func (s *Store) MarkDeliveriesStarted(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Model(&models.Delivery{}).Where("id IN ? AND started_at IS NULL", ids).
		Update("started_at", now()).Error
	if err != nil {
		return fmt.Errorf("mark %d deliveries started: %w", len(ids), err)
	}
	return nil
}

// UnstartedDeliveries returns, oldest first, at most limit deliveries still
// to send, created before before, whose workflow was never started.
func (s *Store) UnstartedDeliveries(ctx context.Context, before time.Time, limit int) ([]PendingDelivery, error) {
	var rows []struct {
		ID           string
		DeploymentID string
		Event        models.NotifyEvent
		URL          string
	}
	err := s.db.WithContext(ctx).Table("notification_deliveries AS d").
		Select("d.id, d.deployment_id, d.event, s.url").
		Joins("JOIN notification_subscriptions s ON s.id = d.subscription_id").
		Where("d.started_at IS NULL AND d.status IN ? AND d.created_at < ?", []string{models.DeliveryPending, models.DeliveryRetrying}, before.UTC()).
		Order("d.id").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("find deliveries without a workflow: %w", err)
	}
	out := make([]PendingDelivery, len(rows))
	for i, r := range rows {
		out[i] = PendingDelivery{ID: r.ID, DeploymentID: r.DeploymentID, Event: r.Event, URL: r.URL}
	}
	return out, nil
}

// IsDeliveryGone reports whether err says the delivery (or its
// subscription) no longer exists.
func IsDeliveryGone(err error) bool { return errors.Is(err, models.ErrNotFound) }
