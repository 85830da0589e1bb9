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
	if f := g.frontier(); f != a[0] {
		t.Fatalf("frontier %q, want the first in-flight id %q", f, a[0])
	}
	g.end(ta)
	if f := g.frontier(); f != b[0] {
		t.Fatalf("frontier %q, want %q", f, b[0])
	}
	g.end(tb)
	if f := g.frontier(); f != "" {
		t.Fatalf("frontier %q with nothing in flight, want none", f)
	}
}
