package harness

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lockedBuffer collects a run's output: progress lines, the simulator's
// log and a gateway subprocess's stderr are written from several
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// queueArgs are a small --queue run's: few keys, and a reconnect backoff
// capped at 1 s so the carrier is back within a second of SetFaults({}).
// The bounds only end a broken run.
func queueArgs(n int, more ...string) []string {
	return append([]string{"--queue", strconv.Itoa(n), "--keys", "5", "--reconnect-max", "1s",
		"--accept-for", "60s", "--drain", "60s"}, more...)
}

// runBench runs the driver's Main and returns its exit status and
// report; Main returns once the run and its cleanups are done.
func runBench(t *testing.T, args []string) (int, string) {
	t.Helper()
	var out, errOut lockedBuffer
	code := Main(args, &out, &errOut)
	if code != 0 {
		t.Logf("stderr:\n%s", errOut.String())
	}
	return code, out.String()
}

// checkQueueReport checks a --queue N run's report: exit 0, every part
// receipted (one part a message), and the gateway's memory with N queued
// and peak during the drain positive and, for the binary, said to be its
// process's alone.
func checkQueueReport(t *testing.T, code int, out string, n int, bin bool) {
	t.Helper()
	if code != 0 {
		t.Fatalf("exit status %d\n%s", code, out)
	}
	if want := "drain: all " + strconv.Itoa(n) + " parts receipted"; !strings.Contains(out, want) {
		t.Errorf("no %q in the report\n%s", want, out)
	}
	for _, re := range []string{
		`memory with ` + strconv.Itoa(n) + ` queued \(([^)]*)\): RSS (\d+) MB`,
		`drain: peak RSS ()(\d+) MB( \(the gateway process alone\))?; cpu`,
	} {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("no line matching %s\n%s", re, out)
			continue
		}
		if mb, _ := strconv.Atoi(m[2]); mb <= 0 {
			t.Errorf("%q: want a positive RSS", m[0])
		}
		if alone := strings.Contains(m[0], "the gateway process alone"); alone != bin {
			t.Errorf("%q: says it is the gateway process's alone: %v, want %v", m[0], alone, bin)
		}
	}
}

// --queue with the in-process node: the memory figures are this process's.
func TestQueueInProcess(t *testing.T) {
	code, out := runBench(t, queueArgs(2000))
	checkQueueReport(t, code, out, 2000, false)
}

// --queue against the gateway binary: the simulator refuses binds while
// the binary accepts, then every part's receipt is acknowledged, the
// memory figures are the child's alone, and the child is stopped by the
// time Main returns.
func TestQueueGatewayBin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway binary")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the gateway with")
	}
	code, out := runBench(t, queueArgs(3000, "--gateway-bin", "build"))
	checkQueueReport(t, code, out, 3000, true)
	m := regexp.MustCompile(`\(pid (\d+)\) up on`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the report names no gateway pid\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the gateway (pid %d) is still there after the run: %v", pid, err)
	}
}
