package concat_test

import (
	"encoding/base64"
	"testing"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/concat"
)

// one is a single part without Concat.
func one(coding byte, payload []byte) []switchboard.InboundPart {
	return []switchboard.InboundPart{{DataCoding: coding, Payload: payload}}
}

// numbered returns parts with the given sequence numbers (of total) and
// payloads, all in one coding.
func numbered(coding byte, total uint8, seqs []uint8, payloads ...string) []switchboard.InboundPart {
	out := make([]switchboard.InboundPart, len(seqs))
	for i, s := range seqs {
		out[i] = switchboard.InboundPart{
			DataCoding: coding, Payload: []byte(payloads[i]),
			Concat: &switchboard.Concat{Ref: 7, Total: total, Seq: s},
		}
	}
	return out
}

func TestDecodeCodings(t *testing.T) {
	gsmHello := []byte{'h', 'e', 'l', 'l', 'o', ' ', 0x1B, 0x65, ' ', 0x00, 0x11} // "hello € @_"
	ucs2 := []byte{0x00, 'h', 0x04, 0x48, 0xD8, 0x3D, 0xDE, 0x00}                 // "hш😀"
	bin := []byte{0x00, 0xFF, 0x1B, 0x80}
	for _, tc := range []struct {
		name     string
		coding   byte
		payload  []byte
		body     string
		encoding string
	}{
		{"default alphabet", 0x00, gsmHello, "hello € @_", "gsm7"},
		{"default alphabet, octets above 0x7F", 0x00, []byte("caf\xe9"), "café", "latin1"},
		{"IA5", 0x01, []byte("plain ASCII"), "plain ASCII", "ascii"},
		{"IA5 with 8-bit octets", 0x01, []byte("na\xefve"), "naïve", "ascii"},
		{"Latin-1", 0x03, []byte("Gr\xfc\xdfe \xa4"), "Grüße ¤", "latin1"},
		{"UCS-2", 0x08, ucs2, "hш😀", "ucs2"},
		{"UCS-2 lone high surrogate", 0x08, []byte{0xD8, 0x3D, 0x00, 'x'}, "\uFFFDx", "ucs2"},
		{"UCS-2 lone low surrogate", 0x08, []byte{0xDE, 0x00, 0x00, 'x'}, "\uFFFDx", "ucs2"},
		{"UCS-2 odd length", 0x08, []byte{0x00, 'o', 0x00}, "o\uFFFD", "ucs2"},
		{"octet unspecified 0x02", 0x02, bin, base64.StdEncoding.EncodeToString(bin), "binary"},
		{"octet unspecified 0x04", 0x04, bin, base64.StdEncoding.EncodeToString(bin), "binary"},
		{"JIS", 0x05, bin, base64.StdEncoding.EncodeToString(bin), "binary"},
		{"Cyrillic", 0x06, []byte{0xB4}, base64.StdEncoding.EncodeToString([]byte{0xB4}), "binary"},
		{"reserved 0x0F", 0x0F, []byte("x"), "eA==", "binary"},
		{"flash GSM 7-bit", 0x10, []byte("hi"), "hi", "gsm7"},
		{"GSM 7-bit class 1", 0x11, []byte("hi"), "hi", "gsm7"},
		{"flash 8-bit", 0x14, bin, base64.StdEncoding.EncodeToString(bin), "binary"},
		{"flash UCS-2", 0x18, ucs2, "hш😀", "ucs2"},
		{"compressed", 0x20, []byte("hi"), "aGk=", "binary"},
		{"auto-delete UCS-2", 0x48, ucs2, "hш😀", "ucs2"},
		{"reserved group", 0x80, []byte("hi"), "aGk=", "binary"},
		{"MWI discard", 0xC0, []byte("hi"), "hi", "gsm7"},
		{"MWI store", 0xD8, []byte("hi"), "hi", "gsm7"},
		{"MWI store UCS-2", 0xE0, ucs2, "hш😀", "ucs2"},
		{"class 0", 0xF0, gsmHello, "hello € @_", "gsm7"},
		{"class 1 8-bit", 0xF5, bin, base64.StdEncoding.EncodeToString(bin), "binary"},
		{"empty", 0x00, nil, "", "gsm7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, enc := concat.Decode(one(tc.coding, tc.payload))
			if body != tc.body || enc != tc.encoding {
				t.Errorf("Decode(0x%02X, % X) = %q, %q; want %q, %q", tc.coding, tc.payload, body, enc, tc.body, tc.encoding)
			}
		})
	}
}

func TestDecodeNoParts(t *testing.T) {
	if body, enc := concat.Decode(nil); body != "" || enc != "" {
		t.Errorf("Decode(nil) = %q, %q", body, enc)
	}
}

func TestDecodeJoinsBeforeDecoding(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parts  []switchboard.InboundPart
		body   string
		encode string
	}{
		{
			"escape cut between parts, given out of order",
			numbered(0x00, 2, []uint8{2, 1}, "\x65 ok", "price \x1b"),
			"price € ok", "gsm7",
		},
		{
			// An SMSC whose default alphabet is Latin-1: a part with an
			// 8-bit octet says so for the whole message.
			"latin-1 default alphabet, one part plain ASCII",
			numbered(0x00, 2, []uint8{1, 2}, "caf\xe9 bob", "_x@y.com $5"),
			"café bob_x@y.com $5", "latin1",
		},
		{
			"surrogate pair cut between parts",
			numbered(0x08, 3, []uint8{1, 2, 3}, "\x00a\xd8\x3d", "\xde\x00\x00b", "\x00c"),
			"a😀bc", "ucs2",
		},
		{
			"code unit cut between parts",
			numbered(0x08, 2, []uint8{1, 2}, "\x00a\x04", "\x48"),
			"aш", "ucs2",
		},
		{
			"duplicate sequence number: the first given is used",
			numbered(0x00, 2, []uint8{1, 2, 1}, "first ", "two", "second "),
			"first two", "gsm7",
		},
		{
			"gap: nothing from part 2, escape before it dropped",
			numbered(0x00, 3, []uint8{3, 1}, "\x28end", "one\x1b"),
			"one(end", "gsm7",
		},
		{
			"gap: surrogate halves on both sides do not pair",
			numbered(0x08, 3, []uint8{1, 3}, "\x00a\xd8\x3d", "\xde\x00\x00b"),
			"a\uFFFD\uFFFDb", "ucs2",
		},
		{
			"one binary part makes the whole body binary",
			append(numbered(0x00, 2, []uint8{1}, "ab"), numbered(0x04, 2, []uint8{2}, "\xff")...),
			base64.StdEncoding.EncodeToString([]byte("ab\xff")), "binary",
		},
		{
			"mixed text codings: each run in its own, encoding of part 1",
			append(numbered(0x08, 2, []uint8{2}, "\x04\x48"), numbered(0x00, 2, []uint8{1}, "a\x1b")...),
			"aш", "gsm7",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, enc := concat.Decode(tc.parts)
			if body != tc.body || enc != tc.encode {
				t.Errorf("Decode = %q, %q; want %q, %q", body, enc, tc.body, tc.encode)
			}
		})
	}
}

func TestDecodeDoesNotReorderTheCallersParts(t *testing.T) {
	parts := numbered(0x00, 2, []uint8{2, 1}, "b", "a")
	if body, _ := concat.Decode(parts); body != "ab" {
		t.Fatalf("body %q", body)
	}
	if parts[0].Concat.Seq != 2 {
		t.Error("Decode sorted the caller's slice")
	}
}
