package http

import (
	"bufio"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	helperAddrEnv = "SWITCHBOARD_HTTP_IDLE_HELPER_ADDR"
	helperConnEnv = "SWITCHBOARD_HTTP_IDLE_HELPER_CONNS"
)

// TestIdleConnections holds 10,000 keep-alive connections open on the
// server, each after one request, and checks the server still answers,
// with idle buffers kept (the default) and released. Releasing them must
// show in the heap: it is the setting's only reason to exist.
// The client side runs in a child process (this test binary, running
// TestIdleClientsHelper), because client and server in one process would
// need twice the file descriptors.
func TestIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 connections")
	}
	conns := 10000
	if raceEnabled {
		conns = 4000
		t.Logf("the race detector allows 8128 goroutines: holding %d connections; run without -race for 10,000", conns)
	}
	if err := raiseFileLimit(uint64(conns + 1000)); err != nil {
		t.Skipf("cannot hold %d connections: %v", conns, err)
	}
	// Subtests, so that each server is shut down (with its goroutines)
	// before the next starts.
	var kept, released uint64
	t.Run("kept", func(t *testing.T) { kept = holdIdle(t, conns, false) })
	t.Run("released", func(t *testing.T) { released = holdIdle(t, conns, true) })
	if t.Failed() {
		return
	}
	if released >= kept {
		t.Errorf("heap with idle buffers released %d MiB, kept %d MiB: want less", released>>20, kept>>20)
	}
}

// holdIdle runs one server while the helper holds conns idle connections
// on it, and returns the heap in use meanwhile.
func holdIdle(t *testing.T, conns int, release bool) (heap uint64) {
	ts := newTestServer(t, func(c *Config) { c.ReadTimeout, c.ReleaseIdleBuffers = time.Minute, release })
	helper := exec.Command(os.Args[0], "-test.run=^TestIdleClientsHelper$", "-test.v")
	helper.Env = append(os.Environ(), helperAddrEnv+"="+strings.TrimPrefix(ts.url, "http://"), helperConnEnv+"="+strconv.Itoa(conns))
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Wait()
	defer stdin.Close() // the helper closes its connections and exits
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "ready ") {
			ready = true
			break
		}
		if strings.HasPrefix(line, "skip ") {
			t.Skip(line)
		}
		if strings.HasPrefix(line, "failed ") {
			t.Fatal(line)
		}
	}
	if !ready {
		t.Fatal("helper ended before its connections were ready")
	}
	go io.Copy(io.Discard, stdout)
	runtime.GC() // twice: pooled buffers of an earlier server survive one
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	t.Logf("release idle buffers %v: holding %d connections: heap in use %d MiB, stacks %d MiB, goroutines %d",
		release, ts.srv.GetOpenConnectionsCount(), mem.HeapInuse>>20, mem.StackInuse>>20, runtime.NumGoroutine())
	if open := ts.srv.GetOpenConnectionsCount(); open < int32(conns) {
		t.Errorf("server holds %d connections, want at least %d", open, conns)
	}
	for range 50 {
		resp, body := ts.do(t, "POST", "/v1/messages", validBody)
		if resp.StatusCode != 202 {
			t.Fatalf("with %d idle connections: %d %s", conns, resp.StatusCode, body)
		}
	}
	stdin.Close()
	if err := helper.Wait(); err != nil {
		t.Errorf("helper: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ts.srv.GetOpenConnectionsCount() > 10 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if open := ts.srv.GetOpenConnectionsCount(); open > 10 {
		t.Errorf("%d connections still open after the clients left", open)
	}
	if resp, _ := ts.do(t, "GET", "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	return mem.HeapInuse
}

// TestIdleClientsHelper is the client side of TestIdleConnections, run in
// a child process: it opens the connections, makes one request on each,
// reports "ready" and holds them until its stdin closes.
func TestIdleClientsHelper(t *testing.T) {
	addr := os.Getenv(helperAddrEnv)
	if addr == "" {
		t.Skip("the child process of TestIdleConnections")
	}
	n, _ := strconv.Atoi(os.Getenv(helperConnEnv))
	if err := raiseFileLimit(uint64(n + 100)); err != nil {
		fmt.Printf("skip cannot open %d connections: %v\n", n, err)
		return
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := dialRetry(addr)
		if err != nil {
			fmt.Printf("failed dial %d: %v\n", i, err)
			return
		}
		conns = append(conns, c)
		if err := healthz(c); err != nil {
			fmt.Printf("failed request on connection %d: %v\n", i, err)
			return
		}
	}
	fmt.Printf("ready %d\n", len(conns))
	io.Copy(io.Discard, os.Stdin)
}

func dialRetry(addr string) (net.Conn, error) {
	var err error
	for range 5 {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			return c, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

func healthz(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to at least n, up to the
// hard limit (Go raises the soft limit at start already, on Linux).
func raiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		return fmt.Errorf("RLIMIT_NOFILE hard limit is %d", lim.Max)
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
