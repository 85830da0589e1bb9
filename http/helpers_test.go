package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-sms/switchboard"
)

const (
	testSecret  = "sk_test_secret"
	otherSecret = "sk_other_secret"
	validBody   = `{"to":"+447700900123","from":"Acme","body":"Hello"}`
)

// testServer is a Server on a real socket on 127.0.0.1, with the stub
// engine and the log captured.
type testServer struct {
	*Server
	url    string
	engine *stubEngine
	logs   *syncBuffer
	client *nethttp.Client
}

// syncBuffer is a bytes.Buffer the server's goroutines may log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testKeys() *switchboard.KeyRing {
	return switchboard.NewKeyRing([]*switchboard.Key{
		{ID: "test", SecretHash: switchboard.HashSecret(testSecret), Rate: 1000, Burst: 2000},
		{ID: "other", SecretHash: switchboard.HashSecret(otherSecret), Rate: 1000, Burst: 2000},
	})
}

// newTestServer serves on 127.0.0.1:0; edit changes the config first.
func newTestServer(t testing.TB, edit func(*Config)) *testServer {
	t.Helper()
	engine := newStubEngine()
	logs := &syncBuffer{}
	cfg := Config{
		Engine: engine,
		Keys:   testKeys(),
		Log:    zerolog.New(logs).Level(zerolog.DebugLevel),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{
		Server: s,
		url:    "http://" + ln.Addr().String(),
		engine: engine,
		logs:   logs,
		client: &nethttp.Client{Timeout: 10 * time.Second, Transport: &nethttp.Transport{MaxIdleConnsPerHost: 16}},
	}
}

// do sends a request; headers are name/value pairs. POSTs default to JSON
// and every request to the test key, unless headers say otherwise ("" as
// a value removes the header).
func (ts *testServer) do(t testing.TB, method, path, body string, headers ...string) (*nethttp.Response, []byte) {
	t.Helper()
	req, err := nethttp.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+testSecret)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkCommonHeaders(t, resp.Header, resp.StatusCode, b)
	return resp, b
}

// checkCommonHeaders holds every response to the API's promises: JSON,
// a request id, and a 5xx only where a test expects one.
func checkCommonHeaders(t testing.TB, h nethttp.Header, status int, body []byte) {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if id := h.Get("X-Request-Id"); id == "" {
		t.Error("no X-Request-Id")
	}
	if !json.Valid(body) {
		t.Errorf("body is not JSON: %q", body)
	}
}

// errorBody is the JSON of an error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks an error response's status and code.
func wantError(t testing.TB, resp *nethttp.Response, body []byte, status int, code string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if resp.StatusCode != status || e.Error.Code != code {
		t.Fatalf("got %d %q (%s), want %d %q", resp.StatusCode, e.Error.Code, e.Error.Message, status, code)
	}
	if e.Error.Message == "" {
		t.Error("error without a message")
	}
	return e
}

func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

// acceptedBody is the JSON of a 202 for one message.
type acceptedBody struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	To         string `json:"to"`
	From       string `json:"from"`
	Segments   int    `json:"segments"`
	Encoding   string `json:"encoding"`
	AcceptedAt string `json:"accepted_at"`
	Reference  string `json:"reference"`
}

// testRules are the decoding rules of a server with the default config.
var testRules = decodeRules{maxValidity: int64(DefaultMaxValidity / time.Second)}
