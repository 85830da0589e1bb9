package storagetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Pending lists a key's messages in ID order whatever order they were
// accepted in, and only that key's; listed messages are copies.
func testPendingOrder(t *testing.T, f *fixture) {
	var k1, k2 []*sb.Message
	for range 6 {
		k1 = append(k1, f.message("k1", now()))
		k2 = append(k2, f.message("k2", now()))
	}
	// Accept out of ID order, k1 in one batch and k2 one by one.
	var batch []sb.NewMessage
	for _, i := range []int{3, 0, 5, 1, 4, 2} {
		batch = append(batch, sb.NewMessage{Message: k1[i]})
		f.accept(t, k2[i])
	}
	if err := f.s.Accept(f.ctx, batch); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	got := f.pending(t, "k1", "", 100)
	wantIDs(t, got, ids(k1...)...)
	wantIDs(t, f.pending(t, "k2", "", 100), ids(k2...)...)
	wantIDs(t, f.pending(t, "k3", "", 100))
	wantIDs(t, f.pending(t, "k", "", 100))
	for i, m := range got {
		wantEqual(t, m, k1[i])
	}
	got[0].Status, got[0].Body = sb.StatusFailed, "changed by the reader"
	wantEqual(t, f.get(t, k1[0].ID), k1[0])
	wantEqual(t, f.pending(t, "k1", "", 1)[0], k1[0])
}

// Paging with afterID and limit walks the whole list once.
func testPendingPaging(t *testing.T, f *fixture) {
	var want []string
	for range 10 {
		m := f.message("k1", now())
		f.accept(t, m)
		want = append(want, m.ID)
	}
	var got []string
	after := ""
	for {
		page := f.pending(t, "k1", after, 3)
		if len(page) > 3 {
			t.Fatalf("page of %d messages, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page...)...)
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged IDs\n got: %v\nwant: %v", got, want)
	}
	wantIDs(t, f.pending(t, "k1", want[4], 2), want[5:7]...)
	// afterID need not be a stored ID: anything sorting between works.
	wantIDs(t, f.pending(t, "k1", want[4]+"~", 1), want[5])
	// beforeID bounds the list from above, exclusive, stored or not.
	wantIDs(t, f.pendingBefore(t, "k1", want[1], want[4], 10), want[2:4]...)
	wantIDs(t, f.pendingBefore(t, "k1", "", want[2]+"~", 10), want[:3]...)
	wantIDs(t, f.pendingBefore(t, "k1", want[3], want[4], 10))
	wantIDs(t, f.pendingBefore(t, "k1", want[5], want[2], 10)) // an empty range
}

// PendingKeys lists exactly the keys with pending messages.
func testPendingKeys(t *testing.T, f *fixture) {
	if keys, err := f.s.PendingKeys(f.ctx); err != nil || len(keys) != 0 {
		t.Fatalf("PendingKeys of an empty store = %v, %v", keys, err)
	}
	a1, a2, b := f.message("a", now()), f.message("a", now()), f.message("b", now())
	c := f.message("c", now())
	f.accept(t, a1, a2, b, c)
	f.record(t, sb.Update{MessageID: c.ID, Transition: status(now(), sb.StatusFailed)})
	f.wantPendingKeys(t, "a", "b")
	f.record(t, sb.Update{MessageID: a1.ID, Transition: submitted(now(), "sandbox", "1")})
	f.wantPendingKeys(t, "a", "b")
	f.record(t, sb.Update{MessageID: a2.ID, Transition: submitted(now(), "sandbox", "2")})
	f.wantPendingKeys(t, "b")
}

// PendingCount counts exactly what Pending lists, per key.
func testPendingCount(t *testing.T, f *fixture) {
	var msgs []*sb.Message
	for range 5 {
		m := f.message("a", now())
		msgs = append(msgs, m)
		f.accept(t, m)
	}
	f.accept(t, f.message("b", now()))
	f.wantPendingCount(t, "a", 5)
	f.record(t,
		sb.Update{MessageID: msgs[0].ID, Transition: submitted(now(), "sandbox", "1")},
		sb.Update{MessageID: msgs[1].ID, Transition: status(now(), sb.StatusQueued)},
		sb.Update{MessageID: msgs[2].ID, Transition: status(now(), sb.StatusExpired)},
	)
	f.wantPendingCount(t, "a", 3)
	f.wantPendingCount(t, "b", 1)
	f.wantPendingCount(t, "c", 0)
}

func (f *fixture) wantPendingCount(t *testing.T, key string, want int) {
	t.Helper()
	n, err := f.s.PendingCount(f.ctx, key)
	if err != nil || n != want {
		t.Fatalf("PendingCount(%q) = %d, %v; want %d", key, n, err, want)
	}
}

func (f *fixture) wantPendingKeys(t *testing.T, want ...string) {
	t.Helper()
	keys, err := f.s.PendingKeys(f.ctx)
	if err != nil {
		t.Fatalf("PendingKeys: %v", err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Fatalf("PendingKeys = %v, want %v", keys, want)
	}
}

// ListMessages lists a key's messages of one UTC day newest first, pending
// or not, in pages, with filters.
func testListMessages(t *testing.T, f *fixture) {
	// The day before yesterday, a minute before midnight UTC: recent
	// enough for any store's retention to keep.
	day1 := time.Now().UTC().Truncate(24 * time.Hour).Add(-24*time.Hour - time.Minute)
	d1, d2 := day1.Format(time.DateOnly), day1.Add(time.Minute).Format(time.DateOnly)
	day2 := day1.Add(2 * time.Minute)
	// Accepted at 00:30 in UTC+1, which is still the first day in UTC.
	plus1 := time.FixedZone("UTC+1", 3600)
	var first []*sb.Message
	for i := range 5 {
		m := f.message("k1", day1.Add(time.Duration(i)*time.Second))
		if i == 2 {
			m.AcceptedAt = day1.Add(-29 * time.Minute).In(plus1) // 00:30 the next day in UTC+1, 23:30 in UTC
		}
		if i == 3 {
			m.To = "+447700900999"
		}
		first = append(first, m)
	}
	second := f.message("k1", day2)
	other := f.message("k2", day1)
	f.accept(t, append(first, second, other)...)
	f.record(t, sb.Update{MessageID: first[1].ID, Transition: submitted(day2, "sandbox", "x")})
	in := f.inbound("k1", day1.Add(10*time.Second))
	if err := f.s.AcceptInbound(f.ctx, in, nil, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}

	list := func(q sb.MessageQuery) ([]*sb.Message, string) {
		t.Helper()
		msgs, next, err := f.s.ListMessages(f.ctx, q)
		if err != nil {
			t.Fatalf("ListMessages(%+v): %v", q, err)
		}
		return msgs, next
	}
	got, next := list(sb.MessageQuery{Key: "k1", Day: d1, Limit: 100})
	wantIDs(t, got, in.ID, first[4].ID, first[3].ID, first[2].ID, first[1].ID, first[0].ID)
	if next != "" {
		t.Fatalf("next = %q after the whole day, want empty", next)
	}
	if got[4].Status != sb.StatusSubmitted {
		t.Fatalf("listed message has status %s, want submitted", got[4].Status)
	}
	// Pages of two, each starting below the last.
	var paged []*sb.Message
	q := sb.MessageQuery{Key: "k1", Day: d1, Direction: sb.DirectionOutbound, Limit: 2}
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("paging does not end")
		}
		msgs, next := list(q)
		paged = append(paged, msgs...)
		if next == "" {
			break
		}
		q.Before = next
	}
	wantIDs(t, paged, first[4].ID, first[3].ID, first[2].ID, first[1].ID, first[0].ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: d1, Status: sb.StatusSubmitted, Limit: 10})
	wantIDs(t, got, first[1].ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: d1, To: "+447700900999", Limit: 10})
	wantIDs(t, got, first[3].ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: d1, Direction: sb.DirectionInbound, Limit: 10})
	wantIDs(t, got, in.ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: d2, Limit: 100})
	wantIDs(t, got, second.ID)
	got, _ = list(sb.MessageQuery{Key: "k2", Day: d1, Limit: 100})
	wantIDs(t, got, other.ID)
	got, _ = list(sb.MessageQuery{Key: "k2", Day: d2, Limit: 100})
	wantIDs(t, got)
}

// PendingCount follows every way in and out of pending: Accept (not a
// failed one), AcceptInbound (never pending), a submission that leaves
// parts without a carrier id (still pending), the rest of it, queued
// (still pending), a final status, and a Record that fails as a whole.
// It agrees with Pending for a key written to concurrently.
func testPendingCountLifecycle(t *testing.T, f *fixture) {
	var ms []*sb.Message
	for range 4 {
		m := f.message("a", now())
		m.Segments = 2
		ms = append(ms, m)
	}
	f.accept(t, ms...)
	if err := f.s.AcceptInbound(f.ctx, f.inbound("a", now()), nil, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}
	dup := f.message("a", now())
	dup.ID = ms[0].ID
	wantCode(t, f.s.Accept(f.ctx, []sb.NewMessage{{Message: f.message("a", now())}, {Message: dup}}), sb.ECONFLICT)
	f.wantPendingCount(t, "a", 4)

	f.record(t, sb.Update{MessageID: ms[0].ID, Transition: submitted(now(), "sandbox", "c-0", "")})
	f.wantPendingCount(t, "a", 4)
	f.record(t,
		sb.Update{MessageID: ms[0].ID, Transition: submitted(now(), "sandbox", "", "c-1")},
		sb.Update{MessageID: ms[1].ID, Transition: status(now(), sb.StatusQueued)},
	)
	f.wantPendingCount(t, "a", 3)
	f.record(t, sb.Update{MessageID: ms[1].ID, Transition: status(now(), sb.StatusFailed)})
	f.wantPendingCount(t, "a", 2)
	_, err := f.s.Record(f.ctx, []sb.Update{
		{MessageID: ms[2].ID, Transition: status(now(), sb.StatusFailed)},
		{MessageID: f.ids.next(), Transition: status(now(), sb.StatusFailed)},
	})
	wantCode(t, err, sb.ENOTFOUND)
	f.wantPendingCount(t, "a", 2)
	// A final message stays out, whatever comes later.
	f.record(t, sb.Update{MessageID: ms[1].ID, Transition: status(now(), sb.StatusQueued)})
	f.wantPendingCount(t, "a", 2)

	var wg sync.WaitGroup
	batches := make([][]*sb.Message, 8)
	for g := range batches {
		for range 10 {
			batches[g] = append(batches[g], f.message("b", now()))
		}
	}
	for g, batch := range batches {
		wg.Go(func() {
			for i, m := range batch {
				if err := f.s.Accept(f.ctx, []sb.NewMessage{{Message: m}}); err != nil {
					t.Errorf("Accept: %v", err)
					return
				}
				if (g+i)%3 == 0 {
					if _, err := f.s.Record(f.ctx, []sb.Update{{MessageID: m.ID, Transition: submitted(now(), "sandbox", m.ID)}}); err != nil {
						t.Errorf("Record: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	f.wantPendingCount(t, "b", len(f.pending(t, "b", "", 1000)))
}

// ListMessages pages a day to its end whatever the page size, next is
// empty exactly when the day is done, Before need not be a stored ID, a
// filter that matches nothing ends too, and listed messages are copies.
func testListMessagesPaging(t *testing.T, f *fixture) {
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-36 * time.Hour)
	d, next := day.Format(time.DateOnly), day.Add(24*time.Hour).Format(time.DateOnly)
	var ms []*sb.Message
	for i := range 7 {
		ms = append(ms, f.message("k1", day.Add(time.Duration(i)*time.Minute)))
	}
	f.accept(t, ms...)
	newest := slices.Clone(ms)
	slices.Reverse(newest)
	for _, limit := range []int{1, 2, 3, 6, 7, 8, 1000} {
		var got []*sb.Message
		q := sb.MessageQuery{Key: "k1", Day: d, Limit: limit}
		for calls := 0; ; calls++ {
			if calls > len(ms)+1 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			page, next, err := f.s.ListMessages(f.ctx, q)
			if err != nil {
				t.Fatalf("ListMessages(%+v): %v", q, err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			q.Before = next
		}
		wantIDs(t, got, ids(newest...)...)
	}
	list := func(q sb.MessageQuery) []*sb.Message {
		t.Helper()
		var all []*sb.Message
		for calls := 0; ; calls++ {
			if calls > len(ms)+1 {
				t.Fatalf("%+v: paging does not end", q)
			}
			page, next, err := f.s.ListMessages(f.ctx, q)
			if err != nil {
				t.Fatalf("ListMessages(%+v): %v", q, err)
			}
			all = append(all, page...)
			if next == "" {
				return all
			}
			q.Before = next
		}
	}
	wantIDs(t, list(sb.MessageQuery{Key: "k1", Day: d, Before: ms[3].ID + "~", Limit: 2}), ms[3].ID, ms[2].ID, ms[1].ID, ms[0].ID)
	wantIDs(t, list(sb.MessageQuery{Key: "k1", Day: d, Before: ms[0].ID, Limit: 2}))
	wantIDs(t, list(sb.MessageQuery{Key: "k1", Day: d, Status: sb.StatusDelivered, Limit: 2}))
	wantIDs(t, list(sb.MessageQuery{Key: "k1", Day: next, Limit: 2}))
	f.record(t, sb.Update{MessageID: ms[5].ID, Transition: status(now(), sb.StatusFailed)})
	wantIDs(t, list(sb.MessageQuery{Key: "k1", Day: d, Status: sb.StatusAccepted, Limit: 4}),
		ms[6].ID, ms[4].ID, ms[3].ID, ms[2].ID, ms[1].ID, ms[0].ID)

	page := list(sb.MessageQuery{Key: "k1", Day: d, Limit: 1000})
	page[0].Body, page[0].Events[0].Status = "changed by the reader", sb.StatusFailed
	wantEqual(t, f.get(t, ms[6].ID), ms[6])
}

// A store that works says it takes writes.
func testWritable(t *testing.T, f *fixture) {
	if err := f.s.Writable(); err != nil {
		t.Fatalf("Writable of a new store: %v", err)
	}
	f.accept(t, f.message("k1", now()))
	if err := f.s.Writable(); err != nil {
		t.Fatalf("Writable after a write: %v", err)
	}
}
