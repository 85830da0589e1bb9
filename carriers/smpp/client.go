package smpp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
)

// Client is one logical bind to an SMSC. Run keeps it connected; Submit and
// SubmitAsync send through it from any goroutine.
type Client struct {
	cfg    Config
	log    zerolog.Logger
	window chan struct{} // one token per submit_sm in flight
	ref    atomic.Uint32 // concatenation reference for long messages

	tx atomic.Pointer[session] // the session submits go out on, nil when unbound

	throttleMu    sync.Mutex
	throttles     uint64 // pauses begun
	throttleUntil time.Time
	throttleStep  time.Duration

	stopped chan struct{} // closed when Run has returned
	stats   counters
}

// NewClient checks cfg and returns an unconnected Client.
func NewClient(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Client{
		cfg:     cfg,
		log:     cfg.Log.With().Str("bind", cfg.Name).Logger(),
		window:  make(chan struct{}, cfg.Window),
		stopped: make(chan struct{}),
	}, nil
}

// Run connects, binds and keeps the bind up, reconnecting with capped
// exponential backoff and full jitter (see the package doc), until ctx
// ends. Then it drains the submits in flight, unbinds and returns. Run must
// be called once.
func (c *Client) Run(ctx context.Context) {
	defer close(c.stopped)
	if c.cfg.Mode == Transceiver {
		c.maintain(ctx, pdu.Transceiver)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.maintain(ctx, pdu.Transmitter) }()
	go func() { defer wg.Done(); c.maintain(ctx, pdu.Receiver) }()
	wg.Wait()
}

// Bound reports whether the bind can submit now.
func (c *Client) Bound() bool { return c.tx.Load() != nil }

// InFlight returns how many submit_sm parts hold a window slot now:
// written, or about to be, and not yet answered.
func (c *Client) InFlight() int { return len(c.window) }

// maintain keeps one connection of the given role bound until ctx ends.
func (c *Client) maintain(ctx context.Context, r role) {
	backoff := switchboard.Backoff{Min: c.cfg.ReconnectMin, Max: c.cfg.ReconnectMax}
	log := c.log.With().Str("role", roleName(r)).Logger()
	for ctx.Err() == nil {
		s, err := c.connect(ctx, r)
		if err == nil {
			var up time.Duration
			up, err = c.serve(ctx, s, log)
			// Only a session that outlasted the longest wait starts the waits
			// again from ReconnectMin. Resetting on the bind alone would have
			// an SMSC that accepts binds and drops them at once bound again
			// every 0–ReconnectMin, forever.
			if up >= c.cfg.ReconnectMax {
				backoff.Reset()
			}
		}
		if ctx.Err() != nil {
			return
		}
		if c.cfg.OnDown != nil {
			c.cfg.OnDown(err)
		}
		wait := backoff.Next()
		c.stats.reconnects.Add(1)
		log.Warn().Err(err).Dur("retry_in", wait).Int("attempt", backoff.Attempts()).Msg("smpp bind down")
		if !sleep(ctx, wait) {
			return
		}
	}
}

// serve runs a bound session until it ends and reports how long it was up.
func (c *Client) serve(ctx context.Context, s *session, log zerolog.Logger) (time.Duration, error) {
	bound := time.Now()
	c.stats.binds.Add(1)
	log.Info().Str("addr", c.cfg.Addr).Msg("smpp bound")
	c.setSession(s, true)
	err := s.run(ctx)
	c.setSession(s, false)
	return time.Since(bound), err
}

func (c *Client) setSession(s *session, up bool) {
	if !s.canSubmit() {
		return
	}
	if up {
		c.tx.Store(s)
	} else {
		c.tx.CompareAndSwap(s, nil)
	}
	if c.cfg.OnState != nil {
		c.cfg.OnState(up)
	}
}

// connect dials and binds within BindTimeout.
func (c *Client) connect(ctx context.Context, r role) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.BindTimeout)
	defer cancel()
	nc, err := c.cfg.Dial(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.cfg.Addr, err)
	}
	if c.cfg.TLS != nil {
		tc := tls.Client(nc, c.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls %s: %w", c.cfg.Addr, err)
		}
		nc = tc
	}
	conn := NewConn(nc, c.cfg.WriteTimeout)
	if err := c.bind(ctx, conn, nc, r); err != nil {
		conn.Abort()
		return nil, err
	}
	return newSession(c, conn, r), nil
}

// bind sends the bind request and reads until its response, before the
// session's reader starts, so nothing else can be on the wire yet.
func (c *Client) bind(ctx context.Context, conn *Conn, nc net.Conn, r role) error {
	req := pdu.NewBindRequest(r)
	req.SystemID, req.Password, req.SystemType = c.cfg.SystemID, c.cfg.Password, c.cfg.SystemType
	req.AddressRange = pdu.AddressRange{AddressRange: c.cfg.AddressRange}
	req.SetSequenceNumber(conn.NextSeq())
	if err := conn.Send(req); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetReadDeadline(dl)
		defer nc.SetReadDeadline(time.Time{})
	}
	// A stop must not wait for a silent SMSC's bind timeout: cancelling
	// ctx unblocks the read at once.
	unblock := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer unblock()
	for {
		f, err := conn.ReadPDU()
		if err != nil {
			return fmt.Errorf("bind %s: %w", c.cfg.Addr, err)
		}
		switch p := f.PDU.(type) {
		case *pdu.BindResp:
			if p.CommandStatus != data.ESME_ROK {
				return fmt.Errorf("bind %s refused: %s", c.cfg.Addr, p.CommandStatus)
			}
			return nil
		case *pdu.GenericNack:
			return fmt.Errorf("bind %s refused with generic_nack: %s", c.cfg.Addr, p.CommandStatus)
		case *pdu.EnquireLink:
			_ = conn.Send(Response(p, data.ESME_ROK))
		}
	}
}

// Submit sends m and waits until every part has its response. Errors are
// retriable (see Retriable) unless the carrier refused a part permanently.
func (c *Client) Submit(ctx context.Context, m *Message) (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	c.SubmitAsync(ctx, m, func(r Result, err error) { ch <- outcome{r, err} })
	o := <-ch
	return o.res, o.err
}

// SubmitAsync sends m's parts, waiting (under ctx) for room in the window
// and for the TPS pace, and returns once every part is written or the
// message failed. done is called exactly once, when every sent part has its
// response, timed out or was lost with its connection; it may run on the
// connection's reading goroutine, so it must not block. If a part fails, the
// remaining parts are not sent and done gets the first error, with the ids
// of the parts that were accepted. Parts m.Accepted names are not sent.
func (c *Client) SubmitAsync(ctx context.Context, m *Message, done func(Result, error)) {
	ref := m.Ref
	if !m.UseRef {
		ref = byte(c.ref.Add(1))
	}
	parts, err := submitPDUs(m, ref, c.cfg.MaxParts)
	if err != nil {
		done(Result{}, err)
		return
	}
	sub := newSubmission(len(parts), m.Accepted, done)
	if sub.outstanding == 0 { // every part was accepted before
		done(Result{CarrierIDs: sub.ids}, nil)
		return
	}
	for i, p := range parts {
		if sub.accepted(i) {
			continue
		}
		if err := c.sendPart(ctx, sub, i, p); err != nil {
			sub.unsent(i, err)
			return
		}
	}
}

// sendPart takes a window slot and the pace for one part and writes it.
// On error the slot is returned and the part counts as not sent.
func (c *Client) sendPart(ctx context.Context, sub *submission, i int, p *pdu.SubmitSM) error {
	if sub.failed() {
		return errors.New("smpp: an earlier part failed")
	}
	select {
	case c.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped:
		return ErrClosed
	}
	// An unbound bind hands the part back before it takes a share of the
	// carrier's TPS: a dead bind draining its queue at the carrier's pace
	// would hold its parts back and starve the binds that are up.
	if c.tx.Load() == nil {
		<-c.window
		return ErrNotBound
	}
	throttles, err := c.pace(ctx)
	if err != nil {
		<-c.window
		return err
	}
	s := c.tx.Load()
	if s == nil {
		<-c.window
		return ErrNotBound
	}
	if err := s.sendSubmit(p, sub, i, throttles); err != nil {
		<-c.window
		return err
	}
	c.stats.submits.Add(1)
	return nil
}

// pace waits out the TPS limiter and any throttling pause, and returns
// how many pauses had begun by then (see throttle).
func (c *Client) pace(ctx context.Context) (uint64, error) {
	wait := time.Duration(0)
	if c.cfg.Limiter != nil {
		wait = c.cfg.Limiter.Reserve(time.Now(), 1)
	}
	c.throttleMu.Lock()
	if d := time.Until(c.throttleUntil); d > wait {
		wait = d
	}
	throttles := c.throttles
	c.throttleMu.Unlock()
	if wait <= 0 {
		return throttles, nil
	}
	if !sleep(ctx, wait) {
		return 0, ctx.Err()
	}
	c.throttleMu.Lock()
	defer c.throttleMu.Unlock()
	return c.throttles, nil
}

// partAnswered settles one part from its submit_sm_resp or generic_nack.
func (c *Client) partAnswered(req *request, resp pdu.PDU) {
	if c.cfg.OnResponse != nil {
		c.cfg.OnResponse(time.Since(req.sent))
	}
	var status data.CommandStatusType
	id := ""
	switch p := resp.(type) {
	case *pdu.SubmitSMResp:
		status, id = p.CommandStatus, p.MessageID
	case *pdu.GenericNack:
		status = p.CommandStatus
		if status == data.ESME_ROK {
			status = data.ESME_RSYSERR // a nack without a reason still refused the PDU
		}
	default:
		status = data.ESME_RSYSERR
	}
	if status == data.ESME_ROK {
		c.unthrottle()
		<-c.window
		c.stats.accepted.Add(1)
		if id = c.cfg.IDFormat.NormalizeResp(id); id == "" {
			id = NoID
		}
		req.sub.finish(req.part, 1, id, nil)
		return
	}
	err := &SubmitError{Status: status, Retriable: c.cfg.Statuses.Retriable(status)}
	if status == data.ESME_RTHROTTLED || status == data.ESME_RMSGQFUL {
		err.RetryAfter = c.throttle(req.throttles)
	}
	// The slot goes back once the pause is set: a part waiting for it
	// must not pass the pace as if nothing had been refused.
	<-c.window
	c.stats.refused.Add(1)
	req.sub.finish(req.part, 1, "", err)
}

// partFailed settles one part that got no response.
func (c *Client) partFailed(req *request, err error) {
	<-c.window
	if errors.Is(err, ErrResponseTimeout) {
		c.stats.timeouts.Add(1)
	} else {
		c.stats.lost.Add(1)
	}
	req.sub.finish(req.part, 1, "", err)
}

// throttle lengthens the pause before the next submit: the SMSC said we
// are too fast, so this bind slows down until submits are accepted again.
// A refused part that passed the pace before the last pause began
// (throttles, counted then, is behind) belongs to the overload that began
// it: a full window refused at once lengthens the pause once, not once
// per part.
func (c *Client) throttle(throttles uint64) time.Duration {
	c.throttleMu.Lock()
	defer c.throttleMu.Unlock()
	c.stats.throttled.Add(1)
	if c.throttleStep > 0 && throttles != c.throttles {
		return c.throttleStep
	}
	if c.throttleStep == 0 {
		c.throttleStep = c.cfg.ThrottlePause
	} else {
		c.throttleStep = min(2*c.throttleStep, c.cfg.ThrottleMax)
	}
	c.throttles++
	c.throttleUntil = time.Now().Add(c.throttleStep)
	return c.throttleStep
}

func (c *Client) unthrottle() {
	c.throttleMu.Lock()
	c.throttleStep = 0
	c.throttleMu.Unlock()
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func roleName(r role) string {
	switch r {
	case pdu.Transmitter:
		return "transmitter"
	case pdu.Receiver:
		return "receiver"
	}
	return "transceiver"
}
