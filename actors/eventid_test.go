package actors

import (
	"testing"
	"time"
)

// IDs increase in the order begin is called, even when a caller's clock
// reading is older than one already used.
func TestEventIDsIncreaseInBeginOrder(t *testing.T) {
	g := newEventIDs()
	now := time.Now()
	a, ta := g.begin(2, now)
	b, tb := g.begin(1, now.Add(-time.Second))
	if !(a[0] < a[1] && a[1] < b[0]) {
		t.Fatalf("ids %v then %v: want increasing", a, b)
	}
	if f := g.frontier(now); f != a[0] {
		t.Fatalf("frontier %q, want the first in-flight id %q", f, a[0])
	}
	g.end(ta)
	if f := g.frontier(now); f != b[0] {
		t.Fatalf("frontier %q, want %q", f, b[0])
	}
	g.end(tb)
	// With nothing in flight, the bound lies just above the highest ID
	// handed out: both writes' IDs (and a "-2" sibling) are below it, an
	// ID handed out later is not.
	f := g.frontier(now)
	if !(b[0] < f && b[0]+"-2" < f) {
		t.Fatalf("frontier %q: want it above %q", f, b[0])
	}
	c, tc := g.begin(1, now)
	g.end(tc)
	if !(c[0] >= f) {
		t.Fatalf("an ID handed out after the frontier was taken, %q, is below it (%q): a reader could pass it before it lands", c[0], f)
	}
}

// Before any ID is handed out, the frontier lets IDs of an earlier run
// through and stops at any this run will hand out.
func TestEventIDsFrontierAtStart(t *testing.T) {
	old := newEventIDs()
	prev, _ := old.begin(1, time.Now())
	time.Sleep(2 * time.Millisecond) // the next run starts in a later millisecond (not a synchronisation)
	g := newEventIDs()
	f := g.frontier(time.Now())
	next, _ := g.begin(1, time.Now())
	if !(prev[0] < f && next[0] >= f) {
		t.Fatalf("frontier %q: want %q below it and %q not", f, prev[0], next[0])
	}
}

// The floor of a time sorts above every event ID made before it and below
// every one made at it or later.
func TestEventIDFloor(t *testing.T) {
	g := newEventIDs()
	at := time.Now().Add(time.Hour) // after g's start, so begin uses it
	floor := eventIDFloor(at)
	early, _ := g.begin(3, at.Add(-time.Millisecond))
	late, _ := g.begin(3, at)
	for _, id := range early {
		if id >= floor {
			t.Errorf("%s made a millisecond before %s is not below its floor %s", id, at, floor)
		}
	}
	for _, id := range append(late, late[0]+"-2") {
		if id < floor {
			t.Errorf("%s made at %s is below its floor %s", id, at, floor)
		}
	}
}

// With nothing in flight the frontier does not hold back IDs made before
// now that this process did not hand out (another node's, in a cluster),
// and a write that begins later with an older clock reading still gets
// IDs above it.
func TestEventIDsFrontierLetsOthersIDsThrough(t *testing.T) {
	g := newEventIDs()
	start := time.Now()
	mine, tok := g.begin(1, start)
	g.end(tok)
	other := newEventIDs()
	theirs, _ := other.begin(1, start.Add(time.Second))
	f := g.frontier(start.Add(2 * time.Second))
	if !(mine[0] < f && theirs[0] < f) {
		t.Fatalf("frontier %q: want this node's %q and another's %q below it", f, mine[0], theirs[0])
	}
	later, _ := g.begin(1, start) // a clock reading taken before the frontier call
	if later[0] < f {
		t.Fatalf("an ID handed out after the frontier was taken, %q, is below it (%q)", later[0], f)
	}
}
