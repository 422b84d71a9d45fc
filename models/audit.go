package models

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// AuditEvent is one row of the append-only, hash-chained audit log.
type AuditEvent struct {
	Seq          int64     `json:"seq" gorm:"primaryKey;autoIncrement:false"`
	At           time.Time `json:"at"`
	Actor        string    `json:"actor"`
	Action       string    `json:"action"`
	ResourceType string    `json:"resource_type"`
	ResourceID   string    `json:"resource_id"`
	Before       JSONText  `json:"before"`
	After        JSONText  `json:"after"`
	RequestID    string    `json:"request_id"`
	PrevHash     string    `json:"prev_hash"`
	Hash         string    `json:"hash"`
}

// JSONText is JSON kept as its exact text, because the audit hash covers
// its bytes (a JSONB column would reorder keys).
type JSONText string

// MarshalJSON writes the text as raw JSON; empty is null.
func (j JSONText) MarshalJSON() ([]byte, error) {
	if j == "" {
		return []byte("null"), nil
	}
	return []byte(j), nil
}

// UnmarshalJSON keeps the raw text.
func (j *JSONText) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = ""
		return nil
	}
	*j = JSONText(b)
	return nil
}

// ComputeHash returns the hash that chains e to its predecessor: SHA-256 over
// the previous hash and every field of e but Hash, each length-prefixed so no
// two different events share an input.
func (e *AuditEvent) ComputeHash() string {
	h := sha256.New()
	for _, part := range []string{
		e.PrevHash,
		strconv.FormatInt(e.Seq, 10),
		e.At.UTC().Format(time.RFC3339Nano),
		e.Actor, e.Action, e.ResourceType, e.ResourceID,
		string(e.Before), string(e.After), e.RequestID,
	} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write([]byte(part))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Audit actions.
const (
	ActionCreate = "create"
	ActionUpdate = "update"
	ActionDelete = "delete"
)

// Principal is who a request acts as: a subject, its groups (approver
// eligibility), its teams (which applications it owns) and its roles (what
// it may do; see roles.go).
type Principal struct {
	Subject string   `json:"subject"`
	Groups  []string `json:"groups"`
	Teams   []string `json:"teams"`
	Roles   []string `json:"roles"`
	// Via is how the request proved who it is: "token" or "oidc".
	Via string `json:"via,omitempty"`
}

// GroupAdmin is the group whose tokens were admins before roles existed;
// a token made with it and no roles is an admin.
const GroupAdmin = "admin"

// InGroup reports whether p belongs to group.
func (p Principal) InGroup(group string) bool {
	for _, g := range p.Groups {
		if g == group {
			return true
		}
	}
	return false
}

// IsAdmin reports whether p may administer Transit.
func (p Principal) IsAdmin() bool { return p.HasRole(RoleAdmin) }

// APIToken is a bearer token, stored as the SHA-256 of its secret.
type APIToken struct {
	ID          string              `json:"id" gorm:"primaryKey"`
	Subject     string              `json:"subject"`
	Groups      JSONValue[[]string] `json:"groups"`
	Teams       JSONValue[[]string] `json:"teams"`
	Roles       JSONValue[[]string] `json:"roles"`
	Description string              `json:"description"`
	Hash        string              `json:"-"`
	CreatedBy   string              `json:"created_by"`
	CreatedAt   time.Time           `json:"created_at"`
	ExpiresAt   *time.Time          `json:"expires_at,omitempty"`
	RevokedAt   *time.Time          `json:"revoked_at,omitempty"`
}

// HashToken returns the stored form of a token secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Validate checks the fields a client sets.
func (t *APIToken) Validate() error {
	v := &ValidationError{}
	if t.Subject == "" {
		v.Add("subject", "is required: the user or service the token acts as")
	} else if len(t.Subject) > 128 {
		v.Add("subject", "must be at most 128 characters")
	}
	for i, g := range t.Groups.V {
		if !nameRe.MatchString(g) {
			v.Add("groups["+strconv.Itoa(i)+"]", "%q must be lower case letters, digits, '.', '_' or '-'", g)
		}
	}
	for i, g := range t.Teams.V {
		if !nameRe.MatchString(g) {
			v.Add("teams["+strconv.Itoa(i)+"]", "%q must be lower case letters, digits, '.', '_' or '-'", g)
		}
	}
	CheckRoles(v, "roles", t.Roles.V)
	if t.ExpiresAt != nil && !t.ExpiresAt.After(time.Now()) {
		v.Add("expires_at", "must be in the future")
	}
	return v.Err()
}

// Principal returns who the token acts as.
func (t *APIToken) Principal() Principal {
	p := Principal{Subject: t.Subject, Groups: t.Groups.V, Teams: t.Teams.V, Roles: t.Roles.V, Via: "token"}
	if len(p.Roles) == 0 {
		p.Roles = DefaultRoles(p.Groups)
	}
	return p
}
