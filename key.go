package switchboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"
)

// Key is an API key: who may send, how fast, and where events go. A Key in
// a KeyRing is never modified: to change a key, put a changed copy in the
// ring (KeyRing.Put), so readers holding the old one see a consistent key.
type Key struct {
	ID string
	// SecretHash is SHA-256 of the bearer secret; the secret itself is
	// never stored or logged.
	SecretHash [32]byte
	// PreviousSecretHash is the secret a rotation replaced: it still
	// authenticates until PreviousSecretUntil, so clients can move to the
	// new secret without an outage.
	PreviousSecretHash  [32]byte
	PreviousSecretUntil time.Time
	// Rate is messages per second, Burst the most at once (token bucket).
	Rate  float64
	Burst int
	// MaxQueued bounds messages accepted and not yet submitted.
	MaxQueued   int
	CallbackURL string

	// WebhookSecret signs this key's callbacks (HMAC-SHA256). A key
	// configured without one gets a generated secret kept in the store.
	WebhookSecret string
	// PreviousWebhookSecret signs callbacks too (a second signature)
	// until PreviousWebhookUntil: receivers can move to the new secret
	// while requests carry both.
	PreviousWebhookSecret string
	PreviousWebhookUntil  time.Time
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

	// Revoked keys authenticate no request. Messages they had accepted
	// are still sent, and their events still delivered: a 202 is a
	// promise.
	Revoked bool
}

// HashSecret returns the SHA-256 of a bearer secret.
func HashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Matches compares a presented secret with the key's in constant time. It
// does not look at the previous secret or at revocation: see MatchesAt.
func (k *Key) Matches(secret string) bool {
	h := HashSecret(secret)
	return subtle.ConstantTimeCompare(h[:], k.SecretHash[:]) == 1
}

// MatchesAt reports whether secret authenticates the key at now: the
// key's secret, or its previous one before PreviousSecretUntil, and the
// key not revoked. Both comparisons are constant-time and always made.
func (k *Key) MatchesAt(secret string, now time.Time) bool {
	return k.matchesHashAt(HashSecret(secret), now)
}

// matchesHashAt is MatchesAt for a secret already hashed (HashSecret).
func (k *Key) matchesHashAt(h [32]byte, now time.Time) bool {
	current := subtle.ConstantTimeCompare(h[:], k.SecretHash[:]) == 1
	previous := subtle.ConstantTimeCompare(h[:], k.PreviousSecretHash[:]) == 1 &&
		k.PreviousSecretHash != [32]byte{} && now.Before(k.PreviousSecretUntil)
	return !k.Revoked && (current || previous)
}

// WebhookSecrets returns the secrets that sign the key's callbacks at now:
// its webhook secret, then its previous one while the rotation's overlap
// lasts.
func (k *Key) WebhookSecrets(now time.Time) []string {
	if k.PreviousWebhookSecret != "" && now.Before(k.PreviousWebhookUntil) {
		return []string{k.WebhookSecret, k.PreviousWebhookSecret}
	}
	return []string{k.WebhookSecret}
}
