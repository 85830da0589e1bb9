package pebble

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// openAt opens a store in dir with a clock the test moves.
func openAt(t *testing.T, dir string, clock *atomic.Int64) *Store {
	t.Helper()
	s, err := Open(dir, Options{TTL: 48 * time.Hour, Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A record retention cannot read (damaged, or written by a newer version)
// is left in place, with an error logged: it does not stop the store,
// which would then stop again after every restart. A message it cannot
// read keeps its by-day entry, the only way retention has to it, and the
// messages beside it go as they would.
func TestRetentionLeavesUnreadableRecords(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	dir := t.TempDir()
	s := openAt(t, dir, &clock)
	ctx := t.Context()
	at := time.Unix(0, clock.Load()).UTC()
	var news []sb.NewMessage
	for i := range 3 {
		m := &sb.Message{ID: fmt.Sprintf("msg_%03d", i), Key: "k", Segments: 1, Status: sb.StatusAccepted,
			AcceptedAt: at, Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}
		news = append(news, sb.NewMessage{Message: m, IdempotencyKey: fmt.Sprint("idem-", i)})
	}
	if err := s.Accept(ctx, news); err != nil {
		t.Fatal(err)
	}
	// As a newer version would write them: an idempotency record, and a
	// message (read from disk: the store is reopened, its caches empty).
	if err := s.db.Set(idempotencyKey(nil, "k", "idem-0"), []byte{2, 0}, pebbledb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(messageKey(nil, "msg_001"), []byte{4}, pebbledb.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, dir, &clock)
	defer s.Close()

	clock.Add(int64(25 * time.Hour)) // the idempotency records expire
	if err := s.Housekeep(ctx); err != nil {
		t.Fatalf("housekeeping past an unreadable idempotency record: %v", err)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("the store stopped over an unreadable record: %v", err)
	}
	clock.Add(int64(3 * 24 * time.Hour)) // the messages expire
	if err := s.Housekeep(ctx); err != nil {
		t.Fatalf("housekeeping past an unreadable message: %v", err)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("the store stopped over an unreadable message: %v", err)
	}
	has := func(k []byte) bool {
		_, c, err := s.db.Get(k)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	day := at.Format(time.DateOnly)
	for _, id := range []string{"msg_000", "msg_002"} {
		if has(messageKey(nil, id)) || has(dayKey(nil, "k", day, id)) {
			t.Errorf("%s outlived the TTL beside an unreadable message", id)
		}
	}
	if !has(dayKey(nil, "k", day, "msg_001")) {
		t.Error("the unreadable message lost its by-day entry, the only way retention has to it")
	}
}

// An expiry queue entry retention cannot read is left in place, with an
// error logged, and the entries after it and the other queues go on: one
// bad entry used to stop every pass at it, so nothing was expired again.
func TestRetentionSkipsUnreadableExpiryEntries(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	s := openAt(t, t.TempDir(), &clock)
	defer s.Close()
	ctx := t.Context()
	at := time.Unix(0, clock.Load()).UTC()
	m := &sb.Message{ID: "msg_000", Key: "k", Segments: 1, Status: sb.StatusAccepted,
		AcceptedAt: at, Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}
	if err := s.Accept(ctx, []sb.NewMessage{{Message: m, IdempotencyKey: "idem-0"}}); err != nil {
		t.Fatal(err)
	}
	// Before it in the queue, and in the queue that runs first: garbage.
	for _, kind := range []byte{expiryIdempotency, expiryCarrierRefs} {
		k := expiryKey(nil, kind, at.Add(-time.Hour), []byte("bad"))
		if err := s.db.Set(k, []byte{0xff, 0xfe}, pebbledb.Sync); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(int64(25 * time.Hour)) // the idempotency record expires
	if err := s.Housekeep(ctx); err != nil {
		t.Fatalf("housekeeping past unreadable expiry entries: %v", err)
	}
	if _, err := s.Idempotency(ctx, "k", "idem-0"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("the idempotency record after the unreadable entry: %v, want it expired", err)
	}
	if r, found, err := readIdempotency(s.db, idempotencyKey(nil, "k", "idem-0")); err != nil || found {
		t.Fatalf("the idempotency record is still stored (%+v, %v): retention stopped at the unreadable entry", r, err)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("the store stopped: %v", err)
	}
}
