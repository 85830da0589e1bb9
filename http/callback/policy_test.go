package callback

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchboard-sms/switchboard"
)

func TestAllowedIP(t *testing.T) {
	const (
		public  = iota // allowed
		private        // allowed only with allowPrivate
		never          // refused even with allowPrivate
	)
	tests := []struct {
		ip   string
		want int
	}{
		// IPv4
		{"8.8.8.8", public},
		{"93.184.216.34", public},
		{"1.1.1.1", public},
		{"100.63.255.255", public},
		{"100.128.0.0", public},
		{"172.15.255.255", public},
		{"172.32.0.0", public},
		{"192.0.1.1", public},
		{"192.169.0.1", public},
		{"198.17.255.255", public},
		{"198.20.0.0", public},
		{"223.255.255.255", public},
		{"0.0.0.0", never},
		{"0.1.2.3", never},
		{"127.0.0.1", private},
		{"127.255.255.254", private},
		{"10.0.0.1", private},
		{"10.255.255.255", private},
		{"172.16.0.1", private},
		{"172.31.255.255", private},
		{"192.168.1.1", private},
		{"100.64.0.1", private},
		{"100.127.255.255", private},
		{"169.254.169.254", private}, // cloud metadata
		{"169.254.0.1", private},
		{"192.0.0.170", private},
		{"192.0.2.1", private},
		{"198.51.100.7", private},
		{"203.0.113.9", private},
		{"198.18.0.1", private},
		{"198.19.255.255", private},
		{"192.88.99.1", private},
		{"224.0.0.1", never},
		{"239.255.255.250", never},
		{"240.0.0.1", never},
		{"255.255.255.255", never},

		// IPv6
		{"2606:4700:4700::1111", public},
		{"2001:4860:4860::8888", public},
		{"2a00:1450:4001:80b::200e", public},
		{"::", never},
		{"::1", private},
		{"fc00::1", private},
		{"fd12:3456:789a::1", private},
		{"fe80::1", private},
		{"febf::1", private},
		{"fec0::1", private},
		{"ff02::1", never},
		{"ff05::2", never},
		{"100::1", private},
		{"2001:db8::1", private},
		{"3fff::1", private},
		{"2001:2::1", private},
		{"2001:10::1", private},
		{"2001:20::1", private},
		{"64:ff9b:1::1", private},
		{"4000::1", never}, // outside 2000::/3
		{"::2:0:0:1", never},

		// IPv4 embedded in IPv6: judged by the IPv4 address.
		{"::ffff:8.8.8.8", public},
		{"::ffff:127.0.0.1", private},
		{"::ffff:7f00:1", private},
		{"::ffff:10.0.0.1", private},
		{"::ffff:169.254.169.254", private},
		{"::ffff:0.0.0.0", never},
		{"::ffff:224.0.0.1", never},
		{"::127.0.0.1", private}, // IPv4-compatible
		{"::10.1.2.3", private},
		{"::8.8.8.8", public},
		{"::ffff:0:127.0.0.1", private}, // IPv4-translated
		{"::ffff:0:8.8.8.8", public},
		{"64:ff9b::127.0.0.1", private}, // NAT64
		{"64:ff9b::a9fe:a9fe", private},
		{"64:ff9b::8.8.8.8", public},
		{"2002:7f00:1::", private}, // 6to4 of 127.0.0.1
		{"2002:c0a8:101::1", private},
		{"2002:0808:0808::1", public},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", private}, // Teredo, client 127.0.0.1
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", public},  // Teredo, client 8.8.8.8
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got, want := AllowedIP(ip, false), tt.want == public; got != want {
			t.Errorf("AllowedIP(%s, false) = %v, want %v", ip, got, want)
		}
		if got, want := AllowedIP(ip, true), tt.want != never; got != want {
			t.Errorf("AllowedIP(%s, true) = %v, want %v", ip, got, want)
		}
	}
	if AllowedIP(netip.Addr{}, true) {
		t.Error("the zero Addr is allowed")
	}
}

func TestParseIPv4Forms(t *testing.T) {
	tests := []struct {
		host string
		want string // "" = refused
	}{
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"0X7F000001", "127.0.0.1"},
		{"017700000001", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"0177.0.0.01", "127.0.0.1"},
		{"00000127.0.0.1", "87.0.0.1"}, // octal 127 = 87
		{"0x7f.1", "127.0.0.1"},
		{"0x7f.0x0.0x0.0x1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"127.0.1", "127.0.0.1"},
		{"127.65535", "127.0.255.255"},
		{"10.0.258", "10.0.1.2"},
		{"0x", "0.0.0.0"},
		{"0", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"0xffffffff", "255.255.255.255"},
		{"3232235777", "192.168.1.1"},
		{"0xA9FEA9FE", "169.254.169.254"},
		{"1.2.3.4", "1.2.3.4"},

		{"4294967296", ""},
		{"0x100000000", ""},
		{"256.0.0.1", ""},
		{"1.2.3.256", ""},
		{"1.2.65536", ""},
		{"1.16777216", ""},
		{"1.2.3.4.5", ""},
		{"08.0.0.1", ""}, // 8 is not octal
		{"0x7g.1", ""},
		{"1..2", ""},
		{"99999999999999999999999", ""},
		{"0x0000000000000000000000001", "0.0.0.1"},
	}
	for _, tt := range tests {
		got, ok := parseIPv4(tt.host)
		switch {
		case tt.want == "" && ok:
			t.Errorf("parseIPv4(%q) = %v, want refused", tt.host, got)
		case tt.want != "" && (!ok || got.String() != tt.want):
			t.Errorf("parseIPv4(%q) = %v, %v, want %s", tt.host, got, ok, tt.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		want         string // "" = allowed, else a fragment of the error
	}{
		{"https://hooks.example.com/sms?x=1", false, ""},
		{"http://hooks.example.com:8080/", false, ""},
		{"HTTPS://Hooks.Example.COM./x", false, ""},
		{"https://8.8.8.8/hook", false, ""},
		{"https://[2606:4700:4700::1111]:8443/", false, ""},
		{"https://0x08080808/", false, ""},
		{"https://134744072/", false, ""}, // 8.8.8.8
		{"https://1-2-3-4.example.com/", false, ""},
		{"https://123.example.com/", false, ""}, // a numeric label, but not the last
		{"https://xn--bcher-kva.example/", false, ""},

		// Form.
		{"ftp://hooks.example.com/", false, "http or https"},
		{"javascript:alert(1)", false, "http or https"},
		{"//hooks.example.com/", false, "http or https"},
		{"https://user:pass@hooks.example.com/", false, "credentials"},
		{"https://user@hooks.example.com/", false, "credentials"},
		{"https:///path", false, "no host"},
		{"https://hooks.example.com:0/", false, "port"},
		{"https://hooks.example.com:65536/", false, "port"},
		{"https://xn--bcher-kva.example/b%C3%BCcher?q=%20", false, ""},
		{"https://bücher.example/", false, "printable ASCII"},
		{"https://example.com/bücher", false, "printable ASCII"},
		{"https://example.com/a b", false, "printable ASCII"},
		{"https://example.com/\tx", false, "printable ASCII"},
		{"https://example.com/\x00", false, "printable ASCII"},
		{"https://hook_1.example.com/", false, ""},
		{"https://a.b-c.example/", false, ""},
		{"https://exa*mple.com/", false, "not a valid host name"},
		{"https://" + strings.Repeat("a", 64) + ".example/", false, "not a valid host name"},
		{"https://a..b/", false, "not a valid host name"},
		{"https://exa mple.com/", false, "printable ASCII"},
		{"http://%zz/", false, "invalid"},

		// Literal addresses, in every form.
		{"http://127.0.0.1/", false, "loopback"},
		{"http://127.0.0.1./", false, "loopback"},
		{"http://127.1/", false, "loopback"},
		{"http://127.0.1/", false, "loopback"},
		{"http://2130706433/", false, "loopback"},
		{"http://0177.0.0.1/", false, "loopback"},
		{"http://0x7f.1/", false, "loopback"},
		{"http://0x7f000001/", false, "loopback"},
		{"http://017700000001/", false, "loopback"},
		{"http://[::1]/", false, "loopback"},
		{"http://[::ffff:127.0.0.1]/", false, "loopback"},
		{"http://[::ffff:7f00:1]/", false, "loopback"},
		{"http://[0:0:0:0:0:ffff:127.0.0.1]/", false, "loopback"},
		{"http://[64:ff9b::7f00:1]/", false, "loopback"},
		{"http://10.1.2.3:8080/", false, "private"},
		{"http://167772161/", false, "private"}, // 10.0.0.1
		{"http://192.168.0.1/", false, "private"},
		{"http://0xc0.0xa8.1.1/", false, "private"},
		{"http://[fd00::1]/", false, "private"},
		{"http://100.64.1.1/", false, "CGNAT"},
		{"http://169.254.169.254/latest/meta-data/", false, "link-local"},
		{"http://0xA9FEA9FE/", false, "link-local"},
		{"http://[fe80::1]/", false, "link-local"},
		{"http://[fe80::1%25eth0]/", true, "zone"},
		{"http://0.0.0.0/", true, "unspecified"},
		{"http://0/", true, "unspecified"},
		{"http://[::]/", true, "unspecified"},
		{"http://224.0.0.1/", true, "multicast"},
		{"http://255.255.255.255/", true, "broadcast"},
		{"http://[ff02::1]/", true, "multicast"},

		// Numeric but not an address.
		{"http://1.2.3.4.5/", true, "not a valid IPv4"},
		{"http://256.0.0.1/", true, "not a valid IPv4"},
		{"http://4294967296/", true, "not a valid IPv4"},
		{"http://08.1.2.3/", true, "not a valid IPv4"},
		{"http://example.123/", true, "not a valid IPv4"},
		{"http://example.0x1f/", true, "not a valid IPv4"},

		// Local names.
		{"http://localhost:8080/", false, "local machine"},
		{"http://LOCALHOST./", false, "local machine"},
		{"http://api.localhost/", false, "local machine"},
		{"http://notlocalhost.com/", false, ""},

		// allowPrivate lets private unicast through.
		{"http://127.0.0.1:8080/", true, ""},
		{"http://2130706433/", true, ""},
		{"http://[::1]:8080/", true, ""},
		{"http://10.0.0.1/", true, ""},
		{"http://169.254.169.254/", true, ""},
		{"http://localhost/", true, ""},
	}
	for _, tt := range tests {
		err := CheckURL(tt.url, tt.allowPrivate)
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckURL(%q, %v) = %v, want allowed", tt.url, tt.allowPrivate, err)
			}
			continue
		}
		var e *switchboard.Error
		if !errors.As(err, &e) || e.Code != switchboard.EINVALID {
			t.Errorf("CheckURL(%q, %v) = %v, want an EINVALID *switchboard.Error", tt.url, tt.allowPrivate, err)
			continue
		}
		if !strings.Contains(e.Message, tt.want) {
			t.Errorf("CheckURL(%q, %v) = %q, want it to mention %q", tt.url, tt.allowPrivate, e.Message, tt.want)
		}
	}
}

func TestCheckURLMessages(t *testing.T) {
	for url, want := range map[string]string{
		"http://0177.0.0.1/":       "callback URL host 0177.0.0.1 (127.0.0.1) is a loopback address; set webhooks.allow_private_networks to allow it",
		"http://10.0.0.1/":         "callback URL host 10.0.0.1 is a private address; set webhooks.allow_private_networks to allow it",
		"http://[::ffff:10.0.0.1]": "callback URL host ::ffff:10.0.0.1 is a private address; set webhooks.allow_private_networks to allow it",
		"http://224.0.0.1/":        "callback URL host 224.0.0.1 is a multicast address",
	} {
		if got := switchboard.ErrorMessage(CheckURL(url, false)); got != want {
			t.Errorf("CheckURL(%q): %q, want %q", url, got, want)
		}
	}
}

func FuzzParseHostIP(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "0x7f.1", "0177.0.0.1", "2130706433", "::ffff:127.0.0.1", "1.2.3.4.5", "a.b", "0x", "1..", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		ip, isIP, err := parseHostIP(host)
		if err != nil && isIP || isIP && !ip.IsValid() {
			t.Fatalf("parseHostIP(%q) = %v, %v, %v", host, ip, isIP, err)
		}
		// A dotted quad in canonical form reads as itself.
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() && (!isIP || ip != a) {
			t.Fatalf("parseHostIP(%q) = %v, %v, want %v", host, ip, isIP, a)
		}
	})
}

// checkedURLs answers as checkURL does, the first time and from memory,
// and keeps only what passed.
func TestCheckedURLsAgreeWithCheckURL(t *testing.T) {
	urls := []string{
		"https://hooks.example.com/sms?x=1",
		"HTTPS://Hooks.Example.COM./x",
		"http://127.0.0.1:8080/hook",
		"http://localhost/hook",
		"https://user@hooks.example.com/",
		"ftp://hooks.example.com/",
	}
	for _, allowPrivate := range []bool{false, true} {
		c := newCheckedURLs(allowPrivate)
		for round := 0; round < 2; round++ {
			for _, u := range urls {
				want, wantErr := checkURL(u, allowPrivate)
				got, err := c.check(u)
				if got != want || switchboard.ErrorMessage(err) != switchboard.ErrorMessage(wantErr) {
					t.Errorf("allowPrivate %v, round %d, %q: %+v, %v; checkURL: %+v, %v", allowPrivate, round, u, got, err, want, wantErr)
				}
				if _, kept := c.seen.m[u]; kept != (wantErr == nil) {
					t.Errorf("allowPrivate %v, %q: kept %v, but checkURL's error is %v", allowPrivate, u, kept, wantErr)
				}
			}
		}
	}
}

func TestCheckedURLsStayBounded(t *testing.T) {
	c := newCheckedURLs(false)
	for i := range maxCheckedURLs + 10 {
		u := fmt.Sprintf("https://hooks.example.com/%d", i)
		if _, err := c.check(u); err != nil {
			t.Fatal(err)
		}
		if len(c.seen.m) > maxCheckedURLs {
			t.Fatalf("after %d URLs, %d kept; the bound is %d", i+1, len(c.seen.m), maxCheckedURLs)
		}
		if _, ok := c.seen.m[u]; !ok {
			t.Fatalf("%q not kept right after its check", u)
		}
	}
}
