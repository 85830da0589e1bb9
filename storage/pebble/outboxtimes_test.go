package pebble

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// A read of the outbox past a callback skips the tables whose entries are
// all older, and still finds every later callback: one in an older table
// from the same millisecond as the cursor, and none that was finished.
func TestOutboxReadSkipsTablesReadPast(t *testing.T) {
	r := newLifecycleRig(t)
	entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{1}), 0)
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	// Four tables of three callbacks each, a second apart; the three of a
	// table share their millisecond.
	var queued []string
	for table := range 4 {
		ids := r.accept(3)
		at := t0.Add(time.Duration(table) * time.Second)
		var updates []sb.Update
		for _, id := range ids {
			evt := "evt_" + ulid.MustNew(ulid.Timestamp(at), entropy).String()
			queued = append(queued, evt)
			updates = append(updates, sb.Update{MessageID: id, Transition: sb.Transition{
				Event: sb.Event{Status: sb.StatusSubmitted, At: at, Carrier: "x"}, Part: -1,
				CarrierIDs: []string{"c" + id}, ReceiptDue: at.Add(time.Hour)},
				Notify: &sb.Notify{EventID: evt, DefaultURL: lifecycleHook, Statuses: sb.DefaultCallbackStatuses, At: at}})
		}
		if _, err := r.s.Record(t.Context(), updates); err != nil {
			t.Fatal(err)
		}
		r.flush()
	}
	endpoint, err := sb.CallbackEndpoint(lifecycleHook)
	if err != nil {
		t.Fatal(err)
	}
	list := func(after string) []string {
		t.Helper()
		cbs, err := r.s.Callbacks(t.Context(), endpoint, after, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, cb := range cbs {
			ids = append(ids, cb.ID)
		}
		return ids
	}
	// The first table's callbacks are finished; their tombstones go to a
	// fifth table.
	var done []sb.FinishedCallback
	for _, cb := range queued[:3] {
		done = append(done, sb.FinishedCallback{Callback: sb.Callback{ID: cb, Endpoint: endpoint}})
	}
	if err := r.s.FinishCallbacks(t.Context(), done); err != nil {
		t.Fatal(err)
	}
	r.flush()

	if got, want := list(""), queued[3:]; !slices.Equal(got, want) {
		t.Fatalf("from the head: %v, want %v", got, want)
	}
	// The cursor is the first of the third table's callbacks: the other
	// two share its millisecond and must not be skipped.
	if got, want := list(queued[6]), queued[7:]; !slices.Equal(got, want) {
		t.Fatalf("after %s: %v, want %v", queued[6], got, want)
	}
	if got := list(queued[11]); len(got) != 0 {
		t.Fatalf("after the last: %v, want none", got)
	}

	// A cursor a second past the last callback skips every table: no
	// block is read.
	later := "evt_" + ulid.MustNew(ulid.Timestamp(t0.Add(4*time.Second)), entropy).String()
	lower := after(outboxKey(nil, endpoint, later))
	upper := successor(outboxPrefix(nil, endpoint))
	blockBytes := func(filters []pebbledb.BlockPropertyFilter) uint64 {
		it, err := r.s.db.NewIter(&pebbledb.IterOptions{LowerBound: lower, UpperBound: upper, PointKeyFilters: filters})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		if it.First() {
			t.Fatalf("found %q after %s", it.Key(), later)
		}
		return it.Stats().InternalStats.BlockBytes
	}
	if unfiltered := blockBytes(nil); unfiltered == 0 {
		t.Fatal("without the filter no block was read: the test shows nothing")
	}
	if filtered := blockBytes(outboxFilter(later)); filtered != 0 {
		t.Fatalf("with the filter %d bytes of blocks were read, want 0", filtered)
	}
}

// callbackTime reads the ULID's millisecond, in the order of the IDs'
// text; an ID not of the form "evt_" and an upper-case ULID has none.
func TestCallbackTime(t *testing.T) {
	entropy := ulid.Monotonic(rand.NewChaCha8([32]byte{2}), 0)
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 50 {
		at := t0.Add(time.Duration(i*i) * 37 * time.Millisecond)
		id := "evt_" + ulid.MustNew(ulid.Timestamp(at), entropy).String()
		ms, ok := callbackTime([]byte(id))
		if !ok || ms != ulid.Timestamp(at) {
			t.Fatalf("%s: %d, %v; want %d", id, ms, ok, ulid.Timestamp(at))
		}
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) {
		t.Fatal("the IDs are not in time order: the test is wrong")
	}
	for _, bad := range []string{"", "evt_", "evt_01ARZ3NDE", "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"evt_01arz3ndektsv4rrffq69g5fav", "evt_01ARZ3NDEU"} {
		if ms, ok := callbackTime([]byte(bad)); ok {
			t.Errorf("%q: time %d, want none", bad, ms)
		}
	}
	// An outbox entry whose ID has no time takes every time; other keys none.
	for _, c := range []struct {
		key        []byte
		lower, upp uint64
	}{
		{outboxKey(nil, "http://a:80", "evt_custom"), 0, 1<<64 - 1},
		{messageKey(nil, "msg_1"), 0, 0},
	} {
		iv, err := outboxTimes{}.MapPointKey(pebbledb.InternalKey{UserKey: c.key}, nil)
		if err != nil || iv.Lower != c.lower || iv.Upper != c.upp {
			t.Errorf("%q: %+v %v, want [%d, %d)", c.key, iv, err, c.lower, c.upp)
		}
	}
}
