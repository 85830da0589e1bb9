package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/sink"
)

// TestKill9LosesNothing builds the real binary, sends messages to it,
// kills it with SIGKILL mid-flow, starts it again on the same data, and
// checks that every message that got a 202 reaches a final status. The
// carrier (a simulator in this test process) survives the crash, as a real
// SMSC would, and keeps receipts for the gateway until it binds again.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and crashes the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	var mu sync.Mutex
	submits := map[string]int{}
	sim := testSim(t, smsc.Config{
		Faults:   smsc.Faults{Latency: smsc.Delay{Min: time.Millisecond, Max: 3 * time.Millisecond}},
		OnSubmit: func(s smsc.Submit) { mu.Lock(); submits[string(s.Data)]++; mu.Unlock() },
	})
	const binds, window = 2, 64
	cfg := fmt.Sprintf(`
node: {http: "127.0.0.1:0", admin: "127.0.0.1:0", data_dir: %q, drain_period: 100ms}
log: {level: warn, format: json}
carriers:
  - {name: sim, host: %q, system_id: gw, password: pw, binds: %d, window: %d, reconnect_min: 10ms, reconnect_max: 200ms}
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: crash, secret: %q, rate: 100000, burst: 100000}
`, filepath.Join(dir, "data"), sim.Addr(), binds, window, testSecret)
	cfgPath := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	proc, addr := startBinary(t, bin, cfgPath)
	accepted := sendUntilKilled(t, addr, proc, 400)
	t.Logf("%d messages accepted before kill -9", len(accepted))

	proc, addr = startBinary(t, bin, cfgPath)
	g := processAddr(addr)
	for _, id := range accepted {
		waitStatus(t, g, id, "delivered")
	}
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("graceful stop after the restart: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, n := range submits {
		dups += n - 1
	}
	t.Logf("%d distinct messages reached the carrier, %d duplicates", len(submits), dups)
	if dups > binds*window {
		t.Fatalf("%d duplicates, more than the in-flight window (%d)", dups, binds*window)
	}
}

// buildBinary builds the gateway into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs the gateway and returns once it prints its address.
func startBinary(t *testing.T, bin, cfgPath string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "listening on http://"); ok {
			go func() { // keep draining stdout so the child never blocks on it
				for lines.Scan() {
				}
			}()
			return cmd, strings.TrimSpace(rest)
		}
	}
	t.Fatal("the gateway exited before printing its address")
	return nil, ""
}

// sendUntilKilled sends messages from 8 workers and kills the process with
// SIGKILL once `after` have been accepted; it returns the accepted ids.
func sendUntilKilled(t *testing.T, addr string, proc *exec.Cmd, after int) []string {
	t.Helper()
	var (
		mu       sync.Mutex
		ids      []string
		n        atomic.Int64
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := n.Add(1)
				body := fmt.Sprintf(`{"to":"+4477009%05d","from":"Crash","body":"crash-%d"}`, i%50, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/messages", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testSecret)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the process is gone
				}
				var out struct{ ID string }
				if resp.StatusCode == 202 {
					_ = jsonDecode(resp, &out)
				}
				resp.Body.Close()
				if out.ID == "" {
					continue
				}
				mu.Lock()
				ids = append(ids, out.ID)
				done := len(ids) >= after
				mu.Unlock()
				if done {
					killOnce.Do(func() { _ = proc.Process.Kill() })
				}
			}
		}()
	}
	exited := make(chan struct{})
	go func() { _ = proc.Wait(); stop(); close(exited) }()
	wg.Wait()
	// Every worker has stopped, so the process is gone or nothing can
	// reach it: kill it either way, and wait for Wait to have recorded its
	// state before the cleanup reads it.
	killOnce.Do(func() { _ = proc.Process.Kill() })
	<-exited
	mu.Lock()
	defer mu.Unlock()
	return ids
}

// TestKill9KeepsCallbacks kills the real binary while 10,000 callbacks
// wait for a receiver that answers 503, restarts it, and checks that the
// receiver, now healthy, gets every one of them: the outbox is durable.
// Once with one event per request, once with a key that batches.
func TestKill9KeepsCallbacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and crashes the binary")
	}
	bin := buildBinary(t, t.TempDir())
	for _, batch := range []int{1, 100} {
		t.Run(fmt.Sprintf("callback_batch %d", batch), func(t *testing.T) { testKill9KeepsCallbacks(t, bin, batch) })
	}
}

func testKill9KeepsCallbacks(t *testing.T, bin string, batch int) {
	dir := t.TempDir()
	sim := testSim(t, smsc.Config{})
	var healthy atomic.Bool
	s := startSink(t, sink.Options{Verify: verifier(testWebhookSecret), Respond: func(sink.Event) sink.Answer {
		if healthy.Load() {
			return sink.Answer{Status: http.StatusNoContent}
		}
		return sink.Answer{Status: http.StatusServiceUnavailable}
	}})
	cfg := fmt.Sprintf(`
node: {http: "127.0.0.1:0", admin: "127.0.0.1:0", data_dir: %q, drain_period: 100ms}
log: {level: error, format: json}
carriers:
  - {name: sim, host: %q, system_id: gw, password: pw, binds: 2, window: 64}
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: crash, secret: %q, rate: 100000, burst: 100000, callback_url: %q, webhook_secret: %q, callback_batch: %d}
webhooks: {allow_private_networks: true, retry_min: 100ms, retry_max: 1s}
`, filepath.Join(dir, "data"), sim.Addr(), testSecret, s.URL()+"/hook", testWebhookSecret, batch)
	cfgPath := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, addr := startBinary(t, bin, cfgPath)
	const messages = 5000 // a submitted and a delivered callback each
	for b := range messages / 1000 {
		msgs := make([]map[string]any, 1000)
		for i := range msgs {
			msgs[i] = map[string]any{"to": fmt.Sprintf("+4477009%05d", i), "from": "Crash", "body": fmt.Sprintf("cb-%d-%d", b, i)}
		}
		if r := call(t, "POST", "http://"+addr+"/v1/messages/batch", map[string]any{"messages": msgs}); r.status != 202 {
			t.Fatalf("batch: %d %v", r.status, r.body)
		}
	}
	// Every receipt acknowledged means every final status stored, and
	// its callbacks with it.
	deadline := time.Now().Add(60 * time.Second)
	for sim.Stats().ReceiptsSent["DELIVRD"] < messages {
		if time.Now().After(deadline) {
			t.Fatalf("simulator %+v: not every receipt was acknowledged", sim.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	if got := s.Stats().Events; got != 0 {
		t.Fatalf("%d events accepted before the kill, want 0 (the receiver answered 503)", got)
	}

	healthy.Store(true)
	proc, _ = startBinary(t, bin, cfgPath)
	if !s.Wait(60*time.Second, func(evs []sink.Event) bool { return len(evs) >= 2*messages }) {
		t.Fatalf("after the restart the receiver got %d of %d callbacks", s.Stats().Events, 2*messages)
	}
	st := s.Stats()
	if st.OutOfOrder != 0 || st.BadSig != 0 {
		t.Errorf("receiver %+v: want every message's events in order and signed", st)
	}
	if batched := st.Batches == st.Requests; batched != (batch > 1) {
		t.Errorf("receiver %+v: with callback_batch %d want batches %v", st, batch, batch > 1)
	}
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("graceful stop after the restart: %v", err)
	}
}
