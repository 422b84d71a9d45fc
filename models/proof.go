package models

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProofMaxAge is how long a signed vote or control stays valid: long enough
// for a request in flight, too short to replay a captured one later.
const ProofMaxAge = 5 * time.Minute

// MinVoteKeyBytes is the shortest key SignRequest accepts.
const MinVoteKeyBytes = 32

// SignedRequest is what the API signs when it sends a vote or a control to
// a deployment's workflow: who asked, with which groups, what, and when.
type SignedRequest struct {
	DeploymentID string
	Name         string // approve, reject, pause, resume, abort, rollback
	Subject      string
	Groups       []string
	Text         string // the vote's comment or the control's reason
	IssuedAt     time.Time
}

// message is the signed bytes: each part length-prefixed, so that no two
// different requests share them.
func (r SignedRequest) message() []byte {
	groups := slices.Clone(r.Groups)
	slices.Sort(groups)
	var b strings.Builder
	for _, part := range []string{"transit-request/v1", r.DeploymentID, r.Name, r.Subject,
		strings.Join(groups, "\n"), r.Text, r.IssuedAt.UTC().Format(time.RFC3339Nano)} {
		b.WriteString(strconv.Itoa(len(part)))
		b.WriteByte(':')
		b.WriteString(part)
	}
	return []byte(b.String())
}

// Sign returns the proof of r with key.
func (r SignedRequest) Sign(key []byte) Proof {
	mac := hmac.New(sha256.New, key)
	mac.Write(r.message())
	return Proof{IssuedAt: r.IssuedAt.UTC(), MAC: hex.EncodeToString(mac.Sum(nil))}
}

// Verify reports whether p is key's proof of r, made at most ProofMaxAge
// before now (and not in the future beyond a minute of clock skew).
func (r SignedRequest) Verify(key []byte, p Proof, now time.Time) bool {
	if len(key) < MinVoteKeyBytes || p.MAC == "" {
		return false
	}
	r.IssuedAt = p.IssuedAt
	if now.Sub(p.IssuedAt) > ProofMaxAge || p.IssuedAt.Sub(now) > time.Minute {
		return false
	}
	want := r.Sign(key)
	return hmac.Equal([]byte(want.MAC), []byte(p.MAC))
}
