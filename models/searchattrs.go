package models

import "go.temporal.io/sdk/temporal"

// DefaultTaskQueue is the task queue Transit's workers poll unless configured otherwise.
const DefaultTaskQueue = "transit"

// Search attribute names, registered by `transit dev`, the test harness and
// docker-compose.yml, so that deployments can be filtered in the Temporal UI.
const (
	// SAApplication is the application's name.
	SAApplication = "TransitApplication"
	// SAEnvironment is the environment's name.
	SAEnvironment = "TransitEnvironment"
	// SAReleaseVersion is the release's version.
	SAReleaseVersion = "TransitReleaseVersion"
	// SAStage is the deployment's status.
	SAStage = "TransitStage"
)

// SearchAttributes lists every search attribute Transit uses (all Keyword).
var SearchAttributes = []string{SAApplication, SAEnvironment, SAReleaseVersion, SAStage}

// Typed keys of the search attributes.
var (
	KeyApplication    = temporal.NewSearchAttributeKeyKeyword(SAApplication)
	KeyEnvironment    = temporal.NewSearchAttributeKeyKeyword(SAEnvironment)
	KeyReleaseVersion = temporal.NewSearchAttributeKeyKeyword(SAReleaseVersion)
	KeyStage          = temporal.NewSearchAttributeKeyKeyword(SAStage)
)

// StartAttributes are the search attributes a deployment starts with.
func StartAttributes(application, environment, version string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		KeyApplication.ValueSet(application),
		KeyEnvironment.ValueSet(environment),
		KeyReleaseVersion.ValueSet(version),
		KeyStage.ValueSet(string(StatusPlanning)),
	)
}
