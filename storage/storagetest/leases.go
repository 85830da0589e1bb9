package storagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// RunLeases runs the conformance suite for switchboard.Leases. open
// returns the Leases to test; each subtest uses names of its own, so
// backends may share state between subtests. lose, if not nil, makes the
// backend lose every lease and token it holds (a flushed Redis, a
// restarted process) and returns the Leases to use afterwards; the suite
// then checks that tokens still increase.
func RunLeases(t *testing.T, open func(t *testing.T) sb.Leases, lose func(t *testing.T, l sb.Leases) sb.Leases) {
	tests := []struct {
		name string
		fn   func(t *testing.T, f *leaseFixture)
	}{
		{"Acquire", testLeaseAcquire},
		{"HeldByAnother", testLeaseHeldByAnother},
		{"AcquireAgainKeepsToken", testLeaseAcquireAgain},
		{"Renew", testLeaseRenew},
		{"ReleaseHandsOver", testLeaseReleaseHandsOver},
		{"ExpiredTakenOver", testLeaseExpiredTakenOver},
		{"TokensIncrease", testLeaseTokensIncrease},
		{"OneWinnerOfARace", testLeaseRace},
		{"Invalid", testLeaseInvalid},
		{"CanceledContext", testLeaseCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newLeaseFixture(t, open(t))) })
	}
	if lose != nil {
		t.Run("TokensIncreaseAfterLoss", func(t *testing.T) {
			f := newLeaseFixture(t, open(t))
			name := f.name("lost")
			before := f.acquire(t, name, "a", time.Hour)
			f.l = lose(t, f.l)
			after := f.acquire(t, name, "b", time.Hour)
			if after.Token <= before.Token {
				t.Fatalf("token after the backend lost its state %d, want above %d", after.Token, before.Token)
			}
			f.handOver(t, name, after, 20)
		})
	}
}

type leaseFixture struct {
	l   sb.Leases
	ctx context.Context
	t   *testing.T
}

func newLeaseFixture(t *testing.T, l sb.Leases) *leaseFixture {
	return &leaseFixture{l: l, ctx: t.Context(), t: t}
}

// name returns a lease name no other test or run uses.
func (f *leaseFixture) name(s string) string {
	return fmt.Sprintf("%s/%s/%d", f.t.Name(), s, time.Now().UnixNano())
}

func (f *leaseFixture) acquire(t *testing.T, name, holder string, ttl time.Duration) sb.Lease {
	t.Helper()
	l, err := f.l.Acquire(f.ctx, name, holder, ttl)
	if err != nil {
		t.Fatalf("Acquire(%s, %s): %v", name, holder, err)
	}
	if l.Name != name || l.Holder != holder || l.Token <= 0 {
		t.Fatalf("Acquire(%s, %s) = %+v", name, holder, l)
	}
	return l
}

// wantHeld fails the test unless another holder's Acquire conflicts.
func (f *leaseFixture) wantHeld(t *testing.T, name string) {
	t.Helper()
	_, err := f.l.Acquire(f.ctx, name, "someone-else", time.Minute)
	wantCode(t, err, sb.ECONFLICT)
}

// handOver passes the lease between two holders n times through Release
// and checks that every token is above the one before.
func (f *leaseFixture) handOver(t *testing.T, name string, from sb.Lease, n int) {
	t.Helper()
	holders := []string{"a", "b"}
	for i := range n {
		if err := f.l.Release(f.ctx, from); err != nil {
			t.Fatalf("Release: %v", err)
		}
		next := f.acquire(t, name, holders[i%2], time.Hour)
		if next.Token <= from.Token {
			t.Fatalf("hand-over %d: token %d after %d", i, next.Token, from.Token)
		}
		from = next
	}
}

func testLeaseAcquire(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	before := time.Now()
	l := f.acquire(t, name, "a", 10*time.Second)
	after := time.Now()
	if l.Expires.Before(before.Add(10*time.Second)) || l.Expires.After(after.Add(10*time.Second)) {
		t.Fatalf("Expires %v, want 10s from the call (%v .. %v)", l.Expires, before, after)
	}
}

// While a holder has the lease, another cannot take it; other names are
// free.
func testLeaseHeldByAnother(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	f.acquire(t, name, "a", time.Minute)
	_, err := f.l.Acquire(f.ctx, name, "b", time.Minute)
	wantCode(t, err, sb.ECONFLICT)
	f.acquire(t, f.name("y"), "b", time.Minute)
}

// Acquire by the holder renews the lease and keeps its token.
func testLeaseAcquireAgain(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	first := f.acquire(t, name, "a", time.Minute)
	again := f.acquire(t, name, "a", time.Hour)
	if again.Token != first.Token {
		t.Fatalf("Acquire by the holder: token %d, want %d kept", again.Token, first.Token)
	}
	if !again.Expires.After(first.Expires) {
		t.Fatalf("Acquire by the holder: Expires %v, want after %v", again.Expires, first.Expires)
	}
}

// Renew extends the lease it is given, and only that one.
func testLeaseRenew(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	l := f.acquire(t, name, "a", time.Minute)
	r, err := f.l.Renew(f.ctx, l, time.Hour)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if r.Token != l.Token || r.Name != name || r.Holder != "a" || !r.Expires.After(l.Expires) {
		t.Fatalf("Renew = %+v, want %+v with a later Expires", r, l)
	}
	wrongToken := l
	wrongToken.Token--
	_, err = f.l.Renew(f.ctx, wrongToken, time.Hour)
	wantCode(t, err, sb.ECONFLICT)
	wrongHolder := l
	wrongHolder.Holder = "b"
	_, err = f.l.Renew(f.ctx, wrongHolder, time.Hour)
	wantCode(t, err, sb.ECONFLICT)
	_, err = f.l.Renew(f.ctx, sb.Lease{Name: f.name("never"), Holder: "a", Token: l.Token}, time.Hour)
	wantCode(t, err, sb.ECONFLICT)
}

// Released, a lease goes to the next holder with a higher token; the old
// lease can neither be renewed nor release the new one.
func testLeaseReleaseHandsOver(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	a := f.acquire(t, name, "a", time.Hour)
	if err := f.l.Release(f.ctx, a); err != nil {
		t.Fatalf("Release: %v", err)
	}
	b := f.acquire(t, name, "b", time.Hour)
	if b.Token <= a.Token {
		t.Fatalf("token %d after %d", b.Token, a.Token)
	}
	if err := f.l.Release(f.ctx, a); err != nil {
		t.Fatalf("Release of a lease no longer held: %v", err)
	}
	f.wantHeld(t, name)
	_, err := f.l.Renew(f.ctx, a, time.Hour)
	wantCode(t, err, sb.ECONFLICT)
	// The same holder's earlier lease (an older token) releases nothing
	// either.
	if err := f.l.Release(f.ctx, sb.Lease{Name: name, Holder: "b", Token: a.Token}); err != nil {
		t.Fatal(err)
	}
	f.wantHeld(t, name)
}

// An expired lease is taken by another holder with a higher token; the
// old holder cannot renew it or release the new one.
func testLeaseExpiredTakenOver(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	a := f.acquire(t, name, "a", 30*time.Millisecond)
	var b sb.Lease
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		b, err = f.l.Acquire(f.ctx, name, "b", time.Hour)
		if err == nil {
			break
		}
		wantCode(t, err, sb.ECONFLICT)
		if time.Now().After(deadline) {
			t.Fatal("a 30ms lease was still held after 10s")
		}
		time.Sleep(5 * time.Millisecond) // the lease's time has to pass
	}
	if time.Now().Before(a.Expires) {
		t.Fatalf("taken over at %v, before the old lease's Expires %v", time.Now(), a.Expires)
	}
	if b.Token <= a.Token {
		t.Fatalf("token %d after %d", b.Token, a.Token)
	}
	_, err := f.l.Renew(f.ctx, a, time.Hour)
	wantCode(t, err, sb.ECONFLICT)
	if err := f.l.Release(f.ctx, a); err != nil {
		t.Fatalf("Release of an expired lease: %v", err)
	}
	f.wantHeld(t, name)
}

func testLeaseTokensIncrease(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	f.handOver(t, name, f.acquire(t, name, "a", time.Hour), 50)
}

// Of holders racing for one name, one gets it.
func testLeaseRace(t *testing.T, f *leaseFixture) {
	name := f.name("x")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = f.l.Acquire(f.ctx, name, fmt.Sprintf("h%d", i), time.Minute) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch sb.ErrorCode(err) {
		case "":
			won++
		case sb.ECONFLICT:
		default:
			t.Fatalf("Acquire: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing holders got the lease, want 1", won, n)
	}
}

func testLeaseInvalid(t *testing.T, f *leaseFixture) {
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", time.Minute}, {f.name("x"), "", time.Minute}, {f.name("x"), "a", 0}, {f.name("x"), "a", time.Microsecond}} {
		_, err := f.l.Acquire(f.ctx, c.name, c.holder, c.ttl)
		wantCode(t, err, sb.EINVALID)
	}
	l := f.acquire(t, f.name("y"), "a", time.Minute)
	_, err := f.l.Renew(f.ctx, l, 0)
	wantCode(t, err, sb.EINVALID)
}

func testLeaseCanceled(t *testing.T, f *leaseFixture) {
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	if l, err := f.l.Acquire(ctx, f.name("x"), "a", time.Minute); err == nil {
		t.Fatalf("Acquire with a canceled context = %+v, want an error", l)
	}
}
