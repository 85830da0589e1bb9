package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/rs/zerolog"
)

// profiler writes the node's CPU and allocation profiles and its
// execution trace for a window that another process chooses: SIGUSR1
// starts it, SIGUSR2 ends it and writes the files (--cpuprofile,
// --memprofile, --trace). The load driver
// (bench --gateway-bin --cpuprofile) signals the edges of its measured
// window, so the profile covers what the figures cover; a window still
// open when the node stops is written then.
type profiler struct {
	cpuPath, memPath, tracePath string
	log                         zerolog.Logger
	cpu                         *os.File // the open CPU profile, nil outside a window
	trace                       *os.File // the open execution trace, nil outside a window
	written                     bool     // a window has ended and been written
}

// start listens for the signals (before it returns, so a signal sent
// after it cannot end the process) and serves them in a goroutine until
// ctx ends, when an open window is closed. wait returns once that
// goroutine is done. Without a profile asked for, it does nothing.
func (p *profiler) start(ctx context.Context) (wait func()) {
	if p.cpuPath == "" && p.memPath == "" && p.tracePath == "" {
		return func() {}
	}
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				if p.cpu != nil || p.trace != nil || !p.written {
					p.end()
				}
				return
			case s := <-ch:
				if s == syscall.SIGUSR1 {
					p.begin()
				} else {
					p.end()
				}
			}
		}
	}()
	return func() { <-done }
}

func (p *profiler) begin() {
	if p.cpu != nil || p.trace != nil {
		return
	}
	p.cpu = p.open(p.cpuPath, "cpu profile", pprof.StartCPUProfile)
	p.trace = p.open(p.tracePath, "execution trace", trace.Start)
}

// open creates path and starts writing to it with start; nil if path is
// empty or either step failed (logged).
func (p *profiler) open(path, what string, start func(io.Writer) error) *os.File {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err == nil {
		if err = start(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		p.log.Error().Err(err).Str("file", path).Msg(what + " not started")
		return nil
	}
	p.log.Info().Str("file", path).Msg(what + " started")
	return f
}

func (p *profiler) end() {
	var err error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		err = p.cpu.Close()
		p.cpu = nil
	}
	if p.trace != nil {
		trace.Stop()
		err = errors.Join(err, p.trace.Close())
		p.trace = nil
	}
	if p.memPath != "" {
		err = errors.Join(err, writeHeapProfile(p.memPath))
	}
	p.written = true
	if err != nil {
		p.log.Error().Err(err).Msg("writing profiles failed")
		return
	}
	p.log.Info().Str("cpu", p.cpuPath).Str("mem", p.memPath).Str("trace", p.tracePath).Msg("profiles written")
}

// writeHeapProfile writes the allocations sampled since the process
// started (go tool pprof -sample_index=alloc_space).
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
