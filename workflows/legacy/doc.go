// Package legacy is the deployment workflow as it ran before the "shape-2"
// change (see workflows.Deployment, which routes runs started before that
// change here). It is frozen: deployments started on it replay and finish
// on exactly this code, and the saved histories under
// testdata/histories/*.legacy-*.json prove it in CI.
//
// Delete this package, and the branch that calls it, once no deployment
// started before shape-2 can still be running.
package legacy
