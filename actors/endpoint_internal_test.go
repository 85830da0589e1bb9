package actors

import (
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
