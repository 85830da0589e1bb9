package gsm_test

import (
	"bytes"
	"testing"

	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

func TestAppendConcatUDH(t *testing.T) {
	got := gsm.AppendConcatUDH([]byte{0xFF}, 0x2A, 3, 2)
	if want := []byte{0xFF, 0x05, 0x00, 0x03, 0x2A, 0x03, 0x02}; !bytes.Equal(got, want) {
		t.Fatalf("AppendConcatUDH = % X, want % X", got, want)
	}
	c, found, n, err := gsm.ParseUDH(append(got[1:], "text"...))
	if err != nil || !found || n != gsm.ConcatUDHLen || c != (gsm.Concat{Ref: 0x2A, Total: 3, Seq: 2}) {
		t.Errorf("ParseUDH(AppendConcatUDH) = %+v, %v, %d, %v", c, found, n, err)
	}
}

func TestParseUDH(t *testing.T) {
	tests := []struct {
		name  string
		ud    []byte
		want  gsm.Concat
		found bool
		n     int
	}{
		{"8-bit reference", []byte{0x05, 0x00, 0x03, 0x2A, 0x03, 0x01, 'h', 'i'},
			gsm.Concat{Ref: 0x2A, Total: 3, Seq: 1}, true, 6},
		{"16-bit reference", []byte{0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02},
			gsm.Concat{Ref: 0x1234, Total: 2, Seq: 2, Wide: true}, true, 7},
		{"other elements first", []byte{
			0x0E,
			0x24, 0x01, 0x01, // national language single shift
			0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, // application port addressing
			0x00, 0x03, 0x07, 0x04, 0x03,
			'x'},
			gsm.Concat{Ref: 7, Total: 4, Seq: 3}, true, 15},
		{"other element after", []byte{0x09, 0x08, 0x04, 0xAB, 0xCD, 0x05, 0x01, 0x70, 0x01, 0x00},
			gsm.Concat{Ref: 0xABCD, Total: 5, Seq: 1, Wide: true}, true, 10},
		{"last concatenation element counts", []byte{0x0B, 0x00, 0x03, 0x01, 0x02, 0x01, 0x08, 0x04, 0x00, 0x09, 0x03, 0x03},
			gsm.Concat{Ref: 9, Total: 3, Seq: 3, Wide: true}, true, 12},
		{"invalid later element does not erase earlier", []byte{0x0A, 0x00, 0x03, 0x01, 0x02, 0x01, 0x00, 0x03, 0x01, 0x00, 0x00},
			gsm.Concat{Ref: 1, Total: 2, Seq: 1}, true, 11},
		{"no elements", []byte{0x00, 'a'}, gsm.Concat{}, false, 1},
		{"no concatenation element", []byte{0x03, 0x24, 0x01, 0x01}, gsm.Concat{}, false, 4},
		{"total zero ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x00, 0x00}, gsm.Concat{}, false, 6},
		{"seq zero ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x00}, gsm.Concat{}, false, 6},
		{"seq above total ignored", []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x03}, gsm.Concat{}, false, 6},
		{"wrong element length ignored", []byte{0x04, 0x00, 0x02, 0x01, 0x01}, gsm.Concat{}, false, 5},
		{"empty element", []byte{0x02, 0x00, 0x00}, gsm.Concat{}, false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, found, n, err := gsm.ParseUDH(tt.ud)
			if err != nil || c != tt.want || found != tt.found || n != tt.n {
				t.Errorf("ParseUDH(% X) = %+v, %v, %d, %v; want %+v, %v, %d, nil", tt.ud, c, found, n, err, tt.want, tt.found, tt.n)
			}
		})
	}
}

func TestConcatValid(t *testing.T) {
	for _, tt := range []struct {
		total, seq byte
		want       bool
	}{{1, 1, true}, {3, 1, true}, {3, 3, true}, {0, 0, false}, {0, 1, false}, {2, 0, false}, {2, 3, false}} {
		if got := (gsm.Concat{Ref: 1, Total: tt.total, Seq: tt.seq}).Valid(); got != tt.want {
			t.Errorf("part %d of %d: Valid() = %v, want %v", tt.seq, tt.total, got, tt.want)
		}
	}
}

func TestParseUDHMalformed(t *testing.T) {
	tests := []struct {
		name string
		ud   []byte
	}{
		{"empty", nil},
		{"length past data", []byte{0x05, 0x00, 0x03, 0x2A, 0x03}},
		{"length 255 with little data", []byte{0xFF, 0x00}},
		{"element header cut", []byte{0x01, 0x00}},
		{"element past header", []byte{0x04, 0x00, 0x03, 0x2A, 0x03, 0x01}},
		{"second element past header", []byte{0x06, 0x24, 0x01, 0x01, 0x00, 0x03, 0x2A, 0x02, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, found, n, err := gsm.ParseUDH(tt.ud)
			if err == nil || found || n != 0 || c != (gsm.Concat{}) {
				t.Errorf("ParseUDH(% X) = %+v, %v, %d, %v; want an error and zero values", tt.ud, c, found, n, err)
			}
		})
	}
}
