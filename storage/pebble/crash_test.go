package pebble_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// crashDirEnv switches the test binary into the child role of
// TestCrashDurability, storing in the directory it names.
const crashDirEnv = "SWITCHBOARD_PEBBLE_CRASH_DIR"

// TestCrashDurability kills a process that is accepting messages with
// SIGKILL and checks that every message whose Accept had returned is there
// after reopening. The child prints each ID once Accept returns; the parent
// kills it mid-stream. This proves no acknowledged write waits in user
// space; a power cut, which also loses the page cache, is what the fsync
// guards against and cannot be simulated here.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := readAcked(t, cmd, out)
	if len(acked) == 0 {
		t.Fatal("the child acknowledged no message")
	}

	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Message(t.Context(), id); err != nil {
			t.Fatalf("acknowledged message %s lost: %v", id, err)
		}
	}
	t.Logf("%d acknowledged messages all found after SIGKILL", len(acked))
}

// readAcked reads acknowledged IDs until it has enough, kills the child,
// then reads what the child wrote before it died. A line cut short by the
// kill is not an acknowledgement.
func readAcked(t *testing.T, cmd *exec.Cmd, out io.Reader) []string {
	t.Helper()
	const enough = 3000
	r := bufio.NewReader(out)
	var acked []string
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for killed := false; ; {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		if id, ok := strings.CutSuffix(line, "\n"); ok && strings.HasPrefix(id, "msg_") {
			acked = append(acked, id)
		}
		if len(acked) >= enough && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill: %v", err)
			}
			killed = true
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited by itself")
	}
	return acked
}

// crashChild accepts messages from 16 goroutines until it is killed,
// printing each ID after its Accept returned. It gives up after a minute so
// an orphan cannot run forever.
func crashChild(dir string) {
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	g := newIDs()
	var mu sync.Mutex // one write per line, so lines do not interleave
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				m := newMessage(g.next(), "demo")
				if err := s.Accept(context.Background(), []sb.NewMessage{{Message: m}}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(os.Stdout, m.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
