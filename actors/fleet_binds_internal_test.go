package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/linxGnu/gosmpp/data"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors/wire"
	"github.com/switchboard-sms/switchboard/carriers/concat"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/storage/memory"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// supervisorStandIn takes what the fleet sends a carrier's supervisor
// and hands it to the test, which decides when a bind has stopped.
type supervisorStandIn struct{ got chan any }

func (s *supervisorStandIn) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *startBind, *stopBind, *mailboxProbe:
		s.got <- m
	}
}

// bindRig is a fleet of one carrier with one bind, whose placement the
// test moves between this node (a) and another (b).
type bindRig struct {
	t      *testing.T
	f      *fleet
	leases *memory.Leases
	got    chan any
}

func newBindRig(t *testing.T, ttl time.Duration) *bindRig {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(system.Shutdown)
	got := make(chan any, 16)
	sup := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &supervisorStandIn{got: got} }))
	e := &Engine{cfg: Config{Carriers: []CarrierConfig{{Name: "sim", Binds: 1}}}, system: system,
		carriers: []*actor.PID{sup}, log: zerolog.Nop()}
	leases := memory.NewLeases()
	f := &fleet{e: e, cfg: FleetConfig{LeaseTTL: ttl}, leases: leases, holder: "A", address: "a:1",
		ring: cluster.NewRendezvous(), binds: map[string]bindLease{}, draining: map[string]drainingBind{}}
	return &bindRig{t: t, f: f, leases: leases, got: got}
}

// placeOn makes node a or b the bind's owner, and reconciles.
func (r *bindRig) placeOn(node string) {
	port := map[string]int{"a": 1, "b": 2}[node]
	r.f.topology([]*cluster.Member{{Host: node, Port: int32(port), Id: node, Kinds: []string{kindKey}}})
	r.f.reconcileBinds(context.Background())
}

// next is what the supervisor was sent next.
func (r *bindRig) next() any {
	r.t.Helper()
	select {
	case m := <-r.got:
		return m
	case <-time.After(5 * time.Second):
		r.t.Fatal("the supervisor was sent nothing")
		return nil
	}
}

// mailboxProbe marks the end of what the supervisor was sent so far.
type mailboxProbe struct{}

// sent is what the supervisor was sent since the last call, in order.
func (r *bindRig) sent() []any {
	r.f.e.system.Root.Send(r.f.e.carriers[0], &mailboxProbe{})
	var out []any
	for {
		m := r.next()
		if _, ok := m.(*mailboxProbe); ok {
			return out
		}
		out = append(out, m)
	}
}

// othersCanTake reports whether another node could take the bind's lease.
func (r *bindRig) othersCanTake() bool {
	l, err := r.leases.Acquire(context.Background(), "bind/sim/0", "B", time.Second)
	if err == nil {
		_ = r.leases.Release(context.Background(), l)
	}
	return err == nil
}

// A bind that moves away keeps its lease, renewed, until it has drained
// and unbound, however long that takes, and gives it up then; one that
// comes back while it drains keeps the lease it holds.
func TestBindLeaseKeptWhileItDrains(t *testing.T) {
	const ttl = 600 * time.Millisecond
	r := newBindRig(t, ttl)
	r.placeOn("a")
	if _, ok := r.next().(*startBind); !ok {
		t.Fatal("the owned bind was not started")
	}
	r.placeOn("b")
	stop, ok := r.next().(*stopBind)
	if !ok || stop.stopped == nil {
		t.Fatal("the moved bind was not stopped with a channel to say when it has")
	}
	for range 4 { // draining for longer than the lease lasts
		time.Sleep(ttl / 3)
		r.f.reconcileBinds(context.Background())
		if r.othersCanTake() {
			t.Fatal("another node could take the lease of a bind still draining here")
		}
	}

	r.placeOn("a") // back while it drains
	if _, ok := r.next().(*startBind); !ok {
		t.Fatal("the bind that came back was not started again")
	}
	close(stop.stopped)
	for range 3 {
		time.Sleep(ttl / 3)
		r.f.reconcileBinds(context.Background())
		if r.othersCanTake() {
			t.Fatal("the lease of the bind running here again was given up")
		}
	}

	r.placeOn("b")
	stop, _ = r.next().(*stopBind)
	close(stop.stopped)
	r.f.reconcileBinds(context.Background())
	if !r.othersCanTake() {
		t.Fatal("the lease of a bind that stopped was not given up")
	}
}

// failingLeases fails the renewals while fail is set, as a slow or
// briefly unreachable Redis would.
type failingLeases struct {
	*memory.Leases
	fail atomic.Bool
}

func (l *failingLeases) Renew(ctx context.Context, held switchboard.Lease, ttl time.Duration) (switchboard.Lease, error) {
	if l.fail.Load() {
		return switchboard.Lease{}, errors.New("redis: i/o timeout")
	}
	return l.Leases.Renew(ctx, held, ttl)
}

// A renewal that fails while a bind drains, with the lease not yet run
// out, is tried again: the lease stays this node's until the bind stopped.
func TestDrainingBindSurvivesAFailedRenewal(t *testing.T) {
	const ttl = 600 * time.Millisecond
	r := newBindRig(t, ttl)
	leases := &failingLeases{Leases: r.leases}
	r.f.leases = leases
	r.placeOn("a")
	r.next() // started
	r.placeOn("b")
	stop, _ := r.next().(*stopBind)
	leases.fail.Store(true)
	r.f.reconcileBinds(context.Background())
	leases.fail.Store(false)
	for range 3 {
		time.Sleep(ttl / 3)
		r.f.reconcileBinds(context.Background())
		if r.othersCanTake() {
			t.Fatal("after one failed renewal another node could take the lease of a bind still draining here")
		}
	}
	close(stop.stopped)
	r.f.reconcileBinds(context.Background())
	if !r.othersCanTake() {
		t.Fatal("the lease was not given up once the bind stopped")
	}
}

// A running bind whose renewal goes unanswered goes on while the lease
// outlasts the next round, and is stopped, before the lease runs out,
// once it would not: another node may bind when it has.
func TestRunningBindSurvivesAnUnansweredRenewal(t *testing.T) {
	const ttl = 600 * time.Millisecond
	r := newBindRig(t, ttl)
	leases := &failingLeases{Leases: r.leases}
	r.f.leases = leases
	r.placeOn("a")
	r.next() // started
	leases.fail.Store(true)
	r.f.reconcileBinds(context.Background()) // just renewed: the lease has most of its time left
	if got := r.sent(); len(got) > 0 {
		t.Fatalf("a bind whose lease holds for most of its time was sent %T at one unanswered renewal", got[0])
	}
	leases.fail.Store(false)
	r.f.reconcileBinds(context.Background())
	if r.othersCanTake() {
		t.Fatal("the lease of a running bind was given up")
	}

	leases.fail.Store(true)
	deadline := time.Now().Add(ttl)
	for {
		time.Sleep(ttl / 3)
		r.f.reconcileBinds(context.Background())
		if got := r.sent(); len(got) > 0 {
			if _, ok := got[0].(*stopBind); !ok {
				t.Fatalf("sent %T, want the bind stopped", got[0])
			}
			if time.Now().After(deadline) {
				t.Fatal("the bind was stopped only after its lease had run out")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a bind whose renewals go unanswered ran past its lease")
		}
	}
}

// lateAnswer answers any request after delay.
type lateAnswer struct{ delay time.Duration }

func (a *lateAnswer) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(string); ok {
		sender := ctx.Sender()
		root := ctx.ActorSystem().Root
		time.AfterFunc(a.delay, func() { root.Send(sender, "sent") })
	}
}

// A remote submit whose node has left the membership (cut off, paused)
// is still waited for until it would have gone stale there: that node may
// still be sending it, and a retry now would send a copy. Other requests
// give up as soon as their node leaves.
func TestRemoteSubmitWaitsForANodeThatLeft(t *testing.T) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(system.Shutdown)
	f := &fleet{leave: map[string]chan struct{}{}} // no members: every node has left
	peer := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &lateAnswer{delay: 200 * time.Millisecond} }))

	res, err := f.awaitHolding(context.Background(), system.Root.RequestFuture(peer, "submit", 5*time.Second), "gone:1", time.Now().Add(3*time.Second))
	if err != nil || res != "sent" {
		t.Fatalf("held for the answer of a node that left: %v, %v; want its answer", res, err)
	}
	if _, err := f.await(system.Root.RequestFuture(peer, "other", 5*time.Second), "gone:1"); !errors.Is(err, errMemberLeft) {
		t.Fatalf("a request to a node that left: %v, want errMemberLeft at once", err)
	}
}

// A long inbound message waiting here for a part is let go once its
// number's key belongs to another node, which adopts its stored parts and
// completes it with the parts that reach it: given up here as partial when
// its timeout passed, it would be delivered twice.
func TestInboundMessagesOfKeysMovedAwayAreLetGo(t *testing.T) {
	store, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1, Burst: 1, MaxQueued: 1,
		Numbers: []string{"+447700900001"}}
	e := &Engine{cfg: Config{Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), InboundTimeout: time.Minute},
		store: store, log: zerolog.Nop(), bg: newTasks()}
	e.bgStop, e.bgEnd = context.WithCancel(context.Background())
	defer e.bgEnd()
	e.inbound = newInbound(e)
	f := &fleet{e: e, address: "a:1", ring: cluster.NewRendezvous(), leave: map[string]chan struct{}{},
		bindsChanged: make(chan struct{}, 1), workChanged: make(chan struct{}, 1)}
	e.fleet = f
	member := func(host string) []*cluster.Member {
		return []*cluster.Member{{Host: host, Port: 1, Id: host, Kinds: []string{kindKey}}}
	}

	f.topology(member("a")) // this node owns the key
	p := switchboard.InboundPart{Carrier: "sim", From: "+447700111222", To: "+447700900001", Payload: []byte("hello "),
		ReceivedAt: time.Now(), Concat: &switchboard.Concat{Ref: 7, Total: 2, Seq: 1}}
	if err := store.AddInboundPart(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	e.inbound.add(p)
	if n := e.inbound.parts.Held(); n != 1 {
		t.Fatalf("%d parts held, want the first part", n)
	}

	// A part of a number no key owns any more stays, to expire here (which
	// removes it from the store), not to be left stored for no one.
	orphan := p
	orphan.To, orphan.Payload = "+447700900999", []byte("orphan")
	if err := store.AddInboundPart(context.Background(), orphan); err != nil {
		t.Fatal(err)
	}
	e.inbound.add(orphan)

	f.topology(member("b")) // the key's owner is another node now
	f.reconcileInbound(context.Background())
	if n := e.inbound.parts.Held(); n != 1 {
		t.Fatalf("%d parts still held, want only the part of the number no key owns", n)
	}
	if parts, err := store.InboundParts(context.Background()); err != nil || len(parts) != 2 {
		t.Fatalf("stored parts %v (%v), want both kept", parts, err)
	}
}

// A node the others removed stops its engine, which stops its binds last:
// until then it renews its binds' leases (and starts or stops nothing),
// so no other node binds while its connections are still open.
func TestRemovedNodeHoldsItsBindLeasesUntilStopped(t *testing.T) {
	const ttl = 600 * time.Millisecond
	r := newBindRig(t, ttl)
	r.placeOn("a")
	if _, ok := r.next().(*startBind); !ok {
		t.Fatal("the owned bind was not started")
	}
	// The others see only b now.
	r.f.topology([]*cluster.Member{{Host: "b", Port: 2, Id: "b", Kinds: []string{kindKey}}})
	for range 4 { // longer than the lease lasts
		time.Sleep(ttl / 3)
		r.f.holdBinds(context.Background())
		if r.othersCanTake() {
			t.Fatal("another node could take the lease of a bind still running on the removed node")
		}
	}
	select {
	case m := <-r.got:
		t.Fatalf("the removed node's supervisor was sent %T", m)
	default:
	}
	r.f.releaseBinds() // a stop that gave up on the binds: they may be connected
	if r.othersCanTake() {
		t.Fatal("the lease was given up while the bind may still be connected")
	}
	r.f.e.unbound.Store(true)
	r.f.releaseBinds() // the engine stopped: its binds are down
	if !r.othersCanTake() {
		t.Fatal("the lease was not given up once the engine stopped")
	}
}

// A removed node whose bind lease was lost meanwhile (a renewal refused:
// the lease ran out while the node was paused or cut off, and another
// node took it) stops that bind at once rather than when the engine has
// stopped: the other node binds now.
func TestRemovedNodeStopsABindWhoseLeaseItLost(t *testing.T) {
	const ttl = 300 * time.Millisecond
	r := newBindRig(t, ttl)
	r.placeOn("a")
	if _, ok := r.next().(*startBind); !ok {
		t.Fatal("the owned bind was not started")
	}
	r.f.topology([]*cluster.Member{{Host: "b", Port: 2, Id: "b", Kinds: []string{kindKey}}})
	held := r.f.binds["bind/sim/0"].lease
	deadline := time.Now().Add(5 * time.Second)
	for !r.othersCanTake() { // paused past the lease's end
		if time.Now().After(deadline) {
			t.Fatal("the lease never ran out")
		}
		time.Sleep(ttl / 10)
	}
	r.f.holdBinds(context.Background())
	got := r.sent()
	if len(got) != 1 {
		t.Fatalf("the supervisor was sent %d messages, want the bind stopped", len(got))
	}
	if stop, ok := got[0].(*stopBind); !ok || stop.index != 0 {
		t.Fatalf("sent %T, want the bind stopped", got[0])
	}
	if _, ok := r.f.binds["bind/sim/0"]; ok {
		t.Fatal("the bind whose lease was lost is still counted as running here")
	}
	if _, err := r.leases.Renew(context.Background(), held, ttl); switchboard.ErrorCode(err) != switchboard.ECONFLICT {
		t.Fatalf("the lost lease was renewed (%v)", err)
	}
}

// A submit from another node goes stale send_within after it arrived, or
// after it was sent if that is sooner: a node that was paused reads it
// late, when its sender, which waited that long, has sent it again.
func TestRemoteSubmitStaleFromWhenItWasSent(t *testing.T) {
	now := time.Now()
	within := 5 * time.Second
	m := &wire.CarrierSubmit{SendWithinMs: within.Milliseconds()}
	if got := sendBy(m, now); !got.Equal(now.Add(within)) {
		t.Fatalf("without sent_at: %v, want arrival + within", got.Sub(now))
	}
	m.SentAtUnixMs = now.Add(-time.Minute).UnixMilli() // read a minute late
	if got := sendBy(m, now); !got.Before(now) {
		t.Fatalf("read a minute after it was sent: stale at now%+v, want already stale", got.Sub(now))
	}
	m.SentAtUnixMs = now.Add(time.Second).UnixMilli() // the sender's clock ahead
	if got := sendBy(m, now); !got.Equal(now.Add(within)) {
		t.Fatalf("sent 'after' it arrived: %v, want arrival + within", got.Sub(now))
	}
	if got := sendBy(&wire.CarrierSubmit{}, now); !got.IsZero() {
		t.Fatalf("no bound: %v, want none", got)
	}
}

// refusingInbound fails AcceptInbound for messages from one sender.
type refusingInbound struct {
	*pebble.Store
	from     string
	accepted atomic.Int64
}

func (s *refusingInbound) AcceptInbound(ctx context.Context, m *switchboard.Message, cb *switchboard.Callback, parts []switchboard.InboundPart) error {
	if m.From == s.from {
		return errors.New("refused")
	}
	err := s.Store.AcceptInbound(ctx, m, cb, parts)
	if err == nil {
		s.accepted.Add(1)
	}
	return err
}

// A long inbound message whose store keeps failing is retried without
// holding up the other messages of its lane: they are stored meanwhile.
func TestAnInboundMessageThatCannotBeStoredHoldsUpNoOther(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	store := &refusingInbound{Store: ps, from: "+447700000000"}
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1, Burst: 1, MaxQueued: 1,
		Numbers: []string{"+447700900001"}}
	e := &Engine{cfg: Config{Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), InboundTimeout: time.Minute, Now: time.Now},
		store: store, log: zerolog.Nop(), bg: newTasks(), ids: newEventIDs()}
	e.bgStop, e.bgEnd = context.WithCancel(context.Background())
	e.inbound = newInbound(e)
	defer func() { e.inbound.stop(); e.bgEnd(); e.bg.wait() }()
	part := func(from string, seq uint8) switchboard.InboundPart {
		return switchboard.InboundPart{Carrier: "sim", From: from, To: "+447700900001", Payload: []byte{'a' + seq},
			ReceivedAt: time.Now(), Concat: &switchboard.Concat{Ref: 1, Total: 2, Seq: seq}}
	}
	send := func(from string) {
		e.inboundLocal(part(from, 1), func(error) {})
		e.inboundLocal(part(from, 2), func(error) {})
	}
	send(store.from) // its lane is held while its store is retried
	held := e.inbound.laneOf(part(store.from, 1))
	const good = 8 // all in its lane
	for i, n := 0, 0; n < good; i++ {
		if from := fmt.Sprintf("+4477001%05d", i); e.inbound.laneOf(part(from, 1)) == held {
			send(from)
			n++
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for store.accepted.Load() < good {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages stored while one kept failing", store.accepted.Load(), good)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A long inbound message given up at its reassembly timeout is stored in
// its lane, taken from the reassembler only then: a new message reusing its
// reference that came meanwhile displaced it first, and its stored part,
// acknowledged to the carrier, is not removed with the old message's.
func TestAnExpiringMessageDoesNotRemoveANewPartOfItsReference(t *testing.T) {
	ps, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	key := &switchboard.Key{ID: "k", SecretHash: switchboard.HashSecret("s"), Rate: 1, Burst: 1, MaxQueued: 1,
		Numbers: []string{"+447700900001"}}
	e := &Engine{cfg: Config{Keys: switchboard.NewKeyRing([]*switchboard.Key{key}), InboundTimeout: time.Minute, Now: time.Now},
		store: ps, log: zerolog.Nop(), bg: newTasks(), ids: newEventIDs()}
	e.bgStop, e.bgEnd = context.WithCancel(context.Background())
	e.inbound = newInbound(e)
	defer func() { e.inbound.stop(); e.bgEnd(); e.bg.wait() }()
	part := func(payload string, at time.Time) switchboard.InboundPart {
		return switchboard.InboundPart{Carrier: "sim", From: "+447700111222", To: "+447700900001", Payload: []byte(payload),
			ReceivedAt: at, Concat: &switchboard.Concat{Ref: 1, Total: 2, Seq: 1}}
	}
	deliver := func(p switchboard.InboundPart) {
		acked := make(chan error, 1)
		e.inboundLocal(p, func(err error) { acked <- err })
		if err := <-acked; err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	deliver(part("old", now.Add(-2*time.Minute))) // its second part is lost

	// The expiry finds it (the part is acknowledged once stored, and
	// handed to the reassembler just after)...
	var expired []switchboard.InboundPart
	deadline := time.Now().Add(5 * time.Second)
	for expired = e.inbound.parts.ExpiredParts(now); len(expired) != 1; expired = e.inbound.parts.ExpiredParts(now) {
		if time.Now().After(deadline) {
			t.Fatalf("%d expired, want the old message", len(expired))
		}
		time.Sleep(time.Millisecond)
	}
	deliver(part("new", now)) // ...and a new message reusing the reference comes first
	for _, p := range expired {
		e.inbound.inLane(p, func() []concat.Assembled {
			if a, ok := e.inbound.parts.TakeExpired(p, now); ok {
				return []concat.Assembled{a}
			}
			return nil
		})
	}
	stored, err := ps.InboundParts(context.Background())
	if err != nil || len(stored) != 1 || string(stored[0].Payload) != "new" {
		t.Fatalf("stored parts %v (%v), want the new message's first part", stored, err)
	}
}

// A submit's failure crosses nodes as what it is: a lost connection keeps
// the connection it was lost with (so the sender counts the loss once)
// and its cause; a refusal keeps its status and pause.
func TestSubmitFailuresCrossNodes(t *testing.T) {
	cause := errors.New("read tcp 10.0.0.2:41234->10.0.0.9:2775: connection reset by peer")
	lost := &smpp.ConnectionLostError{Conn: 42, Answered: true, Cause: cause}
	back := failureFromWire(failureToWire(lost))
	var got *smpp.ConnectionLostError
	if !errors.As(back, &got) || got.Conn != 42 || !got.Answered || !errors.Is(back, smpp.ErrConnectionLost) {
		t.Fatalf("a lost connection came back as %#v", back)
	}
	if back.Error() != lost.Error() {
		t.Fatalf("text %q, want %q", back.Error(), lost.Error())
	}
	// A connection that answered nothing, or a node that does not send
	// the connection: the plain error, whose every part counts.
	lost.Answered = false
	for _, w := range []*wire.SubmitFailure{failureToWire(lost), {Kind: wire.SubmitFailure_CONNECTION_LOST}} {
		if back := failureFromWire(w); back != smpp.ErrConnectionLost {
			t.Fatalf("a loss without its connection came back as %#v", back)
		}
	}
	refused := &smpp.SubmitError{Status: data.ESME_RTHROTTLED, Retriable: true, RetryAfter: 200 * time.Millisecond}
	var se *smpp.SubmitError
	if back := failureFromWire(failureToWire(refused)); !errors.As(back, &se) || *se != *refused {
		t.Fatalf("a refusal came back as %#v", back)
	}
}
