package concat_test

import (
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// t0 is the time the tests' first parts arrive.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// method says how a sender numbered its parts on the wire.
type method int

const (
	udh8 method = iota
	udh16
	sar
)

func (m method) String() string { return [...]string{"udh8", "udh16", "sar"}[m] }

// concatOf returns the Concat carriers/smpp reports for a part numbered
// with m: parsed from the UDH bytes a sender writes, or read from the SAR
// TLVs' values.
func concatOf(t testing.TB, m method, ref uint16, total, seq uint8) *switchboard.Concat {
	t.Helper()
	var udh []byte
	switch m {
	case udh8:
		udh = gsm.AppendConcatUDH(nil, byte(ref), total, seq)
	case udh16:
		udh = []byte{6, 0x08, 4, byte(ref >> 8), byte(ref), total, seq}
	case sar:
		// sar_msg_ref_num is 16 bits, whatever the sender's counter.
		return &switchboard.Concat{Ref: ref, Total: total, Seq: seq}
	}
	c, found, n, err := gsm.ParseUDH(udh)
	if err != nil || !found || n != len(udh) {
		t.Fatalf("UDH % X: %+v %v %d %v", udh, c, found, n, err)
	}
	return &switchboard.Concat{Ref: c.Ref, Total: c.Total, Seq: c.Seq}
}

// encode returns the data_coding and user data a handset would use for
// text: GSM 7-bit unpacked when every character is in the alphabet, else
// UCS-2.
func encode(t testing.TB, text string) (byte, []byte) {
	t.Helper()
	if gsm.IsGSM7(text) {
		b, err := gsm.EncodeGSM7(nil, text)
		if err != nil {
			t.Fatal(err)
		}
		return 0x00, b
	}
	return 0x08, gsm.EncodeUCS2(nil, text)
}

// cut cuts b every size octets, regardless of what the octets are: a
// sender that does so can cut an escape or a surrogate pair in two.
func cut(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(size, len(b))
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out
}

// msg describes one long inbound message for the tests.
type msg struct {
	carrier, from, to string
	text              string
	ref               uint16
	size              int // octets per part
	method            method
	at                time.Time // ReceivedAt of part 1; part n arrives n-1 seconds later
}

// parts returns m's parts in sequence order.
func (m msg) parts(t testing.TB) []switchboard.InboundPart {
	t.Helper()
	coding, ud := encode(t, m.text)
	chunks := cut(ud, m.size)
	if len(chunks) > 255 {
		t.Fatalf("%d parts", len(chunks))
	}
	carrier := m.carrier
	if carrier == "" {
		carrier = "sim"
	}
	at := m.at
	if at.IsZero() {
		at = t0
	}
	out := make([]switchboard.InboundPart, len(chunks))
	for i, c := range chunks {
		out[i] = switchboard.InboundPart{
			Carrier: carrier, From: m.from, To: m.to, DataCoding: coding, Payload: c,
			Concat:     concatOf(t, m.method, m.ref, uint8(len(chunks)), uint8(i+1)),
			ReceivedAt: at.Add(time.Duration(i) * time.Second),
		}
	}
	return out
}
