package gsm

import (
	"errors"
	"fmt"
)

// Information element identifiers for concatenation, TS 23.040 §9.2.3.24.
const (
	ieiConcat8  = 0x00
	ieiConcat16 = 0x08
)

// ConcatUDHLen is the length of the header AppendConcatUDH writes.
const ConcatUDHLen = 6

// AppendConcatUDH appends a UDH holding only the concatenation element with
// an 8-bit reference: UDHL 05, IEI 00, IEDL 03, ref, total, seq. Every part
// of one text carries the same ref and total; seq counts from 1.
func AppendConcatUDH(dst []byte, ref, total, seq byte) []byte {
	return append(dst, ConcatUDHLen-1, ieiConcat8, 3, ref, total, seq)
}

// Concat is the concatenation element of a UDH.
type Concat struct {
	Ref   uint16
	Total byte
	Seq   byte
	Wide  bool // the 16-bit reference element (IEI 0x08) carried Ref
}

// Valid reports whether c can name a part of a message: a total of at least
// 1 and a sequence number from 1 to the total. TS 23.040 §9.2.3.24.1 has a
// receiver ignore an element that fails this; SMPP's SAR TLVs carry the
// same three values and are judged by the same rule.
func (c Concat) Valid() bool { return c.Seq >= 1 && c.Seq <= c.Total }

// ParseUDH reads the UDH at the start of ud, whose first octet is the UDH
// length, as sent when TP-UDHI (SMPP esm_class 0x40) is set. n is the number
// of octets the header takes, so the text starts at ud[n:]. It is an error
// when the header runs past ud or an element runs past the header.
//
// As TS 23.040 §9.2.3.24 asks of a receiver, other elements are skipped, a
// concatenation element whose length, total or sequence number is invalid is
// ignored, and of several concatenation elements the last one counts.
func ParseUDH(ud []byte) (c Concat, found bool, n int, err error) {
	if len(ud) == 0 {
		return Concat{}, false, 0, errors.New("gsm: no UDH length octet")
	}
	n = int(ud[0]) + 1
	if n > len(ud) {
		return Concat{}, false, 0, fmt.Errorf("gsm: UDH length %d exceeds the %d octets after it", ud[0], len(ud)-1)
	}
	for ies := ud[1:n]; len(ies) > 0; {
		if len(ies) < 2 {
			return Concat{}, false, 0, errors.New("gsm: UDH ends inside an element header")
		}
		iei, end := ies[0], 2+int(ies[1])
		if end > len(ies) {
			return Concat{}, false, 0, fmt.Errorf("gsm: UDH element 0x%02X runs past the header", iei)
		}
		if ie, ok := concatIE(iei, ies[2:end]); ok {
			c, found = ie, true
		}
		ies = ies[end:]
	}
	return c, found, n, nil
}

// concatIE decodes a concatenation element, reporting false for any other
// element and for one a receiver must ignore.
func concatIE(iei byte, data []byte) (Concat, bool) {
	var c Concat
	switch {
	case iei == ieiConcat8 && len(data) == 3:
		c = Concat{Ref: uint16(data[0]), Total: data[1], Seq: data[2]}
	case iei == ieiConcat16 && len(data) == 4:
		c = Concat{Ref: uint16(data[0])<<8 | uint16(data[1]), Total: data[2], Seq: data[3], Wide: true}
	default:
		return Concat{}, false
	}
	return c, c.Valid()
}
