package scylla

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// proxy stands between the store and the CQL server, on 127.0.0.1, so a
// test can take the server away and give it back: cut refuses and drops
// every connection (the server is down), mute passes requests on but
// swallows the answers (writes land, the store never hears), heal passes
// everything again. The store reaches every node through the proxy's
// port, as the driver uses the contact point's port for all hosts.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  string // "pass", "cut" or "mute"
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, mode: "pass", conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.set("cut")
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.mode == "cut"
		if !cut {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *proxy) serve(c net.Conn) {
	defer func() {
		c.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	defer func() {
		s.Close()
		p.mu.Lock()
		delete(p.conns, s)
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 && !p.muted() {
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
}

func (p *proxy) muted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode == "mute"
}

// set switches the mode; cut also drops every connection.
func (p *proxy) set(mode string) {
	p.mu.Lock()
	p.mode = mode
	var drop []net.Conn
	if mode == "cut" {
		for c := range p.conns {
			drop = append(drop, c)
		}
	}
	p.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
}

// faultOptions make failures show within seconds.
func faultOptions(o *Options) {
	o.Timeout = 2 * time.Second
	o.ConnectTimeout = time.Second
	o.ReconnectMin, o.ReconnectMax = 100*time.Millisecond, 500*time.Millisecond
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// While the cluster cannot be reached, writes fail with EUNAVAILABLE and
// Writable says so; once it is back, the store takes writes again by
// itself, and nothing accepted before is lost.
func TestClusterDownWhileRunning(t *testing.T) {
	ks := freshKeyspace(t)
	openTest(t, ks, nil).Close() // the schema
	p := newProxy(t, cqlHost(t))
	s := openTest(t, ks, func(o *Options) { o.Hosts = []string{p.addr()}; faultOptions(o) })
	ctx := context.Background()
	g := newTraffic("k", time.Now().Add(-time.Minute), time.Millisecond)
	before := g.accept(t, s, 3)

	p.set("cut")
	err := s.Accept(ctx, []sb.NewMessage{{Message: g.next()}})
	if sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Accept with the cluster down: %v, want %s", err, sb.EUNAVAILABLE)
	}
	if err := s.Writable(); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Writable with the cluster down: %v, want %s", err, sb.EUNAVAILABLE)
	}
	// Refused at once while unhealthy: no write waits for a timeout.
	start := time.Now()
	if err := s.Accept(ctx, []sb.NewMessage{{Message: g.next()}}); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("second Accept with the cluster down: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("an Accept refused while unhealthy took %v", d)
	}

	p.set("pass")
	waitFor(t, "writable again", 30*time.Second, func() bool { return s.Writable() == nil })
	after := g.accept(t, s, 2)
	got := pendingIDs(t, s, "k", "", 100)
	if want := append(ids(before), ids(after)...); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pending %v, want %v", got, want)
	}
}

// A store started while the cluster is down says why, retries, and
// connects by itself once the cluster is up.
func TestClusterDownAtStart(t *testing.T) {
	ks := freshKeyspace(t)
	p := newProxy(t, cqlHost(t))
	p.set("cut")
	opts := Options{Hosts: []string{p.addr()}, Keyspace: ks, ReplicationFactor: 1}
	faultOptions(&opts)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "a connection failure", 10*time.Second, func() bool {
		err := s.Writable()
		return sb.ErrorCode(err) == sb.EUNAVAILABLE && strings.Contains(err.Error(), p.addr())
	})
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.WaitReady(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady with the cluster down: %v", err)
	}
	_, err = s.Message(context.Background(), "msg_x")
	if sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Message before connecting: %v, want %s", err, sb.EUNAVAILABLE)
	}

	p.set("pass")
	ctx, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("Writable once connected: %v", err)
	}
	newTraffic("k", time.Now(), time.Millisecond).accept(t, s, 1)
}

// An Accept whose answer never comes (the rows may have landed) fails
// with EUNAVAILABLE, and once the cluster answers again its rows are
// deleted: the message, its pending entry and its idempotency record, so
// a retry with the same key is a new message. Meanwhile reads do not show
// it.
func TestUnknownOutcomeIsUndone(t *testing.T) {
	ks := freshKeyspace(t)
	openTest(t, ks, nil).Close()
	p := newProxy(t, cqlHost(t))
	s := openTest(t, ks, func(o *Options) { o.Hosts = []string{p.addr()}; faultOptions(o) })
	observer := openTest(t, ks, nil) // reads the server directly
	ctx := context.Background()
	g := newTraffic("k", time.Now().Add(-time.Minute), time.Millisecond)
	kept := g.accept(t, s, 1)

	lost := g.next()
	p.set("mute")
	err := s.Accept(ctx, []sb.NewMessage{{Message: lost, IdempotencyKey: "order-1"}})
	if sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Accept without answers: %v, want %s", err, sb.EUNAVAILABLE)
	}
	if _, err := s.Message(ctx, lost.ID); sb.ErrorCode(err) != sb.ENOTFOUND && sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Message of the undone write: %v", err)
	}

	p.set("cut") // drop the muted connections
	p.set("pass")
	waitFor(t, "writable again (the undo landed)", 30*time.Second, func() bool { return s.Writable() == nil })
	for _, st := range []*Store{s, observer} {
		if _, err := st.Message(ctx, lost.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatalf("Message of the undone write: %v, want %s", err, sb.ENOTFOUND)
		}
		if _, err := st.Idempotency(ctx, "k", "order-1"); sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatalf("Idempotency of the undone write: %v, want %s", err, sb.ENOTFOUND)
		}
		if got := pendingIDs(t, st, "k", "", 10); strings.Join(got, ",") != kept[0].ID {
			t.Fatalf("pending %v, want only %s", got, kept[0].ID)
		}
	}
	retry := g.next()
	if err := s.Accept(ctx, []sb.NewMessage{{Message: retry, IdempotencyKey: "order-1"}}); err != nil {
		t.Fatalf("Accept again with the key: %v", err)
	}
}

// A write that landed but whose answer was lost fails its Accept with
// EUNAVAILABLE; the message is not shown meanwhile and its rows are
// deleted once the cluster answers, so nothing the failed write touched is
// read as if it had landed.
func TestLandedButUnheardIsUndone(t *testing.T) {
	ks := freshKeyspace(t)
	s := openTest(t, ks, nil)
	observer := openTest(t, ks, nil)
	ctx := context.Background()
	g := newTraffic("k", time.Now().Add(-time.Minute), time.Millisecond)
	kept := g.accept(t, s, 1)

	lostRows := func(cql string) bool { return strings.Contains(cql, ".messages ") }
	s.lostAnswer.Store(&lostRows)
	lost := g.next()
	if err := s.Accept(ctx, []sb.NewMessage{{Message: lost}}); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Accept whose answer was lost: %v, want %s", err, sb.EUNAVAILABLE)
	}
	s.lostAnswer.Store(nil)
	if _, err := s.Message(ctx, lost.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("Message of the failed write: %v, want %s", err, sb.ENOTFOUND)
	}
	waitFor(t, "writable again (the undo landed)", 30*time.Second, func() bool { return s.Writable() == nil })
	for _, st := range []*Store{s, observer} {
		if _, err := st.Message(ctx, lost.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
			t.Fatalf("Message of the undone write: %v, want %s", err, sb.ENOTFOUND)
		}
		if got := pendingIDs(t, st, "k", "", 10); strings.Join(got, ",") != kept[0].ID {
			t.Fatalf("pending %v, want only %s", got, kept[0].ID)
		}
		if msgs, _, err := st.ListMessages(ctx, sb.MessageQuery{Key: "k", Day: lost.Day(), Limit: 10}); err != nil || len(msgs) != 1 {
			t.Fatalf("ListMessages = %d messages, %v; want the one kept", len(msgs), err)
		}
	}
}

// An undo queued while the store is healthy (a clean-up that failed, or
// one queued while a probe was landing) runs without waiting for another
// failure.
func TestUndoQueuedWhileHealthyRuns(t *testing.T) {
	ks := freshKeyspace(t)
	s := openTest(t, ks, nil)
	ctx := context.Background()
	m := newTraffic("k", time.Now().Add(-time.Minute), time.Millisecond).accept(t, s, 1)[0]

	s.undoLater(&undo{ids: []string{m.ID}, stmts: s.unplaceRows(m, s.clock.next())})
	waitFor(t, "the undo ran", 30*time.Second, func() bool { return !s.doomed.waiting() })
	if err := s.Writable(); err != nil {
		t.Fatalf("Writable after the undo: %v", err)
	}
	observer := openTest(t, ks, nil)
	if _, err := observer.Message(ctx, m.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("Message after its undo: %v, want %s", err, sb.ENOTFOUND)
	}
}

// A store closed while an undo waits runs it before it closes: the prober
// that would have run it stops with Close, and the message whose Accept
// failed would be read back, and sent, after the restart.
func TestCloseRunsTheUndosStillWaiting(t *testing.T) {
	ks := freshKeyspace(t)
	s := openTest(t, ks, nil)
	hold := make(chan struct{}) // never closed: the prober runs no undo
	s.holdProber.Store(&hold)
	ctx := context.Background()
	g := newTraffic("k", time.Now().Add(-time.Minute), time.Millisecond)
	lostRows := func(cql string) bool { return strings.Contains(cql, ".messages ") }
	s.lostAnswer.Store(&lostRows)
	lost := g.next()
	if err := s.Accept(ctx, []sb.NewMessage{{Message: lost}}); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("Accept whose answer was lost: %v, want %s", err, sb.EUNAVAILABLE)
	}
	s.lostAnswer.Store(nil)
	if !s.doomed.waiting() {
		t.Fatal("no undo waits for the failed Accept")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openTest(t, ks, nil)
	if _, err := reopened.Message(ctx, lost.ID); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Fatalf("Message of the failed Accept after a restart: %v, want %s", err, sb.ENOTFOUND)
	}
	if got := pendingIDs(t, reopened, "k", "", 10); len(got) != 0 {
		t.Fatalf("pending after a restart %v, want none", got)
	}
}
