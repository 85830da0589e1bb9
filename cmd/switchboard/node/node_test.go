package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A node that cannot open its store fails with the step named, and closes
// the listener it was given: the caller has nothing left to release.
func TestOpenFailureReleasesListener(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), Config{DataDir: file, Listener: ln})
	if err == nil || n != nil {
		t.Fatalf("Open on a file as data dir: %v, %v; want an error", n, err)
	}
	if got := err.Error(); len(got) < 8 || got[:8] != "storage:" {
		t.Errorf("error %q, want it to start with the step, storage:", got)
	}
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the listener still accepts after a failed Open")
	}
}
