// Package http is Switchboard's public REST API: POST /v1/messages (one
// message), POST /v1/messages/batch, GET /v1/messages/{id}, GET
// /v1/messages (a day's messages), and the health probes. It runs on fasthttp because it sits on the hot path of every
// message; it authenticates the API key, decodes and validates the JSON, and
// hands the request to the engine (actors/) through the small Engine
// interface defined here. Error codes become HTTP statuses in one function,
// Server.Error; docs/openapi.yaml describes every route.
package http

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// Engine is what the API needs from the actor engine. It is defined here,
// where it is used, and implemented by actors/.
type Engine interface {
	// Submit validates (beyond SubmitRequest.Validate), rate-limits and
	// durably accepts messages for key; one result per request, in order.
	// Errors are *switchboard.Error (codes: invalid_*, body_too_long,
	// rate_limited with RetryAfter, queue_full, idempotency_conflict,
	// no_route, unavailable) or internal.
	Submit(ctx context.Context, key *switchboard.Key, reqs []switchboard.SubmitRequest) []switchboard.SubmitResult
	// Message returns a message of key; another key's message is ENOTFOUND.
	Message(ctx context.Context, key *switchboard.Key, id string) (*switchboard.Message, error)
	// ListMessages lists key's messages of one UTC day, newest first, as
	// switchboard.MessageStore.ListMessages does (q.Key is the engine's
	// to set): at most q.Limit, maybe fewer with a non-empty next (the
	// Before of the following call), next "" when the day is done.
	ListMessages(ctx context.Context, key *switchboard.Key, q switchboard.MessageQuery) ([]*switchboard.Message, string, error)
	// Ready reports whether the node can take and send messages now: nil,
	// or an *switchboard.Error with EUNAVAILABLE whose message says why
	// not. /readyz calls it on every probe, so it must be cheap.
	Ready() error
}

// Config configures a Server. Zero durations and sizes take the defaults
// named on each field.
type Config struct {
	Addr   string // for Open; default 127.0.0.1:8080
	Engine Engine
	Keys   *switchboard.KeyRing
	// KeysLoading, if set, says Keys does not hold every key yet (the node
	// is starting and reads the keys made through the admin API from its
	// store): an unknown secret is then answered 503, not 401, and not
	// counted as a failed authentication.
	KeysLoading func() bool
	Log         zerolog.Logger

	ReadTimeout  time.Duration // whole request, headers and body; default 10s
	WriteTimeout time.Duration // default 10s
	IdleTimeout  time.Duration // keep-alive wait for the next request; default 120s

	MaxBodySize      int // POST /v1/messages; default 64 KiB, 413 beyond
	MaxBatchBodySize int // POST /v1/messages/batch; default 4 MiB, 413 beyond
	MaxBatch         int // messages in one batch; default 1000
	MaxConns         int // concurrent connections, idle ones included; default 20000

	// ReleaseIdleBuffers makes idle keep-alive connections give their
	// buffers back (node.http_release_idle_buffers): 10,000 idle
	// connections then hold 20 MiB of heap instead of 114 MiB, but every
	// request costs an extra read syscall and a buffer round trip through
	// a pool, about 10 % of the closed-loop maximum (docs/benchmarks.md).
	ReleaseIdleBuffers bool

	// AllowPrivateCallbacks lets a message's callback_url name loopback
	// and private addresses (webhooks.allow_private_networks).
	AllowPrivateCallbacks bool
	// MaxValidity is the longest validity a message may ask for
	// (limits.max_validity), in whole seconds; default 72h.
	MaxValidity time.Duration

	// AuthFailuresPerMinute is how many failed authentications one client
	// address (an IPv6 one by its /64) may have in a minute; beyond them
	// its requests get 429 rate_limited until the minute is over
	// (node.auth_failures_per_minute). Default 10; negative: no limit.
	AuthFailuresPerMinute int
	// AuthFailuresTable bounds the addresses remembered for it; a new one
	// evicts the one whose last failure is oldest. Default 10,000.
	AuthFailuresTable int

	// Metrics, if set, records every request's duration.
	Metrics *Metrics

	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Defaults for Config.
const (
	DefaultAddr             = "127.0.0.1:8080"
	DefaultReadTimeout      = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultIdleTimeout      = 120 * time.Second
	DefaultMaxBodySize      = 64 << 10
	DefaultMaxBatchBodySize = 4 << 20
	DefaultMaxBatch         = 1000
	DefaultMaxConns         = 20000
	DefaultMaxValidity      = 72 * time.Hour

	DefaultAuthFailuresPerMinute = 10
	DefaultAuthFailuresTable     = 10000
)

func (c *Config) setDefaults() {
	setDefault(&c.Addr, DefaultAddr)
	setDefault(&c.ReadTimeout, DefaultReadTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.MaxBodySize, DefaultMaxBodySize)
	setDefault(&c.MaxBatchBodySize, DefaultMaxBatchBodySize)
	setDefault(&c.MaxBatch, DefaultMaxBatch)
	setDefault(&c.MaxConns, DefaultMaxConns)
	setDefault(&c.MaxValidity, DefaultMaxValidity)
	setDefault(&c.AuthFailuresPerMinute, DefaultAuthFailuresPerMinute)
	setDefault(&c.AuthFailuresTable, DefaultAuthFailuresTable)
	if c.Now == nil {
		c.Now = time.Now
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Server serves the public API. Create it with New, run it with Open or
// Serve, stop it with Drain and then Shutdown.
type Server struct {
	responder
	cfg    Config
	engine Engine
	keys   *switchboard.KeyRing
	srv    *fasthttp.Server
	router router
	rules  decodeRules
	// authLimit throttles failed authentication per client address; nil
	// when there is no limit.
	authLimit *authLimiter

	// draining makes every new API request a 503 (see Drain).
	draining atomic.Bool
	// errDraining is the 503 Drain answers with; Error knows it by identity
	// and does not log it, since every request during a drain gets it.
	errDraining *switchboard.Error
	readyLog    readinessLog

	// ctx is handed to the engine. It is not the request's context, because
	// fasthttp cancels that when Shutdown starts and requests in progress
	// must complete; it is cancelled only when Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	ln     net.Listener
	closed bool
	served chan struct{} // closed when the goroutine Open started ends
}

// New returns a server for cfg; it does not listen yet.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	switch {
	case cfg.Engine == nil:
		return nil, errors.New("http: Config.Engine is required")
	case cfg.Keys == nil:
		return nil, errors.New("http: Config.Keys is required")
	case cfg.MaxBodySize > cfg.MaxBatchBodySize:
		return nil, fmt.Errorf("http: MaxBodySize %d is above MaxBatchBodySize %d", cfg.MaxBodySize, cfg.MaxBatchBodySize)
	case cfg.MaxBatch < 1 || cfg.MaxConns < 1 || cfg.MaxBodySize < 1:
		return nil, errors.New("http: MaxBatch, MaxConns and MaxBodySize must be positive")
	case cfg.MaxValidity < time.Second:
		return nil, errors.New("http: MaxValidity must be at least a second")
	}
	s := &Server{
		responder:   responder{log: cfg.Log.With().Str("component", "http").Logger(), quietPath: pathReadyz},
		cfg:         cfg,
		engine:      cfg.Engine,
		keys:        cfg.Keys,
		rules:       decodeRules{allowPrivate: cfg.AllowPrivateCallbacks, maxValidity: int64(cfg.MaxValidity / time.Second)},
		errDraining: &switchboard.Error{Code: switchboard.EUNAVAILABLE, Message: "The server is shutting down; retry on another node or later.", RetryAfter: time.Second},
	}
	if cfg.AuthFailuresPerMinute > 0 {
		s.authLimit = newAuthLimiter(cfg.AuthFailuresPerMinute, time.Minute, cfg.AuthFailuresTable)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.quiet = s.errDraining
	s.readyLog.log = s.log
	s.router = newRouter(s.routes())
	s.srv = &fasthttp.Server{
		Handler:        s.handler,
		ErrorHandler:   s.parseError,
		HeaderReceived: s.headerReceived,
		Logger:         fasthttpLogger{s.log},
		ReadTimeout:    cfg.ReadTimeout,
		WriteTimeout:   cfg.WriteTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		Concurrency:    cfg.MaxConns,
		// headerReceived lowers this per route; fasthttp needs the largest.
		MaxRequestBodySize: cfg.MaxBatchBodySize,
		// Multipart bodies would otherwise be parsed (to temporary files)
		// before the handler could refuse them as 415.
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		CloseOnShutdown:              true,
		ReduceMemoryUsage:            cfg.ReleaseIdleBuffers,
	}
	return s, nil
}

// Open listens on Config.Addr and serves in a goroutine the server owns;
// Shutdown stops it.
func (s *Server) Open() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	served := make(chan struct{})
	s.mu.Lock()
	s.served = served
	s.mu.Unlock()
	go func() {
		defer close(served)
		if err := s.Serve(ln); err != nil {
			s.log.Error().Err(err).Msg("serving stopped")
		}
	}()
	return nil
}

// Serve serves on ln until Shutdown, then returns nil. Use it to serve on a
// listener the caller made (tests listen on 127.0.0.1:0).
func (s *Server) Serve(ln net.Listener) error {
	ln = lingerListener{Listener: ln, linger: s.cfg.ReadTimeout}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("http: server is shut down")
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("serving public API")
	err := s.srv.Serve(ln)
	if s.isClosed() {
		return nil // Shutdown closed the listener.
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Addr returns the address the server listens on, "" before it does.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Drain begins a graceful stop: from now on API requests get 503
// unavailable with Retry-After and /readyz answers 503, so a load balancer
// moves traffic elsewhere; requests in progress complete. /healthz stays
// 200, because the process is still alive.
func (s *Server) Drain() {
	if !s.draining.Swap(true) {
		s.log.Info().Msg("draining: new requests get 503")
	}
}

// Shutdown drains, stops accepting connections, closes idle ones and waits
// for requests in progress until ctx ends. If ctx ends first it cancels the
// engine calls still running and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	s.mu.Lock()
	s.closed = true
	ln, served := s.ln, s.served
	s.mu.Unlock()
	defer s.cancel()
	if ln != nil {
		// fasthttp closes it too; closing it here covers a Serve that had
		// not handed it to fasthttp yet.
		ln.Close()
	}
	err := s.srv.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener closed above
	}
	if served != nil {
		select {
		case <-served:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return err
}

// handler serves one request: route, check draining and the API key, run
// the route, log one line.
func (s *Server) handler(ctx *fasthttp.RequestCtx) {
	start := s.cfg.Now()
	setRequestID(ctx)
	rt, key := s.dispatch(ctx, start)
	s.logRequest(ctx, rt, key, start)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.observeRequest(rt.name(), rt.methodOf(ctx), ctx.Response.StatusCode(), s.cfg.Now().Sub(start))
	}
}

// dispatch finds the route and runs it. A panic becomes a 500, because
// fasthttp would let it take the whole gateway down.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx, now time.Time) (rt *route, key *switchboard.Key) {
	defer func() {
		if p := recover(); p != nil {
			s.panicked(ctx, rt, p)
		}
	}()
	rt, param, allow := s.router.match(ctx.Method(), ctx.Path())
	switch {
	case rt == nil && allow == "":
		s.Error(ctx, apiError(switchboard.ENOTFOUND, "No such route."))
		return rt, nil
	case rt == nil:
		ctx.Response.Header.Set("Allow", allow)
		s.Error(ctx, apiError(EMETHOD, "Method not allowed; allowed: "+allow+"."))
		return rt, nil
	}
	if !rt.public {
		if s.draining.Load() {
			// The connection closes after the answer, so a keep-alive
			// client reconnects, through its load balancer, elsewhere.
			ctx.SetConnectionClose()
			s.Error(ctx, s.errDraining)
			return rt, nil
		}
		var err error
		if key, err = s.authorize(ctx, now); err != nil {
			s.Error(ctx, err)
			return rt, nil
		}
	}
	if err := rt.handle(ctx, key, param); err != nil {
		s.Error(ctx, err)
	}
	return rt, key
}

// logRequest writes the one debug line per request. Errors at or above 500
// are logged at error level by Error, with their cause.
func (s *Server) logRequest(ctx *fasthttp.RequestCtx, rt *route, key *switchboard.Key, start time.Time) {
	e := s.log.Debug()
	if e == nil {
		return
	}
	if key != nil {
		e = e.Str("key", key.ID)
	}
	e.Bytes("method", ctx.Method()).
		Str("route", rt.name()).
		Int("status", ctx.Response.StatusCode()).
		Dur("duration", s.cfg.Now().Sub(start)).
		Bytes("request_id", ctx.Response.Header.Peek(headerRequestID)).
		Msg("request")
}

// headerReceived sets the body limit per route before fasthttp reads the
// body, so a too-large single message is refused without reading 4 MiB.
// The path is the raw one: a path spelled differently (escaped, with dot
// segments) gets the smaller limit, which only makes it stricter.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	// Only a key gets the batch's larger body buffered: without one,
	// every connection could make the server hold MaxBatchBodySize.
	if isBatch(h) {
		if _, ok := s.keyOf(h); ok {
			return fasthttp.RequestConfig{MaxRequestBodySize: s.cfg.MaxBatchBodySize}
		}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: s.cfg.MaxBodySize}
}

// isBatch reports whether a request is for the batch route, by its URI
// as sent, in origin form or absolute form ("http://host/v1/...", which
// HTTP/1.1 servers must accept): a path spelled otherwise gets the smaller
// limit.
func isBatch(h *fasthttp.RequestHeader) bool {
	path := string(h.RequestURI())
	if _, rest, ok := strings.Cut(path, "://"); ok && !strings.HasPrefix(path, "/") {
		_, path, _ = strings.Cut(rest, "/")
		path = "/" + path
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path == pathBatch
}

// parseError answers a request fasthttp could not read (fasthttp closes
// the connection after it). Its default would answer an oversized body
// with 400 and in plain text.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	rerr := readError(ctx, err, s.cfg.MaxBatchBodySize)
	if switchboard.ErrorCode(rerr) == switchboard.ETOOLARGE && isBatch(&ctx.Request.Header) {
		// A batch body refused for want of a key (headerReceived) is the
		// key's problem: say so, and count the failure like any other.
		if _, aerr := s.authorize(ctx, time.Now()); aerr != nil {
			rerr = aerr
		}
	}
	s.Error(ctx, rerr)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.observeUnread(ctx)
	}
}

// readError is the API error for a request fasthttp could not read, on
// the public and the admin listener alike, and sets the request id the
// handler did not get to set. maxBody is the listener's largest body:
// up to four times it of a refused body is drained (lingerOnClose).
func readError(ctx *fasthttp.RequestCtx, err error, maxBody int) error {
	setRequestID(ctx)
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		// The client may still be sending the body; closing now would
		// reset the connection before it reads the 413.
		lingerOnClose(ctx.Conn(), ctx.Request.Header.ContentLength(), 4*maxBody)
		return apiError(switchboard.ETOOLARGE, "Request body is too large.")
	case errors.As(err, &small):
		// As for a body: the rest of the headers may still be coming.
		lingerOnClose(ctx.Conn(), 0, 4*maxBody)
		return apiError(EHEADERSTOOLARGE, "Request headers are too large.")
	case errors.As(err, &netErr) && netErr.Timeout():
		return apiError(ETIMEOUT, "Request not received in time.")
	}
	return apiError(switchboard.EINVALID, "Malformed HTTP request.")
}

// fasthttpLogger sends fasthttp's own messages to zerolog. Per-connection
// failures are clients' doing (resets, oversized or malformed requests), so
// they go to debug; the rest (accept errors, the connection limit) to warn.
type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	if strings.HasPrefix(format, "error when serving connection") {
		l.log.Debug().Msgf(format, args...)
		return
	}
	l.log.Warn().Msgf(format, args...)
}
