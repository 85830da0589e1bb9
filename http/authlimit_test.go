package http

import (
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// clientFrom is an HTTP client whose connections come from local, one of
// the loopback addresses (127.0.0.0/8 all reach 127.0.0.1 on Linux).
func clientFrom(local string) *nethttp.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return &nethttp.Client{Timeout: 10 * time.Second, Transport: &nethttp.Transport{DialContext: d.DialContext}}
}

func TestAuthFailuresThrottled(t *testing.T) {
	clock := &testClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	ts := newTestServer(t, func(c *Config) { c.AuthFailuresPerMinute = 3; c.Now = clock.Now })
	post := func(client *nethttp.Client, secret string) (*nethttp.Response, []byte) {
		t.Helper()
		req := mustRequest(t, "POST", ts.url+"/v1/messages", validBody)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		checkCommonHeaders(t, resp.Header, resp.StatusCode, body)
		return resp, body
	}
	attacker, neighbour := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	for i := range 3 {
		resp, body := post(attacker, fmt.Sprintf("guess-%d", i))
		wantError(t, resp, body, 401, switchboard.EUNAUTHORIZED)
		clock.Add(10 * time.Second)
	}
	// Blocked for the rest of the minute that began with its first
	// failure, a right secret included: it learns nothing more.
	for _, secret := range []string{"guess-4", testSecret} {
		resp, body := post(attacker, secret)
		wantError(t, resp, body, 429, switchboard.ERATELIMITED)
		if ra := resp.Header.Get("Retry-After"); ra != "30" {
			t.Errorf("Retry-After %q, want 30 (the minute began 30 s ago)", ra)
		}
	}
	// Another address is not affected, nor are routes without a key.
	if resp, body := post(neighbour, testSecret); resp.StatusCode != 202 {
		t.Errorf("another address: %d %s", resp.StatusCode, body)
	}
	if resp, err := attacker.Get(ts.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz from the blocked address: %v %v", resp, err)
	}
	if n := strings.Count(ts.logs.String(), "failed authentications: client refused"); n != 1 {
		t.Errorf("%d warnings about the blocked client, want 1", n)
	}
	// The minute is over: it may try again, and fail again.
	clock.Add(31 * time.Second)
	if resp, body := post(attacker, testSecret); resp.StatusCode != 202 {
		t.Errorf("after the minute: %d %s", resp.StatusCode, body)
	}
	resp, body := post(attacker, "guess-5")
	wantError(t, resp, body, 401, switchboard.EUNAUTHORIZED)
}

func TestAuthFailuresUnlimited(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AuthFailuresPerMinute = -1 })
	for range 2 * DefaultAuthFailuresPerMinute {
		resp, body := ts.do(t, "GET", "/v1/messages/msg_01JZZZZZZZZZZZZZZZ00000001", "", "Authorization", "Bearer wrong")
		wantError(t, resp, body, 401, switchboard.EUNAUTHORIZED)
	}
}

func TestAuthLimiterBounded(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newAuthLimiter(2, time.Minute, 100)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	l.failed(addr(0), now)
	l.failed(addr(0), now)
	if _, blocked := l.blocked(addr(0), now); !blocked {
		t.Fatal("two failures of two: not blocked")
	}
	for i := 1; i <= 1000; i++ {
		l.failed(addr(i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.size(); n != 100 {
		t.Errorf("%d addresses remembered, want the cap, 100", n)
	}
	if _, blocked := l.blocked(addr(0), now); blocked {
		t.Error("the oldest address was not evicted")
	}
	// The newest stay: one more failure blocks the last one.
	l.failed(addr(1000), now.Add(time.Second))
	if _, blocked := l.blocked(addr(1000), now.Add(time.Second)); !blocked {
		t.Error("the newest address was evicted")
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2::9":      "2001:db8:1:2::",
	} {
		if got := clientKey(net.ParseIP(in)); got.String() != want {
			t.Errorf("clientKey(%s) = %s, want %s", in, got, want)
		}
	}
}
