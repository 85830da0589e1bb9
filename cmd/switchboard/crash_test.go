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
	bin := filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var mu sync.Mutex
	submits := map[string]int{}
	sim := testSim(t, smsc.Config{
		Faults:   smsc.Faults{Latency: smsc.Delay{Min: time.Millisecond, Max: 3 * time.Millisecond}},
		OnSubmit: func(s smsc.Submit) { mu.Lock(); submits[string(s.Data)]++; mu.Unlock() },
	})
	const binds, window = 2, 64
	cfg := fmt.Sprintf(`
node: {http: "127.0.0.1:0", admin: "127.0.0.1:0", data_dir: %q}
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
	g := &gateway{addr: addr}
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
	go func() { _ = proc.Wait(); stop() }()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return ids
}
