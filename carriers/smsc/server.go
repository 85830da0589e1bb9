package smsc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// Errors of InjectMO.
var (
	ErrNoReceiver = errors.New("smsc: no receiver or transceiver bound for the system_id")
	ErrClosed     = errors.New("smsc: server closed")
)

// Server is a running SMSC simulator. Its methods are safe for concurrent
// use.
type Server struct {
	cfg   Config
	log   zerolog.Logger
	ln    net.Listener
	sched *scheduler
	st    counters

	faults    atomic.Pointer[faultState]
	nextID    atomic.Uint64 // last message id given out
	nextBind  atomic.Uint64
	nextRef   atomic.Uint32 // concatenation reference of inbound messages
	submitSeq atomic.Uint64 // submits seen, for ThrottleEvery

	mu       sync.Mutex
	closed   bool
	sessions map[*session]struct{}
	accounts map[string]*account

	stop      chan struct{} // closed by Close, for the accept loop's pauses
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// faultState is the Faults in force with what they need at runtime.
type faultState struct {
	Faults
	bucket  *switchboard.TokenBucket // nil when ThrottleAbove is off
	refused atomic.Int64             // submits refused for RefuseText
}

// Listen validates cfg, listens on cfg.Addr and starts serving in its own
// goroutines until Close.
func Listen(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("smsc: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		ln:       ln,
		sessions: make(map[*session]struct{}),
		accounts: make(map[string]*account),
		stop:     make(chan struct{}),
	}
	s.sched = newScheduler(s.fire)
	s.faults.Store(newFaultState(cfg.Faults, nil))
	// Ids start at a random base so that a restarted simulator does not
	// hand out ids a gateway has already stored for other messages.
	s.nextID.Store(1<<32 + rand.Uint64N(1<<40))
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.sched.run() }()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	s.log.Info().Str("addr", s.Addr()).Msg("smsc listening")
	return s, nil
}

func newFaultState(f Faults, old *faultState) *faultState {
	fs := &faultState{Faults: f}
	switch {
	case f.ThrottleAbove <= 0:
	case old != nil && old.bucket != nil && old.ThrottleAbove == f.ThrottleAbove:
		fs.bucket = old.bucket // keep its tokens: only other faults changed
	default:
		fs.bucket = switchboard.NewTokenBucket(f.ThrottleAbove, 0)
	}
	return fs
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stats returns the current counters.
func (s *Server) Stats() Stats { return s.st.snapshot() }

// SetFaults replaces the faults in force; submits already being handled
// finish under the old ones. Out-of-range values are clamped (negative
// thresholds mean off), because a test flipping faults has no use for an
// error.
func (s *Server) SetFaults(f Faults) {
	f = f.clamped()
	for {
		old := s.faults.Load()
		if s.faults.CompareAndSwap(old, newFaultState(f, old)) {
			break
		}
	}
	s.log.Info().Interface("faults", f).Msg("smsc faults changed")
}

// DropAll aborts every connection now, as a carrier restart would.
// Unacknowledged deliveries are sent again later.
func (s *Server) DropAll() {
	for _, ss := range s.snapshotSessions() {
		s.abort(ss)
	}
}

func (s *Server) abort(ss *session) {
	s.st.drops.Add(1)
	ss.conn.Abort()
}

// Drop aborts one connection now, by the number its submits carry
// (Submit.BindID), as a carrier losing one of an account's connections
// would; it reports whether that connection was open.
func (s *Server) Drop(bindID uint64) bool {
	for _, ss := range s.snapshotSessions() {
		if ss.id == bindID {
			s.abort(ss)
			return true
		}
	}
	return false
}

func (s *Server) snapshotSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

// Close stops accepting, sends unbind on every connection and closes it,
// discards what is still pending, and waits for every goroutine to stop.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		if e := s.ln.Close(); e != nil && !errors.Is(e, net.ErrClosed) {
			err = fmt.Errorf("smsc: close listener: %w", e)
		}
		for _, it := range s.sched.shutdown() {
			if it.resp == nil {
				s.release(it.job)
			}
		}
		// In parallel: a client that stopped reading holds its Close for up
		// to WriteTimeout, and should not hold the others.
		var closing sync.WaitGroup
		for _, ss := range s.snapshotSessions() {
			closing.Go(ss.unbindAndClose)
		}
		closing.Wait()
		s.wg.Wait()
		s.discardWaiting()
		s.log.Info().Msg("smsc closed")
	})
	return err
}

func (s *Server) acceptLoop() {
	pause := 5 * time.Millisecond
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			s.log.Warn().Err(err).Dur("pause", pause).Msg("smsc accept failed")
			select {
			case <-s.stop:
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 5 * time.Millisecond
		s.startSession(nc)
	}
}

// startSession starts the goroutine that serves nc, unless the server is
// closing.
func (s *Server) startSession(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = nc.Close()
		return
	}
	ss := newSession(s, s.nextBind.Add(1), smpp.NewConn(nc, s.cfg.WriteTimeout))
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); ss.serve() }()
}

// forget removes a finished session.
func (s *Server) forget(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

// discardWaiting empties the accounts' queues once nothing can send them.
func (s *Server) discardWaiting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		for _, d := range a.takeWaiting() {
			s.release(d)
		}
	}
}

// account returns the account of a system_id, creating it on first use.
// Accounts are never removed: there are as many as configured users.
func (s *Server) account(systemID string) *account {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[systemID]
	if a == nil {
		a = &account{}
		s.accounts[systemID] = a
	}
	return a
}

// respID writes a message id as submit_sm_resp carries it.
func (s *Server) respID(id uint64) string {
	switch s.cfg.IDFormat {
	case receipt.IDHex, receipt.IDHexResp:
		return strconv.FormatUint(id, 16)
	}
	return strconv.FormatUint(id, 10)
}

// receiptID writes a message id as receipts carry it.
func (s *Server) receiptID(id uint64) string {
	if s.cfg.IDFormat == receipt.IDHex {
		return strconv.FormatUint(id, 16)
	}
	return strconv.FormatUint(id, 10)
}
