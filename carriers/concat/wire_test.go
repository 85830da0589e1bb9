package concat_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/concat"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// wait bounds every wait of the wire tests; passing tests never reach it.
const wait = 10 * time.Second

// added is one Add made by the client's OnInbound.
type added struct {
	res concat.Added
	err error
}

// wire is the simulator, a client bound to it whose OnInbound feeds a
// Reassembler, and what each Add returned.
type wire struct {
	sim *smsc.Server
	r   *concat.Reassembler
	out chan added
}

func startWire(t *testing.T) *wire {
	t.Helper()
	sim, err := smsc.Listen(smsc.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	w := &wire{sim: sim, r: concat.New(time.Minute, concat.Limits{Groups: 100}), out: make(chan added, 1024)}
	bound := make(chan struct{})
	var once sync.Once
	c, err := smpp.NewClient(smpp.Config{
		Name: "sim", Addr: sim.Addr(), SystemID: "sb", Password: "pw",
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
		OnInbound: func(p switchboard.InboundPart, ack func(error)) {
			res, err := w.r.Add(p)
			ack(err)
			w.out <- added{res, err}
		},
		OnState: func(up bool) {
			if up {
				once.Do(func() { close(bound) })
			}
		},
		Log: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-bound:
	case <-time.After(wait):
		t.Fatal("client not bound")
	}
	return w
}

// inject sends mo and returns what the n Adds of its parts gave.
func (w *wire) inject(t *testing.T, mo smsc.MO, n int) []concat.Added {
	t.Helper()
	if err := w.sim.InjectMO("sb", mo); err != nil {
		t.Fatal(err)
	}
	out := make([]concat.Added, n)
	for i := range out {
		select {
		case a := <-w.out:
			if a.err != nil {
				t.Fatalf("Add: %v", a.err)
			}
			out[i] = a.res
		case <-time.After(wait):
			t.Fatalf("%d of %d parts arrived", i, n)
		}
	}
	return out
}

// The simulator's MO options over real SMPP, into carriers/smpp's client
// and a Reassembler: every numbering, both codings, characters cut between
// parts, any order, duplicates.
func TestWireReassembly(t *testing.T) {
	w := startWire(t)
	gsmText := "Price: 5€ {incl. tax} " + strings.Repeat("[GSM 7-bit] ", 30)
	ucsText := "Grüße ✓ " + strings.Repeat("😀 emoji ", 25)
	all := func(n int) []int { return seqs(1, n) }
	for _, tc := range []struct {
		name     string
		mo       smsc.MO
		order    func(n int) []int // of the n parts
		encoding string
		dups     int
	}{
		{"udh8 gsm7 escape cut, shuffled, duplicate",
			smsc.MO{Text: gsmText, Ref: 0x42, PartSize: 9},
			func(n int) []int { return append([]int{2, 2, 1}, seqs(3, n)...) }, "gsm7", 1},
		{"udh16 ucs2 surrogate cut, reversed, duplicates",
			smsc.MO{Text: ucsText, Wide: true, Ref: 0xBEEF, PartSize: 9},
			func(n int) []int { return append(reverse(seqs(2, n)), 3, n, 1) }, "ucs2", 2},
		{"sar gsm7 as gsm.Split cuts it, reversed",
			smsc.MO{Text: gsmText, SAR: true, Ref: 0xABCD},
			func(n int) []int { return reverse(seqs(1, n)) }, "gsm7", 0},
		{"sar ucs2 surrogate cut, duplicate first",
			smsc.MO{Text: ucsText, SAR: true, Ref: 9, PartSize: 36},
			func(n int) []int { return append([]int{1}, seqs(1, n)...) }, "ucs2", 1},
		{"udh8 ucs2 as gsm.Split cuts it", smsc.MO{Text: ucsText}, all, "ucs2", 0},
		{"single part", smsc.MO{Text: "hi there"}, all, "gsm7", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.mo.From, tc.mo.To = "+447700900123", "12345"
			parts := partCount(t, tc.mo)
			tc.mo.Order = tc.order(parts)
			n := len(tc.mo.Order)
			var got []concat.Assembled
			dups := 0
			for _, a := range w.inject(t, tc.mo, n) {
				if a.Complete {
					got = append(got, a.Message)
				}
				if a.Duplicate {
					dups++
				}
				if a.Evicted != nil {
					t.Errorf("evicted %+v", a.Evicted)
				}
			}
			if len(got) != 1 || dups != tc.dups {
				t.Fatalf("%d messages completed, %d duplicates (want %d)", len(got), dups, tc.dups)
			}
			m := got[0]
			if m.Body != tc.mo.Text || m.Encoding != tc.encoding || m.Partial || m.Carrier != "sim" ||
				m.From != "+447700900123" || m.To != "12345" || m.Segments != parts {
				t.Errorf("assembled %q (%s, %d segments, partial %v, %s %s->%s)\nwant %q (%s, %d)",
					m.Body, m.Encoding, m.Segments, m.Partial, m.Carrier, m.From, m.To, tc.mo.Text, tc.encoding, parts)
			}
			if w.r.Pending() != 0 {
				t.Errorf("Pending %d", w.r.Pending())
			}
		})
	}
}

// A part left out: the message expires as partial with the text of the
// parts that came.
func TestWireMissingPart(t *testing.T) {
	w := startWire(t)
	// Cut every 11 septets: "first part ", "second part", " third part".
	res := w.inject(t, smsc.MO{From: "Bank", To: "12345", Text: "first part second part third part", Wide: true, PartSize: 11, Order: []int{3, 1}}, 2)
	for _, a := range res {
		if !a.Waiting() {
			t.Fatalf("part: %+v", a)
		}
	}
	if got := w.r.Expire(time.Now()); got != nil {
		t.Fatalf("expired before the timeout: %+v", got)
	}
	got := w.r.Expire(time.Now().Add(2 * time.Minute))
	if len(got) != 1 {
		t.Fatalf("%d expired", len(got))
	}
	m := got[0]
	if !m.Partial || m.Body != "first part  third part" || m.Segments != 3 || len(m.Parts) != 2 || m.From != "Bank" {
		t.Errorf("partial %q (%d segments, %d parts, partial %v, from %q)", m.Body, m.Segments, len(m.Parts), m.Partial, m.From)
	}
}

// Two messages of one sender with different references, and two senders
// with the same reference, their parts interleaved on the wire.
func TestWireInterleaved(t *testing.T) {
	w := startWire(t)
	a := smsc.MO{From: "+447700900123", To: "12345", Text: strings.Repeat("A", 20), Ref: 1, PartSize: 10}
	b := smsc.MO{From: "+447700900123", To: "12345", Text: strings.Repeat("B", 20), Ref: 2, PartSize: 10}
	c := smsc.MO{From: "+447700900999", To: "12345", Text: strings.Repeat("C", 20), Ref: 1, PartSize: 10}
	send := func(mo smsc.MO, seq int) concat.Added {
		mo.Order = []int{seq}
		return w.inject(t, mo, 1)[0]
	}
	for _, mo := range []smsc.MO{a, b, c} {
		if r := send(mo, 2); !r.Waiting() {
			t.Fatalf("%s part 2: %+v", mo.Text[:1], r)
		}
	}
	if w.r.Pending() != 3 {
		t.Fatalf("Pending %d, want 3", w.r.Pending())
	}
	for _, mo := range []smsc.MO{c, a, b} {
		r := send(mo, 1)
		if !r.Complete || r.Message.Body != mo.Text || r.Message.From != mo.From {
			t.Errorf("%s part 1: %+v", mo.Text[:1], r)
		}
	}
}

// partCount returns the number of parts the simulator cuts mo's text
// into, computed independently of it.
func partCount(t *testing.T, mo smsc.MO) int {
	t.Helper()
	coding, units, parts := gsm.Count(mo.Text)
	if mo.PartSize > 0 {
		parts = (units + mo.PartSize - 1) / mo.PartSize
	}
	if parts < 2 && mo.Text != "hi there" || parts > 255 {
		t.Fatalf("%d parts of %v", parts, coding)
	}
	return parts
}

func seqs(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func reverse(s []int) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
