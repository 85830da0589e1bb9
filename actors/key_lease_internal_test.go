package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// lapsingLeases is a fake standing in for a lease backend whose renewals
// arrive late: each Renew first moves the engine's clock by late, as a
// node paused or starved for that long would find it, then grants the
// lease for ttl from there — timing no real backend gives on demand.
type lapsingLeases struct {
	switchboard.Leases // not called
	mu                 sync.Mutex
	now                time.Time
	late               []time.Duration // the delay of each renewal in turn
}

func (l *lapsingLeases) clock() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.now
}

func (l *lapsingLeases) Renew(_ context.Context, x switchboard.Lease, ttl time.Duration) (switchboard.Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.late) > 0 {
		l.now = l.now.Add(l.late[0])
		l.late = l.late[1:]
	}
	x.Expires = l.now.Add(ttl)
	return x, nil
}

// A renewal that lands after the lease ran out by the node's clock (the
// actor then sent nothing) tells the actor it may go on; one in time does
// not disturb it.
func TestRenewalAfterALapseWakesTheActor(t *testing.T) {
	const ttl = 30 * time.Millisecond
	leases := &lapsingLeases{now: time.Unix(1_700_000_000, 0), late: []time.Duration{0, 2 * ttl}}
	e := &Engine{cfg: Config{Now: leases.clock}, fleet: &fleet{cfg: FleetConfig{LeaseTTL: ttl}, leases: leases}}
	kl := &keyLease{stop: make(chan struct{})}
	kl.set(switchboard.Lease{Name: "key/k", Holder: "n1", Token: 7, Expires: leases.clock().Add(ttl)})

	renewed := make(chan error, 4)
	stop, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.keepLease(stop, kl, nil, func(err error) { renewed <- err })
	}()
	select {
	case err := <-renewed:
		if err != nil {
			t.Fatalf("renewed(%v), want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a renewal after the lease had lapsed was not reported")
	}
	if !kl.valid(leases.clock()) {
		t.Fatal("the lease is not valid after its renewal")
	}
	cancel()
	<-done
	if len(renewed) != 0 {
		t.Fatalf("%d more reports, want none: the renewal in time is not one", len(renewed))
	}
}
