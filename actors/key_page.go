package actors

import (
	"context"
	"sort"
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
	after    string // the read's lower bound
	// admissions and landed are the actor's counts of commits begun and
	// landed when the read was asked for.
	admissions, landed uint64
}

// page asks for pending messages from the store when the window has room;
// they are read off the actor's goroutine and arrive as a pageRead. Commits
// may land out of order, so a page holds only messages below the lowest ID
// still being committed, when the read is asked for (its upper bound) or
// begun while it is read (pageCut): an earlier message must not be skipped
// because its commit had not landed when a later one was read. dispatch calls it
// after every event, so it reads only when a read can find something:
// after a commit landed (committed clears pageDry), or when the last read
// stopped at the window rather than at the frontier; and not within
// retryPaging of a read that failed, however many events come meanwhile.
func (k *keyActor) page(ctx actor.Context, now time.Time) {
	window := k.e.cfg.KeyWindow
	if !k.paged || k.paging || k.pageDry || k.inMemory > window/2 {
		return
	}
	if now.Before(k.pageAfter) {
		k.setWake(ctx, k.pageAfter) // the wake set on the failure may have given way to an earlier one
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
	k.paging, k.pageLimit, k.pageCut = true, limit, ""
	self, root, id, after := ctx.Self(), k.e.system.Root, k.key.ID, k.lastLoaded
	r := &pageRead{inst: k.inst, frontier: frontier, after: after, admissions: k.admissions, landed: k.landed}
	k.e.background(func(stop context.Context) {
		r.msgs, r.err = k.e.store.Pending(stop, id, after, frontier, limit)
		root.Send(self, r)
	})
}

// pageRead takes a page into memory, up to the first message admitted
// while it was read (pageCut). A predecessor's page is dropped (its budget
// went back when it was replaced).
func (k *keyActor) pageRead(ctx actor.Context, r *pageRead) {
	if r.inst != k.inst || !k.paging {
		return
	}
	k.paging = false
	limit := k.pageLimit
	if ev := k.e.log.Debug(); ev.Enabled() {
		ev.Str("key", k.key.ID).Uint64("inst", k.inst).Str("after", r.after).Str("before", r.frontier).
			Int("limit", limit).Int("read", len(r.msgs)).Err(r.err).Msg("page read")
	}
	if r.err != nil {
		k.e.held.release(limit)
		k.e.log.Error().Err(r.err).Str("key", k.key.ID).Msg("paging pending messages failed; will retry")
		k.pageAfter = k.e.now().Add(retryPaging)
		k.setWake(ctx, k.pageAfter)
		return
	}
	msgs := r.msgs
	if k.pageCut != "" {
		// Commits begun during the read may have landed in any order: it
		// may hold a later one's messages and not an earlier one's. Only
		// what lies below the first of them is complete; the rest is read
		// again once they have landed (paging reads only above lastLoaded).
		msgs = msgs[:sort.Search(len(msgs), func(i int) bool { return msgs[i].ID >= k.pageCut })]
	}
	for _, m := range msgs {
		if !k.skipCanceled(m) {
			k.enqueue(newEntry(m))
		}
	}
	k.e.held.release(limit - len(msgs))
	if len(msgs) > 0 {
		k.loaded(k.lastLoaded)
	}
	if len(r.msgs) < limit || len(msgs) < len(r.msgs) {
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
			k.recount()
		}
	}
	k.dispatch(ctx)
}

// recount corrects the count of pending messages once every one of them is
// in memory: the store's count, taken at the start, may include entries
// no longer pending (a clean-up that a crash or a failure cut short),
// which no page brings in and nothing else would take off, and which
// would refuse messages early (queue_full) and keep the actor from
// retiring. Only downwards: what is in memory is pending.
func (k *keyActor) recount() {
	if k.queued > k.inMemory {
		k.e.log.Debug().Str("key", k.key.ID).Int("counted", k.queued).Int("pending", k.inMemory).
			Msg("the store counted pending messages that were not; counted again")
		k.setQueued(k.inMemory)
	}
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
