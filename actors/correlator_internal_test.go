package actors

import (
	"testing"
	"time"
)

// A receipt that comes before its submit's response waits for the id
// instead of being parked: it is matched as soon as the id is added.
func TestReceiptWaitsForItsSubmitResponse(t *testing.T) {
	c := newCorrelator()
	got := make(chan partRef, 1)
	c.await("sim", "c-1", func(p partRef, ok bool) {
		if !ok {
			t.Error("the receipt gave up waiting although its id came")
		}
		got <- p
	})
	w := c.waiting[carrierRef{"sim", "c-1"}][0]
	c.add("sim", []string{"c-0", "c-1"}, "msg_1")
	// Its give-up timer went with it: Stop finds it stopped already.
	if w.timer.Stop() {
		t.Error("the answered receipt's give-up timer was still running")
	}
	select {
	case p := <-got:
		if p.messageID != "msg_1" || p.part != 1 {
			t.Fatalf("matched %+v, want msg_1 part 1", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting receipt was not matched when its id was added")
	}
	if c.nwait != 0 || len(c.waiting) != 0 {
		t.Fatalf("%d waiters left (%d ids)", c.nwait, len(c.waiting))
	}
}

// One whose id never comes gives up after responseWait (and is parked by
// its caller); past maxReceiptWaiters a receipt does not wait at all.
func TestReceiptWaitIsBounded(t *testing.T) {
	c := newCorrelator()
	gaveUp := make(chan time.Duration, 1)
	start := time.Now()
	c.await("sim", "never", func(_ partRef, ok bool) {
		if ok {
			t.Error("matched an id that was never added")
		}
		gaveUp <- time.Since(start)
	})
	select {
	case d := <-gaveUp:
		if d < responseWait {
			t.Fatalf("gave up after %v, before responseWait (%v)", d, responseWait)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a receipt whose id never comes waited for ever")
	}
	// A late add after giving up fires nothing twice.
	c.add("sim", []string{"never"}, "msg_2")
	if c.nwait != 0 {
		t.Fatalf("%d waiters left", c.nwait)
	}

	c.nwait = maxReceiptWaiters // as if that many were waiting
	now := make(chan bool, 1)
	c.await("sim", "full", func(_ partRef, ok bool) { now <- ok })
	select {
	case ok := <-now:
		if ok {
			t.Fatal("matched an id that was never added")
		}
	default:
		t.Fatal("a receipt waited although maxReceiptWaiters were waiting")
	}
}
