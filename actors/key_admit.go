package actors

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/oklog/ulid/v2"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// commit is one admitted request on its way to the store. The key actor
// fills it and hands it to the requester, which writes news with one Accept
// (on its own goroutine: the fsync's wake-up goes straight to the waiting
// request), fills in results, and reports back with committed. From the
// reply on, the actor reads only entries and idem, which the requester
// does not touch.
type commit struct {
	inst    uint64 // the instance that admitted it
	work    *work  // that instance's work, which the Accept is part of
	news    []switchboard.NewMessage
	results []switchboard.SubmitResult
	entries []*entry
	index   []int // results[index[i]] belongs to entries[i]
	// idem holds the Idempotency-Keys of news, released when they are
	// committed; in a first round's answer, the keys reserved for lookup.
	idem []string
	// lookup, in a first round's answer, lists the requests whose
	// Idempotency-Keys the requester must look up before the actor can
	// admit the batch (see submitBatch).
	lookup []int
}

// idemLookup is what the store knows of one request's Idempotency-Key.
type idemLookup struct {
	asked bool // this request was looked up
	found bool
	rec   switchboard.IdempotencyRecord
	msg   *switchboard.Message // the message the record names
	err   error
}

// accept admits each request and hands the admitted ones to the requester
// to make durable (see commit).
func (k *keyActor) accept(ctx actor.Context, b *submitBatch) {
	if !k.ready {
		if k.loadErr != nil {
			b.reply <- &commit{inst: k.inst, results: failAll(len(b.reqs), k.loadErr)}
			return
		}
		k.stash = append(k.stash, b)
		return
	}
	c := &commit{inst: k.inst, work: k.work, results: make([]switchboard.SubmitResult, len(b.reqs))}
	if b.looked != nil && b.inst != k.inst {
		// Another instance reserved these keys; this one must look again.
		b.looked, b.decided = nil, nil
	}
	if b.looked == nil && k.reserveLookups(b, c) {
		b.reply <- c
		return
	}
	if b.decided != nil {
		copy(c.results, b.decided)
	}
	now := k.e.now()
	if !k.leaseValid(now) {
		// The lease ran out by this node's clock (a renewal is late, or
		// the node was paused): another node may own the key. The keys
		// a first round reserved are released.
		if b.looked != nil {
			for i, l := range b.looked {
				if l.asked {
					delete(k.idem, b.reqs[i].IdempotencyKey)
				}
			}
		}
		b.reply <- &commit{inst: k.inst, results: failAll(len(b.reqs), keyMoved(k.key.ID))}
		return
	}
	for i := range b.reqs {
		req := &b.reqs[i]
		if c.results[i].Err != nil {
			continue // decided already: its key is in use
		}
		var looked idemLookup
		if b.looked != nil {
			looked = b.looked[i]
		}
		if res, done := k.replay(req, looked); done {
			c.results[i] = res
			continue
		}
		m, err := k.admit(req, now)
		if err != nil {
			if looked.asked {
				delete(k.idem, req.IdempotencyKey)
			}
			c.results[i] = switchboard.SubmitResult{Err: err}
			continue
		}
		c.news = append(c.news, switchboard.NewMessage{Message: m, IdempotencyKey: req.IdempotencyKey, RequestHash: req.RequestHash})
		c.entries = append(c.entries, k.hold(ctx, m))
		c.index = append(c.index, i)
		if req.IdempotencyKey != "" {
			c.idem = append(c.idem, req.IdempotencyKey)
		}
	}
	if len(c.news) > 0 {
		k.pendingCommits[c] = struct{}{}
		k.admissions++
		if k.paging && k.pageCut == "" {
			k.pageCut = c.entries[0].msg.ID // entries are in ID order
		}
		k.work.start() // ended by the requester once the Accept returns
	}
	b.reply <- c
}

// reserveLookups reserves the batch's Idempotency-Keys that are not in use
// and lists them in c.lookup for the requester to look up; a key in use by
// another request (being looked up or committed) is a conflict. It reports
// whether a look-up is needed.
func (k *keyActor) reserveLookups(b *submitBatch, c *commit) bool {
	for i := range b.reqs {
		key := b.reqs[i].IdempotencyKey
		switch {
		case key == "":
		case k.idem[key]:
			c.results[i] = switchboard.SubmitResult{Err: switchboard.Errorf(switchboard.ECONFLICT,
				"A request with this Idempotency-Key is still being processed.")}
		default:
			k.idem[key] = true
			c.lookup = append(c.lookup, i)
			c.idem = append(c.idem, key)
		}
	}
	return len(c.lookup) > 0
}

// errIdempotencyReused refuses a request whose Idempotency-Key an earlier,
// different request used.
var errIdempotencyReused = switchboard.Errorf(switchboard.EIDEMPOTENCY, "This Idempotency-Key was used with a different request.")

// replay answers a request whose Idempotency-Key was found (or whose
// look-up failed); the key stays reserved only for one to be admitted.
func (k *keyActor) replay(req *switchboard.SubmitRequest, l idemLookup) (switchboard.SubmitResult, bool) {
	if !l.asked || (l.err == nil && !l.found) {
		return switchboard.SubmitResult{}, false
	}
	delete(k.idem, req.IdempotencyKey)
	switch {
	case l.err != nil:
		return switchboard.SubmitResult{Err: k.unavailable(l.err)}, true
	case l.rec.RequestHash != req.RequestHash:
		return switchboard.SubmitResult{Err: errIdempotencyReused}, true
	}
	return switchboard.SubmitResult{Message: l.msg}, true
}

// lookupIdempotency reads, on the requester's goroutine, what the store
// knows of the Idempotency-Keys of reqs[idx...].
func (e *Engine) lookupIdempotency(ctx context.Context, key string, reqs []switchboard.SubmitRequest, idx []int) []idemLookup {
	out := make([]idemLookup, len(reqs))
	for _, i := range idx {
		l := &out[i]
		l.asked = true
		rec, err := e.store.Idempotency(ctx, key, reqs[i].IdempotencyKey)
		switch {
		case switchboard.ErrorCode(err) == switchboard.ENOTFOUND:
		case err != nil:
			l.err = err
		default:
			l.found, l.rec = true, rec
			l.msg, l.err = e.store.Message(ctx, rec.MessageID)
		}
	}
	return out
}

// admit validates a request against the key's limits and makes its message.
func (k *keyActor) admit(req *switchboard.SubmitRequest, now time.Time) (*switchboard.Message, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	m, err := k.e.newMessage(k.key, req, now)
	if err != nil {
		return nil, err
	}
	if k.queued >= k.key.MaxQueued {
		return nil, switchboard.Errorf(switchboard.EQUEUEFULL,
			"This key has %d messages waiting, its limit; try again when some are sent.", k.queued)
	}
	if ok, wait := k.bucket.Take(now, 1); !ok {
		err := switchboard.Errorf(switchboard.ERATELIMITED, "Rate limit of %g messages per second exceeded.", k.key.Rate)
		err.RetryAfter = wait
		return nil, err
	}
	id, err := k.newID(now)
	if err != nil {
		return nil, fmt.Errorf("key %s: message id: %w", k.key.ID, err)
	}
	m.ID = "msg_" + id.String()
	m.Fence = k.fence()
	k.setQueued(k.queued + 1)
	return m, nil
}

// newID returns a message ID above every ID the key has issued or loaded.
// IDs are the acceptance order that paging and per-destination order rely
// on: if the clock steps back, IDs keep the time they had reached, and
// within that millisecond they go on from the highest (paging reads only
// above lastLoaded, and would never reach a lower one; a fresh instance's
// entropy in a millisecond an earlier run used is as likely below as
// above that run's IDs).
func (k *keyActor) newID(now time.Time) (ulid.ULID, error) {
	id, err := ulid.New(max(ulid.Timestamp(now), k.lastID.Time()), k.ids)
	if err != nil || id.Compare(k.lastID) <= 0 {
		id, err = successor(k.lastID)
	}
	if err == nil {
		k.lastID = id
	}
	return id, err
}

// successor is the ULID right after u: its 128 bits plus one, so a full
// entropy carries into the next millisecond.
func successor(u ulid.ULID) (ulid.ULID, error) {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]++
		if u[i] != 0 {
			return u, nil
		}
	}
	return u, ulid.ErrBigTime // every bit was set: no ULID is above it
}

// loaded notes the IDs of messages read back from the store, perhaps
// written by an earlier run with a clock ahead of ours.
func (k *keyActor) loaded(lastID string) {
	if id, err := ulid.ParseStrict(strings.TrimPrefix(lastID, "msg_")); err == nil && id.Compare(k.lastID) > 0 {
		k.lastID = id
	}
}

// hold puts an admitted message in its destination's FIFO, unless the
// window or the engine's budget is full or older messages are still only on
// disk (then the store keeps it until paging reaches it, which keeps
// acceptance order).
func (k *keyActor) hold(ctx actor.Context, m *switchboard.Message) *entry {
	e := &entry{msg: m}
	if k.paged || k.inMemory >= k.e.cfg.KeyWindow || k.e.held.take(1, ctx.Self()) == 0 {
		k.paged = true
		return e
	}
	k.enqueue(e)
	return e
}

func (k *keyActor) enqueue(e *entry) {
	q := k.dests[e.msg.To]
	if q == nil {
		q = &destQueue{to: e.msg.To, lag: k.e.gauges.lagOf(k.e.router.primary(e.msg.To))}
		k.dests[e.msg.To] = q
	}
	q.lag.Add(1)
	q.entries = append(q.entries, e)
	e.held = true
	k.inMemory++
	k.lastLoaded = max(k.lastLoaded, e.msg.ID)
	k.list(q)
}

// committed takes back a commit its requester has written (or failed to):
// its messages may be sent, or leave the FIFO. A predecessor's commit is
// not this instance's business: its messages are in the store, where this
// instance counted and pages them.
func (k *keyActor) committed(ctx actor.Context, m *committed) {
	if m.c.inst != k.inst {
		return
	}
	delete(k.pendingCommits, m.c)
	k.landed++
	if ev := k.e.log.Debug(); ev.Enabled() {
		held := 0
		for _, e := range m.c.entries {
			if e.held {
				held++
			}
		}
		ev.Err(m.err).Str("key", k.key.ID).Uint64("inst", k.inst).Str("first", m.c.entries[0].msg.ID).
			Str("last", m.c.entries[len(m.c.entries)-1].msg.ID).Int("n", len(m.c.entries)).Int("held", held).
			Bool("paged", k.paged).Msg("commit landed")
	}
	k.pageDry = false // the frontier moved, and this commit's messages may be readable
	for _, key := range m.c.idem {
		delete(k.idem, key)
	}
	for _, e := range m.c.entries {
		if m.err != nil {
			e.dropped = true
			k.setQueued(k.queued - 1)
		} else {
			e.durable = true
		}
		if q := k.dests[e.msg.To]; q != nil {
			k.list(q) // to send it, or to pop it if dropped
		}
	}
	k.dispatch(ctx)
}

// newMessage builds a message from a request: encoding, segments, validity.
func (e *Engine) newMessage(key *switchboard.Key, req *switchboard.SubmitRequest, now time.Time) (*switchboard.Message, error) {
	coding, _, parts := gsm.Count(req.Body)
	if parts > e.cfg.MaxParts {
		return nil, switchboard.Errorf(switchboard.ETOOLONG, "The message body needs %d parts; at most %d are allowed.", parts, e.cfg.MaxParts)
	}
	validity := req.Validity
	if validity == 0 {
		validity = e.cfg.DefaultValidity
	}
	if validity > e.cfg.MaxValidity {
		return nil, switchboard.Errorf(switchboard.EINVALID, `"validity" must be at most %d seconds.`, int(e.cfg.MaxValidity/time.Second))
	}
	if !e.router.routable(req.To) {
		return nil, switchboard.Errorf(switchboard.ENOROUTE, "No route to %s.", req.To)
	}
	enc := "gsm7"
	if coding == gsm.UCS2 {
		enc = "ucs2"
	}
	return &switchboard.Message{
		Key: key.ID, To: req.To, From: req.From, Body: req.Body, Reference: req.Reference,
		CallbackURL: req.CallbackURL, Encoding: enc, Segments: parts, Status: switchboard.StatusAccepted,
		AcceptedAt: now, UpdatedAt: now, ExpiresAt: now.Add(validity),
		Events: []switchboard.Event{{Status: switchboard.StatusAccepted, At: now}},
	}, nil
}
