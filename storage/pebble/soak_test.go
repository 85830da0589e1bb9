package pebble_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// TestRetentionSoak runs a steady load through the whole life of a message
// (accepted with an idempotency key, submitted, a receipt parked before
// its submit for some, delivered with a callback, the callback finished)
// against a store with a one-day TTL on a clock that runs a simulated day
// every two seconds, and measures the data directory: once retention
// starts deleting, it stops growing. It prints the sizes.
func TestRetentionSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s soak")
	}
	const (
		run      = 20 * time.Second
		speed    = 43200 // simulated seconds per real second: a day in 2 s
		batch    = 20
		interval = 10 * time.Millisecond // batch every 10 ms: 2,000 messages/s
	)
	start := time.Now()
	clock := func() time.Time { return start.Add(time.Since(start) * speed).UTC() }
	dir := t.TempDir()
	s, err := pebble.Open(dir, pebble.Options{Now: clock, TTL: 24 * time.Hour, CarrierIDGrace: time.Hour,
		HousekeepingInterval: 100 * time.Millisecond, MemTableSize: 1 << 20, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(t.Context(), run)
	defer cancel()
	var (
		written atomic.Int64
		wg      sync.WaitGroup
		g       = newIDs()
	)
	wg.Go(func() { soakLoad(ctx, t, s, g, clock, batch, interval, &written) })
	wg.Go(func() { soakFinishCallbacks(ctx, t, s) })

	var samples []sample
	tick := time.NewTicker(time.Second)
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			done = true
		}
		samples = append(samples, sample{time.Since(start).Round(time.Second), dirSize(t, dir), written.Load()})
	}
	tick.Stop()
	wg.Wait()
	for _, sm := range samples {
		t.Logf("%4v  %6.1f MiB  %7d messages written", sm.at, float64(sm.bytes)/(1<<20), sm.msgs)
	}
	t.Logf("at the end: %s", filesBySuffix(t, dir))
	// Messages live one to two simulated days (2-4 s real), so from about
	// 6 s on the directory holds what retention keeps, the write-ahead
	// log, and what the storage engine has not compacted away yet, which
	// comes and goes; medians see through that. Without retention the
	// directory grows by what the load writes, 0.4-0.5 MiB/s on the
	// development machine: a third more from one window to the next.
	middle := medianBytes(samples, 7*time.Second, 13*time.Second)
	last := medianBytes(samples, 14*time.Second, run+time.Second)
	total := written.Load()
	t.Logf("%d messages in %v; median directory %.1f MiB from 7 s to 13 s, %.1f MiB from 14 s",
		total, run, float64(middle)/(1<<20), float64(last)/(1<<20))
	if total < 1_000 { // a shared machine under -race wrote 3,800
		t.Fatalf("only %d messages written: the load did not run", total)
	}
	if last > middle*6/5+512<<10 {
		t.Fatalf("the data directory grew from %d to %d bytes under steady load: retention does not keep up", middle, last)
	}
}

// medianBytes is the median size sampled in [from, to).
func medianBytes(samples []sample, from, to time.Duration) int64 {
	var sizes []int64
	for _, sm := range samples {
		if sm.at >= from && sm.at < to {
			sizes = append(sizes, sm.bytes)
		}
	}
	if len(sizes) == 0 {
		return 0
	}
	slices.Sort(sizes)
	return sizes[len(sizes)/2]
}

// sample is one measurement of the data directory.
type sample struct {
	at    time.Duration
	bytes int64
	msgs  int64
}

// soakLoad writes a batch of messages every interval until ctx ends: each
// accepted, submitted (every fourth after a receipt for it was parked)
// and delivered with a callback.
func soakLoad(ctx context.Context, t *testing.T, s *pebble.Store, g *ids, clock func() time.Time,
	batch int, interval time.Duration, written *atomic.Int64) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		now := clock()
		news := make([]sb.NewMessage, batch)
		var early, updates []sb.Update
		for i := range news {
			m := newMessage(g.next(), fmt.Sprintf("key-%d", i%4))
			m.AcceptedAt, m.UpdatedAt, m.Events[0].At = now, now, now
			m.CallbackURL = "https://hooks.example.com/sms"
			m.Body = randomBody() // as incompressible as real traffic, so sizes mean something
			news[i] = sb.NewMessage{Message: m, IdempotencyKey: m.ID}
			cid := "c" + m.ID[4:]
			receipt := sb.Transition{Event: sb.Event{Status: sb.StatusDelivered, At: now}}
			if i%4 == 0 {
				early = append(early, sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "x", ID: cid},
					ParkUntil: now.Add(time.Hour), Transition: receipt})
			}
			updates = append(updates, sb.Update{MessageID: m.ID, Transition: sb.Transition{
				Event: sb.Event{Status: sb.StatusSubmitted, At: now, Carrier: "x"}, Part: -1,
				CarrierIDs: []string{cid}, ReceiptDue: now.Add(72 * time.Hour)}})
			if i%4 != 0 {
				updates = append(updates, sb.Update{ByCarrier: &sb.CarrierRef{Carrier: "x", ID: cid},
					ParkUntil: now.Add(time.Hour), Transition: receipt,
					Notify: &sb.Notify{EventID: "evt_" + m.ID[4:], Statuses: sb.DefaultCallbackStatuses, At: now}})
			}
		}
		if err := s.Accept(ctx, news); err != nil {
			if ctx.Err() == nil {
				t.Errorf("Accept: %v", err)
			}
			return
		}
		for _, us := range [][]sb.Update{early, updates} {
			if _, err := s.Record(ctx, us); err != nil {
				if ctx.Err() == nil {
					t.Errorf("Record: %v", err)
				}
				return
			}
		}
		written.Add(int64(batch))
	}
}

// randomBody returns 160 random characters of GSM-7's basic letters.
func randomBody() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,!?"
	b := make([]byte, 160)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// soakFinishCallbacks plays the webhook dispatcher: it finishes the
// queued callbacks as they come.
func soakFinishCallbacks(ctx context.Context, t *testing.T, s *pebble.Store) {
	const endpoint = "https://hooks.example.com:443"
	for ctx.Err() == nil {
		cbs, err := s.Callbacks(ctx, endpoint, "", "", 1000)
		if err == nil && len(cbs) > 0 {
			done := make([]sb.FinishedCallback, len(cbs))
			for i, cb := range cbs {
				done[i] = sb.FinishedCallback{Callback: cb}
			}
			err = s.FinishCallbacks(ctx, done)
		}
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("callbacks: %v", err)
			}
			return
		}
		if len(cbs) == 0 {
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

// filesBySuffix sums the sizes of the files in dir by kind (.sst, .log,
// other).
func filesBySuffix(t *testing.T, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
	}
	sizes := map[string]int64{}
	for _, e := range entries {
		kind := filepath.Ext(e.Name())
		if kind != ".sst" && kind != ".log" {
			kind = "other"
		}
		if info, err := e.Info(); err == nil {
			sizes[kind] += info.Size()
		}
	}
	return fmt.Sprintf("tables %.1f MiB, write-ahead logs %.1f MiB, other %.1f MiB",
		float64(sizes[".sst"])/(1<<20), float64(sizes[".log"])/(1<<20), float64(sizes["other"])/(1<<20))
}

// dirSize is the total size of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by a compaction meanwhile
		}
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Errorf("size of %s: %v", dir, err)
	}
	return n
}
