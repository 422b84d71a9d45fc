package models

import "time"

// KPI units.
const (
	UnitRatio   = "ratio"    // 0 to 1
	UnitCount   = "count"    // a number of things
	UnitSeconds = "seconds"  // a duration (a median)
	UnitPerDay  = "per_day"  // a count divided by the range's length in days
	UnitPerWeek = "per_week" // a count divided by the range's length in weeks
)

// KPI names: ITIL's deployment management.
const (
	KPISuccessfulDeploymentRate = "successful_deployment_rate"
	KPIDeploymentErrors         = "deployment_errors"
	KPIDeploymentIncidents      = "deployment_incidents"
	KPIScheduleAdherence        = "schedule_adherence"
	KPIDeploymentLeadTime       = "deployment_lead_time"
	KPIDeploymentsSubmitted     = "deployments_submitted"
	KPIDeploymentsFinished      = "deployments_finished"
	KPIDeploymentBacklog        = "deployment_backlog"
	KPIFinishedPerWeek          = "finished_per_week"
	KPIComplianceIssues         = "compliance_issues"
)

// KPI names: release and deployment management.
const (
	KPIUnresolvedKnownErrors        = "unresolved_known_errors"
	KPIIncidentsLinkedToKnownErrors = "incidents_linked_to_known_errors"
)

// KPI names: DORA's four keys, per application and environment.
const (
	KPIDeploymentFrequency = "deployment_frequency"
	KPILeadTimeForChanges  = "lead_time_for_changes"
	KPIChangeFailureRate   = "change_failure_rate"
	KPITimeToRestore       = "time_to_restore"
)

// Compliance issue kinds (the breakdown of compliance_issues).
const (
	// IssueNoQuorum: a rollout started with fewer approvals than its quorum.
	IssueNoQuorum = "no_quorum"
	// IssueEmergencyChange: an emergency change was submitted.
	IssueEmergencyChange = "emergency_change"
	// IssueVoteOutsideAPI: a vote reached the workflow as a Temporal Update
	// or Signal, not through Transit's API.
	IssueVoteOutsideAPI = "vote_outside_api"
	// IssueAuditChainBroken: the audit log's hash chain does not verify.
	IssueAuditChainBroken = "audit_chain_broken"
)

// ComplianceIssueKinds lists the kinds, in the order reports give them.
var ComplianceIssueKinds = []string{IssueNoQuorum, IssueEmergencyChange, IssueVoteOutsideAPI, IssueAuditChainBroken}

// KPIDefinition is what a KPI is: its unit, the Prometheus gauge that
// carries it, and how it is counted.
type KPIDefinition struct {
	Name    string
	Unit    string
	Metric  string
	Counted string
}

// KPIDefinitions defines every KPI. "The range" is [from, to): a
// timestamp t is in it when from <= t < to.
var KPIDefinitions = []KPIDefinition{
	{KPISuccessfulDeploymentRate, UnitRatio, "transit_kpi_successful_deployment_ratio",
		"completed (handed over without issues) among the deployments that finished in the range as completed, completed_with_issues, rolled_back or failed (failed only once its rollout began); rejected, expired and cancelled ones, and failures before the rollout, changed nothing and are left out"},
	{KPIDeploymentErrors, UnitCount, "transit_kpi_deployment_errors",
		"deployments that finished in the range as rolled_back or failed (breakdown: by status)"},
	{KPIDeploymentIncidents, UnitCount, "transit_kpi_deployment_incidents",
		"incidents opened in the range on the deployments (breakdown: by severity)"},
	{KPIScheduleAdherence, UnitRatio, "transit_kpi_schedule_adherence_ratio",
		"among the deployments whose rollout started in the range (their first move to deploying), those that started within their planned window: at or after their not_before, inside a change window of the policy they were planned under (any time when it has none) and outside its freezes; an emergency change that passed a freeze or a closed window did not"},
	{KPIDeploymentLeadTime, UnitSeconds, "transit_kpi_deployment_lead_time_seconds",
		"median of handed over (finished_at) minus submitted (created_at), over the deployments that finished in the range as completed or completed_with_issues"},
	{KPIDeploymentsSubmitted, UnitCount, "transit_kpi_deployments_submitted",
		"deployments submitted (created_at) in the range"},
	{KPIDeploymentsFinished, UnitCount, "transit_kpi_deployments_finished",
		"deployments that reached a final status (finished_at) in the range, whatever it was (breakdown: by status)"},
	{KPIDeploymentBacklog, UnitCount, "transit_kpi_deployment_backlog",
		"deployments submitted before the end of the range and not finished by then"},
	{KPIFinishedPerWeek, UnitPerWeek, "transit_kpi_deployments_finished_per_week",
		"deployments_finished divided by the range's length in weeks (weekly_throughput has submitted and finished week by week)"},
	{KPIComplianceIssues, UnitCount, "transit_kpi_compliance_issues",
		"no_quorum: rollouts started in the range with fewer approve votes than their quorum (the policy's approvals_required, or its emergency quorum for an emergency change) and no approval by the policy (a standard change, or a policy that requires none); emergency_change: emergency changes submitted in the range; vote_outside_api: votes cast in the range as a Temporal Update or Signal rather than through the API; audit_chain_broken: 1 when the whole audit log's hash chain does not verify now (not filtered by range, application or environment)"},

	{KPIUnresolvedKnownErrors, UnitCount, "transit_kpi_unresolved_known_errors",
		"known errors of the application(s) recorded before the end of the range and not resolved by then (known errors belong to applications: an environment filter does not narrow them)"},
	{KPIIncidentsLinkedToKnownErrors, UnitRatio, "transit_kpi_incidents_known_error_ratio",
		"among the incidents opened in the range on the deployments, those linked to a known error"},

	{KPIDeploymentFrequency, UnitPerDay, "transit_kpi_deployment_frequency_per_day",
		"deployments that finished in the range as completed, completed_with_issues, rolled_back or failed (failed only once its rollout began), divided by the range's length in days"},
	{KPILeadTimeForChanges, UnitSeconds, "transit_kpi_lead_time_for_changes_seconds",
		"median of handed over (finished_at) minus the release's creation (releases.created_at), over the deployments that finished in the range as completed or completed_with_issues; in the production environment (production: true, the application's highest position) this is DORA's lead time for changes"},
	{KPIChangeFailureRate, UnitRatio, "transit_kpi_change_failure_ratio",
		"rolled_back, failed or completed_with_issues among the deployments counted by deployment_frequency"},
	{KPITimeToRestore, UnitSeconds, "transit_kpi_time_to_restore_seconds",
		"median over the failures that began in the range and were restored since: an incident opened in the range (opened → resolved), and a deployment that finished in the range as rolled_back (its finished_at → the finished_at of the next completed deployment of the application to the environment); breakdown: incidents and rollbacks restored, and unrestored ones (left out of the median)"},
}

// KPIDefinitionOf returns the definition of the KPI name (the zero value
// for a name it does not know).
func KPIDefinitionOf(name string) KPIDefinition {
	for _, d := range KPIDefinitions {
		if d.Name == name {
			return d
		}
	}
	return KPIDefinition{}
}

// KPI is one figure computed from the records, with how it was counted.
type KPI struct {
	Name string `json:"name"`
	// Value is nil when there was nothing to count (a ratio of none, a
	// median of no samples) or when the records do not track it (Note
	// says which).
	Value *float64 `json:"value"`
	Unit  string   `json:"unit"`
	// Count is a ratio's numerator, a duration's number of samples, a
	// rate's count, or a count's value.
	Count int64 `json:"count"`
	// Of is a ratio's denominator.
	Of        *int64           `json:"of,omitempty"`
	Breakdown map[string]int64 `json:"breakdown,omitempty"`
	Counted   string           `json:"counted"`
	Note      string           `json:"note,omitempty"`
}

// FindKPI returns the KPI named name in list, or nil.
func FindKPI(list []KPI, name string) *KPI {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// KPIWeek is one week of the deployment backlog's throughput.
type KPIWeek struct {
	// From and To bound the week, [From, To): 7 days from the range's
	// start, the last one ending with the range.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Submitted and Finished count the deployments submitted and finished
	// (any final status) in the week; Backlog those not finished at its end.
	Submitted int64 `json:"submitted"`
	Finished  int64 `json:"finished"`
	Backlog   int64 `json:"backlog"`
}

// ComplianceIssue is one deployment-related audit or compliance issue.
type ComplianceIssue struct {
	Kind          string    `json:"kind"`
	DeploymentID  string    `json:"deployment_id,omitempty"`
	ApplicationID string    `json:"application_id,omitempty"`
	EnvironmentID string    `json:"environment_id,omitempty"`
	At            time.Time `json:"at"`
	Message       string    `json:"message"`
}

// KPIGroup is the KPIs of one application and environment (or of one
// application, when EnvironmentID is empty).
type KPIGroup struct {
	ApplicationID string `json:"application_id"`
	Application   string `json:"application"`
	EnvironmentID string `json:"environment_id,omitempty"`
	Environment   string `json:"environment,omitempty"`
	Position      int    `json:"position"`
	// Production: the environment has its application's highest position.
	Production bool  `json:"production"`
	KPIs       []KPI `json:"kpis"`
}

// MaxComplianceIssues bounds the issues a report lists (the
// compliance_issues KPI counts them all).
const MaxComplianceIssues = 200

// KPIReport is what GET /kpis returns.
type KPIReport struct {
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	ApplicationID string    `json:"application_id,omitempty"`
	EnvironmentID string    `json:"environment_id,omitempty"`
	ComputedAt    time.Time `json:"computed_at"`
	// DeploymentManagement: ITIL's deployment management metrics, over
	// every environment in scope.
	DeploymentManagement []KPI `json:"deployment_management"`
	// WeeklyThroughput: submitted against finished, week by week.
	WeeklyThroughput []KPIWeek `json:"weekly_throughput"`
	// ComplianceIssues lists the issues compliance_issues counts: a
	// broken audit chain first, then oldest first; at most
	// MaxComplianceIssues.
	ComplianceIssues []ComplianceIssue `json:"compliance_issues"`
	// ReleaseManagement: known errors.
	ReleaseManagement []KPI `json:"release_management"`
	// DORA: the four keys per application and environment.
	DORA []KPIGroup `json:"dora"`
}

// KPISnapshot is every KPI by application and environment, for the
// Prometheus gauges.
type KPISnapshot struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	ComputedAt time.Time `json:"computed_at"`
	// Environments: deployment management and DORA, per application and
	// environment (compliance_issues without the audit chain).
	Environments []KPIGroup `json:"environments"`
	// Applications: release management, per application.
	Applications []KPIGroup `json:"applications"`
	// AuditChainOK: whether the audit log's chain verifies.
	AuditChainOK bool `json:"audit_chain_ok"`
}
