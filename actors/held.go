package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// heldBudget bounds how many messages all key actors hold in memory
// together. Each key's window (EngineConfig.KeyWindow) bounds one key; with
// many keys the windows alone add up past any memory (10,000 keys × 1,000),
// so every message a key actor takes into memory also takes one unit here.
// A key that finds the budget spent keeps its messages in the store (it is
// "paged", as when its own window is full) and waits in line; released
// units wake the keys in line, in order, to page in again.
type heldBudget struct {
	mu      sync.Mutex
	held    int
	max     int
	waiting []*actor.PID
	queued  map[*actor.PID]bool
	wake    func(*actor.PID) // sends budgetFree
}

// budgetFree tells a key actor waiting in line that the budget has room.
type budgetFree struct{}

func newHeldBudget(max int, wake func(*actor.PID)) *heldBudget {
	return &heldBudget{max: max, queued: make(map[*actor.PID]bool), wake: wake}
}

// take grants up to want units. A key granted fewer than it wanted joins
// the line (once) to be woken when units are released.
func (b *heldBudget) take(want int, key *actor.PID) int {
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
func (b *heldBudget) release(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.held -= n
	var wake []*actor.PID
	for free := b.max - b.held; len(b.waiting) > 0 && free > 0; free -= wakeBatch {
		key := b.waiting[0]
		b.waiting[0] = nil
		b.waiting = b.waiting[1:]
		delete(b.queued, key)
		wake = append(wake, key)
	}
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	b.mu.Unlock()
	for _, key := range wake {
		b.wake(key)
	}
}

// pass wakes the next key in line if units are free. A woken key calls it
// once it has taken what it wanted (maybe nothing), so the wake-up goes on
// down the line while units are left and none is lost to a key that needed
// none.
func (b *heldBudget) pass() {
	b.mu.Lock()
	var next *actor.PID
	if len(b.waiting) > 0 && b.held < b.max {
		next = b.waiting[0]
		b.waiting[0] = nil
		b.waiting = b.waiting[1:]
		delete(b.queued, next)
	}
	b.mu.Unlock()
	if next != nil {
		b.wake(next)
	}
}

// wakeBatch is how many free units each woken key is counted to use.
const wakeBatch = 256

// inUse reports the units taken.
func (b *heldBudget) inUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
