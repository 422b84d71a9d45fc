package models

// Transit's worker metrics, emitted through the Temporal SDK's metrics
// handler (so that a workflow's are not counted again when it replays) and
// served by the worker's /metrics (package telemetry).
const (
	// MetricDeploymentsStarted counts deployment workflows started.
	MetricDeploymentsStarted = "transit_deployments_started"
	// MetricDeploymentsFinished counts deployments that ended, by status.
	MetricDeploymentsFinished = "transit_deployments_finished"
	// MetricTargetSteps counts driver calls, by driver, action and result.
	MetricTargetSteps = "transit_target_steps"
)
