package switchboard

import (
	"math"
	"sync"
	"time"
)

// TokenBucket limits a rate: it holds up to burst tokens and gains rate tokens
// a second. API keys use Take (refuse and say when to come back: a 429 with
// Retry-After); carrier binds use Reserve (always take, and wait the returned
// time, which paces submits to the carrier's TPS). Time is passed in so tests
// need no clock. Safe for concurrent use.
type TokenBucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
}

// NewTokenBucket returns a full bucket. rate <= 0 means no limit. burst < 1
// is taken as 1 (or as rate rounded up, when that is larger), so a bucket can
// always grant a single token.
func NewTokenBucket(rate float64, burst int) *TokenBucket {
	b := float64(burst)
	if b < 1 {
		b = math.Max(1, math.Ceil(rate))
	}
	return &TokenBucket{rate: rate, burst: b, tokens: b}
}

// Take removes n tokens if they are there now. If not, it removes nothing
// and returns how long until they will be.
func (b *TokenBucket) Take(now time.Time, n int) (ok bool, retryAfter time.Duration) {
	if b.rate <= 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	need := float64(n)
	if b.tokens >= need {
		b.tokens -= need
		return true, 0
	}
	return false, b.durationFor(need - b.tokens)
}

// Reserve removes n tokens, going into debt if needed, and returns how long
// the caller must wait before acting on them. Reservations queue fairly in
// call order because each one deepens the debt the next one waits out.
func (b *TokenBucket) Reserve(now time.Time, n int) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return b.durationFor(-b.tokens)
}

func (b *TokenBucket) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
}

// durationFor is how long rate takes to make tokens, at most maxWait: a
// tiny rate must slow to a crawl, not overflow into a negative wait.
func (b *TokenBucket) durationFor(tokens float64) time.Duration {
	ns := math.Ceil(tokens / b.rate * float64(time.Second))
	if ns >= float64(maxWait) {
		return maxWait
	}
	return time.Duration(ns)
}

// maxWait bounds the waits a bucket returns (about 292 years is where a
// time.Duration overflows).
const maxWait = 1000 * time.Hour
