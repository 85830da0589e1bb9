package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// scrape reads the admin listener's /metrics into series → value, a
// series named as exposed: name{labels}.
func scrape(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.ops.adminLn.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds the series of one metric whose labels contain every match.
func sum(m map[string]float64, name string, match ...string) float64 {
	total := 0.0
	for series, v := range m {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, want := range match {
			ok = ok && strings.Contains(series, want)
		}
		if ok {
			total += v
		}
	}
	return total
}

// A node under load, with its carrier suspended for a while and a webhook
// receiver that fails its first requests: every metric an operator
// alerts on moves.
func TestMetricsMoveUnderLoad(t *testing.T) {
	sim := testSim(t, smsc.Config{ReceiptDelay: smsc.Delay{Min: 5 * time.Millisecond}})
	// The receiver holds its requests until gate opens (so callbacks
	// pile up), then fails its first few (fewer than the circuit
	// breaker's 5).
	var hookCalls atomic.Int64
	gate := make(chan struct{})
	hooks := startHookServer(t, func(w http.ResponseWriter) {
		<-gate
		if hookCalls.Add(1) <= 3 {
			w.WriteHeader(500)
		}
	})
	var once sync.Once
	openGate := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(openGate)
	yaml := fmt.Sprintf(`
node: {admin_token: %q}
carriers:%s
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: test, secret: %q, rate: 100000, burst: 100000, callback_url: %q, callback_statuses: [delivered]}
webhooks: {allow_private_networks: true, retry_min: 20ms, retry_max: 100ms}
`, testAdminToken, carrierYAML("sim", sim.Addr(), 2), testSecret, hooks)
	g, _ := startTestGateway(t, yaml)
	before := scrape(t, g)

	// Load: 20 senders for 3 s, about 400 messages a second.
	var ids sync.Map
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for s := range 20 {
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				r := send(t, g, fmt.Sprintf("+4477009%05d", s*1000+n%50), "load")
				if r.status == 202 {
					ids.Store(r.body["id"], true)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	if r := adminCall(t, g, "POST", "/admin/v1/carriers/sim/suspend", ""); r.status != 200 {
		t.Fatalf("suspend: %d", r.status)
	}
	time.Sleep(time.Second)
	during := scrape(t, g)
	openGate()
	if r := adminCall(t, g, "POST", "/admin/v1/carriers/sim/resume", ""); r.status != 200 {
		t.Fatalf("resume: %d", r.status)
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	var after map[string]float64
	for {
		after = scrape(t, g)
		n := 0
		ids.Range(func(any, any) bool { n++; return true })
		if sum(after, "switchboard_messages_total", `status="delivered"`) >= float64(n) &&
			sum(after, "switchboard_webhook_deliveries_total", `result="delivered"`) >= float64(n) &&
			sum(after, "switchboard_queue_lag_messages") == 0 && sum(after, "switchboard_webhook_backlog_events") == 0 {
			break
		}
		if time.Now().After(deadline) {
			for k, v := range after {
				if strings.Contains(k, "webhook") {
					t.Log(k, v)
				}
			}
			t.Fatalf("not everything delivered: %d accepted; lag %v, delivered %v, callbacks %v", n,
				sum(after, "switchboard_queue_lag_messages"), sum(after, "switchboard_messages_total", `status="delivered"`),
				sum(after, "switchboard_webhook_deliveries_total", `result="delivered"`))
		}
		time.Sleep(50 * time.Millisecond)
	}
	grew := func(what, name string, match ...string) {
		t.Helper()
		if b, a := sum(before, name, match...), sum(after, name, match...); a <= b {
			t.Errorf("%s did not move: %v → %v", what, b, a)
		}
	}
	grew("API latency", "switchboard_http_request_duration_seconds_count", `route="/v1/messages"`, `status="2xx"`)
	grew("carrier submit latency", "switchboard_carrier_submit_duration_seconds_count", `carrier="sim"`)
	grew("receipts", "switchboard_receipts_total", `carrier="sim"`, `state="delivered"`)
	grew("webhooks delivered", "switchboard_webhook_deliveries_total", `result="delivered"`)
	grew("webhooks retried", "switchboard_webhook_deliveries_total", `result="retried"`)
	grew("messages delivered", "switchboard_messages_total", `status="delivered"`)
	grew("store commits", "switchboard_store_write_duration_seconds_count", `op="accept"`)
	grew("store records", "switchboard_store_write_duration_seconds_count", `op="record"`)
	grew("Go runtime", "go_memstats_alloc_bytes_total")
	if v := sum(during, "switchboard_queue_lag_messages"); v == 0 {
		t.Error("queue lag stayed 0 while the carrier was suspended")
	}
	if v := sum(during, "switchboard_queue_lag_messages", `carrier="sim"`); v == 0 {
		t.Error("the carrier's queue lag stayed 0 while it was suspended")
	}
	if v := sum(during, "switchboard_binds", `carrier="sim"`, `state="suspended"`); v != 2 {
		t.Errorf("suspended binds during the suspension: %v", v)
	}
	if v := sum(after, "switchboard_binds", `carrier="sim"`, `state="bound"`); v != 2 {
		t.Errorf("bound binds after the resume: %v", v)
	}
	if v := sum(during, "switchboard_held_messages"); v == 0 {
		t.Error("no messages held while the carrier was suspended")
	}
	if sum(after, "switchboard_held_messages_limit") == 0 || sum(after, "switchboard_sending_submits_limit") == 0 {
		t.Error("budget limits missing")
	}
	if sum(during, "switchboard_webhook_backlog_events") == 0 {
		t.Error("the webhook backlog never showed the callbacks waiting for the failing receiver")
	}
	// A listing shares the submit's route, not its series: the intake's
	// latency (alerts, dashboard) is the POSTs' alone.
	posts := sum(after, "switchboard_http_request_duration_seconds_count", `route="/v1/messages"`, `method="POST"`)
	if r := call(t, "GET", "http://"+g.Addr()+"/v1/messages", nil); r.status != 200 {
		t.Fatalf("list: %d", r.status)
	}
	listed := scrape(t, g)
	if v := sum(listed, "switchboard_http_request_duration_seconds_count", `route="/v1/messages"`, `method="POST"`); v != posts {
		t.Errorf("a GET moved the POST series: %v → %v", posts, v)
	}
	if v := sum(listed, "switchboard_http_request_duration_seconds_count", `route="/v1/messages"`, `method="GET"`); v != 1 {
		t.Errorf("GET /v1/messages counted %v times, want 1", v)
	}
}

// startHookServer is a webhook receiver; answer writes the response (200
// when it writes nothing).
func startHookServer(t *testing.T, answer func(http.ResponseWriter)) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w) })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/hook"
}
