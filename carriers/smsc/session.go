package smsc

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// session is one client connection. Its goroutine (serve) reads every PDU
// and answers inline; other goroutines only send deliver_sm on it.
type session struct {
	srv  *Server
	id   uint64
	conn *smpp.Conn
	log  zerolog.Logger

	// Bind state, written when the bind succeeds and read only by serve's
	// goroutine: other goroutines reach the session through its account.
	bound    bool
	bindType pdu.BindingType
	systemID string
	acct     *account
	submits  int // submit_sm received; serve only

	mu       sync.Mutex
	closed   bool
	inflight map[int32]*delivery // deliver_sm awaiting deliver_sm_resp, by sequence number
}

func newSession(s *Server, id uint64, conn *smpp.Conn) *session {
	return &session{
		srv:      s,
		id:       id,
		conn:     conn,
		log:      s.log.With().Uint64("bind", id).Stringer("remote", conn.RemoteAddr()).Logger(),
		inflight: make(map[int32]*delivery),
	}
}

func (ss *session) canReceive() bool {
	return ss.bound && (ss.bindType == pdu.Receiver || ss.bindType == pdu.Transceiver)
}

func (ss *session) canTransmit() bool {
	return ss.bound && (ss.bindType == pdu.Transmitter || ss.bindType == pdu.Transceiver)
}

// serve reads and answers until the connection ends, then cleans up.
func (ss *session) serve() {
	defer ss.finish()
	ss.log.Debug().Msg("smsc connection accepted")
	for {
		f, err := ss.conn.ReadPDU()
		if err != nil {
			if !ss.readFailed(f, err) {
				return
			}
			continue
		}
		if !ss.handle(f) {
			return
		}
	}
}

// readFailed answers a PDU that could not be decoded and reports whether
// the stream is still in step and serving should go on.
func (ss *session) readFailed(f smpp.Frame, err error) bool {
	switch {
	case errors.Is(err, smpp.ErrUnknownCommand):
		ss.nack(f.Header.SequenceNumber, data.ESME_RINVCMDID)
		return true
	case errors.Is(err, smpp.ErrMalformed):
		if smpp.IsResponse(f.Header.CommandID) {
			// The header is all a response needs. gosmpp rejects a
			// deliver_sm_resp without a body, which clients send with
			// error statuses.
			ss.response(f.Header)
			return true
		}
		ss.log.Debug().Err(err).Msg("smsc malformed PDU")
		ss.nack(f.Header.SequenceNumber, data.ESME_RINVCMDLEN)
		return true
	case errors.Is(err, smpp.ErrBadLength):
		ss.log.Warn().Err(err).Msg("smsc closing connection: PDU length out of range, stream out of step")
		return false
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		ss.log.Debug().Err(err).Msg("smsc connection closed")
		return false
	default:
		ss.log.Debug().Err(err).Msg("smsc read failed")
		return false
	}
}

// handle answers one PDU and reports whether to keep serving.
func (ss *session) handle(f smpp.Frame) bool {
	if smpp.IsResponse(f.Header.CommandID) {
		ss.response(f.Header)
		return true
	}
	if ss.srv.faults.Load().Hang {
		return true
	}
	switch p := f.PDU.(type) {
	case *pdu.BindRequest:
		ss.bind(p)
	case *pdu.EnquireLink:
		// Answered in any state: clients probe before binding too.
		ss.srv.st.enquireLinks.Add(1)
		ss.reply(p, data.ESME_ROK)
	case *pdu.Unbind:
		if !ss.bound {
			ss.reply(p, data.ESME_RINVBNDSTS)
			return true
		}
		ss.reply(p, data.ESME_ROK)
		ss.log.Info().Msg("smsc unbound by client")
		return false
	case *pdu.SubmitSM:
		return ss.submit(p, f.Raw)
	default:
		status := data.ESME_RINVCMDID // query_sm, data_sm, ...: not simulated
		if !ss.bound {
			status = data.ESME_RINVBNDSTS
		}
		ss.reply(f.PDU, status)
	}
	return true
}

// reply sends req's response with status, counting generic_nacks.
func (ss *session) reply(req pdu.PDU, status data.CommandStatusType) {
	resp := smpp.Response(req, status)
	if resp.IsGNack() {
		ss.srv.st.genericNack.Add(1)
	}
	_ = ss.conn.Send(resp) // fails only when closed; serve then stops
}

func (ss *session) nack(seq int32, status data.CommandStatusType) {
	if ss.srv.faults.Load().Hang {
		return
	}
	ss.srv.st.genericNack.Add(1)
	_ = ss.conn.Send(smpp.GenericNack(seq, status))
}

// response handles a response from the client; only answers to our
// deliver_sm matter.
func (ss *session) response(h pdu.Header) {
	if h.CommandID != data.DELIVER_SM_RESP && h.CommandID != data.GENERIC_NACK {
		return // enquire_link_resp, unbind_resp, or a stray response
	}
	ss.mu.Lock()
	d := ss.inflight[h.SequenceNumber]
	delete(ss.inflight, h.SequenceNumber)
	ss.mu.Unlock()
	if d == nil {
		ss.log.Debug().Int32("seq", h.SequenceNumber).Msg("smsc response to no deliver_sm in flight")
		return
	}
	ss.srv.st.inFlight.Add(-1)
	ok := h.CommandID == data.DELIVER_SM_RESP && h.CommandStatus == data.ESME_ROK
	if !ok {
		ss.log.Debug().Int32("seq", h.SequenceNumber).Stringer("status", h.CommandStatus).
			Msg("smsc deliver_sm refused; will send again")
	}
	ss.srv.acknowledged(d, ok)
}

// bind answers a bind request and, on success, makes the session a
// receiver of its system_id when its bind type allows.
func (ss *session) bind(p *pdu.BindRequest) {
	s := ss.srv
	status := s.bindStatus(ss, p)
	if status != data.ESME_ROK {
		s.st.bindsRefused.Add(1) // before the answer, so a client that read it sees it counted
		_ = ss.conn.Send(bindResp(p, status))
		ss.log.Info().Str("system_id", p.SystemID).Stringer("type", p.CommandID).Stringer("status", status).
			Msg("smsc bind refused")
		return
	}
	ss.bound, ss.bindType, ss.systemID = true, p.BindingType, p.SystemID
	ss.acct = s.account(p.SystemID)
	ss.log = ss.log.With().Str("system_id", p.SystemID).Logger()
	s.st.binds.Add(1)
	s.st.bindsTotal.Add(1)
	var waiting []*delivery
	// The session must count as a receiver once the client reads the
	// bind_resp (a test may inject a message straight away), yet no
	// deliver_sm may precede the bind_resp: send() waits for ss.mu, held
	// until the bind_resp is queued.
	ss.mu.Lock()
	if ss.canReceive() {
		waiting = ss.acct.add(ss)
	}
	_ = ss.conn.Send(bindResp(p, status))
	ss.mu.Unlock()
	ss.log.Info().Stringer("type", p.CommandID).Msg("smsc bound")
	for _, d := range waiting {
		s.release(d)
		s.deliver(d)
	}
}

// bindResp builds the answer to a bind. gosmpp decodes a failed
// bind_transmitter_resp or bind_receiver_resp only without a body (it reads
// system_id only when the status is OK or the bind was a transceiver, and
// takes anything else for malformed TLVs), so those go out as a bare header.
func bindResp(p *pdu.BindRequest, status data.CommandStatusType) pdu.PDU {
	resp := pdu.NewBindResp(*p)
	resp.SetSequenceNumber(p.GetSequenceNumber())
	if status == data.ESME_ROK || p.BindingType == pdu.Transceiver {
		resp.SystemID = bindSystemID
		resp.CommandStatus = status
		return resp
	}
	bare := pdu.NewGenericNack().(*pdu.GenericNack)
	bare.CommandID = resp.CommandID // marshals as a header with no body
	bare.CommandStatus = status
	bare.SetSequenceNumber(p.GetSequenceNumber())
	return bare
}

func (s *Server) bindStatus(ss *session, p *pdu.BindRequest) data.CommandStatusType {
	switch {
	case ss.bound:
		return data.ESME_RALYBND
	case s.faults.Load().RefuseBinds:
		return data.ESME_RBINDFAIL
	case len(s.cfg.Credentials) == 0:
		return data.ESME_ROK
	}
	pass, ok := s.cfg.Credentials[p.SystemID]
	switch {
	case !ok:
		return data.ESME_RINVSYSID
	case pass != p.Password:
		return data.ESME_RINVPASWD
	}
	return data.ESME_ROK
}

// send sends d as a deliver_sm on this session, and reports false if the
// session is closed and d must go elsewhere.
func (ss *session) send(d *delivery) bool {
	seq := ss.conn.NextSeq()
	p := d.build(seq)
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return false
	}
	// Registered before the write, so the response cannot beat it.
	ss.inflight[seq] = d
	ss.srv.st.inFlight.Add(1)
	ss.mu.Unlock()
	if err := ss.conn.Send(p); err != nil {
		ss.mu.Lock()
		_, mine := ss.inflight[seq]
		delete(ss.inflight, seq)
		ss.mu.Unlock()
		if mine {
			ss.srv.st.inFlight.Add(-1)
			return false
		}
		// finish took it and queued it again.
	}
	return true
}

// drop ends the connection for a fault, without unbind. It closes rather
// than aborts so that what was answered before the fault still reaches
// the client: a test can then count on exactly DropAfter-1 responses.
func (ss *session) drop(reason string) {
	ss.srv.st.drops.Add(1)
	ss.log.Info().Str("reason", reason).Int("submits", ss.submits).Msg("smsc dropping connection (fault)")
	_ = ss.conn.Close()
}

// unbindAndClose ends the session from the server's side, politely.
func (ss *session) unbindAndClose() {
	u := pdu.NewUnbind()
	u.SetSequenceNumber(ss.conn.NextSeq())
	_ = ss.conn.Send(u)
	_ = ss.conn.Close()
}

// finish runs when serve ends: the session stops receiving, and what it
// had in flight is queued to be sent again.
func (ss *session) finish() {
	s := ss.srv
	if ss.canReceive() {
		ss.acct.remove(ss)
	}
	if ss.bound {
		s.st.binds.Add(-1)
	}
	_ = ss.conn.Close()
	s.forget(ss)
	ss.mu.Lock()
	ss.closed = true
	lost := ss.inflight
	ss.inflight = nil
	ss.mu.Unlock()
	for _, d := range lost {
		s.st.inFlight.Add(-1)
		s.retryLater(d)
	}
	ss.log.Debug().Int("requeued", len(lost)).Msg("smsc connection finished")
}
