package storagetest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// An inbound message is stored as given and readable by ID and by day, but
// never pending; its callback is queued with it, and a nil callback queues
// nothing.
func testAcceptInbound(t *testing.T, f *fixture) {
	m := f.inbound("k1", now())
	m.Partial = true
	cb, _ := sb.InboundCallback(f.ids.event(), "https://example.com/hooks/in", m)
	if err := f.s.AcceptInbound(f.ctx, m, &cb, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}
	quiet := f.inbound("k1", now())
	if err := f.s.AcceptInbound(f.ctx, quiet, nil, nil); err != nil {
		t.Fatalf("AcceptInbound without a callback: %v", err)
	}
	// One still in status accepted is not pending either.
	odd := f.inbound("k2", now())
	odd.Status = sb.StatusAccepted
	if err := f.s.AcceptInbound(f.ctx, odd, nil, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}

	wantEqual(t, f.get(t, m.ID), m)
	wantEqual(t, f.get(t, quiet.ID), quiet)
	byDay := f.byDay(t, "k1", m.Day())
	wantIDs(t, byDay, quiet.ID, m.ID)
	wantEqual(t, byDay[1], m)
	wantIDs(t, f.pending(t, "k1", "", 10))
	wantIDs(t, f.pending(t, "k2", "", 10))
	f.wantPendingCount(t, "k1", 0)
	f.wantPendingCount(t, "k2", 0)
	f.wantPendingKeys(t)
	cbs := f.callbacks(t, "https://example.com:443", "", 10)
	wantCallbackIDs(t, cbs, cb.ID)
	wantCallback(t, cbs[0], cb)
}

// AcceptInbound of an ID that exists (inbound or outbound, stored or
// earlier in a concurrent write) fails with ECONFLICT and does nothing:
// the stored message stays, no callback is queued, no part is removed. A
// callback without an ID is EINVALID.
func testAcceptInboundConflict(t *testing.T, f *fixture) {
	out, in := f.message("k1", now()), f.inbound("k1", now())
	f.accept(t, out)
	if err := f.s.AcceptInbound(f.ctx, in, nil, nil); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}
	p := f.part("sandbox", 7, 2, 1)
	if err := f.s.AddInboundPart(f.ctx, p); err != nil {
		t.Fatalf("AddInboundPart: %v", err)
	}
	for _, id := range []string{out.ID, in.ID} {
		dup := f.inbound("k1", now())
		dup.ID, dup.Body = id, "another body"
		cb, _ := sb.InboundCallback(f.ids.event(), "https://example.com/hooks/in", dup)
		err := f.s.AcceptInbound(f.ctx, dup, &cb, []sb.InboundPart{p})
		wantCode(t, err, sb.ECONFLICT)
	}
	wantEqual(t, f.get(t, out.ID), out)
	wantEqual(t, f.get(t, in.ID), in)
	f.wantEndpoints(t)
	f.wantParts(t, p)

	fresh := f.inbound("k1", now())
	cb, _ := sb.InboundCallback("", "https://example.com/hooks/in", fresh)
	err := f.s.AcceptInbound(f.ctx, fresh, &cb, []sb.InboundPart{p})
	wantCode(t, err, sb.EINVALID)
	f.wantMissing(t, fresh.ID)
	f.wantParts(t, p)

	// Two racing AcceptInbound of one ID: exactly one succeeds.
	racer := f.inbound("k1", now())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- f.s.AcceptInbound(f.ctx, racer, nil, nil) })
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else {
			wantCode(t, err, sb.ECONFLICT)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 8 racing AcceptInbound of one ID succeeded, want 1", ok)
	}
}

// part returns part seq of total of a concatenated message with reference
// ref from +491701234567 to +4915112345678.
func (f *fixture) part(carrier string, ref uint16, total, seq uint8) sb.InboundPart {
	return sb.InboundPart{
		Carrier: carrier, From: "+491701234567", To: "+4915112345678", DataCoding: 8,
		Payload:    []byte{0x00, 'H', 0x00, 'i', 0xff, seq},
		Concat:     &sb.Concat{Ref: ref, Total: total, Seq: seq},
		ReceivedAt: now(),
	}
}

// wantParts fails the test unless the stored parts are exactly want, in
// any order.
func (f *fixture) wantParts(t *testing.T, want ...sb.InboundPart) {
	t.Helper()
	got, err := f.s.InboundParts(f.ctx)
	if err != nil {
		t.Fatalf("InboundParts: %v", err)
	}
	byIdentity := func(a, b sb.InboundPart) int {
		return cmp.Or(cmp.Compare(a.Carrier, b.Carrier), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To),
			cmp.Compare(a.Concat.Ref, b.Concat.Ref), cmp.Compare(a.Concat.Total, b.Concat.Total),
			cmp.Compare(a.Concat.Seq, b.Concat.Seq))
	}
	for _, p := range got {
		if p.Concat == nil {
			t.Fatalf("listed part without a Concat: %+v", p)
		}
	}
	slices.SortFunc(got, byIdentity)
	want = slices.Clone(want)
	slices.SortFunc(want, byIdentity)
	if len(got) != len(want) {
		t.Fatalf("%d parts stored, want %d:\n got: %s\nwant: %s", len(got), len(want), parts(got), parts(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if byIdentity(g, w) != 0 || g.DataCoding != w.DataCoding || !bytes.Equal(g.Payload, w.Payload) ||
			!g.ReceivedAt.Equal(w.ReceivedAt) {
			t.Fatalf("parts differ:\n got: %s\nwant: %s", parts(got), parts(want))
		}
	}
}

func parts(ps []sb.InboundPart) string {
	var b bytes.Buffer
	for _, p := range ps {
		fmt.Fprintf(&b, "{%s %s→%s dcs=%d %x %+v %v} ", p.Carrier, p.From, p.To, p.DataCoding, p.Payload, *p.Concat,
			p.ReceivedAt.UTC())
	}
	return b.String()
}

// Parts are kept by identity: carrier, from, to and Concat. Storing a part
// with the identity of a stored one replaces it; a part differing in any
// of them is another part. A part without a Concat is EINVALID.
func testInboundParts(t *testing.T, f *fixture) {
	f.wantParts(t)
	p1, p2 := f.part("sandbox", 7, 3, 1), f.part("sandbox", 7, 3, 2)
	again := f.part("sandbox", 7, 3, 1)
	again.Payload, again.ReceivedAt = []byte("resent"), now().Add(time.Second)
	otherRef, otherTotal := f.part("sandbox", 8, 3, 1), f.part("sandbox", 7, 2, 1)
	otherCarrier, otherFrom, otherTo := f.part("other", 7, 3, 1), f.part("sandbox", 7, 3, 1), f.part("sandbox", 7, 3, 1)
	otherFrom.From, otherTo.To = "+491709999999", "+4915100000000"
	bigRef := f.part("sandbox", 0xffff, 255, 255)
	for _, p := range []sb.InboundPart{p1, p2, again, otherRef, otherTotal, otherCarrier, otherFrom, otherTo, bigRef} {
		if err := f.s.AddInboundPart(f.ctx, p); err != nil {
			t.Fatalf("AddInboundPart: %v", err)
		}
	}
	f.wantParts(t, again, p2, otherRef, otherTotal, otherCarrier, otherFrom, otherTo, bigRef)

	single := f.part("sandbox", 1, 1, 1)
	single.Concat = nil
	wantCode(t, f.s.AddInboundPart(f.ctx, single), sb.EINVALID)
}

// AcceptInbound removes the parts it names, stored or not (and skips one
// without a Concat), and leaves the others.
func testInboundPartsRemovedByAccept(t *testing.T, f *fixture) {
	p1, p2, p3 := f.part("sandbox", 9, 3, 1), f.part("sandbox", 9, 3, 2), f.part("sandbox", 9, 3, 3)
	keep := f.part("sandbox", 10, 2, 1)
	for _, p := range []sb.InboundPart{p1, p3, keep} {
		if err := f.s.AddInboundPart(f.ctx, p); err != nil {
			t.Fatalf("AddInboundPart: %v", err)
		}
	}
	single := f.part("sandbox", 0, 1, 1)
	single.Concat = nil
	m := f.inbound("k1", now())
	if err := f.s.AcceptInbound(f.ctx, m, nil, []sb.InboundPart{p1, p2, p3, single}); err != nil {
		t.Fatalf("AcceptInbound: %v", err)
	}
	f.wantParts(t, keep)
	wantEqual(t, f.get(t, m.ID), m)
}

// DeleteInboundParts removes the parts given (stored or not) and leaves
// the others.
func testDeleteInboundParts(t *testing.T, f *fixture) {
	p1, p2 := f.part("sandbox", 11, 2, 1), f.part("sandbox", 11, 2, 2)
	keep := f.part("sandbox", 12, 2, 1)
	for _, p := range []sb.InboundPart{p1, keep} {
		if err := f.s.AddInboundPart(f.ctx, p); err != nil {
			t.Fatalf("AddInboundPart: %v", err)
		}
	}
	if err := f.s.DeleteInboundParts(f.ctx, []sb.InboundPart{p1, p2}); err != nil {
		t.Fatalf("DeleteInboundParts: %v", err)
	}
	f.wantParts(t, keep)
}
