package main

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, 1 µs to 10 s, 3 significant
// digits. A histogram is not safe for concurrent use, so workers record
// into shards (worker i into shard i % shards) and readers merge them.
const (
	histMin    = 1
	histMax    = 10_000_000
	histDigits = 3
	histShards = 16
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// latencies keeps two views of the same samples: the measured window
// (summary) and the current progress interval (reset every tick).
type latencies struct {
	shards [histShards]struct {
		mu       sync.Mutex
		window   *hdrhistogram.Histogram
		interval *hdrhistogram.Histogram
		_        [40]byte // keep shards' locks off each other's cache lines
	}
}

func newLatencies() *latencies {
	l := &latencies{}
	for i := range l.shards {
		l.shards[i].window = newHist()
		l.shards[i].interval = newHist()
	}
	return l
}

// record adds one latency (µs); inWindow says whether it counts in the
// measured window as well as in the progress interval.
func (l *latencies) record(shard int, us int64, inWindow bool) {
	us = min(max(us, histMin), histMax)
	s := &l.shards[shard%histShards]
	s.mu.Lock()
	_ = s.interval.RecordValue(us)
	if inWindow {
		_ = s.window.RecordValue(us)
	}
	s.mu.Unlock()
}

// takeInterval returns the interval's samples merged, and starts a new
// interval.
func (l *latencies) takeInterval() *hdrhistogram.Histogram {
	out := newHist()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out.Merge(s.interval)
		s.interval.Reset()
		s.mu.Unlock()
	}
	return out
}

// window returns the measured window's samples merged.
func (l *latencies) window() *hdrhistogram.Histogram {
	out := newHist()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out.Merge(s.window)
		s.mu.Unlock()
	}
	return out
}
