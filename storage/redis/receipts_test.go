package redis

import (
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Receipts by carrier id are resolved from Redis, so the store is given
// the message ID; flushed or stopped, the store resolves them itself.
func TestReceiptsFlushedAndStopped(t *testing.T) {
	r := newRig(t)
	wantDelivered := func(got *sb.Message, m *sb.Message, byStore bool) {
		t.Helper()
		if got == nil || got.ID != m.ID || got.Status != sb.StatusDelivered {
			t.Fatalf("receipt: got %+v, want %s delivered", got, m.ID)
		}
		u := r.inner.lastRecorded()
		if resolvedByStore := u.ByCarrier != nil; resolvedByStore != byStore {
			t.Fatalf("the store was given %+v; want it to resolve the carrier id: %v", u, byStore)
		}
		if !byStore && u.MessageID != m.ID {
			t.Fatalf("the store was given message %s, want %s", u.MessageID, m.ID)
		}
	}
	m := r.message("")
	r.submit(m, "r-1")
	wantDelivered(r.receipt("r-1"), m, false)

	m = r.message("")
	r.submit(m, "r-2")
	r.srv.Flush()
	wantDelivered(r.receipt("r-2"), m, true)
	r.wantCarrier("r-2", m.ID, 0, false) // the store's answer was remembered

	m = r.message("")
	r.submit(m, "r-3")
	r.srv.Stop()
	wantDelivered(r.receipt("r-3"), m, true)
	r.srv.Restart()
	r.waitUp()

	// A receipt that overtook its submit is parked by the store, whatever
	// Redis lost meanwhile, and applied by the submit.
	m = r.message("")
	if got := r.receipt("r-4"); got != nil {
		t.Fatalf("receipt before its submit returned %+v, want it parked", got)
	}
	r.srv.Flush()
	r.submit(m, "r-4")
	if got, err := r.s.Message(r.ctx, m.ID); err != nil || got.Status != sb.StatusDelivered {
		t.Fatalf("after the submit: %+v, %v; want delivered", got, err)
	}
}

// An entry naming a message the store no longer has (retention deleted
// it) does not fail the receipt: the entry is dropped and the store
// resolves the carrier id.
func TestReceiptWithStaleEntry(t *testing.T) {
	r := newRig(t)
	m := r.message("")
	r.submit(m, "s-1")
	k := r.s.keys.carrier("sandbox", "s-1")
	if err := r.client.Set(r.ctx, k, carrierRef{"msg_01J00000000000000000000000", 0}.encode(), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	got := r.receipt("s-1")
	if got == nil || got.ID != m.ID || got.Status != sb.StatusDelivered {
		t.Fatalf("receipt: %+v, want %s delivered", got, m.ID)
	}
	if u := r.inner.lastRecorded(); u.ByCarrier == nil {
		t.Fatalf("the store was last given %+v, want the receipt by carrier id", u)
	}
	r.wantCarrier("s-1", m.ID, 0, false) // the store's answer replaced the entry
}
