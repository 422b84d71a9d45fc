package models

import (
	"strings"
	"time"
)

// KnownError is a problem known to travel with a release (or with every
// release of an application), with its workaround: ITIL's known error.
type KnownError struct {
	ID            string `json:"id" gorm:"primaryKey"`
	ApplicationID string `json:"application_id"`
	// ReleaseID links it to one release; empty: every release of the
	// application until it is resolved.
	ReleaseID   string     `json:"release_id"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Workaround  string     `json:"workaround"`
	Severity    string     `json:"severity"`
	Status      string     `json:"status"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
}

// Known error states.
const (
	KnownErrorOpen     = "open"
	KnownErrorResolved = "resolved"
)

// PrefixKnownError starts a known error's id.
const PrefixKnownError = "ke"

// Validate checks the fields a client sets.
func (k *KnownError) Validate() error {
	v := &ValidationError{}
	k.Title = strings.TrimSpace(k.Title)
	if k.ApplicationID == "" {
		v.Add("application_id", "is required: the application it affects")
	}
	for field, text := range map[string]string{"title": k.Title, "description": k.Description, "workaround": k.Workaround} {
		CheckText(v, field, text)
	}
	switch {
	case k.Title == "":
		v.Add("title", "is required: say what goes wrong")
	case len(k.Title) > 500:
		v.Add("title", "must be at most 500 characters")
	}
	if len(k.Description) > 8192 {
		v.Add("description", "must be at most 8192 characters")
	}
	if len(k.Workaround) > 8192 {
		v.Add("workaround", "must be at most 8192 characters")
	}
	if SeverityRank(k.Severity) < 0 {
		v.Add("severity", "%q must be one of critical, high, medium, low", k.Severity)
	}
	if k.Status != KnownErrorOpen && k.Status != KnownErrorResolved {
		v.Add("status", "%q must be open or resolved", k.Status)
	}
	return v.Err()
}

// KnownErrorRef is a known error as a plan carries it.
type KnownErrorRef struct {
	ID           string `json:"id"`
	Title        string `json:"title"`
	Severity     string `json:"severity"`
	Workaround   string `json:"workaround,omitempty"`
	Acknowledged bool   `json:"acknowledged"`
}
