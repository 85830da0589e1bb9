package gsm_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

func TestPack7Vectors(t *testing.T) {
	tests := []struct {
		name, text, hex string
	}{
		{"empty", "", ""},
		{"one septet", "a", "61"},
		{"hellohello", "hellohello", "e8329bfd4697d9ec37"},
		// 7 septets leave 7 spare bits, which must hold CR, not '@'.
		{"seven septets pad with CR", "1234567", "31d98c56b3dd1a"},
		{"eight septets fill seven octets", "12345678", "31d98c56b3dd70"},
		{"fifteen septets pad with CR", "123456781234567", "31d98c56b3dd7031d98c56b3dd1a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			septets, err := gsm.EncodeGSM7(nil, tt.text)
			if err != nil {
				t.Fatal(err)
			}
			packed := gsm.Pack7([]byte{0xAA}, septets)
			if got := hex.EncodeToString(packed[1:]); got != tt.hex || packed[0] != 0xAA {
				t.Errorf("Pack7(%q) = %x, want %s after the existing AA", tt.text, packed, tt.hex)
			}
			if got := gsm.Unpack7(nil, packed[1:], len(septets)); !bytes.Equal(got, septets) {
				t.Errorf("Unpack7 = % X, want % X", got, septets)
			}
		})
	}
}

func TestUnpack7PaddingReadsAsCR(t *testing.T) {
	packed, _ := hex.DecodeString("31d98c56b3dd1a")
	got := gsm.Unpack7(nil, packed, 8)
	if string(got) != "1234567\r" {
		t.Errorf("Unpack7 with the pad septet = %q, want %q", got, "1234567\r")
	}
}

func TestUnpack7ShortInput(t *testing.T) {
	packed, _ := hex.DecodeString("e8329bfd4697d9ec37")
	tests := []struct {
		name   string
		packed []byte
		n      int
		want   string
	}{
		{"n beyond data stops at data", packed, 100, "hellohello"},
		{"n within data", packed, 3, "hel"},
		{"negative n", packed, -1, ""},
		{"no data", nil, 5, ""},
		{"one octet holds one septet", packed[:1], 5, "h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gsm.Unpack7(nil, tt.packed, tt.n); string(got) != tt.want {
				t.Errorf("Unpack7(%x, %d) = %q, want %q", tt.packed, tt.n, got, tt.want)
			}
		})
	}
}

func TestPack7RoundTrip(t *testing.T) {
	for n := 0; n <= 200; n++ {
		septets := make([]byte, n)
		for i := range septets {
			septets[i] = byte(i*37+5) & 0x7F
		}
		packed := gsm.Pack7(nil, septets)
		if want := (n*7 + 7) / 8; len(packed) != want {
			t.Fatalf("n=%d: packed to %d octets, want %d", n, len(packed), want)
		}
		if got := gsm.Unpack7(nil, packed, n); !bytes.Equal(got, septets) {
			t.Fatalf("n=%d: round trip = % X, want % X", n, got, septets)
		}
	}
}

func TestPack7IgnoresHighBit(t *testing.T) {
	if got, want := gsm.Pack7(nil, []byte{0xE8, 0xE5}), gsm.Pack7(nil, []byte{0x68, 0x65}); !bytes.Equal(got, want) {
		t.Errorf("Pack7 with high bits = % X, want % X", got, want)
	}
}
