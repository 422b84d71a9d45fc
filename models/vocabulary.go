package models

import "time"

// EventType names a line of a deployment's timeline. The workflow, the
// activities and the store write them; the API and the CLI read them.
type EventType string

// Timeline event types.
const (
	// EventSubmitted: the request was accepted by the API.
	EventSubmitted EventType = "submitted"
	// EventStatus: the deployment moved to another status.
	EventStatus EventType = "status"
	// EventProgress: a step that does not change the status (a wave, a check).
	EventProgress EventType = "progress"
	// EventHold: what holds the deployment changed (a freeze, a window, a pause).
	EventHold EventType = "hold"
	// EventVote: an approver voted.
	EventVote EventType = "vote"
	// EventControl: someone paused, resumed, aborted or asked for a rollback.
	EventControl EventType = "control"
	// EventSignalIgnored: a Signal or Update was refused, with the reason.
	EventSignalIgnored EventType = "signal_ignored"
	// EventTargetLog: the tail of a driver's output on one target.
	EventTargetLog EventType = "target_log"
	// EventIncident: an incident was linked to the deployment.
	EventIncident EventType = "incident"
	// EventOrphaned: the deployment's workflow ended outside Transit.
	EventOrphaned EventType = "orphaned"
)

// Via says by which path a vote or a control reached the workflow.
type Via string

// Paths into the workflow.
const (
	// ViaAPI: through Transit's API, which authenticated the caller and
	// signed what it sends (see VoteProof).
	ViaAPI Via = "api"
	// ViaUpdate: a Temporal Update sent by someone other than the API (the
	// temporal CLI or UI); the subject is looked up as for a Signal.
	ViaUpdate Via = "update"
	// ViaSignal: a Temporal Signal (the temporal CLI or UI).
	ViaSignal Via = "signal"
	// ViaPolicy: the environment's policy decided (no approval required).
	ViaPolicy Via = "policy"
)

// StopKind says why a rollout stops.
type StopKind string

// Stop kinds.
const (
	// StopAbort: a person aborted the deployment.
	StopAbort StopKind = "abort"
	// StopRollback: a person asked for a rollback.
	StopRollback StopKind = "rollback"
	// StopFailure: targets, checks or a recording failed.
	StopFailure StopKind = "failure"
	// StopBreach: an observation probe breached its threshold.
	StopBreach StopKind = "breach"
	// StopCancel: the Temporal workflow was cancelled.
	StopCancel StopKind = "cancel"
)

// HoldKind says what holds a deployment back.
type HoldKind string

// Hold kinds.
const (
	// HoldNotBefore: the request's not_before has not come yet.
	HoldNotBefore HoldKind = "not_before"
	// HoldWindow: no change window of the environment is open.
	HoldWindow HoldKind = "window"
	// HoldFreeze: a freeze of the environment covers now.
	HoldFreeze HoldKind = "freeze"
	// HoldPaused: someone paused the deployment, or it waits for a decision.
	HoldPaused HoldKind = "paused"
	// HoldQueued: an earlier deployment of the same application to the
	// same environment is still active.
	HoldQueued HoldKind = "queued"
)

// Hold is what keeps a deployment from going on, and until when (when known).
type Hold struct {
	Kind   HoldKind   `json:"kind"`
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until,omitempty"`
}

// Activity error types: an activity that fails with one of these is not
// retried, and the workflow reads the type to decide what happened.
const (
	// ErrTypeEntryCriteria: the release does not meet its entry criteria.
	ErrTypeEntryCriteria = "EntryCriteria"
	// ErrTypeUnreachable: targets did not answer at planning.
	ErrTypeUnreachable = "Unreachable"
	// ErrTypeRefused: planning refuses the request, and says why (a
	// decommission of a release that runs nowhere); it ends rejected.
	ErrTypeRefused = "Refused"
	// ErrTypeBadPlan: the request cannot be planned (nothing to deploy to,
	// nothing to decommission, a deleted release).
	ErrTypeBadPlan = "BadPlan"
	// ErrTypeDriver: a driver reported a failure; running it again is not
	// Transit's call.
	ErrTypeDriver = "Driver"
	// ErrTypeBadData: the database refused what was written, and writing
	// it again cannot succeed.
	ErrTypeBadData = "BadData"
)

// Error types that the workflow's update validators and handlers return;
// the API maps them to HTTP statuses.
const (
	ErrTypeForbidden = "Forbidden"
	ErrTypeConflict  = "Conflict"
	ErrTypeInvalid   = "Invalid"
)
