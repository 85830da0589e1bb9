package actors

import (
	"os"
	"runtime"
)

// OversubscribeProcs raises GOMAXPROCS above Go's default (the cores it
// may use, container limits included) by as many Ps as the storage engine
// runs long background goroutines at once — at most 2: one memtable flush
// and one compaction — and returns the value in force. If the GOMAXPROCS
// environment variable is set, it is left alone.
//
// Why: a flush or a compaction keeps one goroutine busy for tens to
// hundreds of milliseconds. With one P per core that goroutine holds a
// whole core until Go preempts it, so on a small machine request handling
// is left with one core fewer for that long and its tail latency jumps.
// With a P to spare for each, the kernel time-slices their threads against
// the request threads instead. Measured on 2 cores at 10,000 msg/s
// (docs/benchmarks.md): p99 accept latency 11-16 ms with 2 Ps, 6.6-7.3 ms
// with 4, at the same CPU; the closed-loop maximum drops a few per cent.
// Only 2 extra, not twice the cores: Go sizes its GC workers by
// GOMAXPROCS, and on a large machine doubling it would double their share.
func OversubscribeProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	d := runtime.GOMAXPROCS(0)
	n := d + min(d, backgroundProcs)
	runtime.GOMAXPROCS(n)
	return n
}

// backgroundProcs is how many long-running goroutines Pebble runs at once
// (a flush and, with its default of one, a compaction).
const backgroundProcs = 2
