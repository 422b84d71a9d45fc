package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/transit-hq/transit/models"
)

// TokenPrefix starts every token secret, so that a leaked one is easy to
// recognise in logs and secret scanners.
const TokenPrefix = "trt_"

var kindToken = kind{name: "token", table: "api_tokens", filters: []string{"subject"}}

// NewTokenSecret returns a fresh random token secret.
func NewTokenSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return TokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// CreateToken stores t with the hash of secret. The secret itself is never stored.
func (s *Store) CreateToken(ctx context.Context, actor Actor, t *models.APIToken, secret string) error {
	if t.Groups.V == nil {
		t.Groups.V = []string{}
	}
	if t.Teams.V == nil {
		t.Teams.V = []string{}
	}
	if len(t.Roles.V) == 0 {
		t.Roles.V = models.DefaultRoles(t.Groups.V)
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < len(TokenPrefix)+20 {
		return models.Invalid("token", "a token must start with %q and be at least %d characters", TokenPrefix, len(TokenPrefix)+20)
	}
	t.ID, t.CreatedBy, t.Hash = models.NewID(models.PrefixToken), actor.Subject, models.HashToken(secret)
	return create(ctx, s, actor, kindToken, t.ID, t, nil)
}

// Authenticate returns the live token whose secret this is.
func (s *Store) Authenticate(ctx context.Context, secret string) (*models.APIToken, error) {
	var t models.APIToken
	err := s.db.WithContext(ctx).Where("hash = ?", models.HashToken(secret)).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("unknown token: %w", models.ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if t.RevokedAt != nil {
		return nil, fmt.Errorf("token %s was revoked: %w", t.ID, models.ErrUnauthenticated)
	}
	if t.ExpiresAt != nil && time.Now().After(*t.ExpiresAt) {
		return nil, fmt.Errorf("token %s expired: %w", t.ID, models.ErrUnauthenticated)
	}
	return &t, nil
}

// ListTokens lists tokens (never their secrets); filter: subject.
func (s *Store) ListTokens(ctx context.Context, opt ListOptions) (Page[models.APIToken], error) {
	return list(ctx, s.db, kindToken, opt, func(t models.APIToken) string { return t.ID })
}

// RevokeToken marks a token revoked; it stops working at once.
func (s *Store) RevokeToken(ctx context.Context, actor Actor, id string) (*models.APIToken, error) {
	return update(ctx, s, actor, kindToken, id, func(_ *gorm.DB, t *models.APIToken) error {
		if t.RevokedAt == nil {
			now := time.Now().UTC().Truncate(time.Microsecond)
			t.RevokedAt = &now
		}
		return nil
	})
}
