package switchboard

import (
	"math/rand/v2"
	"time"
)

// Backoff is capped exponential backoff with full jitter: the n-th wait is
// drawn uniformly from [0, min(Max, Min·2ⁿ)]. Full jitter spreads the
// reconnects of many binds (or many restarted actors) that failed together,
// which a fixed or linear schedule would keep in lock-step.
//
// The zero value is not useful; set Min and Max. Backoff is not safe for
// concurrent use: each retry loop owns its own.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns how long to wait before the next attempt and counts it.
func (b *Backoff) Next() time.Duration {
	d := b.Delay(b.attempt)
	if b.attempt < 62 {
		b.attempt++
	}
	return d
}

// Delay draws the wait before attempt n (0-based) without counting it, for
// callers that keep the attempt count elsewhere (a supervisor's restart
// statistics, a message's retry count).
func (b Backoff) Delay(n int) time.Duration {
	b.attempt = n
	ceil := b.ceiling()
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

// Reset starts the schedule again, after an attempt that succeeded.
func (b *Backoff) Reset() { b.attempt = 0 }

// Attempts returns how many waits Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

func (b *Backoff) ceiling() time.Duration {
	ceil := b.Min
	for i := 0; i < b.attempt && ceil < b.Max; i++ {
		ceil *= 2
	}
	if ceil > b.Max {
		ceil = b.Max
	}
	return ceil
}
