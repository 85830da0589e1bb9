package pebble

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

func rss() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss >> 10
}

func TestTmpMem(t *testing.T) {
	s, err := Open(t.TempDir(), Options{CacheSize: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := strings.Repeat("x", 160)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			msgs := make([]sb.NewMessage, 500)
			for n := w * 500; n < 1000000; n += 8 * 500 {
				for i := range msgs {
					at := time.Now()
					msgs[i] = sb.NewMessage{Message: &sb.Message{ID: fmt.Sprintf("msg_%020d", n+i), Key: fmt.Sprintf("key-%d", (n+i)%20), Body: body, Status: sb.StatusAccepted, AcceptedAt: at, Events: []sb.Event{{Status: sb.StatusAccepted, At: at}}}}
				}
				if err := s.Accept(t.Context(), msgs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	report := func(stage string) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		m := s.db.Metrics()
		t.Logf("%s: maxrss %d MiB, heap inuse %d MiB sys %d MiB, cache %d MiB, memtables %d MiB", stage, rss(), ms.HeapInuse>>20, ms.Sys>>20, m.BlockCache.Size>>20, m.MemTable.Size>>20)
	}
	report("accepted")
	keys, _ := s.PendingKeys(t.Context())
	for i, k := range keys {
		after := ""
		for {
			page, err := s.Pending(t.Context(), k, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].ID
		}
		if i%5 == 0 {
			report("paged " + k)
		}
	}
	report("paged")
}
