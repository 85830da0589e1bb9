package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// In a cluster a key has one owner, fenced in storage: the node whose key
// actor holds the lease on "key/<id>". The actor takes the lease and raises
// the key's fence to its token before it counts the key's messages
// (takeKey), renews it a few times per lease period (keepLease), and
// writes with its token, so a node that lost the lease (paused, cut off)
// cannot commit for the key once the new owner has raised the fence. While
// the lease has run out by its own clock the actor neither takes nor sends
// messages. A renewal that gets no answer (Redis slow or unreachable for a
// moment) is tried again until the lease runs out; once it has, or once a
// renewal is refused (another holder has the key), the actor stops, and
// the next request for the key starts one that tries to take the lease
// again.

type (
	// handOver says the key now belongs to another node: the actor stops
	// taking messages, lets what it has in flight finish, gives the lease
	// up and stops, so the new owner can take the key.
	handOver struct{}
	// leaseRenewed says a renewal of the actor's lease failed (err), or
	// that one succeeded after the lease had run out by this node's
	// clock (nil): the actor, which sent nothing meanwhile, goes on.
	leaseRenewed struct {
		inst uint64
		err  error
	}
)

// keyLease is a key actor instance's lease on its key. It is renewed on a
// goroutine of its own from the moment it is taken, so that neither a slow
// first count of the key's messages nor a busy mailbox lets it lapse; the
// actor reads its expiry, and hears of a renewal that failed.
type keyLease struct {
	claim uint64 // its taker's number in the node's leaseBook
	token int64  // the fencing token, fixed for the lease's life
	// current is the lease as last renewed; its Expires carries this
	// node's monotonic clock, so a step of the wall clock does not
	// stretch it.
	current atomic.Pointer[switchboard.Lease]
	stop    chan struct{}
	ended   sync.Once
	// lost holds why a renewal failed, once one has: the actor may hear
	// of it before it holds the lease (while it counts its messages),
	// when it cannot act on the message yet, so it looks here then.
	lost atomic.Pointer[error]
}

// tokenOrZero is the lease's token, 0 for none (a single node).
func (l *keyLease) tokenOrZero() int64 {
	if l == nil {
		return 0
	}
	return l.token
}

// lostWhy is why a renewal of the lease failed, nil if none has (or for
// no lease: a single node).
func (l *keyLease) lostWhy() error {
	if l == nil {
		return nil
	}
	if p := l.lost.Load(); p != nil {
		return *p
	}
	return nil
}

// valid reports whether the lease still holds at now.
func (l *keyLease) valid(now time.Time) bool { return now.Before(l.current.Load().Expires) }

func (l *keyLease) set(x switchboard.Lease) { l.current.Store(&x) }

// takeKey takes the lease on a key, raises its fence to the lease's token
// and starts renewing it until gone is closed (the instance stopped: the
// lease is then given up) or a renewal fails (renewed hears of it, and of
// a renewal that made a lapsed lease valid again); on a single node it
// does nothing and returns nil.
func (e *Engine) takeKey(ctx context.Context, id string, gone <-chan struct{}, renewed func(error)) (*keyLease, error) {
	if e.fleet == nil {
		return nil, nil
	}
	f := e.fleet
	name := "key/" + id
	claim, releasing := f.book.claim(name)
	if releasing != nil {
		select {
		case <-releasing:
		case <-ctx.Done():
			e.forgetClaim(name, claim)
			return nil, ctx.Err()
		}
	}
	l, err := f.leases.Acquire(ctx, name, f.holder, f.cfg.LeaseTTL)
	if err != nil {
		e.forgetClaim(name, claim)
		return nil, err
	}
	f.book.taken(name, claim)
	kl := &keyLease{claim: claim, token: l.Token, stop: make(chan struct{})}
	kl.set(l)
	// Renewed from here on: raising the fence is a lightweight
	// transaction, which a store busy with every key of a node that died
	// may take longer than the lease to answer.
	e.background(func(stop context.Context) { e.keepLease(stop, kl, gone, renewed) })
	fence, err := e.store.RaiseFence(ctx, id, l.Token)
	if err == nil && fence > l.Token {
		err = switchboard.Errorf(switchboard.EUNAVAILABLE, "key %s is fenced by a newer owner", id)
	}
	if err != nil {
		e.endLease(kl)
		return nil, err
	}
	return kl, nil
}

// keepLease renews a lease every third of its period until it is ended,
// a renewal is refused, or the lease runs out while renewals go
// unanswered (tried again every renewRetry meanwhile).
func (e *Engine) keepLease(stop context.Context, kl *keyLease, gone <-chan struct{}, renewed func(error)) {
	ttl := e.fleet.cfg.LeaseTTL
	t := time.NewTimer(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-kl.stop:
			return
		case <-gone:
			e.endLease(kl)
			return
		case <-t.C:
		}
		l, err := e.fleet.leases.Renew(stop, *kl.current.Load(), ttl)
		if err != nil {
			if switchboard.ErrorCode(err) != switchboard.ECONFLICT && kl.valid(e.now()) {
				t.Reset(renewRetry(ttl))
				continue
			}
			kl.lost.Store(&err)
			renewed(err)
			return
		}
		lapsed := !kl.valid(e.now())
		kl.set(l)
		if lapsed && kl.valid(e.now()) {
			renewed(nil)
		}
		t.Reset(ttl / 3)
	}
}

// renewRetry is the pause before trying again a renewal that went
// unanswered: several tries fit in what is left of the lease.
func renewRetry(ttl time.Duration) time.Duration { return ttl / 10 }

// endLease stops renewing a lease and gives it up, so the key's next
// owner need not wait for it to run out; unless a later instance on this
// node has claimed the key meanwhile: the lease is that one's now.
func (e *Engine) endLease(kl *keyLease) {
	kl.ended.Do(func() {
		close(kl.stop)
		l := *kl.current.Load()
		if landed, ok := e.fleet.book.release(l, kl.claim); ok {
			e.releaseLease(l, landed)
		}
	})
}

// forgetClaim drops the claim of a taker that did not get the lease, and
// gives up a lease its predecessor left to it.
func (e *Engine) forgetClaim(name string, claim uint64) {
	if l, landed, ok := e.fleet.book.forget(name, claim); ok {
		e.releaseLease(l, landed)
	}
}

func (e *Engine) releaseLease(l switchboard.Lease, landed func()) {
	leases, log := e.fleet.leases, e.log
	e.background(func(stop context.Context) {
		defer landed()
		if err := leases.Release(stop, l); err != nil {
			log.Warn().Err(err).Str("lease", l.Name).Msg("giving a lease up failed; it runs out by itself")
		}
	})
}

// leaseBook orders a node's own takes and releases of its key leases. A
// node is one holder, and Acquire by the holder that holds a name keeps
// the lease and its token: a key actor instance that starts while its
// predecessor on this node gives the lease up would take the very lease
// that the Release then ends, and lose it at its first renewal. So a
// taker claims the name first, which makes a predecessor that has not
// begun its Release skip it, and waits for a Release already on its way.
// A predecessor that skips leaves its lease to the taker, which gives it
// up if its own Acquire fails.
type leaseBook struct {
	mu    sync.Mutex
	last  uint64 // the last claim's number: numbers are never reused
	names map[string]*bookEntry
}

type bookEntry struct {
	claim     uint64        // the latest taker's number
	releasing chan struct{} // closed when the Release in flight has landed
	// left: a lease a predecessor skipped releasing, until the taker
	// has it.
	left *switchboard.Lease
}

// claim registers a taker of name: its number, and what to wait for
// before it may Acquire (nil: nothing).
func (b *leaseBook) claim(name string) (uint64, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.names == nil {
		b.names = make(map[string]*bookEntry)
	}
	en := b.names[name]
	if en == nil {
		en = &bookEntry{}
		b.names[name] = en
	}
	b.last++
	en.claim = b.last
	return en.claim, en.releasing
}

// taken says the taker numbered claim holds name's lease: whatever a
// predecessor left is that lease now.
func (b *leaseBook) taken(name string, claim uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if en := b.names[name]; en != nil && en.claim == claim {
		en.left = nil
	}
}

// release reports whether the taker numbered claim may give name up (no
// later taker has claimed it) and, if it may, marks its Release as on its
// way until landed is called.
func (b *leaseBook) release(l switchboard.Lease, claim uint64) (landed func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	en := b.names[l.Name]
	if en != nil && en.claim != claim {
		en.left = &l
		return nil, false
	}
	if en == nil { // dropped after a failed renewal; nobody claimed it since
		en = &bookEntry{claim: claim}
		b.names[l.Name] = en
	}
	return b.releasing(l.Name, en), true
}

// releasing marks a Release of name as on its way until the returned
// func is called; b.mu is held.
func (b *leaseBook) releasing(name string, en *bookEntry) (landed func()) {
	done, claim := make(chan struct{}), en.claim
	en.releasing = done
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		close(done)
		if en.claim == claim && b.names[name] == en {
			delete(b.names, name)
		} else if en.releasing == done {
			en.releasing = nil
		}
	}
}

// forget drops the claim of a taker that did not get the lease; if a
// predecessor left it a lease, that is to be released (ok).
func (b *leaseBook) forget(name string, claim uint64) (l switchboard.Lease, landed func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	en := b.names[name]
	switch {
	case en == nil || en.claim != claim:
		return l, nil, false
	case en.left != nil:
		l, en.left = *en.left, nil
		return l, b.releasing(name, en), true
	case en.releasing == nil:
		delete(b.names, name)
	}
	return l, nil, false
}

func (k *keyActor) leaseRenewed(ctx actor.Context, m *leaseRenewed) {
	switch {
	case m.inst != k.inst || k.lease == nil:
	case m.err != nil:
		k.leaseLost(ctx, m.err)
	default:
		k.dispatch(ctx) // it sent and paged nothing while the lease had lapsed
	}
}

// fence is the token the actor writes with: its lease's, in a cluster; 0
// on a single node.
func (k *keyActor) fence() int64 {
	if k.lease == nil {
		return 0
	}
	return k.lease.token
}

// leaseValid reports whether the actor may write for its key: on a single
// node always; in a cluster while its lease has not run out by its own
// clock (a node that was paused finds it out here, before it writes).
func (k *keyActor) leaseValid(now time.Time) bool {
	return k.lease == nil || k.lease.valid(now)
}

// leaseLost stops the actor: another node may own the key now.
// Its records still on their way are fenced off by the new owner: they
// are not retried (work.lost). This holds during a hand-over too.
func (k *keyActor) leaseLost(ctx actor.Context, why error) {
	k.work.lost.Store(true)
	k.e.log.Warn().Err(why).Str("key", k.key.ID).Msg("lost the lease on the key; its actor stops here")
	k.ready = false
	k.loadErr = keyMoved(k.key.ID)
	// Forgotten now, not once stopped: a request sent meanwhile would
	// wait its whole timeout on an actor that answers nothing more; the
	// next one starts a new instance, which waits for this one's work.
	k.e.registry.stopped(k.key.ID, ctx.Self())
	k.answerStash(k.loadErr)
	ctx.Stop(ctx.Self())
}

func keyMoved(id string) error {
	return movingError{switchboard.Errorf(switchboard.EUNAVAILABLE, "Key %s is moving to another node; try again.", id)}
}

// movingError refuses a request the key's actor took nothing of because
// the key is moving between nodes: the request may go to the key's
// owner once placement names another node (Engine.submit).
type movingError struct{ err *switchboard.Error }

func (e movingError) Error() string { return e.err.Error() }

func (e movingError) Unwrap() error { return e.err }

// allMoving reports whether every result is a refusal because the key is
// moving: nothing of the batch was taken.
func allMoving(results []switchboard.SubmitResult) bool {
	for _, r := range results {
		var m movingError
		if !errors.As(r.Err, &m) {
			return false
		}
	}
	return len(results) > 0
}

// handOver starts handing the key to its new owner (see the message).
func (k *keyActor) handOver(ctx actor.Context) {
	if k.handingOver {
		return
	}
	k.e.log.Debug().Str("key", k.key.ID).Uint64("inst", k.inst).Int("inflight", k.inflight).
		Int("commits", len(k.pendingCommits)).Msg("handing the key over")
	k.handingOver, k.draining = true, true
	k.ready, k.loadErr = false, keyMoved(k.key.ID)
	k.answerStash(k.loadErr)
	k.maybeHandedOver(ctx)
}

// handOverPoll is how often a key being handed over checks that its last
// records have landed.
const handOverPoll = 20 * time.Millisecond

// maybeHandedOver ends the hand-over once nothing the actor started is
// outstanding: its lease is given up, and it stops.
func (k *keyActor) maybeHandedOver(ctx actor.Context) {
	if !k.handingOver || k.inflight > 0 || len(k.pendingCommits) > 0 {
		return
	}
	if !k.work.done() {
		k.setWake(ctx, k.e.now().Add(handOverPoll))
		return
	}
	if k.lease != nil {
		k.e.endLease(k.lease)
	}
	k.e.log.Info().Str("key", k.key.ID).Msg("key handed over to its new owner")
	ctx.Stop(ctx.Self())
}
