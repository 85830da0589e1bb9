package actors

import (
	"context"
	cryptorand "crypto/rand"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/oklog/ulid/v2"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// A key actor's code follows a message's path: this file holds the actor,
// its messages and its life (start, restart, idling); key_admit.go admits
// requests and makes them durable; key_send.go sends each destination's
// head to a carrier and handles the outcome; key_page.go brings messages
// that wait only in the store into memory.

// Messages a key actor handles, besides protoactor's lifecycle ones.
// Replies to work an instance started carry the instance (inst): protoactor
// replaces an instance that panicked with a new one under the same PID, and
// the new one ignores its predecessor's replies.
type (
	// submitBatch asks to admit messages. The actor answers on reply (which
	// has room for the answer, so the actor never blocks) with a commit
	// for the caller to make durable, then report back with committed.
	// When requests carry Idempotency-Keys, a first round's commit asks
	// the caller to look them up (commit.lookup), and the caller sends the
	// batch again with the answers (looked), so store reads never run on
	// the actor's goroutine.
	submitBatch struct {
		reqs  []switchboard.SubmitRequest
		reply chan *commit
		// looked and decided come from a first round's commit: the
		// answers to its look-ups, and the results it already decided.
		looked  []idemLookup
		decided []switchboard.SubmitResult
		inst    uint64 // the instance that reserved the looked-up keys
		// answerBy is the latest an actor that keeps the batch waiting
		// (for a key's lease another node still holds) answers it, so
		// that the requester, which gives up at its timeout, hears why.
		answerBy time.Time
	}
	// idemRelease gives back Idempotency-Keys a first round reserved, when
	// the caller gave up before the second round.
	idemRelease struct {
		inst uint64
		keys []string
	}
	// committed reports the end of one durable Accept.
	committed struct {
		c   *commit
		err error
	}
	// submitDone reports a bind's answer for one message (its outcome is
	// recorded by the bind's callback, not by the actor).
	submitDone struct {
		inst    uint64
		q       *destQueue
		e       *entry
		carrier *carrier
		res     smpp.Result
		err     error
	}
	// wake is a timer going off: retry waits may be over. Timers that were
	// replaced by an earlier one carry an old gen and are ignored.
	wake struct{ inst, gen uint64 }
	// carrierUp says a bind has come up (Engine.carrierUp).
	carrierUp struct{}
	// drain stops dispatching; the reply comes once nothing is in flight.
	drain struct{}
	// counted brings the store's count of the key's pending messages and,
	// in a cluster, the lease on the key.
	counted struct {
		inst  uint64
		n     int
		lease *keyLease
		err   error
	}
	// predecessorSettled says an earlier instance's work is done (work).
	predecessorSettled struct{}
)

// entry is one message held in memory, waiting in its destination's FIFO.
// The actor keeps what changes about it here, not in msg, which the API
// may still be encoding for the 202 when the actor goes on.
type entry struct {
	msg     *switchboard.Message
	durable bool // committed: may be sent
	dropped bool // its commit failed: skip it
	held    bool // in a destination FIFO (else only in the store)
	queued  bool // the queued status is recorded (or asked for)
	// ids are the carrier ids of the parts accepted so far ("" for the
	// others); carrier is the carrier that accepted them, which the rest
	// must go to as well.
	ids     []string
	carrier string
	tries   int // failed tries the carrier is to blame for (max_attempts)
}

// newEntry holds a message read back from the store, with what it says of
// earlier tries.
func newEntry(m *switchboard.Message) *entry {
	e := &entry{msg: m, durable: true, queued: m.Status == switchboard.StatusQueued}
	if len(m.CarrierIDs) > 0 {
		e.ids, e.carrier = m.CarrierIDs, m.Carrier
	}
	return e
}

// destQueue is the FIFO of one destination. Its head is the only message
// to that destination in flight, so messages reach the carrier in order,
// and a head waiting to be retried holds everything behind it.
type destQueue struct {
	to       string
	entries  []*entry
	busy     bool
	retryAt  time.Time
	attempts int // failed tries of the head
	listed   bool
	// noCarrier: the head waits because no carrier could take it; a
	// carrier coming up (carrierUp) sends it at once.
	noCarrier bool
	// lag counts the queue's entries in the engine's queue lag, under the
	// carrier its route named when the queue was made (metrics.go).
	lag *atomic.Int64
}

func (q *destQueue) head() *entry {
	if len(q.entries) == 0 {
		return nil
	}
	return q.entries[0]
}

func (q *destQueue) pop() {
	q.lag.Add(-1)
	q.entries[0] = nil
	q.entries = q.entries[1:]
	q.attempts = 0
	q.retryAt = time.Time{}
}

// keyActor is one API key: it admits messages (rate, queue bound,
// validation), makes them durable, and sends them on in per-destination
// order. It holds at most window messages in memory; the rest wait in the
// store and are paged in as the window drains. It never waits for the
// store on its own goroutine: counts, look-ups and pages are read by
// others and arrive as messages.
type keyActor struct {
	e      *Engine
	key    *switchboard.Key
	ent    *regEntry
	bucket *switchboard.TokenBucket
	ids    *ulid.MonotonicEntropy

	inst uint64 // this instance, unique in the engine
	work *work  // what this instance started that ends elsewhere
	// gone is closed when the instance is replaced or stops: what it
	// started that would outlive it (its lease's renewals) ends.
	gone chan struct{}
	// lease is this node's lease on the key, in a cluster (nil on a
	// single node): its token fences every write the actor makes.
	lease *keyLease

	// Start: the instance counts the key's pending messages before it
	// admits anything; requests arriving meanwhile wait in stash.
	ready   bool
	loading bool
	loadErr error
	// reload paces the tries to load again after one failed (waits of up
	// to 50 ms, doubling to 1 s): a key its previous owner is handing over
	// is free within milliseconds.
	reload switchboard.Backoff
	stash  []*submitBatch
	// movingIn: another node still holds the key's lease (it is handing
	// the key over, or its lease is running out). Requests wait in stash
	// meanwhile, each until its answerBy at most, rather than be refused
	// at once: a key moves in a fraction of a second.
	movingIn bool

	dests    map[string]*destQueue
	runnable []*destQueue
	waiting  *dueQueue[*destQueue]
	wakeAt   time.Time
	wakeGen  uint64

	inMemory   int    // entries held
	queued     int    // pending messages, in memory or only on disk
	paged      bool   // the store has pending messages not in memory
	lastLoaded string // the highest ID taken into memory
	// pageDry: the last page read everything it was allowed to read (up to
	// the commit frontier); reading again finds nothing new until a commit
	// lands.
	pageDry bool
	// paging: a page is being read (pageLimit units of the held budget
	// are taken for it); admissions and landed count commits begun and
	// landed, so a page knows whether one began or landed while it was
	// read.
	paging             bool
	pageLimit          int
	admissions, landed uint64
	// pageAfter: after a failed read, none starts before it.
	pageAfter time.Time
	// pageCut is the lowest ID admitted while the page is read ("" if
	// none): the read may have seen a later commit of those land and not
	// an earlier one, so it keeps only what lies below (pageRead).
	pageCut string
	// lastID is the highest ID issued or loaded.
	lastID ulid.ULID
	// pendingCommits holds the Accepts in flight.
	pendingCommits map[*commit]struct{}
	inflight       int // submits in flight
	// blocked holds the destinations whose head was ready when the
	// engine's sending budget was spent; while any are, the key sends
	// nothing and waits in the budget's line.
	blocked []*destQueue
	// idem holds the Idempotency-Keys being looked up or committed.
	idem     map[string]bool
	drainer  *actor.PID
	draining bool
	// releaseLanded: the drain is answered; the lease is given up once
	// the actor's records have landed (maybeDrained).
	releaseLanded bool
	// handingOver: the key moved to another node (handOver).
	handingOver bool
	// canceled holds messages canceled while they waited only in the
	// store, so a page read meanwhile does not bring them in (admin.go).
	canceled map[string]bool
}

func newKeyActor(e *Engine, key *switchboard.Key, ent *regEntry) *keyActor {
	var seed [32]byte
	_, _ = cryptorand.Read(seed[:])
	return &keyActor{
		e:              e,
		key:            key,
		ent:            ent,
		work:           &work{},
		gone:           make(chan struct{}),
		bucket:         switchboard.NewTokenBucket(key.Rate, key.Burst),
		ids:            ulid.Monotonic(rand.NewChaCha8(seed), 0),
		dests:          make(map[string]*destQueue),
		waiting:        newDueQueue[*destQueue](),
		idem:           make(map[string]bool),
		paged:          true, // until the store says otherwise
		pendingCommits: make(map[*commit]struct{}),
	}
}

func (k *keyActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		k.started(ctx)
	case *predecessorSettled:
		k.predecessorSettled(ctx)
	case *counted:
		k.counted(ctx, m)
	case *handOver:
		k.handOver(ctx)
	case *leaseRenewed:
		k.leaseRenewed(ctx, m)
	case *submitBatch:
		k.accept(ctx, m)
	case *idemRelease:
		if m.inst == k.inst {
			for _, key := range m.keys {
				delete(k.idem, key)
			}
		}
	case *committed:
		k.committed(ctx, m)
	case *submitDone:
		k.submitDone(ctx, m)
	case *pageRead:
		k.pageRead(ctx, m)
	case *wake:
		if m.inst == k.inst && m.gen == k.wakeGen {
			k.woken(ctx)
		}
	case *carrierUp:
		k.carrierUp(ctx)
	case *keyChanged:
		k.keyChanged()
	case *cancelReq:
		k.cancel(ctx, m)
	case *budgetFree:
		if m.b == k.e.sending {
			k.unblock()
		}
		k.dispatch(ctx) // pages in or sends, if there is room now
		m.b.pass()
	case *actor.Restarting, *actor.Stopping:
		if k.drainer != nil { // stopped (handed over, lease lost) while Stop waits for it
			k.e.system.Root.Send(k.drainer, &drain{})
			k.drainer = nil
		}
		k.release()
	case *actor.Stopped:
		k.e.registry.stopped(k.key.ID, ctx.Self())
	case *drain:
		k.draining, k.drainer = true, ctx.Sender()
		k.maybeDrained(ctx)
	case *actor.ReceiveTimeout:
		k.idle(ctx)
	}
}

// started registers the instance's work and loads the key once every
// earlier instance's work is done.
func (k *keyActor) started(ctx actor.Context) {
	k.inst = k.e.nextInst.Add(1)
	ctx.SetReceiveTimeout(k.e.cfg.IdleTimeout)
	if k.e.registry.begin(k.ent, k.work) {
		k.load(ctx)
		return
	}
	k.e.log.Warn().Str("key", k.key.ID).Msg("key actor restarted; waiting for its previous instance's writes and submits")
	// settled tells this instance when the work ends; the poll is for a
	// notice sent while the PID was being replaced.
	k.setWake(ctx, k.e.now().Add(predecessorPoll))
}

// predecessorPoll is how often a new instance checks, besides being told,
// whether its predecessors' work is done.
const predecessorPoll = 100 * time.Millisecond

func (k *keyActor) predecessorSettled(ctx actor.Context) {
	if !k.ready && !k.loading && k.e.registry.settled(k.ent, k.work) {
		k.load(ctx)
	}
}

// load counts the key's pending messages off the actor's goroutine.
func (k *keyActor) load(ctx actor.Context) {
	k.loading = true
	self, root, inst, id, gone := ctx.Self(), k.e.system.Root, k.inst, k.key.ID, k.gone
	k.e.background(func(stop context.Context) {
		c := &counted{inst: inst}
		c.lease, c.err = k.e.takeKey(stop, id, gone, func(err error) { root.Send(self, &leaseRenewed{inst: inst, err: err}) })
		if c.err == nil {
			c.n, c.err = k.e.store.PendingCount(stop, id)
		}
		if c.err != nil && c.lease != nil {
			k.e.endLease(c.lease)
			c.lease = nil
		}
		root.Send(self, c)
	})
}

// counted makes the actor ready, or, if the store failed, answers waiting
// requests with 503 and tries again shortly.
func (k *keyActor) counted(ctx actor.Context, m *counted) {
	if m.inst != k.inst {
		return
	}
	k.loading = false
	if m.err != nil {
		k.movingIn = switchboard.ErrorCode(m.err) == switchboard.ECONFLICT
		if k.movingIn {
			k.loadErr = nil // requests wait (see movingIn)
		} else {
			k.loadErr = k.unavailable(m.err)
			k.answerStash(k.loadErr)
		}
		k.e.log.Debug().Err(m.err).Str("key", k.key.ID).Uint64("inst", k.inst).Msg("key actor not ready; will try again")
		if k.reload.Max == 0 {
			k.reload = switchboard.Backoff{Min: 50 * time.Millisecond, Max: time.Second}
		}
		wait := k.reload.Next()
		if k.movingIn {
			wait = min(wait, movingInPoll)
		}
		k.setWake(ctx, k.e.now().Add(wait))
		k.answerOverdue(ctx)
		return
	}
	k.reload.Reset()
	k.ready, k.loadErr, k.movingIn = true, nil, false
	k.e.log.Debug().Str("key", k.key.ID).Uint64("inst", k.inst).Int64("fence", m.lease.tokenOrZero()).Int("pending", m.n).
		Msg("key actor ready")
	k.setQueued(m.n)
	k.paged = m.n > 0
	k.lease = m.lease
	k.ent.fence.Store(k.fence())
	if why := m.lease.lostWhy(); why != nil {
		// A renewal failed while the messages were counted: its notice
		// came before the actor held the lease, and nothing renews it now.
		k.leaseLost(ctx, why)
		return
	}
	stash := k.stash
	k.stash = nil
	for _, b := range stash {
		k.accept(ctx, b)
	}
	k.dispatch(ctx)
}

// movingInPoll is the longest wait between tries to take the lease of a
// key another node is handing over, while requests wait for it.
const movingInPoll = 200 * time.Millisecond

// answerOverdue refuses the waiting requests whose answerBy has come
// (the key is still moving in), and wakes the actor for the next one.
func (k *keyActor) answerOverdue(ctx actor.Context) {
	now := k.e.now()
	var next time.Time
	kept := k.stash[:0]
	for _, b := range k.stash {
		if !b.answerBy.After(now) {
			b.reply <- &commit{inst: k.inst, results: failAll(len(b.reqs), keyMoved(k.key.ID))}
			continue
		}
		kept = append(kept, b)
		next = earliest(next, b.answerBy)
	}
	clear(k.stash[len(kept):])
	k.stash = kept
	if !next.IsZero() {
		k.setWake(ctx, next)
	}
}

// earliest is the earlier of two times, a zero one counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// answerStash fails every request waiting for the actor to be ready.
func (k *keyActor) answerStash(err error) {
	for _, b := range k.stash {
		b.reply <- &commit{inst: k.inst, results: failAll(len(b.reqs), err)}
	}
	k.stash = nil
}

// release gives back what this instance holds of the engine's budgets and
// answers the requests it kept waiting: it is being replaced or stopped.
// Its submits and commits end by themselves (work), and its entries die
// with it.
func (k *keyActor) release() {
	select {
	case <-k.gone:
	default:
		close(k.gone)
		k.ent.fence.CompareAndSwap(k.fence(), 0)
	}
	k.lagDropped()
	k.setQueued(0) // the key's next owner counts them
	k.e.held.release(k.inMemory)
	k.inMemory = 0
	if k.paging {
		k.e.held.release(k.pageLimit)
		k.paging = false
	}
	k.answerStash(switchboard.Errorf(switchboard.EUNAVAILABLE, "The key is restarting; try again."))
}

func (k *keyActor) unavailable(err error) error { return k.e.unavailable(k.key.ID, err) }

// woken relists every destination whose wait is over and re-arms the
// timer for the earliest one still waiting. A key that is not ready yet
// tries to start again.
func (k *keyActor) woken(ctx actor.Context) {
	k.wakeAt = time.Time{}
	if k.handingOver {
		k.maybeHandedOver(ctx)
		return
	}
	if k.draining && (k.drainer != nil || k.releaseLanded) { // nothing is sent while draining
		k.maybeDrained(ctx)
		return
	}
	if !k.ready {
		if k.movingIn {
			k.answerOverdue(ctx)
		}
		if !k.loading && k.e.registry.settled(k.ent, k.work) {
			k.load(ctx)
		} else if !k.loading {
			k.setWake(ctx, k.e.now().Add(predecessorPoll))
		}
		return
	}
	k.waiting.popDue(k.e.now(), k.list)
	if next := k.waiting.earliest(); !next.IsZero() {
		k.setWake(ctx, next)
	}
	k.dispatch(ctx)
}

func (k *keyActor) setWake(ctx actor.Context, at time.Time) {
	if !k.wakeAt.IsZero() && !at.Before(k.wakeAt) {
		return
	}
	k.wakeAt = at
	k.wakeGen++
	self, root, w := ctx.Self(), k.e.system.Root, &wake{inst: k.inst, gen: k.wakeGen}
	time.AfterFunc(at.Sub(k.e.now()), func() { root.Send(self, w) })
}

// maybeDrained answers the drain once nothing the actor started is in
// flight. The node is stopping: in a cluster the key's lease is then
// given up, so its next owner need not wait for it to run out, once every
// record of this actor has landed (one fenced off would be lost): checked
// again every handOverPoll while Stop goes on (its binds unbinding), and
// left to run out if the records never land (a store that is down).
func (k *keyActor) maybeDrained(ctx actor.Context) {
	if k.draining && k.drainer != nil && k.inflight == 0 && len(k.pendingCommits) == 0 {
		ctx.Send(k.drainer, &drain{})
		k.drainer = nil
		k.releaseLanded = k.lease != nil
	}
	if k.releaseLanded && !k.handingOver {
		if k.work.done() {
			k.releaseLanded = false
			k.e.endLease(k.lease)
		} else {
			k.setWake(ctx, k.e.now().Add(handOverPoll))
		}
	}
	k.maybeHandedOver(ctx)
}

// idle stops the actor when it holds nothing; the registry makes sure no
// request is on its way to it.
func (k *keyActor) idle(ctx actor.Context) {
	busy := !k.ready || len(k.dests) > 0 || k.inflight > 0 || len(k.pendingCommits) > 0 || k.paged ||
		k.paging || k.queued > 0 || len(k.idem) > 0 || k.draining
	if !busy && k.e.registry.retire(k.key.ID, ctx.Self()) {
		ctx.Stop(ctx.Self())
		return
	}
	// protoactor disarms the receive timeout when it fires: arm it again.
	ctx.SetReceiveTimeout(k.e.cfg.IdleTimeout)
}
