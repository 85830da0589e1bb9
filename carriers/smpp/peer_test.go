package smpp

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/rs/zerolog"
)

// scriptedPeer is a hand-driven SMPP server for tests that need a peer to
// misbehave in exact ways the simulator does not offer (garbage bytes, odd
// PDUs). It answers the bind, then runs script on each connection.
type scriptedPeer struct {
	ln     net.Listener
	wg     sync.WaitGroup
	conns  chan *Conn
	script func(c *Conn)
}

func newScriptedPeer(t *testing.T, script func(c *Conn)) *scriptedPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptedPeer{ln: ln, conns: make(chan *Conn, 16), script: script}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *scriptedPeer) addr() string { return p.ln.Addr().String() }

func (p *scriptedPeer) serve() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c := NewConn(nc, time.Second)
			defer c.Close()
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			req, ok := f.PDU.(*pdu.BindRequest)
			if !ok {
				return
			}
			resp := pdu.NewBindResp(*req)
			resp.SystemID = "peer"
			_ = c.Send(resp)
			p.script(c)
		}()
	}
}

// testConfig returns fast timings for loopback tests.
func testConfig(addr string) Config {
	return Config{
		Name: "test", Addr: addr, SystemID: "sb", Password: "pw",
		Window: 8, ResponseTimeout: 2 * time.Second,
		EnquireLinkInterval: time.Second, EnquireLinkTimeout: time.Second,
		BindTimeout: 2 * time.Second, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		Log: zerolog.Nop(),
	}
}

// runClient starts c.Run and stops it when the test ends.
func runClient(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestClientAnswersUnknownAndMalformedThenSurvivesBadLength(t *testing.T) {
	got := make(chan Frame, 8)
	peer := newScriptedPeer(t, func(c *Conn) {
		// An unknown command id: the client must answer generic_nack.
		_ = rawSend(c, []byte{0, 0, 0, 16, 0, 0, 0x07, 0x77, 0, 0, 0, 0, 0, 0, 0, 3})
		// A deliver_sm with a body too short to decode.
		_ = rawSend(c, []byte{0, 0, 0, 17, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 4, 0})
		for i := 0; i < 2; i++ {
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			got <- f
		}
		// Then a length no PDU may have: the client must drop the connection.
		_ = rawSend(c, []byte{0xFF, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5})
		_, _ = c.ReadPDU() // returns when the client closes
	})
	cl, err := NewClient(testConfig(peer.addr()))
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	for _, want := range []struct {
		seq    int32
		status data.CommandStatusType
	}{{3, data.ESME_RINVCMDID}, {4, data.ESME_RINVCMDLEN}} {
		f := <-got
		if f.Header.CommandID != data.GENERIC_NACK || f.Header.SequenceNumber != want.seq || f.Header.CommandStatus != want.status {
			t.Fatalf("got %s seq %d status %s, want generic_nack seq %d %s",
				f.Header.CommandID, f.Header.SequenceNumber, f.Header.CommandStatus, want.seq, want.status)
		}
	}
	// The bad length closes the connection; the client binds again.
	eventually(t, "a second bind after the bad length", func() bool { return cl.Stats().Binds >= 2 })
}

// rawSend writes bytes as they are, bypassing PDU encoding.
func rawSend(c *Conn, b []byte) error {
	c.mu.Lock()
	_, _ = c.pending.Write(b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// The peer answers submits only once the client has gone quiet for 30 ms,
// so the client fills its window before any answer comes: the client must never have
// more than Window in flight.
func TestWindowIsNeverExceeded(t *testing.T) {
	const window = 4
	maxSeen := make(chan int, 1)
	peer := newScriptedPeer(t, func(c *Conn) {
		var held []pdu.PDU
		most := 0
		answer := func() {
			for _, p := range held {
				resp := Response(p, data.ESME_ROK)
				resp.(*pdu.SubmitSMResp).MessageID = "m"
				_ = c.Send(resp)
			}
			held = held[:0]
		}
		for {
			_ = c.nc.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
			f, err := c.ReadPDU()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				answer()
				continue
			}
			if err != nil {
				maxSeen <- most
				return
			}
			if _, ok := f.PDU.(*pdu.SubmitSM); !ok {
				if f.PDU.CanResponse() {
					_ = c.Send(Response(f.PDU, data.ESME_ROK))
				}
				continue
			}
			held = append(held, f.PDU)
			most = max(most, len(held))
			if len(held) == window+1 {
				maxSeen <- most
				return
			}
		}
	})
	cfg := testConfig(peer.addr())
	cfg.Window = window
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cl.Submit(context.Background(), &Message{From: "Acme", To: "+447700900123", Text: "w"}); err != nil {
				t.Errorf("submit: %v", err)
			}
		}()
	}
	wg.Wait()
	select {
	case most := <-maxSeen:
		t.Fatalf("peer saw %d submits unanswered at once, window is %d", most, window)
	default:
	}
}

// Statuses other than throttled, queue full and system error are
// permanent and carry the carrier's code.
func TestPermanentStatusIsNotRetriable(t *testing.T) {
	peer := newScriptedPeer(t, func(c *Conn) {
		for {
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			status := data.ESME_RINVDSTADR
			if _, ok := f.PDU.(*pdu.SubmitSM); !ok {
				status = data.ESME_ROK
			}
			_ = c.Send(Response(f.PDU, status))
		}
	})
	cl, err := NewClient(testConfig(peer.addr()))
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	_, err = cl.Submit(context.Background(), &Message{From: "Acme", To: "+447700900123", Text: "nope"})
	var se *SubmitError
	if !errors.As(err, &se) || se.Status != data.ESME_RINVDSTADR || Retriable(err) {
		t.Fatalf("err = %v, want a permanent ESME_RINVDSTADR", err)
	}
}
