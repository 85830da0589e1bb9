package concat_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/concat"
)

const timeout = 5 * time.Minute

// add adds p and fails the test on an error.
func add(t *testing.T, r *concat.Reassembler, p switchboard.InboundPart) concat.Added {
	t.Helper()
	res, err := r.Add(p)
	if err != nil {
		t.Fatalf("Add(part %+v): %v", p.Concat, err)
	}
	return res
}

// addAll adds parts in the order given by seqs (1-based, repeats allowed)
// and returns the message the last one completed; every earlier Add must
// leave its part waiting or report a duplicate, as dup says.
func addAll(t *testing.T, r *concat.Reassembler, parts []switchboard.InboundPart, seqs ...int) concat.Assembled {
	t.Helper()
	seen := map[int]bool{}
	for i, s := range seqs {
		res := add(t, r, parts[s-1])
		last := i == len(seqs)-1
		switch {
		case seen[s] != res.Duplicate:
			t.Fatalf("part %d (add %d): Duplicate %v", s, i+1, res.Duplicate)
		case res.Complete != last:
			t.Fatalf("part %d (add %d): Complete %v", s, i+1, res.Complete)
		case res.Evicted != nil:
			t.Fatalf("part %d: evicted %+v", s, res.Evicted)
		case res.Waiting() != (!last && !seen[s]):
			t.Fatalf("part %d (add %d): Waiting %v", s, i+1, res.Waiting())
		}
		seen[s] = true
		if last {
			return res.Message
		}
	}
	return concat.Assembled{}
}

// checkMessage compares a message with what m should give.
func checkMessage(t *testing.T, got concat.Assembled, m msg, parts []switchboard.InboundPart, encoding string) {
	t.Helper()
	if got.Body != m.text || got.Encoding != encoding || got.Partial || got.Segments != len(parts) ||
		got.Carrier != parts[0].Carrier || got.From != m.from || got.To != m.to || !got.ReceivedAt.Equal(parts[0].ReceivedAt) {
		t.Errorf("assembled %q (%s, %d segments, partial %v, %s %s->%s at %v), want %q (%s, %d)",
			got.Body, got.Encoding, got.Segments, got.Partial, got.Carrier, got.From, got.To, got.ReceivedAt,
			m.text, encoding, len(parts))
	}
	if len(got.Parts) != len(parts) {
		t.Fatalf("%d parts, want %d", len(got.Parts), len(parts))
	}
	for i, p := range got.Parts {
		if p.Concat.Seq != uint8(i+1) || string(p.Payload) != string(parts[i].Payload) {
			t.Errorf("Parts[%d] is part %d", i, p.Concat.Seq)
		}
	}
}

func TestSinglePartIsCompleteAtOnce(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 10})
	for _, c := range []*switchboard.Concat{nil, {Ref: 9, Total: 1, Seq: 1}} {
		p := switchboard.InboundPart{Carrier: "sim", From: "447700900123", To: "12345", DataCoding: 0, Payload: []byte("hi"), Concat: c, ReceivedAt: t0}
		res := add(t, r, p)
		m := res.Message
		if !res.Complete || res.Duplicate || res.Waiting() || res.Evicted != nil || m.Body != "hi" || m.Encoding != "gsm7" ||
			m.Segments != 1 || m.Partial || len(m.Parts) != 1 || m.Carrier != "sim" || m.From != p.From || m.To != p.To || !m.ReceivedAt.Equal(t0) {
			t.Errorf("concat %+v: %+v", c, res)
		}
	}
	if n := r.Pending(); n != 0 {
		t.Errorf("Pending %d", n)
	}
}

// Every way of numbering parts, in GSM 7-bit and UCS-2, in and out of
// order and with duplicates.
func TestReassemble(t *testing.T) {
	gsmText := strings.Repeat("GSM 7-bit {with} [escapes] ", 12) // 324 septets
	ucsText := strings.Repeat("Grüße ✓ 😀 ", 15)                  // UCS-2 with surrogate pairs: 165 units
	orders := map[string][]int{
		"in order":     {1, 2, 3},
		"reversed":     {3, 2, 1},
		"shuffled":     {2, 3, 1},
		"duplicates":   {2, 2, 1, 2, 1, 3},
		"dup of first": {1, 1, 3, 1, 2},
	}
	for _, m := range []method{udh8, udh16, sar} {
		for _, tc := range []struct {
			text, encoding string
			size           int
		}{{gsmText, "gsm7", 153}, {ucsText, "ucs2", 134}} {
			for name, order := range orders {
				t.Run(fmt.Sprintf("%s/%s/%s", m, tc.encoding, name), func(t *testing.T) {
					ref := uint16(0x2A)
					if m != udh8 {
						ref = 0xBEEF
					}
					mg := msg{from: "447700900123", to: "12345", text: tc.text, ref: ref, size: tc.size, method: m}
					parts := mg.parts(t)
					if len(parts) != 3 {
						t.Fatalf("%d parts", len(parts))
					}
					r := concat.New(timeout, concat.Limits{Groups: 10})
					got := addAll(t, r, parts, order...)
					checkMessage(t, got, mg, parts, tc.encoding)
					if got.Parts[0].Concat.Ref != ref {
						t.Errorf("ref %#x, want %#x", got.Parts[0].Concat.Ref, ref)
					}
					if n := r.Pending(); n != 0 {
						t.Errorf("Pending %d after completion", n)
					}
				})
			}
		}
	}
}

func TestDuplicateKeepsTheFirst(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 10})
	mg := msg{from: "447700900123", to: "12345", text: "first part, second part", ref: 1, size: 12}
	parts := mg.parts(t)
	add(t, r, parts[0])
	again := parts[0]
	again.ReceivedAt = again.ReceivedAt.Add(time.Second)
	if !r.Seen(again) {
		t.Fatal("Seen: a repeat of a held part is not reported")
	}
	if res := add(t, r, again); !res.Duplicate || res.Complete || res.Waiting() {
		t.Fatalf("duplicate: %+v", res)
	}
	res := add(t, r, parts[1])
	checkMessage(t, res.Message, mg, parts, "gsm7")
}

// A sender that reuses a reference while a message with it waits for a
// part starts a new message: the waiting one is given up as partial with
// the parts it had (Displace, or Add's Evicted), never mixed with the new
// one's parts, and the new one's first part is not taken for a repeat.
func TestReusedReferenceDisplacesTheWaitingMessage(t *testing.T) {
	old := msg{from: "447700900123", to: "12345", text: "old first, old second", ref: 5, size: 12}
	next := msg{from: "447700900123", to: "12345", text: "new first, new second", ref: 5, size: 12}
	oldParts, newParts := old.parts(t), next.parts(t)

	r := concat.New(timeout, concat.Limits{Groups: 10})
	add(t, r, oldParts[0]) // its second part is lost
	if r.Seen(newParts[0]) {
		t.Fatal("Seen: the new message's first part is reported as a repeat")
	}
	gone, ok := r.Displace(newParts[0])
	if !ok || !gone.Partial || len(gone.Parts) != 1 || string(gone.Parts[0].Payload) != string(oldParts[0].Payload) {
		t.Fatalf("Displace: %+v, %v; want the old message, partial, with its first part", gone, ok)
	}
	add(t, r, newParts[0])
	if n := r.Held(); n != 1 {
		t.Fatalf("%d parts held, want the new message's first", n)
	}
	res := add(t, r, newParts[1])
	checkMessage(t, res.Message, next, newParts, "gsm7")
	if n := r.Held(); n != 0 {
		t.Fatalf("%d parts held after the new message completed, want none", n)
	}

	// Add alone gives the waiting message up as evicted.
	r = concat.New(timeout, concat.Limits{Groups: 10})
	add(t, r, oldParts[0])
	res = add(t, r, newParts[0])
	if len(res.Evicted) != 1 || !res.Evicted[0].Partial || string(res.Evicted[0].Parts[0].Payload) != string(oldParts[0].Payload) || !res.Waiting() {
		t.Fatalf("Add of a part reusing a waiting message's reference: %+v", res)
	}
	checkMessage(t, add(t, r, newParts[1]).Message, next, newParts, "gsm7")
}

func TestSplitCharacters(t *testing.T) {
	for _, tc := range []struct {
		name, text, encoding string
		size                 int
	}{
		// "Total: 5€": the escape is octet 9, the euro code octet 10.
		{"escape cut", "Total: 5€ and some more text", "gsm7", 9},
		{"escape cut, last octet of part 2", "abcdefghijklmno|pq", "gsm7", 8},
		// "ab😀cd" in UTF-16BE: a b D83D DE00 c d; 6 octets end after the high surrogate.
		{"surrogate pair cut", "ab😀cd and more", "ucs2", 6},
		{"code unit cut", "ab😀cd", "ucs2", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mg := msg{from: "Bank", to: "12345", text: tc.text, ref: 3, size: tc.size}
			parts := mg.parts(t)
			order := make([]int, len(parts))
			for i := range order {
				order[i] = len(parts) - i
			}
			got := addAll(t, concat.New(timeout, concat.Limits{Groups: 10}), parts, order...)
			checkMessage(t, got, mg, parts, tc.encoding)
		})
	}
}

func TestMissingPartExpiresAsPartial(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 10})
	mg := msg{from: "447700900123", to: "12345", text: "one. two. three. ", ref: 200, size: 5}
	parts := mg.parts(t) // "one. " "two. " "three" ". "
	add(t, r, parts[3])
	add(t, r, parts[0])
	add(t, r, parts[2])
	// parts[0] arrived at t0, the earliest: its age decides.
	if got := r.Expire(t0.Add(timeout)); got != nil {
		t.Fatalf("expired at exactly the timeout: %+v", got)
	}
	if r.Pending() != 1 {
		t.Fatalf("Pending %d", r.Pending())
	}
	got := r.Expire(t0.Add(timeout + time.Nanosecond))
	if len(got) != 1 {
		t.Fatalf("expired %d groups", len(got))
	}
	m := got[0]
	if !m.Partial || m.Body != "one. three. " || m.Segments != 4 || len(m.Parts) != 3 || !m.ReceivedAt.Equal(t0) ||
		m.Encoding != "gsm7" || m.From != mg.from || m.To != mg.to || m.Carrier != "sim" {
		t.Errorf("partial %+v", m)
	}
	for i, seq := range []uint8{1, 3, 4} {
		if m.Parts[i].Concat.Seq != seq {
			t.Errorf("Parts[%d] is part %d, want %d", i, m.Parts[i].Concat.Seq, seq)
		}
	}
	if r.Pending() != 0 || r.Expire(t0.Add(time.Hour)) != nil {
		t.Error("the group is still held")
	}
	// The missing part arriving late starts a group of its own.
	if res := add(t, r, parts[1]); !res.Waiting() {
		t.Errorf("late part: %+v", res)
	}
}

func TestExpireOrderAndRestoredParts(t *testing.T) {
	r := concat.New(timeout, concat.Limits{})
	a := msg{from: "A", to: "1", text: "aaaaaaaaaa", ref: 1, size: 5, at: t0.Add(time.Hour)}.parts(t)
	b := msg{from: "B", to: "1", text: "bbbbbbbbbb", ref: 1, size: 5, at: t0.Add(2 * time.Hour)}.parts(t)
	// Restored after a restart: older than both, fed in last, and its later
	// part first.
	c := msg{from: "C", to: "1", text: "ccccccccccccccc", ref: 1, size: 5, at: t0}.parts(t)
	c[1].ReceivedAt = t0.Add(3 * time.Hour)
	add(t, r, b[1])
	add(t, r, a[0])
	add(t, r, c[1]) // the newest group so far
	add(t, r, c[0]) // received at t0: the group becomes the oldest
	if got := r.Expire(t0.Add(timeout + time.Second)); len(got) != 1 || got[0].From != "C" || !got[0].ReceivedAt.Equal(t0) ||
		!got[0].Partial || got[0].Body != "cccccccccc" || got[0].Segments != 3 {
		t.Fatalf("expired %+v", got)
	}
	got := r.Expire(t0.Add(3 * time.Hour))
	if len(got) != 2 || got[0].From != "A" || got[1].From != "B" || got[0].Body != "aaaaa" || got[1].Body != "bbbbb" {
		t.Fatalf("expired %+v", got)
	}
	if !got[1].ReceivedAt.Equal(b[1].ReceivedAt) {
		t.Errorf("B received at %v, want its only part's %v", got[1].ReceivedAt, b[1].ReceivedAt)
	}
}

func TestGroupsAreKeptApart(t *testing.T) {
	r := concat.New(timeout, concat.Limits{})
	text := func(s string) string { return strings.Repeat(s, 20) }
	msgs := []msg{
		{carrier: "sim", from: "447700900123", to: "12345", text: text("A"), ref: 1, size: 10},
		{carrier: "sim", from: "447700900123", to: "12345", text: text("B"), ref: 2, size: 10},   // same sender, another ref
		{carrier: "sim", from: "447700900999", to: "12345", text: text("C"), ref: 1, size: 10},   // same ref, another sender
		{carrier: "sim", from: "447700900123", to: "67890", text: text("D"), ref: 1, size: 10},   // same ref, another recipient
		{carrier: "other", from: "447700900123", to: "12345", text: text("E"), ref: 1, size: 10}, // same ref, another carrier
		{carrier: "sim", from: "447700900123", to: "12345", text: text("F"), ref: 1, size: 5},    // same ref, another total
	}
	var all [][]switchboard.InboundPart
	for _, m := range msgs {
		all = append(all, m.parts(t))
	}
	// Interleave: part 1 of every message, then part 2, ...
	done := map[string]concat.Assembled{}
	for seq := range 4 {
		for i, parts := range all {
			if seq >= len(parts) {
				continue
			}
			res := add(t, r, parts[seq])
			if res.Complete {
				done[msgs[i].text] = res.Message
			} else if !res.Waiting() {
				t.Fatalf("message %d part %d: %+v", i, seq+1, res)
			}
		}
	}
	for i, m := range msgs {
		got, ok := done[m.text]
		if !ok {
			t.Errorf("message %d (%s) not completed", i, m.text[:1])
			continue
		}
		checkMessage(t, got, m, all[i], "gsm7")
	}
	if r.Pending() != 0 {
		t.Errorf("Pending %d", r.Pending())
	}
}

func TestInvalidSequenceNumbers(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 1})
	waiting := msg{from: "X", to: "1", text: "0123456789", ref: 5, size: 5}.parts(t)
	add(t, r, waiting[0])
	for _, c := range []switchboard.Concat{
		{Ref: 1, Total: 3, Seq: 0},
		{Ref: 1, Total: 3, Seq: 4},
		{Ref: 1, Total: 0, Seq: 0},
		{Ref: 1, Total: 0, Seq: 1},
		{Ref: 1, Total: 1, Seq: 0},
		{Ref: 1, Total: 1, Seq: 2},
	} {
		p := switchboard.InboundPart{Carrier: "sim", From: "Y", To: "1", Payload: []byte("x"), Concat: &c, ReceivedAt: t0}
		if res, err := r.Add(p); err == nil {
			t.Errorf("%+v accepted: %+v", c, res)
		}
	}
	// Nothing changed: the one group is still there, nothing was evicted
	// for the refused parts.
	if r.Pending() != 1 {
		t.Errorf("Pending %d", r.Pending())
	}
	res := add(t, r, waiting[1])
	if !res.Complete || res.Message.Body != "0123456789" {
		t.Errorf("%+v", res)
	}
}

func TestMaxGroupsEvictsTheOldest(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 2})
	a := msg{from: "A", to: "1", text: "aaaaaaaaaa", ref: 1, size: 5, at: t0.Add(time.Minute)}.parts(t)
	b := msg{from: "B", to: "1", text: "bbbbbbbbbb", ref: 1, size: 5, at: t0}.parts(t) // older, though added later
	c := msg{from: "C", to: "1", text: "cccccccccc", ref: 1, size: 5, at: t0.Add(2 * time.Minute)}.parts(t)
	add(t, r, a[0])
	add(t, r, b[0])
	// A part of a group already held evicts nothing.
	if res := add(t, r, a[0]); !res.Duplicate || res.Evicted != nil {
		t.Fatalf("duplicate in a full reassembler: %+v", res)
	}
	res := add(t, r, c[0])
	if !res.Waiting() || len(res.Evicted) != 1 {
		t.Fatalf("new group in a full reassembler: %+v", res)
	}
	ev := res.Evicted[0]
	if ev.From != "B" || !ev.Partial || ev.Body != "bbbbb" || ev.Segments != 2 || len(ev.Parts) != 1 || !ev.ReceivedAt.Equal(t0) {
		t.Errorf("evicted %+v", ev)
	}
	if r.Pending() != 2 {
		t.Errorf("Pending %d", r.Pending())
	}
	// A single-part message needs no room.
	if res := add(t, r, switchboard.InboundPart{From: "D", Payload: []byte("d")}); !res.Complete || res.Evicted != nil {
		t.Errorf("single part: %+v", res)
	}
	// Completing a group while full evicts nothing either.
	if res := add(t, r, a[1]); !res.Complete || res.Message.Body != "aaaaaaaaaa" || res.Evicted != nil {
		t.Errorf("completing A: %+v", res)
	}
	if res := add(t, r, c[1]); !res.Complete || res.Message.Body != "cccccccccc" || res.Evicted != nil {
		t.Errorf("completing C: %+v", res)
	}
	// B's second part starts a fresh group; B's first is not in it.
	if res := add(t, r, b[1]); !res.Waiting() || res.Evicted != nil {
		t.Errorf("B's late part: %+v", res)
	}
}

// Parts of many messages added from many goroutines at once, with
// duplicates, while others call Expire and Pending: each message is
// completed exactly once and whole.
func TestConcurrentAdd(t *testing.T) {
	const messages, workers = 200, 8
	r := concat.New(timeout, concat.Limits{})
	var all []switchboard.InboundPart
	texts := map[string]string{}
	for i := range messages {
		m := msg{from: fmt.Sprintf("4477009%05d", i%37), to: "12345", text: fmt.Sprintf("message %03d ", i) + strings.Repeat("€x😀", 10), ref: uint16(i), size: 16}
		parts := m.parts(t)
		all = append(all, parts...)
		all = append(all, parts[0]) // a duplicate of each
		texts[fmt.Sprintf("%s/%d", m.from, m.ref)] = m.text
	}
	// A fixed shuffle, so a failure can be replayed.
	for i := range all {
		j := (i*7919 + 13) % len(all)
		all[i], all[j] = all[j], all[i]
	}
	var (
		mu   sync.Mutex
		done []concat.Assembled
		dups int
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(all); i += workers {
				res, err := r.Add(all[i])
				if err != nil {
					t.Error(err)
					return
				}
				_ = r.Pending()
				if got := r.Expire(t0); got != nil {
					t.Errorf("expired %d groups early", len(got))
				}
				mu.Lock()
				if res.Complete {
					done = append(done, res.Message)
				}
				if res.Duplicate {
					dups++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// A duplicate that comes after its message completed starts a new
	// group rather than being a duplicate; those expire later.
	leftover := r.Expire(t0.Add(time.Hour))
	if len(done) != messages || dups+len(leftover) != messages {
		t.Fatalf("%d completed, %d duplicates, %d leftover groups; want %d completed and %d duplicates or leftovers",
			len(done), dups, len(leftover), messages, messages)
	}
	seen := map[string]bool{}
	for _, m := range done {
		k := fmt.Sprintf("%s/%d", m.From, m.Parts[0].Concat.Ref)
		if seen[k] {
			t.Errorf("%s completed twice", k)
		}
		seen[k] = true
		if m.Body != texts[k] || m.Partial {
			t.Errorf("%s: %q, want %q", k, m.Body, texts[k])
		}
	}
	for _, m := range leftover {
		if !m.Partial || len(m.Parts) != 1 || m.Parts[0].Concat.Seq != 1 {
			t.Errorf("leftover %+v", m)
		}
	}
	if r.Pending() != 0 {
		t.Errorf("Pending %d", r.Pending())
	}
}

// A part sent again after its message completed (the SMSC lost our
// acknowledgement) is a duplicate while the timeout lasts; a part with the
// same reference but other text is a new message; after the timeout the
// memory is gone.
func TestPartAfterCompletion(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 10})
	mg := msg{from: "447700900123", to: "12345", text: "first part, second part", ref: 7, size: 12}
	parts := mg.parts(t)
	add(t, r, parts[0])
	if res := add(t, r, parts[1]); !res.Complete {
		t.Fatalf("not complete: %+v", res)
	}
	late := parts[1]
	late.ReceivedAt = parts[1].ReceivedAt.Add(timeout / 2)
	if !r.Seen(late) {
		t.Fatal("Seen: a late copy of a completed part is not reported")
	}
	if res := add(t, r, late); !res.Duplicate || r.Pending() != 0 {
		t.Fatalf("late copy of a completed part: %+v, %d pending", res, r.Pending())
	}
	reused := parts[0]
	reused.Payload = []byte("another text")
	if r.Seen(reused) {
		t.Fatal("Seen: a new message reusing the reference is reported as seen")
	}
	if res := add(t, r, reused); !res.Waiting() || r.Pending() != 1 {
		t.Fatalf("a new message reusing the reference: %+v, %d pending", res, r.Pending())
	}
	r.Expire(late.ReceivedAt.Add(2 * timeout))
	afterTimeout := parts[1]
	afterTimeout.ReceivedAt = late.ReceivedAt.Add(2 * timeout)
	if res := add(t, r, afterTimeout); !res.Waiting() {
		t.Fatalf("after the timeout: %+v, want a new group", res)
	}
}

// Release forgets the groups keep does not want, without giving them up,
// and keeps the rest.
func TestReleaseForgetsGroups(t *testing.T) {
	r := concat.New(timeout, concat.Limits{Groups: 10})
	mine := msg{from: "447700900123", to: "12345", text: "first part, second part", ref: 1, size: 12}
	theirs := msg{from: "447700900123", to: "67890", text: "first part, second part", ref: 1, size: 12}
	add(t, r, mine.parts(t)[0])
	add(t, r, theirs.parts(t)[0])
	if n := r.Release(func(p switchboard.InboundPart) bool { return p.To == "12345" }); n != 1 || r.Pending() != 1 || r.Held() != 1 {
		t.Fatalf("Release: %d forgotten, %d pending, %d held; want 1, 1, 1", n, r.Pending(), r.Held())
	}
	if res := add(t, r, mine.parts(t)[1]); !res.Complete {
		t.Fatalf("the kept message did not complete: %+v", res)
	}
	if got := r.Expire(time.Now().Add(2 * timeout)); len(got) != 0 {
		t.Fatalf("the forgotten message expired as %+v, want nothing", got)
	}
}

// Parts come from outside, so what is held is bounded in bytes too: past
// the limit the oldest messages are given up as partial (the one a part
// just joined among them, if it is the oldest), a message costs what it
// holds rather than what it declares, and completed messages are
// remembered (to recognise a part sent again) only within the same bound.
func TestMemoryLimitGivesUpTheOldest(t *testing.T) {
	// Parts of 1,000 octets: two fit in 3,000 bytes with what a part
	// costs beyond its payload, three do not.
	text := func(c string) string { return strings.Repeat(c, 3000) }
	mk := func(from string, hour int) []switchboard.InboundPart {
		return msg{from: from, to: "12345", text: text(from), ref: 1, size: 1000, at: t0.Add(time.Duration(hour) * time.Hour)}.parts(t)
	}
	a, b, c := mk("A", 0), mk("B", 1), mk("C", 2)
	r := concat.New(timeout, concat.Limits{Groups: 10, Bytes: 3000})
	accepted, returned := 0, 0
	feed := func(p switchboard.InboundPart) concat.Added {
		t.Helper()
		res := add(t, r, p)
		if !res.Duplicate {
			accepted++
		}
		for _, m := range res.Evicted {
			returned += len(m.Parts)
		}
		if res.Complete {
			returned += len(res.Message.Parts)
		}
		return res
	}
	feed(a[0])
	feed(b[0])
	res := feed(c[0])
	if len(res.Evicted) != 1 || res.Evicted[0].From != "A" || !res.Evicted[0].Partial || len(res.Evicted[0].Parts) != 1 || !res.Waiting() {
		t.Fatalf("third message's first part: %+v; want A given up, partial", res)
	}
	// B, now the oldest, takes its second part and is over the bound
	// with C: B goes with both its parts, C stays.
	res = feed(b[1])
	if len(res.Evicted) != 1 || res.Evicted[0].From != "B" || !res.Evicted[0].Partial || len(res.Evicted[0].Parts) != 2 || !res.Waiting() {
		t.Fatalf("B's second part: %+v; want B given up with two parts", res)
	}
	if n := r.Pending(); n != 1 {
		t.Fatalf("%d messages pending, want C alone", n)
	}
	for _, m := range r.Expire(t0.Add(24 * time.Hour)) {
		returned += len(m.Parts)
	}
	if returned != accepted {
		t.Fatalf("%d parts accepted, %d given back", accepted, returned)
	}

	// A message costs what it holds: ten first parts of messages that
	// declare 255 parts each fit where two 1,000-octet parts do.
	r = concat.New(timeout, concat.Limits{Bytes: 3000})
	for ref := range uint16(10) {
		p := switchboard.InboundPart{Carrier: "sim", From: "D", To: "12345", Payload: []byte("0123456789"),
			Concat: &switchboard.Concat{Ref: ref, Total: 255, Seq: 1}, ReceivedAt: t0}
		if res := add(t, r, p); len(res.Evicted) != 0 {
			t.Fatalf("first part of message %d gave up %d messages", ref, len(res.Evicted))
		}
	}
	if n := r.Pending(); n != 10 {
		t.Fatalf("%d messages pending, want 10", n)
	}
	r.Expire(t0.Add(24 * time.Hour))

	// Completed messages are remembered within the bound: A is, D (which
	// would take it past the bound) is not, so a part of A sent again is
	// a repeat and one of D starts a message.
	two := func(from string) []switchboard.InboundPart {
		return msg{from: from, to: "12345", text: strings.Repeat(from, 2000), ref: 1, size: 1000, at: t0.Add(time.Hour)}.parts(t)
	}
	a, d := two("A"), two("D")
	r = concat.New(timeout, concat.Limits{Bytes: 3000})
	addAll(t, r, a, 1, 2)
	addAll(t, r, d, 1, 2)
	if res := add(t, r, a[0]); !res.Duplicate {
		t.Errorf("A's first part sent again: %+v, want a duplicate", res)
	}
	if res := add(t, r, d[0]); !res.Waiting() {
		t.Errorf("D's first part sent again: %+v, want a new message waiting", res)
	}

	// A new message under a remembered one's reference takes its place,
	// within the bound: a part of it sent again is a repeat.
	r = concat.New(timeout, concat.Limits{Bytes: 3000})
	again := msg{from: "A", to: "12345", text: strings.Repeat("Z", 2000), ref: 1, size: 1000, at: t0.Add(2 * time.Hour)}.parts(t)
	addAll(t, r, two("A"), 1, 2)
	addAll(t, r, again, 1, 2)
	if res := add(t, r, again[1]); !res.Duplicate {
		t.Errorf("the newer message's part sent again: %+v, want a duplicate", res)
	}
}
