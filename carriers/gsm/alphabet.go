package gsm

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// esc is the septet that shifts the next septet to the extension table.
const esc = 0x1B

// defaultTable is the GSM 7-bit default alphabet, TS 23.038 §6.2.1, indexed
// by septet. The entry at esc is never read as a character.
var defaultTable = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// extensionTable is the default alphabet extension table, TS 23.038
// §6.2.1.1, indexed by the septet after esc; 0 marks a code without a
// character of its own.
var extensionTable = [128]rune{
	0x0A: '\f',
	0x14: '^',
	0x28: '{',
	0x29: '}',
	0x2F: '\\',
	0x3C: '[',
	0x3D: '~',
	0x3E: ']',
	0x40: '|',
	0x65: '€',
}

// An encoding packs a rune's septet count into bits 8-9 and its code into
// bits 0-6, so that the hot loops get both from one table load; 0 means the
// rune is not in the alphabet.
type encoding uint16

const (
	oneSeptet  encoding = 1 << 8
	twoSeptets encoding = 2 << 8
)

func (e encoding) septets() int { return int(e >> 8) }
func (e encoding) code() byte   { return byte(e) }

// Every alphabet rune is below U+0100 except ten Greek capitals, all in
// U+0390-U+03AF, and the euro sign; so two small arrays and one comparison
// replace a map.
const (
	greekBase = 0x390
	euroCode  = 0x65
)

type encodeTables struct {
	latin [256]encoding
	greek [32]encoding
}

var encodeTable = buildEncodeTables()

// buildEncodeTables inverts the decode tables, so the two directions cannot
// disagree.
func buildEncodeTables() encodeTables {
	var t encodeTables
	for code, r := range defaultTable {
		if code != esc {
			t.set(r, oneSeptet|encoding(code))
		}
	}
	for code, r := range extensionTable {
		if r != 0 {
			t.set(r, twoSeptets|encoding(code))
		}
	}
	return t
}

func (t *encodeTables) set(r rune, e encoding) {
	switch {
	case r < 0x100:
		t.latin[r] = e
	case uint32(r-greekBase) < 32:
		t.greek[r-greekBase] = e
	case r == '€' && e == twoSeptets|euroCode:
		// lookup returns this constant without a table load.
	default:
		panic(fmt.Sprintf("gsm: no encode slot for %U", r))
	}
}

// lookup returns r's encoding, or 0 if r is not in the alphabet.
func lookup(r rune) encoding {
	switch {
	case uint32(r) < 0x100:
		return encodeTable.latin[r]
	case uint32(r-greekBase) < 32:
		return encodeTable.greek[r-greekBase]
	case r == '€':
		return twoSeptets | euroCode
	}
	return 0
}

// IsGSM7 reports whether every rune of s is in the default alphabet or its
// extension table. Invalid UTF-8 is not.
func IsGSM7(s string) bool {
	for _, r := range s {
		if lookup(r) == 0 {
			return false
		}
	}
	return true
}

// EncodeGSM7 appends the unpacked septets of s to dst, an extension character
// as esc and its code. If a rune is not in the alphabet, or s is not valid
// UTF-8, it returns dst unchanged and an error.
func EncodeGSM7(dst []byte, s string) ([]byte, error) {
	septets, ok := septetLen(s)
	if !ok {
		return dst, notEncodable(s)
	}
	n := len(dst)
	dst = slices.Grow(dst, septets)[:n+septets]
	putGSM7(dst[n:], s)
	return dst, nil
}

// putGSM7 writes the septets of s, which must all be in the alphabet, to
// out, which must hold them. Callers measure first because indexing a sized
// buffer is much faster than appending (250 ns against 400 ns for 160
// septets), and Split has measured anyway.
func putGSM7(out []byte, s string) {
	j := 0
	for _, r := range s {
		e := lookup(r)
		if e >= twoSeptets {
			out[j] = esc
			j++
		}
		out[j] = e.code()
		j++
	}
}

// notEncodable describes the first rune of s that is not in the alphabet.
func notEncodable(s string) error {
	for i, r := range s {
		if lookup(r) != 0 {
			continue
		}
		if _, size := utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError && size == 1 {
			return fmt.Errorf("gsm: invalid UTF-8 at byte %d", i)
		}
		return fmt.Errorf("gsm: %U at byte %d is not in the GSM 7-bit alphabet", r, i)
	}
	return nil
}

// DecodeGSM7 decodes unpacked septets. The package documentation describes
// how it treats escapes without a character and a trailing escape.
func DecodeGSM7(septets []byte) (string, error) {
	var b strings.Builder
	// No septet decodes to more than 2 UTF-8 bytes except the euro sign,
	// which takes 3 bytes for 2 septets.
	b.Grow(2 * len(septets))
	for i := 0; i < len(septets); i++ {
		c := septets[i]
		if c == esc {
			if i++; i == len(septets) {
				break
			}
			c = septets[i]
			if c < 0x80 {
				b.WriteRune(extended(c))
				continue
			}
		}
		if c >= 0x80 {
			return "", fmt.Errorf("gsm: octet 0x%02X at %d is not a septet", c, i)
		}
		b.WriteRune(defaultTable[c])
	}
	return b.String(), nil
}

// extended decodes the septet after esc, with the fallbacks of TS 23.038
// §6.2.1.1 for codes the extension table leaves empty.
func extended(c byte) rune {
	if r := extensionTable[c]; r != 0 {
		return r
	}
	if c == esc {
		return ' '
	}
	return defaultTable[c]
}
