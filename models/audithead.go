package models

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AuditHead is a signed statement that the audit log's row Seq has hash
// Hash. The key that signs it lives outside the database
// (TRANSIT_AUDIT_KEY), so that whoever can rewrite the database cannot
// make a head: an auditor saves heads, and a later log that does not
// contain them was rewritten.
type AuditHead struct {
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
	// SignedAt is when Transit signed it: a head of an old row signed
	// after a rewrite says so.
	SignedAt time.Time `json:"signed_at"`
	// KeyID names the signing key: the first 16 hex digits of the SHA-256
	// of its public key.
	KeyID string `json:"key_id"`
	// Signature is Ed25519 over the head's message, in base64.
	Signature string `json:"signature"`
}

// message is what the signature covers.
func (h AuditHead) message() []byte {
	return []byte("transit-audit-head/v2\n" + strconv.FormatInt(h.Seq, 10) + "\n" + h.Hash + "\n" + h.At.UTC().Format(time.RFC3339Nano) +
		"\n" + h.SignedAt.UTC().Format(time.RFC3339Nano))
}

// Verify checks the head's signature with pub.
func (h AuditHead) Verify(pub ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(h.Signature)
	if err != nil || h.Signature == "" {
		return errors.New("the head has no valid signature")
	}
	if h.KeyID != KeyID(pub) {
		return fmt.Errorf("the head was signed by key %s, not by this key (%s)", h.KeyID, KeyID(pub))
	}
	if !ed25519.Verify(pub, h.message(), sig) {
		return errors.New("the head's signature does not match its seq, hash and time: it was altered or not made by Transit")
	}
	return nil
}

// KeyID names a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// AuditKey signs audit heads.
type AuditKey struct{ priv ed25519.PrivateKey }

// Sign fills in the head's key id and signature.
func (k *AuditKey) Sign(h AuditHead) AuditHead {
	h.At = h.At.UTC()
	h.SignedAt = time.Now().UTC().Truncate(time.Microsecond)
	h.KeyID = KeyID(k.Public())
	h.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(k.priv, h.message()))
	return h
}

// Public is the key auditors verify heads with.
func (k *AuditKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// PublicHex is the public key as hex, as `transit audit verify --public-key` takes it.
func (k *AuditKey) PublicHex() string { return hex.EncodeToString(k.Public()) }

// ReadAuditKey reads the key file at path: the Ed25519 seed as 64 hex
// digits. With create, a missing file is made (mode 0600).
func ReadAuditKey(path string, create bool) (*AuditKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("make an audit key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("make the audit key's directory: %w", err)
		}
		if err := os.WriteFile(path, []byte(hex.EncodeToString(seed)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("save the audit key: %w", err)
		}
		return &AuditKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the audit key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("the audit key %s must hold %d hex digits (an Ed25519 seed; `transit dev` makes one)", path, 2*ed25519.SeedSize)
	}
	return &AuditKey{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// ParsePublicKey reads a public key given as hex (what GET /audit/head
// and `transit audit key` print).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("a public key is %d hex digits", 2*ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
