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

// TestCrashDurability kills a process that is accepting messages and
// recording their submits, each with a callback, with SIGKILL, and checks
// that every message whose Accept had returned, and every callback whose
// Record had returned, is there after reopening; and that a message is
// submitted exactly when its callback is queued, as both are one write.
// The child prints each ID once its write returns; the parent kills it
// mid-stream. This proves no acknowledged write waits in user
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
	acked, events := readAcked(t, cmd, out)
	if len(acked) == 0 || len(events) == 0 {
		t.Fatalf("the child acknowledged %d messages and %d callbacks", len(acked), len(events))
	}

	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	queued := allCallbacks(t, s, crashEndpoint)
	for _, id := range events {
		if !queued[id] {
			t.Fatalf("acknowledged callback %s lost", id)
		}
	}
	submitted := 0
	for _, id := range acked {
		m, err := s.Message(t.Context(), id)
		if err != nil {
			t.Fatalf("acknowledged message %s lost: %v", id, err)
		}
		if isSubmitted, hasCallback := m.Status == sb.StatusSubmitted, queued[eventID(id)]; isSubmitted != hasCallback {
			t.Fatalf("message %s: status %s, callback queued %v", id, m.Status, hasCallback)
		}
		if m.Status == sb.StatusSubmitted {
			submitted++
		}
	}
	if len(queued) != submitted {
		t.Fatalf("%d callbacks queued for %d submitted messages", len(queued), submitted)
	}
	t.Logf("%d acknowledged messages and %d callbacks all found after SIGKILL", len(acked), len(events))
}

// crashEndpoint is where the child's callbacks go.
const (
	crashURL      = "https://hooks.example.com/sms"
	crashEndpoint = "https://hooks.example.com:443"
)

// eventID is the ID of the callback about a message's submit.
func eventID(messageID string) string { return "evt_" + strings.TrimPrefix(messageID, "msg_") }

// allCallbacks returns the IDs of every callback queued for endpoint.
func allCallbacks(t *testing.T, s *pebble.Store, endpoint string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for after := ""; ; {
		page, err := s.Callbacks(t.Context(), endpoint, after, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return ids
		}
		for _, cb := range page {
			ids[cb.ID] = true
		}
		after = page[len(page)-1].ID
	}
}

// readAcked reads acknowledged IDs (messages and callbacks) until it has
// enough, kills the child, then reads what the child wrote before it died.
// A line cut short by the kill is not an acknowledgement.
func readAcked(t *testing.T, cmd *exec.Cmd, out io.Reader) (acked, events []string) {
	t.Helper()
	const enough = 3000
	r := bufio.NewReader(out)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for killed := false; ; {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		id, ok := strings.CutSuffix(line, "\n")
		switch {
		case ok && strings.HasPrefix(id, "msg_"):
			acked = append(acked, id)
		case ok && strings.HasPrefix(id, "evt_"):
			events = append(events, id)
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
	return acked, events
}

// crashChild accepts messages from 16 goroutines until it is killed,
// printing each ID after its Accept returned, then records each one's
// submit with a Notify, printing the callback's ID after Record returned.
// It gives up after a minute so an orphan cannot run forever.
func crashChild(dir string) {
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	g := newIDs()
	var mu sync.Mutex // one write per line, so lines do not interleave
	ack := func(id string) {
		mu.Lock()
		fmt.Fprintln(os.Stdout, id)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				m := newMessage(g.next(), "demo")
				if err := s.Accept(context.Background(), []sb.NewMessage{{Message: m}}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				ack(m.ID)
				n := &sb.Notify{EventID: eventID(m.ID), DefaultURL: crashURL, Statuses: sb.DefaultCallbackStatuses, At: time.Now()}
				_, err := s.Record(context.Background(), []sb.Update{{MessageID: m.ID, Notify: n,
					Transition: sb.Transition{Event: sb.Event{Status: sb.StatusSubmitted, At: time.Now(), Carrier: "sandbox"},
						Part: -1, CarrierIDs: []string{"c" + m.ID[4:]}}}})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				ack(n.EventID)
			}
		})
	}
	wg.Wait()
}
