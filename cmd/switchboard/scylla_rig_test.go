package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/sink"
)

// The rig of the tests that run the gateway binary on Cassandra and Redis:
// the simulator as the carrier (counting submits per message body), a
// webhook sink that records each message's final status, the binary's
// config, and a load of single-message requests from several workers.

// freshKeyspace returns a keyspace name no other test uses, dropped when
// the test ends.
func freshKeyspace(t *testing.T, host string) string {
	t.Helper()
	ks := fmt.Sprintf("t%d_%d", time.Now().UnixNano()%1e12, os.Getpid()%1e5)
	t.Cleanup(func() {
		c := gocql.NewCluster(host)
		c.Timeout = time.Minute
		if s, err := c.CreateSession(); err == nil {
			_ = s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
			s.Close()
		}
	})
	return ks
}

// finalStatuses are the statuses a key's callbacks carry in these tests:
// every final one.
var finalStatuses = []string{"delivered", "undeliverable", "expired", "rejected", "failed", "unknown", "canceled"}

// binaryRig is the gateway binary and what surrounds it.
type binaryRig struct {
	t       *testing.T
	bin     string
	cfgPath string
	sim     *smsc.Server
	hooks   *sink.Sink
	binds   int
	window  int

	mu      sync.Mutex
	submits map[string]int    // by message body: how often the carrier got it
	finals  map[string]string // message ID → its final status, from the callbacks
	changed chan struct{}     // closed and replaced when finals grows

	proc *exec.Cmd
	addr string
}

// newBinaryRig builds the binary and writes its config: storage on the
// CQL server host in keyspace, the cache in Redis at redisAddr (database
// db), one carrier (the simulator) with 2 binds of window 64, and one key
// whose final statuses are called back to the sink.
func newBinaryRig(t *testing.T, host, keyspace, redisAddr string, db int) *binaryRig {
	t.Helper()
	dir := t.TempDir()
	r := &binaryRig{t: t, bin: buildBinary(t, dir), binds: 2, window: 64,
		submits: map[string]int{}, finals: map[string]string{}, changed: make(chan struct{})}
	r.sim = testSim(t, smsc.Config{
		Faults:   smsc.Faults{Latency: smsc.Delay{Min: time.Millisecond, Max: 3 * time.Millisecond}},
		OnSubmit: func(s smsc.Submit) { r.mu.Lock(); r.submits[string(s.Data)]++; r.mu.Unlock() },
	})
	r.hooks = startSink(t, sink.Options{Verify: verifier(testWebhookSecret), Discard: true, OnEvent: r.onEvent})
	cfg := fmt.Sprintf(`
node: {http: "127.0.0.1:0", admin: "127.0.0.1:0", data_dir: %q, drain_period: 100ms}
log: {level: warn, format: json}
storage: {backend: scylla, hosts: [%q], keyspace: %s, replication_factor: 1}
cache: {backend: redis, addr: %q, db: %d}
carriers:
  - {name: sim, host: %q, system_id: gw, password: pw, binds: %d, window: %d, reconnect_min: 10ms, reconnect_max: 200ms}
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: e2e, secret: %q, rate: 100000, burst: 100000, max_queued: 1000000, callback_url: %q, webhook_secret: %q,
     callback_statuses: [%s]}
webhooks: {allow_private_networks: true, retry_min: 100ms, retry_max: 1s}
`, filepath.Join(dir, "data"), host, keyspace, redisAddr, db, r.sim.Addr(), r.binds, r.window, testSecret,
		r.hooks.URL()+"/hook", testWebhookSecret, strings.Join(finalStatuses, ", "))
	r.cfgPath = filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *binaryRig) onEvent(ev sink.Event) {
	for _, st := range finalStatuses {
		if ev.Status == st {
			r.mu.Lock()
			if _, ok := r.finals[ev.MessageID]; !ok {
				r.finals[ev.MessageID] = ev.Status
				close(r.changed)
				r.changed = make(chan struct{})
			}
			r.mu.Unlock()
			return
		}
	}
}

// start runs the binary and waits until it serves (it prints its address
// once its store is ready).
func (r *binaryRig) start() {
	r.t.Helper()
	r.proc, r.addr = startBinary(r.t, r.bin, r.cfgPath)
}

// kill ends the binary with SIGKILL.
func (r *binaryRig) kill() {
	r.t.Helper()
	if err := r.proc.Process.Kill(); err != nil {
		r.t.Fatal(err)
	}
	_ = r.proc.Wait()
}

// stop ends the binary with SIGTERM and checks that it stopped cleanly.
func (r *binaryRig) stop() {
	r.t.Helper()
	if err := r.proc.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	if err := r.proc.Wait(); err != nil {
		r.t.Fatalf("graceful stop: %v", err)
	}
}

// waitFinal waits until every message of ids has a final status, and
// returns how many have none when timeout passes (0: all have one).
func (r *binaryRig) waitFinal(ids []string, timeout time.Duration) int {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if _, ok := r.finals[id]; !ok {
				missing++
			}
		}
		changed := r.changed
		r.mu.Unlock()
		if missing == 0 {
			return 0
		}
		select {
		case <-changed:
		case <-deadline.C:
			return missing
		}
	}
}

// missingFinal lists up to n of ids without a final status.
func (r *binaryRig) missingFinal(ids []string, n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if _, ok := r.finals[id]; !ok && len(out) < n {
			out = append(out, id)
		}
	}
	return out
}

// statuses counts the final statuses of ids.
func (r *binaryRig) statuses(ids []string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, id := range ids {
		n[r.finals[id]]++
	}
	return n
}

// duplicates counts the submits beyond the first of each message body.
func (r *binaryRig) duplicates() (distinct, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.submits {
		dups += n - 1
	}
	return len(r.submits), dups
}

// sendBatch posts one batch of messages with bodies prefix-0, prefix-1, …
// and returns the IDs of those accepted.
func (r *binaryRig) sendBatch(prefix string, n int) []string {
	r.t.Helper()
	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = map[string]any{"to": fmt.Sprintf("+4477009%05d", i%500), "from": "E2E", "body": fmt.Sprintf("%s-%d", prefix, i)}
	}
	resp := call(r.t, "POST", "http://"+r.addr+"/v1/messages/batch", map[string]any{"messages": msgs})
	if resp.status != 202 {
		r.t.Fatalf("batch %s: %d %v", prefix, resp.status, resp.body)
	}
	results, _ := resp.body["results"].([]any)
	var ids []string
	for _, res := range results {
		if id, _ := res.(map[string]any)["id"].(string); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// load sends single messages from several workers until stopped, and
// sorts the answers: 202 (the IDs), 503 with code unavailable, anything
// else (a failure of the test), and transport errors.
type load struct {
	rig     *binaryRig
	prefix  string // of the bodies, which the carrier's counts go by
	stopped chan struct{}
	wg      sync.WaitGroup
	seq     atomic.Int64

	mu        sync.Mutex
	accepted  []string
	acceptAt  []time.Time // when each 202 was sent for
	refused   int         // 503 unavailable
	refusedAt time.Time   // the last
	other     []string    // any other answer, described
	transport int

	// onAccept, if set, is called with the number accepted so far after
	// each 202.
	onAccept func(n int)
}

// startLoad starts workers posting to the rig's current address messages
// with bodies prefix-1, prefix-2, …; pace is the pause of each worker
// between requests.
func (r *binaryRig) startLoad(prefix string, workers int, pace time.Duration, onAccept func(int)) *load {
	l := &load{rig: r, prefix: prefix, stopped: make(chan struct{}), onAccept: onAccept}
	client := &http.Client{Timeout: 20 * time.Second}
	addr := r.addr
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stopped:
					return
				case <-time.After(pace):
				}
				l.one(client, addr)
			}
		})
	}
	return l
}

func (l *load) one(client *http.Client, addr string) {
	i := l.seq.Add(1)
	body := fmt.Sprintf(`{"to":"+4477008%05d","from":"Load","body":"%s-%d"}`, i%500, l.prefix, i)
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testSecret)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		l.mu.Lock()
		l.transport++
		l.mu.Unlock()
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		ID    string `json:"id"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &out)
	l.mu.Lock()
	switch {
	case resp.StatusCode == 202 && out.ID != "":
		l.accepted = append(l.accepted, out.ID)
		l.acceptAt = append(l.acceptAt, sent)
		n, f := len(l.accepted), l.onAccept
		l.mu.Unlock()
		if f != nil {
			f(n)
		}
		return
	case resp.StatusCode == 503 && out.Error.Code == "unavailable":
		l.refused++
		l.refusedAt = time.Now()
	default:
		l.other = append(l.other, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b)))
	}
	l.mu.Unlock()
}

// stop stops the workers and waits for their last requests.
func (l *load) stop() {
	close(l.stopped)
	l.wg.Wait()
}

// ids returns the IDs accepted so far.
func (l *load) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.accepted...)
}

// acceptedSince counts the 202s of requests sent at or after t.
func (l *load) acceptedSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.acceptAt {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

func (l *load) counts() (accepted, refused, transport int, other []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted), l.refused, l.transport, append([]string(nil), l.other...)
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// readyz returns the status of GET /readyz.
func readyz(addr string) int {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// cassandraNode is a Cassandra node of one test, from
// deploy/local/cassandra/start.sh, on free ports, with its files in a
// directory of the test's.
type cassandraNode struct {
	t    *testing.T
	env  []string
	work string
	Addr string
	pid  int
}

// startCassandra starts the test's own Cassandra node; it is stopped by
// its PID when the test ends.
func startCassandra(t *testing.T) *cassandraNode {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("java is not installed (CI=true: the Cassandra tests must run)")
		}
		t.Skip("java is not installed")
	}
	cql, storage := freeTCPPort(t), freeTCPPort(t)
	n := &cassandraNode{t: t, work: filepath.Join(t.TempDir(), "cassandra"), Addr: fmt.Sprintf("127.0.0.1:%d", cql)}
	n.env = append(os.Environ(), fmt.Sprintf("CASS_CQL_PORT=%d", cql), fmt.Sprintf("CASS_STORAGE_PORT=%d", storage),
		"CASS_JMX_PORT=", "CASS_WORK="+n.work, "CASS_START_TIMEOUT=180")
	t.Cleanup(n.stop)
	n.start(true)
	return n
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs start.sh (which returns once the node answers CQL); fresh
// starts from an empty data directory, else the node keeps its data.
func (n *cassandraNode) start(fresh bool) {
	n.t.Helper()
	cmd := exec.Command("../../deploy/local/cassandra/start.sh")
	cmd.Env = append(n.env, "CASS_FRESH="+map[bool]string{true: "1", false: "0"}[fresh])
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("cassandra start: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(n.work, "cassandra.pid"))
	if err != nil {
		n.t.Fatal(err)
	}
	if n.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		n.t.Fatal(err)
	}
}

// stop ends the node by its PID: SIGTERM, and SIGKILL if it is still
// there after a minute. It waits until the process is gone.
func (n *cassandraNode) stop() {
	if n.pid == 0 {
		return
	}
	pid := n.pid
	n.pid = 0
	_ = syscall.Kill(pid, syscall.SIGTERM)
	gone := func() bool { return syscall.Kill(pid, 0) != nil }
	if !waitFor(time.Minute, gone) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		waitFor(10*time.Second, gone)
	}
	_ = os.Remove(filepath.Join(n.work, "cassandra.pid"))
}
