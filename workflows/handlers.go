package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/transit-hq/transit/activities"
	"github.com/transit-hq/transit/models"
)

func refusal(kind, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), kind, nil)
}

// proven reports whether the API's proof holds for a request, checked live
// (in a validator, which never replays).
func (d *deployment) proven(ctx workflow.Context, name, subject string, groups []string, text string, p models.Proof) bool {
	return len(d.inbox.voteKey) > 0 && p.MAC != "" &&
		models.SignedRequest{DeploymentID: d.in.DeploymentID, Name: name, Subject: subject, Groups: groups, Text: text}.
			Verify(d.inbox.voteKey, p, workflow.Now(ctx))
}

// requestVia says by which path an accepted Update came: the API (its
// proof holds) or anyone else. The answer depends on the worker's key, so
// it is recorded once (SideEffect) and replays the same whatever the key.
func (d *deployment) requestVia(ctx workflow.Context, name, subject string, groups []string, text string, p models.Proof) models.Via {
	var via models.Via
	_ = workflow.SideEffectWithOptions(ctx, workflow.SideEffectOptions{Summary: "did " + name + " by " + models.Cut(subject, 100) + " come through the API?"}, func(ctx workflow.Context) any {
		if d.proven(ctx, name, subject, groups, text, p) {
			return models.ViaAPI
		}
		return models.ViaUpdate
	}).Get(&via)
	return via
}

// ---- votes

// checkVoteText refuses text that cannot be stored, or too much of it.
func checkVoteText(v models.VoteInput) error {
	ve := &models.ValidationError{}
	models.CheckText(ve, "approver", v.Approver)
	models.CheckText(ve, "comment", v.Comment)
	for i, g := range v.Groups {
		models.CheckText(ve, fmt.Sprintf("groups[%d]", i), g)
	}
	switch {
	case strings.TrimSpace(v.Approver) == "":
		ve.Add("approver", "is required: the vote names no approver")
	case len(v.Approver) > 128:
		ve.Add("approver", "must be at most 128 characters")
	}
	if len(v.Comment) > 4096 {
		ve.Add("comment", "must be at most 4096 characters")
	}
	if err := ve.Err(); err != nil {
		return refusal(models.ErrTypeInvalid, "%s", err.Error())
	}
	return nil
}

// checkVote says whether a vote may be counted now. With groupsKnown false
// the approver's groups are still to be looked up, and are not checked.
func (d *deployment) checkVote(v models.VoteInput, groupsKnown bool) error {
	if err := checkVoteText(v); err != nil {
		return err
	}
	if d.Status != models.StatusAwaitingApproval {
		return refusal(models.ErrTypeConflict, "deployment %s is %s, not awaiting approval: votes are closed", d.in.DeploymentID, d.Status)
	}
	if d.approved() || d.Rejection != nil {
		return refusal(models.ErrTypeConflict, "deployment %s is decided already: votes are closed", d.in.DeploymentID)
	}
	policy := d.Plan.Policy
	if groups := d.approverGroups(); groupsKnown && len(groups) > 0 &&
		!slices.ContainsFunc(v.Groups, func(g string) bool { return slices.Contains(groups, g) }) {
		what := "the approver groups"
		if d.in.Emergency != nil {
			what = "the emergency approvers"
		}
		return refusal(models.ErrTypeForbidden, "%s is not in %s of environment %s (%s)",
			v.Approver, what, d.Plan.Environment, strings.Join(groups, ", "))
	}
	if v.Approver == d.in.RequestedBy && !policy.SelfApprovalAllowed {
		return refusal(models.ErrTypeForbidden, "%s requested this deployment and the policy of environment %s does not allow self-approval: another approver must vote",
			v.Approver, d.Plan.Environment)
	}
	for _, ap := range d.Approvals {
		if ap.Approver == v.Approver {
			return refusal(models.ErrTypeConflict, "%s has already voted (%s) on deployment %s", v.Approver, ap.Decision, d.in.DeploymentID)
		}
	}
	if d.voting[v.Approver] {
		return refusal(models.ErrTypeConflict, "a vote of %s on deployment %s is being counted already", v.Approver, d.in.DeploymentID)
	}
	return nil
}

// checkVoteUpdate is the validator of the approve and reject Updates. A
// vote the API signed carries its groups; any other has them looked up
// (in the handler), so that no vote's groups rest on the caller's word.
func (d *deployment) checkVoteUpdate(ctx workflow.Context, decision string, v models.VoteInput) error {
	return d.checkVote(v, d.proven(ctx, decision, v.Approver, v.Groups, v.Comment, v.Proof))
}

// voteUpdate is the handler of the approve and reject Updates. A vote from
// the API counts at once, and is answered before it is recorded (the
// record follows, in order, before anything it caused). Any other vote
// counts once its subject's groups were looked up and checked.
func (d *deployment) voteUpdate(ctx workflow.Context, decision string, v models.VoteInput) (models.VoteResult, error) {
	via := d.requestVia(ctx, decision, v.Approver, v.Groups, v.Comment, v.Proof)
	if via != models.ViaAPI {
		d.voting[v.Approver] = true
		groups, err := d.lookupGroups(ctx, v.Approver)
		delete(d.voting, v.Approver)
		if err != nil {
			return models.VoteResult{}, err
		}
		v.Groups = groups
		if err := d.checkVote(v, true); err != nil {
			return models.VoteResult{}, err
		}
	}
	d.answerFirst()
	return d.applyVote(decision, v, via), nil
}

// answerFirst lets the Update being handled be answered at once. Temporal
// sends an Update's answer when the workflow task that ran its handler
// completes, and a task completes only when the local activities it
// started have ended. So what the Update caused (its record, the gate, the
// rollout) waits for a 1 ms timer, and starts in the next task; a vote is
// answered in about the time of a bare Update.
func (d *deployment) answerFirst() {
	if d.answered == nil || d.answered.IsReady() {
		d.answered = workflow.NewTimerWithOptions(d.safe, time.Millisecond, workflow.TimerOptions{Summary: "answer the update first"})
	}
}

// afterAnswer waits until the Update being answered has its answer sent.
func (d *deployment) afterAnswer(ctx workflow.Context) {
	if d.answered != nil && !d.answered.IsReady() {
		_ = workflow.Await(ctx, d.answered.IsReady)
	}
}

// lookupGroups returns the groups of a subject from its live API tokens;
// a subject without one is refused.
func (d *deployment) lookupGroups(ctx workflow.Context, subject string) ([]string, error) {
	var p activities.PrincipalResult
	if err := workflow.ExecuteLocalActivity(lookupCtx(ctx, subject), a.LookupPrincipal, subject).Get(ctx, &p); err != nil {
		return nil, refusal(models.ErrTypeConflict, "the groups of %s could not be looked up (%s): vote again later", subject, rootMessage(err))
	}
	if !p.Known {
		return nil, refusal(models.ErrTypeForbidden, "no live API token names %s, so it is not a known approver: vote through Transit's API, or with a subject that has a token", subject)
	}
	return models.Principal{Subject: subject, Groups: p.Groups, Roles: p.Roles}.ApproverGroups(), nil
}

// versionControlRoles is when controls that the API did not sign (Signals,
// and Updates from the temporal CLI) began to need a role: before it they
// were taken from anyone.
const versionControlRoles = "control-roles"

// versionControlRecheck is when a control sent as a Signal began to be
// checked again after its subject's look-up.
const versionControlRecheck = "control-recheck"

// mayControl refuses a pause, resume, abort or rollback that did not come
// through the API (which checks roles itself) unless its subject's live
// tokens make it a release_manager or admin, or a deployer of the team
// that owns the application: the same rule as the API's.
func (d *deployment) mayControl(ctx workflow.Context, subject string) error {
	if workflow.GetVersion(ctx, versionControlRoles, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var p activities.PrincipalResult
	if err := workflow.ExecuteLocalActivity(lookupCtx(ctx, subject), a.LookupPrincipal, subject).Get(ctx, &p); err != nil {
		return refusal(models.ErrTypeConflict, "the roles of %s could not be looked up (%s): try again later", subject, rootMessage(err))
	}
	grants := p.Grants
	if grants == nil { // looked up before tokens were told apart (replay)
		grants = []activities.Grant{{Roles: p.Roles, Teams: p.Teams}}
	}
	if !p.Known {
		return refusal(models.ErrTypeForbidden, "no live API token names %s: send controls through Transit's API, or as a subject that has a token", subject)
	}
	for _, g := range grants {
		who := models.Principal{Subject: subject, Roles: g.Roles, Teams: g.Teams}
		if who.HasRole(models.RoleReleaseManager) || who.HasRole(models.RoleDeployer) && who.InTeam(d.Plan.OwnerTeam) {
			return nil
		}
	}
	return refusal(models.ErrTypeForbidden, "%s may not control deployment %s: that needs a release_manager, or a deployer of team %q, which owns %s (its roles: %s; teams: %s)",
		subject, d.in.DeploymentID, d.Plan.OwnerTeam, d.Plan.Application, listOrNone(p.Roles), listOrNone(p.Teams))
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// applyVote counts a vote that passed every check, and records it.
func (d *deployment) applyVote(decision string, v models.VoteInput, via models.Via) models.VoteResult {
	ap := models.Approval{DeploymentID: d.in.DeploymentID, Approver: v.Approver, Decision: decision,
		Comment: v.Comment, Via: string(via), At: workflow.Now(d.safe).UTC()}
	d.Approvals = append(d.Approvals, ap)
	if decision == models.DecisionReject && d.Rejection == nil {
		d.Rejection = &ap
	}
	msg := fmt.Sprintf("%s voted %s via %s", ap.Approver, decision, via)
	if ap.Comment != "" {
		msg += ": " + ap.Comment
	}
	if decision == models.DecisionApprove && via != models.ViaPolicy {
		msg += fmt.Sprintf(" (%d of %d approvals)", d.approvedCount(), d.required())
	}
	d.record(activities.RecordInput{Type: models.EventVote, Message: msg, Vote: &ap,
		Audit: &activities.AuditRecord{Actor: ap.Approver, Action: decision, Via: via,
			Data: map[string]any{"comment": ap.Comment, "groups": v.Groups}}})
	d.showDetails()
	return models.VoteResult{Status: d.Status, Approvals: d.approvedCount(), Required: d.required(),
		Decided: d.approved() || d.Rejection != nil}
}

// ---- controls

// checkControl is the validator of pause, resume, abort and rollback.
func (d *deployment) checkControl(name string, c models.ControlInput) error {
	ve := &models.ValidationError{}
	models.CheckText(ve, "by", c.By)
	models.CheckText(ve, "reason", c.Reason)
	if strings.TrimSpace(c.By) == "" {
		ve.Add("by", "is required: name who asks")
	}
	if len(c.By) > 128 {
		ve.Add("by", "must be at most 128 characters")
	}
	if len(c.Reason) > 4096 {
		ve.Add("reason", "must be at most 4096 characters")
	}
	if err := ve.Err(); err != nil {
		return refusal(models.ErrTypeInvalid, "%s", err.Error())
	}
	if d.Status.Terminal() {
		return refusal(models.ErrTypeConflict, "deployment %s has ended (%s)", d.in.DeploymentID, d.Status)
	}
	if d.Stop != nil {
		return refusal(models.ErrTypeConflict, "deployment %s is already stopping (%s)", d.in.DeploymentID, d.Stop.String())
	}
	if d.Rejection != nil {
		return refusal(models.ErrTypeConflict, "deployment %s was rejected by %s and is ending", d.in.DeploymentID, d.Rejection.Approver)
	}
	switch name {
	case models.UpdatePause:
		if d.Paused {
			return refusal(models.ErrTypeConflict, "deployment %s is already paused by %s", d.in.DeploymentID, d.PausedBy)
		}
		if !slices.Contains([]models.Status{models.StatusQueued, models.StatusScheduled, models.StatusDeploying}, d.Status) {
			return refusal(models.ErrTypeConflict, "only a rollout can be paused; deployment %s is %s", d.in.DeploymentID, d.Status)
		}
	case models.UpdateResume:
		if !d.Paused {
			return refusal(models.ErrTypeConflict, "deployment %s is not paused", d.in.DeploymentID)
		}
	case models.UpdateAbort:
		if d.PastPONR {
			return refusal(models.ErrTypeConflict, "deployment %s passed its point of no return at %s: release %s is committed, so fix forward (report an incident) instead of aborting",
				d.in.DeploymentID, d.PONRAt.Format(time.RFC3339), d.Plan.ReleaseVersion)
		}
	case models.UpdateRollback:
		if d.PastPONR {
			return refusal(models.ErrTypeConflict, "deployment %s passed its point of no return at %s: rollback is no longer offered; fix forward",
				d.in.DeploymentID, d.PONRAt.Format(time.RFC3339))
		}
		if len(d.Comps) == 0 || !slices.Contains([]models.Status{models.StatusDeploying, models.StatusPaused, models.StatusValidating, models.StatusEarlyLifeSupport}, d.Status) {
			return refusal(models.ErrTypeConflict, "deployment %s is %s: nothing has been deployed to roll back (use abort to cancel it)", d.in.DeploymentID, d.Status)
		}
	default:
		return refusal(models.ErrTypeInvalid, "%q is not a control: use pause, resume, abort or rollback", name)
	}
	return nil
}

// control applies a control that passed its check, and records it in the
// name of whoever asked.
func (d *deployment) control(name string, c models.ControlInput, via models.Via) models.ControlResult {
	switch name {
	case models.UpdatePause:
		d.Paused, d.PausedBy, d.PauseWhy = true, c.By, c.Reason
	case models.UpdateResume:
		d.Paused = false
	case models.UpdateAbort:
		d.requestStop(stopRequest{Kind: models.StopAbort, By: c.By, Reason: c.Reason})
	case models.UpdateRollback:
		d.requestStop(stopRequest{Kind: models.StopRollback, By: c.By, Reason: c.Reason})
	}
	d.showDetails()
	msg := fmt.Sprintf("%s asked to %s via %s", c.By, name, via)
	if c.Reason != "" {
		msg += ": " + c.Reason
	}
	d.record(activities.RecordInput{Type: models.EventControl, Message: msg,
		Audit: &activities.AuditRecord{Actor: c.By, Action: name, Via: via, Data: map[string]any{"reason": c.Reason}}})
	return models.ControlResult{Status: d.Status}
}

// ---- signals

// ignoredRecordLimit bounds the ignored signals recorded one by one in a
// run; past it, one line per hundred says how many more were ignored, so
// that a script looping on signals cannot flood the timeline.
const ignoredRecordLimit = 100

// handleSignals takes the inbox's signals in the order they arrived. None
// can hold up another: a malformed one is recorded as ignored, with the
// reason, and the next is taken.
func (d *deployment) handleSignals() {
	for {
		s, ok := d.inbox.next()
		if !ok {
			return
		}
		d.handleSignal(s)
	}
}

func (d *deployment) handleSignal(s signal) {
	switch s.Name {
	case models.UpdateApprove, models.UpdateReject:
		var v models.VoteInput
		if err := s.decode(&v); err != nil {
			d.ignored(s.Name, "", "its payload is not a vote, e.g. {\"approver\": \"alice\", \"comment\": \"looks good\"}: "+err.Error())
			return
		}
		if err := d.checkVote(v, false); err != nil {
			d.ignored(s.Name, v.Approver, rootMessage(err))
			return
		}
		// A signal carries no proof: the approver's groups are looked up.
		d.voting[v.Approver] = true
		groups, err := d.lookupGroups(d.safe, v.Approver)
		delete(d.voting, v.Approver)
		if err == nil {
			v.Groups = groups
			err = d.checkVote(v, true)
		}
		if err != nil {
			d.ignored(s.Name, v.Approver, rootMessage(err))
			return
		}
		d.applyVote(s.Name, v, models.ViaSignal)
	case models.UpdatePause, models.UpdateResume, models.UpdateAbort, models.UpdateRollback:
		var c models.ControlInput
		if err := s.decode(&c); err != nil {
			d.ignored(s.Name, "", "its payload is not a control, e.g. {\"by\": \"alice\", \"reason\": \"…\"}: "+err.Error())
			return
		}
		if err := d.checkControl(s.Name, c); err != nil {
			d.ignored(s.Name, c.By, rootMessage(err))
			return
		}
		if err := d.mayControl(d.safe, c.By); err != nil {
			d.ignored(s.Name, c.By, rootMessage(err))
			return
		}
		// The look-up let other handlers run (an abort, a pause): check
		// again, as the Update path does, so that a control that no longer
		// applies is recorded as ignored, not as taken.
		if workflow.GetVersion(d.safe, versionControlRecheck, workflow.DefaultVersion, 1) == 1 {
			if err := d.checkControl(s.Name, c); err != nil {
				d.ignored(s.Name, c.By, rootMessage(err))
				return
			}
		}
		d.control(s.Name, c, models.ViaSignal)
	case models.SignalLaneFree:
		d.laneFree = true
	case models.SignalPolicyChanged:
		d.policyChanged = true
	default:
		d.ignored(s.Name, "", "the deployment workflow takes the signals "+strings.Join(signalNames, ", "))
	}
}

// ignored records a refused signal on the timeline and in the audit log, in
// the name it gave.
func (d *deployment) ignored(name, by, reason string) {
	d.ignoredCount++
	switch {
	case d.ignoredCount <= ignoredRecordLimit:
	case d.ignoredCount%ignoredRecordLimit == 0:
		d.record(activities.RecordInput{Type: models.EventSignalIgnored,
			Message: fmt.Sprintf("%d signals ignored so far in this run; the last: %s signal from %q: %s", d.ignoredCount, name, by, reason)})
		return
	default:
		return
	}
	who := by
	if who == "" {
		who = "an unnamed sender"
	}
	d.record(activities.RecordInput{Type: models.EventSignalIgnored,
		Message: fmt.Sprintf("%s signal from %q ignored: %s", models.Cut(name, 64), who, reason),
		Audit: &activities.AuditRecord{Actor: by, Action: "signal_ignored", Via: models.ViaSignal,
			Data: map[string]any{"signal": models.Cut(name, 64), "reason": reason}}})
}
