package smsc

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// waitTimeout bounds every wait in these tests; passing tests never reach it.
const waitTimeout = 5 * time.Second

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// listen starts a server that is closed when the test ends.
func listen(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testClient is a minimal ESME: it reads every PDU into frames, answering
// deliver_sm itself (refusing the first `refuse` of them).
type testClient struct {
	t      testing.TB
	nc     net.Conn
	conn   *smpp.Conn
	frames chan smpp.Frame
	done   chan struct{}
	refuse atomic.Int32 // deliver_sm still to answer with ESME_RX_T_APPN
	silent atomic.Bool  // do not answer deliver_sm at all
}

func dial(t testing.TB, addr string) *testClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &testClient{
		t:      t,
		nc:     nc,
		conn:   smpp.NewConn(nc, time.Second),
		frames: make(chan smpp.Frame, 1<<14),
		done:   make(chan struct{}),
	}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *testClient) read() {
	defer close(c.done)
	defer close(c.frames)
	for {
		f, err := c.conn.ReadPDU()
		if err != nil {
			return
		}
		if d, ok := f.PDU.(*pdu.DeliverSM); ok && !c.silent.Load() {
			status := data.ESME_ROK
			if c.refuse.Add(-1) >= 0 {
				status = data.ESME_RX_T_APPN
			}
			_ = c.conn.Send(smpp.Response(d, status))
		}
		c.frames <- f
	}
}

func (c *testClient) close() {
	c.conn.Abort()
	<-c.done
}

// closed reports whether the server closed the connection (after the
// frames already read are consumed).
func (c *testClient) closed(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return true
			}
		case <-timer.C:
			return false
		}
	}
}

// next returns the next PDU, failing the test after waitTimeout.
func (c *testClient) next() smpp.Frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatal("connection closed while waiting for a PDU")
		}
		return f
	case <-time.After(waitTimeout):
		c.t.Fatal("timed out waiting for a PDU")
	}
	return smpp.Frame{}
}

// nextOf returns the next PDU with command id id, skipping others.
func (c *testClient) nextOf(id data.CommandIDType) smpp.Frame {
	c.t.Helper()
	for {
		if f := c.next(); f.Header.CommandID == id {
			return f
		}
	}
}

// none asserts that no PDU arrives for d. Absence can only be shown by
// waiting; d is kept short.
func (c *testClient) none(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("unexpected %s", f.Header.CommandID)
		}
	case <-time.After(d):
	}
}

func (c *testClient) send(p pdu.PDU) {
	c.t.Helper()
	if err := c.conn.Send(p); err != nil {
		c.t.Fatal(err)
	}
}

// bind sends a bind and returns the bind_resp.
func (c *testClient) bind(typ pdu.BindingType, systemID, password string) *pdu.BindResp {
	c.t.Helper()
	b := pdu.NewBindRequest(typ)
	b.SetSequenceNumber(c.conn.NextSeq())
	b.SystemID, b.Password = systemID, password
	c.send(b)
	f := c.next()
	r, ok := f.PDU.(*pdu.BindResp)
	if !ok || r.GetSequenceNumber() != b.GetSequenceNumber() {
		c.t.Fatalf("bind answered with %s seq %d", f.Header.CommandID, f.Header.SequenceNumber)
	}
	return r
}

// mustBind binds and fails the test unless the bind succeeds.
func (c *testClient) mustBind(typ pdu.BindingType, systemID string) {
	c.t.Helper()
	if r := c.bind(typ, systemID, "secret"); r.CommandStatus != data.ESME_ROK {
		c.t.Fatalf("bind %s: %s", systemID, r.CommandStatus)
	}
}

// submit sends a submit_sm and returns it.
func (c *testClient) submit(text string, registered byte) *pdu.SubmitSM {
	c.t.Helper()
	p := newSubmit(c.conn.NextSeq(), "Acme", "447700900123", []byte(text), registered)
	c.send(p)
	return p
}

func newSubmit(seq int32, from, to string, ud []byte, registered byte) *pdu.SubmitSM {
	p := pdu.NewSubmitSM().(*pdu.SubmitSM)
	p.SetSequenceNumber(seq)
	p.SourceAddr, _ = pdu.NewAddressWithTonNpiAddr(5, 0, from)
	p.DestAddr, _ = pdu.NewAddressWithTonNpiAddr(1, 1, to)
	p.RegisteredDelivery = registered
	_ = p.Message.SetMessageDataWithEncoding(ud, data.GSM7BIT)
	return p
}

// submitResp submits and waits for the submit_sm_resp.
func (c *testClient) submitResp(text string, registered byte) *pdu.SubmitSMResp {
	c.t.Helper()
	p := c.submit(text, registered)
	f := c.nextOf(data.SUBMIT_SM_RESP)
	if f.Header.SequenceNumber != p.GetSequenceNumber() {
		c.t.Fatalf("submit_sm_resp seq %d, want %d", f.Header.SequenceNumber, p.GetSequenceNumber())
	}
	return f.PDU.(*pdu.SubmitSMResp)
}

// receipt waits for the next deliver_sm and checks it is a receipt.
func (c *testClient) receipt() *pdu.DeliverSM {
	c.t.Helper()
	d := c.nextOf(data.DELIVER_SM).PDU.(*pdu.DeliverSM)
	if d.EsmClass != esmReceipt {
		c.t.Fatalf("deliver_sm esm_class 0x%02X, want a receipt", d.EsmClass)
	}
	return d
}

// receiptedID returns the receipted_message_id TLV without its NUL.
func receiptedID(d *pdu.DeliverSM) string {
	f := d.OptionalParameters[pdu.TagReceiptedMessageID]
	return f.String()
}

// writeRaw writes bytes past the PDU encoder. smpp.Conn's writer leaves a
// write deadline on the socket, so it is cleared first.
func (c *testClient) writeRaw(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Time{})
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}
