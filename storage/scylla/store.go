package scylla

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/rs/zerolog"
	sb "github.com/switchboard-sms/switchboard"
)

// Store is a switchboard.Store on a Cassandra or ScyllaDB cluster. It is
// safe for concurrent use. New returns at once and connects in the
// background; until it is connected, and whenever writes fail, Writable
// says why and every call fails with EUNAVAILABLE.
type Store struct {
	opts     Options
	log      zerolog.Logger
	instance string // this store's name in schema_lock and health

	session atomic.Pointer[gocql.Session]
	ready   chan struct{} // closed once connected and migrated, or failed for good
	fatal   error         // set before ready closes if connecting can never succeed

	writer  *writer
	topo    topology
	health  health
	clock   clock
	locks   stripedLocks
	places  placeCache
	recent  recentMessages
	ids     idChecks
	days    dayBuckets
	claims  claims
	doomed  doomed
	pending *queue
	outbox  *queue
	due     *queue

	closeOnce sync.Once
	closed    atomic.Bool
	stop      context.CancelFunc
	stopCtx   context.Context
	bgMu      sync.Mutex     // orders background against Close
	bg        sync.WaitGroup // background goroutines, waited for by Close
	stmts     sync.Map       // CQL with the keyspace filled in, by template

	settingMu sync.Mutex // one InitSetting at a time in this process

	// failureRead, if set (tests), runs between addWebhookFailures' read
	// and its write.
	failureRead func()

	// cleanups bounds the clean-ups after records written in the
	// background (record.go).
	cleanups chan struct{}
	// dropping counts the deletes of stale queue entries on their way
	// (dropStale), so a test can tell that a read's deletes have landed.
	dropping sync.WaitGroup

	// lostAnswer, set by tests, makes the writer report statements it
	// matches as failed after they ran: a write that landed unheard of.
	lostAnswer atomic.Pointer[func(cql string) bool]
	// holdProber, set by tests, keeps the prober from probing (and so
	// from running undos) until the channel is closed.
	holdProber atomic.Pointer[chan struct{}]
}

var _ sb.Store = (*Store)(nil)

// New checks opts and returns a store that connects to the cluster in the
// background, creating or migrating the schema, with backoff between
// attempts (each failure is logged). Ready tells when it is connected.
func New(opts Options) (*Store, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	host, _ := os.Hostname()
	s := &Store{
		opts: opts, log: opts.Logger, instance: host + "/" + hex.EncodeToString(id[:]),
		ready: make(chan struct{}),
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.clock.now = opts.Now
	s.topo.s, s.ids.s = s, s
	s.cleanups = make(chan struct{}, maxCleanups)
	s.writer = newWriter(s)
	s.health.init(s)
	s.pending = newQueue(s, pendingQueue)
	s.outbox = newQueue(s, outboxQueue)
	s.due = newQueue(s, dueQueue)
	s.background(s.connect)
	return s, nil
}

// Open is New, then waits until the store is connected or ctx ends.
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if err := s.WaitReady(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// WaitReady waits until the store is connected, or ctx ends (its error,
// with the last connection failure), or connecting failed for good.
func (s *Store) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		switch {
		case s.fatal != nil:
			return s.fatal
		case s.session.Load() == nil:
			return fmt.Errorf("scylla: not connected: %w", errClosed())
		}
		return nil
	case <-ctx.Done():
		if why := s.health.why(); why != nil {
			return fmt.Errorf("scylla: not connected: %w (last: %w)", ctx.Err(), why)
		}
		return fmt.Errorf("scylla: not connected: %w", ctx.Err())
	}
}

// background runs f in a goroutine Close waits for, and reports whether
// it did: once Close has begun it does nothing.
func (s *Store) background(f func(ctx context.Context)) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.stopCtx.Err() != nil {
		return false
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.stopCtx)
	}()
	return true
}

// cql fills the keyspace into a statement template (its one %s).
func (s *Store) cql(template string) string {
	if q, ok := s.stmts.Load(template); ok {
		return q.(string)
	}
	q := fmt.Sprintf(template, s.opts.Keyspace)
	s.stmts.Store(template, q)
	return q
}

// permanentError marks a connection failure that retrying cannot mend.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// connect creates the session and migrates the schema, retrying with
// backoff until it succeeds, fails for good, or the store closes.
func (s *Store) connect(ctx context.Context) {
	defer close(s.ready)
	backoff := sb.Backoff{Min: s.opts.ReconnectMin, Max: s.opts.ReconnectMax}
	for {
		session, err := s.dial(ctx)
		if err == nil {
			err = s.migrate(ctx, session)
			if err != nil {
				session.Close()
			}
		}
		if err == nil {
			s.topo.refresh(session)
			s.session.Store(session)
			s.health.up()
			s.background(s.health.run)
			s.background(s.topo.run)
			s.log.Info().Strs("hosts", s.opts.Hosts).Str("keyspace", s.opts.Keyspace).
				Str("consistency", s.opts.Consistency).Msg("scylla: connected")
			return
		}
		if ctx.Err() != nil {
			return
		}
		var p permanentError
		if errors.As(err, &p) || refused(err) {
			s.fatal = fmt.Errorf("scylla: %w", err)
			s.health.down(s.fatal)
			s.log.Error().Err(err).Msg("scylla: cannot use the keyspace")
			return
		}
		wait := backoff.Next()
		s.health.down(fmt.Errorf("cannot reach %v: %w", s.opts.Hosts, err))
		s.log.Error().Err(err).Strs("hosts", s.opts.Hosts).Dur("retry_in", wait).
			Msg("scylla: cannot connect; retrying")
		if sleep(ctx, wait) != nil {
			return
		}
	}
}

// refused reports whether the cluster refused a statement as wrong (its
// syntax, its meaning, the rights or the configuration it needs): trying
// again cannot mend that.
func refused(err error) bool {
	var re gocql.RequestError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Code() {
	case codeSyntax, codeUnauthorized, codeInvalid, codeConfig:
		return true
	}
	return false
}

// dial creates a session on the keyspace-less cluster (the keyspace may
// not exist yet).
func (s *Store) dial(ctx context.Context) (*gocql.Session, error) {
	c := gocql.NewCluster(s.opts.Hosts...)
	c.Consistency = s.opts.writeConsistency()
	c.SerialConsistency = s.opts.serialConsistency()
	c.Timeout = s.opts.Timeout
	c.WriteTimeout = s.opts.Timeout
	c.ReadTimeout = s.opts.Timeout + time.Second
	c.ConnectTimeout = s.opts.ConnectTimeout
	c.MetadataSchemaRequestTimeout = s.opts.Timeout
	c.MaxWaitSchemaAgreement = 2 * s.opts.Timeout
	// Token-aware: a statement goes to a replica of its partition.
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	c.RetryPolicy = retryPolicy{}
	// A host that went down is tried again every second, so writes resume
	// soon after it returns.
	c.ReconnectInterval = time.Second
	c.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 10, InitialInterval: 100 * time.Millisecond,
		MaxInterval: 2 * time.Second}
	c.Logger = driverLogger{s.log}
	if s.opts.observer != nil {
		c.QueryObserver, c.BatchObserver = s.opts.observer, s.opts.observer
	}
	// Every statement carries its own write time (USING TIMESTAMP).
	c.DefaultTimestamp = false
	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		session, err := c.CreateSession()
		done <- result{session, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// sess returns the session, or EUNAVAILABLE while there is none.
func (s *Store) sess() (*gocql.Session, error) {
	if s.closed.Load() {
		return nil, errClosed()
	}
	session := s.session.Load()
	if session == nil {
		return nil, s.unavailable()
	}
	return session, nil
}

// begin admits a call: ctx not done, the store open and connected.
func (s *Store) begin(ctx context.Context) (*gocql.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.sess()
}

// beginWrite admits a write: as begin, and the store healthy (Writable).
func (s *Store) beginWrite(ctx context.Context) (*gocql.Session, error) {
	session, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Writable(); err != nil {
		return nil, err
	}
	return session, nil
}

func errClosed() error { return sb.Errorf(sb.EUNAVAILABLE, "storage is closed") }

// unavailable is the error of a call made before the store connected.
// Its message is for clients; the cause it wraps, for logs.
func (s *Store) unavailable() error {
	if why := s.health.why(); why != nil {
		return fmt.Errorf("%w: %w", sb.Errorf(sb.EUNAVAILABLE, "storage is not reachable yet"), why)
	}
	return sb.Errorf(sb.EUNAVAILABLE, "storage is not reachable yet")
}

// dbError turns an error from the driver into the store's: EUNAVAILABLE,
// since a query that failed may be retried once the cluster answers, and
// the cluster is marked unhealthy until a write probe succeeds (health.go).
// Errors that already carry a code pass through.
func (s *Store) dbError(err error) error {
	if err == nil {
		return nil
	}
	var e *sb.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.health.failed(err)
	return fmt.Errorf("%w: %w", sb.Errorf(sb.EUNAVAILABLE, "storage is unavailable"), err)
}

// Writable reports whether writes can be taken now: nil, or EUNAVAILABLE
// while the store is closed, not connected yet, or a write failed and no
// write probe has succeeded since.
func (s *Store) Writable() error {
	if s.closed.Load() {
		return errClosed()
	}
	if s.session.Load() == nil {
		return s.unavailable()
	}
	if why := s.health.why(); why != nil {
		return fmt.Errorf("%w: %w", sb.Errorf(sb.EUNAVAILABLE, "storage cannot take writes"), why)
	}
	return nil
}

// Close waits for writes in flight, stops the background work and closes
// the session. Calls after Close fail with EUNAVAILABLE.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return fmt.Errorf("scylla: close: %w", errClosed())
	}
	s.closed.Store(true)
	// The background work first (clean-ups after records write through
	// the writer), then what is queued in the writer.
	s.bgMu.Lock()
	s.stop()
	s.bgMu.Unlock()
	s.bg.Wait()
	s.writer.stop()
	if session := s.session.Load(); session != nil {
		s.undoBeforeClose(session)
		session.Close()
	}
	return nil
}

// closeUndoTimeout bounds Close's last try of the undos still waiting.
const closeUndoTimeout = 5 * time.Second

// undoBeforeClose tries once more the undos still waiting, which the
// prober stopped with Close would otherwise leave: a message whose Accept
// was answered 503 would be sent after the restart, and a client that
// retried without an Idempotency-Key would get a second SMS.
func (s *Store) undoBeforeClose(session *gocql.Session) {
	if !s.doomed.waiting() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeUndoTimeout)
	defer cancel()
	if err := s.doomed.repair(ctx, session, s.opts.writeConsistency(), s.opts.serialConsistency()); err != nil {
		s.log.Error().Err(err).Msg("scylla: closing with failed writes not undone; their messages may be sent after a restart")
	}
}

// now is the store's clock.
func (s *Store) now() time.Time { return s.opts.Now() }

// clock hands out write timestamps (microseconds) that increase within
// the process, so of two writes of one row by this process the later
// wins even if the system clock steps back.
type clock struct {
	now  func() time.Time
	mu   sync.Mutex
	last int64
}

func (c *clock) next() int64 {
	t := c.now().UnixMicro()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t <= c.last {
		t = c.last + 1
	}
	c.last = t
	return t
}

// after returns a timestamp later than both the clock and ts: a rewrite
// of a row read with write time ts must win over it, whichever node's
// clock wrote it.
func (c *clock) after(ts int64) int64 {
	t := c.next()
	if t <= ts {
		t = ts + 1
		c.mu.Lock()
		c.last = max(c.last, t)
		c.mu.Unlock()
	}
	return t
}

// driverLogger sends the driver's own log lines to the store's logger at
// debug level.
type driverLogger struct{ log zerolog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Debug().Msg("gocql: " + fmt.Sprint(v...)) }
func (l driverLogger) Printf(format string, v ...any) {
	l.log.Debug().Msgf("gocql: "+format, v...)
}
func (l driverLogger) Println(v ...any) { l.log.Debug().Msg("gocql: " + fmt.Sprint(v...)) }
