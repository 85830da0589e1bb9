package actors

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDueQueue drives a dueQueue with random sets, moves, removals and
// wake-ups and checks each against a plain map of due times.
func TestDueQueue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := newDueQueue[int]()
	model := map[int]time.Time{}
	base := time.Unix(1_700_000_000, 0)
	now := base
	for step := range 20000 {
		x := rng.IntN(200)
		switch op := rng.IntN(10); {
		case op < 5:
			at := now.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			q.set(x, at)
			model[x] = at
		case op < 7:
			q.remove(x)
			delete(model, x)
		default:
			now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
			var got []int
			var last time.Time
			q.popDue(now, func(y int) {
				if model[y].Before(last) {
					t.Fatalf("step %d: %d came out of order", step, y)
				}
				last = model[y]
				got = append(got, y)
			})
			var want []int
			for y, at := range model {
				if !at.After(now) {
					want = append(want, y)
					delete(model, y)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: due %v, want %v", step, got, want)
			}
		}
		if q.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(model))
		}
		var first time.Time
		for _, at := range model {
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
		if !q.earliest().Equal(first) {
			t.Fatalf("step %d: earliest %v, want %v", step, q.earliest(), first)
		}
	}
}

// TestDueQueueRefiles checks that an item popped may be filed again from
// inside the callback and is not handed back twice in one wake-up when
// its new time is later.
func TestDueQueueRefiles(t *testing.T) {
	q := newDueQueue[string]()
	t0 := time.Unix(0, 0)
	q.set("a", t0)
	q.set("b", t0.Add(time.Second))
	calls := 0
	q.popDue(t0, func(x string) {
		calls++
		q.set(x, t0.Add(2*time.Second))
	})
	if calls != 1 || q.len() != 2 || !q.earliest().Equal(t0.Add(time.Second)) {
		t.Fatalf("calls %d, len %d, earliest %v", calls, q.len(), q.earliest())
	}
}
