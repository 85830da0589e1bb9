package actors

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/concat"
)

// inbound handles mobile-originated messages: it finds the key that owns
// the destination number, keeps the parts of a long message in the store
// until they are all there (or the reassembly timeout passes), stores the
// message and queues its message.inbound callback.
type inbound struct {
	e       *Engine
	parts   *concat.Reassembler
	lanes   [groupLanes]groupLane
	stopCtx context.Context // ends at stop: store retries give up
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// inboundMaxGroups and inboundMaxBytes bound the long messages being
// reassembled at once, in messages and in the memory their parts take:
// beyond either the oldest is delivered as partial (docs/webhooks.md,
// Inbound messages).
const (
	inboundMaxGroups = 100_000
	inboundMaxBytes  = 64 << 20
)

// groupLanes is how many lanes the parts of long messages are spread over
// (lane): the parts of one message always take the same.
const groupLanes = 64

// laneOf is the lane of p's message.
func (in *inbound) laneOf(p switchboard.InboundPart) *groupLane {
	h := fnv.New32a()
	for _, s := range []string{p.Carrier, p.From, p.To} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write([]byte{byte(p.Concat.Ref >> 8), byte(p.Concat.Ref), p.Concat.Total})
	return &in.lanes[h.Sum32()%groupLanes]
}

// groupLane runs the parts given to it one at a time, in the order they
// were given (ticket order): a new message reusing the reference of one
// still waiting for a part is told apart by its first part, which must
// not be overtaken by its later ones. One at a time also keeps a message
// given up for a reused reference being stored (its parts removed by
// identity) while a part sharing one of those identities is stored.
type groupLane struct {
	mu            sync.Mutex
	turn          *sync.Cond
	next, serving uint64
}

// lane takes p's place in its message's lane, in the caller's order, and
// returns a function that waits for its turn and returns the one that
// ends it.
func (in *inbound) lane(p switchboard.InboundPart) (wait func() (done func())) {
	l := in.laneOf(p)
	l.mu.Lock()
	ticket := l.next
	l.next++
	l.mu.Unlock()
	return func() func() {
		l.mu.Lock()
		for l.serving != ticket {
			l.turn.Wait()
		}
		l.mu.Unlock()
		return func() {
			l.mu.Lock()
			l.serving++
			l.turn.Broadcast()
			l.mu.Unlock()
		}
	}
}

func newInbound(e *Engine) *inbound {
	in := &inbound{e: e, parts: concat.New(e.cfg.InboundTimeout, concat.Limits{Groups: inboundMaxGroups, Bytes: inboundMaxBytes})}
	for i := range in.lanes {
		in.lanes[i].turn = sync.NewCond(&in.lanes[i].mu)
	}
	in.stopCtx, in.cancel = context.WithCancel(context.Background())
	return in
}

// start reassembles the parts stored before a restart, then expires
// incomplete messages as their timeout passes. In a cluster the store's
// parts are the fleet's: each node adopts the parts of the numbers whose
// keys it owns once it knows the membership (adopt), instead.
func (in *inbound) start(ctx context.Context) error {
	if in.e.fleet == nil {
		// A message completed by stored parts is stored once here: if
		// the store cannot take it, Start fails rather than retrying
		// forever.
		if err := in.adopt(ctx, func(switchboard.InboundPart) bool { return true }, in.storeOnce); err != nil {
			return err
		}
	}
	tick := in.e.cfg.InboundTimeout / 10
	stop := in.stopCtx
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		t := time.NewTicker(max(tick, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-stop.Done():
				return
			case now := <-t.C:
				for _, p := range in.parts.ExpiredParts(now) {
					in.inLane(p, func() []concat.Assembled {
						if a, ok := in.parts.TakeExpired(p, now); ok {
							return []concat.Assembled{a}
						}
						return nil
					})
				}
			}
		}
	}()
	return nil
}

// adopt feeds the stored parts that mine selects and the reassembler does
// not hold yet to it, and stores (with store) the messages they complete.
func (in *inbound) adopt(ctx context.Context, mine func(switchboard.InboundPart) bool, store func(concat.Assembled) error) error {
	parts, err := in.e.store.InboundParts(ctx)
	if err != nil {
		return err
	}
	var serr error
	for _, p := range parts {
		if !mine(p) {
			continue
		}
		done := in.enterLane(p) // what it completes is stored in its lane
		if in.parts.Seen(p) {
			done()
			continue
		}
		added, err := in.parts.Add(p)
		if err != nil {
			done()
			in.e.log.Warn().Err(err).Str("carrier", p.Carrier).Msg("stored inbound part does not fit its message; left stored")
			continue
		}
		for _, a := range append(added.Evicted, complete(added)...) {
			if serr = store(a); serr != nil {
				break
			}
		}
		done()
		if serr != nil {
			return serr
		}
	}
	return nil
}

func (in *inbound) stop() {
	in.cancel()
	in.wg.Wait()
}

// complete returns the message a part completed, if it did.
func complete(a concat.Added) []concat.Assembled {
	if a.Complete {
		return []concat.Assembled{a.Message}
	}
	return nil
}

// add feeds a stored part to the reassembler and stores what completes
// (and a group evicted to make room, as partial).
func (in *inbound) add(p switchboard.InboundPart) {
	added, err := in.parts.Add(p)
	if err != nil {
		in.e.log.Warn().Err(err).Str("carrier", p.Carrier).Msg("inbound part does not fit its message; kept stored")
		return
	}
	for _, a := range append(added.Evicted, complete(added)...) {
		in.storeOrRetry(a) // here, in the part's lane
	}
}

// storeOrRetry stores an assembled message once, here (in its lane), and
// if that fails goes on retrying in the background, outside the lane, so
// as not to hold up the lane's other messages meanwhile.
func (in *inbound) storeOrRetry(a concat.Assembled) {
	if in.storeOnce(a) != nil {
		in.e.background(func(context.Context) { in.store(a) })
	}
}

// readd puts back the parts of a message that could not be stored, to
// wait for their missing parts again.
func (in *inbound) readd(a concat.Assembled) {
	for _, p := range a.Parts {
		in.add(p)
	}
}

// onInbound takes one part off the wire; ack answers the SMSC once it is
// stored (an error makes the SMSC send it again).
func (e *Engine) onInbound(p switchboard.InboundPart, ack func(error)) {
	key, ok := e.cfg.Keys.ByNumber(p.To)
	if !ok {
		e.stats.inboundUnknown.Add(1)
		e.log.Warn().Str("carrier", p.Carrier).Str("to", p.To).Msg("inbound message to a number no key owns; acknowledged, not stored")
		ack(nil)
		return
	}
	if e.fleet != nil {
		// The parts of one message may come in on binds of several
		// nodes: the node that owns the number's key reassembles them.
		if owner := e.fleet.owner(kindKey, key.ID); owner != e.fleet.address {
			if owner == "" {
				ack(switchboard.Errorf(switchboard.EUNAVAILABLE, "no node owns key %s now", key.ID))
				return
			}
			e.fleet.inboundToOwner(owner, p, ack)
			return
		}
	}
	e.inboundLocal(p, ack)
}

// inboundLocal stores and reassembles an inbound part on this node.
func (e *Engine) inboundLocal(p switchboard.InboundPart, ack func(error)) {
	var wait func() func()
	if p.Concat != nil && p.Concat.Total > 1 {
		wait = e.inbound.lane(p) // here, in the order parts come
	}
	e.background(func(context.Context) {
		if wait != nil {
			done := wait()
			defer done()
		}
		if p.Concat == nil || p.Concat.Total <= 1 {
			added, err := e.inbound.parts.Add(p)
			if err == nil {
				err = e.inbound.storeOnce(added.Message)
			}
			ack(err)
			return
		}
		if p.Concat.Seq == 0 || p.Concat.Seq > p.Concat.Total {
			ack(switchboard.Errorf(switchboard.EINVALID, "part %d of %d", p.Concat.Seq, p.Concat.Total))
			return
		}
		if old, ok := e.inbound.parts.Displace(p); ok {
			// The sender reused the reference of a message still waiting
			// for a part: that one is stored as it stands first, which
			// removes its stored parts, one of which p would replace.
			if err := e.inbound.storeOnce(old); err != nil {
				e.inbound.readd(old)
				ack(err)
				return
			}
		}
		if e.inbound.parts.Seen(p) {
			ack(nil) // a repeat: the first copy is stored or its message is
			return
		}
		if err := e.store.AddInboundPart(context.Background(), p); err != nil {
			ack(err)
			return
		}
		ack(nil)
		e.inbound.add(p)
	})
}

// inLane runs take in p's lane, and stores what it takes out of the
// reassembler there (its first try): no part that shares a stored
// identity with one of those messages' parts is stored meanwhile. The
// retries of a store that fails go on outside the lane.
func (in *inbound) inLane(p switchboard.InboundPart, take func() []concat.Assembled) {
	done := in.enterLane(p)
	defer done()
	for _, a := range take() {
		in.storeOrRetry(a)
	}
}

// enterLane waits for p's turn in its message's lane and returns what
// ends it; a part of no long message has no lane.
func (in *inbound) enterLane(p switchboard.InboundPart) (done func()) {
	if p.Concat == nil {
		return func() {}
	}
	return in.lane(p)()
}

// store stores an assembled message, retrying while the store fails: its
// parts are stored already, so a failure here loses nothing, but a
// message left unassembled would wait for the next restart.
func (in *inbound) store(a concat.Assembled) {
	b := switchboard.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		err := in.storeOnce(a)
		if err == nil {
			return
		}
		in.e.log.Error().Err(err).Str("carrier", a.Carrier).Msg("storing an inbound message failed; retrying")
		select {
		case <-in.stopCtx.Done():
			return // its parts stay stored; the next start assembles them
		case <-in.e.bgStop.Done():
			return
		case <-time.After(b.Next()):
		}
	}
}

func (in *inbound) storeOnce(a concat.Assembled) error {
	e := in.e
	key, ok := e.cfg.Keys.ByNumber(a.To)
	if !ok {
		// The number belonged to a key when its parts were stored and to
		// none now (the configuration changed across a restart).
		e.stats.inboundUnknown.Add(int64(len(a.Parts)))
		e.log.Warn().Str("carrier", a.Carrier).Str("to", a.To).Int("parts", len(a.Parts)).
			Msg("inbound message to a number no key owns any more; its stored parts are removed")
		return e.store.DeleteInboundParts(context.Background(), a.Parts)
	}
	id := inboundID(a)
	err := in.accept(key, a, id)
	if switchboard.ErrorCode(err) != switchboard.ECONFLICT {
		return err
	}
	// The ID is taken: by this message, stored by an earlier run whose
	// removal of its parts did not land (a backend that removes them in a
	// write of their own), when the parts are removed now and no second
	// message is made of them; or by what is no message (an index row a
	// write cut short left, a write being undone), when it is stored
	// under a new ID.
	switch _, merr := e.store.Message(context.Background(), id); {
	case merr == nil:
		e.log.Info().Str("carrier", a.Carrier).Str("message", id).Msg("inbound message stored before; its parts left behind are removed")
		return e.store.DeleteInboundParts(context.Background(), a.Parts)
	case switchboard.ErrorCode(merr) == switchboard.ENOTFOUND:
		return in.accept(key, a, "msg_"+ulid.Make().String())
	default:
		return merr
	}
}

// accept stores the inbound message a makes, under id, with its callback.
func (in *inbound) accept(key *switchboard.Key, a concat.Assembled, id string) error {
	e := in.e
	m := inboundMessage(key, a, id)
	var cb *switchboard.Callback
	var token uint64
	if key.InboundURL != "" {
		var ids []string
		ids, token = e.ids.begin(1, e.now())
		if c, ok := switchboard.InboundCallback(ids[0], key.InboundURL, m); ok {
			cb = &c
		}
	}
	err := e.store.AcceptInbound(context.Background(), m, cb, a.Parts)
	e.ids.end(token) // before the hint: the endpoint may read up to here
	if err != nil {
		return err
	}
	e.stats.inbound.Add(1)
	if cb != nil {
		e.webhooks.hint(cb.Endpoint)
	}
	return nil
}

// inboundID is an inbound message's ID. A long message's is the same each
// time its parts are assembled: its time the first part's, its entropy a
// hash of the parts' identity (a phone does not reuse a reference within
// a millisecond), so parts that outlived their stored message are not
// made into a second one (AcceptInbound refuses the ID). A one-part
// message, which has no identity of its own (two may come in one
// millisecond), gets a random one.
func inboundID(a concat.Assembled) string {
	if len(a.Parts) == 0 || a.Parts[0].Concat == nil {
		return "msg_" + ulid.Make().String()
	}
	c := a.Parts[0].Concat
	// Milliseconds: what every store keeps of a part's ReceivedAt.
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d\x00%d\x00%d", a.Carrier, a.From, a.To, c.Ref, c.Total, a.ReceivedAt.UnixMilli()))
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(a.ReceivedAt)) // fails only past the year 10889
	_ = id.SetEntropy(h[:10])
	return "msg_" + id.String()
}

func inboundMessage(key *switchboard.Key, a concat.Assembled, id string) *switchboard.Message {
	at := a.ReceivedAt
	return &switchboard.Message{
		ID: id, Key: key.ID,
		To: "+" + switchboard.NumberDigits(a.To), From: a.From, Body: a.Body,
		Encoding: a.Encoding, Segments: a.Segments, Status: switchboard.StatusReceived,
		AcceptedAt: at, UpdatedAt: at, Carrier: a.Carrier,
		Direction: switchboard.DirectionInbound, Partial: a.Partial,
		Events: []switchboard.Event{{Status: switchboard.StatusReceived, At: at, Carrier: a.Carrier}},
	}
}
