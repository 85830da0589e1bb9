package gsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Coding is an SMPP data_coding value (SMPP 3.4 §5.2.19), restricted to the
// codings this package reads.
type Coding byte

const (
	GSM7   Coding = 0x00 // SMSC default alphabet, taken as GSM 7-bit, one septet per octet (unpacked)
	IA5    Coding = 0x01 // IA5 (CCITT T.50), decoded as ISO-8859-1
	Latin1 Coding = 0x03 // ISO-8859-1
	UCS2   Coding = 0x08 // UTF-16BE
)

func (c Coding) String() string {
	switch c {
	case GSM7:
		return "GSM7"
	case IA5:
		return "IA5"
	case Latin1:
		return "Latin1"
	case UCS2:
		return "UCS2"
	}
	return fmt.Sprintf("Coding(0x%02X)", byte(c))
}

// Decode decodes short message data sent with coding c: unpacked GSM7, UCS2,
// or IA5 and Latin-1 as ISO-8859-1. Other codings are an error, because
// guessing would hand a subscriber's binary data on as text.
func Decode(c Coding, data []byte) (string, error) {
	switch c {
	case GSM7:
		return DecodeGSM7(data)
	case UCS2:
		return DecodeUCS2(data)
	case IA5, Latin1:
		return decodeLatin1(data), nil
	}
	return "", fmt.Errorf("gsm: cannot decode data_coding 0x%02X", byte(c))
}

func decodeLatin1(data []byte) string {
	var b strings.Builder
	b.Grow(2 * len(data))
	for _, c := range data {
		b.WriteRune(rune(c))
	}
	return b.String()
}

// EncodeUCS2 appends s to dst as UTF-16BE. Invalid UTF-8 in s becomes
// U+FFFD.
func EncodeUCS2(dst []byte, s string) []byte {
	units := utf16Len(s)
	n := len(dst)
	dst = slices.Grow(dst, 2*units)[:n+2*units]
	putUCS2(dst[n:], s)
	return dst
}

// putUCS2 writes s as UTF-16BE to out, which must hold it; see putGSM7.
func putUCS2(out []byte, s string) {
	j := 0
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			out[j], out[j+1] = byte(hi>>8), byte(hi)
			j += 2
			r = lo
		}
		out[j], out[j+1] = byte(r>>8), byte(r)
		j += 2
	}
}

var errOddUCS2 = errors.New("gsm: UCS2 data has an odd number of octets")

// DecodeUCS2 decodes UTF-16BE. A surrogate without its partner decodes as
// U+FFFD, so that one bad unit does not lose the rest of a message.
func DecodeUCS2(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", errOddUCS2
	}
	var s strings.Builder
	// A unit takes at most 3 UTF-8 bytes; a pair takes 4 for 2 units.
	s.Grow(len(b) / 2 * 3)
	for i := 0; i < len(b); {
		r, n := decodeUnit(b, i)
		s.WriteRune(r)
		i += n
	}
	return s.String(), nil
}

// decodeUnit decodes the unit at b[i:], or the surrogate pair it starts, and
// returns the rune and the octets it took.
func decodeUnit(b []byte, i int) (rune, int) {
	r := unit(b, i)
	if !utf16.IsSurrogate(r) {
		return r, 2
	}
	if r < 0xDC00 && i+2 < len(b) {
		if p := utf16.DecodeRune(r, unit(b, i+2)); p != utf8.RuneError {
			return p, 4
		}
	}
	return utf8.RuneError, 2
}

func unit(b []byte, i int) rune { return rune(b[i])<<8 | rune(b[i+1]) }
