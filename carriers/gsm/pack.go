package gsm

import "slices"

// cr pads packed data; see Pack7.
const cr = 0x0D

// Pack7 appends septets to dst packed as TS 23.038 §6.1.2.1.1 describes:
// septet i takes bits 7i to 7i+6 of the output, least significant bit first.
// The high bit of each input octet is ignored. The data starts on an octet
// boundary; aligning it after a UDH is the caller's concern.
//
// When the last octet has 7 spare bits, they hold CR rather than zeros,
// because zeros read as a septet would be a trailing '@' (§6.1.2.3.1).
func Pack7(dst []byte, septets []byte) []byte {
	dst = slices.Grow(dst, (len(septets)*7+7)/8)
	var acc uint16
	var bits uint
	for _, s := range septets {
		acc |= uint16(s&0x7F) << bits
		bits += 7
		if bits >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			bits -= 8
		}
	}
	switch bits {
	case 0:
	case 1:
		dst = append(dst, byte(acc)|cr<<1)
	default:
		dst = append(dst, byte(acc))
	}
	return dst
}

// Unpack7 appends n septets unpacked from packed to dst, one per octet. It
// stops early, without error, when packed holds fewer than n septets, so
// that a wrong length from a carrier cannot make it read out of bounds;
// callers that care compare the number appended with n.
func Unpack7(dst []byte, packed []byte, n int) []byte {
	n = max(0, min(n, len(packed)*8/7))
	dst = slices.Grow(dst, n)
	for i := range n {
		bit := i * 7
		o, shift := bit/8, uint(bit%8)
		v := uint16(packed[o]) >> shift
		if shift > 1 {
			// The septet continues in the next octet, which exists because
			// n is within len(packed)*8/7.
			v |= uint16(packed[o+1]) << (8 - shift)
		}
		dst = append(dst, byte(v&0x7F))
	}
	return dst
}
