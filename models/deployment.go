package models

import (
	"fmt"
	"strings"
	"time"
)

// Status is where a deployment is in its life. Its valid transitions are
// in statusTransitions; Terminal statuses never change again.
type Status string

// Deployment statuses (design.md's state machine).
const (
	StatusPlanning            Status = "planning"
	StatusAwaitingApproval    Status = "awaiting_approval"
	StatusQueued              Status = "queued"
	StatusScheduled           Status = "scheduled"
	StatusDeploying           Status = "deploying"
	StatusPaused              Status = "paused"
	StatusValidating          Status = "validating"
	StatusEarlyLifeSupport    Status = "early_life_support"
	StatusRollingBack         Status = "rolling_back"
	StatusCompleted           Status = "completed"
	StatusCompletedWithIssues Status = "completed_with_issues"
	StatusRolledBack          Status = "rolled_back"
	StatusRejected            Status = "rejected"
	StatusExpired             Status = "expired"
	StatusCancelled           Status = "cancelled"
	StatusFailed              Status = "failed"
)

// AllStatuses lists every status, in the order a deployment meets them.
var AllStatuses = []Status{StatusPlanning, StatusQueued, StatusAwaitingApproval, StatusScheduled, StatusDeploying, StatusPaused,
	StatusValidating, StatusEarlyLifeSupport, StatusRollingBack, StatusCompleted, StatusCompletedWithIssues, StatusRolledBack,
	StatusRejected, StatusExpired, StatusCancelled, StatusFailed}

var statusTransitions = map[Status][]Status{
	StatusPlanning:         {StatusQueued, StatusAwaitingApproval, StatusRejected, StatusCancelled, StatusFailed},
	StatusQueued:           {StatusAwaitingApproval, StatusRejected, StatusCancelled, StatusFailed},
	StatusAwaitingApproval: {StatusScheduled, StatusRejected, StatusExpired, StatusCancelled, StatusFailed},
	StatusScheduled:        {StatusDeploying, StatusPaused, StatusCancelled, StatusFailed},
	StatusDeploying:        {StatusPaused, StatusValidating, StatusRollingBack, StatusEarlyLifeSupport, StatusCompleted, StatusCompletedWithIssues, StatusCancelled, StatusFailed},
	StatusPaused:           {StatusScheduled, StatusDeploying, StatusValidating, StatusEarlyLifeSupport, StatusRollingBack, StatusCancelled, StatusFailed},
	StatusValidating:       {StatusPaused, StatusEarlyLifeSupport, StatusRollingBack, StatusCompleted, StatusCompletedWithIssues, StatusFailed},
	StatusEarlyLifeSupport: {StatusPaused, StatusCompleted, StatusCompletedWithIssues, StatusRollingBack, StatusFailed},
	StatusRollingBack:      {StatusRolledBack, StatusFailed},
}

// Terminal reports whether s is a final status.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusCompletedWithIssues, StatusRolledBack, StatusRejected, StatusExpired, StatusCancelled, StatusFailed:
		return true
	}
	return false
}

// CanBecome reports whether a deployment in s may move to next.
func (s Status) CanBecome(next Status) bool {
	if s == next {
		return true
	}
	for _, n := range statusTransitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// TerminalStatuses lists every final status.
var TerminalStatuses = []Status{StatusCompleted, StatusCompletedWithIssues, StatusRolledBack, StatusRejected, StatusExpired, StatusCancelled, StatusFailed}

// Scenarios.
const (
	// ScenarioInstall: nothing of the application runs on the targets yet.
	ScenarioInstall = "install"
	// ScenarioUpgrade: a newer version replaces the one that runs.
	ScenarioUpgrade = "upgrade"
	// ScenarioDowngrade: an older version replaces the one that runs.
	ScenarioDowngrade = "downgrade"
	// ScenarioDecommission: the release is taken off the targets that run it.
	ScenarioDecommission = "decommission"
)

// InferScenario says what deploying version does to targets that run the
// given versions ("" for none): install when nothing runs anywhere,
// downgrade when every version that runs is newer (semver), else upgrade.
func InferScenario(running []string, version string) string {
	newer, any := 0, 0
	for _, r := range running {
		if r == "" {
			continue
		}
		any++
		if c, ok := CompareVersions(r, version); ok && c > 0 {
			newer++
		}
	}
	switch {
	case any == 0:
		return ScenarioInstall
	case newer == any:
		return ScenarioDowngrade
	}
	return ScenarioUpgrade
}

// Target states within a deployment.
const (
	TargetPending     = "pending"
	TargetDeploying   = "deploying"
	TargetDeployed    = "deployed"
	TargetFailed      = "failed"
	TargetValidated   = "validated"
	TargetRolledBack  = "rolled_back"
	TargetRemoved     = "removed"
	TargetRollbackErr = "rollback_failed"
	// TargetNotStarted: the rollout stopped before this target's turn.
	TargetNotStarted = "not_started"
)

// Deployment is one release going to one environment.
type Deployment struct {
	ID             string               `json:"id" gorm:"primaryKey"`
	ApplicationID  string               `json:"application_id"`
	EnvironmentID  string               `json:"environment_id"`
	ReleaseID      string               `json:"release_id"`
	ReleaseVersion string               `json:"release_version"`
	Scenario       string               `json:"scenario"`
	Strategy       JSONValue[*Strategy] `json:"strategy,omitzero"`
	NotBefore      *time.Time           `json:"not_before,omitempty"`
	RetainData     bool                 `json:"retain_data"`
	Reason         string               `json:"reason"`
	RequestedBy    string               `json:"requested_by"`
	Status         Status               `json:"status"`
	WaveIndex      int                  `json:"wave_index"`
	WaveCount      int                  `json:"wave_count"`
	Plan           JSONValue[*Plan]     `json:"plan,omitzero"`
	Outcome        string               `json:"outcome"`
	WorkflowID     string               `json:"workflow_id"`
	PONRAt         *time.Time           `json:"point_of_no_return_at,omitempty" gorm:"column:ponr_at"`
	ELSEndsAt      *time.Time           `json:"early_life_support_ends_at,omitempty" gorm:"column:els_ends_at"`
	// Hold is what keeps the deployment from going on now, if anything.
	Hold JSONValue[*Hold] `json:"hold"`
	// Emergency marks an emergency change, with why.
	Emergency  JSONValue[*Emergency] `json:"emergency,omitzero"`
	CreatedAt  time.Time             `json:"created_at"`
	UpdatedAt  time.Time             `json:"updated_at"`
	FinishedAt *time.Time            `json:"finished_at,omitempty"`
}

// WorkflowIDFor derives a deployment's workflow id from its id.
func WorkflowIDFor(deploymentID string) string { return "deployment-" + deploymentID }

// Approval is one approver's vote.
type Approval struct {
	DeploymentID string    `json:"deployment_id" gorm:"primaryKey"`
	Approver     string    `json:"approver" gorm:"primaryKey"`
	Decision     string    `json:"decision"`
	Comment      string    `json:"comment"`
	Via          string    `json:"via"`
	At           time.Time `json:"at"`
}

// Decisions.
const (
	DecisionApprove = "approve"
	DecisionReject  = "reject"
)

// DeploymentTarget is one target's progress in one deployment.
type DeploymentTarget struct {
	DeploymentID string    `json:"-" gorm:"primaryKey"`
	TargetID     string    `json:"target_id" gorm:"primaryKey"`
	TargetName   string    `json:"target_name"`
	Wave         int       `json:"wave"`
	Status       string    `json:"status"`
	FromVersion  string    `json:"from_version"`
	ToVersion    string    `json:"to_version"`
	Message      string    `json:"message"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// DeploymentEvent is one line of a deployment's timeline.
type DeploymentEvent struct {
	ID           int64          `json:"id" gorm:"primaryKey;autoIncrement"`
	DeploymentID string         `json:"deployment_id"`
	Key          string         `json:"-" gorm:"column:event_key"`
	At           time.Time      `json:"at"`
	Type         EventType      `json:"type"`
	Status       Status         `json:"status"`
	Message      string         `json:"message"`
	Data         JSONValue[any] `json:"data,omitempty"`
}

// Incident is a problem linked to a deployment during early life support.
type Incident struct {
	ID           string     `json:"id" gorm:"primaryKey"`
	DeploymentID string     `json:"deployment_id"`
	Severity     string     `json:"severity"`
	Title        string     `json:"title"`
	Source       string     `json:"source"`
	Status       string     `json:"status"`
	ReportedBy   string     `json:"reported_by"`
	CreatedAt    time.Time  `json:"created_at"`
	ResolvedAt   *time.Time `json:"resolved_at,omitempty"`
	// Resolution says how it was resolved.
	Resolution string `json:"resolution"`
	// KnownErrorID links it to the known error it is an instance of.
	KnownErrorID string `json:"known_error_id"`
}

// IncidentTitleMax bounds an incident's title; a title Transit writes
// itself (a probe's breach) is cut to fit.
const IncidentTitleMax = 500

// Incident statuses.
const (
	IncidentOpen     = "open"
	IncidentResolved = "resolved"
)

// TargetState is what runs on a target and what to roll back to.
type TargetState struct {
	TargetID            string    `json:"target_id" gorm:"primaryKey"`
	CurrentReleaseID    string    `json:"current_release_id"`
	CurrentVersion      string    `json:"current_version"`
	LastKnownGoodID     string    `json:"last_known_good_release_id" gorm:"column:last_known_good_id"`
	LastKnownGoodVer    string    `json:"last_known_good_version" gorm:"column:last_known_good_ver"`
	UpdatedByDeployment string    `json:"updated_by_deployment"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// Plan is what the planning step decided: the waves, the risk and the checks
// it made. It is persisted and shown on GET.
type Plan struct {
	Application string `json:"application"`
	// OwnerTeam owns the application: its deployers may pause, resume,
	// abort and roll back the deployment.
	OwnerTeam       string            `json:"owner_team,omitempty"`
	Environment     string            `json:"environment"`
	ReleaseVersion  string            `json:"release_version"`
	Scenario        string            `json:"scenario"`
	Strategy        Strategy          `json:"strategy"`
	Policy          Policy            `json:"policy"`
	Waves           [][]PlanTarget    `json:"waves"`
	Risk            Risk              `json:"risk"`
	EntryCriteria   []Criterion       `json:"entry_criteria"`
	AheadInQueue    []string          `json:"ahead_in_queue"`
	CurrentVersions map[string]string `json:"current_versions"`
	// Untouched are the environment's targets that a decommission leaves
	// alone, because the release does not run on them.
	Untouched []string `json:"untouched,omitempty"`
	// Conflicts are the other active deployments whose targets share a
	// value of a conflict label with this one's (see Policy.ConflictLabel).
	Conflicts []string `json:"conflicts,omitempty"`
	// Emergency marks an emergency change (from the request).
	Emergency *Emergency `json:"emergency,omitempty"`
	// KnownErrors are the release's open known errors, acknowledged at submit.
	KnownErrors []KnownErrorRef `json:"known_errors,omitempty"`
	// TargetsPerRun bounds the targets one workflow run changes; waves
	// larger than that run in several child workflows.
	TargetsPerRun int `json:"targets_per_run,omitempty"`
}

// PlanTarget is one target of a wave.
type PlanTarget struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// CurrentVersion is what the driver said runs there at planning.
	CurrentVersion  string `json:"current_version"`
	LastKnownGoodID string `json:"last_known_good_release_id"`
	// StepTimeout bounds one change of this target (from its driver config).
	StepTimeout Duration `json:"step_timeout,omitempty"`
}

// Risk is a score from 0 (routine) to 100 with the reasons for it.
type Risk struct {
	Score   int      `json:"score"`
	Level   string   `json:"level"`
	Reasons []string `json:"reasons"`
}

// Criterion is one of the release's entry criteria, checked.
type Criterion struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Passed bool   `json:"passed"`
	Reason string `json:"reason,omitempty"`
}

// ---- The workflow's contract, shared by the API (client) and the worker.

// WorkflowDeployment is the registered name of the deployment workflow.
const WorkflowDeployment = "Deployment"

// WorkflowTargetSteps is the registered name of the child workflow that
// runs a deployment's steps on one batch of its targets.
const WorkflowTargetSteps = "TargetSteps"

// SignalStepsPaused tells a TargetSteps child that its deployment was
// paused (true) or resumed (false).
const SignalStepsPaused = "steps_paused"

// Bounds of a plan's TargetsPerRun: a run of MaxTargetsPerRun steps stays
// under 5,000 history events, and its input and answer far under
// Temporal's payload limit.
const (
	MinTargetsPerRun = 10
	MaxTargetsPerRun = 1000
)

// Update, signal and query names of the deployment workflow. The signals
// have the same names as the updates, for operators using the Temporal CLI.
const (
	// UpdateApprove records an approval vote (also a Signal).
	UpdateApprove = "approve"
	// UpdateReject records a rejection (also a Signal).
	UpdateReject = "reject"
	// UpdatePause holds the rollout at the next step (also a Signal).
	UpdatePause = "pause"
	// UpdateResume lets a paused rollout go on (also a Signal).
	UpdateResume = "resume"
	// UpdateAbort stops the deployment; before the point of no return it rolls back (also a Signal).
	UpdateAbort = "abort"
	// UpdateRollback rolls back to the last known good release before the point of no return (also a Signal).
	UpdateRollback = "rollback"
	// SignalLaneFree wakes a deployment waiting for its turn.
	SignalLaneFree = "lane_free"
	// SignalPolicyChanged wakes a deployment held by its environment's
	// windows or freezes, so that it reads them again.
	SignalPolicyChanged = "policy_changed"
	// QueryStatus returns the live DeploymentState.
	QueryStatus = "status"
)

// ControlNames are the controls, in the order the API lists them.
var ControlNames = []string{UpdatePause, UpdateResume, UpdateAbort, UpdateRollback}

// DeploymentInput starts (or continues) the deployment workflow.
type DeploymentInput struct {
	DeploymentID  string     `json:"deployment_id"`
	ApplicationID string     `json:"application_id"`
	EnvironmentID string     `json:"environment_id"`
	ReleaseID     string     `json:"release_id"`
	Scenario      string     `json:"scenario"`
	Strategy      *Strategy  `json:"strategy,omitempty"`
	NotBefore     *time.Time `json:"not_before,omitempty"`
	RetainData    bool       `json:"retain_data"`
	Reason        string     `json:"reason"`
	RequestedBy   string     `json:"requested_by"`
	// Link is the deployment's page for people (an absolute URL), shown in
	// the Temporal UI's details.
	Link string `json:"link,omitempty"`
	// Emergency marks an emergency change: its own approvals, and it may
	// pass a freeze or a closed window.
	Emergency *Emergency `json:"emergency,omitempty"`
	// AcknowledgedKnownErrors are the release's open known errors that the
	// requester acknowledged (ids).
	AcknowledgedKnownErrors []string `json:"acknowledged_known_errors,omitempty"`
}

// Emergency is why a deployment is an emergency change.
type Emergency struct {
	Reason   string `json:"reason"`
	Incident string `json:"incident,omitempty"`
}

// String says it in a line: "emergency change (INC-123): checkout is down".
func (e *Emergency) String() string {
	s := "emergency change"
	if e.Incident != "" {
		s += " (" + e.Incident + ")"
	}
	return s + ": " + e.Reason
}

// RolePrefix marks a role among a vote's groups ("role:release_manager"):
// the API puts the voter's roles there, signed, so that a policy may ask
// for a role. No real group has a colon.
const RolePrefix = "role:"

// DeploymentResult is how the workflow ended.
type DeploymentResult struct {
	Status  Status `json:"status"`
	Outcome string `json:"outcome"`
}

// VoteInput is the argument of the approve and reject Updates and Signals.
// The API sets Groups from the caller's token and signs the vote (Proof);
// a vote without a valid proof has its subject's groups looked up instead,
// so a vote's groups never rest on the caller's word.
type VoteInput struct {
	Approver string   `json:"approver"`
	Groups   []string `json:"groups,omitempty"`
	Comment  string   `json:"comment"`
	Proof
}

// Proof is the API's signature over a vote or a control: an HMAC with the
// key that only `transit server` and `transit worker` hold, over what the
// request says and when it was made (see SignRequest).
type Proof struct {
	IssuedAt time.Time `json:"issued_at,omitempty"`
	MAC      string    `json:"proof,omitempty"`
}

// VoteResult is what an accepted vote changed.
type VoteResult struct {
	Status    Status `json:"status"`
	Approvals int    `json:"approvals"`
	Required  int    `json:"required"`
	// Decided says whether this vote decided the deployment (quorum or rejection).
	Decided bool `json:"decided"`
}

// ControlInput is the argument of pause, resume, abort and rollback.
type ControlInput struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
	Proof
}

// ControlResult is the deployment's status after a control was accepted.
type ControlResult struct {
	Status Status `json:"status"`
}

// DeploymentState is what the status query returns.
type DeploymentState struct {
	DeploymentID string     `json:"deployment_id"`
	Status       Status     `json:"status"`
	Scenario     string     `json:"scenario,omitempty"`
	Paused       bool       `json:"paused"`
	Hold         *Hold      `json:"hold,omitempty"`
	WaveIndex    int        `json:"wave_index"`
	WaveCount    int        `json:"wave_count"`
	Approvals    []Approval `json:"approvals"`
	Required     int        `json:"approvals_required"`
	PastPONR     bool       `json:"past_point_of_no_return"`
	PONRAt       *time.Time `json:"point_of_no_return_at,omitempty"`
	ELSEndsAt    *time.Time `json:"early_life_support_ends_at,omitempty"`
	// Failed names the targets that failed so far.
	Failed  []string `json:"failed_targets,omitempty"`
	Outcome string   `json:"outcome,omitempty"`
}

// Validate checks a deployment request's own fields.
func (in *DeploymentInput) Validate() error {
	v := &ValidationError{}
	switch in.Scenario {
	case "", ScenarioInstall, ScenarioUpgrade, ScenarioDowngrade, ScenarioDecommission:
	default:
		v.Add("scenario", "%q must be install, upgrade, downgrade or decommission (or left out to infer it)", in.Scenario)
	}
	if in.Strategy != nil {
		if in.Strategy.MaxParallel == 0 {
			in.Strategy.MaxParallel = DefaultMaxParallel
		}
		v.Merge("strategy", in.Strategy.Validate())
	}
	if in.RetainData && in.Scenario != ScenarioDecommission && in.Scenario != "" {
		v.Add("retain_data", "only applies to a decommission")
	}
	CheckText(v, "reason", in.Reason)
	if len(in.Reason) > 4096 {
		v.Add("reason", "must be at most 4096 characters")
	}
	if in.NotBefore != nil && in.NotBefore.After(time.Now().Add(366*24*time.Hour)) {
		v.Add("not_before", "must be within a year")
	}
	if e := in.Emergency; e != nil {
		e.Reason, e.Incident = strings.TrimSpace(e.Reason), strings.TrimSpace(e.Incident)
		CheckText(v, "emergency.reason", e.Reason)
		CheckText(v, "emergency.incident", e.Incident)
		switch {
		case e.Reason == "":
			v.Add("emergency.reason", "is required: say what is broken, e.g. \"checkout is down\"")
		case len(e.Reason) > 1000:
			v.Add("emergency.reason", "must be at most 1000 characters")
		}
		if len(e.Incident) > 100 {
			v.Add("emergency.incident", "must be at most 100 characters")
		}
		if in.Scenario == ScenarioDecommission {
			v.Add("emergency", "a decommission is not an emergency change")
		}
	}
	return v.Err()
}

// String names the deployment in logs.
func (in DeploymentInput) String() string {
	return fmt.Sprintf("deployment %s of release %s to environment %s", in.DeploymentID, in.ReleaseID, in.EnvironmentID)
}

// Verb is what the scenario does, for summaries: "Deploy" or "Decommission".
func Verb(scenario string) string {
	if scenario == ScenarioDecommission {
		return "Decommission"
	}
	return "Deploy"
}
