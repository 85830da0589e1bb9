package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
	"github.com/switchboard-sms/switchboard/storage/scylla"
)

// The fleet's tests run three gateway nodes as processes on 127.0.0.1,
// built without -race (protoactor's cluster code is not race-clean), on a
// real Cassandra (a keyspace of their own) and a real Redis, sending to a
// simulator in the test process.

// serversForCluster returns the CQL and Redis servers the tests use.
// Without them the tests skip, except under CI, where they fail.
func serversForCluster(t *testing.T) (cql, redis string) {
	cql, redis = os.Getenv("SWITCHBOARD_TEST_CQL"), os.Getenv("SWITCHBOARD_TEST_REDIS")
	if cql != "" && redis != "" {
		return cql, redis
	}
	if os.Getenv("CI") != "" {
		t.Fatal("SWITCHBOARD_TEST_CQL and SWITCHBOARD_TEST_REDIS must name servers in CI (.ci/test starts them)")
	}
	t.Skip("SWITCHBOARD_TEST_CQL and SWITCHBOARD_TEST_REDIS are not both set (.ci/test starts the servers)")
	return "", ""
}

// fleetRig is a cluster of gateway processes.
type fleetRig struct {
	t        *testing.T
	tag      string
	bin, dir string
	sim      *smsc.Server
	hooks    *sink.Sink // every key's callback URL: a final callback per message
	keys     []string   // key ids, each with secret "secret-"+id
	carrier  string
	nodes    []*fleetNode

	mu      sync.Mutex
	submits map[string]int      // body → times the carrier accepted it
	order   map[string][]string // destination → bodies in the order the carrier accepted them
}

type fleetNode struct {
	i        int
	cfgPath  string
	gossip   string
	wrap     []string // a command the node runs through
	cmd      *exec.Cmd
	addr     atomic.Pointer[string] // the API, once started; load goroutines read it while a node restarts
	admin    atomic.Pointer[string] // node.admin, once printed
	stopped  bool                   // SIGSTOPped
	exited   chan struct{}
	logLines *os.File
}

// api is the node's API address ("" before it first started).
func (nd *fleetNode) api() string {
	if a := nd.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// nodeAddrs are where a node listens and what it connects to; wrap, if
// set, runs the node through another command (ip netns exec).
type nodeAddrs struct {
	gossip, remote, http string
	cql, redis, smsc     string
	wrap                 []string
}

// newFleetRig runs n nodes on 127.0.0.1.
func newFleetRig(t *testing.T, n int) *fleetRig {
	t.Helper()
	cql, redis := serversForCluster(t)
	return newFleetRigWith(t, n, func(r *fleetRig, i int) nodeAddrs {
		return nodeAddrs{gossip: freeLoopback(t), remote: freeLoopback(t), http: "127.0.0.1:0", cql: cql, redis: redis, smsc: r.sim.Addr()}
	})
}

// keptOnFailure is a temporary directory for the nodes' files that
// outlives a failed test, so the logs a failure names can be read.
func keptOnFailure(t *testing.T) string {
	dir, err := os.MkdirTemp("", strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return dir
}

// newFleetRigWith runs n nodes with the addresses addrs gives each.
func newFleetRigWith(t *testing.T, n int, addrs func(r *fleetRig, i int) nodeAddrs) *fleetRig {
	t.Helper()
	serversForCluster(t)
	if testing.Short() {
		t.Skip("runs a cluster of processes")
	}
	tag := randomTag()
	r := &fleetRig{t: t, tag: tag, dir: keptOnFailure(t), carrier: "sim" + tag, submits: map[string]int{}, order: map[string][]string{}}
	r.bin = buildBinary(t, r.dir)
	r.sim = testSim(t, smsc.Config{
		ReceiptDelay: smsc.Delay{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond},
		OnSubmit: func(s smsc.Submit) {
			r.mu.Lock()
			r.submits[string(s.Data)]++
			r.order[s.Dest] = append(r.order[s.Dest], string(s.Data))
			r.mu.Unlock()
		},
	})
	hooks, err := sink.Start(sink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hooks.Close() })
	r.hooks = hooks
	for k := range 6 {
		r.keys = append(r.keys, fmt.Sprintf("f%s-%d", tag, k))
	}
	all := make([]nodeAddrs, n)
	for i := range all {
		all[i] = addrs(r, i)
	}
	var keys strings.Builder
	for _, k := range r.keys {
		fmt.Fprintf(&keys, "  - {id: %q, secret: %q, rate: 100000, burst: 100000, callback_url: %q, callback_statuses: [delivered, undeliverable, expired, rejected, failed, unknown]}\n",
			k, "secret-"+k, hooks.URL()+"/hooks/"+k)
	}
	for i, a := range all {
		nd := &fleetNode{i: i, gossip: a.gossip, wrap: a.wrap}
		nd.cfgPath = writeNodeConfig(t, r.dir, i, a, r.keyspace(), r.carrier, []string{all[0].gossip, all[1%n].gossip}, keys.String())
		r.nodes = append(r.nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range r.nodes {
			r.kill(nd)
		}
		if !t.Failed() { // else kept beside the logs, for the post-mortem
			dropKeyspace(t, all[0].cql, r.keyspace())
		}
	})
	// Started together, each on its own goroutine: a node that fails to
	// start is reported here, on the test's goroutine, so the test stops.
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, nd := range r.nodes {
		wg.Go(func() { errs[i] = r.launch(nd) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	r.waitFleet(n)
	return r
}

// writeNodeConfig writes node i's cluster.yaml into dir and returns its
// path: a clustered node at addrs, on keyspace (also the cluster's name),
// with one carrier, seeds for gossip, and keys (YAML list items).
func writeNodeConfig(t *testing.T, dir string, i int, a nodeAddrs, keyspace, carrier string, seeds []string, keys string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
node: {name: n%d, http: %q, admin: "127.0.0.1:0", data_dir: %q, drain_period: 100ms, shutdown_timeout: 5s}
log: {level: %s, format: json}
storage: {backend: scylla, hosts: [%q], keyspace: %q, replication_factor: 1, consistency: one}
cache: {backend: redis, addr: %q}
cluster: {enabled: true, name: %q, bind: %q, remote: %q, seeds: [%s], lease_ttl: 1500ms}
carriers:
  - {name: %q, host: %q, system_id: gw, password: pw, binds: 3, window: 64, reconnect_min: 50ms, reconnect_max: 500ms}
routes:
  - {prefix: "", carriers: [%q]}
webhooks: {allow_private_networks: true}
keys:
%s`, i, a.http, filepath.Join(dir, fmt.Sprintf("d%d", i)), fleetLogLevel(), a.cql, keyspace, a.redis, keyspace, a.gossip, a.remote,
		quoted(seeds), carrier, a.smsc, carrier, keys)
	path := filepath.Join(dir, fmt.Sprintf("n%d.yaml", i))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// quoted lists ss as YAML flow items.
func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// fleetLogLevel is the nodes' log level: info, or FLEET_LOG_LEVEL (debug,
// to follow a message through the nodes' logs).
func fleetLogLevel() string {
	if l := os.Getenv("FLEET_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// dropKeyspace removes a test's keyspace: the tests share one Cassandra,
// whose heap each keyspace's tables take a share of.
func dropKeyspace(t *testing.T, host, keyspace string) {
	c := gocql.NewCluster(host)
	c.Timeout, c.ConnectTimeout = 30*time.Second, 10*time.Second
	s, err := c.CreateSession()
	if err != nil {
		t.Logf("drop keyspace %s: %v", keyspace, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec(); err != nil {
		t.Logf("drop keyspace %s: %v", keyspace, err)
	}
}

func (r *fleetRig) keyspace() string { return "fleet" + r.tag }

func randomTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// freeLoopback returns a 127.0.0.1 port free for both TCP and UDP (gossip
// listens on both).
func freeLoopback(t *testing.T) string { return freeOn(t, "127.0.0.1") }

// freeOn returns a port of host free for both TCP and UDP. It picks one
// below the kernel's ephemeral range: a port the kernel handed out for
// port 0 and that was closed again can be handed to the next listener on
// port 0, or to an outgoing connection from host, before the node binds
// it (another node's HTTP server once took a node's gossip port that way,
// and a connection to the partitioned node once took a remote port).
func freeOn(t *testing.T, host string) string {
	t.Helper()
	const lowest = 10000 // above the well-known ports our servers use
	span := ephemeralLow() - lowest
	for range 100 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		addr := net.JoinHostPort(host, strconv.Itoa(lowest+int(binary.BigEndian.Uint16(b[:]))%span))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatalf("no free port for TCP and UDP on %s", host)
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range, the
// ports it hands out for port 0 (32768, Linux's default, if unreadable).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(raw)); err == nil && len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
			return n
		}
	}
	return 32768
}

// start runs a node and waits until its API is up (503 while it joins and
// its store connects is fine: the address is printed once it listens).
func (r *fleetRig) start(nd *fleetNode) {
	if err := r.launch(nd); err != nil {
		r.t.Fatal(err)
	}
}

// launch starts nd's process and returns once it listens, or with an
// error if it exits first.
func (r *fleetRig) launch(nd *fleetNode) error {
	args := append(append([]string{}, nd.wrap...), r.bin, "--config", nd.cfgPath)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, fmt.Sprintf("n%d.log", nd.i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return err
	}
	nd.cmd, nd.stopped, nd.exited, nd.logLines = cmd, false, make(chan struct{}), logf
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "listening on http://"); ok {
			addr := strings.TrimSpace(rest)
			nd.addr.Store(&addr)
			go func() {
				for lines.Scan() {
					if _, rest, ok := strings.Cut(lines.Text(), "admin API at http://"); ok {
						a := strings.TrimSuffix(strings.TrimSpace(rest), "/")
						nd.admin.Store(&a)
					}
				}
				_ = cmd.Wait()
				logf.Close()
				close(nd.exited)
			}()
			return nil
		}
	}
	_ = cmd.Wait()
	logf.Close()
	close(nd.exited)
	return fmt.Errorf("node %d exited before it listened; log in %s", nd.i, logf.Name())
}

// kill ends a node with SIGKILL (after SIGCONT, if it was stopped).
func (r *fleetRig) kill(nd *fleetNode) {
	if nd.cmd == nil || nd.cmd.Process == nil {
		return
	}
	select {
	case <-nd.exited:
		return
	default:
	}
	_ = nd.cmd.Process.Signal(syscall.SIGCONT)
	_ = nd.cmd.Process.Kill()
	<-nd.exited
}

func (r *fleetRig) pause(nd *fleetNode) {
	_ = nd.cmd.Process.Signal(syscall.SIGSTOP)
	nd.stopped = true
}
func (r *fleetRig) resume(nd *fleetNode) {
	_ = nd.cmd.Process.Signal(syscall.SIGCONT)
	nd.stopped = false
}

// waitFleet waits until every node answers ready and every key is taken
// through every node.
func (r *fleetRig) waitFleet(live int) {
	r.t.Helper()
	for _, nd := range r.nodes {
		r.waitReady(nd, 60*time.Second)
	}
}

// waitLog waits until a node's log has a line with text.
func (r *fleetRig) waitLog(nd *fleetNode, text string, within time.Duration) {
	r.t.Helper()
	path := filepath.Join(r.dir, fmt.Sprintf("n%d.log", nd.i))
	deadline := time.Now().Add(within)
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), text) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("node %d did not log %q within %v; log in %s", nd.i, text, within, path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReady waits until a node answers ready.
func (r *fleetRig) waitReady(nd *fleetNode, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for !r.ready(nd) {
		if time.Now().After(deadline) {
			resp, err := http.Get("http://" + nd.api() + "/readyz")
			why := fmt.Sprint(err)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				why = fmt.Sprintf("%d %s", resp.StatusCode, b)
			}
			r.t.Fatalf("node %d not ready after %v: %s; log in %s", nd.i, within, why, filepath.Join(r.dir, fmt.Sprintf("n%d.log", nd.i)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *fleetRig) ready(nd *fleetNode) bool {
	resp, err := http.Get("http://" + nd.api() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// sent is a message the fleet accepted.
type sent struct {
	id, key, body, to string
	node              int
	at                time.Time
	took              time.Duration // from the request to its 202
	refusal           string        // the error's message, when not accepted
}

// post sends one message through a node; it returns the accepted message
// (or, refused, the error's message) and the HTTP status (0: no answer).
func (r *fleetRig) post(client *http.Client, nd *fleetNode, key, to, body string) (sent, int) {
	payload := fmt.Sprintf(`{"to":%q,"from":"Fleet","body":%q}`, to, body)
	req, _ := http.NewRequest("POST", "http://"+nd.api()+"/v1/messages", strings.NewReader(payload))
	req.Header.Set("Authorization", "Bearer secret-"+key)
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return sent{}, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != 202 {
		var e struct{ Error struct{ Message string } }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return sent{refusal: e.Error.Message}, resp.StatusCode
	}
	var out struct{ ID string }
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return sent{}, resp.StatusCode
	}
	return sent{id: out.ID, key: key, body: body, to: to, node: nd.i, at: time.Now(), took: time.Since(began)}, 202
}

// load sends messages from workers through the live nodes in turn until
// ctx ends, and returns what was accepted and a count of answers by
// status (and, for refusals, their message; 0: no answer).
func (r *fleetRig) load(ctx context.Context, workers int, pause time.Duration) ([]sent, map[string]int) {
	var mu sync.Mutex
	var accepted []sent
	codes := map[string]int{}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				nd := r.nodes[(w+n)%len(r.nodes)]
				key := r.keys[(w+n)%len(r.keys)]
				body := fmt.Sprintf("w%d-%d", w, n)
				s, code := r.post(client, nd, key, fmt.Sprintf("+4477009%05d", (w*7+n)%200), body)
				mu.Lock()
				codes[strings.TrimSpace(fmt.Sprint(code, " ", s.refusal))]++
				if code == 202 {
					accepted = append(accepted, s)
				}
				mu.Unlock()
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		})
	}
	wg.Wait()
	return accepted, codes
}

// status reads a message through any live node.
func (r *fleetRig) status(client *http.Client, s sent) string {
	for _, nd := range r.nodes {
		if nd.stopped {
			continue
		}
		req, _ := http.NewRequest("GET", "http://"+nd.api()+"/v1/messages/"+s.id, nil)
		req.Header.Set("Authorization", "Bearer secret-"+s.key)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		var m struct{ Status string }
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 {
			return m.Status
		}
	}
	return ""
}

// startLoad runs the tests' load (8 clients through every node) until the
// function it returns is called, which returns what the load sent.
func (r *fleetRig) startLoad() func() ([]sent, map[string]int) {
	ctx, stop := context.WithCancel(context.Background())
	var accepted []sent
	var codes map[string]int
	done := make(chan struct{})
	go func() { accepted, codes = r.load(ctx, 8, 0); close(done) }()
	return func() ([]sent, map[string]int) {
		stop()
		<-done
		return accepted, codes
	}
}

// waitFinal waits until every accepted message has a final status.
func (r *fleetRig) waitFinal(accepted []sent, within time.Duration) map[string]int {
	r.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	final := map[string]bool{"delivered": true, "undeliverable": true, "expired": true, "rejected": true, "failed": true, "unknown": true}
	deadline := time.Now().Add(within)
	statuses := map[string]int{}
	pending := accepted
	for len(pending) > 0 {
		var still []sent
		for _, s := range pending {
			st := r.status(client, s)
			if final[st] {
				statuses[st]++
			} else {
				still = append(still, s)
			}
		}
		pending = still
		if len(pending) > 0 {
			if time.Now().After(deadline) {
				var b strings.Builder
				for _, s := range pending[:min(len(pending), 5)] {
					fmt.Fprintf(&b, "\n  %s: %q (key %s, accepted through n%d at %s)", s.id, r.status(client, s), s.key, s.node, s.at.Format("15:04:05.000"))
				}
				r.t.Fatalf("%d of %d accepted messages have no final status after %v; logs and keyspace %s kept in %s:%s",
					len(pending), len(accepted), within, r.keyspace(), r.dir, b.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return statuses
}

// duplicates counts carrier submits beyond the first of each body.
func (r *fleetRig) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := 0
	for _, n := range r.submits {
		d += n - 1
	}
	return d
}

// Every node accepts every key's messages, and one key's messages to one
// number reach the carrier in acceptance order however they came in:
// through the three nodes in turn.
func TestFleetAcceptsEverywhereInOrder(t *testing.T) {
	r := newFleetRig(t, 3)
	client := &http.Client{Timeout: 10 * time.Second}
	var accepted []sent
	for n := range 60 {
		for _, key := range r.keys[:3] {
			nd := r.nodes[n%3]
			s, code := r.post(client, nd, key, "+447700900777", fmt.Sprintf("%s-%03d", key, n))
			if code != 202 {
				t.Fatalf("message %d of %s through node %d: %d", n, key, nd.i, code)
			}
			accepted = append(accepted, s)
		}
	}
	r.waitFinal(accepted, 60*time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	byKey := map[string][]string{}
	for _, b := range r.order["447700900777"] {
		k := b[:strings.LastIndexByte(b, '-')]
		byKey[k] = append(byKey[k], b)
	}
	for _, key := range r.keys[:3] {
		got := byKey[key]
		if !sort.StringsAreSorted(got) || len(got) < 60 {
			t.Fatalf("key %s: the carrier got %v, want its 60 messages in acceptance order", key, got)
		}
	}
}

// A node killed with SIGKILL under load: its keys and binds move to the
// others, and every message the fleet accepted reaches a final status.
// How long the moved keys took to accept again is logged (a figure for
// docs/benchmarks.md, not a timed assertion).
func TestFleetSurvivesKill9(t *testing.T) {
	r := newFleetRig(t, 3)
	stopLoad := r.startLoad()
	time.Sleep(2 * time.Second)
	victim := r.nodes[1]
	r.kill(victim)
	killed := time.Now()
	t.Logf("killed node %d at %s", victim.i, killed.Format("15:04:05.000"))
	back := r.untilEveryKeyAccepts(r.nodes[0], 30*time.Second)
	t.Logf("after kill -9 of a node, every key accepted again through a survivor within %v", back.Sub(killed).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	accepted, codes := stopLoad()
	statuses := r.waitFinal(accepted, 120*time.Second)
	t.Logf("accepted %d (answers %v), final %v, %d duplicates at the carrier", len(accepted), codes, statuses, r.duplicates())
	if len(accepted) < 100 {
		t.Fatalf("only %d messages accepted: the test did not load the fleet", len(accepted))
	}
}

// untilEveryKeyAccepts sends a message of each key through nd until each
// has been accepted, and returns when the last one was.
func (r *fleetRig) untilEveryKeyAccepts(nd *fleetNode, within time.Duration) time.Time {
	r.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(within)
	var last time.Time
	for _, key := range r.keys {
		for {
			t0 := time.Now()
			_, code := r.post(client, nd, key, "+447700900001", "probe-"+key)
			if os.Getenv("FLEET_DEBUG") != "" {
				r.t.Logf("probe %s: %d after %v (at %s)", key, code, time.Since(t0).Round(time.Millisecond), t0.Format("15:04:05.000"))
			}
			if code == 202 {
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("key %s not accepted through node %d within %v", key, nd.i, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		last = time.Now()
	}
	return last
}

// Under load through every node, every accepted message's final callback
// reaches its endpoint soon after the message is final, though the
// callbacks of one endpoint are written by every node (each records the
// outcomes of the keys it owns) and one node delivers them: a callback
// written by one node and landing after the delivering node read past a
// later one must not wait for that node's endpoint actor to go idle.
func TestFleetDeliversEveryCallback(t *testing.T) {
	r := newFleetRig(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted, codes := r.load(ctx, 32, 0)
	r.waitFinal(accepted, 60*time.Second)
	want := map[string]bool{}
	for _, s := range accepted {
		want[s.id] = true
	}
	final := func(evs []sink.Event) map[string]bool {
		got := map[string]bool{}
		for _, ev := range evs {
			if want[ev.MessageID] {
				got[ev.MessageID] = true
			}
		}
		return got
	}
	if !r.hooks.Wait(15*time.Second, func(evs []sink.Event) bool { return len(final(evs)) == len(want) }) {
		got := final(r.hooks.Events())
		var missing []string
		for id := range want {
			if !got[id] {
				missing = append(missing, id)
			}
		}
		t.Fatalf("%d of %d final messages have no callback 15 s after they were final (answers %v), e.g. %v",
			len(missing), len(want), codes, missing[:min(len(missing), 5)])
	}
	st := r.hooks.Stats()
	t.Logf("accepted %d (answers %v); callbacks: %+v", len(accepted), codes, st)
}

// A node paused with SIGSTOP for 10 s under load, then resumed: the others
// take its keys and binds meanwhile; it finds its leases gone and rejoins
// as a new member, so the fleet ends with one view (every node takes every
// key); every accepted message reaches a final status; and no key was
// committed by two owners: in each key's acceptance order, the fencing
// tokens the messages were written with never go down.
func TestFleetSurvivesPause(t *testing.T) {
	r := newFleetRig(t, 3)
	stopLoad := r.startLoad()
	time.Sleep(2 * time.Second)
	victim := r.nodes[2]
	r.pause(victim)
	time.Sleep(10 * time.Second)
	r.resume(victim)
	r.waitLog(victim, "rejoined the cluster as a new member", 60*time.Second)
	time.Sleep(time.Second)
	accepted, codes := stopLoad()
	for _, nd := range r.nodes {
		r.untilEveryKeyAccepts(nd, 60*time.Second)
	}
	statuses := r.waitFinal(accepted, 120*time.Second)
	t.Logf("accepted %d (answers %v), final %v, %d duplicates at the carrier", len(accepted), codes, statuses, r.duplicates())
	r.checkFences(accepted)
}

// checkFences reads the accepted messages back from the store and checks
// that, in each key's acceptance (ID) order, their fencing tokens never go
// down: a message accepted by an owner that had lost its key would carry a
// lower token than one accepted before it by the key's new owner.
func (r *fleetRig) checkFences(accepted []sent) {
	r.t.Helper()
	cql, _ := serversForCluster(r.t)
	st, err := scylla.New(scylla.Options{Hosts: []string{cql}, Keyspace: r.keyspace(), ReplicationFactor: 1, Consistency: "one"})
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := st.WaitReady(ctx); err != nil {
		r.t.Fatal(err)
	}
	byKey := map[string][]sent{}
	for _, s := range accepted {
		byKey[s.key] = append(byKey[s.key], s)
	}
	tokens := map[int64]bool{}
	for key, msgs := range byKey {
		sort.Slice(msgs, func(i, j int) bool { return msgs[i].id < msgs[j].id })
		var last int64
		var lastID string
		for _, s := range msgs {
			m, err := st.Message(ctx, s.id)
			if err != nil {
				r.t.Fatalf("message %s: %v", s.id, err)
			}
			if m.Fence == 0 {
				r.t.Fatalf("message %s of key %s was written without a fencing token", s.id, key)
			}
			if m.Fence < last {
				r.t.Fatalf("key %s: message %s has token %d, below %d of %s accepted before it: two owners committed", key, s.id, m.Fence, last, lastID)
			}
			tokens[m.Fence] = true
			last, lastID = m.Fence, s.id
		}
	}
	r.t.Logf("%d keys, %d distinct fencing tokens across their messages", len(byKey), len(tokens))
}

// Every node restarted in turn (SIGTERM, drained, started again) under
// load: nothing accepted is lost, and nodes that are up refuse nothing
// (requests wait for a key's hand-over; those a stopping owner did not
// take go to its successor); the p99 of accept latency during it is
// logged (a figure for docs/benchmarks.md).
func TestFleetRollingRestart(t *testing.T) {
	r := newFleetRig(t, 3)
	stopLoad := r.startLoad()
	time.Sleep(time.Second)
	for _, nd := range r.nodes {
		if err := nd.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		<-nd.exited
		r.start(nd)
		r.waitReady(nd, 60*time.Second)
		time.Sleep(time.Second)
	}
	accepted, codes := stopLoad()
	statuses := r.waitFinal(accepted, 120*time.Second)
	lat := make([]time.Duration, len(accepted))
	for i, s := range accepted {
		lat[i] = s.took
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))].Round(100 * time.Microsecond) }
	t.Logf("rolling restart: accepted %d (answers %v), final %v, %d duplicates; accept p50 %v, p99 %v, max %v",
		len(accepted), codes, statuses, r.duplicates(), p(0.5), p(0.99), p(1))
	// A node that is up accepts: its keys' hand-overs are waited for, and
	// what a stopping owner did not take goes to its successor. Only the
	// stopping node itself refuses (a load balancer's part), or is down.
	for answer, n := range codes {
		if answer != "202" && answer != "0" && !strings.HasPrefix(answer, "503 The server is shutting down") {
			t.Fatalf("%d requests answered %q by a node that was up (answers %v)", n, answer, codes)
		}
	}
}

// A node that joins the fleet is given keys only once it can serve them:
// the requests the others forward for the keys that move to it are never
// refused because it did not answer (it was placed the moment it gossiped,
// a second or more before it served). How many requests were refused
// while it joined, and why, is logged.
func TestFleetJoiningNodeIsGivenKeysOnceReady(t *testing.T) {
	r := newFleetRig(t, 3)
	joiner := r.nodes[2]
	if err := joiner.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-joiner.exited
	client := &http.Client{Timeout: 10 * time.Second}
	refused := map[string]int{}
	send := func() {
		for n, key := range r.keys {
			if _, code := r.post(client, r.nodes[n%2], key, "+447700900555", "join"); code != 202 {
				refused[fmt.Sprint(code)]++
			}
		}
	}
	for range 20 { // both nodes serve every key before the join
		send()
	}
	joined := make(chan struct{})
	go func() { r.start(joiner); r.waitReady(joiner, 60*time.Second); close(joined) }()
	rounds, reasons := 0, map[string]int{}
	for ; rounds < 100; rounds++ { // on for a while after it is ready: the keys move then
		select {
		case <-joined:
		default:
			rounds = 0
		}
		for n, key := range r.keys {
			s, code := r.post(client, r.nodes[n%2], key, "+447700900555", "join")
			if code != 202 {
				reasons[fmt.Sprintf("%d %s", code, s.refusal)]++
			}
		}
	}
	t.Logf("while a node joined: refused before %v, during %v", refused, reasons)
	for why := range reasons {
		if strings.Contains(why, "did not answer") {
			t.Fatalf("requests refused while a node joined: %v", reasons)
		}
	}
}

// A node whose cluster port is taken exits with the error that says so,
// not with a panic from stopping a cluster member that never started.
func TestFleetNodeWithItsPortTakenExitsWithAnError(t *testing.T) {
	cql, redis := serversForCluster(t)
	if testing.Short() {
		t.Skip("runs a node process")
	}
	dir := keptOnFailure(t)
	bin := buildBinary(t, dir)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	sim := testSim(t, smsc.Config{})
	keyspace := "fleet" + randomTag()
	t.Cleanup(func() { dropKeyspace(t, cql, keyspace) })
	a := nodeAddrs{gossip: freeLoopback(t), remote: taken.Addr().String(), http: "127.0.0.1:0", cql: cql, redis: redis, smsc: sim.Addr()}
	path := writeNodeConfig(t, dir, 0, a, keyspace, "sim", []string{a.gossip}, "  - {id: k, secret: secret-for-key-k, rate: 100, burst: 100}\n")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("the node did not exit with an error (%v); output:\n%s", err, out)
	}
	if bytes.Contains(out, []byte("panic:")) {
		t.Fatalf("the node panicked:\n%s", out)
	}
	if !bytes.Contains(out, []byte("join the cluster")) || !bytes.Contains(out, []byte(taken.Addr().String())) {
		t.Fatalf("the node's error does not say it could not join at %s:\n%s", taken.Addr(), out)
	}
}

// Each node's queue lag counts the pending messages of the keys it owns,
// so the fleet's sum is the fleet's backlog and each node's share is its
// own (the autoscaler's signal): a node that starts does not count the
// whole store's, keys that move are counted where they go, and once the
// carrier takes everything every node shows 0.
func TestFleetQueueLagCountsOwnedKeys(t *testing.T) {
	r := newFleetRig(t, 2)
	// Every submit is throttled: messages stay queued, binds stay up (a
	// node without a bound bind is not ready and is given no keys).
	r.sim.SetFaults(smsc.Faults{ThrottleEvery: 1})
	client := &http.Client{Timeout: 10 * time.Second}
	var accepted []sent
	// Each message is sent until it is accepted: keys move between the
	// nodes around the restart, and a request may be refused meanwhile.
	post := func(n int, through ...*fleetNode) {
		for i := range n {
			for _, key := range r.keys {
				body := fmt.Sprintf("lag-%s-%d-%d", key, len(accepted), i)
				deadline := time.Now().Add(30 * time.Second)
				for {
					s, code := r.post(client, through[i%len(through)], key, "+447700900555", body)
					if code == 202 {
						accepted = append(accepted, s)
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("message of %s not accepted within 30 s: %d %s", key, code, s.refusal)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
	}
	lags := func() []int64 {
		out := make([]int64, len(r.nodes))
		for i, nd := range r.nodes {
			out[i] = -1
			if a := nd.admin.Load(); a != nil {
				out[i] = queueLag(*a)
			}
		}
		return out
	}
	waitLag := func(what string, ok func([]int64) bool) {
		t.Helper()
		if !waitFor(60*time.Second, func() bool { return ok(lags()) }) {
			t.Fatalf("%s: queue lag per node %v (%d accepted)", what, lags(), len(accepted))
		}
	}
	sumIs := func(want int) func([]int64) bool {
		return func(l []int64) bool { return l[0] >= 0 && l[1] >= 0 && l[0]+l[1] == int64(want) }
	}
	post(5, r.nodes...)
	waitLag("30 queued", sumIs(len(accepted)))

	// Node 1 restarts: it must not count node 0's keys, nor node 0 go on
	// counting the keys that come back to node 1.
	restarted := r.nodes[1]
	if err := restarted.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-restarted.exited
	post(5, r.nodes[0]) // node 0 owns every key meanwhile
	r.start(restarted)
	r.waitReady(restarted, 60*time.Second)
	post(5, r.nodes...)
	waitLag("90 queued after a restart", sumIs(len(accepted)))

	r.sim.SetFaults(smsc.Faults{})
	r.waitFinal(accepted, 120*time.Second)
	waitLag("every message submitted", func(l []int64) bool { return l[0] == 0 && l[1] == 0 })
}

// queueLag sums switchboard_queue_lag_messages from a node's /metrics;
// -1 if it cannot be read.
func queueLag(admin string) int64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var n int64
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, value, ok := strings.Cut(lines.Text(), " ")
		if !ok || !strings.HasPrefix(name, "switchboard_queue_lag_messages{") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return -1
		}
		n += int64(v)
	}
	return n
}
