// Package node assembles one gateway node from its parts — the store
// (embedded, or ScyllaDB/Cassandra; with a Redis cache in front when one
// is configured), the public HTTP API, the webhook client and the actor
// engine — starts them in that order and stops them in reverse. The
// switchboard command and the bench both run their node through it, so
// what the bench measures is wired the way the binary is.
//
// The API is served as soon as the store is opened, before the store is
// ready: a ScyllaDB store may still be connecting (the cluster down at
// start), and meanwhile the API answers 503 unavailable with the store's
// reason, and /readyz 503, while Open waits, until the store is ready or
// Open's context ends.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	sbhttp "github.com/switchboard-sms/switchboard/http"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/redis"
	"github.com/switchboard-sms/switchboard/storage/scylla"
)

// Config is what a node is made of.
type Config struct {
	// DataDir and Store open the embedded store, unless Scylla is set.
	DataDir string
	Store   pebble.Options
	// Scylla, if set, keeps the node's data in ScyllaDB or Cassandra
	// (storage.backend: scylla) instead.
	Scylla *scylla.Options
	// Cache, if set, names the Redis the store's cache is kept in
	// (cache.backend: redis); nil: no cache in front of the store.
	Cache *redis.ClientOptions
	// CacheOptions configure that cache; it logs with the engine's
	// logger.
	CacheOptions redis.Options
	// Webhooks configures the client the engine posts callbacks with.
	Webhooks callback.Options
	// Engine configures the engine; Open fills in its Store and webhook
	// Poster.
	Engine actors.Config
	// HTTP configures the public API; Open fills in its Engine and Keys
	// (Engine.Keys).
	HTTP sbhttp.Config
	// Fleet, if set, makes the node one member of a cluster; it needs the
	// Redis cache (its leases live there).
	Fleet *FleetOptions
	// Listener is where the API is served. The node owns it from Open on,
	// also when Open fails.
	Listener net.Listener
	// Prepare, if set, is called before every engine the node starts (at
	// open, and when a clustered node rejoins), with the store open, to
	// complete the engine's configuration from what the store keeps (the
	// keys, carriers and routes the admin API created).
	Prepare func(ctx context.Context, store switchboard.Store, engine *actors.Config) error
}

// Node is a running node. Its parts are exposed for the bench's and the
// tests' counters; Stop is the only way to end it.
type Node struct {
	// Store is the store the engine uses: the embedded or ScyllaDB store, or the
	// cache in front of it.
	Store  switchboard.Store
	Hooks  *callback.Client
	Engine *actors.Engine
	HTTP   *sbhttp.Server
	// Timings says how long each step of Open took.
	Timings Timings

	cache  *goredis.Client // nil without a Redis cache
	ln     net.Listener
	served chan error // Serve's result; nil until the API is served
	gate   *gate

	// A clustered node replaces its engine when it rejoins (rejoin): mu
	// guards Engine, and stopRejoin ends the goroutine, which closes
	// rejoined.
	mu         sync.Mutex
	stopRejoin chan struct{}
	rejoined   chan struct{}
}

// Timings of Open's steps: the bench reports them after a restart.
type Timings struct {
	Store, EngineStart, HTTP time.Duration
	EngineStarted            time.Time // when Engine.Start was called
}

// Open opens the store, serves the API (503 unavailable until the engine
// runs), waits until the store is ready, and starts the engine. On error
// it releases whatever it had opened, the listener included.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	n := &Node{ln: cfg.Listener}
	if err := n.open(ctx, cfg); err != nil {
		n.abort()
		return nil, err
	}
	return n, nil
}

func (n *Node) open(ctx context.Context, cfg Config) (err error) {
	// The API answers (503 while starting) before the store opens: the
	// embedded store's open replays its log, and may upgrade its layout.
	t0 := time.Now()
	n.gate = &gate{}
	hcfg := cfg.HTTP
	hcfg.Engine, hcfg.Keys, hcfg.KeysLoading = n.gate, cfg.Engine.Keys, n.gate.loadingKeys
	if n.HTTP, err = sbhttp.New(hcfg); err != nil {
		return err
	}
	n.served = make(chan error, 1)
	srv, ln := n.HTTP, n.ln
	go func() { n.served <- srv.Serve(ln) }()
	n.Timings.HTTP = time.Since(t0)
	ready, err := n.openStore(cfg)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	n.gate.opened(n.Store)
	if err := ready(ctx); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	n.Timings.Store = time.Since(t0) - n.Timings.HTTP
	if cfg.Cache != nil {
		n.openCache(ctx, cfg)
	}
	n.Hooks = callback.New(cfg.Webhooks)
	n.Timings.EngineStarted = time.Now()
	e, err := n.startEngine(ctx, cfg)
	if err != nil {
		return err
	}
	n.setEngine(e)
	n.Timings.EngineStart = time.Since(n.Timings.EngineStarted)
	n.gate.open(e)
	if cfg.Fleet != nil {
		n.stopRejoin, n.rejoined = make(chan struct{}), make(chan struct{})
		go n.rejoin(cfg)
	}
	return nil
}

// startEngine makes and starts an engine on the node's store and webhook
// client. On error the engine is stopped again.
func (n *Node) startEngine(ctx context.Context, cfg Config) (*actors.Engine, error) {
	ecfg := cfg.Engine
	ecfg.Store = n.Store
	ecfg.Webhooks.Poster = callback.Poster{Client: n.Hooks}
	fleet, err := n.fleetConfig(cfg)
	if err != nil {
		return nil, err
	}
	ecfg.Fleet = fleet
	if cfg.Prepare != nil {
		if err := cfg.Prepare(ctx, n.Store, &ecfg); err != nil {
			return nil, err
		}
	}
	e, err := actors.New(ecfg)
	if err != nil {
		return nil, err
	}
	if err := e.Start(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e.Stop(stopCtx)
		cancel()
		return nil, err
	}
	return e, nil
}

// CurrentEngine returns the engine running now: a clustered node starts a
// new one when it rejoins.
func (n *Node) CurrentEngine() *actors.Engine { return n.engine() }

func (n *Node) engine() *actors.Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.Engine
}

func (n *Node) setEngine(e *actors.Engine) {
	n.mu.Lock()
	n.Engine = e
	n.mu.Unlock()
}

// openStore opens the store cfg names and returns a function that waits
// until it is ready: at once for the embedded store; for ScyllaDB, once it
// has connected (it retries with backoff, logging each failure).
func (n *Node) openStore(cfg Config) (ready func(context.Context) error, err error) {
	if cfg.Scylla == nil {
		s, err := pebble.Open(cfg.DataDir, cfg.Store)
		if err != nil {
			return nil, err
		}
		n.Store = s
		return func(context.Context) error { return nil }, nil
	}
	s, err := scylla.New(*cfg.Scylla)
	if err != nil {
		return nil, err
	}
	n.Store = s
	return s.WaitReady, nil
}

// openCache puts the Redis cache in front of the store. Redis not
// answering is no reason not to start: the cache falls back on the store
// until it does, and says so once.
func (n *Node) openCache(ctx context.Context, cfg Config) {
	opts := cfg.CacheOptions
	opts.Logger = cfg.Engine.Log.With().Str("component", "cache").Logger()
	n.cache = redis.NewClient(*cfg.Cache)
	if err := redis.Ping(ctx, n.cache); err != nil {
		opts.Logger.Warn().Err(err).Str("addr", cfg.Cache.Addr).
			Msg("cache: redis does not answer; starting with the store alone until it does")
	}
	n.Store = redis.Wrap(n.Store, n.cache, opts)
}

// Addr is where the API listens.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// Drain makes the API answer new requests with 503 unavailable and
// Retry-After (and /readyz with 503) until ctx ends, while requests in
// progress go on and the engine keeps sending; it returns when ctx ends.
// The API stays open meanwhile, so a client or load balancer that has
// not noticed yet gets an answer rather than a refused connection.
func (n *Node) Drain(ctx context.Context) {
	n.HTTP.Drain()
	<-ctx.Done()
}

// Stop stops the node, bounded by ctx: the API closes (new requests got
// 503 already if Drain ran) and requests still in progress finish,
// submits in flight finish, binds unbind, status writes land, then the
// store closes.
func (n *Node) Stop(ctx context.Context) error {
	n.HTTP.Drain()
	if n.stopRejoin != nil {
		close(n.stopRejoin)
		<-n.rejoined
	}
	errs := []error{n.HTTP.Shutdown(ctx), n.engine().Stop(ctx)}
	if err := <-n.served; err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	n.Hooks.Close()
	errs = append(errs, n.Store.Close())
	if n.cache != nil {
		errs = append(errs, n.cache.Close())
	}
	return errors.Join(errs...)
}

// abort releases what a failed Open had opened.
func (n *Node) abort() {
	if n.served == nil {
		n.ln.Close() // never served: nothing else closes it
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.HTTP.Shutdown(ctx)
		cancel()
		<-n.served
	}
	if n.Engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.Engine.Stop(ctx)
		cancel()
	}
	if n.Hooks != nil {
		n.Hooks.Close()
	}
	if n.Store != nil {
		n.Store.Close()
	}
	if n.cache != nil {
		n.cache.Close()
	}
}
