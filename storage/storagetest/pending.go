package storagetest

import (
	"slices"
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
	day1 := time.Date(2025, 3, 1, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	// Accepted at 00:30 in UTC+1, which is still the first day in UTC.
	plus1 := time.FixedZone("UTC+1", 3600)
	var first []*sb.Message
	for i := range 5 {
		m := f.message("k1", day1.Add(time.Duration(i)*time.Second))
		if i == 2 {
			m.AcceptedAt = time.Date(2025, 3, 2, 0, 30, 0, 0, plus1)
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
	got, next := list(sb.MessageQuery{Key: "k1", Day: "2025-03-01", Limit: 100})
	wantIDs(t, got, in.ID, first[4].ID, first[3].ID, first[2].ID, first[1].ID, first[0].ID)
	if next != "" {
		t.Fatalf("next = %q after the whole day, want empty", next)
	}
	if got[4].Status != sb.StatusSubmitted {
		t.Fatalf("listed message has status %s, want submitted", got[4].Status)
	}
	// Pages of two, each starting below the last.
	var paged []*sb.Message
	q := sb.MessageQuery{Key: "k1", Day: "2025-03-01", Direction: sb.DirectionOutbound, Limit: 2}
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
	got, _ = list(sb.MessageQuery{Key: "k1", Day: "2025-03-01", Status: sb.StatusSubmitted, Limit: 10})
	wantIDs(t, got, first[1].ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: "2025-03-01", To: "+447700900999", Limit: 10})
	wantIDs(t, got, first[3].ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: "2025-03-01", Direction: sb.DirectionInbound, Limit: 10})
	wantIDs(t, got, in.ID)
	got, _ = list(sb.MessageQuery{Key: "k1", Day: "2025-03-02", Limit: 100})
	wantIDs(t, got, second.ID)
	got, _ = list(sb.MessageQuery{Key: "k2", Day: "2025-03-01", Limit: 100})
	wantIDs(t, got, other.ID)
	got, _ = list(sb.MessageQuery{Key: "k2", Day: "2025-03-02", Limit: 100})
	wantIDs(t, got)
}
