package receipt

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// IDFormat says how a carrier writes message ids, so that an id from
// submit_sm_resp and one from a receipt compare equal.
type IDFormat string

// The formats seen in practice. The spec leaves the id's form to the SMSC,
// and some SMSCs write the same id as hex in one PDU and decimal in another.
const (
	IDAsIs    IDFormat = ""                         // compare as given (trimmed)
	IDHex     IDFormat = "hex"                      // hexadecimal numbers in both places
	IDDecimal IDFormat = "decimal"                  // decimal numbers in both places
	IDHexResp IDFormat = "hex_resp_decimal_receipt" // hex in submit_sm_resp, decimal in receipts
)

// ParseIDFormat validates a configured id format. Case and surrounding
// whitespace are ignored, since the value comes from hand-written config.
func ParseIDFormat(s string) (IDFormat, error) {
	f := IDFormat(strings.ToLower(strings.TrimSpace(s)))
	switch f {
	case IDAsIs, IDHex, IDDecimal, IDHexResp:
		return f, nil
	}
	return "", fmt.Errorf("receipt: unknown id format %q: allowed are %q (as is), %q, %q, %q",
		s, IDAsIs, IDHex, IDDecimal, IDHexResp)
}

// NormalizeResp returns the canonical form of an id from submit_sm_resp:
// for numeric formats the decimal string of the number without leading
// zeros, for IDAsIs the trimmed input. An id that does not parse as the
// format says comes back trimmed, so a misconfigured carrier still matches
// ids that are byte-for-byte equal.
func (f IDFormat) NormalizeResp(id string) string {
	switch f {
	case IDHex, IDHexResp:
		return hexToDecimal(strings.TrimSpace(id))
	case IDDecimal:
		return canonicalDecimal(strings.TrimSpace(id))
	}
	return strings.TrimSpace(id)
}

// NormalizeReceipt is NormalizeResp for an id from a delivery receipt; it
// differs only for IDHexResp, whose receipts carry the id in decimal.
func (f IDFormat) NormalizeReceipt(id string) string {
	switch f {
	case IDHex:
		return hexToDecimal(strings.TrimSpace(id))
	case IDDecimal, IDHexResp:
		return canonicalDecimal(strings.TrimSpace(id))
	}
	return strings.TrimSpace(id)
}

// Match reports whether an id from submit_sm_resp and one from a receipt
// name the same message.
func (f IDFormat) Match(respID, receiptID string) bool {
	return f.NormalizeResp(respID) == f.NormalizeReceipt(receiptID)
}

// canonicalDecimal strips leading zeros from a string of decimal digits.
// No arithmetic is needed, so ids of any length work.
func canonicalDecimal(s string) string {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return s
	}
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

// hexToDecimal renders a hex number (optional 0x prefix, any case) in
// decimal. It checks the digits itself because strconv and math/big accept
// signs, which an id never has.
func hexToDecimal(s string) string {
	digits := s
	if len(digits) > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') {
		digits = digits[2:]
	}
	if digits == "" || !allHex(digits) {
		return s
	}
	if n, err := strconv.ParseUint(digits, 16, 64); err == nil {
		return strconv.FormatUint(n, 10)
	}
	// Longer than 64 bits: rare enough that math/big's allocations do not
	// matter.
	n, ok := new(big.Int).SetString(digits, 16)
	if !ok {
		return s
	}
	return n.String()
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') && !('A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
