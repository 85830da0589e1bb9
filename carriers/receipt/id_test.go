package receipt

import (
	"strings"
	"testing"
)

func TestIDFormatNormalize(t *testing.T) {
	tests := []struct {
		name        string
		format      IDFormat
		resp, rcpt  string
		wantResp    string
		wantReceipt string
	}{
		{"as is trims", IDAsIs, " abc-1 ", "abc-1\n", "abc-1", "abc-1"},
		{"as is keeps case and zeros", IDAsIs, "00Ab", "00Ab", "00Ab", "00Ab"},
		{"hex resp decimal receipt", IDHexResp, "1A2B", "6699", "6699", "6699"},
		{"hex resp lower case", IDHexResp, "1a2b", "0000006699", "6699", "6699"},
		{"hex both sides, mixed case", IDHex, "00ff", "FF", "255", "255"},
		{"hex 0x prefix", IDHex, "0x1A2B", "0X1a2b", "6699", "6699"},
		{"hex zero", IDHex, "0000", "0", "0", "0"},
		{"hex max uint64", IDHex, "FFFFFFFFFFFFFFFF", "ffffffffffffffff", "18446744073709551615", "18446744073709551615"},
		{"hex beyond 64 bits", IDHex, "FFFFFFFFFFFFFFFFFF", "ffffffffffffffffff", "4722366482869645213695", "4722366482869645213695"},
		{"hex resp beyond 64 bits", IDHexResp, "FFFFFFFFFFFFFFFFFF", "4722366482869645213695", "4722366482869645213695", "4722366482869645213695"},
		{"decimal leading zeros", IDDecimal, "000123", "123", "123", "123"},
		{"decimal all zeros", IDDecimal, "000", "0", "0", "0"},
		{"decimal beyond 64 bits", IDDecimal, "000123456789012345678901234567890", "123456789012345678901234567890", "123456789012345678901234567890", "123456789012345678901234567890"},
		{"hex unparseable kept trimmed", IDHex, " xyz-1 ", "-1A", "xyz-1", "-1A"},
		{"decimal unparseable kept trimmed", IDDecimal, " 12a ", "+12", "12a", "+12"},
		{"hex lone prefix", IDHex, "0x", "", "0x", ""},
		{"hex resp receipt not decimal", IDHexResp, "1A", "1A", "26", "1A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.format.NormalizeResp(tt.resp); got != tt.wantResp {
				t.Errorf("NormalizeResp(%q) = %q, want %q", tt.resp, got, tt.wantResp)
			}
			if got := tt.format.NormalizeReceipt(tt.rcpt); got != tt.wantReceipt {
				t.Errorf("NormalizeReceipt(%q) = %q, want %q", tt.rcpt, got, tt.wantReceipt)
			}
			wantMatch := tt.wantResp == tt.wantReceipt
			if got := tt.format.Match(tt.resp, tt.rcpt); got != wantMatch {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.resp, tt.rcpt, got, wantMatch)
			}
		})
	}
}

func TestParseIDFormat(t *testing.T) {
	for in, want := range map[string]IDFormat{
		"":                         IDAsIs,
		"hex":                      IDHex,
		" HEX ":                    IDHex,
		"decimal":                  IDDecimal,
		"hex_resp_decimal_receipt": IDHexResp,
	} {
		got, err := ParseIDFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseIDFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParseIDFormat("octal")
	if err == nil {
		t.Fatal("ParseIDFormat(octal) succeeded")
	}
	for _, name := range []string{"octal", "hex", "decimal", "hex_resp_decimal_receipt"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not mention %q", err, name)
		}
	}
}
