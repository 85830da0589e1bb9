package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// SIGUSR1 starts the CPU profile and the execution trace, and SIGUSR2
// ends them and writes the allocations: the profiles are then complete
// (gzipped protobuf), and so is the trace (its header, then events).
func TestProfilerWindow(t *testing.T) {
	dir := t.TempDir()
	p := &profiler{cpuPath: filepath.Join(dir, "cpu.out"), memPath: filepath.Join(dir, "mem.out"),
		tracePath: filepath.Join(dir, "trace.out"), log: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	wait := p.start(ctx)
	defer func() { cancel(); wait() }()

	self, _ := os.FindProcess(os.Getpid())
	if err := self.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(p.cpuPath); return err == nil }) {
		t.Fatal("no CPU profile within 10 s")
	}
	if err := self.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(p.memPath); return err == nil }) {
		t.Fatal("no allocation profile within 10 s")
	}
	cancel()
	wait()
	for _, path := range []string{p.cpuPath, p.memPath} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) || len(b) < 64 {
			t.Errorf("%s: %d bytes, not a profile", filepath.Base(path), len(b))
		}
	}
	b, err := os.ReadFile(p.tracePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("go 1.")) || len(b) < 64 {
		t.Errorf("trace.out: %d bytes beginning %q, not an execution trace", len(b), b[:min(len(b), 16)])
	}
}
