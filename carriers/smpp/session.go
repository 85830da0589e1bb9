package smpp

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

// role is what a connection was bound as.
type role = pdu.BindingType

// request is one PDU we sent that awaits its response.
type request struct {
	deadline time.Time
	sent     time.Time
	// paused is the session's paused time when the request was sent: the
	// reader's waits after that push its deadline back (expire).
	paused time.Duration
	// A submit_sm part: sub and part are set, and throttles is how many
	// throttling pauses had begun when it passed the pace (Client.pace).
	sub       *submission
	part      int
	throttles uint64
	// Any other request (enquire_link, unbind): its response is sent here.
	reply chan pdu.PDU
}

// session is one bound connection and the requests in flight on it. It
// lives from a successful bind until the connection ends; the Client starts
// a new session for each reconnect.
type session struct {
	c    *Client
	conn *Conn
	role role
	id   uint64 // names the connection in ConnectionLostError

	// unacked holds a token for each deliver_sm and data_sm read and not
	// yet acknowledged, up to the receive window.
	unacked chan struct{}

	mu       sync.Mutex
	inflight map[int32]*request
	closed   bool
	draining bool
	drained  chan struct{} // closed when draining and nothing is in flight
	// parkedAt is since when the reader has been held up handling one
	// PDU (zero while it reads or handles PDUs at its usual pace): waiting
	// for a place in the receive window, or in a callback whose store is
	// slow (a submit's outcome recorded, a receipt stored). paused adds up
	// its waits. Time it waits does not count against a request's
	// deadline: the response may be in the socket, unread because our
	// side is slow, not because the peer is dead. It counts so for maxPark
	// at most, per request however many waits: a store that hangs or
	// crawls must not hang the submits in flight with it.
	parkedAt time.Time
	paused   time.Duration
	parkers  int // the parks in force: the reader's own, keepAlive's

	// handled counts the reader's steps: odd while it handles a PDU, even
	// while it waits for the next (keepAlive watches it; readerWatch).
	handled atomic.Uint64
	// answered: a submit got its answer on this connection.
	answered atomic.Bool
}

// parked returns the credit of the reader's current wait, capped at
// maxPark (0 while it reads); s.mu is held.
func (s *session) parked(now time.Time) time.Duration {
	if s.parkedAt.IsZero() {
		return 0
	}
	return min(now.Sub(s.parkedAt), s.maxPark())
}

// maxPark is the longest one wait of the reader counts for: a few times
// the longest a request may take.
func (s *session) maxPark() time.Duration {
	return 4 * max(s.c.cfg.ResponseTimeout, s.c.cfg.EnquireLinkTimeout)
}

func newSession(c *Client, conn *Conn, r role) *session {
	return &session{
		c:        c,
		conn:     conn,
		role:     r,
		inflight: make(map[int32]*request, c.cfg.Window),
		unacked:  make(chan struct{}, c.cfg.ReceiveWindow),
		drained:  make(chan struct{}),
		id:       rand.Uint64(),
	}
}

func (s *session) canSubmit() bool { return s.role != pdu.Receiver }

// track registers a request under a new sequence number. It fails once the
// session is closing, so nothing is registered that the close would miss.
func (s *session) track(req *request) (int32, error) {
	seq := s.conn.NextSeq()
	s.mu.Lock()
	defer s.mu.Unlock()
	// While draining only the unbind itself (a call) may be tracked: a
	// submit slipping out next to the unbind would be lost and resent.
	if s.closed || (s.draining && req.sub != nil) {
		return 0, ErrNotBound
	}
	req.paused = s.paused
	if !s.parkedAt.IsZero() { // no clock read per submit while the reader reads
		req.paused += s.parked(time.Now())
	}
	s.inflight[seq] = req
	return seq, nil
}

// untrack removes and returns the request for seq, if it is still there.
func (s *session) untrack(seq int32) *request {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, ok := s.inflight[seq]
	if !ok {
		return nil
	}
	delete(s.inflight, seq)
	if s.draining && len(s.inflight) == 0 {
		s.closeDrainedLocked()
	}
	return req
}

func (s *session) closeDrainedLocked() {
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}

// sendSubmit sends one part. On error the part was not sent and is not
// tracked; the caller accounts for it.
func (s *session) sendSubmit(p *pdu.SubmitSM, sub *submission, part int, throttles uint64) error {
	now := time.Now()
	req := &request{deadline: now.Add(s.c.cfg.ResponseTimeout), sent: now, sub: sub, part: part, throttles: throttles}
	seq, err := s.track(req)
	if err != nil {
		return err
	}
	p.SetSequenceNumber(seq)
	if err := s.conn.Send(p); err != nil {
		if s.untrack(seq) == nil {
			return nil // close() already failed it as lost
		}
		return s.lost(err)
	}
	return nil
}

// lost is the error of a part in flight when the connection was lost.
func (s *session) lost(cause error) error {
	return &ConnectionLostError{Conn: s.id, Answered: s.answered.Load(), Cause: cause}
}

// call sends a request and waits for its response.
func (s *session) call(ctx context.Context, p pdu.PDU, timeout time.Duration) (pdu.PDU, error) {
	req := &request{deadline: time.Now().Add(timeout), reply: make(chan pdu.PDU, 1)}
	seq, err := s.track(req)
	if err != nil {
		return nil, err
	}
	p.SetSequenceNumber(seq)
	if err := s.conn.Send(p); err != nil {
		s.untrack(seq)
		return nil, err
	}
	select {
	case resp, ok := <-req.reply:
		if !ok {
			return nil, ErrResponseTimeout
		}
		return resp, nil
	case <-ctx.Done():
		s.untrack(seq)
		return nil, ctx.Err()
	}
}

// complete hands a response to whoever waits for it.
func (s *session) complete(resp pdu.PDU) {
	req := s.untrack(resp.GetSequenceNumber())
	if req == nil {
		s.c.log.Debug().Int32("seq", resp.GetSequenceNumber()).Msg("smpp response for no request in flight (late after a timeout?)")
		return
	}
	if req.reply != nil {
		req.reply <- resp
		return
	}
	if !s.answered.Load() {
		s.answered.Store(true)
	}
	s.c.partAnswered(req, resp)
}

// expire fails every request whose response is overdue. It returns true if
// an enquire_link went unanswered, which means the peer is dead.
func (s *session) expire(now time.Time) (deadPeer bool) {
	var late []*request
	s.mu.Lock()
	paused := s.paused + s.parked(now)
	for seq, req := range s.inflight {
		if now.After(req.deadline.Add(min(paused-req.paused, s.maxPark()))) {
			delete(s.inflight, seq)
			late = append(late, req)
		}
	}
	if s.draining && len(s.inflight) == 0 {
		s.closeDrainedLocked()
	}
	s.mu.Unlock()
	for _, req := range late {
		if req.reply != nil {
			close(req.reply)
			deadPeer = true
			continue
		}
		s.c.partFailed(req, ErrResponseTimeout)
	}
	return deadPeer
}

// readerWatch is keepAlive's view of the reader: the step it saw last and
// since when, and whether it parked the session for a held-up reader.
type readerWatch struct {
	step   uint64
	since  time.Time
	parked bool
}

// watchReader parks the session while the reader has been handling the
// same PDU since the tick before (see parkedAt), from that tick on, and
// unparks it once the reader has moved on. The reader itself pays only
// two atomic adds per PDU.
func (s *session) watchReader(w *readerWatch, now time.Time) {
	step := s.handled.Load()
	held := step%2 == 1 && step == w.step
	switch {
	case held && !w.parked:
		s.park(w.since)
		w.parked = true
	case !held && w.parked:
		s.unpark()
		w.parked = false
	}
	if step != w.step {
		w.step, w.since = step, now
	}
}

// park and unpark bracket a held-up reader's wait (see parkedAt). The
// reader parks itself at once where it knows it waits (the receive
// window: many short waits add up); keepAlive parks it where it finds it
// held up. Parks nest: the wait runs from the earliest since until the
// last unpark.
func (s *session) park(since time.Time) {
	s.mu.Lock()
	if s.parkers == 0 || since.Before(s.parkedAt) {
		s.parkedAt = since
	}
	s.parkers++
	s.mu.Unlock()
}

func (s *session) unpark() {
	s.mu.Lock()
	if s.parkers--; s.parkers == 0 {
		s.paused += s.parked(time.Now())
		s.parkedAt = time.Time{}
	}
	s.mu.Unlock()
}

// close ends the session and hands back every request in flight.
func (s *session) close(cause error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	reqs := s.inflight
	s.inflight = nil
	s.closeDrainedLocked()
	s.mu.Unlock()
	_ = s.conn.Close() // flushes what was sent (an unbind_resp), bounded by the write timeout
	lost := s.lost(cause)
	for _, req := range reqs {
		if req.reply != nil {
			close(req.reply)
			continue
		}
		s.c.partFailed(req, lost)
	}
}

// run serves the connection until it fails or ctx ends; on ctx's end it
// drains and unbinds. It returns why the session ended.
func (s *session) run(ctx context.Context) error {
	readErr := make(chan error, 1)
	go func() { readErr <- s.readLoop() }()
	err, readerDone := s.keepAlive(ctx, readErr)
	if err == nil {
		s.shutdown()
		err = ErrClosed
	}
	s.close(err)
	if !readerDone {
		<-readErr // close() closed the socket, so the reader stops
	}
	return err
}

// keepAlive expires overdue requests and sends enquire_link on its
// interval. It returns nil when ctx ends, else why the connection is dead
// and whether that came from the reader (which has then stopped).
func (s *session) keepAlive(ctx context.Context, readErr <-chan error) (error, bool) {
	cfg := &s.c.cfg
	tick := time.NewTicker(sweepInterval(cfg.ResponseTimeout, cfg.EnquireLinkTimeout))
	defer tick.Stop()
	nextEnquire := time.Now().Add(cfg.EnquireLinkInterval)
	var reader readerWatch
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case err := <-readErr:
			return err, true
		case now := <-tick.C:
			s.watchReader(&reader, now)
			if s.expire(now) {
				return errors.New("enquire_link unanswered: peer is dead"), false
			}
			if now.After(nextEnquire) {
				nextEnquire = now.Add(cfg.EnquireLinkInterval)
				s.enquire()
			}
		}
	}
}

// enquire sends an enquire_link; its answer (or its expiry) is handled by
// the reader and by expire.
func (s *session) enquire() {
	req := &request{deadline: time.Now().Add(s.c.cfg.EnquireLinkTimeout), reply: make(chan pdu.PDU, 1)}
	seq, err := s.track(req)
	if err != nil {
		return
	}
	p := pdu.NewEnquireLink()
	p.SetSequenceNumber(seq)
	_ = s.conn.Send(p)
}

func sweepInterval(timeouts ...time.Duration) time.Duration {
	d := time.Second
	for _, t := range timeouts {
		if t/4 < d {
			d = t / 4
		}
	}
	return max(d, 5*time.Millisecond)
}

const maxUnbindWait = 2 * time.Second

// shutdown waits (bounded) for submits in flight to be answered, then
// unbinds, so a clean stop loses nothing and leaves no duplicates.
func (s *session) shutdown() {
	s.mu.Lock()
	s.draining = true
	if len(s.inflight) == 0 {
		s.closeDrainedLocked()
	}
	s.mu.Unlock()
	select {
	case <-s.drained:
	case <-time.After(s.c.cfg.ResponseTimeout):
	}
	// A live peer answers unbind in milliseconds; a stop should not wait
	// the full enquire_link timeout on a dead one.
	wait := min(s.c.cfg.EnquireLinkTimeout, maxUnbindWait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s.call(ctx, pdu.NewUnbind(), wait); err != nil {
		s.c.log.Debug().Err(err).Msg("smpp unbind not answered")
	}
}

// readLoop reads PDUs until the connection fails.
func (s *session) readLoop() error {
	for {
		f, err := s.conn.ReadPDU()
		s.handled.Add(1)
		if err != nil {
			if !s.recoverable(f, err) {
				return err
			}
		} else if stop := s.handle(f); stop != nil {
			return stop
		}
		s.handled.Add(1)
	}
}

// recoverable answers a PDU that could not be decoded, when the stream is
// still in step, and reports whether reading can go on.
func (s *session) recoverable(f Frame, err error) bool {
	switch {
	case errors.Is(err, ErrUnknownCommand):
		s.c.log.Warn().Err(err).Msg("smpp peer sent an unknown command")
		if !IsResponse(f.Header.CommandID) {
			_ = s.conn.Send(GenericNack(f.Header.SequenceNumber, data.ESME_RINVCMDID))
		}
		return true
	case errors.Is(err, ErrMalformed):
		s.c.log.Warn().Err(err).Msg("smpp peer sent a malformed PDU")
		if IsResponse(f.Header.CommandID) {
			if req := s.untrack(f.Header.SequenceNumber); req != nil && req.sub != nil {
				s.c.partFailed(req, err)
			}
			return true
		}
		_ = s.conn.Send(GenericNack(f.Header.SequenceNumber, data.ESME_RINVCMDLEN))
		return true
	}
	if errors.Is(err, ErrBadLength) {
		s.c.log.Warn().Err(err).Msg("smpp peer sent a PDU of impossible length; closing")
	}
	return false
}

// handle acts on one PDU. A non-nil result ends the session.
func (s *session) handle(f Frame) error {
	switch p := f.PDU.(type) {
	case *pdu.SubmitSMResp, *pdu.GenericNack, *pdu.EnquireLinkResp, *pdu.UnbindResp:
		s.complete(p)
	case *pdu.DeliverSM:
		s.c.delivered(s, p, f.Raw)
	case *pdu.DataSM:
		s.c.dataDelivered(s, p)
	case *pdu.EnquireLink:
		_ = s.conn.Send(Response(p, data.ESME_ROK))
	case *pdu.Unbind:
		_ = s.conn.Send(Response(p, data.ESME_ROK))
		return errors.New("peer unbound")
	case *pdu.AlertNotification:
		// Nothing to answer and nothing we use.
	default:
		if p.CanResponse() {
			_ = s.conn.Send(Response(p, data.ESME_RINVCMDID))
		} else {
			s.c.log.Debug().Stringer("command", f.Header.CommandID).Msg("smpp unexpected response ignored")
		}
	}
	return nil
}
