package pebble

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Messages that turn final in one write queue their carrier index entries
// for expiry in one entry per second of their final times, not one per
// carrier id; each entry goes once its second is past the grace, and a
// carrier id reused by a later message outlives the group that named it.
// An entry of the older kind, one per carrier id, still expires.
func TestFinalRefsGroupedBySecond(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	const grace = time.Hour
	s, err := Open(t.TempDir(), Options{CarrierIDGrace: grace, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()

	// Ten two-part messages: eight turn final at 10:00:00.2, two at 10:00:01.5.
	var news []sb.NewMessage
	for i := range 10 {
		m := &sb.Message{ID: fmt.Sprintf("msg_%03d", i), Key: "k", Segments: 2, Status: sb.StatusAccepted,
			AcceptedAt: t0, Events: []sb.Event{{Status: sb.StatusAccepted, At: t0}}}
		news = append(news, sb.NewMessage{Message: m})
	}
	if err := s.Accept(ctx, news); err != nil {
		t.Fatal(err)
	}
	early, late := t0.Add(200*time.Millisecond), t0.Add(1500*time.Millisecond)
	var updates []sb.Update
	for i := range 10 {
		at := early
		if i >= 8 {
			at = late
		}
		id := news[i].Message.ID
		updates = append(updates,
			sb.Update{MessageID: id, Transition: sb.Transition{Part: -1,
				Event:      sb.Event{Status: sb.StatusSubmitted, At: at, Carrier: "x"},
				CarrierIDs: []string{id + "-a", id + "-b"}}},
			sb.Update{MessageID: id, Transition: sb.Transition{Part: -1,
				Event: sb.Event{Status: sb.StatusDelivered, At: at, Carrier: "x"}}})
	}
	if _, err := s.Record(ctx, updates); err != nil {
		t.Fatal(err)
	}
	if got, want := groupSizes(t, s), []int{16, 4}; !slices.Equal(got, want) {
		t.Fatalf("queued groups of %v carrier ids, want %v", got, want)
	}
	if n := len(expiryEntries(t, s, expiryCarrierRef)); n != 0 {
		t.Fatalf("%d entries of the older kind, want none", n)
	}

	// A carrier id of the first group is reused by a new message, final later.
	reuse := &sb.Message{ID: "msg_100", Key: "k", Segments: 1, Status: sb.StatusAccepted,
		AcceptedAt: t0, Events: []sb.Event{{Status: sb.StatusAccepted, At: t0}}}
	if err := s.Accept(ctx, []sb.NewMessage{{Message: reuse}}); err != nil {
		t.Fatal(err)
	}
	reusedAt := t0.Add(10 * time.Minute)
	if _, err := s.Record(ctx, []sb.Update{
		{MessageID: reuse.ID, Transition: sb.Transition{Part: -1,
			Event: sb.Event{Status: sb.StatusSubmitted, At: reusedAt, Carrier: "x"}, CarrierIDs: []string{"msg_000-a"}}},
		{MessageID: reuse.ID, Transition: sb.Transition{Part: -1,
			Event: sb.Event{Status: sb.StatusDelivered, At: reusedAt, Carrier: "x"}}},
	}); err != nil {
		t.Fatal(err)
	}
	// And an entry of the older kind, as a database written before groups holds.
	old := &sb.Message{ID: "msg_200", Key: "k", Segments: 1, Status: sb.StatusAccepted,
		AcceptedAt: t0, Events: []sb.Event{{Status: sb.StatusAccepted, At: t0}}}
	if err := s.Accept(ctx, []sb.NewMessage{{Message: old}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, []sb.Update{{MessageID: old.ID, Transition: sb.Transition{Part: -1,
		Event: sb.Event{Status: sb.StatusSubmitted, At: t0, Carrier: "x"}, CarrierIDs: []string{"old-a"}}}}); err != nil {
		t.Fatal(err)
	}
	ck := carrierKey(nil, "x", "old-a")
	if err := s.db.Set(expiryKey(nil, expiryCarrierRef, t0, ck), appendGuard(nil, old.ID), nil); err != nil {
		t.Fatal(err)
	}

	has := func(cid string) bool {
		t.Helper()
		_, _, err := s.CarrierMessage(ctx, "x", cid)
		if err != nil && sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatal(err)
		}
		return err == nil
	}
	housekeepAt := func(at time.Time) {
		t.Helper()
		clock.Store(at.UnixNano())
		if err := s.Housekeep(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Just before the end of the first group's second plus the grace:
	// nothing goes but the older entry (due at 10:00:00 plus the grace).
	housekeepAt(t0.Add(grace + 999*time.Millisecond))
	if has("old-a") {
		t.Error("the older kind's carrier id is still there after the grace")
	}
	for _, cid := range []string{"msg_001-a", "msg_007-b", "msg_009-a"} {
		if !has(cid) {
			t.Errorf("%s went before its group was due", cid)
		}
	}
	// Past it: the first group goes, but not the id msg_100 reuses.
	housekeepAt(t0.Add(grace + 1001*time.Millisecond))
	for _, cid := range []string{"msg_001-a", "msg_007-b", "msg_000-b"} {
		if has(cid) {
			t.Errorf("%s is still there after its group was due", cid)
		}
	}
	if !has("msg_000-a") || !has("msg_009-a") {
		t.Error("the reused id or the second group went with the first group")
	}
	if got := groupSizes(t, s); !slices.Equal(got, []int{4, 1}) {
		t.Errorf("groups left %v, want [4 1]", got)
	}
	// Past the reuse's grace, everything has gone.
	housekeepAt(reusedAt.Add(grace + time.Second))
	if has("msg_000-a") || has("msg_009-a") {
		t.Error("carrier ids left after every grace")
	}
	if n := len(expiryEntries(t, s, expiryCarrierRefs)) + len(expiryEntries(t, s, expiryCarrierRef)); n != 0 {
		t.Errorf("%d expiry entries left", n)
	}
}

// expiryEntries returns the values of the expiry queue entries of kind.
func expiryEntries(t *testing.T, s *Store, kind byte) [][]byte {
	t.Helper()
	prefix := expiryPrefix(nil, kind)
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var vs [][]byte
	for ok := it.SeekGE(prefix); ok && string(it.Key()[:len(prefix)]) == string(prefix); ok = it.Next() {
		vs = append(vs, slices.Clone(it.Value()))
	}
	return vs
}

// groupSizes returns how many carrier ids each expiryCarrierRefs entry
// names, in the queue's order.
func groupSizes(t *testing.T, s *Store) []int {
	t.Helper()
	var sizes []int
	for _, v := range expiryEntries(t, s, expiryCarrierRefs) {
		refs, err := decodeRefGroup(v)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(refs))
	}
	return sizes
}

// A group's value decodes to what was encoded, and a cut one is refused.
func TestRefGroupCodec(t *testing.T) {
	refs := []queuedRef{{target: string(carrierKey(nil, "x", "a1")), guard: "msg_1"}, {target: "c/\x00", guard: ""}}
	v := appendRefGroup(nil, refs)
	got, err := decodeRefGroup(v)
	if err != nil || !slices.Equal(got, refs) {
		t.Fatalf("decoded %q, %v; want %q", got, err, refs)
	}
	for n := range len(v) {
		if _, err := decodeRefGroup(v[:n]); !errors.Is(err, errCorrupt) {
			t.Errorf("a value cut to %d bytes decoded: %v", n, err)
		}
	}
}

// A long message is final when its last part settles: its carrier ids
// are kept for the grace from then, though its status is that of a part
// that failed long before.
func TestFinalRefsCountFromTheLastPart(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	const grace = time.Hour
	s, err := Open(t.TempDir(), Options{CarrierIDGrace: grace, Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	m := &sb.Message{ID: "msg_001", Key: "k", Segments: 2, Status: sb.StatusAccepted,
		AcceptedAt: t0, Events: []sb.Event{{Status: sb.StatusAccepted, At: t0}}}
	if err := s.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
		t.Fatal(err)
	}
	last := t0.Add(50 * time.Minute)
	got, err := s.Record(ctx, []sb.Update{
		{MessageID: m.ID, Transition: sb.Transition{Part: -1,
			Event: sb.Event{Status: sb.StatusSubmitted, At: t0, Carrier: "x"}, CarrierIDs: []string{"p1", "p2"}}},
		{MessageID: m.ID, Transition: sb.Transition{Part: 0, Event: sb.Event{Status: sb.StatusUndeliverable, At: t0.Add(time.Minute), Carrier: "x"}}},
		{MessageID: m.ID, Transition: sb.Transition{Part: 1, Event: sb.Event{Status: sb.StatusDelivered, At: last, Carrier: "x"}}},
	})
	if err != nil || got[2].Status != sb.StatusUndeliverable {
		t.Fatalf("record: %v, %+v", err, got)
	}
	// Past the grace counted from the failed part, within it from the last.
	clock.Store(t0.Add(time.Minute + grace + time.Minute).UnixNano())
	if err := s.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if id, _, err := s.CarrierMessage(ctx, "x", "p2"); err != nil || id != m.ID {
		t.Fatalf("carrier id p2 within the grace of the message's final time: %q, %v", id, err)
	}
	clock.Store(last.Add(grace + 2*time.Second).UnixNano())
	if err := s.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CarrierMessage(ctx, "x", "p2"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("carrier id p2 past the grace: %v, want not found", err)
	}
}
