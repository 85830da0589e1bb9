package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// budget is a count of units that key actors share, with a line for the
// keys that found it spent. Two bound the engine as a whole where each key
// bounds only itself:
//
//   - held: messages in memory. Each key's window (Config.KeyWindow) bounds
//     one key; with many keys the windows alone add up past any memory
//     (10,000 keys × 1,000), so every message a key takes into memory also
//     takes one unit. A key that finds none keeps its messages in the store
//     (it is "paged", as when its own window is full).
//   - sending: submits handed to the binds and not yet answered. Each key
//     may have 512 out; with many keys they overflow the binds' queues,
//     and a bounced submit costs a retry timer and a second try. A key that
//     finds none stops sending until woken.
//
// A key that got less than it asked for joins the line once; released
// units wake the line in order, and a woken key that needs none passes the
// wake-up on (pass), so no wake-up is lost while units are free.
type budget struct {
	mu      sync.Mutex
	held    int
	max     int
	waiting []*actor.PID
	queued  map[*actor.PID]bool
	wake    func(*actor.PID, *budget) // sends budgetFree
}

// budgetFree tells a key actor waiting in line that b has room.
type budgetFree struct{ b *budget }

func newBudget(max int, wake func(*actor.PID, *budget)) *budget {
	return &budget{max: max, queued: make(map[*actor.PID]bool), wake: wake}
}

// take grants up to want units. A key granted fewer than it wanted joins
// the line (once) to be woken when units are released.
func (b *budget) take(want int, key *actor.PID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(want, b.max-b.held)
	n = max(n, 0)
	b.held += n
	if n < want && !b.queued[key] {
		b.queued[key] = true
		b.waiting = append(b.waiting, key)
	}
	return n
}

// release gives back n units and wakes keys in line: one for every
// wakeBatch units free, so a few releases do not wake every key at once.
func (b *budget) release(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.held -= n
	var wake []*actor.PID
	for free := b.max - b.held; len(b.waiting) > 0 && free > 0; free -= wakeBatch {
		wake = append(wake, b.next())
	}
	b.mu.Unlock()
	for _, key := range wake {
		b.wake(key, b)
	}
}

// pass wakes the next key in line if units are free. A woken key calls it
// once it has taken what it wanted (maybe nothing), so the wake-up goes on
// down the line while units are left and none is lost to a key that needed
// none.
func (b *budget) pass() {
	b.mu.Lock()
	var next *actor.PID
	if len(b.waiting) > 0 && b.held < b.max {
		next = b.next()
	}
	b.mu.Unlock()
	if next != nil {
		b.wake(next, b)
	}
}

// next takes the first key out of the line; b.mu is held and the line is
// not empty.
func (b *budget) next() *actor.PID {
	key := b.waiting[0]
	b.waiting[0] = nil
	b.waiting = b.waiting[1:]
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	delete(b.queued, key)
	return key
}

// wakeBatch is how many free units each woken key is counted to use.
const wakeBatch = 256

// inUse reports the units taken.
func (b *budget) inUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
