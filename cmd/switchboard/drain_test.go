package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// TestDrainOnSIGTERM runs the real binary and stops it with SIGTERM: for
// the drain period it still answers, new API requests with 503 and
// Retry-After (never a refused or reset connection), /readyz with 503 and
// /healthz with 200; then it stops on its own and exits 0. A second
// SIGTERM ends a long drain at once.
func TestDrainOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	sim := testSim(t, smsc.Config{})
	start := func(t *testing.T, drain string) (*binaryProc, string) {
		t.Helper()
		sub := t.TempDir()
		cfg := fmt.Sprintf(`
node: {http: "127.0.0.1:0", admin: "127.0.0.1:0", data_dir: %q, drain_period: %s, shutdown_timeout: 10s}
log: {level: warn, format: json}
carriers:
  - {name: sim, host: %q, system_id: gw, password: pw}
routes:
  - {prefix: "", carriers: [sim]}
keys:
  - {id: drain, secret: %q, rate: 1000}
`, filepath.Join(sub, "data"), drain, sim.Addr(), testSecret)
		path := filepath.Join(sub, "cluster.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, addr := startBinary(t, bin, path)
		p := &binaryProc{done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		p.signal = func(s syscall.Signal) {
			if err := cmd.Process.Signal(s); err != nil {
				t.Fatal(err)
			}
		}
		r := call(t, "POST", "http://"+addr+"/v1/messages", map[string]any{"to": "+447700900123", "from": "Acme", "body": "before the stop"})
		if r.status != 202 {
			t.Fatalf("before the stop: %d %v", r.status, r.body)
		}
		return p, addr
	}
	// draining waits for the first 503, then checks what the node answers.
	draining := func(t *testing.T, p *binaryProc, addr string) {
		t.Helper()
		client := &http.Client{Timeout: 5 * time.Second}
		deadline := time.Now().Add(10 * time.Second)
		for {
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/messages", strings.NewReader(`{"to":"+447700900123","from":"Acme","body":"during"}`))
			req.Header.Set("Authorization", "Bearer "+testSecret)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("a request after SIGTERM got no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode == 503 {
				if ra := resp.Header.Get("Retry-After"); ra != "1" {
					t.Errorf("Retry-After %q, want 1", ra)
				}
				if !resp.Close {
					t.Error("the connection stays open after a drain's 503")
				}
				break
			}
			if resp.StatusCode != 202 || time.Now().After(deadline) {
				t.Fatalf("after SIGTERM: %d, want 202 until the drain starts, then 503", resp.StatusCode)
			}
		}
		r := call(t, "POST", "http://"+addr+"/v1/messages", map[string]any{"to": "+447700900123", "from": "Acme", "body": "x"})
		if r.status != 503 || errorCode(r) != "unavailable" {
			t.Errorf("during the drain: %d %v", r.status, r.body)
		}
		if r := call(t, "GET", "http://"+addr+"/readyz", nil); r.status != 503 {
			t.Errorf("readyz during the drain: %d", r.status)
		}
		if r := call(t, "GET", "http://"+addr+"/healthz", nil); r.status != 200 {
			t.Errorf("healthz during the drain: %d", r.status)
		}
		select {
		case err := <-p.done:
			t.Fatalf("exited during the drain: %v", err)
		default:
		}
	}

	t.Run("drain period ends", func(t *testing.T) {
		p, addr := start(t, "2s")
		p.signal(syscall.SIGTERM)
		draining(t, p, addr)
		if err := <-p.done; err != nil {
			t.Fatalf("exit after the drain: %v", err)
		}
	})
	t.Run("second signal", func(t *testing.T) {
		p, addr := start(t, "10m")
		p.signal(syscall.SIGTERM)
		draining(t, p, addr)
		p.signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("exit after the second signal: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a second SIGTERM did not end the 10-minute drain")
		}
	})
}

// binaryProc is a running gateway binary: done receives Wait's result.
type binaryProc struct {
	done   chan error
	signal func(syscall.Signal)
}
