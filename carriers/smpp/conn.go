package smpp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// MaxPDULength bounds command_length. SMPP itself allows more, but no real
// submit or deliver needs over 64 KiB and a bound keeps a hostile peer from
// making us allocate gigabytes.
const MaxPDULength = 64 << 10

const headerLength = 16

// Errors from ReadPDU. After ErrBadLength the stream cannot be trusted and
// the connection must be closed; after ErrUnknownCommand and ErrMalformed
// the body was consumed, the stream is still in step, and the caller answers
// with generic_nack (or the request's response with an error status).
var (
	ErrBadLength      = errors.New("smpp: command_length out of range")
	ErrUnknownCommand = errors.New("smpp: unknown command_id")
	ErrMalformed      = errors.New("smpp: malformed PDU body")
	ErrConnClosed     = errors.New("smpp: connection closed")
)

// Conn is one SMPP connection: a buffered reader used by a single reading
// goroutine, and a writer goroutine that drains a shared buffer, so many
// goroutines can Send and concurrent PDUs leave in one write.
type Conn struct {
	nc  net.Conn
	r   *bufio.Reader
	seq atomic.Uint32

	mu      sync.Mutex
	pending *pdu.ByteBuffer // PDUs marshalled, not yet written
	spare   *pdu.ByteBuffer // the buffer being written, swapped with pending
	wake    chan struct{}
	err     error // first write error, or ErrConnClosed
	done    chan struct{}

	writeTimeout time.Duration
}

// NewConn wraps nc and starts its writer goroutine, which stops when the
// connection is closed (by Close or by a write error).
func NewConn(nc net.Conn, writeTimeout time.Duration) *Conn {
	c := &Conn{
		nc:           nc,
		r:            bufio.NewReaderSize(nc, 64<<10),
		pending:      pdu.NewBuffer(make([]byte, 0, 64<<10)),
		spare:        pdu.NewBuffer(make([]byte, 0, 64<<10)),
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		writeTimeout: writeTimeout,
	}
	go c.writeLoop()
	return c
}

// NextSeq returns the next sequence number of this connection, in 1..2³¹-1.
func (c *Conn) NextSeq() int32 {
	for {
		v := int32(c.seq.Add(1) & 0x7FFFFFFF)
		if v != 0 {
			return v
		}
	}
}

// Send marshals p into the outgoing buffer. It never blocks on the network;
// the error is that of an earlier failed write, or ErrConnClosed.
func (c *Conn) Send(p pdu.PDU) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	p.Marshal(c.pending)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close closes the socket after writing what was already sent, bounded by
// the write timeout. It is safe to call more than once.
func (c *Conn) Close() error {
	c.fail(ErrConnClosed)
	<-c.done
	return nil
}

// Abort closes the socket at once, dropping anything not yet written, as a
// crashed peer or a cut cable would. The SMSC simulator uses it for faults.
func (c *Conn) Abort() {
	c.fail(ErrConnClosed)
	_ = c.nc.Close()
	<-c.done
}

// Done is closed when the writer has stopped and the socket is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection stopped, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) writeLoop() {
	defer close(c.done)
	defer c.nc.Close()
	for range c.wake {
		c.mu.Lock()
		c.pending, c.spare = c.spare, c.pending
		stopping := c.err != nil
		c.mu.Unlock()
		if c.spare.Len() > 0 {
			if c.writeTimeout > 0 {
				_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
			}
			_, err := c.nc.Write(c.spare.Bytes())
			c.spare.Reset()
			if err != nil {
				c.fail(fmt.Errorf("smpp write: %w", err))
				return
			}
		}
		if stopping {
			return
		}
	}
}

// Frame is one PDU read off the wire: the decoded PDU (nil when it could
// not be decoded), its header, and its raw bytes (header included), for the
// few fields gosmpp does not keep, such as an unknown data_coding.
type Frame struct {
	PDU    pdu.PDU
	Header pdu.Header
	Raw    []byte
}

// ReadPDU reads the next PDU. Only one goroutine may read. On
// ErrUnknownCommand and ErrMalformed the Frame still has the header, so the
// caller can answer its sequence number. It never panics on any input.
func (c *Conn) ReadPDU() (Frame, error) {
	return ReadPDU(c.r)
}

// ReadPDU reads one PDU from r; see Conn.ReadPDU.
func ReadPDU(r io.Reader) (f Frame, err error) {
	var hb [headerLength]byte
	if _, err = io.ReadFull(r, hb[:]); err != nil {
		return f, err
	}
	f.Header = pdu.ParseHeader(hb)
	n := binary.BigEndian.Uint32(hb[:4])
	if n < headerLength || n > MaxPDULength {
		return f, fmt.Errorf("%w: %d", ErrBadLength, n)
	}
	f.Raw = make([]byte, n)
	copy(f.Raw, hb[:])
	if _, err = io.ReadFull(r, f.Raw[headerLength:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the header promised a body
		}
		return f, err
	}
	f.PDU, err = DecodePDU(f.Raw)
	return f, err
}

// DecodePDU decodes one whole PDU (header included) held in raw. gosmpp's
// decoder runs under recover: a decoder bug must cost one PDU, not the
// process.
func DecodePDU(raw []byte) (p pdu.PDU, err error) {
	if len(raw) < headerLength {
		return nil, ErrBadLength
	}
	id := data.CommandIDType(binary.BigEndian.Uint32(raw[4:8]))
	p, err = pdu.CreatePDUFromCmdID(id)
	if err != nil {
		return nil, fmt.Errorf("%w: 0x%08x", ErrUnknownCommand, uint32(id))
	}
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrMalformed, r)
		}
	}()
	if err = p.Unmarshal(pdu.NewBuffer(raw)); err != nil {
		if q, ok := decodeWithoutUDH(id, raw); ok {
			return q, nil
		}
		if q, ok := decodeResponseHead(id, raw); ok {
			return q, nil
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, id, err)
	}
	return p, nil
}

// decodeWithoutUDH decodes a submit_sm or deliver_sm whose esm_class says
// its short_message starts with a UDH that gosmpp cannot parse: as if it
// said not, with esm_class then set back as sent. The user data is read
// from the raw PDU anyway (RawUserData), and a UDH that cannot be read is
// kept as part of the text (SplitUserData), as TS 23.040 has a receiver
// do; refusing the PDU would make the SMSC send it for ever.
func decodeWithoutUDH(id data.CommandIDType, raw []byte) (pdu.PDU, bool) {
	if id != data.SUBMIT_SM && id != data.DELIVER_SM {
		return nil, false
	}
	i, ok := esmClassOffset(raw)
	if !ok || raw[i]&data.SM_UDH_GSM == 0 {
		return nil, false
	}
	esm := raw[i]
	cleared := slices.Clone(raw)
	cleared[i] &^= data.SM_UDH_GSM
	p, _ := pdu.CreatePDUFromCmdID(id)
	if p.Unmarshal(pdu.NewBuffer(cleared)) != nil {
		return nil, false
	}
	switch v := p.(type) {
	case *pdu.SubmitSM:
		v.EsmClass = esm
	case *pdu.DeliverSM:
		v.EsmClass = esm
	}
	return p, true
}

// decodeResponseHead decodes a response whose body gosmpp cannot parse
// (carriers pad a submit_sm_resp with stray octets, or give a generic_nack
// a body) from what a response needs: its header and the C-octet string
// its body starts with (message_id, system_id), or the header alone. Its
// command_status then counts: refusing the whole PDU would retry a
// permanent refusal, or send an accepted message a second time.
func decodeResponseHead(id data.CommandIDType, raw []byte) (pdu.PDU, bool) {
	if !IsResponse(id) {
		return nil, false
	}
	body := raw[headerLength:]
	head := body
	if i := bytes.IndexByte(body, 0); i >= 0 {
		head = body[:i]
	}
	for _, b := range [][]byte{head, nil} {
		trimmed := make([]byte, headerLength, headerLength+len(b)+1)
		copy(trimmed, raw[:headerLength])
		if b != nil {
			trimmed = append(append(trimmed, b...), 0)
		}
		binary.BigEndian.PutUint32(trimmed[:4], uint32(len(trimmed)))
		p, _ := pdu.CreatePDUFromCmdID(id)
		if p.Unmarshal(pdu.NewBuffer(trimmed)) == nil {
			return p, true
		}
	}
	return nil, false
}

// IsResponse reports whether a command id is a response (bit 31 set).
func IsResponse(id data.CommandIDType) bool { return uint32(id)&0x80000000 != 0 }

// GenericNack builds a generic_nack for a sequence number.
func GenericNack(seq int32, status data.CommandStatusType) pdu.PDU {
	p := pdu.NewGenericNack()
	p.SetSequenceNumber(seq)
	setStatus(p, status)
	return p
}

// setStatus sets command_status on any PDU; gosmpp's interface lacks a setter.
func setStatus(p pdu.PDU, status data.CommandStatusType) {
	switch v := p.(type) {
	case *pdu.GenericNack:
		v.CommandStatus = status
	case *pdu.SubmitSMResp:
		v.CommandStatus = status
	case *pdu.DeliverSMResp:
		v.CommandStatus = status
	case *pdu.DataSMResp:
		v.CommandStatus = status
	case *pdu.BindResp:
		v.CommandStatus = status
	case *pdu.EnquireLinkResp:
		v.CommandStatus = status
	case *pdu.UnbindResp:
		v.CommandStatus = status
	case *pdu.QuerySMResp:
		v.CommandStatus = status
	case *pdu.CancelSMResp:
		v.CommandStatus = status
	case *pdu.ReplaceSMResp:
		v.CommandStatus = status
	case *pdu.SubmitMultiResp:
		v.CommandStatus = status
	}
}

// Response builds the response to a request with the given status, or a
// generic_nack for a PDU that has no response of its own.
func Response(req pdu.PDU, status data.CommandStatusType) pdu.PDU {
	if !req.CanResponse() {
		return GenericNack(req.GetSequenceNumber(), status)
	}
	resp := req.GetResponse()
	resp.SetSequenceNumber(req.GetSequenceNumber())
	setStatus(resp, status)
	return resp
}
