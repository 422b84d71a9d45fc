package models

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// NotifyEvent names what a subscription may be told of.
type NotifyEvent string

// The events a subscription may ask for.
const (
	// NotifyAwaitingApproval: the deployment waits for its approvers; the
	// body names the eligible groups and links to the approval page.
	NotifyAwaitingApproval NotifyEvent = "deployment.awaiting_approval"
	// NotifyApproved: the quorum approved (or the policy needs none).
	NotifyApproved NotifyEvent = "deployment.approved"
	// NotifyRejected: an approver, or the entry criteria, rejected it.
	NotifyRejected NotifyEvent = "deployment.rejected"
	// NotifyExpired: no quorum within the policy's approval_expiry.
	NotifyExpired NotifyEvent = "deployment.expired"
	// NotifyStarted: the rollout began (status deploying).
	NotifyStarted NotifyEvent = "deployment.started"
	// NotifyRolledBack: the deployment ended rolled back.
	NotifyRolledBack NotifyEvent = "deployment.rolled_back"
	// NotifyFailed: the deployment ended failed.
	NotifyFailed NotifyEvent = "deployment.failed"
	// NotifyCompleted: the deployment was handed over (completed or
	// completed_with_issues: the body's status says which).
	NotifyCompleted NotifyEvent = "deployment.completed"
	// NotifyPointOfNoReturn: the release became the last known good of its
	// targets; from here on problems are fixed forward.
	NotifyPointOfNoReturn NotifyEvent = "deployment.point_of_no_return"
	// NotifyIncidentOpened: an incident was linked to a deployment.
	NotifyIncidentOpened NotifyEvent = "incident.opened"
)

// NotifyEvents lists every event, in the order a deployment meets them.
var NotifyEvents = []NotifyEvent{NotifyAwaitingApproval, NotifyApproved, NotifyRejected, NotifyExpired, NotifyStarted,
	NotifyPointOfNoReturn, NotifyCompleted, NotifyRolledBack, NotifyFailed, NotifyIncidentOpened}

// NotifyEventFor is the event a deployment reaching status is, or "" when
// no subscription is told of it.
func NotifyEventFor(status Status) NotifyEvent {
	switch status {
	case StatusAwaitingApproval:
		return NotifyAwaitingApproval
	case StatusScheduled:
		return NotifyApproved
	case StatusRejected:
		return NotifyRejected
	case StatusExpired:
		return NotifyExpired
	case StatusDeploying:
		return NotifyStarted
	case StatusRolledBack:
		return NotifyRolledBack
	case StatusFailed:
		return NotifyFailed
	case StatusCompleted, StatusCompletedWithIssues:
		return NotifyCompleted
	}
	return ""
}

// Formats of a subscription's bodies.
const (
	// FormatJSON sends a Notification.
	FormatJSON = "json"
	// FormatSlack sends a Slack-compatible message: text and blocks, with a
	// button to the approval page (or the deployment).
	FormatSlack = "slack"
)

// PrefixSubscription and PrefixDelivery are the id prefixes of
// subscriptions and their deliveries.
const (
	PrefixSubscription = "sub"
	PrefixDelivery     = "dlv"
)

// WorkflowNotification is the registered name of the workflow that
// delivers one notification; its id is NotificationWorkflowID.
const WorkflowNotification = "Notification"

// NotificationWorkflowID derives a delivery's workflow id from its id.
func NotificationWorkflowID(deliveryID string) string { return "notify-" + deliveryID }

// ErrTypeDeliveryRefused: the receiver refused a notification for good (a
// 4xx other than 408 and 429); sending it again would not help.
const ErrTypeDeliveryRefused = "DeliveryRefused"

// NotificationInput starts the Notification workflow.
type NotificationInput struct {
	DeliveryID string `json:"delivery_id"`
}

// NotificationResult is how a delivery ended: DeliveryDelivered or
// DeliveryFailed, with the last error.
type NotificationResult struct {
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// Subscription asks Transit to POST the events it names to a URL, signed
// with a secret the worker reads (never stored: SecretRef names it).
type Subscription struct {
	ID     string                   `json:"id" gorm:"primaryKey"`
	URL    string                   `json:"url"`
	Events JSONValue[[]NotifyEvent] `json:"events"`
	// ApplicationID and EnvironmentID, when set, keep only the
	// deployments of that application, or to that environment.
	ApplicationID *string `json:"application_id"`
	EnvironmentID *string `json:"environment_id"`
	// Secret signs each body (X-Transit-Signature: sha256=…).
	Secret      SecretRef `json:"secret"`
	Format      string    `json:"format"`
	Enabled     bool      `json:"enabled"`
	Description string    `json:"description"`
	// PublicURL is where people reach Transit (the API's
	// TRANSIT_PUBLIC_URL when the subscription was last written): the
	// base of the links in the bodies.
	PublicURL string    `json:"public_url"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TableName is the subscriptions' table.
func (Subscription) TableName() string { return "notification_subscriptions" }

// Wants reports whether the subscription asks for ev.
func (s *Subscription) Wants(ev NotifyEvent) bool { return slices.Contains(s.Events.V, ev) }

// Validate checks the fields a client sets and normalises them (the
// default format, events without repeats).
func (s *Subscription) Validate() error {
	v := &ValidationError{}
	CheckText(v, "url", s.URL)
	switch u, err := url.Parse(s.URL); {
	case s.URL == "":
		v.Add("url", "is required: where to POST the events, e.g. https://hooks.example.com/transit")
	case len(s.URL) > 2048:
		v.Add("url", "must be at most 2048 characters")
	case err != nil:
		v.Add("url", "%q is not a URL: %v", s.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.Add("url", "%q must be an http:// or https:// URL", s.URL)
	case u.Host == "":
		v.Add("url", "%q names no host", s.URL)
	case u.User != nil:
		v.Add("url", "must not carry a user or password: name a secret instead, to sign the body")
	}
	if len(s.Events.V) == 0 {
		v.Add("events", "is required: name one or more of %s", joinEvents(NotifyEvents))
	}
	var events []NotifyEvent
	for i, ev := range s.Events.V {
		if !slices.Contains(NotifyEvents, ev) {
			v.Add(fmt.Sprintf("events[%d]", i), "%q is not an event: use one of %s", ev, joinEvents(NotifyEvents))
			continue
		}
		if !slices.Contains(events, ev) {
			events = append(events, ev)
		}
	}
	if len(events) > 0 {
		s.Events.V = events
	}
	if s.Secret == "" {
		v.Add("secret", "is required: the secret that signs each body, as env:VARIABLE or file:/absolute/path (read by the worker)")
	} else if err := s.Secret.Validate(); err != nil {
		v.Add("secret", "%s", err.Error())
	}
	switch s.Format {
	case "":
		s.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		v.Add("format", "%q must be %s or %s", s.Format, FormatJSON, FormatSlack)
	}
	CheckText(v, "description", s.Description)
	if len(s.Description) > 4096 {
		v.Add("description", "must be at most 4096 characters")
	}
	return v.Err()
}

func joinEvents(evs []NotifyEvent) string {
	names := make([]string, len(evs))
	for i, ev := range evs {
		names[i] = string(ev)
	}
	return strings.Join(names, ", ")
}

// Delivery statuses.
const (
	// DeliveryPending: not tried yet.
	DeliveryPending = "pending"
	// DeliveryRetrying: tried and failed; it is tried again with backoff.
	DeliveryRetrying = "retrying"
	// DeliveryDelivered: the receiver answered 2xx.
	DeliveryDelivered = "delivered"
	// DeliveryFailed: the receiver refused it for good, or it could not be
	// delivered in time.
	DeliveryFailed = "failed"
)

// Delivery is one event sent, or to send, to one subscription: the body is
// built when the event happens and sent as it is, each try with the same
// Idempotency-Key (the delivery's id).
type Delivery struct {
	ID             string      `json:"id" gorm:"primaryKey"`
	SubscriptionID string      `json:"subscription_id"`
	DeploymentID   string      `json:"deployment_id"`
	Event          NotifyEvent `json:"event"`
	// EventKey tells apart two events of one kind for one deployment (an
	// incident's id); "" for the deployment's own events, sent once each.
	EventKey string   `json:"event_key,omitempty"`
	Body     JSONText `json:"body"`
	Status   string   `json:"status"`
	Attempts int      `json:"attempts"`
	// LastError is the last failed try's error (kept once delivered).
	LastError      string     `json:"last_error"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	StartedAt      *time.Time `json:"workflow_started_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
}

// TableName is the deliveries' table.
func (Delivery) TableName() string { return "notification_deliveries" }

// Notification is the JSON body of a delivery (FormatJSON).
type Notification struct {
	// ID is the delivery's id, also sent as the Idempotency-Key header.
	ID    string      `json:"id"`
	Event NotifyEvent `json:"event"`
	At    time.Time   `json:"at"`
	// Message is the deployment's timeline line for the event.
	Message    string                 `json:"message"`
	Deployment NotificationDeployment `json:"deployment"`
	Approval   *NotificationApproval  `json:"approval,omitempty"`
	Incident   *NotificationIncident  `json:"incident,omitempty"`
}

// NotificationDeployment is the deployment as a notification shows it.
type NotificationDeployment struct {
	ID             string `json:"id"`
	ApplicationID  string `json:"application_id"`
	Application    string `json:"application"`
	EnvironmentID  string `json:"environment_id"`
	Environment    string `json:"environment"`
	ReleaseVersion string `json:"release_version"`
	Scenario       string `json:"scenario"`
	Status         Status `json:"status"`
	Outcome        string `json:"outcome,omitempty"`
	RequestedBy    string `json:"requested_by"`
	Reason         string `json:"reason,omitempty"`
	// URL is the deployment in the API: <public URL>/api/v1/deployments/<id>.
	URL string `json:"url"`
}

// NotificationApproval says who may approve, and where.
type NotificationApproval struct {
	Required       int      `json:"required"`
	ApproverGroups []string `json:"approver_groups"`
	// URL is the approval page: <public URL>/approvals.
	URL string `json:"url"`
}

// NotificationIncident is the incident an incident.opened names.
type NotificationIncident struct {
	ID         string `json:"id"`
	Severity   string `json:"severity"`
	Title      string `json:"title"`
	Source     string `json:"source,omitempty"`
	ReportedBy string `json:"reported_by"`
}

// SlackMessage is a Slack-compatible body (FormatSlack): an incoming
// webhook's text and blocks.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is a section (Text) or an actions block (Elements).
type SlackBlock struct {
	Type     string         `json:"type"`
	Text     *SlackText     `json:"text,omitempty"`
	Elements []SlackElement `json:"elements,omitempty"`
}

// SlackText is a block's text.
type SlackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// SlackElement is a button.
type SlackElement struct {
	Type     string    `json:"type"`
	Text     SlackText `json:"text"`
	URL      string    `json:"url"`
	ActionID string    `json:"action_id,omitempty"`
	Style    string    `json:"style,omitempty"`
}

// Slack renders n as a Slack message: one line of text, the same as a
// section, the timeline's message, and a button to the approval page (for
// awaiting_approval) or to the deployment.
func (n Notification) Slack() SlackMessage {
	d := n.Deployment
	what := fmt.Sprintf("%s %s to %s", d.Application, d.ReleaseVersion, d.Environment)
	var line string
	switch n.Event {
	case NotifyAwaitingApproval:
		line = fmt.Sprintf("%s is awaiting approval", what)
		if n.Approval != nil {
			line += fmt.Sprintf(" (%s from %s)", Plural(n.Approval.Required, "approval"), strings.Join(n.Approval.ApproverGroups, ", "))
		}
	case NotifyApproved:
		line = what + " was approved"
	case NotifyRejected:
		line = what + " was rejected"
	case NotifyExpired:
		line = what + " expired before it was approved"
	case NotifyStarted:
		line = what + " started rolling out"
	case NotifyPointOfNoReturn:
		line = what + " passed its point of no return"
	case NotifyCompleted:
		line = what + " " + strings.ReplaceAll(string(d.Status), "_", " ")
	case NotifyRolledBack:
		line = what + " was rolled back"
	case NotifyFailed:
		line = what + " failed"
	case NotifyIncidentOpened:
		if n.Incident != nil {
			line = fmt.Sprintf("%s incident on %s: %s", n.Incident.Severity, what, n.Incident.Title)
		} else {
			line = "incident on " + what
		}
	default:
		line = what + ": " + string(n.Event)
	}
	text := "Transit: " + line
	section := "*" + slackEscape(line) + "*"
	if n.Message != "" {
		section += "\n" + slackEscape(Cut(n.Message, 2000))
	}
	button := SlackElement{Type: "button", Text: SlackText{Type: "plain_text", Text: "Open the deployment"}, URL: d.URL, ActionID: "open_deployment"}
	if n.Approval != nil {
		button = SlackElement{Type: "button", Text: SlackText{Type: "plain_text", Text: "Review the approval"}, URL: n.Approval.URL,
			ActionID: "open_approvals", Style: "primary"}
	}
	return SlackMessage{Text: text, Blocks: []SlackBlock{
		{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: section}},
		{Type: "actions", Elements: []SlackElement{button}},
	}}
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
