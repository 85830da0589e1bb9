package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rs/zerolog"
)

// profiler writes the node's CPU and allocation profiles for a window
// that another process chooses: SIGUSR1 starts it, SIGUSR2 ends it and
// writes the files (--cpuprofile, --memprofile). The load driver
// (bench --gateway-bin --cpuprofile) signals the edges of its measured
// window, so the profile covers what the figures cover; a window still
// open when the node stops is written then.
type profiler struct {
	cpuPath, memPath string
	log              zerolog.Logger
	cpu              *os.File // the open CPU profile, nil outside a window
	written          bool     // a window has ended and been written
}

// start listens for the signals (before it returns, so a signal sent
// after it cannot end the process) and serves them in a goroutine until
// ctx ends, when an open window is closed. wait returns once that
// goroutine is done. Without a profile asked for, it does nothing.
func (p *profiler) start(ctx context.Context) (wait func()) {
	if p.cpuPath == "" && p.memPath == "" {
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
				if p.cpu != nil || !p.written {
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
	if p.cpu != nil || p.cpuPath == "" {
		return
	}
	f, err := os.Create(p.cpuPath)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		p.log.Error().Err(err).Str("file", p.cpuPath).Msg("cpu profile not started")
		return
	}
	p.cpu = f
	p.log.Info().Str("file", p.cpuPath).Msg("cpu profile started")
}

func (p *profiler) end() {
	var err error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		err = p.cpu.Close()
		p.cpu = nil
	}
	if p.memPath != "" {
		err = errors.Join(err, writeHeapProfile(p.memPath))
	}
	p.written = true
	if err != nil {
		p.log.Error().Err(err).Msg("writing profiles failed")
		return
	}
	p.log.Info().Str("cpu", p.cpuPath).Str("mem", p.memPath).Msg("profiles written")
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
