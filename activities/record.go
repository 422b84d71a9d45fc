package activities

import (
	"context"
	"time"

	"github.com/transit-hq/transit/models"
	"github.com/transit-hq/transit/store"
)

// RecordInput is one step of the workflow to write to the deployment's row,
// its timeline and the audit log.
type RecordInput struct {
	DeploymentID string         `json:"deployment_id"`
	Key          string         `json:"key"`
	Status       *models.Status `json:"status,omitempty"`
	Scenario     *string        `json:"scenario,omitempty"`
	WaveIndex    *int           `json:"wave_index,omitempty"`
	WaveCount    *int           `json:"wave_count,omitempty"`
	Plan         *models.Plan   `json:"plan,omitempty"`
	Outcome      *string        `json:"outcome,omitempty"`
	PONRAt       *time.Time     `json:"ponr_at,omitempty"`
	ELSEndsAt    *time.Time     `json:"els_ends_at,omitempty"`
	// SetHold replaces what holds the deployment with Hold (nil: nothing).
	SetHold bool             `json:"set_hold,omitempty"`
	Hold    *models.Hold     `json:"hold,omitempty"`
	Type    models.EventType `json:"type"`
	Message string           `json:"message"`
	Data    any              `json:"data,omitempty"`
	// Audit, when set, audits the step in a person's name (a vote, a control).
	Audit *AuditRecord `json:"audit,omitempty"`
	// Vote, when set, stores the approver's vote.
	Vote *models.Approval `json:"vote,omitempty"`
	// CloseTargets marks the targets still pending as not started (with
	// the final status).
	CloseTargets bool `json:"close_targets,omitempty"`
}

// AuditRecord is what the audit log keeps of what a person did.
type AuditRecord struct {
	Actor  string         `json:"actor"`
	Action string         `json:"action"`
	Via    models.Via     `json:"via"`
	Data   map[string]any `json:"data,omitempty"`
}

func (in RecordInput) step() store.Step {
	st := store.Step{Key: in.Key,
		Change: store.DeploymentChange{Status: in.Status, Scenario: in.Scenario, WaveIndex: in.WaveIndex, WaveCount: in.WaveCount,
			Plan: in.Plan, Outcome: in.Outcome, PONRAt: in.PONRAt, ELSEndsAt: in.ELSEndsAt, SetHold: in.SetHold, Hold: in.Hold,
			CloseTargets: in.CloseTargets},
		Event: models.DeploymentEvent{Type: in.Type, Message: in.Message, Data: models.NewJSON(in.Data)},
		Vote:  in.Vote,
	}
	if in.Audit != nil {
		st.Audit = &store.AuditEntry{Actor: in.Audit.Actor, Action: in.Audit.Action, Via: in.Audit.Via, Data: in.Audit.Data}
	}
	return st
}

// Record writes one step, once per key. (Deployments started before the
// workflow recorded in batches call it.)
func (a *Activities) Record(ctx context.Context, in RecordInput) error {
	return storeErr(a.Store.RecordSteps(ctx, actor(in.DeploymentID), in.DeploymentID, []store.Step{in.step()}))
}

// StepsInput is a batch of steps of one deployment, in order.
type StepsInput struct {
	DeploymentID string        `json:"deployment_id"`
	Steps        []RecordInput `json:"steps"`
}

// RecordSteps writes a batch of steps in one transaction, each once per
// key. The workflow runs it as a local activity: recording is bookkeeping,
// and must not wait in a task queue. Data the database refuses fails it
// for good (ErrTypeBadData), so that the workflow does not retry forever.
func (a *Activities) RecordSteps(ctx context.Context, in StepsInput) error {
	steps := make([]store.Step, len(in.Steps))
	for i, s := range in.Steps {
		steps[i] = s.step()
	}
	return storeErr(a.Store.RecordSteps(ctx, actor(in.DeploymentID), in.DeploymentID, steps))
}

// RecordVote stores an accepted vote. (Deployments started before votes
// were recorded with the other steps call it.)
func (a *Activities) RecordVote(ctx context.Context, in models.Approval) error {
	return storeErr(a.Store.RecordApproval(ctx, actor(in.DeploymentID), in))
}

// NoteInput is a line for the timeline that changes nothing else.
type NoteInput struct {
	DeploymentID string `json:"deployment_id"`
	Key          string `json:"key"`
	Type         string `json:"type"`
	Message      string `json:"message"`
}

// Note appends a line to the deployment's timeline. (Deployments started
// before notes were recorded with the other steps call it.)
func (a *Activities) Note(ctx context.Context, in NoteInput) error {
	return storeErr(a.Store.AppendEvent(ctx, in.DeploymentID, in.Key, models.DeploymentEvent{Type: models.EventType(in.Type), Message: in.Message}))
}

// PrincipalResult is what Transit knows of a subject.
type PrincipalResult struct {
	Groups []string `json:"groups"`
	Roles  []string `json:"roles,omitempty"`
	Teams  []string `json:"teams,omitempty"`
	// Grants are each live token's roles with its teams: a right needs one
	// token that holds the role for the team (not a role of one token and
	// a team of another).
	Grants []Grant `json:"grants,omitempty"`
	Known  bool    `json:"known"`
}

// Grant is one token's roles and teams.
type Grant struct {
	Roles []string `json:"roles"`
	Teams []string `json:"teams"`
}

// LookupPrincipal returns the groups of a subject, for votes that carry no
// proof from the API (Signals, and Updates from the temporal CLI).
func (a *Activities) LookupPrincipal(ctx context.Context, subject string) (PrincipalResult, error) {
	p, tokens, err := a.Store.PrincipalOf(ctx, subject)
	if err != nil {
		return PrincipalResult{}, err
	}
	res := PrincipalResult{Groups: p.Groups, Roles: p.Roles, Teams: p.Teams, Known: len(tokens) > 0}
	for _, t := range tokens {
		tp := t.Principal()
		res.Grants = append(res.Grants, Grant{Roles: tp.Roles, Teams: tp.Teams})
	}
	return res, nil
}
