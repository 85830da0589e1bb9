package concat

import (
	"cmp"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// Encodings Decode reports, as Assembled.Encoding holds them.
const (
	EncodingGSM7   = "gsm7"
	EncodingASCII  = "ascii"
	EncodingLatin1 = "latin1"
	EncodingUCS2   = "ucs2"
	EncodingBinary = "binary" // the body is the payload in standard base64
)

// kind is how Decode reads a part's payload.
type kind uint8

const (
	kindGSM7 kind = iota
	kindASCII
	kindLatin1
	kindUCS2
	kindBinary
)

func (k kind) String() string {
	return [...]string{EncodingGSM7, EncodingASCII, EncodingLatin1, EncodingUCS2, EncodingBinary}[k]
}

// Decode joins the payloads of one message's parts in sequence order and
// decodes them, returning the text and its encoding (one of the Encoding
// constants). The parts may come in any order; of two with the same
// sequence number the first given is used. A part without Concat counts
// as sequence number 0. No parts give "" and "".
//
// The data_coding of each part (SMPP 3.4 §5.2.19) is read as follows:
//
//   - 0x00, the SMSC default alphabet: GSM 03.38 7-bit, one septet per
//     octet, which is how carriers/smpp and the simulator carry it. A
//     payload with an octet above 0x7F cannot be that, and SMSCs whose
//     default alphabet is Latin-1 exist, so such a part is read as
//     ISO-8859-1 and reported "latin1" rather than lost; so are the other
//     parts of its message in this alphabet (the SMSC's alphabet is the
//     whole message's, and a part in plain ASCII would otherwise be read
//     as GSM: "@" and "$" as "¡" and "¤").
//   - 0x01, IA5/ASCII: "ascii", read as ISO-8859-1 (octet n is U+00nn),
//     which reads ASCII exactly and keeps the 8-bit octets some SMSCs send
//     under this coding.
//   - 0x03, Latin-1: "latin1".
//   - 0x08, UCS-2: "ucs2", read as UTF-16BE, surrogate pairs included; a
//     surrogate without its partner, and an odd octet at the end, decode as
//     U+FFFD.
//   - 0x02 and 0x04 (octet unspecified): "binary".
//   - 0x05-0x07, 0x09-0x0E (JIS, Cyrillic, Hebrew, pictograms, music
//     codes, Kanji, KS C 5601) and the reserved 0x0B, 0x0C, 0x0F: "binary".
//     They are not decoded, but base64 keeps every octet for a caller that
//     ever needs them.
//   - 0x10-0x7F: the GSM 03.38 coding groups that SMSCs pass through (for
//     example 0x10, flash GSM 7-bit, and 0x18, flash UCS-2): alphabet bits
//     00 are read as 0x00, 10 as 0x08, and 8-bit data, the reserved
//     alphabet and compressed text as "binary".
//   - 0x80-0xBF, reserved: "binary".
//   - 0xC0-0xDF (message waiting, GSM 7-bit) as 0x00; 0xE0-0xEF (message
//     waiting, UCS-2) as 0x08.
//   - 0xF0-0xFF (message class): bit 2 clear is read as 0x00, set (8-bit
//     data) is "binary".
//
// If any part is binary the whole body is: the payloads joined in sequence
// order, in standard base64. Otherwise parts are decoded in runs of
// consecutive sequence numbers and equal coding, and the texts of the runs
// are joined. So a missing part is simply absent from the body, and the
// characters on either side of the gap are not combined into a wrong one
// (a lone escape or surrogate half at the gap is dropped or becomes
// U+FFFD). The encoding reported is that of the part with the lowest
// sequence number; handsets send every part of a message in one coding.
func Decode(parts []switchboard.InboundPart) (body, encoding string) {
	if len(parts) == 0 {
		return "", ""
	}
	ps := slices.Clone(parts)
	slices.SortStableFunc(ps, func(a, b switchboard.InboundPart) int { return cmp.Compare(seqOf(a), seqOf(b)) })
	ps = slices.CompactFunc(ps, func(a, b switchboard.InboundPart) bool {
		return a.Concat != nil && b.Concat != nil && a.Concat.Seq == b.Concat.Seq
	})

	kinds := make([]kind, len(ps))
	binary, latin1 := false, false
	for i, p := range ps {
		kinds[i] = kindOf(p.DataCoding, p.Payload)
		binary = binary || kinds[i] == kindBinary
		latin1 = latin1 || (kinds[i] == kindLatin1 && codingKind(p.DataCoding) == kindGSM7)
	}
	if latin1 { // the SMSC's default alphabet is Latin-1 (see above)
		for i := range kinds {
			if kinds[i] == kindGSM7 {
				kinds[i] = kindLatin1
			}
		}
	}
	if binary {
		var all []byte
		for _, p := range ps {
			all = append(all, p.Payload...)
		}
		return base64.StdEncoding.EncodeToString(all), EncodingBinary
	}

	var b strings.Builder
	var run []byte
	for i, p := range ps {
		if i > 0 && (kinds[i] != kinds[i-1] || gap(ps[i-1], p)) {
			b.WriteString(decodeRun(kinds[i-1], run))
			run = run[:0]
		}
		run = append(run, p.Payload...)
	}
	b.WriteString(decodeRun(kinds[len(ps)-1], run))
	return b.String(), kinds[0].String()
}

func seqOf(p switchboard.InboundPart) int {
	if p.Concat == nil {
		return 0
	}
	return int(p.Concat.Seq)
}

// gap reports whether parts are missing between a and b, which follow each
// other in sequence order.
func gap(a, b switchboard.InboundPart) bool {
	return a.Concat != nil && b.Concat != nil && int(b.Concat.Seq) != int(a.Concat.Seq)+1
}

// kindOf maps a data_coding to how its payload is read; see Decode.
func kindOf(dc byte, payload []byte) kind {
	k := codingKind(dc)
	if k == kindGSM7 && slices.ContainsFunc(payload, func(c byte) bool { return c > 0x7F }) {
		return kindLatin1
	}
	return k
}

func codingKind(dc byte) kind {
	switch {
	case dc == 0x00:
		return kindGSM7
	case dc == 0x01:
		return kindASCII
	case dc == 0x03:
		return kindLatin1
	case dc == 0x08:
		return kindUCS2
	case dc < 0x10:
		return kindBinary
	case dc < 0x80: // GSM 03.38 general data coding and automatic deletion groups
		if dc&0x20 != 0 { // compressed
			return kindBinary
		}
		switch dc & 0x0C {
		case 0x00:
			return kindGSM7
		case 0x08:
			return kindUCS2
		}
		return kindBinary
	case dc < 0xC0:
		return kindBinary
	case dc < 0xE0:
		return kindGSM7
	case dc < 0xF0:
		return kindUCS2
	case dc&0x04 != 0:
		return kindBinary
	}
	return kindGSM7
}

// decodeRun decodes the joined payloads of consecutive parts of one kind,
// which is never kindBinary.
func decodeRun(k kind, b []byte) string {
	switch k {
	case kindGSM7:
		// kindOf checked that every octet is a septet, so this cannot fail.
		if s, err := gsm.DecodeGSM7(b); err == nil {
			return s
		}
	case kindUCS2:
		s, _ := gsm.DecodeUCS2(b[:len(b)&^1]) // even length cannot fail
		if len(b)%2 != 0 {
			s += "\uFFFD"
		}
		return s
	}
	s, _ := gsm.Decode(gsm.Latin1, b) // Latin-1 cannot fail
	return s
}
