package sink

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// Packed IDs sort as their strings do; IDs of other shapes are not packed.
func TestPackKeepsOrder(t *testing.T) {
	rng, entropy := rand.New(rand.NewPCG(1, 2)), rand.NewChaCha8([32]byte{1})
	id := func() string {
		s := "evt_" + ulid.MustNew(uint64(rng.Int64N(1<<40)), entropy).String()
		if rng.IntN(3) == 0 {
			s += "-2"
		}
		return s
	}
	for range 10000 {
		a, b := id(), id()
		pa, okA := pack(a, "evt_")
		pb, okB := pack(b, "evt_")
		if !okA || !okB {
			t.Fatalf("pack(%q) %v, pack(%q) %v", a, okA, b, okB)
		}
		if (a < b) != (string(pa[:]) < string(pb[:])) || (a == b) != (pa == pb) {
			t.Fatalf("%q vs %q: packed order differs", a, b)
		}
	}
	good := "evt_01JZ0000000000000000000000"
	for _, bad := range []string{"msg_01JZ0000000000000000000000", "evt_01jz0000000000000000000000", "evt_81JZ0000000000000000000000",
		"evt_01JZ000000000000000000000", good + "-0", good + "-22", good + "x2", "kannel-7-1", "", "evt_01JZ00000000000000000000OL"} {
		if _, ok := pack(bad, "evt_"); ok {
			t.Errorf("pack(%q) packed it", bad)
		}
	}
}

// seenIDs answers as plain string maps would, for the gateway's IDs and
// others side by side.
func TestSeenIDsMatchesStringMaps(t *testing.T) {
	rng, entropy := rand.New(rand.NewPCG(3, 4)), rand.NewChaCha8([32]byte{2})
	var msgs, events []string
	for i := range 20 {
		msgs = append(msgs, "msg_"+ulid.MustNew(uint64(i), entropy).String(), "kannel-"+string(rune('a'+i)))
	}
	for i := range 60 {
		e := "evt_" + ulid.MustNew(uint64(time.Hour.Milliseconds())+uint64(i), entropy).String()
		events = append(events, e, e+"-2", "other-"+string(rune('A'+i)))
	}
	s := newSeenIDs()
	times, last := map[string]int{}, map[string]string{}
	for range 5000 {
		// A message's events are all of one kind: the gateway's IDs for
		// its messages, others for others.
		mi := rng.IntN(len(msgs))
		m, e := msgs[mi], events[3*rng.IntN(len(events)/3)+rng.IntN(2)]
		if mi%2 == 1 {
			e = events[3*rng.IntN(len(events)/3)+2]
		}
		times[e]++
		if got := s.add(e); got != times[e] {
			t.Fatalf("add(%q) = %d, want %d", e, got, times[e])
		}
		want := last[m] <= e
		if want {
			last[m] = e
		}
		if got := s.later(m, e); got != want {
			t.Fatalf("later(%q, %q) = %v, want %v", m, e, got, want)
		}
	}
}
