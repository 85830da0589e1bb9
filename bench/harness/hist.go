package harness

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, 3 significant digits: accept
// latencies 1 µs to 10 s, end-to-end ones (accept to final callback, which
// a carrier outage or a slow webhook stretches) 1 µs to 1 h. A histogram is
// not safe for concurrent use, so workers record into shards (worker i
// into shard i % shards) and the sampler merges them once a second.
const (
	histMin    = 1
	histMax    = 10_000_000
	e2eMax     = 3_600_000_000
	histDigits = 3
	histShards = 16
)

// neverAccepted is the accept latency of a request that was not accepted:
// refused, not answered, or never sent (over --timeout late). It is the
// histogram's top, so a p99 with more than 1 % of those reads as 10 s,
// not as the latency of the ones that made it.
const neverAccepted = histMax

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func newE2EHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, e2eMax, histDigits) }

// latencies collects one second's samples in shards. Every second the
// sampler takes them (take): the second's histogram of every sample (the
// timeline and progress line) and the second's in-window samples, which it
// merges into the run's histogram (the summary). The run's figures are
// therefore exactly the merge of the per-second ones.
type latencies struct {
	max    int64
	shards [histShards]struct {
		mu     sync.Mutex
		all    *hdrhistogram.Histogram
		window *hdrhistogram.Histogram
		_      [40]byte // keep shards' locks off each other's cache lines
	}
}

func newLatencies(maxUS int64) *latencies {
	l := &latencies{max: maxUS}
	for i := range l.shards {
		l.shards[i].all = l.newHist()
		l.shards[i].window = l.newHist()
	}
	return l
}

func (l *latencies) newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, l.max, histDigits)
}

// record adds one latency (µs); inWindow says whether it counts in the
// measured window too.
func (l *latencies) record(shard int, us int64, inWindow bool) {
	us = min(max(us, histMin), l.max)
	s := &l.shards[shard%histShards]
	s.mu.Lock()
	_ = s.all.RecordValue(us)
	if inWindow {
		_ = s.window.RecordValue(us)
	}
	s.mu.Unlock()
}

// take returns the samples since the last take, merged (all of them, and
// the in-window ones), and starts a new interval.
func (l *latencies) take() (all, window *hdrhistogram.Histogram) {
	all, window = l.newHist(), l.newHist()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		all.Merge(s.all)
		window.Merge(s.window)
		s.all.Reset()
		s.window.Reset()
		s.mu.Unlock()
	}
	return all, window
}

// percentiles are the figures reported of a histogram, in milliseconds.
type percentiles struct {
	N    int64   `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func percentilesOf(h *hdrhistogram.Histogram) percentiles {
	if h == nil || h.TotalCount() == 0 {
		return percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return percentiles{N: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000}
}

func (p percentiles) String() string {
	if p.N == 0 {
		return "no samples"
	}
	f := func(ms float64) string { return fmtUS(int64(ms * 1000)) }
	return "p50 " + f(p.P50) + "  p90 " + f(p.P90) + "  p99 " + f(p.P99) + "  p99.9 " + f(p.P999) +
		"  max " + f(p.Max) + "  mean " + f(p.Mean)
}
