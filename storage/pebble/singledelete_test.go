package pebble

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// misuseLog collects the messages the store logs at error level.
type misuseLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *misuseLog) Run(_ *zerolog.Event, level zerolog.Level, msg string) {
	if level >= zerolog.ErrorLevel {
		l.mu.Lock()
		l.msgs = append(l.msgs, msg)
		l.mu.Unlock()
	}
}

func (l *misuseLog) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// lifecycleRig runs messages through the store as the engine does: accept,
// submit with a receipt deadline, deliver, each status change queueing a
// callback, and the callbacks finished.
type lifecycleRig struct {
	t    *testing.T
	s    *Store
	logs *misuseLog
	next int
}

const lifecycleHook = "http://127.0.0.1:9/hook"

func newLifecycleRig(t *testing.T) *lifecycleRig {
	logs := &misuseLog{}
	s, err := Open(t.TempDir(), Options{Logger: zerolog.New(io.Discard).Hook(logs),
		MemTableSize: 4 << 20, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &lifecycleRig{t: t, s: s, logs: logs}
}

func (r *lifecycleRig) accept(n int) []string {
	at := time.Now().UTC()
	var news []sb.NewMessage
	var ids []string
	for range n {
		r.next++
		id := fmt.Sprintf("msg_%026d", r.next)
		ids = append(ids, id)
		news = append(news, sb.NewMessage{Message: &sb.Message{ID: id, Key: "k", Segments: 1,
			Status: sb.StatusAccepted, AcceptedAt: at, Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}})
	}
	if err := r.s.Accept(r.t.Context(), news); err != nil {
		r.t.Fatal(err)
	}
	return ids
}

// record applies one transition to every message, with a callback each.
func (r *lifecycleRig) record(ids []string, status sb.Status) {
	at := time.Now().UTC()
	var updates []sb.Update
	for _, id := range ids {
		tr := sb.Transition{Event: sb.Event{Status: status, At: at, Carrier: "x"}, Part: 0}
		if status == sb.StatusSubmitted {
			tr.Part, tr.CarrierIDs, tr.ReceiptDue = -1, []string{"c" + id}, at.Add(time.Hour)
		}
		updates = append(updates, sb.Update{MessageID: id, Transition: tr, Notify: &sb.Notify{
			EventID: fmt.Sprintf("evt_%s_%s", id[4:], status), DefaultURL: lifecycleHook,
			Statuses: sb.DefaultCallbackStatuses, At: at}})
	}
	if _, err := r.s.Record(r.t.Context(), updates); err != nil {
		r.t.Fatal(err)
	}
}

// finishCallbacks finishes every queued callback, and returns how many.
func (r *lifecycleRig) finishCallbacks() int {
	endpoint, err := sb.CallbackEndpoint(lifecycleHook)
	if err != nil {
		r.t.Fatal(err)
	}
	cbs, err := r.s.Callbacks(r.t.Context(), endpoint, "", "", 100_000)
	if err != nil {
		r.t.Fatal(err)
	}
	done := make([]sb.FinishedCallback, len(cbs))
	for i, cb := range cbs {
		done[i].Callback = cb
	}
	if err := r.s.FinishCallbacks(r.t.Context(), done); err != nil {
		r.t.Fatal(err)
	}
	return len(cbs)
}

func (r *lifecycleRig) flush() {
	if err := r.s.db.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// tombstonesOnDisk counts the deletions the tables on disk hold.
func (r *lifecycleRig) tombstonesOnDisk() uint64 {
	levels, err := r.s.db.SSTables(pebbledb.WithProperties())
	if err != nil {
		r.t.Fatal(err)
	}
	var n uint64
	for _, tables := range levels {
		for _, table := range tables {
			n += table.Properties.NumDeletions
		}
	}
	return n
}

// leftovers lists the pending, receipt-due and outbox entries a read
// still sees.
func (r *lifecycleRig) leftovers() []string {
	it, err := r.s.db.NewIter(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	defer it.Close()
	var left []string
	for ok := it.First(); ok; ok = it.Next() {
		switch string(it.Key()[:2]) {
		case prefixPending, prefixDue, prefixOutbox:
			left = append(left, string(it.Key()))
		}
	}
	return left
}

// A message's pending and receipt-due entries and its callbacks' outbox
// entries live for moments. Removed while still in the memtable, they
// leave nothing for the flush to write: no tombstones on disk.
func TestShortLivedEntriesLeaveNoTombstones(t *testing.T) {
	r := newLifecycleRig(t)
	ids := r.accept(200)
	r.record(ids, sb.StatusSubmitted)
	r.record(ids, sb.StatusDelivered)
	if n := r.finishCallbacks(); n != 2*len(ids) {
		t.Fatalf("finished %d callbacks, want %d (submitted and delivered for each)", n, 2*len(ids))
	}
	r.flush()
	if n := r.tombstonesOnDisk(); n != 0 {
		t.Errorf("%d tombstones flushed for entries set and removed within one memtable, want 0", n)
	}
	if left := r.leftovers(); len(left) > 0 {
		t.Errorf("entries left: %q", left)
	}
	if errs := r.logs.errors(); len(errs) > 0 {
		t.Errorf("logged: %q", errs)
	}
}

// When the entries reach the disk before they are removed, the removal
// meets them in a compaction, one version each: nothing is left, and
// Pebble reports no single delete that met two versions.
func TestSingleDeletesMeetOneVersionOnDisk(t *testing.T) {
	r := newLifecycleRig(t)
	ids := r.accept(200)
	r.flush() // p/ on disk
	r.record(ids, sb.StatusSubmitted)
	r.flush() // u/ and the submitted callbacks on disk, p/'s removal too
	r.record(ids, sb.StatusDelivered)
	r.flush()
	if n := r.finishCallbacks(); n != 2*len(ids) {
		t.Fatalf("finished %d callbacks, want %d", n, 2*len(ids))
	}
	r.flush()
	if err := r.s.db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if left := r.leftovers(); len(left) > 0 {
		t.Errorf("entries left: %q", left)
	}
	if pending, err := r.s.Pending(t.Context(), "k", "", "", 10); err != nil || len(pending) > 0 {
		t.Errorf("Pending after every message was delivered: %d, %v", len(pending), err)
	}
	if errs := r.logs.errors(); len(errs) > 0 {
		t.Errorf("logged: %q", errs)
	}
}

// The check above would see a key set twice and single-deleted: Pebble
// reports it, and the store logs it at error level.
func TestSingleDeleteOverTwoVersionsIsLogged(t *testing.T) {
	r := newLifecycleRig(t)
	key := pendingKey(nil, "k", "msg_twice")
	for _, op := range []func(b *pebbledb.Batch) error{
		func(b *pebbledb.Batch) error { return b.Set(key, nil, nil) },
		func(b *pebbledb.Batch) error { return b.Set(key, nil, nil) },
		func(b *pebbledb.Batch) error { return b.SingleDelete(key, nil) },
	} {
		b := r.s.db.NewBatch()
		if err := op(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebbledb.Sync); err != nil {
			t.Fatal(err)
		}
	}
	r.flush()
	errs := r.logs.errors()
	if len(errs) != 1 || !strings.Contains(errs[0], "nondeterministic SINGLEDEL") || !strings.Contains(errs[0], "msg_twice") {
		t.Errorf("logged %q, want one nondeterministic SINGLEDEL naming the key", errs)
	}
}
