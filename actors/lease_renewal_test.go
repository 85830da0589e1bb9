package actors_test

import (
	"context"
	"fmt"
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

// countedLeases counts the takes of key leases and fails the next
// renewals of one while failRenewals is above zero, as Redis does when it
// is slow or unreachable for a moment (no answer, not a refusal).
type countedLeases struct {
	switchboard.Leases
	takes        atomic.Int32
	failRenewals atomic.Int32
	failed       atomic.Int32
	renewed      atomic.Int32
}

func (l *countedLeases) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (switchboard.Lease, error) {
	x, err := l.Leases.Acquire(ctx, name, holder, ttl)
	if err == nil && strings.HasPrefix(name, "key/") {
		l.takes.Add(1)
	}
	return x, err
}

func (l *countedLeases) Renew(ctx context.Context, x switchboard.Lease, ttl time.Duration) (switchboard.Lease, error) {
	if strings.HasPrefix(x.Name, "key/") && l.failRenewals.Add(-1) >= 0 {
		l.failed.Add(1)
		return switchboard.Lease{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "lease store did not answer")
	}
	x, err := l.Leases.Renew(ctx, x, ttl)
	if err == nil && strings.HasPrefix(x.Name, "key/") {
		l.renewed.Add(1)
	}
	return x, err
}

// slowFence takes delay to raise a key's fence, as a database busy with
// the keys of a node that died does.
type slowFence struct {
	switchboard.Store
	delay time.Duration
}

func (s *slowFence) RaiseFence(ctx context.Context, key string, token int64) (int64, error) {
	time.Sleep(s.delay)
	return s.Store.RaiseFence(ctx, key, token)
}

// fleetOfOne starts an engine in a fleet of one node on store and leases,
// its leases lasting ttl, and waits until it owns key k.
func fleetOfOne(t *testing.T, store switchboard.Store, leases switchboard.Leases, ttl time.Duration) (*actors.Engine, *switchboard.Key) {
	t.Helper()
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1e6, Burst: 1e6, MaxQueued: 1e6}
	e, err := actors.New(actors.Config{
		Store: store, Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), Log: zerolog.Nop(),
		Routes:   []switchboard.Route{{Carriers: []string{"sim"}}},
		Carriers: []actors.CarrierConfig{{Name: "sim", Binds: 1, SMPP: smpp.Config{Addr: sim.Addr(), SystemID: "gw", Password: "pw"}}},
		Fleet: &actors.FleetConfig{Name: "one", Remote: "127.0.0.1:0", Leases: leases, LeaseTTL: ttl,
			Membership: gossip.New(gossip.Config{Cluster: "one", Bind: "127.0.0.1:0", Log: zerolog.Nop()})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	eventually(t, "owning the key", 20*time.Second, func() bool { o, far := e.KeyOwner("k"); return o != "" && !far })
	return e, key
}

// A renewal that goes unanswered while the lease still holds is tried
// again: the key's actor goes on, with the lease it took. Before, one
// such renewal stopped the actor, and the next request started another
// that counted the key's messages again.
func TestKeyLeaseOutlastsAnUnansweredRenewal(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	leases := &countedLeases{Leases: memory.NewLeases()}
	e, key := fleetOfOne(t, ps, leases, 600*time.Millisecond)
	req := []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "hi"}}
	eventually(t, "a request accepted", 10*time.Second, func() bool { return e.Submit(context.Background(), key, req)[0].Err == nil })
	takes := leases.takes.Load()

	leases.failRenewals.Store(1)
	eventually(t, "a renewal failed", 5*time.Second, func() bool { return leases.failed.Load() > 0 })
	after := leases.renewed.Load()
	eventually(t, "a request accepted after it", 10*time.Second, func() bool { return e.Submit(context.Background(), key, req)[0].Err == nil })
	if got := leases.takes.Load(); got != takes {
		t.Fatalf("the key's lease was taken %d times more: its actor stopped at a renewal that went unanswered", got-takes)
	}
	eventually(t, "the lease renewed again", 5*time.Second, func() bool { return leases.renewed.Load() > after })
}

// A lease is renewed while its taker raises the key's fence, however long
// the store takes: otherwise it ran out meanwhile, the first renewal was
// refused, and every new actor for the key did the same, answering 503
// for as long as the store stayed slow.
func TestKeyLeaseRenewedWhileTheFenceIsRaised(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	const ttl = 300 * time.Millisecond
	e, key := fleetOfOne(t, &slowFence{Store: ps, delay: 2 * ttl}, memory.NewLeases(), ttl)
	req := []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "hi"}}
	eventually(t, "a request accepted", 10*time.Second, func() bool { return e.Submit(context.Background(), key, req)[0].Err == nil })
}

// heldRecords holds every Record while hold is set, until release is
// closed; held is closed at the first it holds.
type heldRecords struct {
	switchboard.Store
	hold    atomic.Bool
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (s *heldRecords) Record(ctx context.Context, updates []switchboard.Update) ([]*switchboard.Message, error) {
	if s.hold.Load() {
		s.once.Do(func() { close(s.held) })
		<-s.release
	}
	return s.Store.Record(ctx, updates)
}

// releasedLeases counts the releases of key leases.
type releasedLeases struct {
	switchboard.Leases
	released atomic.Int32
}

func (l *releasedLeases) Release(ctx context.Context, x switchboard.Lease) error {
	err := l.Leases.Release(ctx, x)
	if err == nil && strings.HasPrefix(x.Name, "key/") {
		l.released.Add(1)
	}
	return err
}

// A key drained while its last records are still being written (a node
// stopping under load) answers the drain and gives its lease up once the
// records have landed. Before, the lease, which could not be given up
// when the drain was answered, was left to run out: the key's next owner
// refused its requests for the lease's whole life. A key being handed
// over meanwhile answers the drain too (Stop waited for it until its
// deadline).
func TestADrainedKeyGivesItsLeaseUpOnceItsRecordsLand(t *testing.T) {
	for _, handedOver := range []bool{false, true} {
		t.Run(fmt.Sprintf("handed over %v", handedOver), func(t *testing.T) {
			ps, err := pebble.Open(t.TempDir(), pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ps.Close()
			store := &heldRecords{Store: ps, held: make(chan struct{}), release: make(chan struct{})}
			release := sync.OnceFunc(func() { close(store.release) })
			defer release() // before the engine stops, even if the test fails
			leases := &releasedLeases{Leases: memory.NewLeases()}
			e, key := fleetOfOne(t, store, leases, time.Minute)
			req := []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "hi"}}
			var first switchboard.SubmitResult
			eventually(t, "a request accepted", 10*time.Second, func() bool {
				first = e.Submit(context.Background(), key, req)[0]
				return first.Err == nil
			})
			eventually(t, "its receipt recorded", 10*time.Second, func() bool {
				m, err := ps.Message(context.Background(), first.Message.ID)
				return err == nil && m.Status == switchboard.StatusDelivered
			})

			store.hold.Store(true)
			if res := e.Submit(context.Background(), key, req); res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			<-store.held // the submitted message's record is being written
			if handedOver && !e.HandOverKey(key.ID) {
				t.Fatal("no actor for the key")
			}
			if err := e.DrainKey(key.ID, 10*time.Second); err != nil {
				t.Fatalf("drain: %v", err)
			}
			if n := leases.released.Load(); n != 0 {
				t.Fatalf("the lease was given up (%d) before the key's record landed", n)
			}
			release()
			eventually(t, "the key's lease given up", 5*time.Second, func() bool { return leases.released.Load() == 1 })
		})
	}
}

// refusedLeases counts the takes of a key's lease refused because another
// holder has it.
type refusedLeases struct {
	switchboard.Leases
	refused atomic.Int32
}

func (l *refusedLeases) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (switchboard.Lease, error) {
	x, err := l.Leases.Acquire(ctx, name, holder, ttl)
	if switchboard.ErrorCode(err) == switchboard.ECONFLICT && strings.HasPrefix(name, "key/") {
		l.refused.Add(1)
	}
	return x, err
}

// A request for a key whose lease another node still holds (it is handing
// the key over) waits until this node has the lease, rather than being
// refused at once as moving; while the other node keeps it, the request is
// refused as moving after a couple of lease periods, not left to time out.
// Before, every request during a hand-over was refused: a fifth of the
// requests of a rolling restart.
func TestRequestsWaitForAKeyMovingIn(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	const ttl = time.Second
	leases := &refusedLeases{Leases: memory.NewLeases()}
	e, key := fleetOfOne(t, ps, leases, ttl)
	ctx := context.Background()
	held, err := leases.Acquire(ctx, "key/k", "the-old-owner", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req := []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "hi"}}

	// Kept by the other node.
	if r := e.Submit(ctx, key, req)[0]; switchboard.ErrorCode(r.Err) != switchboard.EUNAVAILABLE || !strings.Contains(r.Err.Error(), "moving") {
		t.Fatalf("a request while another node keeps the key: %v, want it refused as moving", r.Err)
	}

	// Let go while a request waits.
	got := make(chan switchboard.SubmitResult, 1)
	refused := leases.refused.Load()
	go func() { got <- e.Submit(ctx, key, req)[0] }()
	eventually(t, "the lease refused again", 5*time.Second, func() bool { return leases.refused.Load() >= refused+2 })
	select {
	case r := <-got:
		t.Fatalf("a request was answered (%v) while the key moved in", r.Err)
	default:
	}
	if err := leases.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.Err != nil {
		t.Fatalf("a request that waited for the key to move in: %v", r.Err)
	}
}
