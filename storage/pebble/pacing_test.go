package pebble

import (
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// fakePace is a pacer on a clock that moves only when the pacer sleeps,
// or when the test moves it.
type fakePace struct {
	*compactionPacer
	clock  time.Time
	sleeps []time.Duration
	l0     int
}

func newFakePace(bytesPerSecond int64) *fakePace {
	f := &fakePace{compactionPacer: newCompactionPacer(bytesPerSecond), clock: time.Unix(1_700_000_000, 0)}
	f.now = func() time.Time { return f.clock }
	f.sleep = func(d time.Duration) {
		f.sleeps = append(f.sleeps, d)
		f.clock = f.clock.Add(d)
	}
	f.watch(func() int { return f.l0 })
	return f
}

func (f *fakePace) slept() time.Duration {
	var sum time.Duration
	for _, d := range f.sleeps {
		sum += d
	}
	return sum
}

func TestPacerKeepsTheRate(t *testing.T) {
	f := newFakePace(1 << 20)
	for range 512 { // 2 MiB in 4 KiB writes, at 1 MiB/s
		f.wrote(4 << 10)
	}
	// The writes take no time of their own here: the sleeps make up the
	// 2 s, less what is still owed (under one quantum).
	if got := f.slept(); got > 2*time.Second || got < 2*time.Second-paceQuantum {
		t.Errorf("slept %v in all for 2 MiB at 1 MiB/s, want 2s less under %v", got, paceQuantum)
	}
	// Each sleep waits for a quantum's worth, not a write's.
	if most := int(2*time.Second/paceQuantum) + 1; len(f.sleeps) > most {
		t.Errorf("%d sleeps, want at most %d (one per %v)", len(f.sleeps), most, paceQuantum)
	}
	if got := f.paced.Load(); got != 2<<20 {
		t.Errorf("paced %d bytes, want %d", got, 2<<20)
	}
}

func TestPacerBanksNoCreditWhileIdle(t *testing.T) {
	f := newFakePace(1 << 20)
	f.wrote(64 << 10)                  // 62.5 ms due: sleeps it
	f.clock = f.clock.Add(time.Second) // a pause: reading, merging, or no compaction at all
	f.sleeps = nil
	// The pause is not credit for a burst: the next 64 KiB take their
	// 62.5 ms from now, as the first did.
	f.wrote(64 << 10)
	want := time.Second * 64 / 1024
	if len(f.sleeps) != 1 || f.sleeps[0] != want {
		t.Errorf("slept %v for 64 KiB at 1 MiB/s after a pause, want one sleep of %v", f.sleeps, want)
	}
}

func TestPacerStopsWhileLevelZeroIsDeep(t *testing.T) {
	f := newFakePace(1 << 20)
	f.l0 = maxPacedL0Sublevels
	for range 256 {
		f.wrote(4 << 10)
	}
	if len(f.sleeps) != 0 {
		t.Fatalf("slept %v with level 0 at %d sublevels, want full speed", f.sleeps, f.l0)
	}
	// Caught up: pacing resumes at the next reading, with nothing owed
	// for what was written at full speed.
	f.l0 = l0CompactionThreshold
	f.clock = f.clock.Add(l0CheckInterval)
	for range 256 {
		f.wrote(4 << 10)
	}
	if got := f.slept(); got > time.Second || got < time.Second-paceQuantum {
		t.Errorf("slept %v for 1 MiB at 1 MiB/s once level 0 caught up, want 1s less under %v", got, paceQuantum)
	}
}

func TestPacerStopped(t *testing.T) {
	f := newFakePace(1)
	f.stop()
	f.stop() // twice: Close after a failed Open's cleanup must not panic
	f.wrote(1 << 20)
	if len(f.sleeps) != 0 {
		t.Errorf("slept %v after stop, want none", f.sleeps)
	}
}

func TestPacedFSPacesOnlyCompactions(t *testing.T) {
	mem := vfs.NewMem()
	fs := pacedFS{FS: mem, pacer: newCompactionPacer(1 << 30)}
	for _, tt := range []struct {
		category vfs.DiskWriteCategory
		paced    bool
	}{
		{compactionWrites, true},
		{"pebble-memtable-flush", false},
		{"pebble-wal", false},
		{vfs.WriteCategoryUnspecified, false},
	} {
		f, err := fs.Create("/"+string(tt.category), tt.category)
		if err != nil {
			t.Fatal(err)
		}
		if _, paced := f.(pacedFile); paced != tt.paced {
			t.Errorf("a file created for %q is paced: %v, want %v", tt.category, paced, tt.paced)
		}
		if _, err := f.Write([]byte("table")); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if fs.Unwrap() != mem {
		t.Error("Unwrap does not return the filesystem under the pacing")
	}
}

// A real store's compactions go through the pacer, and Close does not wait
// for a compaction that is far behind its pace.
func TestStoreCompactionsArePacedAndCloseCutsThePaceShort(t *testing.T) {
	// 1 byte/s: the first write of a compaction puts it minutes behind.
	s, err := Open(t.TempDir(), Options{Logger: zerolog.New(io.Discard),
		MemTableSize: 1 << 20, CacheSize: 4 << 20, CompactionRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := &lifecycleRig{t: t, s: s, logs: &misuseLog{}}
	// Enough flushed tables in level 0 for Pebble to merge them.
	for range l0CompactionThreshold + 1 {
		r.accept(50)
		r.flush()
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.pacer.paced.Load() == 0 {
		if time.Now().After(deadline) {
			s.Close()
			t.Fatalf("no compaction was paced with %d tables flushed into level 0: does Pebble still create them as %q?", l0CompactionThreshold+1, compactionWrites)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The compaction now sleeps for minutes.
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited more than 30 s for a paced compaction")
	}
}
