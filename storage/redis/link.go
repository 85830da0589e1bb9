package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// link tracks whether Redis answers. While it does not, calls go straight
// to the store behind the cache instead of each waiting for a timeout;
// one call per retry interval tries Redis again. Each change of state is
// logged once.
//
// It also remembers cache entries that may have gone stale while Redis was
// out of reach (a write to them failed) and deletes them before the cache
// is trusted again, so an entry this node meant to replace or remove is
// not read back when Redis returns with its old contents.
type link struct {
	client  goredis.UniversalClient
	log     zerolog.Logger
	what    string // what the cache is for, in log lines
	timeout time.Duration
	retry   time.Duration

	mu       sync.Mutex
	down     bool
	probeAt  time.Time // while down: when the next call may try Redis
	probing  bool      // a call is trying Redis while down
	stale    map[string]struct{}
	overflow bool // more stale entries than maxStale were dropped
}

// maxStale bounds the stale entries a link remembers while Redis is
// unreachable (about 100 bytes each).
const maxStale = 100_000

func newLink(client goredis.UniversalClient, log zerolog.Logger, what string, timeout, retry time.Duration) *link {
	return &link{client: client, log: log, what: what, timeout: timeout, retry: retry, stale: map[string]struct{}{}}
}

// begin says whether a call should use Redis now. When it returns true the
// caller must pass the call's outcome to end. It also returns a context
// bounded by the link's timeout, detached from ctx's cancellation so a
// cache write that follows a durable store write still lands when the
// request that made it has gone.
//
// While Redis is down, the first call after the retry interval tries it:
// it deletes the entries that went stale (or pings when there are none),
// and only if that works is Redis used again, by this call first.
func (l *link) begin(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	l.mu.Lock()
	use, probe := !l.down, false
	if l.down && !l.probing && !time.Now().Before(l.probeAt) {
		l.probing, probe = true, true
	}
	l.mu.Unlock()
	if probe {
		use = l.recover()
	}
	if !use {
		return nil, nil, false
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	return c, cancel, true
}

// end records the outcome of a call begin allowed. A reply from Redis,
// nil included, means it answers; anything else (a refused or broken
// connection, a timeout, an error reply such as LOADING or OOM) means the
// cache is not to be used for a while.
func (l *link) end(err error) {
	if failed(err) {
		l.fail(err)
	}
}

// recover tries Redis after it was down: the stale entries are deleted
// first, so nothing this node meant to replace or remove is read back.
// Calls go on without Redis meanwhile and may mark more entries stale;
// those are deleted in further rounds. Under steady writes every round
// leaves a few more, so after a few rounds the last few are deleted just
// after the cache is trusted again, the one moment a read could meet them.
func (l *link) recover() bool {
	deleted := 0
	for round := range maxRecoverRounds {
		keys := l.staleKeys()
		if round > 0 && len(keys) == 0 {
			break
		}
		if err := deleteAll(l.client, keys, l.timeout); err != nil {
			l.fail(err)
			return false
		}
		deleted += len(keys)
		l.forget(keys)
	}
	l.mu.Lock()
	overflow := l.overflow
	keys := l.staleKeysLocked() // the rest go now the cache is trusted
	clear(l.stale)
	l.down, l.probing, l.overflow = false, false, false
	l.mu.Unlock()
	if len(keys) > 0 {
		if err := deleteAll(l.client, keys, l.timeout); err != nil {
			l.endWrite(err, keys...)
			return false
		}
		deleted += len(keys)
	}
	if overflow {
		l.log.Warn().Str("cache", l.what).Int("stale_entries_deleted", deleted).
			Msg("redis reachable again; using the cache (more entries went stale than were remembered: some may stay stale until their TTL)")
	} else {
		l.log.Info().Str("cache", l.what).Int("stale_entries_deleted", deleted).
			Msg("redis reachable again; using the cache")
	}
	return true
}

// staleKeys lists the stale entries.
func (l *link) staleKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.staleKeysLocked()
}

func (l *link) staleKeysLocked() []string {
	keys := make([]string, 0, len(l.stale))
	for k := range l.stale {
		keys = append(keys, k)
	}
	return keys
}

// forget drops keys deleted from Redis from the stale entries.
func (l *link) forget(keys []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.stale, k)
	}
}

// maxRecoverRounds bounds the rounds of deletes recover runs.
const maxRecoverRounds = 4

func (l *link) fail(err error) {
	l.mu.Lock()
	was := l.down
	l.down, l.probing, l.probeAt = true, false, time.Now().Add(l.retry)
	l.mu.Unlock()
	if !was {
		l.log.Warn().Err(err).Str("cache", l.what).Dur("retry", l.retry).
			Msg("redis unreachable; using the store alone until it answers")
	}
}

// endWrite is end for a call that replaces or deletes keys: if it failed,
// they may hold what this node meant to replace, and are deleted before
// the cache is used again.
func (l *link) endWrite(err error, keys ...string) {
	if failed(err) {
		l.fail(err)
		l.staleKey(keys...)
	}
}

// staleKey remembers keys whose entries may be stale, to delete before
// the cache is used again. A caller that found the link down calls it
// after: if the link came back meanwhile, the recovery has run already,
// so they are deleted now.
func (l *link) staleKey(keys ...string) {
	if len(keys) == 0 {
		return
	}
	l.mu.Lock()
	if !l.down {
		l.mu.Unlock()
		if err := deleteAll(l.client, keys, l.timeout); err != nil {
			l.endWrite(err, keys...)
		}
		return
	}
	defer l.mu.Unlock()
	for _, k := range keys {
		if len(l.stale) >= maxStale {
			l.overflow = true
			return
		}
		l.stale[k] = struct{}{}
	}
}

// isDown reports whether the link has found Redis unreachable (tests).
func (l *link) isDown() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.down
}

// failed tells a reply from Redis (nil: no such key, which is an answer)
// from a failure to get one.
func failed(err error) bool { return err != nil && !errors.Is(err, goredis.Nil) }

// deleteAll deletes keys in batches, each with its own timeout; with no
// keys it pings.
func deleteAll(c goredis.Cmdable, keys []string, timeout time.Duration) error {
	const batch = 1000
	if len(keys) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	for len(keys) > 0 {
		n := min(batch, len(keys))
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := c.Del(ctx, keys[:n]...).Err()
		cancel()
		if err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
