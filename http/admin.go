package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
)

// The admin listener (node.admin) serves operators: /metrics, /healthz and
// /readyz without auth, the status page at /, and the admin API under
// /admin/v1/, which needs "Authorization: Bearer <node.admin_token>".
// Errors have the public API's shape and codes, mapped by the same table
// (statusOf). docs/admin-openapi.yaml describes every route.

// Ops is what the admin listener needs from the engine; actors.Engine
// implements it.
type Ops interface {
	Gauges() actors.Gauges
	Stats() actors.Stats
	Ready() error
	// CancelMessage ends a queued message canceled (ECONFLICT once it
	// is being submitted, ENOTFOUND for no such message).
	CancelMessage(ctx context.Context, id string) (*switchboard.Message, error)
	// Fleet is the node's view of its cluster; false on a single node.
	Fleet() (actors.FleetStatus, bool)
}

// Catalog manages keys, carriers and routes: those cluster.yaml defines
// (read-only here: changing one is EMANAGED) and those the admin API
// creates (kept in the store). cmd/switchboard implements it. Request
// bodies are passed as received (JSON); results are encoded as JSON.
type Catalog interface {
	ListKeys(ctx context.Context) (any, error)
	GetKey(ctx context.Context, id string) (any, error)
	// CreateKey's result shows the key's secret and webhook secret, once.
	CreateKey(ctx context.Context, body []byte) (any, error)
	UpdateKey(ctx context.Context, id string, body []byte) (any, error)
	RevokeKey(ctx context.Context, id string) (any, error)
	RotateSecret(ctx context.Context, id string, body []byte) (any, error)
	RotateWebhookSecret(ctx context.Context, id string, body []byte) (any, error)
	WebhookSecret(ctx context.Context, id string) (any, error)

	ListCarriers(ctx context.Context) (any, error)
	GetCarrier(ctx context.Context, name string) (any, error)
	AddCarrier(ctx context.Context, body []byte) (any, error)
	UpdateCarrier(ctx context.Context, name string, body []byte) (any, error)
	RemoveCarrier(ctx context.Context, name string) error
	SuspendCarrier(ctx context.Context, name string) (any, error)
	ResumeCarrier(ctx context.Context, name string) (any, error)

	ListRoutes(ctx context.Context) (any, error)
	AddRoute(ctx context.Context, body []byte) (any, error)
	UpdateRoute(ctx context.Context, id string, body []byte) (any, error)
	RemoveRoute(ctx context.Context, id string) error
}

// AdminConfig configures the admin listener.
type AdminConfig struct {
	// Token is node.admin_token; empty turns the admin API off (every
	// /admin/v1/ route answers 404 saying so). /metrics, the probes and
	// the page stay on.
	Token   string
	Ops     Ops
	Catalog Catalog
	// Metrics and Gatherer: the node's metrics and the registry that
	// serves them on /metrics.
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	Log      zerolog.Logger
	// Node is the node's name, shown on the status page.
	Node string
	// AuthFailuresPerMinute throttles failed authentication per client
	// address, as the public API does (default 10; negative: no limit).
	AuthFailuresPerMinute int
	// RequestTimeout bounds each admin call (default 30s: a carrier's
	// binds may take a while to drain).
	RequestTimeout time.Duration
	Now            func() time.Time
}

// AdminServer is the admin listener. NewAdmin makes it, Serve serves,
// Shutdown stops it.
type AdminServer struct {
	responder
	cfg AdminConfig
	// token is the SHA-256 of the token, compared in constant time; nil
	// when the admin API is off.
	token     atomic.Pointer[[32]byte]
	srv       *fasthttp.Server
	router    router
	authLimit *authLimiter
	numbers   *keyNumbers
	draining  func() bool
	readyLog  readinessLog

	// ctx is the requests': it ends once Shutdown has waited for them
	// (a change stored and not answered would be lost to its caller: a
	// rotated secret no one saw). sampling is the sampler's.
	ctx          context.Context
	cancel       context.CancelFunc
	sampling     context.Context
	stopSampling context.CancelFunc
	wg           sync.WaitGroup
	mu           sync.Mutex
	ln           net.Listener
	closed       bool // Shutdown ran: Serve serves no more
}

//go:embed status.html
var statusPage []byte

// NewAdmin returns the admin listener for cfg and starts sampling the key
// numbers the status page charts (Shutdown stops it).
func NewAdmin(cfg AdminConfig) (*AdminServer, error) {
	if cfg.Ops == nil || cfg.Metrics == nil || cfg.Gatherer == nil {
		return nil, errors.New("http: AdminConfig needs Ops, Metrics and Gatherer")
	}
	setDefault(&cfg.AuthFailuresPerMinute, DefaultAuthFailuresPerMinute)
	setDefault(&cfg.RequestTimeout, 30*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &AdminServer{
		responder: responder{log: cfg.Log.With().Str("component", "admin").Logger(), quietPath: pathReadyz},
		cfg:       cfg,
		numbers:   &keyNumbers{m: cfg.Metrics, engine: cfg.Ops},
		draining:  func() bool { return false },
	}
	a.readyLog.log = a.log
	a.SetToken(cfg.Token)
	if cfg.AuthFailuresPerMinute > 0 {
		a.authLimit = newAuthLimiter(cfg.AuthFailuresPerMinute, time.Minute, DefaultAuthFailuresTable)
	}
	a.router = newRouter(a.routes())
	a.srv = &fasthttp.Server{
		Handler: a.handler,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			a.Error(ctx, readError(ctx, err, DefaultMaxBodySize))
			a.cfg.Metrics.observeUnread(ctx)
		},
		Logger:                       fasthttpLogger{a.log},
		ReadTimeout:                  DefaultReadTimeout,
		WriteTimeout:                 cfg.RequestTimeout + DefaultWriteTimeout,
		IdleTimeout:                  DefaultIdleTimeout,
		MaxRequestBodySize:           DefaultMaxBodySize,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		CloseOnShutdown:              true,
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.sampling, a.stopSampling = context.WithCancel(context.Background())
	a.wg.Add(1)
	go a.sampleEvery(time.Second)
	return a, nil
}

// SetToken changes the admin token (SIGHUP); "" turns the admin API off.
func (a *AdminServer) SetToken(token string) {
	if token == "" {
		a.token.Store(nil)
		return
	}
	h := sha256.Sum256([]byte(token))
	a.token.Store(&h)
}

// DrainingWith makes /readyz answer 503 while draining() is true, as the
// public API's does.
func (a *AdminServer) DrainingWith(draining func() bool) { a.draining = draining }

func (a *AdminServer) sampleEvery(d time.Duration) {
	defer a.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-a.sampling.Done():
			return
		case now := <-t.C:
			a.numbers.sample(now)
		}
	}
}

// Serve serves on ln until Shutdown, then returns nil (at once, closing
// ln, after it).
func (a *AdminServer) Serve(ln net.Listener) error {
	// So that a client still sending a refused body reads the 413 (conn.go).
	ln = lingerListener{Listener: ln, linger: DefaultReadTimeout}
	a.mu.Lock()
	if a.closed { // shut down before it began: nothing to serve
		a.mu.Unlock()
		ln.Close()
		return nil
	}
	a.ln = ln
	a.mu.Unlock()
	msg := a.log.Info().Str("addr", ln.Addr().String())
	if a.token.Load() == nil {
		a.log.Warn().Msg("admin API is off: node.admin_token is not set (/metrics, /healthz, /readyz and the status page are served)")
	}
	msg.Msg("serving admin listener")
	err := a.srv.Serve(ln)
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return nil
	}
	return err
}

// Addr is where the admin listener listens, "" before Serve.
func (a *AdminServer) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Shutdown stops the sampler and the server, waiting for requests in
// progress until ctx ends; then it cancels those still running.
func (a *AdminServer) Shutdown(ctx context.Context) error {
	defer a.cancel()
	a.stopSampling()
	a.wg.Wait()
	a.mu.Lock()
	a.closed = true
	ln := a.ln
	a.mu.Unlock()
	if ln != nil {
		// fasthttp closes it too; closing it here covers a Serve that had
		// not handed it to fasthttp yet, which fasthttp would not stop.
		ln.Close()
	}
	err := a.srv.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Admin routes.
const (
	pathAdmin   = "/admin/v1"
	pathMetrics = "/metrics"
)

func (a *AdminServer) routes() []route {
	h := func(f func(ctx *fasthttp.RequestCtx, param []byte) error) handlerFunc {
		return func(ctx *fasthttp.RequestCtx, _ *switchboard.Key, param []byte) error { return f(ctx, param) }
	}
	c := func() Catalog { return a.cfg.Catalog }
	get := func(f func(context.Context) (any, error)) handlerFunc {
		return h(func(ctx *fasthttp.RequestCtx, _ []byte) error { return a.reply(ctx, 200, f) })
	}
	getID := func(f func(context.Context, string) (any, error)) handlerFunc {
		return h(func(ctx *fasthttp.RequestCtx, id []byte) error {
			return a.reply(ctx, 200, func(c context.Context) (any, error) { return f(c, string(id)) })
		})
	}
	post := func(status int, f func(context.Context, []byte) (any, error)) handlerFunc {
		return h(func(ctx *fasthttp.RequestCtx, _ []byte) error {
			body, err := a.body(ctx)
			if err != nil {
				return err
			}
			return a.reply(ctx, status, func(c context.Context) (any, error) { return f(c, body) })
		})
	}
	postID := func(f func(context.Context, string, []byte) (any, error)) handlerFunc {
		return h(func(ctx *fasthttp.RequestCtx, id []byte) error {
			body, err := a.body(ctx)
			if err != nil {
				return err
			}
			return a.reply(ctx, 200, func(c context.Context) (any, error) { return f(c, string(id), body) })
		})
	}
	del := func(f func(context.Context, string) error) handlerFunc {
		return h(func(ctx *fasthttp.RequestCtx, id []byte) error {
			return a.reply(ctx, 204, func(c context.Context) (any, error) { return nil, f(c, string(id)) })
		})
	}
	noBody := func(f func(context.Context, string) (any, error)) func(context.Context, string, []byte) (any, error) {
		return func(c context.Context, id string, _ []byte) (any, error) { return f(c, id) }
	}
	return []route{
		{method: "GET", pattern: "/", public: true, handle: h(a.handlePage)},
		{method: "GET", pattern: pathMetrics, public: true, handle: h(a.handleMetrics)},
		{method: "GET", pattern: pathHealthz, public: true, handle: h(a.handleHealthz)},
		{method: "GET", pattern: pathReadyz, public: true, handle: h(a.handleReadyz)},

		{method: "GET", pattern: pathAdmin + "/status", handle: h(a.handleStatus)},
		{method: "GET", pattern: pathAdmin + "/binds", handle: h(a.handleBinds)},
		{method: "GET", pattern: pathAdmin + "/fleet", handle: h(a.handleFleet)},
		{method: "POST", pattern: pathAdmin + "/messages/{id}/cancel", handle: h(a.handleCancel)},

		{method: "GET", pattern: pathAdmin + "/keys", handle: get(func(x context.Context) (any, error) { return c().ListKeys(x) })},
		{method: "POST", pattern: pathAdmin + "/keys", handle: post(201, func(x context.Context, b []byte) (any, error) { return c().CreateKey(x, b) })},
		{method: "GET", pattern: pathAdmin + "/keys/{id}", handle: getID(func(x context.Context, id string) (any, error) { return c().GetKey(x, id) })},
		{method: "PATCH", pattern: pathAdmin + "/keys/{id}", handle: postID(func(x context.Context, id string, b []byte) (any, error) { return c().UpdateKey(x, id, b) })},
		{method: "POST", pattern: pathAdmin + "/keys/{id}/revoke", handle: postID(noBody(func(x context.Context, id string) (any, error) { return c().RevokeKey(x, id) }))},
		{method: "POST", pattern: pathAdmin + "/keys/{id}/rotate-secret", handle: postID(func(x context.Context, id string, b []byte) (any, error) { return c().RotateSecret(x, id, b) })},
		{method: "POST", pattern: pathAdmin + "/keys/{id}/rotate-webhook-secret", handle: postID(func(x context.Context, id string, b []byte) (any, error) { return c().RotateWebhookSecret(x, id, b) })},
		{method: "GET", pattern: pathAdmin + "/keys/{id}/webhook-secret", handle: getID(func(x context.Context, id string) (any, error) { return c().WebhookSecret(x, id) })},

		{method: "GET", pattern: pathAdmin + "/carriers", handle: get(func(x context.Context) (any, error) { return c().ListCarriers(x) })},
		{method: "POST", pattern: pathAdmin + "/carriers", handle: post(201, func(x context.Context, b []byte) (any, error) { return c().AddCarrier(x, b) })},
		{method: "GET", pattern: pathAdmin + "/carriers/{name}", handle: getID(func(x context.Context, n string) (any, error) { return c().GetCarrier(x, n) })},
		{method: "PATCH", pattern: pathAdmin + "/carriers/{name}", handle: postID(func(x context.Context, n string, b []byte) (any, error) { return c().UpdateCarrier(x, n, b) })},
		{method: "DELETE", pattern: pathAdmin + "/carriers/{name}", handle: del(func(x context.Context, n string) error { return c().RemoveCarrier(x, n) })},
		{method: "POST", pattern: pathAdmin + "/carriers/{name}/suspend", handle: postID(noBody(func(x context.Context, n string) (any, error) { return c().SuspendCarrier(x, n) }))},
		{method: "POST", pattern: pathAdmin + "/carriers/{name}/resume", handle: postID(noBody(func(x context.Context, n string) (any, error) { return c().ResumeCarrier(x, n) }))},

		{method: "GET", pattern: pathAdmin + "/routes", handle: get(func(x context.Context) (any, error) { return c().ListRoutes(x) })},
		{method: "POST", pattern: pathAdmin + "/routes", handle: post(201, func(x context.Context, b []byte) (any, error) { return c().AddRoute(x, b) })},
		{method: "PATCH", pattern: pathAdmin + "/routes/{id}", handle: postID(func(x context.Context, id string, b []byte) (any, error) { return c().UpdateRoute(x, id, b) })},
		{method: "DELETE", pattern: pathAdmin + "/routes/{id}", handle: del(func(x context.Context, id string) error { return c().RemoveRoute(x, id) })},
	}
}

// isMessagesRoute tells the public API's message routes from the rest
// (the admin API, /metrics, the page, the probes both listeners answer,
// unknown paths), so the status page's API latency and rate are the
// clients' alone.
func isMessagesRoute(pattern string) bool {
	return strings.HasPrefix(pattern, pathMessages)
}

func needsCatalog(pattern string) bool {
	for _, p := range []string{"/keys", "/carriers", "/routes"} {
		if strings.HasPrefix(pattern, pathAdmin+p) {
			return true
		}
	}
	return false
}

func (a *AdminServer) handler(ctx *fasthttp.RequestCtx) {
	start := a.cfg.Now()
	setRequestID(ctx)
	rt := a.dispatch(ctx, start)
	a.cfg.Metrics.observeRequest(rt.name(), rt.methodOf(ctx), ctx.Response.StatusCode(), a.cfg.Now().Sub(start))
	if e := a.log.Debug(); e != nil {
		e.Bytes("method", ctx.Method()).Str("route", rt.name()).Int("status", ctx.Response.StatusCode()).
			Dur("duration", a.cfg.Now().Sub(start)).Msg("admin request")
	}
}

func (a *AdminServer) dispatch(ctx *fasthttp.RequestCtx, now time.Time) (rt *route) {
	defer func() {
		if p := recover(); p != nil {
			a.panicked(ctx, rt, p)
		}
	}()
	rt, param, allow := a.router.match(ctx.Method(), ctx.Path())
	switch {
	case rt == nil && allow == "":
		a.Error(ctx, apiError(switchboard.ENOTFOUND, "No such route."))
		return rt
	case rt == nil:
		ctx.Response.Header.Set("Allow", allow)
		a.Error(ctx, apiError(EMETHOD, "Method not allowed; allowed: "+allow+"."))
		return rt
	}
	if !rt.public {
		if err := a.authorize(ctx, now); err != nil {
			a.Error(ctx, err)
			return rt
		}
		if a.cfg.Catalog == nil && needsCatalog(rt.pattern) {
			a.Error(ctx, apiError(switchboard.ENOTFOUND, "Keys, carriers and routes are not managed on this node."))
			return rt
		}
	}
	if err := rt.handle(ctx, nil, param); err != nil {
		a.Error(ctx, err)
	}
	return rt
}

// authorize checks the admin token, throttling failures per client
// address like the public API.
func (a *AdminServer) authorize(ctx *fasthttp.RequestCtx, now time.Time) error {
	token := a.token.Load()
	if token == nil {
		return apiError(switchboard.ENOTFOUND, "The admin API is off: set node.admin_token (SWITCHBOARD_NODE_ADMIN_TOKEN) to turn it on.")
	}
	addr := clientKey(ctx.RemoteIP())
	if a.authLimit != nil {
		if wait, blocked := a.authLimit.blocked(addr, now); blocked {
			return &switchboard.Error{Code: switchboard.ERATELIMITED, RetryAfter: wait,
				Message: "Too many failed authentications from this address; retry after Retry-After seconds."}
		}
	}
	const scheme = "bearer "
	h := ctx.Request.Header.Peek("Authorization")
	if len(h) > len(scheme) && asciiEqualFold(h[:len(scheme)], scheme) {
		got := sha256.Sum256([]byte(strings.TrimLeft(string(h[len(scheme):]), " ")))
		if subtle.ConstantTimeCompare(got[:], token[:]) == 1 {
			return nil
		}
	}
	if a.authLimit != nil && a.authLimit.failed(addr, now) {
		a.log.Warn().Str("client", addr.String()).Msg("failed admin authentications: client refused until its minute is over")
	}
	return apiError(switchboard.EUNAUTHORIZED, "Missing or invalid admin token; send Authorization: Bearer <node.admin_token>.")
}

// body returns a request's JSON body: none at all is allowed (actions
// without parameters); anything else must be application/json.
func (a *AdminServer) body(ctx *fasthttp.RequestCtx) ([]byte, error) {
	body := ctx.PostBody()
	if len(body) == 0 {
		return nil, nil
	}
	if ct := ctx.Request.Header.ContentType(); !isJSONContentType(ct) {
		return nil, errMediaType(ct)
	}
	return body, nil
}

// reply runs f under the request timeout and writes its result as JSON
// with status (204: no body).
func (a *AdminServer) reply(ctx *fasthttp.RequestCtx, status int, f func(context.Context) (any, error)) error {
	c, cancel := context.WithTimeout(a.ctx, a.cfg.RequestTimeout)
	defer cancel()
	v, err := f(c)
	if err != nil {
		return err
	}
	if status == fasthttp.StatusNoContent {
		ctx.SetStatusCode(status)
		return nil
	}
	return a.writeJSON(ctx, status, v)
}

func (a *AdminServer) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("admin: encode response: %w", err)
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType(contentTypeJSON)
	// Secrets may be in it; no cache may keep it.
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(b)
	return nil
}

func (a *AdminServer) handlePage(ctx *fasthttp.RequestCtx, _ []byte) error {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType("text/html; charset=utf-8")
	// The page loads nothing from elsewhere and talks only to this origin.
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	ctx.Response.Header.Set("X-Frame-Options", "DENY")
	ctx.SetBody(statusPage)
	return nil
}

func (a *AdminServer) handleMetrics(ctx *fasthttp.RequestCtx, _ []byte) error {
	mfs, err := a.cfg.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return fmt.Errorf("admin: gather metrics: %w", err)
	}
	if err != nil {
		a.log.Warn().Err(err).Msg("some metrics could not be gathered")
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType(string(format))
	enc := expfmt.NewEncoder(ctx, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("admin: encode metrics: %w", err)
		}
	}
	return nil
}

func (a *AdminServer) handleHealthz(ctx *fasthttp.RequestCtx, _ []byte) error {
	return a.writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

func (a *AdminServer) handleReadyz(ctx *fasthttp.RequestCtx, _ []byte) error {
	err := a.readiness()
	a.readyLog.note(err, a.draining())
	if err != nil {
		return err
	}
	return a.writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

// readiness is why the node is not ready, nil if it is.
func (a *AdminServer) readiness() error {
	if a.draining() {
		return apiError(switchboard.EUNAVAILABLE, "The server is shutting down; retry on another node or later.")
	}
	if err := a.cfg.Ops.Ready(); err != nil {
		if switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
			return apiError(switchboard.EUNAVAILABLE, "The node is not ready.")
		}
		return err
	}
	return nil
}

func (a *AdminServer) handleCancel(ctx *fasthttp.RequestCtx, id []byte) error {
	if !validMessageID(id) {
		return errNoSuchMessage()
	}
	c, cancel := context.WithTimeout(a.ctx, a.cfg.RequestTimeout)
	defer cancel()
	m, err := a.cfg.Ops.CancelMessage(c, string(id))
	if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
		return errNoSuchMessage()
	}
	if err != nil {
		return err
	}
	w := a.writer()
	w.message(m)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	a.send(ctx, fasthttp.StatusOK, w)
	return nil
}

// BindJSON is one bind as the admin API shows it.
type BindJSON struct {
	Carrier     string     `json:"carrier"`
	Index       int        `json:"index"`
	State       string     `json:"state"`
	Since       time.Time  `json:"since"`
	InFlight    int        `json:"in_flight"`
	TPS         float64    `json:"tps"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// Binds converts bind states for JSON.
func Binds(bs []actors.BindStatus) []BindJSON {
	out := make([]BindJSON, len(bs))
	for i, b := range bs {
		out[i] = BindJSON{Carrier: b.Carrier, Index: b.Index, State: b.State, Since: b.Since.UTC(),
			InFlight: b.InFlight, TPS: math.Round(b.TPS*10) / 10, LastError: b.LastError}
		if !b.LastErrorAt.IsZero() {
			at := b.LastErrorAt.UTC()
			out[i].LastErrorAt = &at
		}
	}
	return out
}

func (a *AdminServer) handleFleet(ctx *fasthttp.RequestCtx, _ []byte) error {
	f, ok := a.cfg.Ops.Fleet()
	if !ok {
		return apiError(switchboard.ENOTFOUND, "This node is not in a cluster (cluster.enabled is false).")
	}
	return a.writeJSON(ctx, fasthttp.StatusOK, f)
}

func (a *AdminServer) handleBinds(ctx *fasthttp.RequestCtx, _ []byte) error {
	return a.writeJSON(ctx, fasthttp.StatusOK, map[string]any{"binds": Binds(a.cfg.Ops.Gauges().Binds)})
}

// statusJSON is GET /admin/v1/status: what the status page shows.
type statusJSON struct {
	Node     string    `json:"node"`
	Time     time.Time `json:"time"`
	Ready    bool      `json:"ready"`
	NotReady string    `json:"not_ready,omitempty"`
	QueueLag struct {
		Total     int64            `json:"total"`
		ByCarrier map[string]int64 `json:"by_carrier"`
		InStore   int64            `json:"in_store"`
	} `json:"queue_lag"`
	Held           int                `json:"held"`
	MaxHeld        int                `json:"max_held"`
	PagedKeys      int                `json:"paged_keys"`
	Sending        int                `json:"sending"`
	MaxSending     int                `json:"max_sending"`
	KeyActors      int                `json:"key_actors"`
	WebhookBacklog int64              `json:"webhook_backlog"`
	Counters       map[string]int64   `json:"counters"`
	Carriers       []carrierStatusRow `json:"carriers"`
	Series         seriesJSON         `json:"series"`
}

type carrierStatusRow struct {
	Name  string     `json:"name"`
	Binds []BindJSON `json:"binds"`
}

// seriesJSON is the key numbers' history, one point a second, oldest
// first; null where there was no traffic to measure.
type seriesJSON struct {
	T              []int64    `json:"t"` // Unix seconds
	QueueLag       []int64    `json:"queue_lag"`
	APIP99         []*float64 `json:"api_p99_ms"`
	CarrierP99     []*float64 `json:"carrier_p99_ms"`
	WebhookSuccess []*float64 `json:"webhook_success"`
	Requests       []*float64 `json:"api_requests_per_s"`
	Submits        []*float64 `json:"submits_per_s"`
}

func (a *AdminServer) handleStatus(ctx *fasthttp.RequestCtx, _ []byte) error {
	g := a.cfg.Ops.Gauges()
	st := a.cfg.Ops.Stats()
	out := statusJSON{Node: a.cfg.Node, Time: a.cfg.Now().UTC(), Held: g.Held, MaxHeld: g.MaxHeld,
		PagedKeys: g.KeysWaiting, Sending: g.Sending, MaxSending: g.MaxSending, KeyActors: g.KeyActors,
		WebhookBacklog: g.WebhookBacklog}
	if err := a.cfg.Ops.Ready(); err != nil {
		out.NotReady = switchboard.ErrorMessage(err)
	} else {
		out.Ready = true
	}
	out.QueueLag.ByCarrier = map[string]int64{}
	for c, n := range g.QueueLag {
		out.QueueLag.Total += n
		if c == "" {
			out.QueueLag.InStore = n
		} else {
			out.QueueLag.ByCarrier[c] = n
		}
	}
	out.Counters = map[string]int64{"submitted": st.Submitted, "receipts": st.Receipts, "inbound": st.Inbound,
		"webhooks_delivered": g.Webhooks.Delivered, "webhooks_retried": g.Webhooks.Retried,
		"webhooks_given_up": g.Webhooks.GaveUp}
	byCarrier := map[string][]actors.BindStatus{}
	for _, b := range g.Binds {
		byCarrier[b.Carrier] = append(byCarrier[b.Carrier], b)
	}
	names := make([]string, 0, len(byCarrier))
	for n := range byCarrier {
		names = append(names, n)
	}
	sort.Strings(names)
	out.Carriers = make([]carrierStatusRow, 0, len(names))
	for _, n := range names {
		out.Carriers = append(out.Carriers, carrierStatusRow{Name: n, Binds: Binds(byCarrier[n])})
	}
	ms := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		v = math.Round(v*1e5) / 100 // seconds to ms, two decimals
		return &v
	}
	plain := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		v = math.Round(v*1e4) / 1e4
		return &v
	}
	h := a.numbers.history()
	// Empty, not null, before the first sample: the status page maps them.
	out.Series = seriesJSON{T: make([]int64, 0, len(h)), QueueLag: make([]int64, 0, len(h)),
		APIP99: make([]*float64, 0, len(h)), CarrierP99: make([]*float64, 0, len(h)),
		WebhookSuccess: make([]*float64, 0, len(h)), Requests: make([]*float64, 0, len(h)),
		Submits: make([]*float64, 0, len(h))}
	s := &out.Series
	for _, p := range h {
		s.T = append(s.T, p.At.Unix())
		s.QueueLag = append(s.QueueLag, p.QueueLag)
		s.APIP99 = append(s.APIP99, ms(p.APIP99))
		s.CarrierP99 = append(s.CarrierP99, ms(p.CarrierP99))
		s.WebhookSuccess = append(s.WebhookSuccess, plain(p.WebhookSuccess))
		s.Requests = append(s.Requests, plain(p.Requests))
		s.Submits = append(s.Submits, plain(p.Submits))
	}
	return a.writeJSON(ctx, fasthttp.StatusOK, out)
}
