package smsc

import (
	"bytes"
	"strings"
	"testing"

	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// The MO options: parts in a chosen order with duplicates and one left
// out, a chosen reference, and parts cut blindly through escape and
// surrogate pairs.
func TestInjectMOOptions(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Receiver, "acme")

	for _, tc := range []struct {
		name   string
		mo     MO
		coding gsm.Coding
		ud     []byte // the whole encoded text
		size   int    // octets per part
		seqs   []byte // the parts expected, in order
	}{
		{
			name: "escape cut, 8-bit ref, order with duplicate and gap",
			// "abcd€ef": a b c d ESC 0x65 e f; 5 septets a part cut the escape pair.
			mo:     MO{From: "+447700900123", To: "12345", Text: "abcd€efghijklm", Ref: 0x1234, PartSize: 5, Order: []int{3, 1, 3}},
			coding: gsm.GSM7, ud: []byte{'a', 'b', 'c', 'd', 0x1B, 0x65, 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm'},
			size: 5, seqs: []byte{3, 1, 3},
		},
		{
			name:   "surrogate cut, 16-bit ref",
			mo:     MO{From: "Bank", To: "12345", Text: "ab😀cd", Wide: true, Ref: 0xBEEF, PartSize: 3, Order: []int{2, 1}},
			coding: gsm.UCS2, ud: gsm.EncodeUCS2(nil, "ab😀cd"),
			size: 6, seqs: []byte{2, 1},
		},
		{
			name:   "SAR, all parts in order",
			mo:     MO{From: "Bank", To: "12345", Text: "ab😀cd", SAR: true, Ref: 7, PartSize: 4},
			coding: gsm.UCS2, ud: gsm.EncodeUCS2(nil, "ab😀cd"),
			size: 8, seqs: []byte{1, 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.InjectMO("acme", tc.mo); err != nil {
				t.Fatal(err)
			}
			total := byte((len(tc.ud) + tc.size - 1) / tc.size)
			for i, seq := range tc.seqs {
				p := readMO(t, c)
				wantRef := tc.mo.Ref
				if !tc.mo.Wide && !tc.mo.SAR {
					wantRef &= 0xFF
				}
				if p.concat == nil || p.concat.Ref != wantRef || p.concat.Total != total || p.concat.Seq != seq ||
					p.concat.Wide != tc.mo.Wide || p.coding != byte(tc.coding) {
					t.Fatalf("deliver_sm %d: coding 0x%02X concat %+v, want ref %#x part %d of %d", i+1, p.coding, p.concat, wantRef, seq, total)
				}
				start := int(seq-1) * tc.size
				if want := tc.ud[start:min(start+tc.size, len(tc.ud))]; !bytes.Equal(p.ud, want) {
					t.Errorf("part %d: % X, want % X", seq, p.ud, want)
				}
			}
		})
	}
}

func TestInjectMOInvalidOptionsSendNothing(t *testing.T) {
	s := listen(t, Config{})
	c := dial(t, s.Addr())
	c.mustBind(pdu.Receiver, "acme")
	long := strings.Repeat("x", 200) // two parts as gsm.Split cuts it
	for _, mo := range []MO{
		{From: "A", To: "1", Text: long, Order: []int{1, 3}},
		{From: "A", To: "1", Text: long, Order: []int{0}},
		{From: "A", To: "1", Text: long, PartSize: 248},
		{From: "A", To: "1", Text: "ш", PartSize: 124},
		{From: "A", To: "1", Text: strings.Repeat("x", 256), PartSize: 1},
		{From: "A", To: "1", Text: "", PartSize: 5},
		{From: "A", To: "1", Text: "a\xffb", PartSize: 5},
	} {
		if err := s.InjectMO("acme", mo); err == nil {
			t.Errorf("InjectMO(%+v) accepted", mo)
		}
	}
	// The largest parts allowed are accepted, and are the next to arrive.
	if err := s.InjectMO("acme", MO{From: "A", To: "1", Text: "ш", PartSize: 123}); err != nil {
		t.Fatal(err)
	}
	if err := s.InjectMO("acme", MO{From: "A", To: "1", Text: strings.Repeat("y", 300), Wide: true, PartSize: 247}); err != nil {
		t.Fatal(err)
	}
	if p := readMO(t, c); p.concat != nil || string(p.ud) != "\x04\x48" {
		t.Fatalf("first deliver_sm after the refusals: %+v", p)
	}
	if p := readMO(t, c); p.concat == nil || p.concat.Seq != 1 || len(p.ud) != 247 {
		t.Fatalf("second deliver_sm: concat %+v, %d octets", p.concat, len(p.ud))
	}
	if p := readMO(t, c); p.concat == nil || p.concat.Seq != 2 || len(p.ud) != 53 {
		t.Fatalf("third deliver_sm: concat %+v, %d octets", p.concat, len(p.ud))
	}
}
