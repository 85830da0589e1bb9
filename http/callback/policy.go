package callback

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchboard-sms/switchboard"
)

// CheckURL is the static half of the address policy: what can be decided
// from the URL alone, before any DNS lookup. The URL must be printable
// ASCII (it is sent as written), http or https with a host and no
// credentials (switchboard.CallbackEndpoint), with a port from 1 to 65535.
//
// A host that is an IP address in any form a resolver or browser accepts
// ([::1], [::ffff:127.0.0.1], 127.0.0.1, 2130706433, 0177.0.0.1, 0x7f.1,
// 127.1, with or without a trailing dot) is read as the address it means
// and must pass AllowedIP. A host whose last label is a number but that is
// not such an address (1.2.3.4.5, 256.1.1.1, example.123) is refused, as
// is an IPv6 zone. A name must be ASCII letters, digits, '-' and '_' in
// dot-separated labels (an international name in its xn-- form), so that
// no resolver maps it to something else first; unless allowPrivate,
// "localhost" and names under ".localhost" are refused.
//
// Names are not resolved here: the client checks what they resolve to each
// time it connects. Errors are *switchboard.Error with code EINVALID.
func CheckURL(raw string, allowPrivate bool) error {
	_, err := checkURL(raw, allowPrivate)
	return err
}

// target is a URL that passed CheckURL.
type target struct {
	endpoint string     // scheme://host:port, as switchboard.CallbackEndpoint
	scheme   string     // "http" or "https"
	host     string     // lower case, without brackets or trailing dot
	port     string     // always present
	portNum  uint16     // port as a number
	ip       netip.Addr // the host as an address, if it is one
	tls      bool
}

func (t *target) defaultPort() string {
	if t.tls {
		return "443"
	}
	return "80"
}

// maxCheckedURLs bounds checkedURLs. A key posts every callback to the same
// URL, so a few distinct URLs carry nearly all the traffic.
const maxCheckedURLs = 4096

// checkedURLs remembers the URLs that passed checkURL, so a URL is parsed
// once rather than for every callback posted to it. checkURL depends on
// nothing but the URL and allowPrivate, which is fixed per client. Refused
// URLs are not kept: they are rare, and a refusal is final for its
// callback.
type checkedURLs struct {
	allowPrivate bool
	seen         *boundedMap[target]
}

func newCheckedURLs(allowPrivate bool) *checkedURLs {
	return &checkedURLs{allowPrivate: allowPrivate, seen: newBoundedMap[target](maxCheckedURLs)}
}

// check is checkURL(raw, c.allowPrivate), from memory when raw was checked
// before.
func (c *checkedURLs) check(raw string) (target, error) {
	if t, ok := c.seen.get(raw); ok {
		return t, nil
	}
	// Checked and kept as a copy: raw may be a slice of a larger buffer
	// (a stored callback), and the target's strings are slices of what
	// was checked.
	raw = strings.Clone(raw)
	t, err := checkURL(raw, c.allowPrivate)
	if err != nil {
		return target{}, err
	}
	return c.seen.add(raw, t), nil
}

func checkURL(raw string, allowPrivate bool) (target, error) {
	// The URL goes on the wire as written: it must be printable ASCII.
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return target{}, switchboard.Errorf(switchboard.EINVALID,
				"callback URL must be printable ASCII without spaces: percent-encode other characters")
		}
	}
	endpoint, err := switchboard.CallbackEndpoint(raw)
	if err != nil {
		return target{}, err
	}
	scheme, hostPort, _ := strings.Cut(endpoint, "://")
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil { // cannot happen: CallbackEndpoint joined them
		return target{}, switchboard.Errorf(switchboard.EINVALID, "callback URL: %v", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return target{}, switchboard.Errorf(switchboard.EINVALID, "callback URL port must be 1 to 65535")
	}
	t := target{endpoint: endpoint, scheme: scheme, host: strings.TrimSuffix(host, "."), port: port,
		portNum: uint16(p), tls: scheme == "https"}
	if t.host == "" {
		return target{}, switchboard.Errorf(switchboard.EINVALID, "callback URL has no host")
	}
	ip, isIP, err := parseHostIP(t.host)
	if err != nil {
		return target{}, err
	}
	if isIP {
		t.ip = ip
		if reason, privateOnly := classify(ip); reason != "" && !(allowPrivate && privateOnly) {
			return target{}, refusal("callback URL host", host, ip, reason, privateOnly)
		}
		return t, nil
	}
	if !validName(t.host) {
		return target{}, switchboard.Errorf(switchboard.EINVALID, "callback URL host %s is not a valid host name "+
			"(ASCII letters, digits, '-' and '_' in dot-separated labels; write an international name in its xn-- form)", host)
	}
	if !allowPrivate && (t.host == "localhost" || strings.HasSuffix(t.host, ".localhost")) {
		return target{}, switchboard.Errorf(switchboard.EINVALID,
			"callback URL host %s is the local machine; set webhooks.allow_private_networks to allow it", host)
	}
	return t, nil
}

// validName reports whether a host name is plain ASCII labels: the form DNS
// looks up, so that no resolver maps it to something else first.
func validName(host string) bool {
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return len(host) <= 253
}

// refusal is the EINVALID error for a host whose address is not allowed.
func refusal(what, host string, ip netip.Addr, reason string, privateOnly bool) error {
	shown := host
	if ip.String() != host {
		shown += " (" + ip.String() + ")"
	}
	hint := ""
	if privateOnly {
		hint = "; set webhooks.allow_private_networks to allow it"
	}
	return switchboard.Errorf(switchboard.EINVALID, "%s %s is %s address%s", what, shown, article(reason), hint)
}

func article(reason string) string {
	switch reason[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + reason
	}
	return "a " + reason
}

// parseHostIP reads a URL host (lower case, no brackets, no trailing dot) as
// an IP address. isIP is false for a name. A host with a colon is IPv6 and
// must parse as such; a host whose last label is a number (decimal, or hex
// with 0x) is IPv4 in the forms inet_aton and the WHATWG URL standard
// accept, and must parse as such. Anything else is a name.
func parseHostIP(host string) (ip netip.Addr, isIP bool, err error) {
	if strings.IndexByte(host, ':') >= 0 {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return netip.Addr{}, false, switchboard.Errorf(switchboard.EINVALID,
				"callback URL host %s is not a valid IPv6 address", host)
		}
		if ip.Zone() != "" {
			return netip.Addr{}, false, switchboard.Errorf(switchboard.EINVALID,
				"callback URL host %s must not have an IPv6 zone", host)
		}
		return ip, true, nil
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if !isNumber(last) {
		return netip.Addr{}, false, nil
	}
	ip, ok := parseIPv4(host)
	if !ok {
		return netip.Addr{}, false, switchboard.Errorf(switchboard.EINVALID,
			"callback URL host %s is numeric but not a valid IPv4 address", host)
	}
	return ip, true, nil
}

// isNumber reports whether a label is a number in the sense of the WHATWG
// URL standard's "ends in a number": all decimal digits, or 0x followed by
// hex digits (possibly none).
func isNumber(label string) bool {
	if label == "" {
		return false
	}
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		for i := 2; i < len(label); i++ {
			if !isHex(label[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseIPv4 parses the IPv4 forms of inet_aton and the WHATWG URL
// standard: one to four dot-separated parts, each decimal, octal (leading
// 0) or hex (leading 0x, where "0x" alone is 0); every part but the last is
// one byte and the last fills the remaining bytes: a (32 bits), a.b (8.24),
// a.b.c (8.8.16), a.b.c.d.
func parseIPv4(s string) (netip.Addr, bool) {
	var parts [4]uint64
	n := 0
	for part := range strings.SplitSeq(s, ".") {
		if n == len(parts) {
			return netip.Addr{}, false
		}
		v, ok := parseIPv4Part(part)
		if !ok {
			return netip.Addr{}, false
		}
		parts[n] = v
		n++
	}
	var v uint64
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (8 * (3 - i))
	}
	lastBits := 8 * (4 - (n - 1))
	if parts[n-1] >= 1<<lastBits {
		return netip.Addr{}, false
	}
	v |= parts[n-1]
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseIPv4Part parses one part of parseIPv4: at most 2^32-1 however it is
// written (values that do not fit are refused by the caller, and longer
// strings are refused here so the value cannot overflow).
func parseIPv4Part(p string) (uint64, bool) {
	base := uint64(10)
	switch {
	case p == "":
		return 0, false
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	// Leading zeros are allowed (inet_aton accepts 00000127), so skip them
	// before the length check.
	p = strings.TrimLeft(p, "0")
	if len(p) > 11 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		var d uint64
		switch c := p[i]; {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}

// AllowedIP reports whether the client may connect to ip. Refused always:
// the unspecified addresses (0.0.0.0/8, ::), multicast (224.0.0.0/4,
// ff00::/8), the broadcast address and the rest of 240.0.0.0/4, and IPv6
// outside 2000::/3 that is not listed below. Refused unless allowPrivate:
// loopback (127.0.0.0/8, ::1), private (10/8, 172.16/12, 192.168/16,
// fc00::/7), shared CGNAT space (100.64.0.0/10), link-local
// (169.254.0.0/16 with the cloud metadata address, fe80::/10), deprecated
// site-local (fec0::/10), and the special-purpose blocks: 192.0.0.0/24,
// documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32, 3fff::/20), benchmarking (198.18.0.0/15, 2001:2::/48), the
// old 6to4 relay anycast 192.88.99.0/24, discard-only 100::/64, ORCHID
// (2001:10::/28, 2001:20::/28) and local-use NAT64 64:ff9b:1::/48.
// An IPv6 address that embeds an IPv4 one is judged by the IPv4 address:
// IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96),
// IPv4-compatible (::/96), NAT64 (64:ff9b::/96), 6to4 (2002::/16) and
// Teredo (2001::/32, the client address).
func AllowedIP(ip netip.Addr, allowPrivate bool) bool {
	reason, privateOnly := classify(ip)
	return reason == "" || allowPrivate && privateOnly
}

// classify says why ip is not a public unicast address ("" if it is), and
// whether allow_private_networks lets it through.
func classify(ip netip.Addr) (reason string, privateOnly bool) {
	if !ip.IsValid() {
		return "invalid", false
	}
	if ip.Is4() {
		return classify4(ip.As4())
	}
	a := ip.As16()
	hi := uint64(a[0])<<56 | uint64(a[1])<<48 | uint64(a[2])<<40 | uint64(a[3])<<32 |
		uint64(a[4])<<24 | uint64(a[5])<<16 | uint64(a[6])<<8 | uint64(a[7])
	mid := uint32(a[8])<<24 | uint32(a[9])<<16 | uint32(a[10])<<8 | uint32(a[11])
	v4 := [4]byte{a[12], a[13], a[14], a[15]}
	switch {
	case ip == netip.IPv6Unspecified():
		return "unspecified", false
	case ip == netip.IPv6Loopback():
		return "loopback", true
	case hi == 0 && (mid == 0xffff || mid == 0 || mid == 0xffff_0000):
		// IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
		// IPv4-translated ::ffff:0:a.b.c.d
		return classify4(v4)
	case hi == 0x0064_ff9b_0000_0000 && mid == 0: // NAT64 64:ff9b::/96
		return classify4(v4)
	case hi>>16 == 0x0064_ff9b_0001: // local-use NAT64 64:ff9b:1::/48
		return "special-purpose", true
	case a[0] == 0xff:
		return "multicast", false
	case a[0] == 0xfe && a[1]&0xc0 == 0x80:
		return "link-local", true
	case a[0] == 0xfe && a[1]&0xc0 == 0xc0:
		return "site-local", true
	case a[0]&0xfe == 0xfc:
		return "private", true
	case hi == 0x0100_0000_0000_0000: // 100::/64 discard-only
		return "special-purpose", true
	case a[0]&0xe0 != 0x20: // outside 2000::/3 global unicast
		return "reserved", false
	case hi>>32 == 0x2001_0000: // Teredo: the client's address, inverted
		return classify4([4]byte{^a[12], ^a[13], ^a[14], ^a[15]})
	case hi>>48 == 0x2002: // 6to4: the site's address follows the prefix
		return classify4([4]byte{a[2], a[3], a[4], a[5]})
	case hi>>32 == 0x2001_0db8, hi>>44 == 0x3fff_0: // documentation
		return "documentation", true
	case hi>>16 == 0x2001_0002_0000: // benchmarking 2001:2::/48
		return "benchmarking", true
	case hi>>36 == 0x2001_001, hi>>36 == 0x2001_002: // ORCHID, ORCHIDv2
		return "special-purpose", true
	}
	return "", false
}

func classify4(a [4]byte) (reason string, privateOnly bool) {
	switch {
	case a[0] == 0:
		return "unspecified", false
	case a == [4]byte{255, 255, 255, 255}:
		return "broadcast", false
	case a[0] >= 240:
		return "reserved", false
	case a[0] >= 224:
		return "multicast", false
	case a[0] == 127:
		return "loopback", true
	case a[0] == 10, a[0] == 172 && a[1]&0xf0 == 16, a[0] == 192 && a[1] == 168:
		return "private", true
	case a[0] == 100 && a[1]&0xc0 == 64:
		return "shared (CGNAT)", true
	case a[0] == 169 && a[1] == 254:
		return "link-local", true
	case a[0] == 192 && a[1] == 0 && a[2] == 2, a[0] == 198 && a[1] == 51 && a[2] == 100,
		a[0] == 203 && a[1] == 0 && a[2] == 113:
		return "documentation", true
	case a[0] == 198 && a[1]&0xfe == 18:
		return "benchmarking", true
	case a[0] == 192 && a[1] == 0 && a[2] == 0, a[0] == 192 && a[1] == 88 && a[2] == 99:
		return "special-purpose", true
	}
	return "", false
}
