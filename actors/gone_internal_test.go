package actors

import (
	"fmt"
	"testing"
	"time"
)

// URLs marked gone are forgotten when their mark runs out, and at most
// maxGone are remembered however many answer 410 (the oldest forgotten
// first): a client that gives every message its own URL cannot grow them
// without end. A URL marked again keeps its newer mark.
func TestGoneMarksAreBounded(t *testing.T) {
	var g goneMarks
	now := time.Unix(1_700_000_000, 0)
	const hold = time.Hour
	for i := range 20 * maxGone {
		g.mark(fmt.Sprintf("https://h%d.example/hook", i), now, hold)
	}
	if n := len(g.until); n > maxGone {
		t.Fatalf("%d URLs marked gone, want at most %d", n, maxGone)
	}
	if len(g.order)-g.head > 2*maxGone {
		t.Fatalf("%d marks queued for %d URLs", len(g.order)-g.head, len(g.until))
	}
	newest := fmt.Sprintf("https://h%d.example/hook", 20*maxGone-1)
	if !g.is(newest, now) || g.is("https://h0.example/hook", now) {
		t.Fatal("the newest mark was forgotten, or the oldest kept")
	}

	later := now.Add(hold / 2)
	g.mark("https://again.example/hook", now, hold)
	g.mark("https://again.example/hook", later, hold) // answered 410 again
	for i := range maxGone {                          // marks made past the first mark's end
		g.mark(fmt.Sprintf("https://l%d.example/hook", i%10), now.Add(hold), hold)
	}
	if len(g.order)-g.head > 2*maxGone {
		t.Fatalf("%d marks queued for %d URLs", len(g.order)-g.head, len(g.until))
	}
	if !g.is("https://again.example/hook", now.Add(hold)) {
		t.Fatal("a URL marked again lost its newer mark when its first one ran out")
	}
	if g.is(newest, now.Add(hold)) {
		t.Fatal("a mark outlived its time")
	}
}

// The hints a node sends for endpoints are remembered only while they
// space the next one out: endpoints given per message do not pile up.
func TestHinterForgetsOldHints(t *testing.T) {
	h := &hinter{last: map[string]time.Time{}, pending: map[string]bool{}, sweepAt: minHintSweep}
	now := time.Unix(1_700_000_000, 0)
	for i := range 20 * minHintSweep {
		now = now.Add(time.Millisecond)
		h.noted(fmt.Sprintf("https://h%d.example:443", i), now)
	}
	if n := len(h.last); n > 2*minHintSweep {
		t.Fatalf("%d endpoints remembered, want at most %d", n, 2*minHintSweep)
	}
	if _, ok := h.last[fmt.Sprintf("https://h%d.example:443", 20*minHintSweep-1)]; !ok {
		t.Fatal("the latest hint was forgotten")
	}
}
