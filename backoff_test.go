package switchboard_test

import (
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// The callback retry schedule with the webhook defaults: retry n waits a
// uniformly random time in [0, min(5 s × 2ⁿ, 30 min)] (full jitter), so
// the first retry is at most 5 s and from the tenth on the cap holds.
func TestBackoffDelayFullJitter(t *testing.T) {
	b := switchboard.Backoff{Min: 5 * time.Second, Max: 30 * time.Minute}
	for n := range 14 {
		ceil := min(5*time.Second<<n, 30*time.Minute)
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			d := b.Delay(n)
			if d < 0 || d > ceil {
				t.Fatalf("retry %d waited %v, want within [0, %v]", n, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// 2,000 uniform draws all above a tenth of the range, or all
		// below nine tenths, happen with probability 0.9^2000.
		if lo > ceil/10 || hi < ceil*9/10 {
			t.Errorf("retry %d: waits in [%v, %v], want spread over [0, %v]", n, lo, hi, ceil)
		}
	}
}
