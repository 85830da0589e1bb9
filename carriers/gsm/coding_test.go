package gsm_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

func TestUCS2(t *testing.T) {
	tests := []struct {
		text, hex string
	}{
		{"", ""},
		{"Aш", "00410448"},
		{"😀", "d83dde00"},
		{"a😀b", "0061d83dde000062"},
		{"\uFFFF", "ffff"},
	}
	for _, tt := range tests {
		got := gsm.EncodeUCS2(nil, tt.text)
		if hex.EncodeToString(got) != tt.hex {
			t.Errorf("EncodeUCS2(%q) = %x, want %s", tt.text, got, tt.hex)
		}
		s, err := gsm.DecodeUCS2(got)
		if err != nil || s != tt.text {
			t.Errorf("DecodeUCS2(%x) = %q, %v; want %q", got, s, err, tt.text)
		}
	}
}

func TestEncodeUCS2InvalidUTF8(t *testing.T) {
	if got := gsm.EncodeUCS2([]byte{1}, "a\xff"); !bytes.Equal(got, []byte{1, 0, 'a', 0xFF, 0xFD}) {
		t.Errorf("EncodeUCS2 = % X", got)
	}
}

func TestDecodeUCS2Bad(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr bool
	}{
		{"odd length", []byte{0x00, 0x41, 0x00}, "", true},
		{"one octet", []byte{0x00}, "", true},
		{"lone high surrogate at end", []byte{0x00, 0x41, 0xD8, 0x3D}, "A\uFFFD", false},
		{"high surrogate then letter", []byte{0xD8, 0x3D, 0x00, 0x41}, "\uFFFDA", false},
		{"lone low surrogate", []byte{0xDE, 0x00, 0x00, 0x41}, "\uFFFDA", false},
		{"two high surrogates then low", []byte{0xD8, 0x3D, 0xD8, 0x3D, 0xDE, 0x00}, "\uFFFD😀", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := gsm.DecodeUCS2(tt.data)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("DecodeUCS2(% X) = %q, %v; want %q, error %v", tt.data, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		coding  gsm.Coding
		data    []byte
		want    string
		wantErr bool
	}{
		{gsm.GSM7, []byte{0x1B, 0x65, 0x7F}, "€à", false},
		{gsm.UCS2, []byte{0x04, 0x48}, "ш", false},
		{gsm.Latin1, []byte{'c', 0xE9, 0xA4}, "cé¤", false},
		{gsm.IA5, []byte{'a', 0xFF}, "aÿ", false},
		{0x02, []byte{1, 2}, "", true},
		{0x04, []byte{1, 2}, "", true},
		{gsm.UCS2, []byte{1}, "", true},
	}
	for _, tt := range tests {
		got, err := gsm.Decode(tt.coding, tt.data)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Decode(%v, % X) = %q, %v; want %q, error %v", tt.coding, tt.data, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCodingString(t *testing.T) {
	for c, want := range map[gsm.Coding]string{gsm.GSM7: "GSM7", gsm.UCS2: "UCS2", gsm.Latin1: "Latin1", gsm.IA5: "IA5", 0xF5: "Coding(0xF5)"} {
		if got := c.String(); got != want {
			t.Errorf("Coding(%d).String() = %q, want %q", byte(c), got, want)
		}
	}
}
