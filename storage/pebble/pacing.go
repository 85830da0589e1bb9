package pebble

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Compactions are paced. A merge of level 0 into the level below reads and
// rewrites tens of megabytes; unpaced, it keeps a core busy for half a
// second or more, and on a machine the gateway already keeps busy, the
// requests queued behind it wait that long (docs/benchmarks.md, "Paced
// compactions"). Written at Options.CompactionRate instead, the same work
// is spread over a few seconds, beside the requests.
//
// A paced compaction must not hold writes up: while level 0 holds
// maxPacedL0Sublevels sublevels or more, compactions run at full speed until
// it is back below (Pebble stalls writes at l0StopWrites). Pacing also stops
// for good when the store closes, so Close does not wait out a slow merge.
//
// Flushes of the memtable are not paced: a memtable waiting for its flush
// holds up the writes behind it.

const (
	// defaultCompactionRate is what compactions write per second: a
	// fraction of what one core merges unpaced, so a merge takes a few
	// seconds of a few hundred milliseconds of CPU each.
	defaultCompactionRate = 8 << 20

	// maxPacedL0Sublevels is the depth of level 0 at which pacing stops:
	// a quarter of the way from where merges start (l0CompactionThreshold)
	// to where Pebble stops writes.
	maxPacedL0Sublevels = l0CompactionThreshold + (l0StopWrites-l0CompactionThreshold)/4

	// l0CheckInterval is how often a paced compaction reads level 0's
	// depth (Pebble's metrics take its lock and add up every level).
	l0CheckInterval = 250 * time.Millisecond

	// paceQuantum is how far a compaction may run ahead of its pace before
	// it sleeps. A sleep after every write (a few KB) would wake the
	// scheduler thousands of times per merge, which costs CPU of its own.
	paceQuantum = 10 * time.Millisecond

	// compactionWrites is the category Pebble creates a compaction's
	// tables with (its flushes are "pebble-memtable-flush"). A test checks
	// that a compaction of a real store is paced, so a Pebble that renames
	// it does not go unnoticed.
	compactionWrites vfs.DiskWriteCategory = "pebble-compaction"
)

// compactionPacer spreads compactions' writes over time at a set rate.
// The files of one compaction are written one after another, and Pebble
// runs one compaction at a time (the store keeps its default concurrency);
// should two run at once (a manual compaction beside Pebble's own), they
// share the rate.
type compactionPacer struct {
	rate  float64 // bytes per second
	now   func() time.Time
	sleep func(time.Duration)

	mu        sync.Mutex
	paidUntil time.Time // when the bytes written so far are due at rate
	checkedAt time.Time // when l0 was last read
	behind    bool      // level 0 was at maxPacedL0Sublevels or deeper then

	// l0 reads level 0's sublevels; nil until the database is open.
	l0       atomic.Pointer[func() int]
	stopping chan struct{} // closed by stop: pacing ends, a sleep ends early
	stopOnce sync.Once
	paced    atomic.Int64 // bytes written at pace, for tests
}

func newCompactionPacer(bytesPerSecond int64) *compactionPacer {
	p := &compactionPacer{rate: float64(bytesPerSecond), now: time.Now, stopping: make(chan struct{})}
	p.sleep = p.sleepUnlessStopped
	return p
}

// watch gives the pacer level 0's depth, once the database is open.
func (p *compactionPacer) watch(l0Sublevels func() int) { p.l0.Store(&l0Sublevels) }

// stop ends pacing: from now on compactions write at full speed, and a
// compaction asleep wakes.
func (p *compactionPacer) stop() {
	p.stopOnce.Do(func() { close(p.stopping) })
}

func (p *compactionPacer) sleepUnlessStopped(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.stopping:
	}
}

// wrote accounts for n bytes a compaction just wrote, and sleeps if it is
// more than paceQuantum ahead of the rate.
func (p *compactionPacer) wrote(n int) {
	select {
	case <-p.stopping:
		return
	default:
	}
	p.mu.Lock()
	now := p.now()
	if p.levelZeroBehind(now) {
		p.paidUntil = now
		p.mu.Unlock()
		return
	}
	p.paidUntil = later(p.paidUntil, now).Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	ahead := p.paidUntil.Sub(now)
	p.mu.Unlock()
	p.paced.Add(int64(n))
	if ahead >= paceQuantum {
		p.sleep(ahead)
	}
}

// levelZeroBehind says whether level 0 is too deep to pace, reading its
// depth at most every l0CheckInterval. The caller holds mu.
func (p *compactionPacer) levelZeroBehind(now time.Time) bool {
	l0 := p.l0.Load()
	if l0 == nil {
		return false
	}
	if now.Sub(p.checkedAt) >= l0CheckInterval {
		p.checkedAt = now
		p.behind = (*l0)() >= maxPacedL0Sublevels
	}
	return p.behind
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pacedFS is the store's filesystem with its compactions' writes paced.
type pacedFS struct {
	vfs.FS
	pacer *compactionPacer
}

// Create paces the files compactions create and leaves every other file
// (the write-ahead log, flushed tables, the manifest) as it is.
func (fs pacedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || category != compactionWrites {
		return f, err
	}
	return pacedFile{File: f, pacer: fs.pacer}, nil
}

// Unwrap returns the filesystem under the pacing, as Pebble's own wrappers do.
func (fs pacedFS) Unwrap() vfs.FS { return fs.FS }

// pacedFile is a table a compaction writes.
type pacedFile struct {
	vfs.File
	pacer *compactionPacer
}

func (f pacedFile) Write(b []byte) (int, error) {
	n, err := f.File.Write(b)
	f.pacer.wrote(n)
	return n, err
}
