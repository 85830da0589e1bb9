package scylla

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gocql/gocql"
	sb "github.com/switchboard-sms/switchboard"
)

// health knows whether the cluster takes writes. A failed query marks it
// unhealthy; from then on writes are refused at once with EUNAVAILABLE
// (so nothing is acknowledged on a cluster that just failed one) and a
// prober writes a row to the health table at the store's consistency,
// with backoff, until one lands. The driver reconnects to hosts by itself
// meanwhile, so the store recovers when the cluster does.
type health struct {
	s    *Store
	mu   sync.Mutex
	err  error // why not healthy; nil when healthy
	wake chan struct{}
}

func (h *health) init(s *Store) {
	h.s = s
	h.wake = make(chan struct{}, 1)
}

// why returns why the store cannot take writes, or nil.
func (h *health) why() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// down records why the store is not connected (before the first session).
func (h *health) down(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// up records a successful connection.
func (h *health) up() {
	h.mu.Lock()
	h.err = nil
	h.mu.Unlock()
}

// failed marks the store unhealthy after a failed query and wakes the
// prober.
func (h *health) failed(err error) {
	h.mu.Lock()
	first := h.err == nil
	if first {
		h.err = err
	}
	h.mu.Unlock()
	if first {
		h.s.log.Error().Err(err).Msg("scylla: a query failed; refusing writes until a write probe lands")
	}
	h.kick()
}

// kick wakes the prober, for undos that wait (doomed) as much as for a
// failure.
func (h *health) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// run is the prober: while unhealthy, or while undos wait, it writes
// probes with backoff. Undos are checked after every probe: one queued
// while a probe ran (after repair took its list) would otherwise wait for
// the next failure.
func (h *health) run(ctx context.Context) {
	backoff := sb.Backoff{Min: 50 * time.Millisecond, Max: h.s.opts.ReconnectMax}
	for {
		select {
		case <-h.wake:
		case <-ctx.Done():
			return
		}
		for h.why() != nil || h.s.doomed.waiting() {
			if hold := h.s.holdProber.Load(); hold != nil {
				select {
				case <-*hold:
				case <-ctx.Done():
					return
				}
			}
			err := h.probe(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				if h.why() != nil {
					h.s.log.Info().Msg("scylla: write probe landed; taking writes again")
				}
				h.up()
				backoff.Reset()
				continue
			}
			wait := backoff.Next()
			h.s.log.Warn().Err(err).Dur("retry_in", wait).Msg("scylla: write probe failed")
			if sleep(ctx, wait) != nil {
				return
			}
		}
	}
}

// probe writes this store's row in the health table at the store's
// consistency, then runs the repairs that wait (repair.go).
func (h *health) probe(ctx context.Context) error {
	session, err := h.s.sess()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.s.opts.Timeout)
	defer cancel()
	err = session.Query(fmt.Sprintf(`INSERT INTO %s.health (node, at) VALUES (?, ?) USING TTL 86400 AND TIMESTAMP ?`,
		h.s.opts.Keyspace), h.s.instance, h.s.now(), h.s.clock.next()).
		WithContext(ctx).Consistency(h.s.opts.writeConsistency()).Idempotent(true).Exec()
	if err != nil {
		return err
	}
	return h.s.doomed.repair(ctx, session, h.s.opts.writeConsistency(), h.s.opts.serialConsistency())
}

// retryPolicy retries a statement that may be run twice (every statement
// the store writes carries its own write time, so running it again
// changes nothing) up to twice when the cluster did not answer in time
// or could not reach enough replicas; never a lightweight transaction or
// anything the cluster refused as wrong. A statement that fails still
// fails its call with EUNAVAILABLE: the write may or may not have landed,
// and the caller hears so (see the package documentation).
type retryPolicy struct{}

const maxRetries = 2

func (retryPolicy) Attempt(q gocql.RetryableQuery) bool { return q.Attempts() <= maxRetries }

func (retryPolicy) GetRetryType(err error) gocql.RetryType {
	var qe *gocql.QueryError
	if errors.As(err, &qe) && qe.PotentiallyExecuted() && !qe.IsIdempotent() {
		return gocql.Rethrow
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case codeWriteTimeout, codeReadTimeout:
			return gocql.Retry
		case codeUnavailable, codeOverloaded, codeBootstrapping, codeServerError:
			return gocql.RetryNextHost
		}
		return gocql.Rethrow
	}
	// No answer at all (a timeout, a closed connection): another host.
	return gocql.RetryNextHost
}

// Error codes of the native protocol the store tells apart.
const (
	codeServerError   = 0x0000
	codeUnavailable   = 0x1000
	codeOverloaded    = 0x1001
	codeBootstrapping = 0x1002
	codeWriteTimeout  = 0x1100
	codeReadTimeout   = 0x1200
	codeSyntax        = 0x2000
	codeUnauthorized  = 0x2100
	codeInvalid       = 0x2200
	codeConfig        = 0x2300
)
