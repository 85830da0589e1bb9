package switchboard_test

import (
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
)

func TestTokenBucketTake(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := switchboard.NewTokenBucket(10, 5)
	for i := 0; i < 5; i++ {
		if ok, _ := b.Take(t0, 1); !ok {
			t.Fatalf("take %d of the burst refused", i)
		}
	}
	ok, wait := b.Take(t0, 1)
	if ok {
		t.Fatal("take beyond the burst granted")
	}
	if wait != 100*time.Millisecond {
		t.Fatalf("retry after = %v, want 100ms at 10/s", wait)
	}
	if ok, _ := b.Take(t0.Add(100*time.Millisecond), 1); !ok {
		t.Fatal("token not refilled after 100ms")
	}
	// Refill never exceeds the burst.
	if ok, _ := b.Take(t0.Add(time.Hour), 6); ok {
		t.Fatal("took 6 from a bucket of burst 5")
	}
}

func TestTokenBucketReservePaces(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := switchboard.NewTokenBucket(100, 1)
	if w := b.Reserve(t0, 1); w != 0 {
		t.Fatalf("first reservation waits %v", w)
	}
	for i := 1; i <= 3; i++ {
		want := time.Duration(i) * 10 * time.Millisecond
		if w := b.Reserve(t0, 1); w != want {
			t.Fatalf("reservation %d waits %v, want %v", i, w, want)
		}
	}
}

func TestTokenBucketUnlimited(t *testing.T) {
	b := switchboard.NewTokenBucket(0, 0)
	for i := 0; i < 1000; i++ {
		if ok, _ := b.Take(time.Unix(0, 0), 1); !ok {
			t.Fatal("unlimited bucket refused")
		}
	}
}

func TestBackoffCapsAndResets(t *testing.T) {
	b := switchboard.Backoff{Min: time.Second, Max: 60 * time.Second}
	for i := 0; i < 100; i++ {
		if d := b.Next(); d < 0 || d > 60*time.Second {
			t.Fatalf("wait %d = %v outside [0, 60s]", i, d)
		}
	}
	// After many attempts the ceiling is the cap: across many draws some
	// must exceed the early ceilings, showing the growth happened.
	var max time.Duration
	for i := 0; i < 200; i++ {
		if d := b.Next(); d > max {
			max = d
		}
	}
	if max <= 8*time.Second {
		t.Fatalf("largest of 200 capped waits = %v, want growth toward 60s", max)
	}
	b.Reset()
	for i := 0; i < 50; i++ {
		b2 := b
		if d := b2.Next(); d > time.Second {
			t.Fatalf("first wait after reset = %v, want <= Min", d)
		}
	}
}

// A rate so small that the wait for a token would overflow a Duration
// waits the longest a bucket returns, never a negative time (which a
// paced bind would take as "go now": no limit at all).
func TestTinyRateWaitsLong(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := switchboard.NewTokenBucket(1e-10, 1)
	if ok, _ := b.Take(now, 1); !ok {
		t.Fatal("a full bucket refused its one token")
	}
	if ok, wait := b.Take(now, 1); ok || wait < time.Hour {
		t.Fatalf("Take at a tiny rate: ok %v, wait %v; want refused for a long while", ok, wait)
	}
	if wait := b.Reserve(now, 1); wait < time.Hour {
		t.Fatalf("Reserve at a tiny rate: wait %v, want a long one", wait)
	}
}
