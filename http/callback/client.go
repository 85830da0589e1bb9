// Package callback is the HTTP client that POSTs signed webhook events to
// customers' URLs. It signs (Sign, Verify), decides which addresses may be
// reached (CheckURL before a URL is stored, AllowedIP each time a name is
// resolved), and keeps a pool of keep-alive connections per endpoint.
// What to send, when, and how often to retry is the dispatcher's business:
// Post makes one attempt and says how it went.
//
// docs/webhooks.md describes the requests and the address policy for
// customers.
package callback

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// Defaults of Options.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultMaxConnsPerEndpoint = 64
	DefaultMaxResponseBytes    = 4096
	DefaultUserAgent           = "Switchboard-Webhooks/1"
)

// MaxRetryAfter caps Result.RetryAfter: a receiver cannot park its events
// for longer than this with one answer.
const MaxRetryAfter = time.Hour

// Tuning that is not an option.
const (
	// idleConnTimeout closes a keep-alive connection unused for this long.
	// It is below the 5 s that Node's http server (and so Express) keeps an
	// idle connection, so the client normally closes first and rarely
	// sends a request on a connection the receiver is closing.
	idleConnTimeout = 4 * time.Second
	// maxConnAge retires a connection after this long even if busy, so
	// that a change of the receiver's DNS is followed (and the address
	// policy applied to the new addresses) within it.
	maxConnAge = 5 * time.Minute
	// An endpoint (its HostClient) unused for idleEndpointTimeout is
	// dropped by a sweep every sweepInterval.
	idleEndpointTimeout = 5 * time.Minute
	sweepInterval       = time.Minute
	// maxEndpoints bounds the endpoints kept at once. A request to another
	// endpoint beyond it still goes out, on a connection of its own that
	// is closed after the response.
	maxEndpoints = 10000
	// readBufferSize is per connection, and bounds the response head.
	readBufferSize = 16 << 10
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// AllowPrivate lets callbacks reach loopback, private and other
	// non-public unicast addresses (webhooks.allow_private_networks).
	AllowPrivate bool
	// Timeout bounds a whole Post: waiting for a connection, resolving,
	// connecting, TLS, sending and reading the answer. Default 10 s.
	Timeout time.Duration
	// MaxConnsPerEndpoint is the most connections open to one endpoint;
	// a Post beyond it waits for one to be free (within Timeout).
	// Default 64.
	MaxConnsPerEndpoint int
	// MaxResponseBytes is the most of a response body that is read; a
	// larger body is not an error, but its connection is not reused.
	// Default 4096.
	MaxResponseBytes int
	// UserAgent is sent with every request. Default "Switchboard-Webhooks/1".
	UserAgent string
	// Resolver looks up a host name. Default net.DefaultResolver.LookupNetIP
	// for "ip".
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)
	// TLSConfig for https endpoints; nil for the default (system roots,
	// server name from the URL).
	TLSConfig *tls.Config
}

// Outcome is how a Post went, as the dispatcher needs to know it.
type Outcome uint8

// Outcomes of a Post.
const (
	// Delivered: the receiver answered 2xx.
	Delivered Outcome = iota + 1
	// Gone: the receiver answered 410; stop sending it this event.
	Gone
	// Retry: timeout, connection or DNS error, 429, 5xx, or any other
	// answer (3xx, 4xx other than 410). Try again later.
	Retry
	// RefusedURL: the URL fails CheckURL. It will fail again: permanent.
	RefusedURL
	// RefusedAddress: the host name resolved only to addresses AllowedIP
	// refuses; nothing was sent. DNS may change, so it is the caller's
	// choice whether to retry.
	RefusedAddress
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Gone:
		return "gone"
	case Retry:
		return "retry"
	case RefusedURL:
		return "refused_url"
	case RefusedAddress:
		return "refused_address"
	}
	return "unknown"
}

// Result is how a Post went.
type Result struct {
	// Status is the HTTP status of the answer; 0 if there was none.
	Status int
	// RetryAfter is the receiver's Retry-After (seconds or HTTP-date) on a
	// 429 or 503, capped at MaxRetryAfter; 0 if absent, invalid or past.
	RetryAfter time.Duration
	Outcome    Outcome
	// Err says what went wrong when there was no answer (Status 0): for
	// RefusedURL and RefusedAddress a *switchboard.Error with code
	// EINVALID, otherwise a transport error that names the endpoint but
	// not the full URL. It is nil when the receiver answered, whatever
	// the status.
	Err error
	// Duration is how long the Post took.
	Duration time.Duration
}

// Client POSTs callbacks. It is safe for concurrent use; Close it when done.
type Client struct {
	opts Options
	urls *checkedURLs
	macs *macs

	// dial connects to an address that has passed the policy. Tests
	// replace it to see where the client connects.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	idleEndpoint time.Duration
	maxEndpoints int

	mu        sync.RWMutex
	endpoints map[string]*endpoint // by switchboard.CallbackEndpoint
	closed    bool
	posts     sync.WaitGroup // Posts in progress; Close waits for them

	stop chan struct{} // closed by Close: the sweeper returns
	done chan struct{} // closed by the sweeper when it returns
}

// endpoint is one scheme://host:port with its connection pool.
type endpoint struct {
	hc        *fasthttp.HostClient
	transient bool         // not in the map: its connection closes after the response
	active    atomic.Int32 // Posts using hc; only an endpoint at 0 is dropped
	lastUse   atomic.Int64 // Unix nanoseconds at the end of the last Post
}

// New returns a Client, with a goroutine that drops idle endpoints until
// Close.
func New(opts Options) *Client {
	return newClient(opts, sweepInterval, idleEndpointTimeout, maxEndpoints)
}

func newClient(opts Options, sweepEvery, idleEndpoint time.Duration, maxEndpoints int) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxConnsPerEndpoint <= 0 {
		opts.MaxConnsPerEndpoint = DefaultMaxConnsPerEndpoint
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Resolver == nil {
		opts.Resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	c := &Client{
		opts:         opts,
		urls:         newCheckedURLs(opts.AllowPrivate),
		macs:         newMACs(),
		dial:         (&net.Dialer{}).DialContext,
		idleEndpoint: idleEndpoint,
		maxEndpoints: maxEndpoints,
		endpoints:    make(map[string]*endpoint),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	go c.sweep(sweepEvery)
	return c
}

// Close stops the client: later Posts fail at once (Retry), Posts in
// progress finish (each within Timeout) and Close waits for them, then the
// pooled connections are closed. fasthttp's per-endpoint cleaner
// goroutines end by themselves once an endpoint has no connection.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		c.posts.Wait()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	c.posts.Wait()
	c.mu.Lock()
	eps := c.endpoints
	c.endpoints = nil
	c.mu.Unlock()
	for _, ep := range eps {
		ep.hc.CloseIdleConnections()
	}
}

// sweep drops endpoints idle for c.idleEndpoint, until Close.
func (c *Client) sweep(every time.Duration) {
	defer close(c.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case now := <-tick.C:
			c.dropIdle(now)
		}
	}
}

func (c *Client) dropIdle(now time.Time) {
	var idle []*fasthttp.HostClient
	c.mu.Lock()
	for key, ep := range c.endpoints {
		if ep.active.Load() == 0 && now.UnixNano()-ep.lastUse.Load() > int64(c.idleEndpoint) {
			delete(c.endpoints, key)
			idle = append(idle, ep.hc)
		}
	}
	c.mu.Unlock()
	// No Post can reach these any more, and none is using them.
	for _, hc := range idle {
		hc.CloseIdleConnections()
	}
}

// endpointCount is the number of endpoints kept, for tests.
func (c *Client) endpointCount() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.endpoints)
}

// acquire returns t's endpoint, counted as in use; release it after.
func (c *Client) acquire(t *target) (*endpoint, error) {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, "callback client is closed")
	}
	ep := c.endpoints[t.endpoint]
	if ep != nil {
		ep.active.Add(1)
		c.posts.Add(1)
		c.mu.RUnlock()
		return ep, nil
	}
	c.mu.RUnlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, switchboard.Errorf(switchboard.EUNAVAILABLE, "callback client is closed")
	}
	ep = c.endpoints[t.endpoint]
	if ep == nil {
		ep = &endpoint{hc: c.hostClient(t)}
		if len(c.endpoints) < c.maxEndpoints {
			c.endpoints[t.endpoint] = ep
		} else {
			ep.transient = true
		}
	}
	ep.active.Add(1)
	c.posts.Add(1)
	return ep, nil
}

func (c *Client) release(ep *endpoint, now time.Time) {
	ep.lastUse.Store(now.UnixNano())
	ep.active.Add(-1)
	c.posts.Done()
}

func (c *Client) hostClient(t *target) *fasthttp.HostClient {
	t2 := *t // the dialer keeps its own copy
	tlsConf := c.tlsConfig(t)
	return &fasthttp.HostClient{
		Addr: net.JoinHostPort(t.host, t.port),
		// IsTLS only tells fasthttp the scheme: connect returns a
		// *tls.Conn already through its handshake, which fasthttp does
		// not wrap again, so fasthttp's TLSConfig is not used.
		IsTLS: t.tls,
		DialTimeout: func(_ string, timeout time.Duration) (net.Conn, error) {
			return c.connect(&t2, tlsConf, timeout)
		},
		Name: c.opts.UserAgent,

		MaxConns:            c.opts.MaxConnsPerEndpoint,
		MaxConnWaitTimeout:  c.opts.Timeout,
		MaxIdleConnDuration: idleConnTimeout,
		MaxConnDuration:     maxConnAge,
		ConnPoolStrategy:    fasthttp.LIFO, // the most recently used: warm, and lets the others go idle

		// One more attempt, only when a connection was closed under the
		// request (typically a pooled one the receiver had just closed).
		// Receivers drop duplicates by event_id, so a request that did
		// arrive and is sent again costs nothing.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr: func(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
			return false, connClosed(err)
		},

		MaxResponseBodySize:    c.opts.MaxResponseBytes,
		ReadBufferSize:         readBufferSize,
		DisablePathNormalizing: true, // send the customer's path as written
		SecureErrorLogMessage:  true,
	}
}

// tlsConfig returns the TLS configuration for t's connections, nil for
// http: a copy of Options.TLSConfig with the URL's host as the server name
// (sent as SNI, and what the certificate must name) unless it sets one.
func (c *Client) tlsConfig(t *target) *tls.Config {
	if !t.tls {
		return nil
	}
	cfg := &tls.Config{}
	if c.opts.TLSConfig != nil {
		cfg = c.opts.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = t.host
	}
	return cfg
}

// connClosed reports whether err means the connection was closed before an
// answer arrived.
func connClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// connect resolves t's host (unless it is an address), checks every
// address with AllowedIP, and connects to an allowed one: the address it
// checked, never resolving again. If none is allowed it returns an
// EINVALID *switchboard.Error, which Post reports as RefusedAddress.
// With tlsConf (https) it also completes the TLS handshake, all within
// timeout.
func (c *Client) connect(t *target, tlsConf *tls.Config, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > c.opts.Timeout {
		timeout = c.opts.Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	conn, err := c.dialAllowed(ctx, t)
	if err != nil || tlsConf == nil {
		return conn, err
	}
	return handshake(ctx, conn, tlsConf)
}

// handshake runs the TLS client handshake on conn within ctx. Left to
// fasthttp (with no HostClient.WriteTimeout) it would happen inside the
// first write of the request, where nothing bounds the wait for the
// server's hello: a receiver that accepts and never answers would hold the
// Post, its endpoint's slot and Close forever.
func handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", conn.RemoteAddr(), err)
	}
	return tc, nil
}

// dialAllowed is connect without TLS.
func (c *Client) dialAllowed(ctx context.Context, t *target) (net.Conn, error) {
	var addrs []netip.Addr
	if t.ip.IsValid() {
		addrs = []netip.Addr{t.ip}
	} else {
		var err error
		addrs, err = c.opts.Resolver(ctx, t.host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", t.host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", t.host)
		}
	}
	allowed := make([]netip.Addr, 0, len(addrs))
	var refused []string
	hint := ""
	for _, a := range addrs {
		a = a.Unmap()
		if AllowedIP(a, c.opts.AllowPrivate) {
			allowed = append(allowed, a)
			continue
		}
		reason, privateOnly := classify(a)
		if len(refused) < 4 {
			refused = append(refused, a.String()+" ("+reason+")")
		}
		if privateOnly {
			hint = "; set webhooks.allow_private_networks to allow it"
		}
	}
	if len(allowed) == 0 {
		return nil, switchboard.Errorf(switchboard.EINVALID,
			"callback host %s resolves only to addresses that are not allowed: %s%s",
			t.host, strings.Join(refused, ", "), hint)
	}
	port := t.portNum
	var firstErr error
	for i, a := range allowed {
		// Like net.Dialer, give each remaining address a share of the
		// time left (at least 2 s), so one black hole does not use it all.
		dctx, dcancel := ctx, context.CancelFunc(func() {})
		if left := len(allowed) - i; left > 1 {
			if dl, ok := ctx.Deadline(); ok {
				share := max(time.Until(dl)/time.Duration(left), 2*time.Second)
				dctx, dcancel = context.WithTimeout(ctx, share)
			}
		}
		conn, err := c.dial(dctx, "tcp", netip.AddrPortFrom(a, port).String())
		dcancel()
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// Post sends body to url with Content-Type application/json, the client's
// User-Agent and headers (the caller's signature among them), once: no
// redirect is followed and nothing is retried, except once when a
// connection closes under the request. ctx's deadline shortens Timeout;
// a cancelled ctx is seen before the request starts, not during it. body
// must not change until Post returns.
func (c *Client) Post(ctx context.Context, url string, body []byte, headers [][2]string) Result {
	start := time.Now()
	r, ep := c.post(ctx, start, url, body, headers)
	end := time.Now()
	if ep != nil {
		c.release(ep, end)
	}
	r.Duration = end.Sub(start)
	return r
}

func (c *Client) post(ctx context.Context, start time.Time, url string, body []byte, headers [][2]string) (Result, *endpoint) {
	t, err := c.urls.check(url)
	if err != nil {
		return Result{Outcome: RefusedURL, Err: err}, nil
	}
	timeout := c.opts.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, dl.Sub(start))
	}
	if err := ctx.Err(); err != nil {
		return Result{Outcome: Retry, Err: err}, nil
	}
	if timeout <= 0 {
		return Result{Outcome: Retry, Err: context.DeadlineExceeded}, nil
	}

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	if !sameTarget(req.URI(), &t) {
		// fasthttp reads the URL differently from net/url: refuse rather
		// than send a Host header the policy did not see.
		return Result{Outcome: RefusedURL, Err: switchboard.Errorf(switchboard.EINVALID,
			"callback URL is ambiguous: its host cannot be read with certainty")}, nil
	}
	ep, err := c.acquire(&t)
	if err != nil {
		return Result{Outcome: Retry, Err: err}, nil
	}
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	req.SetBodyRaw(body)
	if ep.transient {
		req.SetConnectionClose()
	}
	req.SetTimeout(timeout)

	err = ep.hc.Do(req, resp)
	// ErrBodyTooLarge comes after the status line and headers were read:
	// the answer stands, only the rest of the body was not read.
	if err != nil && !errors.Is(err, fasthttp.ErrBodyTooLarge) {
		var refused *switchboard.Error
		if errors.As(err, &refused) {
			return Result{Outcome: RefusedAddress, Err: refused}, ep
		}
		// A timeout while connecting (handshake included) is connect's
		// context expiring; its deadline is the Post's.
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return Result{Outcome: Retry, Err: fmt.Errorf("POST %s: timed out after %v", t.endpoint, timeout)}, ep
		}
		return Result{Outcome: Retry, Err: fmt.Errorf("POST %s: %w", t.endpoint, err)}, ep
	}
	r := Result{Status: resp.StatusCode()}
	switch {
	case r.Status >= 200 && r.Status <= 299:
		r.Outcome = Delivered
	case r.Status == fasthttp.StatusGone:
		r.Outcome = Gone
	default:
		r.Outcome = Retry
		if r.Status == fasthttp.StatusTooManyRequests || r.Status == fasthttp.StatusServiceUnavailable {
			r.RetryAfter = retryAfter(resp.Header.Peek(fasthttp.HeaderRetryAfter), time.Now())
		}
	}
	return r, ep
}

// sameTarget reports whether fasthttp's reading of the URL has the scheme
// and host:port that checkURL saw (the default port may be left out).
func sameTarget(u *fasthttp.URI, t *target) bool {
	if !bytes.EqualFold(u.Scheme(), []byte(t.scheme)) {
		return false
	}
	h := u.Host()
	hostPort := t.endpoint[len(t.scheme)+3:]
	if bytes.EqualFold(h, []byte(hostPort)) {
		return true
	}
	withoutPort := hostPort[:len(hostPort)-len(t.port)-1]
	return t.port == t.defaultPort() && bytes.EqualFold(h, []byte(withoutPort))
}

// retryAfter parses a Retry-After value: seconds, or an HTTP-date from now.
// It returns 0 for an absent, invalid or past value, and caps at
// MaxRetryAfter.
func retryAfter(v []byte, now time.Time) time.Duration {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return 0
	}
	var d time.Duration
	if v[0] >= '0' && v[0] <= '9' {
		var secs int64
		for _, c := range v {
			if c < '0' || c > '9' {
				return 0
			}
			if secs < int64(MaxRetryAfter/time.Second) {
				secs = secs*10 + int64(c-'0')
			}
		}
		d = time.Duration(secs) * time.Second
	} else {
		at, err := http.ParseTime(string(v))
		if err != nil {
			return 0
		}
		d = at.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}
