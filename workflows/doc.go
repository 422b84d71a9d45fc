// Package workflows holds the deployment workflow: one durable Temporal
// workflow per deployment, deterministic code only. It reaches the world
// through activities (method references on *activities.Activities).
package workflows
