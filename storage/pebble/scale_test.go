package pebble_test

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// TestMillionPending holds the store to the gateway's memory budget: a
// million pending messages on disk with the process under 512 MiB RSS, and
// recovery (PendingKeys, then paging every key's pending messages) still
// working. It takes a minute, so it runs only with
// SWITCHBOARD_PEBBLE_MILLION=1.
func TestMillionPending(t *testing.T) {
	if os.Getenv("SWITCHBOARD_PEBBLE_MILLION") == "" {
		t.Skip("set SWITCHBOARD_PEBBLE_MILLION=1 to run")
	}
	const total, batch, keys, workers = 1_000_000, 500, 20, 8
	s, err := pebble.Open(t.TempDir(), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	start := time.Now()
	g := newIDs()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			msgs := make([]sb.NewMessage, batch)
			for n := w * batch; n < total; n += workers * batch {
				for i := range msgs {
					msgs[i] = sb.NewMessage{Message: newMessage(g.next(), fmt.Sprintf("key-%d", (n+i)%keys))}
				}
				if err := s.Accept(t.Context(), msgs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("accepted %d in %v, peak RSS %d MiB", total, time.Since(start).Round(time.Millisecond), peakRSS()>>20)

	start = time.Now()
	found := recoverAll(t, s)
	if found != total {
		t.Fatalf("recovery found %d pending messages, want %d", found, total)
	}
	t.Logf("paged %d pending in %v, peak RSS %d MiB", found, time.Since(start).Round(time.Millisecond), peakRSS()>>20)
	if rss := peakRSS(); rss > 512<<20 {
		t.Fatalf("peak RSS %d MiB, budget 512 MiB", rss>>20)
	}
}

// recoverAll does what the engine does on start: list the keys with
// pending messages and page through each.
func recoverAll(t *testing.T, s *pebble.Store) int {
	keys, err := s.PendingKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, k := range keys {
		after := ""
		for {
			page, err := s.Pending(t.Context(), k, after, "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			found += len(page)
			after = page[len(page)-1].ID
		}
	}
	return found
}

// peakRSS returns the process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Maxrss << 10 // kilobytes on Linux
}
