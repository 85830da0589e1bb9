package actors

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// registry is the seam where a key's identity becomes the PID of its actor.
// Single-node, it spawns locally on first use; a cluster places the actor
// by identity instead, and nothing that calls lookup changes.
type registry struct {
	e    *Engine
	mu   sync.Mutex
	keys map[string]*regEntry
}

// regEntry is one key's place in the registry. It outlives the actor
// instances of the key: protoactor replaces an instance that panicked with
// a new one under the same PID, and an actor that stopped is spawned again
// on the next request, with the same entry.
type regEntry struct {
	pid   *actor.PID // nil after the actor stopped
	users int        // requests on their way to the actor
	// fence is the fencing token of the key's lease while an actor of
	// this node holds it (0 otherwise), for the key's writes made outside
	// its actor (receipts).
	fence atomic.Int64

	// works holds the outstanding work of each instance that has not
	// settled: a new instance reads the store only once every earlier
	// one's work is done (see work).
	works []*work
}

// work counts what one actor instance started that ends outside it:
// Accepts being written by requesters, and submits at the binds until
// their outcome is recorded. Until a replaced instance's work is done the
// store does not show its effects (a message being committed is not yet
// pending; one in flight is still pending), so its successor waits before
// it counts and pages, or it would miss the first and send the second
// again.
type work struct {
	n       atomic.Int64
	retired atomic.Bool // a successor took over
	// lost: the instance lost its lease on the key; its records, fenced
	// by the new owner, are not worth retrying.
	lost atomic.Bool
	// settled tells the successor (by PID) that this work is done.
	settled func()
}

func (w *work) start() { w.n.Add(1) }

func (w *work) end() {
	if w.n.Add(-1) == 0 && w.retired.Load() {
		w.settled()
	}
}

func (w *work) done() bool { return w.n.Load() == 0 }

func newRegistry(e *Engine) *registry { return &registry{e: e, keys: make(map[string]*regEntry)} }

// lookup returns the key's actor, spawning it if needed, and counts the
// caller as a user until done. Once the engine is stopping it spawns
// none and returns nil (the caller is not counted): Engine.Stop drains
// the actors running when it begins, and one spawned after would be left
// undrained, its key's lease not given up.
func (r *registry) lookup(keyID string) *actor.PID {
	r.mu.Lock()
	defer r.mu.Unlock()
	ent := r.keys[keyID]
	if (ent == nil || ent.pid == nil) && r.e.stopping.Load() {
		return nil
	}
	if ent == nil {
		ent = &regEntry{}
		r.keys[keyID] = ent
	}
	if ent.pid == nil {
		key, _ := r.e.cfg.Keys.Key(keyID)
		// protoactor calls the producer again for the instance that
		// replaces one that panicked: it takes the key's settings as they
		// are then, not as they were at the spawn.
		props := actor.PropsFromProducer(func() actor.Actor {
			if now, ok := r.e.cfg.Keys.Key(keyID); ok {
				key = now
			}
			return newKeyActor(r.e, key, ent)
		})
		ent.pid = r.e.system.Root.Spawn(props)
	}
	ent.users++
	return ent.pid
}

// wake makes sure the key's actor runs (to page in its pending
// messages), without a request waiting on it: it may retire when idle.
func (r *registry) wake(keyID string) {
	if r.lookup(keyID) != nil {
		r.done(keyID)
	}
}

func (r *registry) done(keyID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ent := r.keys[keyID]; ent != nil && ent.users > 0 {
		ent.users--
	}
}

// retire forgets an idle actor if no request is on its way to it and no
// earlier instance's work is outstanding; the actor stops only if this
// returns true.
func (r *registry) retire(keyID string, pid *actor.PID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ent := r.keys[keyID]
	if ent == nil || !ent.pid.Equal(pid) || ent.users > 0 {
		return false
	}
	for _, w := range ent.works {
		if !w.done() {
			return false
		}
	}
	delete(r.keys, keyID)
	return true
}

// stopped forgets a PID whose actor stopped without retiring (its
// supervisor gave up on it), so the next request spawns a new one rather
// than waiting for a dead letter.
func (r *registry) stopped(keyID string, pid *actor.PID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ent := r.keys[keyID]; ent != nil && ent.pid.Equal(pid) {
		ent.pid = nil
	}
}

// begin registers a new instance's work with its entry: earlier instances'
// work is marked retired, and begin reports whether all of it is done.
// When some is not, settled is called (perhaps more than once) as it ends.
func (r *registry) begin(ent *regEntry, w *work) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.settled = func() { r.notify(ent) }
	for _, old := range ent.works {
		old.retired.Store(true)
	}
	ent.works = append(ent.unsettled(), w)
	return len(ent.works) == 1
}

// notify tells the entry's current actor that earlier work has ended.
func (r *registry) notify(ent *regEntry) {
	r.mu.Lock()
	pid := ent.pid
	r.mu.Unlock()
	if pid != nil {
		r.e.system.Root.Send(pid, &predecessorSettled{})
	}
}

// settled reports whether every instance before w has done its work,
// dropping those that have.
func (r *registry) settled(ent *regEntry, w *work) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ent.works = ent.unsettled()
	for _, old := range ent.works {
		if old != w {
			return false
		}
	}
	return true
}

// unsettled returns the works that are current or not done; r.mu is held.
func (ent *regEntry) unsettled() []*work {
	out := ent.works[:0]
	for _, w := range ent.works {
		if !w.retired.Load() || !w.done() {
			out = append(out, w)
		}
	}
	return out
}

func (r *registry) each(f func(*actor.PID)) {
	r.eachKey(func(_ string, pid *actor.PID) { f(pid) })
}

// eachKey calls f with each running key actor and its key's id.
func (r *registry) eachKey(f func(id string, pid *actor.PID)) {
	r.mu.Lock()
	type running struct {
		id  string
		pid *actor.PID
	}
	var all []running
	for id, ent := range r.keys {
		if ent.pid != nil {
			all = append(all, running{id, ent.pid})
		}
	}
	r.mu.Unlock()
	for _, k := range all {
		f(k.id, k.pid)
	}
}

// fence returns the token of the key's lease held on this node, 0 if none.
func (r *registry) fence(keyID string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ent := r.keys[keyID]; ent != nil {
		return ent.fence.Load()
	}
	return 0
}
