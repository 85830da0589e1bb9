package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// These tests run a whole node in-process — the same startGateway the
// binary runs — against SMSC simulators over loopback, through HTTP.

const testSecret = "test-secret-0123456789"

// startTestGateway loads yaml (with the test's data dir) and starts a node.
func startTestGateway(t *testing.T, yaml string) (*gateway, *Config) {
	t.Helper()
	g, cfg := openTestGateway(t, t.TempDir(), yaml)
	t.Cleanup(func() { stopTestGateway(t, g) })
	return g, cfg
}

// openTestGateway starts a gateway whose config and data live in dir; the
// caller stops it (stopTestGateway).
func openTestGateway(t *testing.T, dir, yaml string) (*gateway, *Config) {
	t.Helper()
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, nil, []string{"node.data_dir=" + filepath.Join(dir, "data"), "node.http=127.0.0.1:0", "node.admin=127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := startGateway(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return g, cfg
}

func stopTestGateway(t *testing.T, g *gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func testSim(t *testing.T, cfg smsc.Config) *smsc.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Log = zerolog.Nop()
	s, err := smsc.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func carrierYAML(name, addr string, binds int) string {
	return fmt.Sprintf(`
  - name: %s
    host: %s
    system_id: gw
    password: pw
    binds: %d
    window: 64
    enquire_link: 200ms
    response_timeout: 500ms
    reconnect_min: 10ms
    reconnect_max: 100ms
`, name, addr, binds)
}

func keyYAML(rate, burst, maxQueued int) string {
	return fmt.Sprintf(`
keys:
  - id: test
    secret: %s
    rate: %d
    burst: %d
    max_queued: %d
`, testSecret, rate, burst, maxQueued)
}

type apiResponse struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, method, url string, body any) apiResponse {
	t.Helper()
	return callAuth(t, method, url, testSecret, body)
}

// callAuth calls the API with another key's secret.
func callAuth(t *testing.T, method, url, secret string, body any) apiResponse {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := apiResponse{status: resp.StatusCode, header: resp.Header}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	return out
}

func send(t *testing.T, g *gateway, to, text string) apiResponse {
	t.Helper()
	return call(t, "POST", "http://"+g.Addr()+"/v1/messages", map[string]any{"to": to, "from": "Acme", "body": text})
}

// apiAddr is a node whose API can be called: a gateway in this process,
// or a binary's address (processAddr).
type apiAddr interface{ Addr() string }

// processAddr is the API address of a gateway running as a subprocess.
type processAddr string

func (a processAddr) Addr() string { return string(a) }

func waitStatus(t *testing.T, g apiAddr, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := call(t, "GET", "http://"+g.Addr()+"/v1/messages/"+id, nil)
		// A receipt may be recorded a moment before the submit it answers;
		// a message past submission is complete once its carrier is known.
		submittedYet := want == "accepted" || want == "queued" || r.body["carrier"] != ""
		if r.status == 200 && r.body["status"] == want && submittedYet {
			return r.body
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: last answer %d %v, want status %s", id, r.status, r.body, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShippedConfigRunsAndDelivers(t *testing.T) {
	data, err := os.ReadFile("../../cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped config with the simulator on a free port and our secret.
	yaml := strings.Replace(string(data), "host: 127.0.0.1:2775", "host: 127.0.0.1:0", 1)
	yaml = strings.Replace(yaml, "secret: demo-secret-change-me", "secret: "+testSecret, 1)
	g, _ := startTestGateway(t, yaml)

	r := send(t, g, "+447700900123", "Hello from the quick start")
	if r.status != 202 || r.body["status"] != "accepted" || !strings.HasPrefix(fmt.Sprint(r.body["id"]), "msg_") {
		t.Fatalf("POST: %d %v", r.status, r.body)
	}
	id := r.body["id"].(string)
	waitStatus(t, g, id, "delivered")
	// The receipt can be recorded before the submit it answers: wait for
	// both events, then check their order.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := call(t, "GET", "http://"+g.Addr()+"/v1/messages/"+id, nil).body
		events, _ := m["events"].([]any)
		var seen []string
		for _, e := range events {
			// queued shows up when the message came before the binds were up.
			if s := fmt.Sprint(e.(map[string]any)["status"]); s != "queued" {
				seen = append(seen, s)
			}
		}
		if strings.Join(seen, ",") == "accepted,submitted,delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %v, want accepted,submitted,delivered", seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMultipartMessageDelivered(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	g, _ := startTestGateway(t, "carriers:"+carrierYAML("a", sim.Addr(), 2)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+keyYAML(1000, 1000, 1000))
	r := send(t, g, "+447700900123", strings.Repeat("long message ", 30)) // 390 chars: 3 parts
	if r.status != 202 || r.body["segments"] != float64(3) {
		t.Fatalf("POST: %d %v", r.status, r.body)
	}
	m := waitStatus(t, g, r.body["id"].(string), "delivered")
	if ids, _ := m["carrier_message_ids"].([]any); len(ids) != 3 {
		t.Fatalf("carrier ids %v, want 3", m["carrier_message_ids"])
	}
	// Each part shows its carrier id and status, and each part's receipt
	// is an event naming its part.
	parts, _ := m["parts"].([]any)
	if len(parts) != 3 {
		t.Fatalf("parts %v, want 3", m["parts"])
	}
	for i, p := range parts {
		p := p.(map[string]any)
		if p["index"] != float64(i+1) || p["status"] != "delivered" || p["carrier_message_id"] != m["carrier_message_ids"].([]any)[i] {
			t.Errorf("part %d: %v", i+1, p)
		}
	}
	receipts := map[float64]bool{}
	for _, e := range m["events"].([]any) {
		if e := e.(map[string]any); e["status"] == "delivered" {
			part, _ := e["part"].(float64)
			receipts[part] = true
		}
	}
	if len(receipts) != 3 || !receipts[1] || !receipts[2] || !receipts[3] {
		t.Errorf("delivered events name parts %v, want 1, 2 and 3", receipts)
	}
	if _, ok := m["error"]; ok {
		t.Errorf("a delivered message has an error: %v", m["error"])
	}
}

func TestRateLimitAndQueueFull(t *testing.T) {
	sim := testSim(t, smsc.Config{Faults: smsc.Faults{Hang: true}})
	g, _ := startTestGateway(t, "carriers:"+carrierYAML("a", sim.Addr(), 1)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+keyYAML(1, 3, 1000))
	for i := 0; i < 3; i++ {
		if r := send(t, g, "+447700900123", "burst"); r.status != 202 {
			t.Fatalf("message %d of the burst: %d %v", i, r.status, r.body)
		}
	}
	r := send(t, g, "+447700900123", "over")
	if r.status != 429 || errorCode(r) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the bucket: %d %v %v", r.status, r.body, r.header)
	}

	sim2 := testSim(t, smsc.Config{Faults: smsc.Faults{Hang: true}})
	g2, _ := startTestGateway(t, "carriers:"+carrierYAML("a", sim2.Addr(), 1)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+keyYAML(1000, 1000, 2))
	for i := 0; i < 2; i++ {
		if r := send(t, g2, "+447700900123", "fill"); r.status != 202 {
			t.Fatalf("fill %d: %d %v", i, r.status, r.body)
		}
	}
	if r := send(t, g2, "+447700900124", "full"); r.status != 429 || errorCode(r) != "queue_full" {
		t.Fatalf("beyond max_queued: %d %v", r.status, r.body)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func errorCode(r apiResponse) string {
	e, _ := r.body["error"].(map[string]any)
	return fmt.Sprint(e["code"])
}

// The primary carrier's simulator stops: messages go to the secondary.
// It comes back: messages return to it.
func TestFailoverAndReturn(t *testing.T) {
	primary := testSim(t, smsc.Config{})
	secondary := testSim(t, smsc.Config{})
	addr := primary.Addr()
	g, _ := startTestGateway(t, "carriers:"+carrierYAML("primary", addr, 1)+carrierYAML("secondary", secondary.Addr(), 1)+
		"routes:\n  - {prefix: \"\", carriers: [primary, secondary]}\n"+keyYAML(1000, 1000, 1000))

	waitBound := func(s *smsc.Server) {
		deadline := time.Now().Add(20 * time.Second)
		for s.Stats().Binds == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the gateway did not bind")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitBound(primary)
	waitBound(secondary)
	r := send(t, g, "+447700900123", "one")
	if m := waitStatus(t, g, r.body["id"].(string), "delivered"); m["carrier"] != "primary" {
		t.Fatalf("healthy primary not used: %v", m["carrier"])
	}
	primary.Close()
	r = send(t, g, "+447700900123", "two")
	if m := waitStatus(t, g, r.body["id"].(string), "delivered"); m["carrier"] != "secondary" {
		t.Fatalf("after the primary stopped: carrier %v, want secondary", m["carrier"])
	}
	back := testSim(t, smsc.Config{Addr: addr})
	waitBound(back)
	r = send(t, g, "+447700900123", "three")
	if m := waitStatus(t, g, r.body["id"].(string), "delivered"); m["carrier"] != "primary" {
		t.Fatalf("after the primary returned: carrier %v, want primary", m["carrier"])
	}
}

// Receipts arrive on any bind of the carrier (the simulator round-robins
// them across both), and every message is still delivered.
func TestReceiptsOnAnotherBind(t *testing.T) {
	var mu sync.Mutex
	sim := testSim(t, smsc.Config{ReceiptTarget: smsc.TargetAny})
	g, _ := startTestGateway(t, "carriers:"+carrierYAML("a", sim.Addr(), 2)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+keyYAML(1000, 1000, 1000))
	var ids []string
	for i := 0; i < 20; i++ {
		r := send(t, g, fmt.Sprintf("+4477009001%02d", i), "rr")
		mu.Lock()
		ids = append(ids, r.body["id"].(string))
		mu.Unlock()
	}
	for _, id := range ids {
		waitStatus(t, g, id, "delivered")
	}
	// The status is stored before the receipt is acknowledged: wait for
	// the simulator to hear the last acknowledgements.
	deadline := time.Now().Add(10 * time.Second)
	for st := sim.Stats(); st.BindsTotal < 2 || st.ReceiptsSent["DELIVRD"] != 20; st = sim.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("simulator stats %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A node whose store cannot open fails with an error naming the step, and
// leaves nothing running: its simulator's port and its API port are free
// again.
func TestStartFailsCleanlyWithoutStore(t *testing.T) {
	dir := t.TempDir()
	dataFile := filepath.Join(dir, "data")
	if err := os.WriteFile(dataFile, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	simAddr, apiAddr := sim.Addr().String(), api.Addr().String()
	sim.Close()
	api.Close()
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
carriers:
  - {name: sandbox, simulator: true, host: %q, system_id: gw, password: pw}
routes:
  - {prefix: "", carriers: [sandbox]}
keys:
  - {id: k, secret: %q, rate: 10}
`, simAddr, testSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, nil, []string{"node.data_dir=" + dataFile, "node.http=" + apiAddr, "node.admin=127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := startGateway(context.Background(), cfg, zerolog.Nop())
	if err == nil {
		g.Stop(context.Background())
		t.Fatal("started with a file as its data directory")
	}
	if !strings.HasPrefix(err.Error(), "storage: ") {
		t.Errorf("error %q, want it to name the storage step", err)
	}
	for _, addr := range []string{simAddr, apiAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still held after the failed start: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// GET /v1/messages through the real engine and store: a key lists its own
// messages of the day, newest first, page by page, and never another
// key's.
func TestListMessagesOfOneKey(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	const otherSecret = "other-secret-0123456789"
	g, _ := startTestGateway(t, "carriers:"+carrierYAML("a", sim.Addr(), 1)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+
		keyYAML(1000, 1000, 1000)+fmt.Sprintf("  - {id: other, secret: %s, rate: 1000}\n", otherSecret))
	base := "http://" + g.Addr() + "/v1/messages"
	var mine, theirs []string
	var day string
	for i := range 5 {
		r := send(t, g, fmt.Sprintf("+4477009001%02d", i), "mine")
		mine = append([]string{r.body["id"].(string)}, mine...) // newest first
		day = r.body["accepted_at"].(string)[:10]
		o := callAuth(t, "POST", base, otherSecret, map[string]any{"to": "+447700900199", "from": "Other", "body": "theirs"})
		theirs = append([]string{o.body["id"].(string)}, theirs...)
	}
	list := func(secret, query string) (ids []string, next string) {
		t.Helper()
		r := callAuth(t, "GET", base+"?"+query, secret, nil)
		if r.status != 200 {
			t.Fatalf("?%s: %d %v", query, r.status, r.body)
		}
		for _, m := range r.body["messages"].([]any) {
			ids = append(ids, m.(map[string]any)["id"].(string))
		}
		next, _ = r.body["next_cursor"].(string)
		return ids, next
	}
	var got []string
	query := "date=" + day + "&limit=2"
	for range 5 {
		ids, next := list(testSecret, query)
		got = append(got, ids...)
		if next == "" {
			break
		}
		query = "date=" + day + "&limit=2&cursor=" + next
	}
	if fmt.Sprint(got) != fmt.Sprint(mine) {
		t.Errorf("test's messages of %s: %v, want %v", day, got, mine)
	}
	if ids, _ := list(otherSecret, "date="+day); fmt.Sprint(ids) != fmt.Sprint(theirs) {
		t.Errorf("other's messages of %s: %v, want %v", day, ids, theirs)
	}
	if ids, _ := list(testSecret, "date="+day+"&to=%2B447700900199"); len(ids) != 0 {
		t.Errorf("test lists other's messages by their destination: %v", ids)
	}
	if ids, _ := list(testSecret, "date="+day+"&to=%2B447700900102&direction=outbound"); fmt.Sprint(ids) != fmt.Sprint(mine[2:3]) {
		t.Errorf("filtered by destination: %v, want %v", ids, mine[2:3])
	}
}

// /readyz is 503, naming the carrier, while the route's first carrier has
// no bound bind, and 200 once it binds; node.ready_requires_carrier: false
// keeps a node that can store messages ready without its carrier.
func TestReadyzFollowsCarrier(t *testing.T) {
	sim := testSim(t, smsc.Config{Faults: smsc.Faults{RefuseBinds: true}})
	yaml := "carriers:" + carrierYAML("primary", sim.Addr(), 1) + "routes:\n  - {prefix: \"\", carriers: [primary]}\n" + keyYAML(1000, 1000, 1000)
	g, _ := startTestGateway(t, yaml)
	readyz := func(g *gateway) apiResponse {
		t.Helper()
		return call(t, "GET", "http://"+g.Addr()+"/readyz", nil)
	}
	r := readyz(g)
	if r.status != 503 || errorCode(r) != "unavailable" || !strings.Contains(fmt.Sprint(r.body), "primary") {
		t.Fatalf("no bound bind: %d %v", r.status, r.body)
	}
	if h := call(t, "GET", "http://"+g.Addr()+"/healthz", nil); h.status != 200 {
		t.Errorf("healthz %d", h.status)
	}
	// Not ready is not closed: a message is still accepted and waits.
	if s := send(t, g, "+447700900123", "waits"); s.status != 202 {
		t.Errorf("submit while not ready: %d %v", s.status, s.body)
	}
	lenient, _ := startTestGateway(t, "node: {ready_requires_carrier: false}\n"+yaml)
	if r := readyz(lenient); r.status != 200 {
		t.Errorf("ready_requires_carrier false: %d %v", r.status, r.body)
	}
	sim.SetFaults(smsc.Faults{})
	deadline := time.Now().Add(20 * time.Second)
	for r = readyz(g); r.status != 200; r = readyz(g) {
		if time.Now().After(deadline) {
			t.Fatalf("the carrier bound, readyz still %d %v", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The start-up hint never prints a real secret: only the shipped demo
// secret is shown, any other is a placeholder.
func TestPrintReadyHidesSecrets(t *testing.T) {
	const real = "a-real-secret-0123456789"
	hash := fmt.Sprintf("%x", sha256.Sum256([]byte("another-real-secret-0123")))
	for _, c := range []struct {
		name string
		keys string
		want []string
	}{
		{"real secret", fmt.Sprintf("  - {id: prod, secret: %s, rate: 1}\n", real),
			[]string{`-H "Authorization: Bearer $API_KEY"`, `(API_KEY: the secret of key "prod")`}},
		{"hash only", fmt.Sprintf("  - {id: prod, secret_sha256: %s, rate: 1}\n", hash),
			[]string{`-H "Authorization: Bearer $API_KEY"`}},
		{"demo and real", fmt.Sprintf("  - {id: prod, secret: %s, rate: 1}\n  - {id: demo, secret: demo-secret-change-me, rate: 1}\n", real),
			[]string{"-H 'Authorization: Bearer demo-secret-change-me'"}},
	} {
		cfg := loadOK(t, "keys:\n"+c.keys)
		var out bytes.Buffer
		printReady(&out, cfg, "http", "127.0.0.1:8080", "127.0.0.1:8081")
		for _, want := range append(c.want, "listening on http://127.0.0.1:8080", "curl -s -X POST http://127.0.0.1:8080/v1/messages") {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: hint lacks %s:\n%s", c.name, want, out.String())
			}
		}
		if strings.Contains(out.String(), real) || strings.Contains(out.String(), hash) {
			t.Errorf("%s: hint shows a secret:\n%s", c.name, out.String())
		}
	}
}

// The README's quick start, word for word: the shipped cluster.yaml's hint
// is the curl line the README shows, with the demo secret.
func TestPrintReadyMatchesReadme(t *testing.T) {
	cfg, err := LoadConfig("../../cluster.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printReady(&out, cfg, "http", cfg.Node.HTTP, cfg.Node.Admin)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	hint := out.String()
	for _, want := range []string{"listening on http://127.0.0.1:8080\n", "Authorization: Bearer demo-secret-change-me",
		"curl -s -X POST http://127.0.0.1:8080/v1/messages", `{"to":"+447700900123","from":"Switchboard","body":"Hello"}`} {
		if !strings.Contains(hint, want) || !strings.Contains(string(readme), strings.TrimSuffix(strings.TrimPrefix(want, "listening on "), "\n")) {
			t.Errorf("hint and README do not both hold %q:\n%s", want, hint)
		}
	}
}

// node.auth_failures_per_minute reaches the API: after that many failed
// authentications a client gets 429 rate_limited; 0 turns the limit off.
func TestAuthFailuresPerMinute(t *testing.T) {
	for _, c := range []struct {
		limit, wrong int
		want         int // status of the request after the wrong ones
	}{{2, 2, 429}, {0, 20, 401}} {
		g, _ := startTestGateway(t, fmt.Sprintf("node: {auth_failures_per_minute: %d}\n", c.limit)+keyYAML(1000, 1000, 1000))
		for range c.wrong {
			if r := callAuth(t, "GET", "http://"+g.Addr()+"/v1/messages", "wrong-secret-0123456789", nil); r.status != 401 {
				t.Fatalf("limit %d: a wrong secret got %d %v", c.limit, r.status, r.body)
			}
		}
		r := callAuth(t, "GET", "http://"+g.Addr()+"/v1/messages", "wrong-secret-0123456789", nil)
		if r.status != c.want || (c.want == 429 && (errorCode(r) != "rate_limited" || r.header.Get("Retry-After") == "")) {
			t.Errorf("limit %d: after %d failures: %d %v %v, want %d", c.limit, c.wrong, r.status, r.body, r.header, c.want)
		}
	}
}

// limits.max_validity is the API's limit: a longer one lets messages ask
// for more than the default 72 hours, a shorter one refuses more.
func TestMaxValidityReachesTheAPI(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	for _, c := range []struct {
		max      string
		validity int
		want     int
	}{{"96h", 96 * 3600, 202}, {"96h", 96*3600 + 1, 400}, {"1h", 3601, 400}, {"1h", 3600, 202}} {
		g, _ := startTestGateway(t, "limits: {default_validity: 1h, max_validity: "+c.max+"}\ncarriers:"+carrierYAML("a", sim.Addr(), 1)+
			"routes:\n  - {prefix: \"\", carriers: [a]}\n"+keyYAML(1000, 1000, 1000))
		r := call(t, "POST", "http://"+g.Addr()+"/v1/messages", map[string]any{"to": "+447700900123", "from": "Acme", "body": "v", "validity": c.validity})
		if r.status != c.want {
			t.Errorf("max_validity %s, validity %d: %d %v, want %d", c.max, c.validity, r.status, r.body, c.want)
		}
	}
}

// Through the real engine and store, another key's message and an unknown
// id get the same 404, word for word.
func TestNotFoundReadsAlike(t *testing.T) {
	sim := testSim(t, smsc.Config{})
	const otherSecret = "other-secret-0123456789"
	g, _ := startTestGateway(t, "carriers:"+carrierYAML("a", sim.Addr(), 1)+"routes:\n  - {prefix: \"\", carriers: [a]}\n"+
		keyYAML(1000, 1000, 1000)+fmt.Sprintf("  - {id: other, secret: %s, rate: 1000}\n", otherSecret))
	id := send(t, g, "+447700900123", "mine").body["id"].(string)
	theirs := callAuth(t, "GET", "http://"+g.Addr()+"/v1/messages/"+id, otherSecret, nil)
	unknown := callAuth(t, "GET", "http://"+g.Addr()+"/v1/messages/msg_01JZZZZZZZZZZZZZZZZZZZZZZZ", otherSecret, nil)
	malformed := callAuth(t, "GET", "http://"+g.Addr()+"/v1/messages/x", otherSecret, nil)
	for _, r := range []apiResponse{theirs, unknown, malformed} {
		if r.status != 404 || fmt.Sprint(r.body) != fmt.Sprint(theirs.body) {
			t.Errorf("%d %v; want 404 and the same body as for another key's message, %v", r.status, r.body, theirs.body)
		}
	}
}

// freeAddr is a 127.0.0.1 address nothing listens on (one was a moment
// ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// While a node waits for an unreachable database, its admin listener
// answers: /healthz 200 (the liveness probe Kubernetes runs there must not
// restart a node for a database outage), /readyz and the admin API 503
// saying the node is starting. Before, it took connections and answered
// nothing until the store connected. Stopping the wait frees the port.
func TestAdminListenerAnswersWhileTheStoreConnects(t *testing.T) {
	dir := t.TempDir()
	db, admin := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
node: {admin_token: %q}
storage: {backend: scylla, hosts: [%q], replication_factor: 1}
carriers:
  - {name: sandbox, host: 127.0.0.1:1, system_id: gw, password: pw}
routes:
  - {prefix: "", carriers: [sandbox]}
keys:
  - {id: k, secret: %q, rate: 10}
`, testSecret, db, testSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, nil, []string{"node.data_dir=" + filepath.Join(dir, "data"), "node.http=127.0.0.1:0", "node.admin=" + admin})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() {
		g, err := startGateway(ctx, cfg, zerolog.Nop())
		if err == nil {
			g.Stop(context.Background())
		}
		started <- err
	}()
	base := "http://" + admin
	client := &http.Client{Timeout: 2 * time.Second} // a listener that never answers must fail the test
	if !waitFor(10*time.Second, func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatal("/healthz on the admin listener did not answer 200 while the store connects")
	}
	for _, path := range []string{"/readyz", "/admin/v1/keys"} {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+testSecret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(body), "starting") {
			t.Errorf("GET %s while the store connects: %d %s; want 503 saying the node is starting", path, resp.StatusCode, body)
		}
	}
	cancel()
	if err := <-started; err == nil {
		t.Fatal("the gateway started without its database")
	}
	ln, err := net.Listen("tcp", admin)
	if err != nil {
		t.Fatalf("the admin port is still held after the start was given up: %v", err)
	}
	ln.Close()
}

// A node asked to stop while it waits for its database stops with no
// error (exit 0): a stop, not a failure.
func TestStopWhileWaitingForTheDatabaseIsNoFailure(t *testing.T) {
	dir := t.TempDir()
	path, admin := filepath.Join(dir, "cluster.yaml"), freeAddr(t)
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`
node: {http: 127.0.0.1:0, admin: %q, data_dir: %q}
storage: {backend: scylla, hosts: [%q], replication_factor: 1}
keys:
  - {id: k, secret: %q, rate: 10}
`, admin, filepath.Join(dir, "data"), freeAddr(t), testSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithCancel(context.Background())
	sig := stopSignals{stop: stop, hurry: t.Context(), close: func() {}}
	done := make(chan error, 1)
	go func() { done <- runGateway(sig, []string{"--config", path}, io.Discard, io.Discard) }()
	client := &http.Client{Timeout: 2 * time.Second}
	if !waitFor(10*time.Second, func() bool { // the node waits for its database
		resp, err := client.Get("http://" + admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}) {
		t.Fatal("the node's admin listener did not answer while it waited for its database")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped while waiting for its database: %v, want no error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not stop while waiting for its database")
	}
}

// An argument left over after the flags (a forgotten --set, a command
// given after them) is refused with exit 2 before anything starts, rather
// than ignored while the node runs on settings the operator did not mean.
func TestGatewayRefusesAStrayArgument(t *testing.T) {
	var stdout, stderr bytes.Buffer
	sig := stopSignals{stop: t.Context(), hurry: t.Context(), close: func() {}}
	code := run(sig, []string{"--set", "node.http=127.0.0.1:0", "node.admin_token=TopSecretValue123"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), `unexpected argument "node.admin_token=…"`) ||
		strings.Contains(stderr.String(), "TopSecretValue123") {
		t.Fatalf("exit %d, stderr %q; want 2 naming the argument without its value", code, stderr.String())
	}
}
