package storagetest

import (
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// RunDurable runs the reopen tests, for backends that keep their data
// across Close: open must open the store kept in dir, creating it if dir is
// empty. Each subtest closes what it opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) sb.Store) {
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ReopenOutboxInboxSettings", func(t *testing.T) { testReopenOutboxInboxSettings(t, open) })
	t.Run("CloseDuringWrites", func(t *testing.T) { testCloseDuringWrites(t, open) })
	t.Run("ReopenLifecycle", func(t *testing.T) { testReopenLifecycle(t, open) })
}

// What the lifecycle keeps survives Close: pending counts, the receipt-due
// index and parked receipts, which the reopened store still applies when
// their carrier id is indexed.
func testReopenLifecycle(t *testing.T, open func(t *testing.T, dir string) sb.Store) {
	dir := t.TempDir()
	f := newFixture(t, open(t, dir))
	base := now()
	a, b, c := f.message("k1", base), f.message("k1", base), f.message("k1", base)
	b.Segments = 2
	f.accept(t, a, b, c)
	due := base.Add(time.Hour)
	f.record(t,
		sb.Update{MessageID: a.ID, Transition: submittedDue(base, due, "sandbox", "a-0")},
		sb.Update{MessageID: b.ID, Transition: submitted(base, "sandbox", "b-0", "")},
		byCarrier("sandbox", "c-0", receipt(base, 0, sb.StatusDelivered)),
	)
	f.wantPendingCount(t, "k1", 2)
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	f.s = open(t, dir)
	defer f.s.Close()
	f.wantPendingCount(t, "k1", 2)
	f.wantOverdue(t, due.Add(time.Second), 10, a.ID)
	n := f.notify(sb.StatusSubmitted, sb.StatusDelivered)
	got := f.record(t, sb.Update{MessageID: c.ID, Transition: submitted(base, "sandbox", "c-0"), Notify: n})
	if got[0].Status != sb.StatusDelivered {
		t.Fatalf("submit of a receipt parked before a restart: status %s, want delivered", got[0].Status)
	}
	wantCallbackIDs(t, f.callbacks(t, messageEndpoint, "", 10), n.EventID, n.EventID+"-2")
	f.wantPendingCount(t, "k1", 1)
	f.record(t, sb.Update{MessageID: b.ID, Transition: submitted(base, "sandbox", "", "b-1")})
	f.wantPendingCount(t, "k1", 0)
	f.wantPendingKeys(t)
}

// Everything written before Close is there after reopening: messages,
// idempotency records, and all the indexes.
func testReopen(t *testing.T, open func(t *testing.T, dir string) sb.Store) {
	dir := t.TempDir()
	f := newFixture(t, open(t, dir))
	a, b := f.message("k1", now()), f.message("k2", now())
	hash := sha256.Sum256([]byte("request"))
	if err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: a, IdempotencyKey: "i-a", RequestHash: hash}, {Message: b}}); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	want := f.record(t, sb.Update{MessageID: b.ID, Transition: submitted(now(), "sandbox", "b-0")})[0]
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	f.s = open(t, dir)
	defer f.s.Close()
	wantEqual(t, f.get(t, a.ID), a)
	wantEqual(t, f.get(t, b.ID), want)
	wantIDs(t, f.pending(t, "k1", "", 10), a.ID)
	wantIDs(t, f.pending(t, "k2", "", 10))
	f.wantPendingKeys(t, "k1")
	if rec, err := f.s.Idempotency(f.ctx, "k1", "i-a"); err != nil || rec.MessageID != a.ID || rec.RequestHash != hash {
		t.Fatalf("Idempotency after reopen = %+v, %v", rec, err)
	}
	if id, part, err := f.s.CarrierMessage(f.ctx, "sandbox", "b-0"); err != nil || id != b.ID || part != 0 {
		t.Fatalf("CarrierMessage after reopen = %s, %d, %v", id, part, err)
	}
	wantIDs(t, f.byDay(t, "k2", b.Day()), b.ID)
	// The reopened store still knows which IDs are taken, the newest too.
	for _, id := range []string{a.ID, b.ID} {
		dup := f.message("k1", now())
		dup.ID = id
		wantCode(t, f.s.Accept(f.ctx, []sb.NewMessage{{Message: dup}}), sb.ECONFLICT)
	}
	// The reopened store goes on accepting.
	f.accept(t, f.message("k1", now()))
}

// Close while Accepts are in flight: every Accept either fails or is found
// after reopening, and none panics.
func testCloseDuringWrites(t *testing.T, open func(t *testing.T, dir string) sb.Store) {
	dir := t.TempDir()
	f := newFixture(t, open(t, dir))
	var (
		mu       sync.Mutex
		accepted []*sb.Message
		wg       sync.WaitGroup
		msgs     = make(chan *sb.Message)
	)
	for range 16 {
		wg.Go(func() {
			for m := range msgs {
				if f.s.Accept(f.ctx, []sb.NewMessage{{Message: m}}) == nil {
					mu.Lock()
					accepted = append(accepted, m)
					mu.Unlock()
				}
			}
		})
	}
	closed := make(chan error, 1)
	for i := 0; ; i++ {
		if i == 200 {
			go func() { closed <- f.s.Close() }()
		}
		select {
		case err := <-closed:
			close(msgs)
			wg.Wait()
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
			f.s = open(t, dir)
			defer f.s.Close()
			for _, m := range accepted {
				wantEqual(t, f.get(t, m.ID), m)
			}
			return
		case msgs <- f.message("k1", now()):
		}
	}
}

// The outbox, the inbox and the settings survive Close: queued callbacks
// (from Record and AcceptInbound) with their endpoints, failures recorded
// by FinishCallbacks, inbound messages, parts and settings.
func testReopenOutboxInboxSettings(t *testing.T, open func(t *testing.T, dir string) sb.Store) {
	dir := t.TempDir()
	f := newFixture(t, open(t, dir))
	m, gaveUp := f.message("k1", now()), f.message("k1", now())
	f.accept(t, m, gaveUp)
	n, nGaveUp := f.notify(sb.StatusSubmitted), f.notify(sb.StatusFailed)
	f.record(t,
		sb.Update{MessageID: m.ID, Transition: submitted(now(), "sandbox", "s-0"), Notify: n},
		sb.Update{MessageID: gaveUp.ID, Transition: status(now(), sb.StatusFailed), Notify: nGaveUp},
	)
	queued := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, queued, n.EventID, nGaveUp.EventID)
	failure := sb.WebhookFailure{EventID: nGaveUp.EventID, Type: sb.CallbackStatus, URL: gaveUp.CallbackURL,
		Reason: sb.WebhookMaxAge, Attempts: 9, At: now()}
	if err := f.s.FinishCallbacks(f.ctx, []sb.FinishedCallback{{Callback: queued[1], Failure: &failure}}); err != nil {
		t.Fatalf("FinishCallbacks: %v", err)
	}
	wantGaveUp := f.get(t, gaveUp.ID)
	in := f.queue(t, "http://in.example/hook", f.ids.event())
	wantIn := f.get(t, in.MessageID)
	p := f.part("sandbox", 42, 2, 1)
	if err := f.s.AddInboundPart(f.ctx, p); err != nil {
		t.Fatalf("AddInboundPart: %v", err)
	}
	if _, err := f.s.InitSetting(f.ctx, "secret", "kept"); err != nil {
		t.Fatalf("InitSetting: %v", err)
	}
	if err := f.s.PutSetting(f.ctx, "admin/key/k1", "put"); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	if err := f.s.PutSetting(f.ctx, "admin/key/gone", "deleted"); err != nil {
		t.Fatalf("PutSetting: %v", err)
	}
	if err := f.s.DeleteSetting(f.ctx, "admin/key/gone"); err != nil {
		t.Fatalf("DeleteSetting: %v", err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	f.s = open(t, dir)
	defer f.s.Close()
	cbs := f.callbacks(t, messageEndpoint, "", 10)
	wantCallbackIDs(t, cbs, n.EventID)
	wantCallback(t, cbs[0], queued[0])
	inCbs := f.callbacks(t, "http://in.example:80", "", 10)
	wantCallbackIDs(t, inCbs, in.ID)
	wantCallback(t, inCbs[0], in)
	f.wantEndpoints(t, messageEndpoint, "http://in.example:80")
	wantEqual(t, f.get(t, gaveUp.ID), wantGaveUp)
	if w := wantGaveUp.WebhookFailures; len(w) != 1 || w[0].EventID != failure.EventID {
		t.Fatalf("WebhookFailures = %+v, want %+v", w, failure)
	}
	wantEqual(t, f.get(t, in.MessageID), wantIn)
	f.wantPendingKeys(t)
	f.wantParts(t, p)
	if v, err := f.s.InitSetting(f.ctx, "secret", "new"); err != nil || v != "kept" {
		t.Fatalf("InitSetting after reopen = %q, %v; want kept", v, err)
	}
	if got, err := f.s.ListSettings(f.ctx, "admin/"); err != nil || len(got) != 1 || got[0] != (sb.Setting{Name: "admin/key/k1", Value: "put"}) {
		t.Fatalf("ListSettings after reopen = %q, %v; want admin/key/k1=put alone", got, err)
	}
	// The reopened store goes on queueing and finishing.
	if err := f.s.FinishCallbacks(f.ctx, []sb.FinishedCallback{{Callback: cbs[0]}, {Callback: in}}); err != nil {
		t.Fatalf("FinishCallbacks after reopen: %v", err)
	}
	f.wantEndpoints(t)
}
