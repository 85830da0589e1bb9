package smpp

import (
	"testing"
	"time"
)

// TestLimiterMakesUpOvershoot paces a simulated sender whose every sleep
// overshoots by 500 µs (a timer firing on a busy machine, where the woken
// goroutine waits for a core), on a clock the test moves. The limiter must
// still grant its TPS (a bucket of one gives a fifth of 20,000), and never
// more than a second's TPS plus its slack.
func TestLimiterMakesUpOvershoot(t *testing.T) {
	for _, tps := range []float64{100, 2000, 20000} {
		l := NewLimiter(tps)
		start := time.Unix(1_700_000_000, 0)
		now, sent := start, 0
		for now.Sub(start) < time.Second {
			if wait := l.Reserve(now, 1); wait > 0 {
				now = now.Add(wait + 500*time.Microsecond)
			}
			sent++
		}
		slack := max(1, tps*limiterSlack.Seconds())
		if float64(sent) < 0.99*tps || float64(sent) > tps+slack+1 {
			t.Errorf("tps %v: %d submits in a second, want %v to %v", tps, sent, 0.99*tps, tps+slack+1)
		}
	}
}
