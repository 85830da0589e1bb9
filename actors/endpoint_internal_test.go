package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
)

// newTestEndpointActor returns an endpoint actor outside any mailbox, for
// calling its handlers directly at a clock the test sets; its timers
// wake a no-op actor.
func newTestEndpointActor(t *testing.T, now *time.Time) *endpointActor {
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	e := &Engine{cfg: Config{Now: func() time.Time { return *now }}, log: zerolog.Nop(), system: sys}
	a := newEndpointActor(&dispatcher{e: e}, "https://hooks.example.com/sms", &endpointRef{})
	a.self = sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	return a
}

func testCallback(id string) switchboard.Callback {
	return switchboard.Callback{ID: id, MessageID: "msg_" + id, Key: "k"}
}

// A callback whose removal landed while a read was on its way (a read
// from the outbox's head may have been taken before it) is not taken
// into memory again, where it would be posted a second time.
func TestARemovalDuringAReadIsNotUndone(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a := newTestEndpointActor(t, &now)
	a.loading = true
	a.finished([]string{"evt_A"})
	a.loaded(&loaded{cbs: []switchboard.Callback{testCallback("evt_A"), testCallback("evt_B")}, frontier: "evt_\x7f", limit: 10})
	if _, ok := a.known["evt_A"]; ok {
		t.Fatal("a callback removed while the read was on its way is in memory again")
	}
	if _, ok := a.known["evt_B"]; !ok {
		t.Fatal("the read's other callback was not taken")
	}
	if len(a.removedWhileLoading) != 0 {
		t.Fatalf("%d removals kept after the read, want none", len(a.removedWhileLoading))
	}
}

// In a cluster, a read whose bound lies below the last hint's time is
// followed by one more once the hint is older than the write lag, and
// only one; a read above it ends the reading.
func TestALaggedReadBelowAHintReadsOnceMore(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a := newTestEndpointActor(t, &now)
	hint := now
	a.dirty, a.hintedAt = true, hint

	a.loading = true
	a.loaded(&loaded{frontier: "evt_\x7f", limit: 10, before: eventIDFloor(now.Add(-remoteWriteLag))})
	if !a.dirty || !a.blocked {
		t.Fatalf("after a read below the hint: dirty %v blocked %v, want both", a.dirty, a.blocked)
	}
	if want := hint.Add(remoteWriteLag + lagMargin); !a.wakeAt.Equal(want) {
		t.Fatalf("wakes at %v, want %v (once the hint is older than the lag)", a.wakeAt, want)
	}

	now = a.wakeAt
	a.blocked = false
	a.loading = true
	a.loaded(&loaded{frontier: "evt_\x7f", limit: 10, before: eventIDFloor(now.Add(-remoteWriteLag))})
	if a.dirty || a.blocked {
		t.Fatalf("after a read above the hint: dirty %v blocked %v, want neither", a.dirty, a.blocked)
	}

	// Without a hint, a lagged read that finds nothing is complete.
	b := newTestEndpointActor(t, &now)
	b.dirty, b.loading = true, true
	b.loaded(&loaded{frontier: "evt_\x7f", limit: 10, before: eventIDFloor(now.Add(-remoteWriteLag))})
	if b.dirty || b.blocked {
		t.Fatalf("no hint: dirty %v blocked %v, want neither", b.dirty, b.blocked)
	}
}

// selfOnly is an actor.Context for calling load directly: it knows its
// Self and nothing else.
type selfOnly struct {
	actor.Context
	self *actor.PID
}

func (c selfOnly) Self() *actor.PID { return c.self }

// readAndSchedule is what Receive does after every message, as far as
// reading the outbox goes.
func readAndSchedule(a *endpointActor, ctx actor.Context) {
	a.load(ctx)
	a.schedule(ctx)
}

// newReadingTestActor is newTestEndpointActor with a dispatcher whose
// reads are queued in the returned channel instead of run, so a test
// counts the reads that started.
func newReadingTestActor(t *testing.T, now *time.Time) (*endpointActor, chan func()) {
	a := newTestEndpointActor(t, now)
	reads := make(chan func(), 16)
	a.d.jobs, a.d.ids, a.d.cfg.Window = reads, newEventIDs(), 8
	return a, reads
}

// Under a steady flow of hints, reads of the outbox start at most once
// every readGap; the first after a quiet spell starts at once, and one
// held back is started by a wake, not lost.
func TestReadsOfABusyOutboxAreSpaced(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, reads := newReadingTestActor(t, &now)
	ctx := selfOnly{self: a.self}
	start := now

	a.dirty = true
	readAndSchedule(a, ctx)
	if len(reads) != 1 {
		t.Fatalf("%d reads after a hint on a quiet outbox, want 1 at once", len(reads))
	}
	a.loaded(&loaded{frontier: "evt_\x7f", limit: 8})

	now = start.Add(readGap / 2)
	a.dirty = true
	a.wakeAt = start // a wake that fired, its message not handled yet
	readAndSchedule(a, ctx)
	if len(reads) != 1 {
		t.Fatalf("%d reads, want the second held back within readGap of the first", len(reads))
	}
	if want := start.Add(readGap); !a.wakeAt.Equal(want) {
		t.Fatalf("wakes at %v, want %v (when the next read may start)", a.wakeAt, want)
	}

	now = start.Add(readGap)
	readAndSchedule(a, ctx)
	if len(reads) != 2 {
		t.Fatalf("%d reads at readGap after the first, want 2", len(reads))
	}
}

// A read that failed is tried again after readRetry, not at once: a
// store that cannot be read must not be read in a tight loop.
func TestAFailedReadIsRetriedAfterAPause(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, reads := newReadingTestActor(t, &now)
	ctx := selfOnly{self: a.self}

	a.dirty = true
	readAndSchedule(a, ctx)
	<-reads
	failed := now.Add(time.Millisecond)
	now = failed
	a.loaded(&loaded{err: errors.New("store unavailable"), limit: 8})
	readAndSchedule(a, ctx)
	now = failed.Add(readRetry - time.Millisecond)
	readAndSchedule(a, ctx)
	if len(reads) != 0 {
		t.Fatalf("%d reads within readRetry of a failed one, want none", len(reads))
	}
	if want := failed.Add(readRetry); !a.wakeAt.Equal(want) {
		t.Fatalf("wakes at %v, want %v", a.wakeAt, want)
	}
	if !a.dirty {
		t.Fatal("a failed read left the outbox marked read")
	}
	now = failed.Add(readRetry)
	readAndSchedule(a, ctx)
	if len(reads) != 1 {
		t.Fatalf("%d reads readRetry after the failure, want 1", len(reads))
	}
}

// msgCtx is a context that hands one message to Receive.
type msgCtx struct {
	selfOnly
	msg any
}

func (c msgCtx) Message() any { return c.msg }

// A read stopped at the frontier is tried again within its short wait even
// when another message is handled after the wait's time and before its
// wake: re-arming the timer for a later time (a retry's) then drops that
// wake as stale, and the blocked read waited for the later time.
func TestAFrontierWaitIsNotLostToALaterWake(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, reads := newReadingTestActor(t, &now)
	a.d.cfg.Concurrency = 64
	recv := func(m any) { a.Receive(msgCtx{selfOnly{self: a.self}, m}) }
	// A callback of another message waits ten minutes for its retry.
	a.add(&delivery{cb: testCallback("evt_0OLD"), attempts: 1, nextAt: now.Add(10 * time.Minute)})

	recv(&outboxHint{})
	<-reads
	recv(&outboxHint{}) // a write landed meanwhile: read again after this one
	recv(&loaded{cbs: []switchboard.Callback{testCallback("evt_2NEW")}, frontier: "evt_1", limit: 8})
	if !a.blocked {
		t.Fatal("a read stopped at the frontier did not wait")
	}
	gen, wakeAt := a.wakeGen, a.wakeAt
	now = wakeAt.Add(100 * time.Microsecond)
	recv(&finished{ids: []string{"evt_unrelated"}}) // handled before the wake
	recv(&endpointWake{gen: gen})                   // stale now, if re-armed
	if a.blocked && a.wakeAt.After(now) {
		t.Fatalf("the blocked read waits %v more, for a later wake", a.wakeAt.Sub(now))
	}
	if a.blocked {
		recv(&endpointWake{gen: a.wakeGen})
	}
	if a.blocked || len(reads) != 1 {
		t.Fatalf("after the wait: blocked %v, %d reads; want the read again", a.blocked, len(reads))
	}
}

// neverPoster is a Poster the tests never reach: their posts stay queued.
type neverPoster struct{}

func (neverPoster) Post(context.Context, WebhookRequest) PostResult { panic("posted") }

// newBatchingTestActor is an endpoint actor whose keys' batch sizes are
// given, whose posts are queued (never run) in the returned channel, and
// whose clock the test sets.
func newBatchingTestActor(t *testing.T, now *time.Time, batches map[string]int) (*endpointActor, chan func(), actor.Context) {
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	var keys []*switchboard.Key
	for id, n := range batches {
		keys = append(keys, &switchboard.Key{ID: id, WebhookSecret: "whsec_x", CallbackBatch: n})
	}
	e := &Engine{cfg: Config{Keys: switchboard.NewKeyRing(keys), Now: func() time.Time { return *now }}, log: zerolog.Nop(), system: sys}
	d := newDispatcher(e, WebhookConfig{Poster: neverPoster{}}, newEventIDs())
	posts := make(chan func(), 64)
	d.jobs = posts
	a := newEndpointActor(d, "https://hooks.example.com:443", &endpointRef{})
	a.self = sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	return a, posts, selfOnly{self: a.self}
}

// addFor adds a ready callback of key for a message of its own.
func addFor(a *endpointActor, now time.Time, key, id string) {
	a.add(&delivery{cb: switchboard.Callback{ID: id, MessageID: "msg_" + id, Key: key, URL: "https://hooks.example.com/" + key,
		Endpoint: a.endpoint, CreatedAt: now, Data: []byte(`{}`)}})
}

// While two partial batches are in flight the next partial batch of a
// batching key waits, but nothing else does: a key that does not batch
// (here on the same host) goes at once. Before, every callback behind the
// held one waited with it.
func TestAPartialBatchHoldsOnlyItsOwnKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, posts, ctx := newBatchingTestActor(t, &now, map[string]int{"a": 10, "b": 1})
	addFor(a, now, "a", "1")
	a.dispatch(ctx)
	addFor(a, now, "a", "2")
	a.dispatch(ctx)
	if a.partials != 2 || len(posts) != 2 {
		t.Fatalf("%d partial batches, %d posts; want 2 and 2", a.partials, len(posts))
	}
	addFor(a, now, "a", "3")
	addFor(a, now, "b", "4")
	a.dispatch(ctx)
	if len(posts) != 3 {
		t.Fatalf("%d posts; want key b's callback posted behind key a's held batch", len(posts))
	}
	if len(a.ready) != 1 || a.ready[0].cb.Key != "a" {
		t.Fatalf("ready after the dispatch: %d callbacks; want key a's held one alone", len(a.ready))
	}
}

// Once an open circuit has waited out, a callback held back by partial
// batches in flight sets no wake for the circuit's end, which has passed:
// woken at once, it was held again and set the wake again, spinning until
// an answer came.
func TestAHeldCallbackSetsNoWakeForAPastCircuitEnd(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, _, ctx := newBatchingTestActor(t, &now, map[string]int{"a": 10})
	addFor(a, now, "a", "1")
	a.inflight, a.partials = 2, 2
	a.failures, a.openUntil = a.d.cfg.BreakerFailures, now.Add(-time.Millisecond)
	a.dispatch(ctx)
	a.schedule(ctx)
	if !a.wakeAt.IsZero() && !a.wakeAt.After(now) {
		t.Fatalf("a wake set for %v, already past at %v: the actor would wake at once with nothing to do", a.wakeAt, now)
	}
}

// A circuit whose end passes between a dispatch that found it open and
// the schedule after it, with nothing in flight, still gets its wake: no
// answer would bring the probe otherwise.
func TestACircuitEndPassingDuringADispatchKeepsItsWake(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a, posts, ctx := newBatchingTestActor(t, &now, map[string]int{"a": 1})
	addFor(a, now, "a", "1")
	a.failures, a.openUntil = a.d.cfg.BreakerFailures, now.Add(time.Microsecond)
	a.dispatch(ctx) // the circuit is open: nothing goes
	now = now.Add(2 * time.Microsecond)
	a.schedule(ctx)
	if len(posts) != 0 || a.inflight != 0 {
		t.Fatalf("%d posts, %d in flight; want none before the probe", len(posts), a.inflight)
	}
	if a.wakeAt.IsZero() {
		t.Fatal("no wake set: the ready callback waits for an event that may never come")
	}
}
