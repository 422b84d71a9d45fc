// Package models holds Transit's domain types: the catalog (applications,
// environments, targets, releases), the audit log, API tokens and the
// principal a request acts as. It imports nothing of ours.
package models

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

// NewID returns a new identifier made of prefix, an underscore and a ULID.
// IDs with the same prefix sort in creation order, which list pagination
// relies on.
func NewID(prefix string) string {
	idMu.Lock()
	defer idMu.Unlock()
	return prefix + "_" + ulid.MustNew(ulid.Timestamp(time.Now()), idEntropy).String()
}

// ID prefixes, one per kind of resource.
const (
	PrefixApplication = "app"
	PrefixEnvironment = "env"
	PrefixTarget      = "tgt"
	PrefixRelease     = "rel"
	PrefixToken       = "tok"
	PrefixDeployment  = "dep"
)
