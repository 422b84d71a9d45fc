package models

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	semverRe = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	// looksSemverRe matches what a person means as semver: digits, a dot, digits.
	looksSemverRe = regexp.MustCompile(`^v?\d+\.\d+`)
	versionRe     = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,127}$`)
	digestRe      = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$`)
)

// ValidateName checks a resource name: lower case letters, digits, '.', '_'
// and '-', starting with a letter or digit, at most 63 characters.
func ValidateName(v *ValidationError, field, name string) {
	switch {
	case name == "":
		v.Add(field, "is required")
	case !nameRe.MatchString(name):
		v.Add(field, "%q must be 1-63 lower case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
}

// Application is a digital product that is released and deployed.
type Application struct {
	ID          string    `json:"id" gorm:"primaryKey"`
	Name        string    `json:"name"`
	OwnerTeam   string    `json:"owner_team"`
	Description string    `json:"description"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Validate checks the fields a client sets.
func (a *Application) Validate() error {
	v := &ValidationError{}
	ValidateName(v, "name", a.Name)
	if strings.TrimSpace(a.OwnerTeam) == "" {
		v.Add("owner_team", "is required: name the team that owns the application")
	} else if len(a.OwnerTeam) > 128 {
		v.Add("owner_team", "must be at most 128 characters")
	}
	if len(a.Description) > 4096 {
		v.Add("description", "must be at most 4096 characters")
	}
	return v.Err()
}

// Environment is a place a release is deployed to, with its order in the
// application's lifecycle and its policy.
type Environment struct {
	ID            string            `json:"id" gorm:"primaryKey"`
	ApplicationID string            `json:"application_id"`
	Name          string            `json:"name"`
	Position      int               `json:"position"`
	Policy        JSONValue[Policy] `json:"policy"`
	CreatedBy     string            `json:"created_by"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// Validate checks the fields a client sets and normalises the policy.
func (e *Environment) Validate() error {
	v := &ValidationError{}
	if e.ApplicationID == "" {
		v.Add("application_id", "is required")
	}
	ValidateName(v, "name", e.Name)
	if e.Position < 0 || e.Position > 1000 {
		v.Add("position", "must be between 0 and 1000")
	}
	e.Policy.V.Normalize()
	v.Merge("policy", e.Policy.V.Validate())
	return v.Err()
}

// Target is one unit inside an environment that receives a release.
type Target struct {
	ID            string                       `json:"id" gorm:"primaryKey"`
	EnvironmentID string                       `json:"environment_id"`
	Name          string                       `json:"name"`
	Driver        string                       `json:"driver"`
	Config        JSONValue[json.RawMessage]   `json:"config"`
	Labels        JSONValue[map[string]string] `json:"labels"`
	CreatedBy     string                       `json:"created_by"`
	CreatedAt     time.Time                    `json:"created_at"`
	UpdatedAt     time.Time                    `json:"updated_at"`
}

// Validate checks the fields a client sets, and the config against its driver.
func (t *Target) Validate() error {
	v := &ValidationError{}
	if t.EnvironmentID == "" {
		v.Add("environment_id", "is required")
	}
	ValidateName(v, "name", t.Name)
	v.Merge("config", ValidateDriverConfig(t.Driver, t.Config.V, v))
	for k := range t.Labels.V {
		if !nameRe.MatchString(k) {
			v.Add("labels", "label key %q must be lower case letters, digits, '.', '_' or '-'", k)
		}
	}
	return v.Err()
}

// Artifact is one deliverable of a release.
type Artifact struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Image   string `json:"image,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// Release is an immutable, versioned package of an application.
type Release struct {
	ID            string                       `json:"id" gorm:"primaryKey"`
	ApplicationID string                       `json:"application_id"`
	Version       string                       `json:"version"`
	Artifacts     JSONValue[[]Artifact]        `json:"artifacts"`
	Notes         string                       `json:"notes"`
	EntryCriteria JSONValue[map[string]string] `json:"entry_criteria"`
	CreatedBy     string                       `json:"created_by"`
	CreatedAt     time.Time                    `json:"created_at"`
}

// IsSemver reports whether version is a valid semantic version (an optional
// leading "v" allowed).
func IsSemver(version string) bool { return semverRe.MatchString(version) }

// Validate checks the fields a client sets.
func (r *Release) Validate() error {
	v := &ValidationError{}
	if r.ApplicationID == "" {
		v.Add("application_id", "is required")
	}
	switch {
	case r.Version == "":
		v.Add("version", "is required")
	case looksSemverRe.MatchString(r.Version) && !IsSemver(r.Version):
		v.Add("version", "%q looks like semver but is not valid semver (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.4.0 or 2.0.0-rc.1)", r.Version)
	case !versionRe.MatchString(r.Version):
		v.Add("version", "%q must be 1-128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit", r.Version)
	}
	if len(r.Artifacts.V) == 0 {
		v.Add("artifacts", "at least one artifact is required")
	}
	seen := map[string]bool{}
	for i, a := range r.Artifacts.V {
		field := "artifacts[" + strconv.Itoa(i) + "]"
		if a.Name == "" {
			v.Add(field+".name", "is required")
		} else if seen[a.Name] {
			v.Add(field+".name", "%q appears twice", a.Name)
		}
		seen[a.Name] = true
		if a.Version == "" && a.Image == "" {
			v.Add(field, "give a version or an image")
		}
		if a.Digest != "" && !digestRe.MatchString(a.Digest) {
			v.Add(field+".digest", "%q must look like algorithm:hex, e.g. sha256:4f1c…", a.Digest)
		}
	}
	if len(r.Notes) > 65536 {
		v.Add("notes", "must be at most 64 KiB")
	}
	for k := range r.EntryCriteria.V {
		if strings.TrimSpace(k) == "" {
			v.Add("entry_criteria", "keys must not be empty")
		}
	}
	return v.Err()
}

// CompareVersions orders two semantic versions: -1 when a is older than b,
// 0 when they are equal in precedence, 1 when a is newer. ok is false when
// either is not semver, and then nothing is said about their order.
func CompareVersions(a, b string) (c int, ok bool) {
	ma, mb := semverRe.FindStringSubmatch(a), semverRe.FindStringSubmatch(b)
	if ma == nil || mb == nil {
		return 0, false
	}
	for i := 1; i <= 3; i++ {
		if c := compareNumeric(ma[i], mb[i]); c != 0 {
			return c, true
		}
	}
	// A pre-release is older than the release itself.
	switch pa, pb := ma[4], mb[4]; {
	case pa == pb:
		return 0, true
	case pa == "":
		return 1, true
	case pb == "":
		return -1, true
	default:
		fa, fb := strings.Split(pa, "."), strings.Split(pb, ".")
		for i := 0; i < len(fa) && i < len(fb); i++ {
			na, errA := strconv.Atoi(fa[i])
			nb, errB := strconv.Atoi(fb[i])
			switch {
			case errA == nil && errB == nil && na != nb:
				return cmpInt(na, nb), true
			case errA == nil && errB != nil:
				return -1, true
			case errA != nil && errB == nil:
				return 1, true
			case errA != nil && errB != nil && fa[i] != fb[i]:
				return strings.Compare(fa[i], fb[i]), true
			}
		}
		return cmpInt(len(fa), len(fb)), true
	}
}

func compareNumeric(a, b string) int {
	if len(a) != len(b) {
		return cmpInt(len(a), len(b)) // no leading zeros in semver
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
