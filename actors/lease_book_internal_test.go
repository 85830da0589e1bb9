package actors

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/memory"
)

// A taker that claims a name after its predecessor's claim makes the
// predecessor's release a no-op; a taker that claims while a Release is on
// its way waits for it.
func TestLeaseBookOrdersTakesAndReleases(t *testing.T) {
	var b leaseBook
	l := switchboard.Lease{Name: "key/k", Holder: "node-a", Token: 7}
	first, wait := b.claim(l.Name)
	if wait != nil {
		t.Fatal("the first claim has something to wait for")
	}
	b.taken(l.Name, first)
	second, _ := b.claim(l.Name)
	if _, ok := b.release(l, first); ok {
		t.Fatal("a predecessor may release the lease its successor claimed")
	}
	b.taken(l.Name, second)
	landed, ok := b.release(l, second)
	if !ok {
		t.Fatal("the latest taker may not release its lease")
	}
	third, wait := b.claim(l.Name)
	if wait == nil {
		t.Fatal("a claim while a Release is on its way has nothing to wait for")
	}
	select {
	case <-wait:
		t.Fatal("the wait ended before the Release landed")
	default:
	}
	landed()
	<-wait
	b.taken(l.Name, third)
	if landed, ok := b.release(l, third); !ok {
		t.Fatal("the taker after a landed Release may not release")
	} else {
		landed()
	}
	if len(b.names) != 0 {
		t.Fatalf("%d names kept after the last release landed, want none", len(b.names))
	}
}

// A taker whose Acquire fails gives up the lease its predecessor skipped
// releasing for it, and its number is never handed out again, so a
// predecessor still on its way cannot release a later taker's lease.
func TestLeaseBookAFailedTakerReleasesWhatItWasLeft(t *testing.T) {
	var b leaseBook
	l := switchboard.Lease{Name: "key/k", Holder: "node-a", Token: 7}
	first, _ := b.claim(l.Name)
	b.taken(l.Name, first)
	second, _ := b.claim(l.Name)
	if _, ok := b.release(l, first); ok {
		t.Fatal("a predecessor may release the lease its successor claimed")
	}
	left, landed, ok := b.forget(l.Name, second)
	if !ok || left != l {
		t.Fatalf("a failed taker was left %+v (%v), want %+v to release", left, ok, l)
	}
	landed()

	again, _ := b.claim(l.Name)
	if again == first || again == second {
		t.Fatalf("claim number %d handed out again", again)
	}
	if _, ok := b.release(l, first); ok {
		t.Fatal("an old claim may release a later taker's lease")
	}
}

// gatedReleases is a fake standing in for a lease backend whose Release
// is slow: it holds each Release until the test opens the gate, which no
// real backend does on demand. The rest is the in-memory backend.
type gatedReleases struct {
	*memory.Leases
	entered, left chan struct{}
	gate          chan struct{}
}

func (g *gatedReleases) Release(ctx context.Context, l switchboard.Lease) error {
	g.entered <- struct{}{}
	<-g.gate
	defer func() { g.left <- struct{}{} }()
	return g.Leases.Release(ctx, l)
}

type fenceOnlyStore struct{ switchboard.Store }

func (fenceOnlyStore) RaiseFence(_ context.Context, _ string, token int64) (int64, error) {
	return token, nil
}

// A key actor instance that starts on the node while its predecessor's
// Release of the same lease is on its way keeps the lease it takes: the
// same holder's Acquire would otherwise return the lease that the Release
// then ends, and the new instance would lose it at its first renewal.
func TestTakingAKeyWaitsForThePredecessorsRelease(t *testing.T) {
	leases := &gatedReleases{Leases: memory.NewLeases(), entered: make(chan struct{}, 2), left: make(chan struct{}, 2), gate: make(chan struct{})}
	e := &Engine{
		cfg: Config{Now: time.Now}, log: zerolog.Nop(), store: fenceOnlyStore{}, bg: newTasks(),
		fleet: &fleet{cfg: FleetConfig{LeaseTTL: time.Hour}, leases: leases, holder: "node-a"},
	}
	var stop context.CancelFunc
	e.bgStop, stop = context.WithCancel(context.Background())
	defer func() { stop(); e.bg.wait() }()
	noRenewals := func(error) { t.Error("a renewal was reported") }

	gone1 := make(chan struct{})
	first, err := e.takeKey(context.Background(), "k", gone1, noRenewals)
	if err != nil {
		t.Fatal(err)
	}
	close(gone1) // the predecessor stops: its lease is given up
	<-leases.entered

	taken := make(chan *keyLease, 1)
	go func() {
		kl, err := e.takeKey(context.Background(), "k", make(chan struct{}), noRenewals)
		if err != nil {
			t.Error(err)
		}
		taken <- kl
	}()
	for !e.fleet.book.claimedBy("key/k", first.claim+1) {
		time.Sleep(time.Millisecond) // polls a condition: the successor's claim
	}
	close(leases.gate)
	<-leases.left
	second := <-taken
	if second == nil {
		t.FailNow()
	}
	if _, err := leases.Renew(context.Background(), *second.current.Load(), time.Hour); err != nil {
		t.Fatalf("the successor's lease does not hold after its predecessor's Release: %v", err)
	}
}

// claimedBy reports whether claim is name's latest.
func (b *leaseBook) claimedBy(name string, claim uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	en := b.names[name]
	return en != nil && en.claim == claim
}
