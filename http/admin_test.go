package http

import (
	"context"
	"encoding/json"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
)

const adminToken = "admin-token-0123456789"

// stubOps stands in for the engine on the admin listener.
type stubOps struct {
	mu       sync.Mutex
	gauges   actors.Gauges
	canceled []string
	readyErr error
}

func (o *stubOps) Gauges() actors.Gauges {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gauges
}

func (o *stubOps) Stats() actors.Stats { return actors.Stats{Submitted: 7, Receipts: 5} }

func (o *stubOps) Ready() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.readyErr
}

func (o *stubOps) setReady(err error) {
	o.mu.Lock()
	o.readyErr = err
	o.mu.Unlock()
}

func (o *stubOps) Fleet() (actors.FleetStatus, bool) {
	return actors.FleetStatus{Self: "m1", Members: []actors.FleetMember{{ID: "m1", Address: "10.0.0.1:7947"}}}, true
}

func (o *stubOps) CancelMessage(_ context.Context, id string) (*switchboard.Message, error) {
	switch id {
	case "msg_01J00000000000000000000001":
		o.mu.Lock()
		o.canceled = append(o.canceled, id)
		o.mu.Unlock()
		return &switchboard.Message{ID: id, Key: "k", Status: switchboard.StatusCanceled,
			Events: []switchboard.Event{{Status: switchboard.StatusCanceled, At: time.Now()}}}, nil
	case "msg_01J00000000000000000000002":
		return nil, switchboard.Errorf(switchboard.ECONFLICT, "The message is delivered; only a queued message can be canceled.")
	}
	return nil, switchboard.Errorf(switchboard.ENOTFOUND, "message not found")
}

// stubCatalog answers every call with its name and arguments, and the
// file-defined key "file" with managed_by_config.
type stubCatalog struct {
	calls []string
	// creating, if set, runs inside CreateKey with its context; its
	// error is CreateKey's.
	creating func(context.Context) error
}

func (c *stubCatalog) record(call string, args ...string) (any, error) {
	c.calls = append(c.calls, call+" "+strings.Join(args, " "))
	for _, a := range args {
		if a == "file" {
			return nil, switchboard.Errorf(switchboard.EMANAGED, "Key file is defined in cluster.yaml; change it there.")
		}
	}
	return map[string]any{"call": call, "args": args}, nil
}

func (c *stubCatalog) ListKeys(context.Context) (any, error) { return c.record("ListKeys") }
func (c *stubCatalog) GetKey(_ context.Context, id string) (any, error) {
	return c.record("GetKey", id)
}
func (c *stubCatalog) CreateKey(ctx context.Context, b []byte) (any, error) {
	if c.creating != nil {
		if err := c.creating(ctx); err != nil {
			return nil, err
		}
	}
	return c.record("CreateKey", string(b))
}
func (c *stubCatalog) UpdateKey(_ context.Context, id string, b []byte) (any, error) {
	return c.record("UpdateKey", id, string(b))
}
func (c *stubCatalog) RevokeKey(_ context.Context, id string) (any, error) {
	return c.record("RevokeKey", id)
}
func (c *stubCatalog) RotateSecret(_ context.Context, id string, b []byte) (any, error) {
	return c.record("RotateSecret", id, string(b))
}
func (c *stubCatalog) RotateWebhookSecret(_ context.Context, id string, b []byte) (any, error) {
	return c.record("RotateWebhookSecret", id, string(b))
}
func (c *stubCatalog) WebhookSecret(_ context.Context, id string) (any, error) {
	return c.record("WebhookSecret", id)
}
func (c *stubCatalog) ListCarriers(context.Context) (any, error) { return c.record("ListCarriers") }
func (c *stubCatalog) GetCarrier(_ context.Context, n string) (any, error) {
	return c.record("GetCarrier", n)
}
func (c *stubCatalog) AddCarrier(_ context.Context, b []byte) (any, error) {
	return c.record("AddCarrier", string(b))
}
func (c *stubCatalog) UpdateCarrier(_ context.Context, n string, b []byte) (any, error) {
	return c.record("UpdateCarrier", n, string(b))
}
func (c *stubCatalog) RemoveCarrier(_ context.Context, n string) error {
	_, err := c.record("RemoveCarrier", n)
	return err
}
func (c *stubCatalog) SuspendCarrier(_ context.Context, n string) (any, error) {
	return c.record("SuspendCarrier", n)
}
func (c *stubCatalog) ResumeCarrier(_ context.Context, n string) (any, error) {
	return c.record("ResumeCarrier", n)
}
func (c *stubCatalog) ListRoutes(context.Context) (any, error) { return c.record("ListRoutes") }
func (c *stubCatalog) AddRoute(_ context.Context, b []byte) (any, error) {
	return c.record("AddRoute", string(b))
}
func (c *stubCatalog) UpdateRoute(_ context.Context, id string, b []byte) (any, error) {
	return c.record("UpdateRoute", id, string(b))
}
func (c *stubCatalog) RemoveRoute(_ context.Context, id string) error {
	_, err := c.record("RemoveRoute", id)
	return err
}

type testAdmin struct {
	*AdminServer
	url     string
	ops     *stubOps
	catalog *stubCatalog
	metrics *Metrics
}

func newTestAdmin(t *testing.T, token string) *testAdmin {
	t.Helper()
	return newLoggingTestAdmin(t, token, zerolog.Nop())
}

// newLoggingTestAdmin is newTestAdmin logging to log.
func newLoggingTestAdmin(t *testing.T, token string, log zerolog.Logger) *testAdmin {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ops := &stubOps{gauges: actors.Gauges{QueueLag: map[string]int64{"sim": 3, "": 4}, MaxHeld: 50000,
		Binds: []actors.BindStatus{{Carrier: "sim", State: actors.BindBound, Since: time.Now(), InFlight: 2, TPS: 12.5},
			{Carrier: "sim", Index: 1, State: actors.BindDown, LastError: "dial: refused", LastErrorAt: time.Now()}}}}
	m.Observe(ops)
	cat := &stubCatalog{}
	a, err := NewAdmin(AdminConfig{Token: token, Ops: ops, Catalog: cat, Metrics: m, Gatherer: reg,
		Log: log, Node: "node-test", AuthFailuresPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &testAdmin{AdminServer: a, url: "http://" + ln.Addr().String(), ops: ops, catalog: cat, metrics: m}
}

type adminResponse struct {
	status int
	header nethttp.Header
	body   string
}

func (a *testAdmin) do(t *testing.T, method, path, token, body string) adminResponse {
	t.Helper()
	req, err := nethttp.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return adminResponse{status: res.StatusCode, header: res.Header, body: string(b)}
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not the API's error shape: %s", body)
	}
	return e.Error.Code
}

// The admin API needs the admin token; its errors have the public API's
// shape, codes and statuses; the routes reach the catalog with their
// parameters and bodies.
func TestAdminAuthAndRoutes(t *testing.T) {
	a := newTestAdmin(t, adminToken)
	for _, tc := range []struct{ token string }{{""}, {"wrong-token"}, {testSecret}} {
		r := a.do(t, "GET", "/admin/v1/keys", tc.token, "")
		if r.status != 401 || errorCode(t, r.body) != switchboard.EUNAUTHORIZED || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("token %q: %d %s", tc.token, r.status, r.body)
		}
	}
	if len(a.catalog.calls) != 0 {
		t.Fatalf("unauthenticated requests reached the catalog: %v", a.catalog.calls)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		call               string
	}{
		{"GET", "/admin/v1/keys", "", 200, "ListKeys "},
		{"POST", "/admin/v1/keys", `{"id":"k"}`, 201, `CreateKey {"id":"k"}`},
		{"GET", "/admin/v1/keys/k1", "", 200, "GetKey k1"},
		{"PATCH", "/admin/v1/keys/k1", `{"rate":5}`, 200, `UpdateKey k1 {"rate":5}`},
		{"POST", "/admin/v1/keys/k1/revoke", "", 200, "RevokeKey k1"},
		{"POST", "/admin/v1/keys/k1/rotate-secret", `{"overlap":"1h"}`, 200, `RotateSecret k1 {"overlap":"1h"}`},
		{"POST", "/admin/v1/keys/k1/rotate-webhook-secret", "", 200, "RotateWebhookSecret k1 "},
		{"GET", "/admin/v1/keys/k1/webhook-secret", "", 200, "WebhookSecret k1"},
		{"GET", "/admin/v1/carriers", "", 200, "ListCarriers "},
		{"POST", "/admin/v1/carriers", `{"name":"c"}`, 201, `AddCarrier {"name":"c"}`},
		{"GET", "/admin/v1/carriers/c", "", 200, "GetCarrier c"},
		{"PATCH", "/admin/v1/carriers/c", `{"binds":2}`, 200, `UpdateCarrier c {"binds":2}`},
		{"DELETE", "/admin/v1/carriers/c", "", 204, "RemoveCarrier c"},
		{"POST", "/admin/v1/carriers/c/suspend", "", 200, "SuspendCarrier c"},
		{"POST", "/admin/v1/carriers/c/resume", "", 200, "ResumeCarrier c"},
		{"GET", "/admin/v1/routes", "", 200, "ListRoutes "},
		{"POST", "/admin/v1/routes", `{"prefix":"+44"}`, 201, `AddRoute {"prefix":"+44"}`},
		{"PATCH", "/admin/v1/routes/44", `{"carriers":["c"]}`, 200, `UpdateRoute 44 {"carriers":["c"]}`},
		{"DELETE", "/admin/v1/routes/default", "", 204, "RemoveRoute default"},
	} {
		n := len(a.catalog.calls)
		r := a.do(t, tc.method, tc.path, adminToken, tc.body)
		if r.status != tc.status {
			t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
		}
		if len(a.catalog.calls) != n+1 || a.catalog.calls[n] != tc.call {
			t.Fatalf("%s %s called %q, want %q", tc.method, tc.path, a.catalog.calls[n:], tc.call)
		}
		if tc.status == 204 && r.body != "" {
			t.Fatalf("%s %s: 204 with a body %q", tc.method, tc.path, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" && tc.status != 204 {
			t.Fatalf("%s %s: may be cached", tc.method, tc.path)
		}
	}
	// What the file defines, the file owns.
	r := a.do(t, "PATCH", "/admin/v1/keys/file", adminToken, `{"rate":1}`)
	if r.status != 409 || errorCode(t, r.body) != switchboard.EMANAGED {
		t.Fatalf("changing a file key: %d %s", r.status, r.body)
	}
	// Bodies must be JSON; routes and methods are checked as in the API.
	if r := a.do(t, "POST", "/admin/v1/keys", adminToken, ""); r.status != 201 {
		t.Fatalf("empty body: %d", r.status)
	}
	req, _ := nethttp.NewRequest("POST", a.url+"/admin/v1/keys", strings.NewReader("id=k"))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 415 {
		t.Fatalf("form body: %d, want 415", res.StatusCode)
	}
	if r := a.do(t, "PUT", "/admin/v1/keys/k1", adminToken, ""); r.status != 405 || r.header.Get("Allow") == "" {
		t.Fatalf("PUT: %d %v", r.status, r.header)
	}
	if r := a.do(t, "GET", "/admin/v1/nothing", adminToken, ""); r.status != 404 || errorCode(t, r.body) != switchboard.ENOTFOUND {
		t.Fatalf("unknown route: %d %s", r.status, r.body)
	}
}

func TestAdminOffWithoutToken(t *testing.T) {
	a := newTestAdmin(t, "")
	r := a.do(t, "GET", "/admin/v1/keys", "", "")
	if r.status != 404 || !strings.Contains(r.body, "node.admin_token") {
		t.Fatalf("admin API without a token: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/"} {
		if r := a.do(t, "GET", path, "", ""); r.status != 200 {
			t.Fatalf("%s without a token: %d %s", path, r.status, r.body)
		}
	}
}

// Cancel answers with the message, or the engine's error mapped like the
// API's; a malformed id is the one 404.
func TestAdminCancel(t *testing.T) {
	a := newTestAdmin(t, adminToken)
	r := a.do(t, "POST", "/admin/v1/messages/msg_01J00000000000000000000001/cancel", adminToken, "")
	if r.status != 200 || !strings.Contains(r.body, `"status":"canceled"`) {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	r = a.do(t, "POST", "/admin/v1/messages/msg_01J00000000000000000000002/cancel", adminToken, "")
	if r.status != 409 || errorCode(t, r.body) != switchboard.ECONFLICT {
		t.Fatalf("cancel delivered: %d %s", r.status, r.body)
	}
	for _, id := range []string{"msg_01J00000000000000000000003", "not-an-id"} {
		r = a.do(t, "POST", "/admin/v1/messages/"+id+"/cancel", adminToken, "")
		if r.status != 404 || errorCode(t, r.body) != switchboard.ENOTFOUND {
			t.Fatalf("cancel %s: %d %s", id, r.status, r.body)
		}
	}
}

// /metrics serves every metric, the gauges read from the engine; the
// status JSON carries the binds, the queue and the key numbers.
func TestAdminMetricsAndStatus(t *testing.T) {
	a := newTestAdmin(t, adminToken)
	a.metrics.CarrierSubmit("sim", 20*time.Millisecond)
	a.metrics.Receipt("sim", "delivered")
	a.metrics.MessageFinal(switchboard.StatusDelivered)
	a.metrics.StoreWrite("accept", time.Millisecond)
	a.metrics.observeRequest("/v1/messages", "POST", 202, 3*time.Millisecond)
	r := a.do(t, "GET", "/metrics", "", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %v", r.status, r.header)
	}
	for _, want := range []string{
		`switchboard_queue_lag_messages{carrier="sim"} 3`, `switchboard_queue_lag_messages{carrier=""} 4`,
		`switchboard_http_request_duration_seconds_count{method="POST",route="/v1/messages",status="2xx"} 1`,
		`switchboard_carrier_submit_duration_seconds_count{carrier="sim"} 1`,
		`switchboard_receipts_total{carrier="sim",state="delivered"} 1`,
		`switchboard_webhook_deliveries_total{result="given_up"} 0`, `switchboard_webhook_backlog_events 0`,
		`switchboard_binds{carrier="sim",state="bound"} 1`, `switchboard_binds{carrier="sim",state="down"} 1`,
		`switchboard_binds{carrier="sim",state="suspended"} 0`,
		`switchboard_messages_total{status="delivered"} 1`, `switchboard_messages_total{status="failed"} 0`,
		`switchboard_store_write_duration_seconds_count{op="accept"} 1`,
		`switchboard_held_messages_limit 50000`, "go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(r.body, want+"\n") && !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The admin listener's own requests are measured, under their routes.
	if !strings.Contains(r.body, `route="/metrics"`) && !strings.Contains(a.do(t, "GET", "/metrics", "", "").body, `route="/metrics"`) {
		t.Error("admin requests are not measured")
	}

	// The series are arrays, which the status page maps, even before the
	// first sample (the usual case here: the sampler ticks each second).
	var early struct {
		Series map[string]json.RawMessage `json:"series"`
	}
	if r := a.do(t, "GET", "/admin/v1/status", adminToken, ""); json.Unmarshal([]byte(r.body), &early) != nil || len(early.Series) != 7 {
		t.Fatalf("status: %s", r.body)
	}
	for name, v := range early.Series {
		if !strings.HasPrefix(string(v), "[") {
			t.Errorf("series %s is %s, want an array", name, v)
		}
	}
	// The probes (either listener's) are not the API's traffic: slow
	// ones do not move its p99.
	for range 2 {
		a.numbers.sample(time.Now())
		a.metrics.observeRequest("/v1/messages", "POST", 202, 7*time.Millisecond)
		for range 10 {
			a.metrics.observeRequest("/healthz", "GET", 200, 900*time.Millisecond)
		}
	}
	if r := a.do(t, "GET", "/admin/v1/fleet", adminToken, ""); r.status != 200 || !strings.Contains(r.body, `"self":"m1"`) {
		t.Fatalf("fleet: %d %s", r.status, r.body)
	}
	r = a.do(t, "GET", "/admin/v1/status", adminToken, "")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.status != 200 {
		t.Fatalf("status: %d %s %v", r.status, r.body, err)
	}
	if st.Node != "node-test" || st.QueueLag.Total != 7 || st.QueueLag.InStore != 4 || len(st.Carriers) != 1 ||
		len(st.Carriers[0].Binds) != 2 || st.Carriers[0].Binds[1].LastError == "" || st.Counters["submitted"] != 7 {
		t.Fatalf("status %+v", st)
	}
	if n := len(st.Series.T); n < 2 || st.Series.APIP99[n-1] == nil || *st.Series.APIP99[n-1] <= 0 || *st.Series.APIP99[n-1] >= 100 {
		t.Fatalf("series %+v (API p99 in ms: the API's 7 ms requests, not the probes' 900 ms)", st.Series)
	}
	if r := a.do(t, "GET", "/", "", ""); !strings.Contains(r.body, "<title>Switchboard status</title>") ||
		!strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("page: %s", r.header)
	}
}

func TestQuantile(t *testing.T) {
	b := buckets{bounds: []float64{1, 2, 4}, counts: []uint64{50, 90, 100}, total: 100}
	for _, tc := range []struct{ q, want float64 }{{0.5, 1}, {0.25, 0.5}, {0.7, 1.5}, {0.95, 3}, {1, 4}} {
		if got := b.quantile(tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := (buckets{}).quantile(0.99); got == got {
		t.Errorf("quantile of nothing = %v, want NaN", got)
	}
}

// TestAdminUnreadableRequest: a request fasthttp refuses before the
// handler runs is answered as on the public API, with the code that says
// why: a body over the admin limit is payload_too_large (413), read by the
// client even while it is still sending the body, and over-long headers
// are request_headers_too_large (431). Nothing reaches the catalog.
func TestAdminUnreadableRequest(t *testing.T) {
	a := newTestAdmin(t, adminToken)
	for _, size := range []int{DefaultMaxBodySize + 1, 200 << 10} {
		body := `{"id":"` + strings.Repeat("x", size) + `"}`
		r := a.do(t, "POST", "/admin/v1/keys", adminToken, body)
		if r.status != 413 || errorCode(t, r.body) != switchboard.ETOOLARGE || r.header.Get("X-Request-Id") == "" {
			t.Errorf("%d-byte body: %d %s, want 413 payload_too_large with a request id", len(body), r.status, r.body)
		}
	}
	req, err := nethttp.NewRequest("GET", a.url+"/admin/v1/keys", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Padding", strings.Repeat("x", 16<<10))
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 431 || errorCode(t, string(b)) != EHEADERSTOOLARGE {
		t.Errorf("16 KiB header: %d %s, want 431 request_headers_too_large", res.StatusCode, b)
	}
	if len(a.catalog.calls) != 0 {
		t.Fatalf("refused requests reached the catalog: %v", a.catalog.calls)
	}
	if r := a.do(t, "GET", "/admin/v1/keys", adminToken, ""); r.status != 200 {
		t.Fatalf("admin listener stopped serving: %d %s", r.status, r.body)
	}
	// Refused before the handler, and still measured.
	if r := a.do(t, "GET", "/metrics", "", ""); !strings.Contains(r.body, `switchboard_http_request_duration_seconds_count{method="POST",route="unknown",status="4xx"} 2`) ||
		!strings.Contains(r.body, `switchboard_http_request_duration_seconds_count{method="GET",route="unknown",status="4xx"} 1`) {
		t.Errorf("the refused requests are not in the request metrics:\n%s", r.body)
	}
}

// An admin server shut down before its Serve has begun (a node stopped
// while it starts) does not serve: fasthttp, which had no listener yet to
// close, would serve on for good, and the node's stop would wait for it.
func TestAdminShutDownBeforeServeDoesNotServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAdmin(AdminConfig{Ops: &stubOps{}, Catalog: &stubCatalog{}, Metrics: m, Gatherer: reg, Log: zerolog.Nop(), Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v, want nil (a stop, not a failure)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve after Shutdown is serving")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts connections")
	}
}

// The admin listener's /readyz, which Kubernetes probes, logs each change
// of readiness as the public one does: once per reason, and ready again.
func TestAdminReadyzLogsChanges(t *testing.T) {
	var logs syncBuffer
	a := newLoggingTestAdmin(t, "", zerolog.New(&logs))
	a.ops.setReady(switchboard.Errorf(switchboard.EUNAVAILABLE, "Carrier sim has no bound bind."))
	for range 3 {
		if r := a.do(t, "GET", "/readyz", "", ""); r.status != 503 {
			t.Fatalf("not ready: %d %s", r.status, r.body)
		}
	}
	a.ops.setReady(nil)
	if r := a.do(t, "GET", "/readyz", "", ""); r.status != 200 {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	out := logs.String()
	if strings.Count(out, `"message":"not ready"`) != 1 || !strings.Contains(out, `"reason":"Carrier sim has no bound bind."`) ||
		strings.Count(out, `"message":"ready"`) != 1 {
		t.Fatalf("readiness changes logged:\n%s", out)
	}
}

// A node that stops lets an admin change in progress finish and answers
// it: a key created (or a secret rotated) and stored, then answered 500
// because the stop canceled the rest of the request, would leave its
// caller without the secret it made.
func TestAdminShutdownLetsRequestsFinish(t *testing.T) {
	a := newTestAdmin(t, adminToken)
	inside, release := make(chan struct{}), make(chan struct{})
	a.catalog.creating = func(ctx context.Context) error {
		close(inside)
		<-release
		return ctx.Err()
	}
	answered := make(chan int, 1)
	go func() {
		req, _ := nethttp.NewRequest("POST", a.url+"/admin/v1/keys", strings.NewReader(`{"id":"late"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		res.Body.Close()
		answered <- res.StatusCode
	}()
	<-inside
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- a.Shutdown(ctx)
	}()
	// Shutdown has begun once the listener refuses connections.
	addr := strings.TrimPrefix(a.url, "http://")
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if code := <-answered; code != nethttp.StatusCreated {
		t.Fatalf("the request running at the stop was answered %d, want 201", code)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A handler that panics answers 500 internal with the request's id, and
// the error line carries the same id, so the two can be matched.
func TestAdminPanicKeepsTheRequestID(t *testing.T) {
	var logs syncBuffer
	a := newLoggingTestAdmin(t, adminToken, zerolog.New(&logs))
	a.catalog.creating = func(context.Context) error { panic("boom") }
	r := a.do(t, "POST", "/admin/v1/keys", adminToken, `{"id":"x"}`)
	id := r.header.Get("X-Request-Id")
	if r.status != 500 || errorCode(t, r.body) != switchboard.EINTERNAL || id == "" {
		t.Fatalf("%d %s (request id %q), want 500 internal with a request id", r.status, r.body, id)
	}
	if l := logs.String(); !strings.Contains(l, `"request_id":"`+id+`"`) || !strings.Contains(l, "boom") {
		t.Fatalf("the log does not name request %s and the panic:\n%s", id, l)
	}
}
