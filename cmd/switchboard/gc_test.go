package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestGCSettingsFromConfig(t *testing.T) {
	cfg, err := loadConfig("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := gcSettingsOf(cfg.Node, []string{"PATH=/bin"})
	if !ok || s.percent != 400 || s.limit != 300<<20 {
		t.Fatalf("defaults: %+v, %v; want 400 %% and 300 MiB", s, ok)
	}
	for _, env := range []string{"GOGC=100", "GOMEMLIMIT=1GiB"} {
		if _, ok := gcSettingsOf(cfg.Node, []string{env}); ok {
			t.Errorf("with %s in the environment the config still applies", env)
		}
	}
	for _, env := range []string{"GOGC=", "GOMEMLIMIT="} { // set to nothing: Go ignores it
		if _, ok := gcSettingsOf(cfg.Node, []string{env}); !ok {
			t.Errorf("with %s (empty) in the environment the config does not apply", env)
		}
	}
	off := cfg.Node
	off.MemoryLimit = "0"
	if s, _ := gcSettingsOf(off, nil); s.limit != 0 {
		t.Errorf("memory_limit 0: limit %d, want none", s.limit)
	}
}

func TestGCSettingsValidation(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		{"node.gc_percent=0", "node.gc_percent"},
		{"node.gc_percent=-5", "node.gc_percent"},
		{"node.memory_limit=lots", "node.memory_limit"},
		{"node.memory_limit=-1MiB", "node.memory_limit"},
	} {
		_, err := loadConfig("", nil, []string{c.set})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.set, err, c.want)
		}
	}
	if _, err := loadConfig("", nil, []string{"node.memory_limit=0", "node.gc_percent=50"}); err != nil {
		t.Errorf("memory_limit 0 and gc_percent 50: %v", err)
	}
}

// The limit in force never lets the collector run more often than Go's
// default: it follows a live heap that outgrows the configured limit, and
// returns to the configured one when the heap shrinks.
func TestGCLimitFollowsTheLiveHeap(t *testing.T) {
	s := gcSettings{percent: 400, limit: 300 << 20}
	if got := s.limitFor(runtimeMemory{live: 40 << 20, other: 10 << 20}); got != 300<<20 {
		t.Errorf("live 40 MiB: limit %d, want the configured 300 MiB", got)
	}
	if got := s.limitFor(runtimeMemory{live: 200 << 20, other: 30 << 20}); got != 530<<20 {
		t.Errorf("live 200 MiB and 30 MiB besides: limit %d, want 530 MiB", got)
	}
	runtime.GC() // the live heap is measured by a collection
	if m := readRuntimeMemory(); m.live == 0 || m.other == 0 {
		t.Errorf("the runtime's memory read as %+v, want both above 0", m)
	}

	lives := make(chan uint64, 1)
	sets := make(chan int64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		current := uint64(0)
		live := func() runtimeMemory {
			select {
			case current = <-lives:
			default:
			}
			return runtimeMemory{live: current}
		}
		s.follow(ctx, time.Millisecond, live, func(l int64) int64 { sets <- l; return 0 })
	}()
	lives <- 400 << 20
	if got := <-sets; got != 1000<<20 {
		t.Errorf("live 400 MiB: set %d, want 1000 MiB", got)
	}
	lives <- 10 << 20
	if got := <-sets; got != 300<<20 {
		t.Errorf("live back at 10 MiB: set %d, want the configured 300 MiB", got)
	}
	cancel()
	<-done
}

// startGC sets the process's collector and its stop ends the goroutine
// that follows the heap.
func TestStartGCAppliesTheSettings(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	cfg, err := loadConfig("", nil, []string{"node.gc_percent=250", "node.memory_limit=1GiB"})
	if err != nil {
		t.Fatal(err)
	}
	stop := startGC(cfg.Node, nil, zerolog.Nop())
	if got := debug.SetGCPercent(250); got != 250 {
		t.Errorf("GC percent %d, want 250", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("memory limit %d, want 1 GiB", got)
	}
	stop()
}
