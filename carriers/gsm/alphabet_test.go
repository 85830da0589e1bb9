package gsm_test

import (
	"bytes"
	"testing"

	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// specDefault is TS 23.038 §6.2.1 written independently of the package's
// table: ASCII where the alphabet agrees with ASCII, code points elsewhere.
func specDefault() map[byte]rune {
	m := map[byte]rune{
		0x00: 0x0040, 0x01: 0x00A3, 0x02: 0x0024, 0x03: 0x00A5, 0x04: 0x00E8, 0x05: 0x00E9,
		0x06: 0x00F9, 0x07: 0x00EC, 0x08: 0x00F2, 0x09: 0x00C7, 0x0A: 0x000A, 0x0B: 0x00D8,
		0x0C: 0x00F8, 0x0D: 0x000D, 0x0E: 0x00C5, 0x0F: 0x00E5, 0x10: 0x0394, 0x11: 0x005F,
		0x12: 0x03A6, 0x13: 0x0393, 0x14: 0x039B, 0x15: 0x03A9, 0x16: 0x03A0, 0x17: 0x03A8,
		0x18: 0x03A3, 0x19: 0x0398, 0x1A: 0x039E, 0x1C: 0x00C6, 0x1D: 0x00E6, 0x1E: 0x00DF,
		0x1F: 0x00C9, 0x24: 0x00A4, 0x40: 0x00A1, 0x5B: 0x00C4, 0x5C: 0x00D6, 0x5D: 0x00D1,
		0x5E: 0x00DC, 0x5F: 0x00A7, 0x60: 0x00BF, 0x7B: 0x00E4, 0x7C: 0x00F6, 0x7D: 0x00F1,
		0x7E: 0x00FC, 0x7F: 0x00E0,
	}
	for c := byte(0x20); c < 0x80; c++ {
		if _, ok := m[c]; !ok {
			m[c] = rune(c)
		}
	}
	return m
}

var specExtension = map[byte]rune{
	0x0A: 0x000C, 0x14: 0x005E, 0x28: 0x007B, 0x29: 0x007D, 0x2F: 0x005C,
	0x3C: 0x005B, 0x3D: 0x007E, 0x3E: 0x005D, 0x40: 0x007C, 0x65: 0x20AC,
}

func TestDefaultTableRoundTrip(t *testing.T) {
	spec := specDefault()
	if len(spec) != 127 {
		t.Fatalf("spec table has %d entries, want 127 (all but escape)", len(spec))
	}
	for code, r := range spec {
		got, err := gsm.EncodeGSM7(nil, string(r))
		if err != nil || !bytes.Equal(got, []byte{code}) {
			t.Errorf("EncodeGSM7(%U) = % X, %v; want %02X", r, got, err, code)
		}
		s, err := gsm.DecodeGSM7([]byte{code})
		if err != nil || s != string(r) {
			t.Errorf("DecodeGSM7(%02X) = %q, %v; want %q", code, s, err, r)
		}
	}
}

func TestExtensionTableRoundTrip(t *testing.T) {
	for code, r := range specExtension {
		want := []byte{0x1B, code}
		got, err := gsm.EncodeGSM7(nil, string(r))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("EncodeGSM7(%U) = % X, %v; want % X", r, got, err, want)
		}
		s, err := gsm.DecodeGSM7(want)
		if err != nil || s != string(r) {
			t.Errorf("DecodeGSM7(% X) = %q, %v; want %q", want, s, err, r)
		}
	}
}

// TestAlphabetIsExact checks that nothing outside the two tables encodes, so
// that a lookalike can never be sent and arrive as a different character.
func TestAlphabetIsExact(t *testing.T) {
	in := map[rune]bool{}
	for _, r := range specDefault() {
		in[r] = true
	}
	for _, r := range specExtension {
		in[r] = true
	}
	for r := rune(0); r < 0x3000; r++ {
		if got := gsm.IsGSM7(string(r)); got != in[r] {
			t.Errorf("IsGSM7(%U) = %v, want %v", r, got, in[r])
		}
	}
	for _, r := range []rune{'€', 0x1F600, 0xFFFD} {
		if got := gsm.IsGSM7(string(r)); got != in[r] {
			t.Errorf("IsGSM7(%U) = %v, want %v", r, got, in[r])
		}
	}
}

func TestEncodeGSM7Errors(t *testing.T) {
	for _, s := range []string{"ç", "a`b", "\x1b", "ok\xffok", "😀"} {
		dst := []byte("keep")
		got, err := gsm.EncodeGSM7(dst, s)
		if err == nil {
			t.Errorf("EncodeGSM7(%q): no error", s)
		}
		if string(got) != "keep" {
			t.Errorf("EncodeGSM7(%q) changed dst to %q", s, got)
		}
	}
}

func TestDecodeGSM7(t *testing.T) {
	tests := []struct {
		name    string
		septets []byte
		want    string
		wantErr bool
	}{
		{"empty", nil, "", false},
		{"text", []byte{0x48, 0x69, 0x00, 0x11}, "Hi@_", false},
		{"euro", []byte{0x1B, 0x65, 0x31}, "€1", false},
		{"unknown escape shows base character", []byte{0x1B, 0x41, 0x1B, 0x00}, "A@", false},
		{"escape escape shows space", []byte{0x1B, 0x1B, 0x61}, " a", false},
		{"trailing escape dropped", []byte{0x61, 0x1B}, "a", false},
		{"lone escape dropped", []byte{0x1B}, "", false},
		{"high bit", []byte{0x61, 0x80}, "", true},
		{"high bit after escape", []byte{0x1B, 0xE5}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gsm.DecodeGSM7(tt.septets)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("DecodeGSM7(% X) = %q, %v; want %q, error %v", tt.septets, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
