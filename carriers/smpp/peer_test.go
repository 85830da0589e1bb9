package smpp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
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

// answerUntilClosed answers every request the client sends with ESME_ROK
// (enquire_link, unbind) until the connection ends.
func answerUntilClosed(c *Conn) {
	for {
		f, err := c.ReadPDU()
		if err != nil {
			return
		}
		if f.PDU != nil && f.PDU.CanResponse() {
			_ = c.Send(Response(f.PDU, data.ESME_ROK))
		}
	}
}

// An SMSC that accepts every bind and closes the connection at once is
// bound again after waits that grow, as after failed binds: only a session
// that stayed up for ReconnectMax starts the waits again from ReconnectMin.
// The waits are drawn with full jitter, so no single pair of gaps is
// ordered for sure; the assertions hold with any draw but a vanishingly
// unlikely one (below 1e-6).
func TestBindDroppedAtOnceBacksOff(t *testing.T) {
	const attempts = 11
	bound := make(chan time.Time, attempts)
	peer := newScriptedPeer(t, func(*Conn) {
		select {
		case bound <- time.Now():
		default:
		}
	})
	cfg := testConfig(peer.addr())
	cfg.ReconnectMin, cfg.ReconnectMax = 2*time.Millisecond, 128*time.Millisecond
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	deadline := time.After(10 * time.Second)
	var at []time.Time
	for len(at) < attempts {
		select {
		case ts := <-bound:
			at = append(at, ts)
		case <-deadline:
			t.Fatalf("%d binds in 10 s, want %d", len(at), attempts)
		}
	}
	// Each attempt after the first follows a session that was bound.
	if n := cl.Stats().Binds; n < attempts-1 {
		t.Fatalf("%d binds succeeded of %d attempts", n, attempts)
	}
	gaps := make([]time.Duration, attempts-1)
	for i := range gaps {
		gaps[i] = at[i+1].Sub(at[i])
	}
	// Reset by each bind, every wait would be at most ReconnectMin.
	if longest := slices.Max(gaps); longest < 4*cfg.ReconnectMin {
		t.Fatalf("gaps between binds %v: none reached %v, the waits did not grow", gaps, 4*cfg.ReconnectMin)
	}
	if later := slices.Max(gaps[len(gaps)/2:]); later <= gaps[0] {
		t.Fatalf("gaps between binds %v: none of the later ones longer than the first", gaps)
	}
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
// permanent and carry the carrier's code, also when the submit_sm_resp has
// a stray octet after its (empty) message_id.
func TestPermanentStatusIsNotRetriable(t *testing.T) {
	padded := func(c *Conn, f Frame) {
		b := []byte{0, 0, 0, 18, 0x80, 0, 0, 4, 0, 0, 0, 0x0B, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[12:], uint32(f.Header.SequenceNumber))
		_ = rawSend(c, b)
	}
	plain := func(c *Conn, f Frame) { _ = c.Send(Response(f.PDU, data.ESME_RINVDSTADR)) }
	for name, answer := range map[string]func(*Conn, Frame){"plain": plain, "padded": padded} {
		err := submitOnce(t, answer)
		var se *SubmitError
		if !errors.As(err, &se) || se.Status != data.ESME_RINVDSTADR || Retriable(err) {
			t.Fatalf("%s: err = %v (retriable %v), want a permanent ESME_RINVDSTADR", name, err, Retriable(err))
		}
	}
}

// submitOnce submits one message to a peer that answers its submit_sm
// with answer (and any other request with ESME_ROK) and returns the error.
func submitOnce(t *testing.T, answer func(c *Conn, f Frame)) error {
	peer := newScriptedPeer(t, func(c *Conn) {
		for {
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			if _, ok := f.PDU.(*pdu.SubmitSM); ok {
				answer(c, f)
			} else {
				answerRequest(c, f)
			}
		}
	})
	cl, err := NewClient(testConfig(peer.addr()))
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	_, err = cl.Submit(context.Background(), &Message{From: "Acme", To: "+447700900123", Text: "nope"})
	return err
}

// partPeer answers submit_sm by its concatenation sequence: parts listed in
// refuse get that status, others an id "p<seq>-<n>". It records every part
// it sees (seq and reference).
type partPeer struct {
	mu     sync.Mutex
	seen   []string // "ref/seq"
	refuse map[byte]data.CommandStatusType
	noID   map[byte]bool // parts accepted with an empty message_id
	n      int
}

func (pp *partPeer) script(c *Conn) {
	for {
		f, err := c.ReadPDU()
		if err != nil {
			return
		}
		sm, ok := f.PDU.(*pdu.SubmitSM)
		if !ok {
			_ = c.Send(Response(f.PDU, data.ESME_ROK))
			continue
		}
		_, seq, ref, _ := sm.Message.UDH().GetConcatInfo()
		pp.mu.Lock()
		pp.seen = append(pp.seen, fmt.Sprintf("%d/%d", ref, seq))
		status, refused := pp.refuse[seq]
		pp.n++
		id := fmt.Sprintf("p%d-%d", seq, pp.n)
		if pp.noID[seq] {
			id = ""
		}
		pp.mu.Unlock()
		if refused {
			_ = c.Send(Response(f.PDU, status))
			continue
		}
		resp := pdu.NewSubmitSMRespFromReq(sm).(*pdu.SubmitSMResp)
		resp.MessageID = id
		_ = c.Send(resp)
	}
}

func (pp *partPeer) parts() []string {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return append([]string(nil), pp.seen...)
}

// A long message whose later part fails reports the parts the carrier
// accepted; sent again with those as Accepted and the same reference, only
// the missing parts go out.
func TestRetryOfALongMessageSendsOnlyMissingParts(t *testing.T) {
	pp := &partPeer{refuse: map[byte]data.CommandStatusType{3: data.ESME_RMSGQFUL}}
	peer := newScriptedPeer(t, pp.script)
	cfg := testConfig(peer.addr())
	cfg.Window = 1 // one part at a time, so part 3 is the first to fail
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	m := &Message{From: "Acme", To: "+447700900123", Text: strings.Repeat("x", 153*3), Ref: 77, UseRef: true}
	res, err := cl.Submit(context.Background(), m)
	if !Retriable(err) || len(res.CarrierIDs) != 3 || res.CarrierIDs[0] == "" || res.CarrierIDs[1] == "" || res.CarrierIDs[2] != "" {
		t.Fatalf("first try: %v, %v; want a retriable error with ids for parts 1 and 2", res.CarrierIDs, err)
	}
	pp.mu.Lock()
	delete(pp.refuse, 3)
	pp.mu.Unlock()
	m.Accepted = res.CarrierIDs
	res2, err := cl.Submit(context.Background(), m)
	if err != nil || res2.CarrierIDs[0] != res.CarrierIDs[0] || res2.CarrierIDs[1] != res.CarrierIDs[1] || res2.CarrierIDs[2] == "" {
		t.Fatalf("second try: %v, %v; want the first two ids kept and a third", res2.CarrierIDs, err)
	}
	want := []string{"77/1", "77/2", "77/3", "77/3"}
	if got := pp.parts(); !slices.Equal(got, want) {
		t.Fatalf("parts sent %v, want %v (ref 77, part 3 twice, parts 1 and 2 once)", got, want)
	}
}

// A part the carrier accepted with an empty message_id is accepted: it
// comes back as NoID, and a retry of the message after a later part failed
// does not send it again.
func TestPartAcceptedWithoutAnIDIsNotSentAgain(t *testing.T) {
	pp := &partPeer{refuse: map[byte]data.CommandStatusType{2: data.ESME_RMSGQFUL}, noID: map[byte]bool{1: true}}
	peer := newScriptedPeer(t, pp.script)
	cfg := testConfig(peer.addr())
	cfg.Window = 1
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	m := &Message{From: "Acme", To: "+447700900123", Text: strings.Repeat("x", 153*2), Ref: 9, UseRef: true}
	res, err := cl.Submit(context.Background(), m)
	if !Retriable(err) || len(res.CarrierIDs) != 2 || res.CarrierIDs[0] != NoID || res.CarrierIDs[1] != "" {
		t.Fatalf("first try: %q, %v; want a retriable error, part 1 accepted without an id (NoID)", res.CarrierIDs, err)
	}
	pp.mu.Lock()
	delete(pp.refuse, 2)
	pp.mu.Unlock()
	m.Accepted = res.CarrierIDs
	if res, err = cl.Submit(context.Background(), m); err != nil || res.CarrierIDs[0] != NoID || res.CarrierIDs[1] == "" {
		t.Fatalf("second try: %q, %v", res.CarrierIDs, err)
	}
	if got, want := pp.parts(), []string{"9/1", "9/2", "9/2"}; !slices.Equal(got, want) {
		t.Fatalf("parts sent %v, want %v: part 1 once", got, want)
	}
}

// A carrier's own table overrides which statuses are retriable.
func TestStatusTableOverridesDefaults(t *testing.T) {
	pp := &partPeer{refuse: map[byte]data.CommandStatusType{0: data.ESME_RSUBMITFAIL}}
	peer := newScriptedPeer(t, pp.script)
	for _, tc := range []struct {
		table Statuses
		want  bool
	}{
		{nil, false},
		{Statuses{data.ESME_RSUBMITFAIL: true}, true},
	} {
		cfg := testConfig(peer.addr())
		cfg.Statuses = tc.table
		cl, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		runClient(t, cl)
		eventually(t, "bound", cl.Bound)
		_, err = cl.Submit(context.Background(), &Message{From: "Acme", To: "+447700900123", Text: "hi"})
		var se *SubmitError
		if !errors.As(err, &se) || se.Status != data.ESME_RSUBMITFAIL || Retriable(err) != tc.want {
			t.Fatalf("table %v: err %v, want ESME_RSUBMITFAIL with retriable %v", tc.table, err, tc.want)
		}
	}
	if Statuses(nil).Retriable(data.ESME_RINVDSTADR) || !Statuses(nil).Retriable(data.ESME_RTHROTTLED) ||
		!(Statuses{data.ESME_RINVDSTADR: true}).Retriable(data.ESME_RINVDSTADR) ||
		(Statuses{data.ESME_RTHROTTLED: false}).Retriable(data.ESME_RTHROTTLED) {
		t.Fatal("Statuses.Retriable does not follow its table over the defaults")
	}
}

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]data.CommandStatusType{
		"0x00000045": data.ESME_RSUBMITFAIL, "0x45": data.ESME_RSUBMITFAIL, "69": data.ESME_RSUBMITFAIL,
		"ESME_RSUBMITFAIL": data.ESME_RSUBMITFAIL, "esme_rthrottled": data.ESME_RTHROTTLED, " 0x58 ": data.ESME_RTHROTTLED,
	} {
		if got, err := ParseStatus(in); err != nil || got != want {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ESME_NOPE", "0x1FFFFFFFF", "-1"} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) took it", bad)
		}
	}
}

// A peer that sends receipts without a window of its own gets at most
// ReceiveWindow of them read before the first is acknowledged: the reader
// waits, and each ack lets one more in.
func TestReceiveWindowBoundsUnacknowledgedDeliveries(t *testing.T) {
	const window, sent = 5, 20
	answered := make(chan int, 1)
	peer := newScriptedPeer(t, func(c *Conn) {
		for i := range sent {
			d := pdu.NewDeliverSM().(*pdu.DeliverSM)
			_ = d.Message.SetMessageDataWithEncoding([]byte(fmt.Sprintf("id:%d sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:hi", i)), DataCoding(0))
			d.EsmClass = 0x04
			d.SetSequenceNumber(int32(i + 1))
			if c.Send(d) != nil {
				return
			}
		}
		n := 0
		for n < sent {
			f, err := c.ReadPDU()
			if err != nil {
				break
			}
			if _, ok := f.PDU.(*pdu.DeliverSMResp); ok {
				n++
			} else if f.PDU.CanResponse() {
				_ = c.Send(Response(f.PDU, data.ESME_ROK))
			}
		}
		answered <- n
	})
	acks := make(chan func(error), sent)
	cfg := testConfig(peer.addr())
	cfg.ReceiveWindow = window
	cfg.OnReceipt = func(_ switchboard.Receipt, ack func(error)) { acks <- ack }
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)

	eventually(t, "the reader to wait at a full window", func() bool { return cl.Stats().ReceiveWindowFull > 0 })
	if n := len(acks); n != window {
		t.Fatalf("%d receipts read with none acknowledged, want the window, %d", n, window)
	}
	(<-acks)(nil)
	eventually(t, "one more receipt after one ack", func() bool { return cl.Stats().Receipts == window+1 })
	for i := 1; i < sent; i++ {
		(<-acks)(nil)
	}
	if n := <-answered; n != sent {
		t.Fatalf("peer got %d deliver_sm_resp, want %d", n, sent)
	}
}

// windowPeer sends two receipts at once, then answers every request: a
// submit_sm with id 42 (noted on answered), an enquire_link (counted).
type windowPeer struct {
	enquires atomic.Int32
	answered chan struct{}
}

func (wp *windowPeer) script(c *Conn) {
	for i := range 2 {
		d := pdu.NewDeliverSM().(*pdu.DeliverSM)
		_ = d.Message.SetMessageDataWithEncoding([]byte(fmt.Sprintf("id:%d stat:DELIVRD", i+1)), DataCoding(0))
		d.EsmClass = 0x04
		d.SetSequenceNumber(int32(100 + i))
		_ = c.Send(d)
	}
	for {
		f, err := c.ReadPDU()
		if err != nil {
			return
		}
		switch p := f.PDU.(type) {
		case *pdu.SubmitSM:
			r := pdu.NewSubmitSMRespFromReq(p).(*pdu.SubmitSMResp)
			r.MessageID = "42"
			_ = c.Send(r)
			select {
			case wp.answered <- struct{}{}:
			default:
			}
		case *pdu.EnquireLink:
			wp.enquires.Add(1)
			_ = c.Send(Response(p, data.ESME_ROK))
		default:
			if p.CanResponse() {
				_ = c.Send(Response(p, data.ESME_ROK))
			}
		}
	}
}

// A reader that waits at a full receive window for longer than a few
// response timeouts (the store hangs) no longer holds the deadlines back:
// the submits in flight fail, to be retried, rather than hang with it.
func TestAReceiveWindowWaitHoldsDeadlinesBackForALimitedTime(t *testing.T) {
	wp := &windowPeer{answered: make(chan struct{}, 1)}
	peer := newScriptedPeer(t, wp.script)
	cfg := testConfig(peer.addr())
	cfg.ReceiveWindow = 1
	cfg.EnquireLinkInterval, cfg.EnquireLinkTimeout, cfg.ResponseTimeout = 50*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	cfg.OnReceipt = func(switchboard.Receipt, func(error)) {} // never acknowledged
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "the reader to wait at the full window", func() bool { return cl.Stats().ReceiveWindowFull > 0 })
	_, err = cl.Submit(context.Background(), &Message{From: "+1", To: "+2", Text: "hi"})
	if err == nil || !Retriable(err) {
		t.Fatalf("a submit behind a reader stuck for good: %v, want a retriable failure", err)
	}
}

// While the reader waits at a full receive window (our store is slow to
// take receipts), the answers behind it stay unread: the wait does not
// count against their deadlines, so a healthy peer is not declared dead
// and a submit it accepted is not failed (and sent again) as timed out.
func TestReceiveWindowWaitIsNotAPeerTimeout(t *testing.T) {
	wp := &windowPeer{answered: make(chan struct{}, 1)}
	peer := newScriptedPeer(t, wp.script)
	cfg := testConfig(peer.addr())
	cfg.ReceiveWindow = 1
	cfg.EnquireLinkInterval, cfg.EnquireLinkTimeout, cfg.ResponseTimeout = 50*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
	acks := make(chan func(error), 4)
	cfg.OnReceipt = func(_ switchboard.Receipt, ack func(error)) { acks <- ack }
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "the reader to wait at the full window", func() bool { return cl.Stats().ReceiveWindowFull > 0 })
	held := <-acks

	submitted := make(chan error, 1)
	go func() {
		_, err := cl.Submit(context.Background(), &Message{From: "+1", To: "+2", Text: "hi"})
		submitted <- err
	}()
	<-wp.answered
	// Past every deadline: the submit's, and an enquire_link's sent after it.
	from := wp.enquires.Load()
	eventually(t, "enquire_links past the response timeout", func() bool { return wp.enquires.Load() >= from+6 })
	held(nil)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case ack := <-acks:
				ack(nil)
			case <-done:
				return
			}
		}
	}()
	if err := <-submitted; err != nil {
		t.Fatalf("submit to a healthy peer while the reader waited: %v", err)
	}
	if st := cl.Stats(); st.Reconnects != 0 {
		t.Fatalf("%d reconnects to a healthy peer, want 0", st.Reconnects)
	}
}

// The waits of the reader push a request's deadline back by maxPark at
// most, however many there were: a store that keeps the window full, ack
// by slow ack, cannot keep an unanswered enquire_link alive for ever.
func TestReceiveWindowCreditIsCappedPerRequest(t *testing.T) {
	cl, err := NewClient(testConfig("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	s := &session{c: cl, inflight: map[int32]*request{}, drained: make(chan struct{})}
	now := time.Now()
	req := &request{deadline: now.Add(-time.Millisecond), reply: make(chan pdu.PDU, 1)}
	s.inflight[1] = req
	s.paused = s.maxPark() / 2 // credit enough: not late yet
	if s.expire(now) {
		t.Fatal("a request within its credit expired")
	}
	s.paused = 10 * s.maxPark() // many waits, each under the cap
	if !s.expire(now.Add(s.maxPark())) {
		t.Fatal("a request past its deadline and the most credit a request gets did not expire")
	}
}

// answerRequest answers a request PDU with ESME_ROK.
func answerRequest(c *Conn, f Frame) {
	if f.PDU != nil && f.PDU.CanResponse() {
		_ = c.Send(Response(f.PDU, data.ESME_ROK))
	}
}

// A bind that is not bound refuses parts without taking the carrier's
// TPS tokens, which the carrier's other binds need.
func TestAnUnboundBindTakesNoTokens(t *testing.T) {
	lim := NewLimiter(1) // one token a second
	cfg := testConfig("127.0.0.1:1")
	cfg.Limiter = lim
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	for range 3 {
		_, err := cl.Submit(context.Background(), &Message{From: "Acme", To: "+447700900123", Text: "t"})
		if !errors.Is(err, ErrNotBound) {
			t.Fatalf("err = %v, want ErrNotBound", err)
		}
	}
	if wait := lim.Reserve(time.Now(), 1); wait > 0 {
		t.Fatalf("the limiter's token was taken by an unbound bind: next wait %v", wait)
	}
}

// A full window refused with ESME_RTHROTTLED at once is one overload: the
// pause is the first step for every part of it, however the refusals and
// the next parts' pacing interleave; the window sent after the pause,
// refused again, doubles it once.
func TestAThrottledWindowPausesOnce(t *testing.T) {
	const window = 8
	peer := newScriptedPeer(t, func(c *Conn) {
		var held []pdu.PDU
		for {
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			if _, ok := f.PDU.(*pdu.SubmitSM); !ok {
				answerRequest(c, f)
				continue
			}
			if held = append(held, f.PDU); len(held) < window {
				continue // refuse each window's parts together
			}
			for _, p := range held {
				_ = c.Send(Response(p, data.ESME_RTHROTTLED))
			}
			held = nil
		}
	})
	cfg := testConfig(peer.addr())
	cfg.Window = window
	cfg.ThrottlePause, cfg.ThrottleMax = 20*time.Millisecond, 5*time.Second
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	waits := make(chan time.Duration, 2*window)
	for range 2 * window { // two windows' worth: the second waits for the first
		go func() {
			_, err := cl.Submit(context.Background(), &Message{From: "Acme", To: "+447700900123", Text: "t"})
			var se *SubmitError
			if !errors.As(err, &se) || se.Status != data.ESME_RTHROTTLED {
				t.Errorf("err = %v, want ESME_RTHROTTLED", err)
			}
			waits <- se.RetryAfter
		}()
	}
	got := map[time.Duration]int{}
	for range 2 * window {
		got[<-waits]++
	}
	if want := map[time.Duration]int{cfg.ThrottlePause: window, 2 * cfg.ThrottlePause: window}; !maps.Equal(got, want) {
		t.Fatalf("parts were told to wait %v, want %v: one pause for the first window, twice that for the second", got, want)
	}
}

// Many waits at a full receive window, each shorter than keepAlive's
// sweep, add up: a response read after a dozen receipts, each acknowledged
// 70 ms after it arrived, is not taken as late though the waits together
// outlast its deadline.
func TestShortReceiveWindowWaitsAddUp(t *testing.T) {
	const receipts = 12
	peer := newScriptedPeer(t, func(c *Conn) {
		for {
			f, err := c.ReadPDU()
			if err != nil {
				return
			}
			switch p := f.PDU.(type) {
			case *pdu.SubmitSM: // the receipts first, then the answer
				for i := range receipts {
					d := pdu.NewDeliverSM().(*pdu.DeliverSM)
					_ = d.Message.SetMessageDataWithEncoding([]byte(fmt.Sprintf("id:%d stat:DELIVRD", i+1)), DataCoding(0))
					d.EsmClass = 0x04
					d.SetSequenceNumber(int32(200 + i))
					_ = c.Send(d)
				}
				r := pdu.NewSubmitSMRespFromReq(p).(*pdu.SubmitSMResp)
				r.MessageID = "42"
				_ = c.Send(r)
			default:
				if p.CanResponse() {
					_ = c.Send(Response(p, data.ESME_ROK))
				}
			}
		}
	})
	cfg := testConfig(peer.addr())
	cfg.ReceiveWindow = 1
	// A sweep every 100 ms; the waits add up to 12 × 70 ms, past 400 ms.
	cfg.EnquireLinkInterval, cfg.EnquireLinkTimeout, cfg.ResponseTimeout = 10*time.Second, 400*time.Millisecond, 400*time.Millisecond
	cfg.OnReceipt = func(_ switchboard.Receipt, ack func(error)) {
		time.AfterFunc(70*time.Millisecond, func() { ack(nil) })
	}
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	eventually(t, "bound", cl.Bound)
	if _, err := cl.Submit(context.Background(), &Message{From: "+1", To: "+2", Text: "x"}); err != nil {
		t.Fatalf("a submit answered behind short waits at the receive window: %v", err)
	}
	if st := cl.Stats(); st.ReceiveWindowFull < receipts-1 || st.Timeouts != 0 {
		t.Fatalf("stats %+v: want a wait per receipt and no timeout", st)
	}
}
