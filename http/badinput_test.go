package http

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-sms/switchboard"
)

// rawRequest writes raw bytes to the server and returns the status line and
// body of the one response, or "" if the connection closed without one.
func rawRequest(t testing.TB, ts *testServer, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer and close before it has read all of a huge
	// request, which fails the rest of the write: the answer still counts.
	_, _ = io.WriteString(c, raw)
	return readResponse(t, c)
}

func readResponse(t testing.TB, c net.Conn) string {
	t.Helper()
	resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	checkCommonHeaders(t, resp.Header, resp.StatusCode, body)
	return resp.Proto + " " + resp.Status + "\r\n\r\n" + string(body)
}

// TestBadInputSweep sends what hostile or broken clients send. Every answer
// is a 4xx with a JSON error and never a 5xx, and the server keeps serving.
func TestBadInputSweep(t *testing.T) {
	ts := newTestServer(t, nil)
	deep := strings.Repeat("[", 100000)
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"invalid UTF-8 in body", "/v1/messages", "{\"to\":\"+447700900123\",\"from\":\"Acme\",\"body\":\"caf\xe9\"}", 400, switchboard.EINVALID},
		{"invalid UTF-8 outside strings", "/v1/messages", "{\"to\":\"+447700900123\"\xff}", 400, switchboard.EINVALID},
		{"raw NUL in string", "/v1/messages", "{\"to\":\"+447700900123\",\"from\":\"Acme\",\"body\":\"a\x00b\"}", 400, switchboard.EINVALID},
		{"raw NUL between tokens", "/v1/messages", "{\x00\"to\":\"+447700900123\"}", 400, switchboard.EINVALID},
		{"escaped NUL in body", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"a\u0000b"}`, 400, switchboard.EINVALIDBODY},
		{"escaped NUL in reference", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","reference":"a\u0000"}`, 400, switchboard.EINVALID},
		{"escaped NUL in to", "/v1/messages", `{"to":"+4477009\u0000123","from":"Acme","body":"x"}`, 400, switchboard.EINVALIDTO},
		{"lone high surrogate", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"\ud800"}`, 400, switchboard.EINVALID},
		{"lone low surrogate", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"a\uDC00"}`, 400, switchboard.EINVALID},
		{"reversed surrogates", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"\udc00\ud800"}`, 400, switchboard.EINVALID},
		{"high surrogate then letter", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"\ud83dx\ude00"}`, 400, switchboard.EINVALID},
		{"surrogate pair", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"\ud83d\ude00 \\ud800"}`, 202, ""},
		{"deep nesting top level", "/v1/messages/batch", deep, 400, switchboard.EINVALID},
		{"deep nesting in a field", "/v1/messages/batch", `{"messages":` + deep, 400, switchboard.EINVALID},
		{"deep nesting in an item", "/v1/messages/batch", `{"messages":[{"to":` + deep, 400, switchboard.EINVALID},
		{"deep nesting in a single", "/v1/messages", `{"to":` + deep[:60000], 400, switchboard.EINVALID},
		{"deep nesting closed", "/v1/messages", `{"to":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, 400, switchboard.EINVALID},
		{"deep objects in unknown field", "/v1/messages/batch", `{"x":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat(`}`, 20000) + `}`, 400, switchboard.EINVALID},
		{"deep objects in a field", "/v1/messages", `{"to":` + strings.Repeat(`{"a":`, 9000) + `1` + strings.Repeat(`}`, 9000) + `}`, 400, switchboard.EINVALID},
		{"deep nesting in batch", "/v1/messages/batch", `{"messages":[` + deep, 400, switchboard.EINVALID},
		{"number for string", "/v1/messages", `{"to":447700900123,"from":"Acme","body":"x"}`, 400, switchboard.EINVALID},
		{"object for string", "/v1/messages", `{"to":"+447700900123","from":{"a":1},"body":"x"}`, 400, switchboard.EINVALID},
		{"array for string", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":["x"]}`, 400, switchboard.EINVALID},
		{"bool for string", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":true}`, 400, switchboard.EINVALID},
		{"string validity", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":"1h"}`, 400, switchboard.EINVALID},
		{"fractional validity", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":1.5}`, 400, switchboard.EINVALID},
		{"zero validity", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":0}`, 400, switchboard.EINVALID},
		{"negative validity", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":-5}`, 400, switchboard.EINVALID},
		{"validity over 72h", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":259201}`, 400, switchboard.EINVALID},
		{"huge validity 1e400", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":1e400}`, 400, switchboard.EINVALID},
		{"huge validity integer", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":99999999999999999999999}`, 400, switchboard.EINVALID},
		{"huge number in string field", "/v1/messages", `{"to":1e400,"from":"Acme","body":"x"}`, 400, switchboard.EINVALID},
		{"huge number in unknown field", "/v1/messages", `{"x":99999999999999999999999}`, 400, switchboard.EINVALID},
		{"long number", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","validity":` + strings.Repeat("9", 60000) + `}`, 400, switchboard.EINVALID},
		{"unknown field", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","priority":1}`, 400, switchboard.EINVALID},
		{"idempotency_key in single body", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","idempotency_key":"k"}`, 400, switchboard.EINVALID},
		{"trailing data", "/v1/messages", validBody + `{}`, 400, switchboard.EINVALID},
		{"trailing garbage", "/v1/messages", validBody + ` x`, 400, switchboard.EINVALID},
		{"trailing whitespace is fine", "/v1/messages", validBody + " \r\n\t", 202, ""},
		{"empty body", "/v1/messages", ``, 400, switchboard.EINVALID},
		{"null", "/v1/messages", `null`, 400, switchboard.EINVALID},
		{"string", "/v1/messages", `"hello"`, 400, switchboard.EINVALID},
		{"truncated", "/v1/messages", `{"to":"+447700900123"`, 400, switchboard.EINVALID},
		{"bad to", "/v1/messages", `{"to":"0044","from":"Acme","body":"x"}`, 400, switchboard.EINVALIDTO},
		{"bad from", "/v1/messages", `{"to":"+447700900123","from":"Acme Corporation Ltd","body":"x"}`, 400, switchboard.EINVALIDFROM},
		{"empty body field", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":""}`, 400, switchboard.EINVALIDBODY},
		{"body too long", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"` + strings.Repeat("x", 5000) + `"}`, 400, switchboard.ETOOLONG},
		{"long reference", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","reference":"` + strings.Repeat("r", 129) + `"}`, 400, switchboard.EINVALID},
		{"callback not a URL", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","callback_url":"not a url"}`, 400, switchboard.EINVALID},
		{"callback ftp", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","callback_url":"ftp://example.com/"}`, 400, switchboard.EINVALID},
		{"callback private", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","callback_url":"http://10.1.2.3/hook"}`, 400, switchboard.EINVALID},
		{"callback decimal loopback", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","callback_url":"http://2130706433/hook"}`, 400, switchboard.EINVALID},
		{"callback userinfo", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","callback_url":"https://u:p@example.com/"}`, 400, switchboard.EINVALID},
		{"callback too long", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","callback_url":"https://example.com/` + strings.Repeat("a", 2048) + `"}`, 400, switchboard.EINVALID},
		{"1 MiB single", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"` + strings.Repeat("x", 1<<20) + `"}`, 413, switchboard.ETOOLARGE},
		{"1 MiB batch of garbage", "/v1/messages/batch", strings.Repeat("x", 1<<20), 400, switchboard.EINVALID},
		{"1 MiB batch string", "/v1/messages/batch", `{"messages":[{"to":"+447700900123","from":"Acme","body":"` + strings.Repeat("x", 1<<20) + `"}]}`, 202, ""},
		{"5 MiB batch", "/v1/messages/batch", `{"messages":[{"body":"` + strings.Repeat("x", 5<<20) + `"}]}`, 413, switchboard.ETOOLARGE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := ts.do(t, "POST", c.path, c.body)
			if c.status == 202 {
				if resp.StatusCode != 202 {
					t.Fatalf("%d %.300s", resp.StatusCode, body)
				}
				return
			}
			e := wantError(t, resp, body, c.status, c.code)
			if len(e.Error.Message) > 300 {
				t.Errorf("message echoes too much: %d bytes", len(e.Error.Message))
			}
		})
	}
	// Field names are in the messages.
	_, body := ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":"Acme","body":"x","priority":1}`)
	if !strings.Contains(string(body), `\"priority\"`) {
		t.Errorf("unknown field not named: %s", body)
	}
	_, body = ts.do(t, "POST", "/v1/messages", `{"to":"+447700900123","from":{"a":1},"body":"x"}`)
	if !strings.Contains(string(body), `\"from\" must be a string`) {
		t.Errorf("wrong type not named: %s", body)
	}
	if resp, _ := ts.do(t, "POST", "/v1/messages", validBody); resp.StatusCode != 202 {
		t.Errorf("server stopped serving: %d", resp.StatusCode)
	}
	if strings.Contains(ts.logs.String(), `"level":"error"`) {
		t.Errorf("bad input logged as an error: %s", ts.logs.String())
	}
}

// TestOversizedBodyAnsweredByFasthttp checks that fasthttp itself, refusing
// a body over the limit before the handler runs, answers 413 in JSON and
// that the client, still sending, reads it rather than a reset.
func TestOversizedBodyAnsweredByFasthttp(t *testing.T) {
	// The server drains up to 4 × MaxBatchBodySize (16 MiB) of a refused
	// body so the client can read the 413.
	ts := newTestServer(t, func(c *Config) { c.MaxBodySize = 1 << 10 })
	client := &fasthttp.Client{}
	for _, c := range []struct {
		path string
		size int
	}{{"/v1/messages", 2 << 10}, {"/v1/messages", 256 << 10}, {"/v1/messages", 8 << 20},
		{"/v1/messages/batch", 5 << 20}, {"/v1/messages/batch", 12 << 20}, {"/v1/messages/batch?x=1", 5 << 20}} {
		for round := range 3 {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(ts.url + c.path)
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.Set("Authorization", "Bearer "+testSecret)
			req.SetBody(bytes.Repeat([]byte("x"), c.size))
			err := client.DoTimeout(req, resp, 10*time.Second)
			if err != nil {
				t.Fatalf("%s %d bytes (round %d): %v", c.path, c.size, round, err)
			}
			if resp.StatusCode() != 413 || !strings.Contains(string(resp.Body()), `"payload_too_large"`) ||
				string(resp.Header.ContentType()) != "application/json" || len(resp.Header.Peek("X-Request-Id")) == 0 {
				t.Errorf("%s %d bytes: %d %s %q", c.path, c.size, resp.StatusCode(), resp.Body(), resp.Header.ContentType())
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	}
	// Chunked, so fasthttp only learns the size while reading.
	raw := rawRequest(t, ts, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testSecret+
		"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 4<<10, strings.Repeat("x", 4<<10)))
	if !strings.HasPrefix(raw, "HTTP/1.1 413") {
		t.Errorf("chunked: %q", raw)
	}
	// Only the headers, announcing too much: the answer comes at once.
	raw = rawRequest(t, ts, "POST /v1/messages/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testSecret+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 413") {
		t.Errorf("announced: %q", raw)
	}
	// Without a key, a batch gets the single message's limit: announcing
	// a body within the batch's limit and above that is answered at once,
	// 401, and the body is never buffered.
	raw = rawRequest(t, ts, "POST /v1/messages/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope"+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 401") || !strings.Contains(raw, `"unauthorized"`) {
		t.Errorf("announced, without a key: %q", raw)
	}
	// A batch over the single message's limit is accepted with the
	// request target in absolute form too.
	item := `{"to":"+447700900123","from":"Acme","body":"` + strings.Repeat("x", 900) + `"}`
	batch := `{"messages":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `]}`
	raw = rawRequest(t, ts, "POST http://x/v1/messages/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testSecret+
		"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(batch))+"\r\n\r\n"+batch)
	if !strings.HasPrefix(raw, "HTTP/1.1 202") {
		t.Errorf("a %d-byte batch in absolute form: %.200q", len(batch), raw)
	}
	if resp, _ := ts.do(t, "POST", "/v1/messages", validBody); resp.StatusCode != 202 {
		t.Errorf("server stopped serving: %d", resp.StatusCode)
	}
}

// TestHeaderFlood sends many and huge headers: fasthttp refuses them with
// 431 (or 400), never a 5xx, and keeps serving.
func TestHeaderFlood(t *testing.T) {
	ts := newTestServer(t, nil)
	many := strings.Repeat("X-Flood: aaaaaaaaaaaaaaaa\r\n", 10000)
	huge := "X-Huge: " + strings.Repeat("a", 1<<20) + "\r\n"
	longURI := "/v1/messages/" + strings.Repeat("a", 1<<20)
	for name, raw := range map[string]string{
		"many headers": "GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + "\r\n",
		"huge header":  "GET /healthz HTTP/1.1\r\nHost: x\r\n" + huge + "\r\n",
		"huge URI":     "GET " + longURI + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"huge auth":    "GET /v1/messages/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("s", 1<<20) + "\r\n\r\n",
		"garbage":      "\x00\x01\x02 nonsense\r\n\r\n",
		"bad version":  "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
		"no host":      "GET /healthz HTTP/1.1\r\n\r\n",
		"bad length":   "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
		"two lengths":  "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
		"bad chunks":   "POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		got := rawRequest(t, ts, raw)
		status, _, _ := strings.Cut(got, "\r\n")
		t.Logf("%s: %q", name, status)
		if got == "" {
			continue // a closed connection is an answer too
		}
		if strings.HasPrefix(got, "HTTP/1.1 5") || strings.HasPrefix(got, "HTTP/1.0 5") {
			t.Errorf("%s: %q", name, got[:min(len(got), 200)])
		}
		if !(strings.Contains(got, " 431 ") || strings.Contains(got, " 400 ") || strings.Contains(got, " 401 ") ||
			strings.Contains(got, " 404 ") || strings.Contains(got, " 200 ") || strings.Contains(got, " 413 ") || strings.Contains(got, " 505 ")) {
			t.Errorf("%s: unexpected %q", name, got[:min(len(got), 200)])
		}
	}
	got := rawRequest(t, ts, "GET /healthz HTTP/1.1\r\nHost: x\r\n"+many+"\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 431") {
		t.Errorf("many headers: %q", got[:min(len(got), 200)])
	}
	if resp, _ := ts.do(t, "POST", "/v1/messages", validBody); resp.StatusCode != 202 {
		t.Errorf("server stopped serving: %d", resp.StatusCode)
	}
}

// TestSlowClient sends a request a byte at a time, slower than the read
// timeout allows: the server closes the connection and keeps serving.
func TestSlowClient(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	raw := "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	closed := false
	for i := 0; i < len(raw) && !closed; i++ {
		if _, err := c.Write([]byte{raw[i]}); err != nil {
			closed = true
		}
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			break
		}
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", time.Since(start))
	}
	if bytes.Contains(rest, []byte("HTTP/1.1 5")) {
		t.Errorf("5xx to a slow client: %q", rest)
	}
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("closed after %v", elapsed)
	}
	if resp, _ := ts.do(t, "GET", "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("server stopped serving: %d", resp.StatusCode)
	}
	// A client that connects and sends nothing is closed too.
	c2, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(c2); errors.As(err, &ne) && ne.Timeout() {
		t.Error("silent connection still open")
	}
}
