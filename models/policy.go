package models

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Policy is an environment's rules for deployments into it. Every field is
// stored from the start; later issues give some of them behaviour.
type Policy struct {
	// ApprovalsRequired is the quorum of distinct approvers; 0 approves automatically.
	ApprovalsRequired int `json:"approvals_required"`
	// ApproverGroups may approve; empty means any authenticated principal.
	ApproverGroups []string `json:"approver_groups"`
	// SelfApprovalAllowed lets the requester approve their own deployment.
	SelfApprovalAllowed bool `json:"self_approval_allowed"`
	// ApprovalExpiry ends a deployment as expired when the quorum is not met in time.
	ApprovalExpiry Duration `json:"approval_expiry"`
	// StandardChange, when set, pre-approves deployments that it matches:
	// the policy approves them, and the approval names the rule.
	StandardChange *StandardChange `json:"standard_change,omitempty"`
	// ChangeWindows are the weekly windows in which rollouts may start.
	ChangeWindows []ChangeWindow `json:"change_windows"`
	// Freezes are periods in which no rollout may run.
	Freezes []Freeze `json:"freezes"`
	// Strategy is the default rollout strategy.
	Strategy Strategy `json:"strategy"`
	// PointOfNoReturn is how long after validation a rollback is still offered.
	PointOfNoReturn Duration `json:"point_of_no_return"`
	// EarlyLifeSupport is how long the deployment is observed after validation.
	EarlyLifeSupport Duration `json:"early_life_support"`
	// ValidationChecks run on every target after the rollout.
	ValidationChecks []CheckSpec `json:"validation_checks"`
	// ObservationProbes run periodically during early life support.
	ObservationProbes []ProbeSpec `json:"observation_probes"`
	// ExitCriteria decide the handover to operations at the end of ELS.
	ExitCriteria ExitCriteria `json:"exit_criteria"`
	// Promotion: what a release must have done before it may come here.
	Promotion Promotion `json:"promotion,omitzero"`
	// ConflictLabel names a target label ("host", "cluster"): two
	// deployments whose targets share a value of it conflict, even across
	// applications (the schedule and the plan step find them).
	ConflictLabel string `json:"conflict_label,omitempty"`
	// OnConflict is what planning does on a conflict: "warn" (the default
	// when ConflictLabel is set), "refuse" or "wait".
	OnConflict string `json:"on_conflict,omitempty"`
	// Emergency: who approves an emergency change (see EmergencyPolicy).
	Emergency *EmergencyPolicy `json:"emergency,omitempty"`
	// KnownErrors says what a release with open known errors needs here:
	// "acknowledge" (the default: each acknowledged at submit) or
	// "refuse" (none may be open).
	KnownErrors string `json:"known_errors,omitempty"`
}

// Known error rules of a policy.
const (
	KnownErrorsAcknowledge = "acknowledge"
	KnownErrorsRefuse      = "refuse"
)

// EmergencyPolicy approves emergency changes: ApprovalsRequired (at least
// 1) from ApproverGroups, or, when it names none, from release managers.
type EmergencyPolicy struct {
	ApprovalsRequired int      `json:"approvals_required"`
	ApproverGroups    []string `json:"approver_groups,omitempty"`
}

// Quorum is how many approvals the plan's deployment needs and from whom
// (groups, a role as RolePrefix+role; none: anyone signed in): the
// policy's, or for an emergency change its emergency policy's.
func (p Plan) Quorum() (int, []string) {
	if p.Emergency != nil {
		return p.Policy.EmergencyQuorum()
	}
	return p.Policy.ApprovalsRequired, p.Policy.ApproverGroups
}

// EmergencyQuorum is how many approvals an emergency change needs, and
// from whom (groups; a role as RolePrefix+role).
func (p Policy) EmergencyQuorum() (int, []string) {
	n, groups := 1, []string{RolePrefix + RoleReleaseManager, RolePrefix + RoleAdmin}
	if e := p.Emergency; e != nil {
		n = max(1, e.ApprovalsRequired)
		if len(e.ApproverGroups) > 0 {
			groups = e.ApproverGroups
		}
	}
	return n, groups
}

// StandardChange is a pre-approved kind of change (ITIL): a deployment
// whose risk is at most MaxRisk, of one of the Scenarios, that passed the
// environment's promotion, is approved by the policy.
type StandardChange struct {
	MaxRisk int `json:"max_risk"`
	// Scenarios it covers (default: upgrade only).
	Scenarios []string `json:"scenarios,omitempty"`
	// RequiresKnownErrorsAcknowledged lets a release that carries open
	// known errors be a standard change when every one was acknowledged at
	// submit; without it, any open known error makes it a normal change.
	RequiresKnownErrorsAcknowledged bool `json:"requires_known_errors_acknowledged,omitempty"`
}

// Matches says whether the plan is a standard change, and why (or why not).
func (sc *StandardChange) Matches(p Plan) (bool, string) {
	if sc == nil {
		return false, "the policy has no standard change"
	}
	scenarios := sc.Scenarios
	if len(scenarios) == 0 {
		scenarios = []string{ScenarioUpgrade}
	}
	switch {
	case !slices.Contains(scenarios, p.Scenario):
		return false, fmt.Sprintf("a %s is not a standard change here (scenarios %s)", p.Scenario, strings.Join(scenarios, ", "))
	case p.Risk.Score > sc.MaxRisk:
		return false, fmt.Sprintf("risk %d is above the standard change's max_risk %d", p.Risk.Score, sc.MaxRisk)
	case len(p.KnownErrors) > 0 && !sc.RequiresKnownErrorsAcknowledged:
		return false, "the release carries open known errors"
	case slices.ContainsFunc(p.KnownErrors, func(k KnownErrorRef) bool { return !k.Acknowledged }):
		return false, "an open known error of the release was not acknowledged"
	}
	return true, fmt.Sprintf("standard change: %s with risk %s (%d) ≤ max_risk %d; %s", p.Scenario, p.Risk.Level, p.Risk.Score,
		sc.MaxRisk, strings.Join(p.Risk.Reasons, "; "))
}

// Promotion is an environment's place in its application's lifecycle: a
// release is promoted, not teleported. A deployment that does not meet it
// is refused at submit (409, naming the environment it has not passed).
type Promotion struct {
	// Previous requires that the release completed, and was not rolled
	// back, in every environment of the application with a lower position.
	Previous bool `json:"previous,omitempty"`
	// Requires names environments (of the same application) where it must
	// have completed.
	Requires []string `json:"requires,omitempty"`
	// MinSoak is how long since it was handed over there ("24h").
	MinSoak Duration `json:"min_soak,omitempty"`
}

// Required reports whether the promotion asks for anything.
func (p Promotion) Required() bool { return p.Previous || len(p.Requires) > 0 }

// ChangeWindow is a weekly window: on Days, from Start to End (HH:MM) in Timezone.
type ChangeWindow struct {
	Days     []string `json:"days"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Timezone string   `json:"timezone"`
}

// Freeze forbids rollouts between Start and End.
type Freeze struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Reason string    `json:"reason"`
}

// Strategy kinds.
const (
	StrategyAllAtOnce = "all_at_once"
	StrategyRolling   = "rolling"
	StrategyCanary    = "canary"
)

// Strategy says how targets are batched into waves.
type Strategy struct {
	Kind string `json:"kind"`
	// Batch is the number of targets per wave for rolling.
	Batch int `json:"batch,omitempty"`
	// Steps are the cumulative canary sizes: a count or a percentage.
	Steps []CanaryStep `json:"steps,omitempty"`
	// Bake is the pause between waves.
	Bake Duration `json:"bake,omitempty"`
	// MaxFailures is the number of failed targets a wave tolerates.
	MaxFailures int `json:"max_failures"`
	// MaxTotalFailures is the number of failed targets the whole rollout
	// tolerates; unset, the same share of all targets as MaxFailures is of
	// the largest wave, and always fewer than all of them.
	MaxTotalFailures *int `json:"max_total_failures,omitempty"`
	// MaxParallel bounds the targets of a wave deployed at once.
	MaxParallel int `json:"max_parallel,omitempty"`
}

// CanaryStep is a cumulative wave size: a count of targets (3) or a
// percentage of them ("25%").
type CanaryStep struct {
	Count   int
	Percent int
}

// MarshalJSON writes a count as a number and a percentage as "N%".
func (s CanaryStep) MarshalJSON() ([]byte, error) {
	if s.Percent > 0 {
		return json.Marshal(strconv.Itoa(s.Percent) + "%")
	}
	return json.Marshal(s.Count)
}

// UnmarshalJSON reads 3 or "25%".
func (s *CanaryStep) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*s = CanaryStep{Count: n}
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil || !strings.HasSuffix(str, "%") {
		return fmt.Errorf("a canary step is a target count (1) or a percentage (\"25%%\")")
	}
	p, err := strconv.Atoi(strings.TrimSuffix(str, "%"))
	if err != nil {
		return fmt.Errorf("canary step %q is not a whole percentage", str)
	}
	*s = CanaryStep{Percent: p}
	return nil
}

// CheckSpec is one validation check run on every target after rollout.
type CheckSpec struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`
	Config  json.RawMessage `json:"config"`
	Timeout Duration        `json:"timeout"`
	Tries   int             `json:"tries"`
}

// ProbeSpec is one observation probe run periodically during ELS.
type ProbeSpec struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Config   json.RawMessage `json:"config"`
	Interval Duration        `json:"interval"`
	// Threshold is the value the probe's result is compared with.
	Threshold float64 `json:"threshold"`
	// Tolerance is how many runs in a row must miss the threshold on one
	// target before that counts as a breach (default 1).
	Tolerance int `json:"tolerance,omitempty"`
	// ErrorTolerance is how many runs in a row may fail to measure at all
	// on one target (the monitoring system down, an empty answer) before
	// the deployment counts as not observable (default 5). Such errors are
	// never a breach of the service.
	ErrorTolerance int `json:"error_tolerance,omitempty"`
}

// Probe defaults.
const (
	DefaultProbeTolerance      = 1
	DefaultProbeErrorTolerance = 5
)

// ExitCriteria decide the handover at the end of early life support.
type ExitCriteria struct {
	// MaxOpenIncidentSeverity: an open incident at or above it blocks handover.
	MaxOpenIncidentSeverity string `json:"blocking_incident_severity"`
	// MinProbeSuccessRatio is the share of passing probe runs required.
	MinProbeSuccessRatio float64 `json:"min_probe_success_ratio"`
}

// Incident severities, most severe first.
var Severities = []string{"critical", "high", "medium", "low"}

// SeverityRank returns 0 for the most severe, higher for less; -1 if unknown.
func SeverityRank(s string) int {
	for i, v := range Severities {
		if v == s {
			return i
		}
	}
	return -1
}

var (
	hhmmRe = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)
	days   = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true}
)

// Policy defaults, applied by Normalize to fields left empty.
const (
	DefaultApprovalExpiry   = 72 * time.Hour
	DefaultPointOfNoReturn  = 30 * time.Minute
	DefaultEarlyLifeSupport = 2 * time.Hour
	DefaultProbeInterval    = time.Minute
	DefaultCheckTimeout     = 10 * time.Second
	DefaultCheckTries       = 3
	DefaultMaxParallel      = 10
	DefaultMinProbeSuccess  = 0.95
	DefaultBlockingSeverity = "high"
)

// Normalize fills fields left empty with their defaults, so that the stored
// policy says exactly what will happen.
func (p *Policy) Normalize() {
	if p.ApproverGroups == nil {
		p.ApproverGroups = []string{}
	}
	if p.ApprovalExpiry == 0 {
		p.ApprovalExpiry = Duration(DefaultApprovalExpiry)
	}
	if p.ChangeWindows == nil {
		p.ChangeWindows = []ChangeWindow{}
	}
	if p.Freezes == nil {
		p.Freezes = []Freeze{}
	}
	if p.ConflictLabel != "" && p.OnConflict == "" {
		p.OnConflict = OnConflictWarn
	}
	if p.Strategy.Kind == "" {
		p.Strategy.Kind = StrategyAllAtOnce
	}
	if p.Strategy.MaxParallel == 0 {
		p.Strategy.MaxParallel = DefaultMaxParallel
	}
	if p.PointOfNoReturn == 0 {
		p.PointOfNoReturn = Duration(DefaultPointOfNoReturn)
	}
	if p.EarlyLifeSupport == 0 {
		p.EarlyLifeSupport = Duration(DefaultEarlyLifeSupport)
	}
	if p.ValidationChecks == nil {
		p.ValidationChecks = []CheckSpec{}
	}
	for i := range p.ValidationChecks {
		c := &p.ValidationChecks[i]
		if c.Timeout == 0 {
			c.Timeout = Duration(DefaultCheckTimeout)
		}
		if c.Tries == 0 {
			c.Tries = DefaultCheckTries
		}
	}
	if p.ObservationProbes == nil {
		p.ObservationProbes = []ProbeSpec{}
	}
	for i := range p.ObservationProbes {
		pr := &p.ObservationProbes[i]
		if pr.Interval == 0 {
			pr.Interval = Duration(DefaultProbeInterval)
		}
		if pr.Tolerance == 0 {
			pr.Tolerance = DefaultProbeTolerance
		}
		if pr.ErrorTolerance == 0 {
			pr.ErrorTolerance = DefaultProbeErrorTolerance
		}
	}
	if p.ExitCriteria.MaxOpenIncidentSeverity == "" {
		p.ExitCriteria.MaxOpenIncidentSeverity = DefaultBlockingSeverity
	}
	if p.ExitCriteria.MinProbeSuccessRatio == 0 {
		p.ExitCriteria.MinProbeSuccessRatio = DefaultMinProbeSuccess
	}
}

// Validate checks a normalised policy.
func (p *Policy) Validate() error {
	v := &ValidationError{}
	if p.ApprovalsRequired < 0 || p.ApprovalsRequired > 20 {
		v.Add("approvals_required", "must be between 0 and 20")
	}
	for i, g := range p.ApproverGroups {
		if strings.TrimSpace(g) == "" {
			v.Add(fmt.Sprintf("approver_groups[%d]", i), "must not be empty")
		}
	}
	if p.ApprovalExpiry < 0 {
		v.Add("approval_expiry", "must be positive")
	}
	if p.KnownErrors != "" && p.KnownErrors != KnownErrorsAcknowledge && p.KnownErrors != KnownErrorsRefuse {
		v.Add("known_errors", "%q must be acknowledge or refuse", p.KnownErrors)
	}
	if e := p.Emergency; e != nil && (e.ApprovalsRequired < 0 || e.ApprovalsRequired > 20) {
		v.Add("emergency.approvals_required", "must be between 1 and 20 (0 means 1: an emergency change is always approved by someone)")
	}
	if sc := p.StandardChange; sc != nil {
		if sc.MaxRisk < 0 || sc.MaxRisk > 100 {
			v.Add("standard_change.max_risk", "must be between 0 and 100 (the risk score's range)")
		}
		for i, s := range sc.Scenarios {
			if !slices.Contains([]string{ScenarioInstall, ScenarioUpgrade, ScenarioDowngrade}, s) {
				v.Add(fmt.Sprintf("standard_change.scenarios[%d]", i), "%q must be one of install, upgrade, downgrade", s)
			}
		}
	}
	for i, name := range p.Promotion.Requires {
		ValidateName(v, fmt.Sprintf("promotion.requires[%d]", i), name)
	}
	if p.Promotion.MinSoak < 0 {
		v.Add("promotion.min_soak", "must be positive")
	}
	if p.Promotion.MinSoak > 0 && !p.Promotion.Required() {
		v.Add("promotion.min_soak", "needs previous: true or requires: the environments to soak in")
	}
	if p.ConflictLabel != "" && !nameRe.MatchString(p.ConflictLabel) {
		v.Add("conflict_label", "%q must be a label key: lower case letters, digits, '.', '_' or '-' (e.g. host, cluster)", p.ConflictLabel)
	}
	switch {
	case p.OnConflict != "" && !slices.Contains(OnConflictRules, p.OnConflict):
		v.Add("on_conflict", "%q must be one of %s", p.OnConflict, strings.Join(OnConflictRules, ", "))
	case p.OnConflict != "" && p.ConflictLabel == "":
		v.Add("on_conflict", "needs conflict_label: the target label whose shared values make a conflict (e.g. host)")
	}
	for i, w := range p.ChangeWindows {
		f := fmt.Sprintf("change_windows[%d]", i)
		if len(w.Days) == 0 {
			v.Add(f+".days", "name at least one day (mon … sun)")
		}
		for _, d := range w.Days {
			if !days[strings.ToLower(d)] {
				v.Add(f+".days", "%q is not a day: use mon, tue, wed, thu, fri, sat or sun", d)
			}
		}
		if !hhmmRe.MatchString(w.Start) {
			v.Add(f+".start", "%q must be HH:MM (24-hour)", w.Start)
		}
		if !hhmmRe.MatchString(w.End) {
			v.Add(f+".end", "%q must be HH:MM (24-hour)", w.End)
		}
		if w.Timezone != "" {
			if _, err := time.LoadLocation(w.Timezone); err != nil {
				v.Add(f+".timezone", "%q is not a known IANA time zone (e.g. Europe/Paris, UTC)", w.Timezone)
			}
		}
	}
	for i, fr := range p.Freezes {
		f := fmt.Sprintf("freezes[%d]", i)
		if fr.Start.IsZero() || fr.End.IsZero() {
			v.Add(f, "start and end are required (RFC 3339 times)")
		} else if !fr.End.After(fr.Start) {
			v.Add(f+".end", "must be after start")
		}
	}
	v.Merge("strategy", p.Strategy.Validate())
	if p.PointOfNoReturn < 0 {
		v.Add("point_of_no_return", "must be positive")
	}
	if p.EarlyLifeSupport < 0 {
		v.Add("early_life_support", "must be positive")
	}
	names := map[string]bool{}
	for i, c := range p.ValidationChecks {
		f := fmt.Sprintf("validation_checks[%d]", i)
		if c.Name == "" {
			v.Add(f+".name", "is required")
		} else if names[c.Name] {
			v.Add(f+".name", "%q appears twice", c.Name)
		}
		names[c.Name] = true
		if c.Tries < 1 || c.Tries > 100 {
			v.Add(f+".tries", "must be between 1 and 100")
		}
		if c.Timeout < 0 {
			v.Add(f+".timeout", "must be positive")
		}
		v.Merge(f+".config", ValidateCheckConfig(c.Type, c.Config))
	}
	names = map[string]bool{}
	for i, pr := range p.ObservationProbes {
		f := fmt.Sprintf("observation_probes[%d]", i)
		if pr.Name == "" {
			v.Add(f+".name", "is required")
		} else if names[pr.Name] {
			v.Add(f+".name", "%q appears twice", pr.Name)
		}
		names[pr.Name] = true
		if pr.Type == ProbeHTTP && (pr.Threshold <= 0 || pr.Threshold > 1) {
			v.Add(f+".threshold", "an http probe needs a threshold between 0 and 1: the lowest success ratio that passes, e.g. 0.95")
		}
		if pr.Interval.D() < time.Second {
			v.Add(f+".interval", "must be at least 1s")
		}
		if pr.Tolerance < 1 || pr.Tolerance > 100 {
			v.Add(f+".tolerance", "must be between 1 and 100 runs in a row")
		}
		if pr.ErrorTolerance < 1 || pr.ErrorTolerance > 1000 {
			v.Add(f+".error_tolerance", "must be between 1 and 1000 runs in a row")
		}
		v.Merge(f+".config", ValidateProbeConfig(pr.Type, pr.Config))
	}
	if SeverityRank(p.ExitCriteria.MaxOpenIncidentSeverity) < 0 {
		v.Add("exit_criteria.blocking_incident_severity", "%q must be one of %s", p.ExitCriteria.MaxOpenIncidentSeverity, strings.Join(Severities, ", "))
	}
	if r := p.ExitCriteria.MinProbeSuccessRatio; r < 0 || r > 1 {
		v.Add("exit_criteria.min_probe_success_ratio", "must be between 0 and 1")
	}
	return v.Err()
}

// Validate checks a strategy.
func (s *Strategy) Validate() error {
	v := &ValidationError{}
	switch s.Kind {
	case StrategyAllAtOnce:
	case StrategyRolling:
		if s.Batch < 1 {
			v.Add("batch", "a rolling strategy needs a batch of at least 1 target")
		}
	case StrategyCanary:
		if len(s.Steps) == 0 {
			v.Add("steps", "a canary strategy needs steps, e.g. [1, \"25%%\", \"100%%\"]")
		}
		for i, st := range s.Steps {
			if st.Count < 0 || st.Percent < 0 || st.Percent > 100 || (st.Count == 0 && st.Percent == 0) {
				v.Add(fmt.Sprintf("steps[%d]", i), "must be a positive count or a percentage from 1%% to 100%%")
			}
		}
	default:
		v.Add("kind", "%q must be one of all_at_once, rolling, canary", s.Kind)
	}
	if s.Bake < 0 {
		v.Add("bake", "must be positive")
	}
	if s.MaxFailures < 0 {
		v.Add("max_failures", "must not be negative")
	}
	if s.MaxTotalFailures != nil && *s.MaxTotalFailures < 0 {
		v.Add("max_total_failures", "must not be negative")
	}
	if s.MaxParallel < 0 || s.MaxParallel > 1000 {
		v.Add("max_parallel", "must be between 1 and 1000")
	}
	return v.Err()
}

// TotalFailureLimit is how many of total targets may fail in the whole
// rollout: MaxTotalFailures when set, else the share that MaxFailures is of
// the largest wave. Either way fewer than all: a rollout where every target
// failed has deployed nothing.
func (s Strategy) TotalFailureLimit(total, largestWave int) int {
	limit := 0
	switch {
	case s.MaxTotalFailures != nil:
		limit = *s.MaxTotalFailures
	case largestWave > 0:
		limit = total * s.MaxFailures / largestWave
	}
	return max(0, min(limit, total-1))
}

// Loosens lists how s allows more than base, the environment's strategy:
// more failures, larger or fewer waves, more targets at once, a shorter
// bake. A deployer may only submit a strategy that loosens nothing.
func (s Strategy) Loosens(base Strategy) []string {
	var out []string
	if s.MaxFailures > base.MaxFailures {
		out = append(out, fmt.Sprintf("max_failures %d is more than the environment's %d", s.MaxFailures, base.MaxFailures))
	}
	switch {
	case base.MaxTotalFailures != nil && s.MaxTotalFailures == nil:
		out = append(out, fmt.Sprintf("max_total_failures is unset, the environment's is %d", *base.MaxTotalFailures))
	case base.MaxTotalFailures != nil && *s.MaxTotalFailures > *base.MaxTotalFailures:
		out = append(out, fmt.Sprintf("max_total_failures %d is more than the environment's %d", *s.MaxTotalFailures, *base.MaxTotalFailures))
	case base.MaxTotalFailures == nil && s.MaxTotalFailures != nil && *s.MaxTotalFailures > base.MaxFailures:
		// Unset, the limit grows with the fleet; only the wave's limit is
		// surely no more.
		out = append(out, fmt.Sprintf("max_total_failures %d is more than the environment's max_failures %d", *s.MaxTotalFailures, base.MaxFailures))
	}
	if base.MaxParallel > 0 && (s.MaxParallel == 0 || s.MaxParallel > base.MaxParallel) {
		out = append(out, fmt.Sprintf("max_parallel %d is more than the environment's %d", max(s.MaxParallel, DefaultMaxParallel), base.MaxParallel))
	}
	if s.Bake < base.Bake {
		out = append(out, fmt.Sprintf("bake %s is shorter than the environment's %s", time.Duration(s.Bake), time.Duration(base.Bake)))
	}
	switch {
	case base.Kind == StrategyAllAtOnce || base.Kind == "":
		// Any strategy deploys no more at once than all at once.
	case s.Kind != base.Kind:
		out = append(out, fmt.Sprintf("kind %s instead of the environment's %s", s.Kind, base.Kind))
	case s.Kind == StrategyRolling && s.Batch > base.Batch:
		out = append(out, fmt.Sprintf("batch %d is larger than the environment's %d", s.Batch, base.Batch))
	case s.Kind == StrategyCanary && !canaryNoWider(s.Steps, base.Steps):
		out = append(out, "canary steps are not each at most the environment's, in the same units")
	}
	return out
}

// canaryNoWider reports whether every step of s is no larger than the
// same step of base, in the same unit, with at least as many steps.
func canaryNoWider(s, base []CanaryStep) bool {
	if len(s) < len(base) {
		return false
	}
	for i, b := range base {
		switch {
		case (s[i].Percent > 0) != (b.Percent > 0):
			return false
		case s[i].Percent > b.Percent || s[i].Count > b.Count:
			return false
		}
	}
	return true
}

// LifecycleStep is where a release stands in one environment of its
// application: its last deployment there.
type LifecycleStep struct {
	EnvironmentID string     `json:"environment_id"`
	Environment   string     `json:"environment"`
	Position      int        `json:"position"`
	Deployments   int        `json:"deployments"`
	DeploymentID  string     `json:"deployment_id,omitempty"`
	Scenario      string     `json:"scenario,omitempty"`
	Status        Status     `json:"status,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
}

// Passed reports whether the release runs there, handed over: its last
// deployment there completed (and was not a decommission).
func (s LifecycleStep) Passed() bool {
	return (s.Status == StatusCompleted || s.Status == StatusCompletedWithIssues) && s.Scenario != ScenarioDecommission
}

// PromotionGap says why a release may not come to env yet (nil: it may),
// given where it stands in every environment of its application.
func (p Promotion) Gap(env *Environment, steps []LifecycleStep, now time.Time) []string {
	var need []LifecycleStep
	byName := map[string]LifecycleStep{}
	for _, s := range steps {
		byName[s.Environment] = s
		if p.Previous && s.Position < env.Position && s.EnvironmentID != env.ID {
			need = append(need, s)
		}
	}
	for _, name := range p.Requires {
		s, ok := byName[name]
		if !ok {
			s = LifecycleStep{Environment: name}
		}
		if !slices.ContainsFunc(need, func(n LifecycleStep) bool { return n.Environment == name }) {
			need = append(need, s)
		}
	}
	var gaps []string
	for _, s := range need {
		switch {
		case s.Deployments == 0:
			gaps = append(gaps, fmt.Sprintf("it has not been deployed to %s", s.Environment))
		case !s.Passed():
			gaps = append(gaps, fmt.Sprintf("its last deployment to %s (%s) is %s %s, not completed", s.Environment, s.DeploymentID, s.Scenario, s.Status))
		case p.MinSoak > 0 && s.FinishedAt != nil && now.Sub(*s.FinishedAt) < p.MinSoak.D():
			gaps = append(gaps, fmt.Sprintf("it has soaked in %s for %s of the %s required", s.Environment,
				now.Sub(*s.FinishedAt).Round(time.Minute), p.MinSoak.D()))
		}
	}
	return gaps
}
