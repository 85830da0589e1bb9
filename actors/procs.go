package actors

import (
	"os"
	"runtime"
)

// OversubscribeProcs sets GOMAXPROCS to twice Go's default (the cores it
// may use, container limits included) and returns the value in force. If
// the GOMAXPROCS environment variable is set, it is left alone.
//
// Why: Pebble's memtable flushes and compactions each run on one goroutine
// for tens to hundreds of milliseconds. With one P per core such a
// goroutine holds a whole core until Go preempts it, so on a small machine
// request handling is left with one core fewer for that long and its tail
// latency jumps. With twice as many Ps as cores, the kernel time-slices
// that goroutine's thread against the request threads instead. Measured on
// 2 cores at 10,000 msg/s (docs/benchmarks.md): p99 accept latency 11-16 ms
// with 2 Ps, 6.6-7.3 ms with 4, at the same CPU; the closed-loop maximum
// drops a few per cent.
func OversubscribeProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	n := 2 * runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(n)
	return n
}
