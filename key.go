package switchboard

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Key is an API key: who may send, how fast, and where events go.
type Key struct {
	ID string
	// SecretHash is SHA-256 of the bearer secret; the secret itself is
	// never stored or logged.
	SecretHash [32]byte
	// Rate is messages per second, Burst the most at once (token bucket).
	Rate  float64
	Burst int
	// MaxQueued bounds messages accepted and not yet submitted.
	MaxQueued   int
	CallbackURL string
}

// HashSecret returns the SHA-256 of a bearer secret.
func HashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Matches compares a presented secret with the key's in constant time.
func (k *Key) Matches(secret string) bool {
	h := HashSecret(secret)
	return subtle.ConstantTimeCompare(h[:], k.SecretHash[:]) == 1
}
