// Package redistest gives tests a real Redis: the one SWITCHBOARD_TEST_REDIS
// names (host:port), or a redis-server process of their own, which they
// may flush, stop, restart and pause. Without either, tests skip, except
// under CI=true, where they fail: CI must run them.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// EnvAddr names the variable holding a running Redis's host:port.
const EnvAddr = "SWITCHBOARD_TEST_REDIS"

// missing skips the test, or fails it under CI.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: Redis tests must run)", why)
	}
	t.Skip(why)
}

// Shared returns the address of the Redis SWITCHBOARD_TEST_REDIS names,
// after checking that it answers. Other tests use that server at the same
// time: a test must keep to its own keys (see Prefix) and never flush it.
func Shared(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		missing(t, EnvAddr+" is not set (host:port of a running Redis)")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("%s=%s: %v", EnvAddr, addr, err)
	}
	return addr
}

// Prefix returns a key prefix no other test uses.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("switchboard-test:%d:%s:", time.Now().UnixNano(), strings.ReplaceAll(t.Name(), "/", "."))
}

// Server is a redis-server process of one test, on 127.0.0.1, keeping
// nothing on disk.
type Server struct {
	t    testing.TB
	Addr string
	dir  string

	proc   *os.Process // nil while stopped
	exited chan error
}

// Start runs a redis-server of the test's own, stopped when the test ends.
// It needs the redis-server binary (Debian's redis-server package).
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(t, "redis-server is not installed (apt-get install redis-server)")
	}
	s := &Server{t: t, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	var err error
	for range 3 { // the free port found may be taken before Redis binds it
		if s.Addr, err = freeAddr(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("redis-server: %v", err)
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs redis-server on s.Addr and waits until it answers.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends when the process does
	s.proc, s.exited = cmd.Process, exited
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			s.proc = nil
			return fmt.Errorf("exited at start (%v): %s", err, out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // a starting process gives no other sign
	}
	s.Stop()
	return errors.New("did not answer within 10s")
}

// Flush deletes everything the server holds (FLUSHALL).
func (s *Server) Flush() {
	s.t.Helper()
	s.command("FLUSHALL")
}

func (s *Server) command(args ...any) {
	s.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Do(context.Background(), args...).Err(); err != nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
}

// Stop ends the process (SIGTERM, then SIGKILL after 10 s) and waits for
// it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	s.proc.Signal(syscall.SIGCONT) // a paused process cannot act on SIGTERM
	s.proc.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.proc.Kill()
		<-s.exited
	}
	s.proc = nil
}

// Restart starts a stopped server again on the same address, empty.
func (s *Server) Restart() {
	s.t.Helper()
	if s.proc != nil {
		s.t.Fatal("redistest: Restart of a running server")
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("redis-server restart on %s: %v", s.Addr, err)
	}
}

// Pause stops the process where it is (SIGSTOP): connections stay open
// and nothing answers, as with a hung server or a cut network.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT), with what it held.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.proc == nil {
		s.t.Fatal("redistest: the server is stopped")
	}
	if err := s.proc.Signal(sig); err != nil {
		s.t.Fatalf("redis-server pid %d: %v", s.proc.Pid, err)
	}
}

// PID is the process id, 0 while stopped.
func (s *Server) PID() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}
