package pebble_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	sb "github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/storagetest"
)

func open(t *testing.T, dir string) sb.Store {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{MemTableSize: 4 << 20, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) sb.Store { return open(t, t.TempDir()) })
}

func TestDurable(t *testing.T) {
	storagetest.RunDurable(t, open)
}

func TestRetention(t *testing.T) {
	storagetest.RunRetention(t, func(t *testing.T, r storagetest.Retention) (sb.Store, func(context.Context) error) {
		s, err := pebble.Open(t.TempDir(), pebble.Options{MemTableSize: 4 << 20, CacheSize: 8 << 20,
			TTL: r.TTL, CarrierIDGrace: r.CarrierIDGrace})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s, s.Housekeep
	})
}

// A second Open of a directory another process holds fails with an
// error that says so. The other process is this test binary, running
// TestOpenLockedHelper.
func TestOpenLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestOpenLockedHelper$")
	helper.Env = append(os.Environ(), lockedDirEnv+"="+dir)
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Wait()
	defer stdin.Close() // the helper closes its store and exits
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "open\n" {
		t.Fatalf("helper said %q, want open", line)
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a directory another process holds")
	}
	if !strings.Contains(err.Error(), "is another node using it?") {
		t.Errorf("error %q, want it to say the directory is in use", err)
	}
}

const lockedDirEnv = "SWITCHBOARD_PEBBLE_LOCKED_DIR"

// TestOpenLockedHelper holds a store open until its stdin closes (the
// other process of TestOpenLockedDirectory).
func TestOpenLockedHelper(t *testing.T) {
	dir := os.Getenv(lockedDirEnv)
	if dir == "" {
		t.Skip("the child process of TestOpenLockedDirectory")
	}
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("open")
	io.Copy(io.Discard, os.Stdin)
}
