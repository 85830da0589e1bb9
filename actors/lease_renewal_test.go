package actors_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/actors/gossip"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/memory"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// failingRenewals fails the renewals of key leases while fail is set, and
// closes failed at the first it fails.
type failingRenewals struct {
	switchboard.Leases
	fail   atomic.Bool
	once   sync.Once
	failed chan struct{}
}

func (l *failingRenewals) Renew(ctx context.Context, x switchboard.Lease, ttl time.Duration) (switchboard.Lease, error) {
	if strings.HasPrefix(x.Name, "key/") && l.fail.Load() {
		l.once.Do(func() { close(l.failed) })
		return x, switchboard.Errorf(switchboard.EUNAVAILABLE, "lease store unreachable")
	}
	return l.Leases.Renew(ctx, x, ttl)
}

// heldCount holds PendingCount until release is closed, while hold is set.
type heldCount struct {
	switchboard.Store
	hold    atomic.Bool
	release chan struct{}
}

func (s *heldCount) PendingCount(ctx context.Context, key string) (int, error) {
	if s.hold.Load() {
		<-s.release
	}
	return s.Store.PendingCount(ctx, key)
}

// A renewal of a key's lease that fails while the key's actor still
// counts its messages (a slow store, a long backlog) is not lost: the
// actor, which had no lease yet when it heard, finds it out once counted
// and stops, and the next request starts one that takes the lease again.
// Before, it went ready with a lease nobody renewed, and once that ran
// out it refused every request and sent nothing until a restart.
func TestLeaseRenewalFailedWhileCountingStopsTheActor(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	store := &heldCount{Store: ps, release: make(chan struct{})}
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1e6, Burst: 1e6, MaxQueued: 1e6}
	leases := &failingRenewals{Leases: memory.NewLeases(), failed: make(chan struct{})}
	e, err := actors.New(actors.Config{
		Store: store, Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), Log: zerolog.Nop(),
		Routes:   []switchboard.Route{{Carriers: []string{"sim"}}},
		Carriers: []actors.CarrierConfig{{Name: "sim", Binds: 1, SMPP: smpp.Config{Addr: sim.Addr(), SystemID: "gw", Password: "pw"}}},
		Fleet: &actors.FleetConfig{Name: "renew", Remote: "127.0.0.1:0", Leases: leases, LeaseTTL: 300 * time.Millisecond,
			Membership: gossip.New(gossip.Config{Cluster: "renew", Bind: "127.0.0.1:0", Log: zerolog.Nop()})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	}()
	eventually(t, "owning the key", 20*time.Second, func() bool { o, far := e.KeyOwner("k"); return o != "" && !far })

	req := []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "hi"}}
	store.hold.Store(true)
	leases.fail.Store(true)
	first := make(chan switchboard.SubmitResult, 1)
	go func() { first <- e.Submit(context.Background(), key, req)[0] }()
	<-leases.failed // the actor took the lease and counts; a renewal failed
	// Once the lease has run out (another holder can take it), the actor
	// has long since heard of the failure.
	eventually(t, "the lease run out", 5*time.Second, func() bool {
		l, err := leases.Leases.Acquire(context.Background(), "key/k", "probe", time.Second)
		if err == nil {
			_ = leases.Leases.Release(context.Background(), l)
		}
		return err == nil
	})
	leases.fail.Store(false)
	store.hold.Store(false)
	close(store.release)
	if r := <-first; r.Err == nil {
		t.Fatalf("the request that waited on the count was accepted (%s) by an actor whose lease lapsed", r.Message.ID)
	}
	var id string
	eventually(t, "a request accepted by a new actor", 10*time.Second, func() bool {
		r := e.Submit(context.Background(), key, req)[0]
		if r.Err == nil {
			id = r.Message.ID
		}
		return r.Err == nil
	})
	eventually(t, "its message delivered", 10*time.Second, func() bool {
		m, err := e.Message(context.Background(), key, id)
		return err == nil && m.Status == switchboard.StatusDelivered
	})
}

// slowAccept takes delay to accept, once delay is set.
type slowAccept struct {
	switchboard.Store
	delay atomic.Int64
}

func (s *slowAccept) Accept(ctx context.Context, ms []switchboard.NewMessage) error {
	time.Sleep(time.Duration(s.delay.Load()))
	return s.Store.Accept(ctx, ms)
}

// A submit forwarded to its key's owner waits for the owner's write as a
// submit on the owner does, even past the request timeout: given up at the
// timeout, a message the owner accepted was answered 503 (and a retry
// without an Idempotency-Key sent it twice). One node forwards to itself
// here: two in one process would race inside protoactor's remote.
func TestForwardedSubmitWaitsForTheOwnersWrite(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	store := &slowAccept{Store: ps}
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1e6, Burst: 1e6, MaxQueued: 1e6}
	e, err := actors.New(actors.Config{Store: store, Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), Log: zerolog.Nop(),
		RequestTimeout: time.Second,
		Routes:         []switchboard.Route{{Carriers: []string{"sim"}}},
		Carriers:       []actors.CarrierConfig{{Name: "sim", Binds: 1, SMPP: smpp.Config{Addr: sim.Addr(), SystemID: "gw", Password: "pw"}}},
		Fleet: &actors.FleetConfig{Name: "fwd", Remote: "127.0.0.1:0", Leases: memory.NewLeases(),
			Membership: gossip.New(gossip.Config{Cluster: "fwd", Bind: "127.0.0.1:0", Log: zerolog.Nop()})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	}()
	var owner string
	eventually(t, "owning the key", 20*time.Second, func() bool { owner, _ = e.KeyOwner("k"); return owner != "" })
	req := []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "hi"}}
	eventually(t, "the key's actor running", 10*time.Second, func() bool { return e.ForwardSubmit(owner, key, req, time.Second)[0].Err == nil })
	store.delay.Store(int64(1500 * time.Millisecond)) // longer than the request timeout
	if r := e.ForwardSubmit(owner, key, req, time.Second)[0]; r.Err != nil {
		t.Fatalf("a forwarded submit whose write outlasts the request timeout: %v, want it accepted", r.Err)
	}
}
