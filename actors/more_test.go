package actors_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// More messages than the key's in-memory window, accepted while the
// carrier refuses binds: the rest wait in the store, are paged in as the
// window drains, and all reach the carrier in order once it is back.
func TestPagingKeepsOrderBeyondTheWindow(t *testing.T) {
	r := newRig(t, rigOptions{keyWindow: 8, simConfig: smsc.Config{Faults: smsc.Faults{RefuseBinds: true}}})
	key := r.keys[0]
	const n = 100
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		res := r.submit(key, "+447700900001", fmt.Sprintf("%s|+447700900001|%d", key.ID, i))
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		ids[i] = res.Message.ID
	}
	r.sims["sim"].SetFaults(smsc.Faults{})
	for _, id := range ids {
		eventually(t, "delivery of "+id, 30*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.order[key.ID+"|+447700900001"]
	if len(seen) < n {
		t.Fatalf("carrier saw %d messages, want %d", len(seen), n)
	}
	for i := 0; i < n; i++ {
		if seen[i] != fmt.Sprint(i) {
			t.Fatalf("position %d: message %s, want %d (order broken)", i, seen[i], i)
		}
	}
}

// The same Idempotency-Key with the same body returns the first message;
// with another body it is refused.
func TestIdempotencyKey(t *testing.T) {
	r := newRig(t, rigOptions{})
	key := r.keys[0]
	req := switchboard.SubmitRequest{To: "+447700900001", From: "Acme", Body: "once", IdempotencyKey: "abc", RequestHash: [32]byte{1}}
	first := r.engine.Submit(context.Background(), key, []switchboard.SubmitRequest{req})[0]
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	again := r.engine.Submit(context.Background(), key, []switchboard.SubmitRequest{req})[0]
	if again.Err != nil || again.Message.ID != first.Message.ID {
		t.Fatalf("replay: %+v, want message %s", again, first.Message.ID)
	}
	req.Body, req.RequestHash = "other", [32]byte{2}
	other := r.engine.Submit(context.Background(), key, []switchboard.SubmitRequest{req})[0]
	if switchboard.ErrorCode(other.Err) != switchboard.EIDEMPOTENCY {
		t.Fatalf("reuse with another body: %v, want %s", other.Err, switchboard.EIDEMPOTENCY)
	}
}

// An Idempotency-Key repeated within one batch means what it means across
// requests: the same request gets the first one's message (one message is
// made), another request idempotency_conflict; other items go on.
func TestIdempotencyKeyRepeatedInABatch(t *testing.T) {
	r := newRig(t, rigOptions{})
	key := r.keys[0]
	req := switchboard.SubmitRequest{To: "+447700900001", From: "Acme", Body: "once", IdempotencyKey: "abc", RequestHash: [32]byte{1}}
	other := req
	other.Body, other.RequestHash = "other", [32]byte{2}
	plain := switchboard.SubmitRequest{To: "+447700900002", From: "Acme", Body: "plain"}
	res := r.engine.Submit(context.Background(), key, []switchboard.SubmitRequest{req, plain, req, other})
	if res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("first and plain: %v, %v", res[0].Err, res[1].Err)
	}
	if res[2].Err != nil || res[2].Message.ID != res[0].Message.ID {
		t.Fatalf("the repeat: %+v, want message %s", res[2], res[0].Message.ID)
	}
	if switchboard.ErrorCode(res[3].Err) != switchboard.EIDEMPOTENCY {
		t.Fatalf("another request with the key: %v, want %s", res[3].Err, switchboard.EIDEMPOTENCY)
	}
	if res[1].Message.ID == res[0].Message.ID {
		t.Fatal("the plain item got the keyed item's message")
	}
}

// A key sees only its own messages.
func TestAnotherKeysMessageIsNotFound(t *testing.T) {
	r := newRig(t, rigOptions{keys: 2})
	res := r.submit(r.keys[0], "+447700900001", "mine")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := r.engine.Message(context.Background(), r.keys[0], res.Message.ID); err != nil {
		t.Fatalf("owner: %v", err)
	}
	if _, err := r.engine.Message(context.Background(), r.keys[1], res.Message.ID); switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
		t.Fatalf("other key: %v, want not_found", err)
	}
}

// An idle key actor stops, and the next request starts a new one that
// works as before.
func TestIdleKeyActorStopsAndComesBack(t *testing.T) {
	r := newRig(t, rigOptions{idle: 50 * time.Millisecond})
	key := r.keys[0]
	first := r.submit(key, "+447700900001", "before")
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	eventually(t, "delivery", 10*time.Second, func() bool { return r.status(first.Message.ID) == switchboard.StatusDelivered })
	eventually(t, "the idle actor to stop", 10*time.Second, func() bool { return r.engine.KeyActors() == 0 })
	second := r.submit(key, "+447700900001", "after")
	if second.Err != nil {
		t.Fatal(second.Err)
	}
	eventually(t, "delivery after restart", 10*time.Second, func() bool { return r.status(second.Message.ID) == switchboard.StatusDelivered })
}

// Messages past their validity before a carrier takes them end expired.
func TestValidityPassesWhileQueued(t *testing.T) {
	r := newRig(t, rigOptions{simConfig: smsc.Config{Faults: smsc.Faults{RefuseBinds: true}}})
	res := r.engine.Submit(context.Background(), r.keys[0], []switchboard.SubmitRequest{{To: "+447700900001", From: "Acme", Body: "late", Validity: time.Second}})[0]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	eventually(t, "expiry", 10*time.Second, func() bool { return r.status(res.Message.ID) == switchboard.StatusExpired })
}

// A carrier's TPS holds across all its binds together.
func TestCarrierTPSIsSharedByItsBinds(t *testing.T) {
	const tps, n = 50, 60
	r := newRig(t, rigOptions{binds: 3, tps: tps})
	eventually(t, "three binds", 10*time.Second, func() bool { return r.sims["sim"].Stats().Binds == 3 })
	began := time.Now()
	var ids []string
	for i := 0; i < n; i++ {
		res := r.submit(r.keys[0], fmt.Sprintf("+4477009%05d", i), "paced")
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		ids = append(ids, res.Message.ID)
	}
	eventually(t, "all submitted", 30*time.Second, func() bool { return r.sims["sim"].Stats().Submits >= n })
	// The bucket starts with one token, so n submits need (n-1)/tps seconds
	// at least — a lower bound no slow machine can break. Three binds each
	// with their own 50/s would take a third of that.
	if min := time.Duration(float64(n-1) / tps * float64(time.Second)); time.Since(began) < min {
		t.Fatalf("%d submits at %d TPS over 3 binds took %v, want at least %v", n, tps, time.Since(began), min)
	}
}

// Under concurrent load on one key, with a window far smaller than the
// load, messages to one destination still reach the carrier in ID
// (acceptance) order, while new commits keep landing as pages are read.
func TestPagingUnderLoadKeepsAcceptanceOrder(t *testing.T) {
	r := newRig(t, rigOptions{keyWindow: 8, simConfig: smsc.Config{Faults: smsc.Faults{Latency: smsc.Delay{Min: time.Millisecond}}}})
	key := r.keys[0]
	const workers, each = 4, 100
	var mu sync.Mutex
	idOf := map[string]string{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := fmt.Sprint(w*each + i)
				res := r.submit(key, "+447700900001", key.ID+"|+447700900001|"+n)
				if res.Err != nil {
					t.Error(res.Err)
					return
				}
				mu.Lock()
				idOf[n] = res.Message.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range idOf {
		eventually(t, "delivery of "+id, 30*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.order[key.ID+"|+447700900001"]
	if len(seen) != workers*each {
		t.Fatalf("carrier saw %d messages, want %d", len(seen), workers*each)
	}
	for i := 1; i < len(seen); i++ {
		if idOf[seen[i]] <= idOf[seen[i-1]] {
			t.Fatalf("message %s (%s) reached the carrier after %s (%s)", seen[i], idOf[seen[i]], seen[i-1], idOf[seen[i-1]])
		}
	}
}

// With more keys than the engine's memory budget has room for (each key's
// window alone would allow far more), the keys together hold at most
// MaxHeld messages in memory while the carrier is down; the rest wait in
// the store. When it is back every key is woken in turn and every message
// is delivered, in order per destination.
func TestHeldBudgetAcrossKeys(t *testing.T) {
	const keys, perKey, budget = 12, 30, 40
	r := newRig(t, rigOptions{keys: keys, keyWindow: 1000, maxHeld: budget,
		simConfig: smsc.Config{Faults: smsc.Faults{RefuseBinds: true}}})
	var ids []string
	for i := range perKey {
		for _, key := range r.keys {
			res := r.submit(key, "+447700900001", fmt.Sprintf("%s|+447700900001|%d", key.ID, i))
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			ids = append(ids, res.Message.ID)
			if held := r.engine.HeldMessages(); held > budget {
				t.Fatalf("%d messages held in memory, budget %d", held, budget)
			}
		}
	}
	if held := r.engine.HeldMessages(); held != budget {
		t.Fatalf("%d held with %d accepted and the carrier down, want the whole budget (%d)", held, len(ids), budget)
	}
	r.sims["sim"].SetFaults(smsc.Faults{})
	for _, id := range ids {
		eventually(t, "delivery of "+id, 30*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
	eventually(t, "the budget to be given back", 5*time.Second, func() bool { return r.engine.HeldMessages() == 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range r.keys {
		seen := r.order[key.ID+"|+447700900001"]
		for i := range perKey {
			if i >= len(seen) || seen[i] != fmt.Sprint(i) {
				t.Fatalf("key %s: carrier saw %v, want 0..%d in order", key.ID, seen, perKey-1)
			}
		}
	}
}

// With an engine-wide sending budget far below what the keys would send
// at once (all of them, when the carrier comes back), keys take turns:
// every message is delivered, in order per destination, and the budget is
// all given back.
func TestSendingBudgetAcrossKeys(t *testing.T) {
	const keys, perDest, budget = 10, 15, 3
	dests := []string{"+447700900001", "+447700900002", "+447700900003"}
	r := newRig(t, rigOptions{keys: keys, maxSend: budget, simConfig: smsc.Config{Faults: smsc.Faults{RefuseBinds: true}}})
	var ids []string
	for i := range perDest {
		for _, key := range r.keys {
			for _, to := range dests {
				res := r.submit(key, to, fmt.Sprintf("%s|%s|%d", key.ID, to, i))
				if res.Err != nil {
					t.Fatal(res.Err)
				}
				ids = append(ids, res.Message.ID)
			}
		}
	}
	r.sims["sim"].SetFaults(smsc.Faults{})
	for _, id := range ids {
		eventually(t, "delivery of "+id, 30*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
	eventually(t, "the sending budget to be given back", 5*time.Second, func() bool { return r.engine.Sending() == 0 })
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range r.keys {
		for _, to := range dests {
			seen := r.order[key.ID+"|"+to]
			for i := range perDest {
				if i >= len(seen) || seen[i] != fmt.Sprint(i) {
					t.Fatalf("%s to %s: carrier saw %v, want 0..%d in order", key.ID, to, seen, perDest-1)
				}
			}
		}
	}
}

// A bind coming up sends what waited for a carrier at once, not at the
// next no-carrier poll (noCarrierRetry, 5 s after the attempt that found
// no carrier).
func TestCarrierUpSendsWaitingAtOnce(t *testing.T) {
	r := newRig(t, rigOptions{simConfig: smsc.Config{Faults: smsc.Faults{RefuseBinds: true}}})
	res := r.submit(r.keys[0], "+447700900001", "waits for a carrier")
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	eventually(t, "queued", 5*time.Second, func() bool { return r.status(res.Message.ID) == switchboard.StatusQueued })
	began := time.Now()
	r.sims["sim"].SetFaults(smsc.Faults{})
	eventually(t, "sent", 10*time.Second, func() bool { return r.status(res.Message.ID) != switchboard.StatusQueued })
	// The binds reconnect within ReconnectMax (100 ms); the poll would
	// have waited about 5 s.
	if took := time.Since(began); took > 2500*time.Millisecond {
		t.Fatalf("the message left %v after the carrier came back; a bind coming up should send it at once", took)
	}
}

// pendingCounter counts how often Pending hands out each message.
type pendingCounter struct {
	*pebble.Store
	mu   sync.Mutex
	read map[string]int
}

func (s *pendingCounter) Pending(ctx context.Context, key, afterID, beforeID string, limit int) ([]*switchboard.Message, error) {
	msgs, err := s.Store.Pending(ctx, key, afterID, beforeID, limit)
	s.mu.Lock()
	for _, m := range msgs {
		s.read[m.ID]++
	}
	s.mu.Unlock()
	return msgs, err
}

// A key kept over its window by a steady stream pages its messages in from
// the store, each once: the reads stop at the lowest ID still being
// committed instead of reading past it and dropping what they read, and no
// read is repeated until a commit lands. (Reading past the frontier once
// made a busy key read each message from the store over and over, a
// quarter of the CPU at 20,000 messages/s.)
func TestPagingReadsEachMessageOnce(t *testing.T) {
	var counter *pendingCounter
	r := newRig(t, rigOptions{keyWindow: 8, binds: 1, window: 4,
		wrapStore: func(s *pebble.Store) switchboard.Store {
			counter = &pendingCounter{Store: s, read: map[string]int{}}
			return counter
		}})
	ids := sendConcurrently(t, r, 8, 250, 0)
	for _, id := range ids {
		eventually(t, "message "+id+" delivered", 60*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	for id, n := range counter.read {
		if n > 1 {
			t.Errorf("message %s read from the store %d times", id, n)
		}
	}
	if len(counter.read) == 0 {
		t.Fatal("no message was paged in: the test did not exercise paging")
	}
	t.Logf("%d of %d messages were paged in from the store", len(counter.read), len(ids))
}

// sendConcurrently submits senders × each messages to the rig's first key
// from senders goroutines, to destinations numbered from first, and
// returns their IDs.
func sendConcurrently(t *testing.T, r *rig, senders, each, first int) []string {
	t.Helper()
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for n := range each {
				res := r.submit(r.keys[0], fmt.Sprintf("+4477009%05d", first+s*each+n), "paged")
				if res.Err != nil {
					t.Errorf("submit: %v", res.Err)
					return
				}
				mu.Lock()
				ids = append(ids, res.Message.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ids
}

// A clock stepping back does not give a key's new messages IDs below the
// ones before them: acceptance order holds, and a paged key, which reads
// only above the last ID it loaded, still reaches them all.
func TestClockSteppingBackKeepsOrder(t *testing.T) {
	var back atomic.Int64 // how far the engine's clock is behind time.Now
	r := newRig(t, rigOptions{keyWindow: 8, binds: 1, window: 4,
		now: func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }})
	before := sendConcurrently(t, r, 8, 100, 0)
	back.Store(int64(time.Minute))
	after := sendConcurrently(t, r, 8, 100, 800)
	highest := slices.Max(before)
	for _, id := range after {
		if id <= highest {
			t.Fatalf("message %s, accepted after the clock stepped back, sorts below %s", id, highest)
		}
	}
	for _, id := range append(before, after...) {
		eventually(t, "message "+id+" delivered", 30*time.Second, func() bool { return r.status(id) == switchboard.StatusDelivered })
	}
}
