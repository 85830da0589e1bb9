package actors

import (
	cryptorand "crypto/rand"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// eventIDs hands out callback event IDs ("evt_" and a ULID, increasing)
// and knows which of them are still being written. Writes land out of
// order (several batches commit at once), so a reader of the outbox must
// not move past an ID whose write is still in flight, or it would skip a
// callback that lands later below it. frontier says how far is safe.
type eventIDs struct {
	mu       sync.Mutex
	entropy  *ulid.MonotonicEntropy
	inflight map[uint64]string // write token → its lowest ID
	next     uint64
	last     time.Time // the latest timestamp used
	issued   string    // the highest ID handed out (at first: below any to come)
}

func newEventIDs() *eventIDs {
	var seed [32]byte
	_, _ = cryptorand.Read(seed[:])
	// IDs stored by an earlier run are older than this process; any ID
	// this process hands out is above this one (same millisecond or
	// later, entropy above zero).
	now := time.Now()
	return &eventIDs{entropy: ulid.Monotonic(rand.NewChaCha8(seed), 0), inflight: make(map[uint64]string),
		last: now, issued: eventIDFloor(now)}
}

// begin returns n new IDs for one write and a token for end. IDs increase
// in the order begin is called: a caller's clock reading that is older
// than one already used (goroutines race to the lock) is moved up, or a
// later write could get lower IDs than an earlier one a reader has passed.
func (g *eventIDs) begin(n int, now time.Time) (ids []string, token uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.last) {
		now = g.last
	}
	ids = make([]string, n)
	for i := range ids {
		id, err := ulid.New(ulid.Timestamp(now), g.entropy)
		if err != nil {
			// The monotonic entropy ran out within this millisecond (2^80
			// IDs); move to the next one.
			now = now.Add(time.Millisecond)
			id = ulid.MustNew(ulid.Timestamp(now), g.entropy)
		}
		ids[i] = "evt_" + id.String()
	}
	g.last = now
	if n > 0 {
		g.issued = ids[n-1]
	}
	g.next++
	if n > 0 {
		g.inflight[g.next] = ids[0]
	}
	return ids, g.next
}

// end marks a write begun with token as landed (or failed).
func (g *eventIDs) end(token uint64) {
	g.mu.Lock()
	delete(g.inflight, token)
	g.mu.Unlock()
}

// frontier returns a bound below which every ID this process used is in
// the store: the lowest ID still being written or, with none in flight,
// the later of just above the highest handed out and the first ID of now.
// A write that begins after this call gets IDs at or above it (begin
// moves its time up to now), so one that lands before another that began
// earlier is not read past; and IDs other nodes made before now are not
// held back by a node that has written nothing since. "evt_X-2" (a second
// callback of one write) sorts below X's bound too.
func (g *eventIDs) frontier(now time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	low := ""
	for _, id := range g.inflight {
		if low == "" || id < low {
			low = id
		}
	}
	if low == "" {
		if now.After(g.last) {
			g.last = now
		}
		low = max(g.issued+"\x7f", eventIDFloor(now))
	}
	return low
}

// eventIDFloor returns the least event ID made at t: every ID made
// earlier sorts below it.
func eventIDFloor(t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	return "evt_" + id.String()
}
