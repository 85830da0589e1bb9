package pebble_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// TestCrashCloneKeepsAcknowledged proves "202 means fsynced": Accepts run
// from 16 goroutines on a simulated disk, and at a random point of the load
// the disk is cloned as a power cut would leave it (what was synced, and
// none or some of what was not). A store opened on the clone has every
// message whose Accept had returned before the clone was taken. Without
// the sync, the clone lacks them and the test fails.
func TestCrashCloneKeepsAcknowledged(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for round := range 4 {
		fs := vfs.NewCrashableMem()
		s, err := pebble.Open("/data", pebble.Options{FS: fs, MemTableSize: 4 << 20, CacheSize: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		target := 100 + rng.IntN(1500)
		acked, stop := acceptUntil(t, s, target)
		want := acked() // each of these returned before the clone is taken
		crashed := fs.CrashClone(vfs.CrashCloneCfg{
			UnsyncedDataPercent: []int{0, 50}[round%2],
			RNG:                 rand.New(rand.NewPCG(rng.Uint64(), 0)),
		})
		stop()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		r, err := pebble.Open("/data", pebble.Options{FS: crashed})
		if err != nil {
			t.Fatalf("open after the crash: %v", err)
		}
		for _, id := range want {
			if _, err := r.Message(t.Context(), id); err != nil {
				t.Fatalf("round %d: message %s acknowledged before the crash: %v", round, id, err)
			}
		}
		n, err := r.PendingCount(t.Context(), "k")
		if err != nil || n < len(want) {
			t.Fatalf("round %d: PendingCount = %d, %v; at least %d acknowledged", round, n, err, len(want))
		}
		r.Close()
		t.Logf("round %d: %d acknowledged messages all there after the crash", round, len(want))
	}
}

// acceptUntil accepts messages of key "k" from 16 goroutines until at
// least target have returned. acked returns the IDs acknowledged when it
// is called (and the load goes on); stop ends the load and waits for it.
func acceptUntil(t *testing.T, s sb.MessageStore, target int) (acked func() []string, stop func()) {
	t.Helper()
	var (
		mu     sync.Mutex
		ids    []string
		wg     sync.WaitGroup
		g      = newIDs()
		enough = make(chan struct{})
		once   sync.Once
	)
	ctx, cancel := context.WithCancel(t.Context())
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				m := newMessage(g.next(), "k")
				if err := s.Accept(ctx, []sb.NewMessage{{Message: m}}); err != nil {
					if ctx.Err() == nil {
						t.Errorf("Accept: %v", err)
					}
					return
				}
				mu.Lock()
				ids = append(ids, m.ID)
				if len(ids) >= target {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-enough:
	case <-ctx.Done():
	}
	acked = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
	return acked, func() { cancel(); wg.Wait() }
}

// A store whose WAL sync fails stops at once: the Accepts whose batch
// failed get EUNAVAILABLE, and so does every write and every read after,
// and Writable says so. Reads running meanwhile never return a message
// whose Accept did not succeed: nothing a failed batch wrote is read back.
func TestSyncFailureStopsStore(t *testing.T) {
	disk := newFakeDisk(vfs.NewMem())
	disk.failDelay = 20 * time.Millisecond // the failing batch stays visible and unsynced a while
	var logs logBuffer
	s, err := pebble.Open("/data", pebble.Options{FS: disk, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	g := newIDs()
	first := newMessage(g.next(), "k")
	if err := s.Accept(ctx, []sb.NewMessage{{Message: first}}); err != nil {
		t.Fatal(err)
	}

	// Writers accept until one fails; readers read what is being
	// accepted, and note what they found.
	disk.failSyncsAfter(50)
	var (
		mu       sync.Mutex
		tried    = map[string]bool{} // ID → Accept returned nil
		read     = map[string]bool{}
		inflight []string
		failed   atomic.Bool
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !failed.Load() {
				m := newMessage(g.next(), "k")
				mu.Lock()
				tried[m.ID] = false
				inflight = append(inflight, m.ID)
				mu.Unlock()
				err := s.Accept(ctx, []sb.NewMessage{{Message: m}})
				mu.Lock()
				tried[m.ID] = err == nil
				mu.Unlock()
				if err != nil {
					if sb.ErrorCode(err) != sb.EUNAVAILABLE {
						t.Errorf("Accept after a failed sync: %v, want EUNAVAILABLE", err)
					}
					failed.Store(true)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for !failed.Load() {
				mu.Lock()
				var id string
				if len(inflight) > 0 {
					id = inflight[len(inflight)-1]
				}
				mu.Unlock()
				if id == "" {
					continue
				}
				if _, err := s.Message(ctx, id); err == nil {
					mu.Lock()
					read[id] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for id := range read {
		if !tried[id] {
			t.Errorf("message %s was read, but its Accept failed", id)
		}
	}

	wantUnavailable := func(what string, err error) {
		t.Helper()
		if sb.ErrorCode(err) != sb.EUNAVAILABLE {
			t.Errorf("%s on a failed store: %v, want EUNAVAILABLE", what, err)
		}
	}
	wantUnavailable("Writable", s.Writable())
	wantUnavailable("Accept", s.Accept(ctx, []sb.NewMessage{{Message: newMessage(g.next(), "k")}}))
	_, err = s.Record(ctx, []sb.Update{{MessageID: first.ID, Transition: sb.Transition{Event: sb.Event{Status: sb.StatusQueued, At: time.Now()}, Part: -1}}})
	wantUnavailable("Record", err)
	wantUnavailable("FinishCallbacks", s.FinishCallbacks(ctx, []sb.FinishedCallback{{Callback: sb.Callback{ID: "evt_1", Endpoint: "https://x:443"}}}))
	_, err = s.Message(ctx, first.ID)
	wantUnavailable("Message", err)
	_, err = s.Pending(ctx, "k", "", "", 10)
	wantUnavailable("Pending", err)
	_, err = s.PendingCount(ctx, "k")
	wantUnavailable("PendingCount", err)
	_, _, err = s.ListMessages(ctx, sb.MessageQuery{Key: "k", Day: first.Day(), Limit: 10})
	wantUnavailable("ListMessages", err)
	_, err = s.Callbacks(ctx, "https://x:443", "", "", 10)
	wantUnavailable("Callbacks", err)
	_, err = s.Idempotency(ctx, "k", "x")
	wantUnavailable("Idempotency", err)
	if n := strings.Count(logs.String(), "commit failed"); n != 1 {
		t.Errorf("%d log lines say the commit failed, want 1:\n%s", n, logs.String())
	}
}

// logBuffer collects log lines written from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A read that finds what a batch still syncing wrote waits for the sync;
// one that finds nothing (a new Idempotency-Key) does not wait.
func TestReadsWaitForTheSyncOfWhatTheyFind(t *testing.T) {
	disk := newFakeDisk(vfs.NewMem())
	s, err := pebble.Open("/data", pebble.Options{FS: disk, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gate := make(chan struct{})
	var open sync.Once
	release := func() { open.Do(func() { close(gate) }) }
	defer release() // before Close, which waits for the sync
	disk.gate.Store(&gate)
	m := newMessage(newIDs().next(), "k")
	accepted := make(chan error, 1)
	go func() {
		accepted <- s.Accept(t.Context(), []sb.NewMessage{{Message: m, IdempotencyKey: "once"}})
	}()
	<-disk.entered // the batch's sync is held at the gate

	// The batch becomes visible to reads about when its sync starts.
	// Before, a read finds nothing and returns at once; after, it finds
	// the batch and must wait for the sync.
	ctx := t.Context()
	for visible := false; !visible; {
		probe, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := s.Idempotency(probe, "k", "once")
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			visible = true // found, and waiting
		case err == nil:
			t.Fatal("Idempotency returned what a batch still syncing wrote")
		case sb.ErrorCode(err) != sb.ENOTFOUND:
			t.Fatal(err)
		}
	}
	soon, cancel := context.WithTimeout(ctx, 10*time.Second) // a guard: it must not wait at all
	defer cancel()
	if _, err := s.Idempotency(soon, "k", "new"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("Idempotency of a new key while a sync is held: %v, want ENOTFOUND at once", err)
	}
	// Reads of what the held batch wrote must still be waiting a while
	// later (a read that did not wait returns at once), and return once
	// the sync is done.
	reads := map[string]func() error{
		"Message":     func() error { _, err := s.Message(ctx, m.ID); return err },
		"Idempotency": func() error { _, err := s.Idempotency(ctx, "k", "once"); return err },
		"Pending":     func() error { _, err := s.Pending(ctx, "k", "", "", 10); return err },
	}
	done := make(chan string, len(reads))
	for name, read := range reads {
		go func() {
			if err := read(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			done <- name
		}()
	}
	select {
	case name := <-done:
		t.Fatalf("%s returned what a batch still syncing wrote", name)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	for range reads {
		<-done
	}
	if _, err := s.Message(ctx, m.ID); err != nil {
		t.Fatalf("Message after the sync: %v", err)
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time            { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration)       { c.ns.Add(int64(d)) }
func (c *fakeClock) options() func() time.Time { return c.now }

// Below storage.min_free new messages are refused with EUNAVAILABLE and
// one log line, Writable says why, and writes about messages already
// accepted go on; when space returns, Accept works again, with one log
// line. The free space is read at most once a second.
func TestDiskNearlyFull(t *testing.T) {
	const mib = 1 << 20
	disk := newFakeDisk(vfs.NewMem())
	disk.setFree(10_000*mib, 20_000*mib)
	clock := newFakeClock()
	var logs logBuffer
	s, err := pebble.Open("/data", pebble.Options{FS: disk, MinFree: 500 * mib, Now: clock.options(), Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	g := newIDs()
	accept := func() (*sb.Message, error) {
		m := newMessage(g.next(), "k")
		return m, s.Accept(ctx, []sb.NewMessage{{Message: m}})
	}
	m, err := accept()
	if err != nil || s.Writable() != nil {
		t.Fatalf("with room: Accept %v, Writable %v", err, s.Writable())
	}

	disk.setFree(499*mib, 20_000*mib)
	if _, err := accept(); err != nil {
		t.Fatalf("Accept within a second of the last reading: %v (the reading is not stale yet)", err)
	}
	for range 3 {
		clock.add(time.Second)
		_, err := accept()
		if sb.ErrorCode(err) != sb.EUNAVAILABLE || !strings.Contains(err.Error(), "disk nearly full") {
			t.Fatalf("Accept below min_free: %v, want EUNAVAILABLE, disk nearly full", err)
		}
	}
	if err := s.Writable(); sb.ErrorCode(err) != sb.EUNAVAILABLE || !strings.Contains(err.Error(), "disk nearly full") {
		t.Fatalf("Writable below min_free: %v", err)
	}
	in := &sb.Message{ID: g.next(), Key: "k", Status: sb.StatusReceived, Direction: sb.DirectionInbound, AcceptedAt: clock.now()}
	if err := s.AcceptInbound(ctx, in, nil, nil); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("AcceptInbound below min_free: %v, want EUNAVAILABLE", err)
	}
	// A message already accepted still reaches its end.
	n := &sb.Notify{EventID: "evt_1", DefaultURL: "https://hooks.example.com/x", Statuses: sb.DefaultCallbackStatuses, At: clock.now()}
	got, err := s.Record(ctx, []sb.Update{{MessageID: m.ID, Notify: n, Transition: sb.Transition{
		Event: sb.Event{Status: sb.StatusFailed, At: clock.now()}, Part: -1}}})
	if err != nil || got[0].Status != sb.StatusFailed {
		t.Fatalf("Record below min_free: %v", err)
	}
	cbs, err := s.Callbacks(ctx, "https://hooks.example.com:443", "", "", 10)
	if err != nil || len(cbs) != 1 {
		t.Fatalf("Callbacks below min_free: %v, %v", cbs, err)
	}
	if err := s.FinishCallbacks(ctx, []sb.FinishedCallback{{Callback: cbs[0]}}); err != nil {
		t.Fatalf("FinishCallbacks below min_free: %v", err)
	}

	// The clock steps back an hour, and space comes back: read again at
	// once, not in an hour.
	disk.setFree(600*mib, 20_000*mib)
	clock.add(-time.Hour)
	if _, err := accept(); err != nil || s.Writable() != nil {
		t.Fatalf("space back, the clock stepped back: Accept %v, Writable %v", err, s.Writable())
	}
	if n := strings.Count(logs.String(), "disk nearly full"); n != 1 {
		t.Errorf("%d log lines about the full disk, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "accepting new messages again"); n != 1 {
		t.Errorf("%d log lines about space back, want 1:\n%s", n, logs.String())
	}
}

// The threshold: MinFree bytes, else MinFreePercent of the disk, else the
// smaller of 1 GiB and 5 %; a negative MinFree sets none, and a disk whose
// usage cannot be read is never refused for it.
func TestDiskThreshold(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name         string
		opts         pebble.Options
		avail, total uint64
		refused      bool
	}{
		{"bytes, above", pebble.Options{MinFree: 2 * gib}, 2 * gib, 100 * gib, false},
		{"bytes, below", pebble.Options{MinFree: 2 * gib}, 2*gib - 1, 100 * gib, true},
		{"percent, above", pebble.Options{MinFreePercent: 10}, 10 * gib, 100 * gib, false},
		{"percent, below", pebble.Options{MinFreePercent: 10}, 10*gib - 1, 100 * gib, true},
		{"default, large disk: 1 GiB", pebble.Options{}, gib - 1, 100 * gib, true},
		{"default, large disk, above", pebble.Options{}, gib, 100 * gib, false},
		{"default, small disk: 5 %", pebble.Options{}, gib / 2, 10 * gib, false},
		{"default, small disk, below", pebble.Options{}, gib/2 - 1, 10 * gib, true},
		{"none", pebble.Options{MinFree: -1}, 0, 100 * gib, false},
		{"usage unknown", pebble.Options{}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := newFakeDisk(vfs.NewMem())
			disk.setFree(tc.avail, tc.total)
			opts := tc.opts
			opts.FS = disk
			s, err := pebble.Open("/data", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Writable()
			if refused := err != nil; refused != tc.refused {
				t.Fatalf("%d bytes free of %d: Writable = %v, want refused %v", tc.avail, tc.total, err, tc.refused)
			}
		})
	}
}
