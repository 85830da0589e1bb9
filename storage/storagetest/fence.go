package storagetest

import (
	"sync"
	"testing"

	sb "github.com/switchboard-sms/switchboard"
)

func (f *fixture) raiseFence(t *testing.T, key string, token int64) int64 {
	t.Helper()
	got, err := f.s.RaiseFence(f.ctx, key, token)
	if err != nil {
		t.Fatalf("RaiseFence(%s, %d): %v", key, token, err)
	}
	return got
}

// A key's fence only goes up, and each key has its own.
func testFenceRaises(t *testing.T, f *fixture) {
	if got := f.raiseFence(t, "k1", 5); got != 5 {
		t.Fatalf("fence %d after raising it to 5", got)
	}
	if got := f.raiseFence(t, "k1", 3); got != 5 {
		t.Fatalf("raising to 3 returned %d; the fence must stay at 5", got)
	}
	if got := f.raiseFence(t, "k1", 9); got != 9 {
		t.Fatalf("fence %d after raising it to 9", got)
	}
	if got := f.raiseFence(t, "k2", 1); got != 1 {
		t.Fatalf("k2's fence %d: another key's fence leaked", got)
	}
}

// Owners racing to fence a key end with the highest token in force.
func testFenceRace(t *testing.T, f *fixture) {
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := f.s.RaiseFence(f.ctx, "k1", int64(i+1)); err != nil {
				t.Errorf("RaiseFence: %v", err)
			}
		})
	}
	wg.Wait()
	if got := f.raiseFence(t, "k1", 0); got != 16 {
		t.Fatalf("fence %d after racing raises up to 16", got)
	}
}

// Accept refuses a message whose token is below its key's fence and
// stores none of the call's messages; an equal or higher token and an
// unfenced message (0) are taken, and a message keeps its token.
func testFenceAccept(t *testing.T, f *fixture) {
	f.raiseFence(t, "k1", 7)
	stale := f.message("k1", now())
	stale.Fence = 6
	other := f.message("k2", now())
	err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: other}, {Message: stale}})
	wantCode(t, err, sb.EUNAVAILABLE)
	f.wantMissing(t, stale.ID)
	f.wantMissing(t, other.ID)
	f.wantPendingCount(t, "k1", 0)

	current := f.message("k1", now())
	current.Fence = 7
	unfenced := f.message("k1", now())
	f.accept(t, current, unfenced)
	if got := f.get(t, current.ID).Fence; got != 7 {
		t.Fatalf("stored message has token %d, want 7", got)
	}
	if got := f.get(t, unfenced.ID).Fence; got != 0 {
		t.Fatalf("unfenced message has token %d, want 0", got)
	}
	f.wantPendingCount(t, "k1", 2)
}

// Record refuses an update whose token is below its message's key's fence
// and applies none of the call's updates; unfenced updates (receipts) and
// current ones go through.
func testFenceRecord(t *testing.T, f *fixture) {
	m := f.message("k1", now())
	m.Fence = 1
	f.accept(t, m)
	f.raiseFence(t, "k1", 2)
	_, err := f.s.Record(f.ctx, []sb.Update{{MessageID: m.ID, Transition: submitted(now(), "sandbox", "a"), Fence: 1}})
	wantCode(t, err, sb.EUNAVAILABLE)
	if got := f.get(t, m.ID); got.Status != sb.StatusAccepted {
		t.Fatalf("a stale owner's update was applied: status %s", got.Status)
	}
	f.wantPendingCount(t, "k1", 1)
	f.record(t, sb.Update{MessageID: m.ID, Transition: status(now(), sb.StatusQueued)})
	got := f.record(t, sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "a"), Fence: 2})
	if got[0].Status != sb.StatusSubmitted {
		t.Fatalf("the current owner's update gave status %s", got[0].Status)
	}
	f.wantPendingCount(t, "k1", 0)
}
