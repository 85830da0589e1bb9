package pebble

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// TestRoundOverlayLifecycle queues, before the committer starts, requests
// that depend on what earlier requests of the same round wrote, so only
// the overlay can tell them: a receipt by carrier id indexed by an earlier
// request, a submit that indexes an id an earlier request parked a receipt
// for, and pending counters changed by several requests of the round.
func TestRoundOverlayLifecycle(t *testing.T) {
	db, err := pebbledb.Open(t.TempDir(), &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().UTC()
	msg := func(id string) *sb.Message {
		return &sb.Message{ID: id, Key: "k", Segments: 1, Status: sb.StatusAccepted, AcceptedAt: at,
			Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}
	}
	submit := func(id, cid string) sb.Update {
		return sb.Update{MessageID: id, Transition: sb.Transition{
			Event: sb.Event{Status: sb.StatusSubmitted, At: at, Carrier: "x"}, Part: -1, CarrierIDs: []string{cid}}}
	}
	byCarrier := func(cid string) sb.Update {
		return sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "x", ID: cid}, ParkUntil: at.Add(time.Hour),
			Transition: sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: at}}}
	}
	c := newCommitter(db, time.Now, zerolog.Nop()) // not started: requests stay queued
	var (
		results [4][]*sb.Message
		errs    [6]error
		wg      sync.WaitGroup
	)
	record := func(i int, u sb.Update) func(c *committer, b *pebbledb.Batch) error {
		return func(c *committer, b *pebbledb.Batch) (err error) {
			results[i], err = c.record([]sb.Update{u}, b)
			return err
		}
	}
	writes := []func(c *committer, b *pebbledb.Batch) error{
		func(c *committer, b *pebbledb.Batch) error {
			return c.accept([]sb.NewMessage{{Message: msg("msg_1")}, {Message: msg("msg_2")}, {Message: msg("msg_3")}}, b)
		},
		record(0, submit("msg_1", "c1")),
		record(1, byCarrier("c1")),
		record(2, byCarrier("c2")),
		record(3, submit("msg_2", "c2")),
		func(c *committer, b *pebbledb.Batch) error {
			return c.accept([]sb.NewMessage{{Message: msg("msg_4")}}, b)
		},
	}
	for i, w := range writes {
		wg.Go(func() { errs[i] = c.do(t.Context(), &request{write: w}) })
		for c.queued() < i+1 { // queue in order
			time.Sleep(time.Millisecond)
		}
	}
	c.start()
	wg.Wait()
	c.stop()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if m := results[1][0]; m == nil || m.ID != "msg_1" || m.Status != sb.StatusDelivered {
		t.Errorf("receipt by an id indexed earlier in the round: %+v, want msg_1 delivered", m)
	}
	if results[2][0] != nil {
		t.Errorf("receipt by an unknown id: %+v, want nil (parked)", results[2][0])
	}
	if m := results[3][0]; m.Status != sb.StatusDelivered {
		t.Errorf("submit of an id parked earlier in the round: status %s, want delivered", m.Status)
	}
	n, err := readCounter(db, countKey(nil, "k"))
	if err != nil || n != 2 {
		t.Errorf("pending counter = %d, %v; want 2 (msg_3, msg_4)", n, err)
	}
	if _, closer, err := db.Get(parkedKey(nil, "x", "c2")); err == nil {
		closer.Close()
		t.Error("the parked receipt was applied but is still stored")
	}
}

// A database of layout 1 (no pending counters, idempotency records not in
// the expiry queue) is migrated on Open: the counters are counted from the
// pending index, and retention finds the old idempotency records.
func TestMigrateFromLayout1(t *testing.T) {
	now := time.Now().UTC()
	var entries [][2][]byte
	for i, key := range []string{"a", "a", "a", "b"} {
		entries = append(entries, [2][]byte{pendingKey(nil, key, "msg_"+string(rune('0'+i))), nil})
	}
	old := sb.IdempotencyRecord{MessageID: "msg_0", CreatedAt: now.Add(-sb.IdempotencyWindow - time.Hour)}
	young := sb.IdempotencyRecord{MessageID: "msg_1", CreatedAt: now.Add(-time.Hour)}
	sent := now.Add(-time.Hour)
	submitted := &sb.Message{ID: "msg_9", Key: "a", Segments: 1, Status: sb.StatusSubmitted, AcceptedAt: sent,
		UpdatedAt: sent, Carrier: "c", CarrierIDs: []string{"c1"}}
	dir := layout1(t, append(entries,
		[2][]byte{messageKey(nil, submitted.ID), appendMessage(nil, submitted)},
		[2][]byte{idempotencyKey(nil, "a", "old"), appendIdempotency(nil, &old)},
		[2][]byte{idempotencyKey(nil, "a", "young"), appendIdempotency(nil, &young)}))

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open of a layout 1 database: %v", err)
	}
	defer s.Close()
	for key, want := range map[string]int{"a": 3, "b": 1, "c": 0} {
		if n, err := s.PendingCount(t.Context(), key); err != nil || n != want {
			t.Errorf("PendingCount(%s) = %d, %v; want %d", key, n, err, want)
		}
	}
	if v, closer, err := s.db.Get([]byte(layoutKey)); err != nil || len(v) != 1 || v[0] != layoutVersion {
		t.Errorf("layout after Open: %v, %v", v, err)
	} else {
		closer.Close()
	}
	// Layout 1 stored no receipt deadline: a submitted message gets one,
	// so it ends even if its receipt never comes.
	due := sent.Add(migratedReceiptDue)
	if ids, err := s.Overdue(t.Context(), due.Add(time.Second), 10); err != nil || len(ids) != 1 || ids[0] != submitted.ID {
		t.Errorf("Overdue at the migrated deadline: %v, %v; want [%s]", ids, err, submitted.ID)
	}
	if m, err := s.Message(t.Context(), submitted.ID); err != nil || !m.ReceiptDue.Equal(due) {
		t.Errorf("the migrated message: %+v, %v; want ReceiptDue %v", m, err, due)
	}
	if err := s.Housekeep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, found, err := readIdempotency(s.db, idempotencyKey(nil, "a", "old")); found || err != nil {
		t.Errorf("expired idempotency record from layout 1: found %v, %v; want deleted", found, err)
	}
	if _, found, err := readIdempotency(s.db, idempotencyKey(nil, "a", "young")); !found || err != nil {
		t.Errorf("young idempotency record from layout 1: found %v, %v; want kept", found, err)
	}
}

// A migration interrupted after it gave a message its receipt deadline
// runs again at the next Open and leaves that message as it was: its
// receipt-due entry, which goes by a single delete, is not set twice, so
// once the message ends it is no longer listed overdue.
func TestMigrationRunAgainSetsNoDeadlineTwice(t *testing.T) {
	sent := time.Now().UTC().Add(-time.Hour)
	due := sent.Add(migratedReceiptDue)
	m := &sb.Message{ID: "msg_1", Key: "a", Segments: 1, Status: sb.StatusSubmitted, AcceptedAt: sent,
		UpdatedAt: sent, Carrier: "c", CarrierIDs: []string{"c1"}, ReceiptDue: due}
	dir := layout1(t, [][2][]byte{{messageKey(nil, m.ID), appendMessage(nil, m)}, {dueKey(nil, due, m.ID), nil}})

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Record(t.Context(), []sb.Update{{MessageID: m.ID, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusDelivered, At: time.Now(), Carrier: "c"}, Part: 0}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.Overdue(t.Context(), due.Add(time.Second), 10); err != nil || len(ids) != 0 {
		t.Fatalf("Overdue after the message was delivered: %v, %v; want none", ids, err)
	}
}

// layout1 writes a database of layout 1 holding entries (key, value) and
// returns its directory.
func layout1(t *testing.T, entries [][2][]byte) string {
	t.Helper()
	dir := t.TempDir()
	db, err := pebbledb.Open(dir, &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for _, e := range append([][2][]byte{{[]byte(layoutKey), {1}}}, entries...) {
		if err := b.Set(e[0], e[1], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebbledb.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A database of a layout this build does not know is refused.
func TestUnknownLayout(t *testing.T) {
	dir := t.TempDir()
	db, err := pebbledb.Open(dir, &pebbledb.Options{Logger: pebbleLogger{zerolog.Nop()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte(layoutKey), []byte{layoutVersion + 1}, pebbledb.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("opened a database of an unknown layout")
	}
}

// Retention leaves nothing behind: after messages in every state (pending,
// partly submitted, submitted with a receipt due, final, inbound, with an
// idempotency key, with receipts parked before and after them) are past
// the TTL, a pass leaves only the layout version and zero counters.
func TestRetentionLeavesNothing(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Now().UTC()
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	s, err := Open(t.TempDir(), Options{TTL: 48 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	at := now()
	var news []sb.NewMessage
	for i := range 40 {
		m := &sb.Message{ID: fmt.Sprintf("msg_%03d", i), Key: fmt.Sprintf("k%d", i%3), Segments: 2,
			Status: sb.StatusAccepted, AcceptedAt: at, Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}
		news = append(news, sb.NewMessage{Message: m, IdempotencyKey: fmt.Sprintf("idem-%d", i)})
	}
	if err := s.Accept(ctx, news); err != nil {
		t.Fatal(err)
	}
	ev := func(st sb.Status) sb.Event { return sb.Event{Status: st, At: at, Carrier: "x"} }
	var updates []sb.Update
	for i := range 40 {
		id, c0, c1 := news[i].Message.ID, fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		sub := sb.Transition{Event: ev(sb.StatusSubmitted), Part: -1, CarrierIDs: []string{c0, c1}, ReceiptDue: at.Add(time.Hour)}
		switch i % 5 {
		case 0: // pending
		case 1: // one part submitted
			sub.CarrierIDs[1] = ""
			updates = append(updates, sb.Update{MessageID: id, Transition: sub})
		case 2: // submitted, receipt due
			updates = append(updates, sb.Update{MessageID: id, Transition: sub})
		case 3: // final, one receipt parked before the submit
			updates = append(updates,
				sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "x", ID: c1}, ParkUntil: at.Add(time.Hour),
					Transition: sb.Transition{Event: ev(sb.StatusDelivered)}},
				sb.Update{MessageID: id, Transition: sub},
				sb.Update{MessageID: id, Transition: sb.Transition{Event: ev(sb.StatusDelivered), Part: 0}})
		case 4: // a receipt parked for an id never indexed
			updates = append(updates, sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "x", ID: "never-" + c0},
				ParkUntil: at.Add(time.Hour), Transition: sb.Transition{Event: ev(sb.StatusDelivered)}})
		}
	}
	if _, err := s.Record(ctx, updates); err != nil {
		t.Fatal(err)
	}
	in := &sb.Message{ID: "msg_in", Key: "k0", Status: sb.StatusReceived, Direction: sb.DirectionInbound, AcceptedAt: at}
	if err := s.AcceptInbound(ctx, in, nil, nil); err != nil {
		t.Fatal(err)
	}

	clock.Add(int64(4 * 24 * time.Hour))
	if err := s.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch {
		case string(k) == layoutKey:
		case string(k[:2]) == prefixCount:
			if n, err := decodeCounter(it.Value()); err != nil || n != 0 {
				t.Errorf("counter %q = %d, %v after every message went", k, n, err)
			}
		default:
			t.Errorf("left behind: %q", k)
		}
	}
}

// A store opened with a negative housekeeping interval (the archive's)
// runs no retention of its own: only Housekeep deletes.
func TestNoHousekeepingBelowZero(t *testing.T) {
	s, err := Open(t.TempDir(), Options{HousekeepingInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case <-s.keeper.done:
	default:
		t.Fatal("a housekeeping goroutine runs")
	}
	if err := s.Housekeep(t.Context()); err != nil {
		t.Fatalf("Housekeep: %v", err)
	}
}
