package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// The node's garbage collector settings (node.gc_percent,
// node.memory_limit). Go's default (GOGC 100, no limit) collects whenever
// the heap has doubled: at 10,000 messages a second that is several times
// a second, and each collection takes CPU from requests in flight, which
// shows in the accept latency's tail. A higher percentage collects less
// often; the memory limit keeps that larger heap in check when the live
// heap rises (a drain of a large backlog).
//
// A limit below what the live heap needs would make the collector run
// back to back. So the limit in force follows the live heap: never below
// gcLiveMultiple times it plus the runtime's memory besides the heap
// (goroutine stacks, metadata), which the limit counts too; that collects
// no more often than Go's default.
const (
	gcLiveMultiple = 2.5
	gcFollowEvery  = time.Second
)

// gcSettings are the collector settings a node applies.
type gcSettings struct {
	percent int
	limit   int64 // bytes; 0: none
}

// gcSettingsOf returns the settings of n, and false when GOGC or
// GOMEMLIMIT is set in the environment: Go applied those at start, and an
// operator who set them means them. Set to nothing, Go ignores them, and
// so does this.
func gcSettingsOf(n NodeConfig, environ []string) (gcSettings, bool) {
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if (name == "GOGC" || name == "GOMEMLIMIT") && value != "" {
			return gcSettings{}, false
		}
	}
	s := gcSettings{percent: 100}
	if n.GCPercent != nil {
		s.percent = *n.GCPercent
	}
	s.limit, _ = parseSizeOrNone(n.MemoryLimit) // Validate checked it
	return s, true
}

// limitFor returns the limit to set for a live heap of live bytes and
// other bytes of the runtime's memory besides the heap.
func (s gcSettings) limitFor(m runtimeMemory) int64 {
	return max(s.limit, int64(float64(m.live)*gcLiveMultiple)+int64(m.other))
}

// startGC applies the node's collector settings and, with a limit, keeps
// the limit above the live heap until stop is called (which waits).
func startGC(n NodeConfig, environ []string, log zerolog.Logger) (stop func()) {
	s, ok := gcSettingsOf(n, environ)
	if !ok {
		log.Info().Msg("GOGC or GOMEMLIMIT is set: the garbage collector runs by them, not by node.gc_percent and node.memory_limit")
		return func() {}
	}
	debug.SetGCPercent(s.percent)
	if s.limit == 0 {
		return func() {}
	}
	debug.SetMemoryLimit(s.limit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.follow(ctx, gcFollowEvery, readRuntimeMemory, debug.SetMemoryLimit)
	}()
	return func() { cancel(); <-done }
}

// follow sets the limit for the live heap at every tick until ctx ends.
func (s gcSettings) follow(ctx context.Context, every time.Duration, read func() runtimeMemory, set func(int64) int64) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := s.limit
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if l := s.limitFor(read()); l != last {
				set(l)
				last = l
			}
		}
	}
}

// runtimeMemory is what the limit is set by: the heap the last collection
// found live, and the runtime's memory that is not heap (what the memory
// limit counts besides the heap's spans).
type runtimeMemory struct{ live, other uint64 }

func readRuntimeMemory() runtimeMemory {
	names := []string{
		"/gc/heap/live:bytes",
		"/memory/classes/total:bytes",
		"/memory/classes/heap/released:bytes",
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/unused:bytes",
	}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	metrics.Read(samples)
	v := make([]uint64, len(samples))
	for i, sm := range samples {
		if sm.Value.Kind() == metrics.KindUint64 {
			v[i] = sm.Value.Uint64()
		}
	}
	heap := v[2] + v[3] + v[4] + v[5]
	return runtimeMemory{live: v[0], other: v[1] - min(heap, v[1])}
}
