package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/rs/zerolog"
)

// ClientOptions name a Redis server (cache.addr, cache.password,
// cache.db).
type ClientOptions struct {
	Addr     string
	Password string
	DB       int
	// Timeout bounds dialing and each read and write; default 200ms. The
	// cache falls back on the store rather than wait for Redis.
	Timeout time.Duration
}

// NewClient returns a client for the cache and leases:
// short timeouts, and no retries or repeated dials of its own, since
// every caller has something better to do than wait (fall back on the
// store, or report the lease as unavailable).
func NewClient(o ClientOptions) *goredis.Client {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	return goredis.NewClient(&goredis.Options{
		Addr: o.Addr, Password: o.Password, DB: o.DB,
		DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		PoolTimeout:           o.Timeout,
		DialerRetries:         1,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		// Plain Redis sends no maintenance notifications; asking for
		// them costs a round trip per connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// Ping checks that the server answers, with the client's timeouts.
func Ping(ctx context.Context, c goredis.UniversalClient) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

// DriverLogger adapts a zerolog logger to the Redis driver's logging. The
// driver's logger is one per process (goredis.SetLogger), so only a
// program's main should set it. The driver logs each failed dial; those
// are debug lines here, since the cache logs Redis going away once.
type DriverLogger struct{ Log zerolog.Logger }

// Printf logs one driver message at debug level.
func (d DriverLogger) Printf(_ context.Context, format string, v ...any) {
	d.Log.Debug().Str("component", "redis-driver").Msg(fmt.Sprintf(format, v...))
}
