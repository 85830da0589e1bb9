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

	// WebhookSecret signs this key's callbacks (HMAC-SHA256). A key
	// configured without one gets a generated secret kept in the store.
	WebhookSecret string
	// CallbackStatuses are the statuses the key hears about; zero means
	// DefaultCallbackStatuses.
	CallbackStatuses StatusSet
	// CallbackBatch is the most callbacks one webhook request carries, as
	// a JSON array; 0 or 1 sends each alone, as a JSON object.
	CallbackBatch int
	// InboundURL receives message.inbound callbacks for messages sent to
	// Numbers ("+" and digits); with no URL they are stored only.
	InboundURL string
	Numbers    []string
}

// HashSecret returns the SHA-256 of a bearer secret.
func HashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Matches compares a presented secret with the key's in constant time.
func (k *Key) Matches(secret string) bool {
	h := HashSecret(secret)
	return subtle.ConstantTimeCompare(h[:], k.SecretHash[:]) == 1
}
