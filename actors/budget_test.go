package actors

import (
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// take grants what is left; keys that got less wait in line once each and
// are woken in order as units come back, one per wakeBatch units free.
func TestBudgetLine(t *testing.T) {
	var woken []string
	b := newBudget(300, func(pid *actor.PID, _ *budget) { woken = append(woken, pid.Id) })
	a, c, d := actor.NewPID("local", "a"), actor.NewPID("local", "c"), actor.NewPID("local", "d")
	if got := b.take(250, a); got != 250 {
		t.Fatalf("take 250 of 300 = %d", got)
	}
	if got := b.take(100, c); got != 50 {
		t.Fatalf("take 100 with 50 left = %d", got)
	}
	if got := b.take(10, d); got != 0 {
		t.Fatalf("take with none left = %d", got)
	}
	if got := b.take(10, d); got != 0 { // d is in line once, not twice
		t.Fatalf("take with none left = %d", got)
	}
	b.release(1) // 1 free: wakes c only
	if !slices.Equal(woken, []string{"c"}) {
		t.Fatalf("woken %v, want [c]", woken)
	}
	b.release(299) // 300 free: wakes d
	if !slices.Equal(woken, []string{"c", "d"}) {
		t.Fatalf("woken %v, want [c d]", woken)
	}
	if b.inUse() != 0 || len(b.waiting) != 0 || len(b.queued) != 0 {
		t.Fatalf("in use %d, line %v", b.inUse(), b.waiting)
	}
}

// A woken key that takes nothing passes the wake-up on, so keys further
// down the line are not left waiting while units are free.
func TestBudgetPass(t *testing.T) {
	var woken []string
	b := newBudget(10, func(pid *actor.PID, _ *budget) { woken = append(woken, pid.Id) })
	a, c, d := actor.NewPID("local", "a"), actor.NewPID("local", "c"), actor.NewPID("local", "d")
	b.take(10, a)
	b.take(1, c)
	b.take(1, d)
	b.release(1) // wakes c (one per wakeBatch free)
	if !slices.Equal(woken, []string{"c"}) {
		t.Fatalf("woken %v, want [c]", woken)
	}
	b.pass() // c took nothing: d is next
	if !slices.Equal(woken, []string{"c", "d"}) {
		t.Fatalf("woken %v, want [c d]", woken)
	}
	b.take(1, d) // d takes the free unit
	b.pass()     // nothing free, nobody in line: no one to wake
	if len(woken) != 2 {
		t.Fatalf("woken %v after the last unit was taken", woken)
	}
}
