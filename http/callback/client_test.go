package callback

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// receiver is a real HTTP server on 127.0.0.1, port 0, that counts the
// connections it accepts and records the last request.
type receiver struct {
	srv   *httptest.Server
	url   string // http://127.0.0.1:port
	port  string
	conns atomic.Int32 // connections accepted
	hits  atomic.Int32 // requests served

	mu   sync.Mutex
	last *http.Request
	body []byte
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	return startReceiver(t, h, (*httptest.Server).Start)
}

// newTLSReceiver is newReceiver serving HTTPS, with httptest's certificate
// (for 127.0.0.1 and example.com); url is https://127.0.0.1:port.
func newTLSReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	return startReceiver(t, h, (*httptest.Server).StartTLS)
}

func startReceiver(t *testing.T, h http.HandlerFunc, start func(*httptest.Server)) *receiver {
	t.Helper()
	r := &receiver{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.last, r.body = req, body
		r.mu.Unlock()
		r.hits.Add(1)
		if h != nil {
			h(w, req)
		}
	}))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	start(r.srv) // httptest listens on 127.0.0.1:0
	t.Cleanup(r.srv.Close)
	r.url = r.srv.URL
	_, r.port, _ = net.SplitHostPort(r.srv.Listener.Addr().String())
	return r
}

func (r *receiver) request() (*http.Request, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.body
}

// newTestClient returns a Client closed at the end of the test (before the
// receivers, which were registered first).
func newTestClient(t *testing.T, opts Options) *Client {
	t.Helper()
	c := New(opts)
	t.Cleanup(c.Close)
	return c
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func isEINVALID(err error) bool {
	var e *switchboard.Error
	return errors.As(err, &e) && e.Code == switchboard.EINVALID
}

func TestPostDelivered(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	c := newTestClient(t, Options{AllowPrivate: true})
	now := time.Now()
	sig := Sign(testSecret, now, testBody)
	res := c.Post(context.Background(), r.url+"/hooks//sms/%2F?key=a%20b&x=1#frag", testBody,
		[][2]string{{SignatureHeader, sig}, {"X-Extra", "yes"}})
	if res.Outcome != Delivered || res.Status != http.StatusAccepted || res.Err != nil || res.RetryAfter != 0 {
		t.Fatalf("Post = %+v, want Delivered 202", res)
	}
	if res.Duration <= 0 || res.Duration > 10*time.Second {
		t.Fatalf("Duration = %v", res.Duration)
	}
	req, body := r.request()
	if req.Method != http.MethodPost {
		t.Errorf("method %s", req.Method)
	}
	if req.RequestURI != "/hooks//sms/%2F?key=a%20b&x=1" {
		t.Errorf("request URI %q: the path must be sent as written, without the fragment", req.RequestURI)
	}
	if req.Host != "127.0.0.1:"+r.port {
		t.Errorf("Host %q", req.Host)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := req.Header.Get("User-Agent"); got != DefaultUserAgent {
		t.Errorf("User-Agent %q", got)
	}
	if got := req.Header.Get("X-Extra"); got != "yes" {
		t.Errorf("X-Extra %q", got)
	}
	if string(body) != string(testBody) {
		t.Errorf("body %q", body)
	}
	if err := Verify(req.Header.Get(SignatureHeader), testSecret, body, time.Minute, time.Now()); err != nil {
		t.Errorf("the receiver cannot verify the signature: %v", err)
	}

	c2 := newTestClient(t, Options{AllowPrivate: true, UserAgent: "Custom/2"})
	c2.Post(context.Background(), r.url, testBody, nil)
	if req, _ := r.request(); req.Header.Get("User-Agent") != "Custom/2" {
		t.Errorf("User-Agent %q, want Custom/2", req.Header.Get("User-Agent"))
	}
}

func TestPostOutcomes(t *testing.T) {
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		if ra := req.URL.Query().Get("retry_after"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		status, _ := strconv.Atoi(req.URL.Query().Get("status"))
		w.WriteHeader(status)
		io.WriteString(w, `{"ok":false}`)
	})
	c := newTestClient(t, Options{AllowPrivate: true})
	soon := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		status     int
		retryAfter string
		want       Outcome
		minRA      time.Duration
		maxRA      time.Duration
	}{
		{200, "", Delivered, 0, 0},
		{201, "", Delivered, 0, 0},
		{204, "", Delivered, 0, 0},
		{299, "", Delivered, 0, 0},
		{410, "", Gone, 0, 0},
		{429, "120", Retry, 120 * time.Second, 120 * time.Second},
		{429, soon, Retry, 85 * time.Second, 91 * time.Second},
		{429, past, Retry, 0, 0},
		{429, "soon", Retry, 0, 0},
		{429, "-5", Retry, 0, 0},
		{429, "99999999999999999999", Retry, MaxRetryAfter, MaxRetryAfter},
		{429, "", Retry, 0, 0},
		{503, "30", Retry, 30 * time.Second, 30 * time.Second},
		{503, soon, Retry, 85 * time.Second, 91 * time.Second},
		{500, "30", Retry, 0, 0}, // Retry-After counts on 429 and 503 only
		{502, "", Retry, 0, 0},
		{504, "", Retry, 0, 0},
		{400, "", Retry, 0, 0},
		{401, "", Retry, 0, 0},
		{404, "", Retry, 0, 0},
		{409, "", Retry, 0, 0},
		{300, "", Retry, 0, 0},
		{304, "", Retry, 0, 0},
	}
	for _, tt := range tests {
		u := fmt.Sprintf("%s/hook?status=%d&retry_after=%s", r.url, tt.status, strings.ReplaceAll(tt.retryAfter, " ", "%20"))
		res := c.Post(context.Background(), u, testBody, nil)
		if res.Outcome != tt.want || res.Status != tt.status || res.Err != nil {
			t.Errorf("%d %q: %+v, want %v", tt.status, tt.retryAfter, res, tt.want)
		}
		if res.RetryAfter < tt.minRA || res.RetryAfter > tt.maxRA {
			t.Errorf("%d %q: RetryAfter %v, want %v..%v", tt.status, tt.retryAfter, res.RetryAfter, tt.minRA, tt.maxRA)
		}
	}
	if n := r.conns.Load(); n != 1 {
		t.Errorf("%d connections for %d sequential posts, want 1 (keep-alive whatever the status)", n, len(tests))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                               0,
		"0":                              0,
		" 17 ":                           17 * time.Second,
		"3600":                           time.Hour,
		"3601":                           MaxRetryAfter,
		"1e3":                            0,
		"+5":                             0,
		"Mon, 10 Jun 2024 12:02:00 GMT":  2 * time.Minute,
		"Monday, 10-Jun-24 12:00:30 GMT": 30 * time.Second, // RFC 850
		"Mon Jun 10 12:00:45 2024":       45 * time.Second, // asctime
		"Mon, 10 Jun 2024 11:00:00 GMT":  0,
		"Tue, 10 Jun 2025 12:00:00 GMT":  MaxRetryAfter,
		"tomorrow":                       0,
	} {
		if got := retryAfter([]byte(v), now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestPostRedirectNotFollowed(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/target" {
			return
		}
		to := "/target"
		if req.URL.Query().Get("far") != "" {
			to = elsewhere.url + "/target"
		}
		http.Redirect(w, req, to, http.StatusFound)
	})
	c := newTestClient(t, Options{AllowPrivate: true})
	for _, u := range []string{r.url + "/hook", r.url + "/hook?far=1"} {
		res := c.Post(context.Background(), u, testBody, nil)
		if res.Outcome != Retry || res.Status != http.StatusFound || res.Err != nil {
			t.Fatalf("Post(%s) = %+v, want Retry 302", u, res)
		}
	}
	if n := r.hits.Load(); n != 2 {
		t.Errorf("the redirecting receiver got %d requests, want 2 (no request to /target)", n)
	}
	if req, _ := r.request(); req.URL.Path != "/hook" {
		t.Errorf("last request to %s, want /hook", req.URL.Path)
	}
	if n := elsewhere.hits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

// hangingReceiver answers nothing until the test ends or the client hangs up.
func hangingReceiver(t *testing.T) (*receiver, <-chan struct{}) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	r := newReceiver(t, func(_ http.ResponseWriter, req *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return r, arrived
}

func TestPostTimeout(t *testing.T) {
	r, arrived := hangingReceiver(t)
	c := newTestClient(t, Options{AllowPrivate: true, Timeout: 300 * time.Millisecond})
	res := c.Post(context.Background(), r.url, testBody, nil)
	if res.Outcome != Retry || res.Status != 0 || res.Err == nil || !strings.Contains(res.Err.Error(), "timed out after 300ms") {
		t.Fatalf("Post = %+v, want Retry with a timeout", res)
	}
	if res.Duration < 300*time.Millisecond || res.Duration > 3*time.Second {
		t.Fatalf("Duration %v, want about 300ms", res.Duration)
	}
	<-arrived
	if n := r.hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1: a timeout is not retried", n)
	}
}

func TestPostContextDeadline(t *testing.T) {
	r, _ := hangingReceiver(t)
	c := newTestClient(t, Options{AllowPrivate: true}) // Timeout 10s
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := c.Post(ctx, r.url, testBody, nil)
	if res.Outcome != Retry || res.Status != 0 || res.Err == nil {
		t.Fatalf("Post = %+v, want Retry", res)
	}
	if res.Duration > 3*time.Second {
		t.Fatalf("Duration %v: the context's deadline was not applied", res.Duration)
	}

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	res = c.Post(cancelled, r.url, testBody, nil)
	if res.Outcome != Retry || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("Post with a cancelled context = %+v", res)
	}
	if n := r.conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 (none for the cancelled Post)", n)
	}
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func TestPostLargeResponse(t *testing.T) {
	const huge = 8 << 20
	r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
		size, _ := strconv.Atoi(req.URL.Query().Get("size"))
		if req.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		chunk := []byte(strings.Repeat("x", 1024))
		for size > 0 {
			n := min(size, len(chunk))
			if _, err := w.Write(chunk[:n]); err != nil {
				return // the client hung up, as it should
			}
			size -= n
		}
	})
	c := newTestClient(t, Options{AllowPrivate: true}) // MaxResponseBytes 4096
	var read atomic.Int64
	dial := c.dial
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{conn, &read}, nil
	}
	tests := []struct {
		query    string
		newConns int32 // connections this Post opens and leaves
	}{
		{"size=100", 1}, // opens the connection, which stays
		{fmt.Sprintf("size=%d", DefaultMaxResponseBytes), 0}, // at the limit: read, reused
		{fmt.Sprintf("size=%d", huge), 0},                    // over it: not read, closed
		{fmt.Sprintf("size=%d&chunked=1", huge), 1},
		{"size=100", 1},
	}
	for _, tt := range tests {
		before, conns := read.Load(), r.conns.Load()
		res := c.Post(context.Background(), r.url+"/?"+tt.query, testBody, nil)
		if res.Outcome != Delivered || res.Status != 200 || res.Err != nil {
			t.Fatalf("%s: %+v, want Delivered", tt.query, res)
		}
		if n := read.Load() - before; n > 64<<10 {
			t.Errorf("%s: read %d bytes of the response, want at most the head, 4 KiB and a buffer", tt.query, n)
		}
		if got := r.conns.Load() - conns; got != tt.newConns {
			t.Errorf("%s: %d new connections, want %d", tt.query, got, tt.newConns)
		}
	}
}

func TestPostKeepAlive(t *testing.T) {
	r := newReceiver(t, nil)
	c := newTestClient(t, Options{AllowPrivate: true})
	for i := range 200 {
		if res := c.Post(context.Background(), r.url+"/hook", testBody, nil); res.Outcome != Delivered {
			t.Fatalf("post %d: %+v", i, res)
		}
	}
	if n := r.conns.Load(); n != 1 {
		t.Fatalf("200 sequential posts used %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if res := c.Post(context.Background(), r.url+"/hook", testBody, nil); res.Outcome != Delivered {
					t.Errorf("concurrent post: %+v", res)
				}
			}
		})
	}
	wg.Wait()
	if n := r.conns.Load(); n > 1+8 {
		t.Fatalf("400 posts from 8 goroutines used %d connections, want at most 9", n)
	}
	if n := r.hits.Load(); n != 600 {
		t.Fatalf("%d requests served, want 600", n)
	}
}

func TestPostMaxConnsPerEndpoint(t *testing.T) {
	const limit, posts = 3, 12
	var active, most atomic.Int32
	release := make(chan struct{})
	r := newReceiver(t, func(http.ResponseWriter, *http.Request) {
		n := active.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		active.Add(-1)
	})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll) // before the server's Close, even if the test fails
	c := newTestClient(t, Options{AllowPrivate: true, MaxConnsPerEndpoint: limit})
	results := make(chan Result, posts)
	var wg sync.WaitGroup
	for range posts {
		wg.Go(func() { results <- c.Post(context.Background(), r.url, testBody, nil) })
	}
	waitFor(t, "the first requests to arrive", func() bool { return active.Load() == limit })
	releaseAll()
	wg.Wait()
	close(results)
	for res := range results {
		if res.Outcome != Delivered {
			t.Errorf("%+v: a Post beyond the limit must wait for a connection, not fail", res)
		}
	}
	if m := most.Load(); m > limit {
		t.Errorf("%d requests at once, limit %d", m, limit)
	}
	if n := r.conns.Load(); n > limit {
		t.Errorf("%d connections, limit %d", n, limit)
	}
	if n := r.hits.Load(); n != posts {
		t.Errorf("%d requests, want %d", n, posts)
	}
}

func TestPostRefusedLoopback(t *testing.T) {
	r := newReceiver(t, nil)
	c := newTestClient(t, Options{}) // AllowPrivate false
	var dials atomic.Int32
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "127.1", "2130706433", "0177.0.0.1", "0x7f.1",
		"[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0"} {
		res := c.Post(context.Background(), "http://"+host+":"+r.port+"/hook", testBody, nil)
		if res.Outcome != RefusedURL || res.Status != 0 || !isEINVALID(res.Err) {
			t.Errorf("%s: %+v, want RefusedURL with EINVALID", host, res)
		}
	}
	if n, d := r.conns.Load(), dials.Load(); n != 0 || d != 0 {
		t.Fatalf("%d connections, %d dials: a refused URL must not be dialled", n, d)
	}
	if n := c.endpointCount(); n != 0 {
		t.Fatalf("%d endpoints kept for refused URLs", n)
	}
}

// resolver is an injectable Resolver that answers from a table and counts
// the lookups.
type resolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr // successive answers; the last repeats
	lookups map[string]int
}

func newResolver(answers map[string][][]netip.Addr) *resolver {
	return &resolver{answers: answers, lookups: map[string]int{}}
}

func (r *resolver) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.lookups[host]
	r.lookups[host]++
	return seq[min(n, len(seq)-1)], nil
}

func (r *resolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[host]
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestPostResolvedAddressRefused(t *testing.T) {
	r := newReceiver(t, nil)
	res := newResolver(map[string][][]netip.Addr{
		"hooks.example.com":   {addrs("127.0.0.1")},
		"all-private.example": {addrs("10.0.0.5", "192.168.1.9", "::1", "fd00::7", "::ffff:169.254.169.254")},
		"metadata.example":    {addrs("169.254.169.254")},
		"mapped.example":      {addrs("::ffff:127.0.0.1")},
		"multicast.example":   {addrs("224.0.0.1")},
	})
	c := newTestClient(t, Options{Resolver: res.resolve})
	var dials atomic.Int32
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("test: nothing may be dialled")
	}
	for host, want := range map[string]string{
		"hooks.example.com":   "127.0.0.1 (loopback); set webhooks.allow_private_networks",
		"all-private.example": "10.0.0.5 (private), 192.168.1.9 (private), ::1 (loopback), fd00::7 (private)",
		"metadata.example":    "169.254.169.254 (link-local)",
		"mapped.example":      "127.0.0.1 (loopback)",
		"multicast.example":   "224.0.0.1 (multicast)",
	} {
		out := c.Post(context.Background(), "http://"+host+":"+r.port+"/hook", testBody, nil)
		if out.Outcome != RefusedAddress || out.Status != 0 || !isEINVALID(out.Err) {
			t.Errorf("%s: %+v, want RefusedAddress with EINVALID", host, out)
			continue
		}
		if msg := switchboard.ErrorMessage(out.Err); !strings.Contains(msg, want) {
			t.Errorf("%s: %q, want it to mention %q", host, msg, want)
		}
		if n := res.count(host); n != 1 {
			t.Errorf("%s resolved %d times, want 1", host, n)
		}
	}
	if n, d := r.conns.Load(), dials.Load(); n != 0 || d != 0 {
		t.Fatalf("%d connections, %d dials: nothing may be dialled", n, d)
	}
	// allow_private_networks lets the same name through.
	cp := newTestClient(t, Options{AllowPrivate: true, Resolver: res.resolve})
	if out := cp.Post(context.Background(), "http://hooks.example.com:"+r.port+"/hook", testBody, nil); out.Outcome != Delivered {
		t.Fatalf("with AllowPrivate: %+v", out)
	}
	if req, _ := r.request(); req.Host != "hooks.example.com:"+r.port {
		t.Fatalf("Host %q, want the name from the URL", req.Host)
	}
}

// TestPostRebinding: a name that resolves to a public address and then,
// for the next connection, to a private one (DNS rebinding). The client
// connects to exactly the address it checked, and refuses the second.
func TestPostRebinding(t *testing.T) {
	// Every answer closes the connection, so each Post opens a new one.
	r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Connection", "close") })
	res := newResolver(map[string][][]netip.Addr{
		"rebind.example": {addrs("10.0.0.1", "93.184.216.34", "fd00::1"), addrs("127.0.0.1")},
	})
	c := newTestClient(t, Options{Resolver: res.resolve})
	var mu sync.Mutex
	var dialled []string
	c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		mu.Unlock()
		// The "public" address is this test's receiver.
		if addr != "93.184.216.34:"+r.port {
			return nil, fmt.Errorf("test: dialled %s", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+r.port)
	}
	u := "http://rebind.example:" + r.port + "/hook"
	if out := c.Post(context.Background(), u, testBody, nil); out.Outcome != Delivered {
		t.Fatalf("first Post: %+v, want Delivered through the one public address", out)
	}
	waitFor(t, "the connection to be closed", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.endpoints["http://rebind.example:"+r.port].hc.ConnsCount() == 0
	})
	out := c.Post(context.Background(), u, testBody, nil)
	if out.Outcome != RefusedAddress || !isEINVALID(out.Err) {
		t.Fatalf("second Post after rebinding to 127.0.0.1: %+v, want RefusedAddress", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialled) != 1 || dialled[0] != "93.184.216.34:"+r.port {
		t.Fatalf("dialled %q, want only the checked public address", dialled)
	}
	if n := res.count("rebind.example"); n != 2 {
		t.Fatalf("resolved %d times, want once per connection (2)", n)
	}
	if n := r.hits.Load(); n != 1 {
		t.Fatalf("%d requests reached the receiver, want 1", n)
	}
}

// TestPostResolvesOncePerConnection: requests on a kept-alive connection do
// not resolve again.
func TestPostResolvesOncePerConnection(t *testing.T) {
	r := newReceiver(t, nil)
	res := newResolver(map[string][][]netip.Addr{"hooks.example.com": {addrs("127.0.0.1")}})
	c := newTestClient(t, Options{AllowPrivate: true, Resolver: res.resolve})
	for range 20 {
		if out := c.Post(context.Background(), "http://hooks.example.com:"+r.port, testBody, nil); out.Outcome != Delivered {
			t.Fatalf("%+v", out)
		}
	}
	if n, conns := res.count("hooks.example.com"), r.conns.Load(); n != 1 || conns != 1 {
		t.Fatalf("%d lookups, %d connections for 20 posts, want 1 and 1", n, conns)
	}
}

func TestPostDNSFailure(t *testing.T) {
	res := newResolver(map[string][][]netip.Addr{"empty.example": {nil}})
	c := newTestClient(t, Options{Resolver: res.resolve})
	for _, host := range []string{"nxdomain.example", "empty.example"} {
		out := c.Post(context.Background(), "https://"+host+"/hook", testBody, nil)
		if out.Outcome != Retry || out.Status != 0 || out.Err == nil || !strings.Contains(out.Err.Error(), "resolve "+host) {
			t.Errorf("%s: %+v, want Retry with the lookup error", host, out)
		}
	}
}

func TestPostRefusedURL(t *testing.T) {
	c := newTestClient(t, Options{AllowPrivate: true})
	for _, u := range []string{"ftp://example.com/", "https://user:pw@example.com/", "not a url", "http://1.2.3.4.5/"} {
		out := c.Post(context.Background(), u, testBody, nil)
		if out.Outcome != RefusedURL || !isEINVALID(out.Err) {
			t.Errorf("%s: %+v, want RefusedURL", u, out)
		}
	}
}

// rawServer accepts connections on 127.0.0.1 and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wg.Go(func() {
				defer conn.Close()
				serve(conn)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), accepted
}

// TestPostStaleConnection: the receiver closes a kept-alive connection
// after answering, without saying so. The next Post finds it closed and is
// sent once more on a new connection.
func TestPostStaleConnection(t *testing.T) {
	var requests atomic.Int32
	closed := make(chan struct{}, 10)
	addr, accepted := rawServer(t, func(conn net.Conn) {
		defer func() { closed <- struct{}{} }()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		requests.Add(1)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") // keep-alive, then close
	})
	c := newTestClient(t, Options{AllowPrivate: true})
	if out := c.Post(context.Background(), "http://"+addr+"/hook", testBody, nil); out.Outcome != Delivered {
		t.Fatalf("first Post: %+v", out)
	}
	<-closed
	if out := c.Post(context.Background(), "http://"+addr+"/hook", testBody, nil); out.Outcome != Delivered {
		t.Fatalf("Post on a connection the receiver closed: %+v, want it sent again on a new one", out)
	}
	if a, n := accepted.Load(), requests.Load(); a != 2 || n != 2 {
		t.Fatalf("%d connections, %d requests, want 2 and 2", a, n)
	}
}

// TestPostNoAnswer: a receiver that closes every connection without
// answering gets the request at most twice (the second send is for a
// connection that was closed under it), and the result is Retry.
func TestPostNoAnswer(t *testing.T) {
	var requests atomic.Int32
	addr, _ := rawServer(t, func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
			requests.Add(1)
		}
	})
	c := newTestClient(t, Options{AllowPrivate: true})
	out := c.Post(context.Background(), "http://"+addr+"/hook", testBody, nil)
	if out.Outcome != Retry || out.Status != 0 || out.Err == nil {
		t.Fatalf("%+v, want Retry with an error", out)
	}
	if strings.Contains(out.Err.Error(), "/hook") {
		t.Errorf("error %q shows the URL's path; it should name the endpoint only", out.Err)
	}
	if n := requests.Load(); n < 1 || n > 2 {
		t.Fatalf("%d requests, want 1 or 2", n)
	}
}

func TestIdleEndpointsDropped(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	// Sweep every 5 ms, drop after 20 ms idle.
	c := newClient(Options{AllowPrivate: true}, 5*time.Millisecond, 20*time.Millisecond, 100)
	t.Cleanup(c.Close)
	for _, r := range []*receiver{a, b} {
		if out := c.Post(context.Background(), r.url, testBody, nil); out.Outcome != Delivered {
			t.Fatalf("%+v", out)
		}
	}
	waitFor(t, "the idle endpoints to be dropped", func() bool { return c.endpointCount() == 0 })
	// Posts work after, on a new connection.
	if out := c.Post(context.Background(), a.url, testBody, nil); out.Outcome != Delivered {
		t.Fatalf("after the sweep: %+v", out)
	}
	if n := a.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: the dropped endpoint's connection was closed", n)
	}
}

func TestIdleEndpointInUseKept(t *testing.T) {
	r, arrived := hangingReceiver(t)
	c := newClient(Options{AllowPrivate: true, Timeout: time.Minute}, time.Hour, time.Millisecond, 100)
	t.Cleanup(c.Close)
	done := make(chan Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		done <- c.Post(ctx, r.url, testBody, nil)
	}()
	<-arrived
	c.dropIdle(time.Now().Add(time.Hour))
	if n := c.endpointCount(); n != 1 {
		t.Fatalf("an endpoint with a Post in progress was dropped")
	}
	<-done
	c.dropIdle(time.Now().Add(time.Hour))
	if n := c.endpointCount(); n != 0 {
		t.Fatalf("%d endpoints after the Post ended and the sweep ran", n)
	}
}

func TestEndpointLimit(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	c := newClient(Options{AllowPrivate: true}, time.Hour, time.Hour, 1)
	t.Cleanup(c.Close)
	for range 3 {
		for _, r := range []*receiver{a, b} {
			if out := c.Post(context.Background(), r.url, testBody, nil); out.Outcome != Delivered {
				t.Fatalf("%+v", out)
			}
		}
	}
	if n := c.endpointCount(); n != 1 {
		t.Fatalf("%d endpoints kept, limit 1", n)
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("the kept endpoint used %d connections, want 1", n)
	}
	if n := b.conns.Load(); n != 3 {
		t.Errorf("the endpoint beyond the limit used %d connections for 3 posts, want 3 (one each)", n)
	}
	if req, _ := b.request(); !req.Close {
		t.Errorf("a request beyond the limit must ask for Connection: close")
	}
}

func TestClose(t *testing.T) {
	r, arrived := hangingReceiver(t)
	c := New(Options{AllowPrivate: true, Timeout: 300 * time.Millisecond})
	t.Cleanup(c.Close) // if the test fails early
	start := time.Now()
	posted := make(chan Result, 1)
	go func() { posted <- c.Post(context.Background(), r.url, testBody, nil) }()
	<-arrived
	closed := make(chan time.Time)
	go func() {
		c.Close()
		closed <- time.Now()
	}()
	// A Post after Close has begun fails at once.
	waitFor(t, "Close to begin", func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.closed
	})
	if out := c.Post(context.Background(), r.url, testBody, nil); out.Outcome != Retry ||
		switchboard.ErrorCode(out.Err) != switchboard.EUNAVAILABLE {
		t.Fatalf("Post during Close: %+v, want Retry with EUNAVAILABLE", out)
	}
	closedAt := <-closed
	res := <-posted
	if res.Outcome != Retry {
		t.Fatalf("the Post in progress: %+v", res)
	}
	// The Post ended (its Duration measured) before Close returned.
	if ended := start.Add(res.Duration); closedAt.Before(ended) {
		t.Fatalf("Close returned %v before the Post in progress ended", ended.Sub(closedAt))
	}
	select {
	case <-c.done:
	default:
		t.Fatal("the sweeper is still running after Close")
	}
	if n := c.endpointCount(); n != 0 {
		t.Fatalf("%d endpoints after Close", n)
	}
	c.Close() // again: no panic, no hang
	if n := r.hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestOptionsDefaults(t *testing.T) {
	c := newTestClient(t, Options{})
	o := c.opts
	if o.Timeout != 10*time.Second || o.MaxConnsPerEndpoint != 64 || o.MaxResponseBytes != 4096 ||
		o.UserAgent != "Switchboard-Webhooks/1" || o.Resolver == nil || o.AllowPrivate {
		t.Fatalf("defaults: %+v", o)
	}
	for o, want := range map[Outcome]string{Delivered: "delivered", Gone: "gone", Retry: "retry",
		RefusedURL: "refused_url", RefusedAddress: "refused_address", 0: "unknown"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", o, o, want)
		}
	}
}

// TestPostURLSpellings: however the URL spells the host, the request goes
// to the address the policy read, with the Host header from the URL, and
// numeric hosts are never handed to the resolver.
func TestPostURLSpellings(t *testing.T) {
	r := newReceiver(t, nil)
	res := newResolver(map[string][][]netip.Addr{"hooks.example.com": {addrs("127.0.0.1")}})
	c := newTestClient(t, Options{AllowPrivate: true, Resolver: res.resolve})
	for _, tt := range []struct{ host, wantHost string }{
		{"HOOKS.Example.com", "hooks.example.com"},
		{"hooks.example.com.", "hooks.example.com."},
		{"127.0.0.1", "127.0.0.1"},
		{"2130706433", "2130706433"},
		{"0x7f.1", "0x7f.1"},
		{"0177.0.0.1", "0177.0.0.1"},
		{"127.1", "127.1"},
	} {
		out := c.Post(context.Background(), "http://"+tt.host+":"+r.port+"/hook", testBody, nil)
		if out.Outcome != Delivered {
			t.Errorf("%s: %+v", tt.host, out)
			continue
		}
		if req, _ := r.request(); req.Host != tt.wantHost+":"+r.port {
			t.Errorf("%s: Host %q, want %q", tt.host, req.Host, tt.wantHost+":"+r.port)
		}
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if len(res.lookups) != 1 || res.lookups["hooks.example.com"] == 0 {
		t.Fatalf("lookups %v: only the name may be resolved", res.lookups)
	}
}

// rootsOf returns a TLS config that trusts only srv's certificate.
func rootsOf(srv *httptest.Server) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: roots}
}

// TestPostHTTPS: a receiver over TLS gets the request on a verified
// connection that is kept alive, whether the URL names it by address or by
// a host name (which must then be in its certificate).
func TestPostHTTPS(t *testing.T) {
	r := newTLSReceiver(t, nil)
	res := newResolver(map[string][][]netip.Addr{"example.com": {addrs("127.0.0.1")}})
	c := newTestClient(t, Options{AllowPrivate: true, Resolver: res.resolve, TLSConfig: rootsOf(r.srv)})
	for _, u := range []string{r.url + "/hook", r.url + "/hook", "https://example.com:" + r.port + "/hook"} {
		if out := c.Post(context.Background(), u, testBody, nil); out.Outcome != Delivered || out.Status != http.StatusOK {
			t.Fatalf("%s: %+v, want Delivered", u, out)
		}
		if req, body := r.request(); req.TLS == nil || string(body) != string(testBody) {
			t.Fatalf("%s: the receiver got TLS %v, body %q", u, req.TLS != nil, body)
		}
	}
	if req, _ := r.request(); req.TLS.ServerName != "example.com" {
		t.Errorf("server name %q, want the URL's host", req.TLS.ServerName)
	}
	if n := r.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one per endpoint, kept alive)", n)
	}
}

// TestPostHTTPSUnverified: a certificate the client does not trust is
// refused in the handshake, and nothing is sent.
func TestPostHTTPSUnverified(t *testing.T) {
	r := newTLSReceiver(t, nil)
	c := newTestClient(t, Options{AllowPrivate: true}) // system roots
	out := c.Post(context.Background(), r.url+"/hook", testBody, nil)
	if out.Outcome != Retry || out.Status != 0 || out.Err == nil || !strings.Contains(out.Err.Error(), "certificate") {
		t.Fatalf("%+v, want Retry with a certificate error", out)
	}
	if n := r.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached an unverified receiver", n)
	}
}

// TestPostTLSHandshakeTimeout: a receiver that accepts the connection but
// never answers the TLS handshake holds a Post no longer than its Timeout,
// or its context's deadline.
func TestPostTLSHandshakeTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // Options.Timeout
		ctx     time.Duration // the context's deadline, if any
	}{
		{"Timeout", 300 * time.Millisecond, 0},
		{"context deadline", 0, 300 * time.Millisecond}, // Timeout 10s
	} {
		t.Run(tc.name, func(t *testing.T) {
			hangUp := make(chan struct{})
			addr, accepted := rawServer(t, func(net.Conn) { <-hangUp })
			c := newTestClient(t, Options{AllowPrivate: true, Timeout: tc.timeout})
			// Runs before c.Close, so that a Post stuck in the handshake
			// ends and the test fails rather than hangs.
			t.Cleanup(func() { close(hangUp) })

			begun := time.Now() // the context's 300ms starts before Post's own clock
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			posted := make(chan Result, 1)
			go func() { posted <- c.Post(ctx, "https://"+addr+"/hook", testBody, nil) }()
			var out Result
			select {
			case out = <-posted:
			case <-time.After(5 * time.Second):
				t.Fatal("Post still waiting for the TLS handshake after 5s; it should end after 300ms")
			}
			if out.Outcome != Retry || out.Status != 0 || !strings.Contains(fmt.Sprint(out.Err), "timed out after") {
				t.Fatalf("%+v, want Retry with a timeout", out)
			}
			if took := time.Since(begun); took < 300*time.Millisecond || out.Duration > 3*time.Second {
				t.Fatalf("took %v (Duration %v), want about 300ms", took, out.Duration)
			}
			if n := accepted.Load(); n != 1 {
				t.Fatalf("%d connections accepted, want 1", n)
			}
		})
	}
}
