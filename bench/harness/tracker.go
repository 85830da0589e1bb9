package harness

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-sms/switchboard/http/sink"
)

// tracker follows every accepted message to its final callback: it keeps
// each accepted message's accept time by message id and, when the sink
// receives the message's final status (delivered, undeliverable, expired,
// rejected, failed), records accept → callback in the end-to-end
// histogram and counts the message delivered. Messages still pending after
// the drain are lost.
type tracker struct {
	lat *latencies // end to end, µs

	mu      sync.Mutex
	pending map[string]time.Time // accepted, no final callback yet
	// early holds finals whose accept the harness had not recorded yet
	// (the callback can beat the 202 to the load generator), and finals for
	// messages it never saw accepted (a request that timed out after the
	// gateway accepted it; a second final status for one message).
	early    map[string]time.Time
	byStatus map[string]int64

	accepted     atomic.Int64
	finals       atomic.Int64 // final callbacks matched to an accepted message
	intermediate atomic.Int64 // non-final callbacks (submitted, queued; Kannel's SMSC ack)
	iFinals      atomic.Int64 // since the last progress tick
}

func newTracker() *tracker {
	return &tracker{lat: newLatencies(e2eMax), pending: map[string]time.Time{}, early: map[string]time.Time{},
		byStatus: map[string]int64{}}
}

// finalStatus reports whether a callback status ends a message.
func finalStatus(s string) bool {
	switch s {
	case "delivered", "undeliverable", "expired", "rejected", "failed":
		return true
	}
	return false
}

// accept notes that message id was accepted at t.
func (k *tracker) accept(id string, at time.Time, shard int) {
	k.accepted.Add(1)
	k.mu.Lock()
	if cb, ok := k.early[id]; ok {
		delete(k.early, id)
		k.mu.Unlock()
		k.final(cb.Sub(at), shard)
		return
	}
	k.pending[id] = at
	k.mu.Unlock()
}

// onEvent is the sink's OnEvent.
func (k *tracker) onEvent(ev sink.Event) {
	if !finalStatus(ev.Status) {
		k.intermediate.Add(1)
		return
	}
	k.mu.Lock()
	k.byStatus[ev.Status]++
	at, ok := k.pending[ev.MessageID]
	if !ok {
		k.early[ev.MessageID] = ev.Received
		k.mu.Unlock()
		return
	}
	delete(k.pending, ev.MessageID)
	k.mu.Unlock()
	k.final(ev.Received.Sub(at), int(ev.Received.UnixNano()))
}

func (k *tracker) final(d time.Duration, shard int) {
	k.finals.Add(1)
	k.iFinals.Add(1)
	k.lat.record(shard&0xffff, d.Microseconds(), true)
}

// waiting is how many accepted messages have no final callback yet.
func (k *tracker) waiting() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pending)
}

// unmatched is how many final callbacks matched no accepted message.
func (k *tracker) unmatched() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.early)
}

func (k *tracker) statuses() map[string]int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int64, len(k.byStatus))
	for s, n := range k.byStatus {
		out[s] = n
	}
	return out
}

// waitAll waits until no accepted message is waiting or until stop is
// closed or the deadline passes; it reports whether none is waiting.
func (k *tracker) waitAll(deadline time.Time, stop <-chan struct{}) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if k.waiting() == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-stop:
			return k.waiting() == 0
		case <-tick.C:
		}
	}
}
