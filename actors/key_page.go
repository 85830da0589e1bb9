package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-sms/switchboard"
)

// pageRead brings a page of pending messages read from the store.
type pageRead struct {
	inst     uint64
	msgs     []*switchboard.Message
	err      error
	frontier string // the read's upper bound: the commit frontier
	// admissions and landed are the actor's counts of commits begun and
	// landed when the read was asked for.
	admissions, landed uint64
}

// page asks for pending messages from the store when the window has room;
// they are read off the actor's goroutine and arrive as a pageRead. Commits
// may land out of order, so it reads only messages below the lowest ID
// still being committed: an earlier message must not be skipped because
// its commit had not landed when a later one was read. dispatch calls it
// after every event, so it reads only when a read can find something:
// after a commit landed (committed clears pageDry), or when the last read
// stopped at the window rather than at the frontier.
func (k *keyActor) page(ctx actor.Context) {
	window := k.e.cfg.KeyWindow
	if !k.paged || k.paging || k.pageDry || k.inMemory > window/2 {
		return
	}
	frontier := k.commitFrontier()
	if frontier != "" && frontier <= k.lastLoaded {
		k.pageDry = true // nothing on disk below the frontier is unread
		return
	}
	// The engine's budget may grant less; with none, the budget wakes this
	// key when some is released.
	limit := k.e.held.take(window-k.inMemory, ctx.Self())
	if limit == 0 {
		return
	}
	k.paging, k.pageLimit = true, limit
	self, root, id, after := ctx.Self(), k.e.system.Root, k.key.ID, k.lastLoaded
	r := &pageRead{inst: k.inst, frontier: frontier, admissions: k.admissions, landed: k.landed}
	k.e.background(func(stop context.Context) {
		r.msgs, r.err = k.e.store.Pending(stop, id, after, frontier, limit)
		root.Send(self, r)
	})
}

// pageRead takes a page into memory. A predecessor's page is dropped (its
// budget went back when it was replaced).
func (k *keyActor) pageRead(ctx actor.Context, r *pageRead) {
	if r.inst != k.inst || !k.paging {
		return
	}
	k.paging = false
	limit := k.pageLimit
	if r.err != nil {
		k.e.held.release(limit)
		k.e.log.Error().Err(r.err).Str("key", k.key.ID).Msg("paging pending messages failed; will retry")
		k.setWake(ctx, k.e.now().Add(retryPaging))
		return
	}
	for _, m := range r.msgs {
		if !k.skipCanceled(m) {
			k.enqueue(newEntry(m))
		}
	}
	k.e.held.release(limit - len(r.msgs))
	if len(r.msgs) > 0 {
		k.loaded(k.lastLoaded)
	}
	if len(r.msgs) < limit {
		// The read found all there was below its bound. Reading again
		// finds more only once a commit lands: unless one landed during
		// the read (its messages may be above what the read saw).
		k.pageDry = r.landed == k.landed
		// With no commit in flight when it was asked for, and none begun
		// since, the read had no upper bound: the store has nothing
		// pending that is not in memory now. (Otherwise a commit that
		// landed first may have messages above the frontier, or one begun
		// during the read may not have been in it, so the key stays
		// paged.)
		if r.frontier == "" && r.admissions == k.admissions {
			k.paged = false
		}
	}
	k.dispatch(ctx)
}

// retryPaging is the pause before paging again after the store failed.
const retryPaging = time.Second

// commitFrontier returns the lowest message ID still being committed ("" if
// none).
func (k *keyActor) commitFrontier() string {
	frontier := ""
	for c := range k.pendingCommits {
		// Entries are in ID order, so the first is the commit's lowest.
		if first := c.entries[0].msg.ID; frontier == "" || first < frontier {
			frontier = first
		}
	}
	return frontier
}
