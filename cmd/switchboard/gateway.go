package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/cmd/switchboard/node"
	sbhttp "github.com/switchboard-sms/switchboard/http"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/storage/redis"
)

// runGateway is the bare command: read the configuration, run one node
// until the first stop signal, then drain and stop gracefully.
func runGateway(sig stopSignals, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFlag := fs.String("config", "", "configuration `file` (default $SWITCHBOARD_CONFIG, else ./cluster.yaml)")
	var sets multiFlag
	fs.Var(&sets, "set", "override one setting, `path=value` (node.http=127.0.0.1:9090, carriers[0].host=smsc:2775); repeatable")
	prof := &profiler{}
	fs.StringVar(&prof.cpuPath, "cpuprofile", "", "write a CPU profile to `file` from SIGUSR1 to SIGUSR2 (the load driver's measured window)")
	fs.StringVar(&prof.memPath, "memprofile", "", "write the allocations since start to `file` at SIGUSR2")
	fs.StringVar(&prof.tracePath, "trace", "", "write an execution trace to `file` from SIGUSR1 to SIGUSR2 (go tool trace)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: switchboard [--config FILE] [--set path=value ...]\n\nRuns one gateway node. Flags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nSettings (file → environment → --set):\n%s", configHelp())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 { // a forgotten --set, or a command after the flags
		// Up to an "=": what follows may be a secret.
		arg, _, cut := strings.Cut(fs.Arg(0), "=")
		if cut {
			arg += "=…"
		}
		return usageError{fmt.Errorf("unexpected argument %q (commands come first: switchboard smsc|archive ...)", arg)}
	}
	load := configLoader(configPath(*configFlag, os.Environ()), sets)
	cfg, err := load()
	if err != nil {
		return usageError{err}
	}
	// Every line names its node, so a fleet's logs can be read together.
	log := newLogger(cfg.Log, stderr).With().Str("node", cfg.Node.Name).Logger()
	defer startGC(cfg.Node, os.Environ(), log)()
	if cfg.Cache.Backend == CacheRedis {
		// The driver's logger is one per process, and this is the process.
		goredis.SetLogger(redis.DriverLogger{Log: log})
	}
	log.Info().Int("gomaxprocs", runtime.GOMAXPROCS(0)).Int("cpus", runtime.NumCPU()).Msg("starting")
	g, err := startGateway(sig.stop, cfg, log)
	if err != nil && sig.stop.Err() != nil {
		// Asked to stop while it started (waiting for its database, say):
		// a stop, not a failure.
		log.Info().Err(err).Msg("stopped while starting")
		return nil
	}
	if err != nil {
		return err
	}
	prof.log = log
	defer prof.start(sig.stop)()
	printReady(stdout, cfg, g.ops.scheme(), g.Addr(), g.ops.adminLn.Addr().String())
	reloads := make(chan struct{})
	go func() { defer close(reloads); g.watchReloads(sig.stop, sig.reload, load) }()
	<-sig.stop.Done()
	<-reloads
	return g.drainAndStop(sig.hurry, cfg.Node.DrainPeriod.Std(), cfg.Node.ShutdownTimeout.Std())
}

// drainAndStop stops the node in two steps with their own budgets: the
// drain (the API answers new requests with 503 and Retry-After for the
// drain period, so load balancers move traffic away, while requests in
// progress finish; hurry ends it early), then the stop (bounded by
// shutdownTimeout from the drain's end).
func (g *gateway) drainAndStop(hurry context.Context, drainPeriod, shutdownTimeout time.Duration) error {
	g.log.Info().Dur("drain_period", drainPeriod).
		Msg("stopping: draining, new requests get 503; SIGINT or SIGTERM again stops at once")
	drain, cancelDrain := context.WithTimeout(hurry, drainPeriod)
	defer cancelDrain()
	g.ops.draining.Store(true)
	g.node.Drain(drain)
	g.log.Info().Dur("shutdown_timeout", shutdownTimeout).Msg("stopping: drain over, stopping the engine")
	stop, cancelStop := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancelStop()
	return g.Stop(stop)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// demoSecret is the shipped cluster.yaml's key secret: public, so the
// start-up hint may show it.
const demoSecret = "demo-secret-change-me"

// printReady prints where the node listens and a curl line to try it. The
// line shows a key's secret only if it is the shipped demo one; any other
// secret is a placeholder, so no real secret reaches a terminal or a log
// collector. The placeholder is not a SWITCHBOARD_* name: the node refuses
// unknown variables of its own prefix, and a user who exports it in the
// shell that starts the node would stop the node from starting.
func printReady(w io.Writer, cfg *Config, scheme, addr, adminAddr string) {
	fmt.Fprintf(w, "switchboard %s listening on %s://%s\n", buildVersion(), scheme, addr)
	fmt.Fprintf(w, "status page, /metrics and the admin API at %s://%s/\n", scheme, adminAddr)
	if len(cfg.Keys) == 0 {
		return
	}
	auth, note := `"Authorization: Bearer $API_KEY"`, fmt.Sprintf(" (API_KEY: the secret of key %q)", cfg.Keys[0].ID)
	for _, k := range cfg.Keys {
		if k.Secret == demoSecret {
			auth, note = "'Authorization: Bearer "+demoSecret+"'", ""
			break
		}
	}
	fmt.Fprintf(w, "try it%s:\n  curl -s -X POST %s://%s/v1/messages -H %s -H 'Content-Type: application/json' -d '{\"to\":\"+447700900123\",\"from\":\"Switchboard\",\"body\":\"Hello\"}'\n", note, scheme, addr, auth)
}

func newLogger(c LogConfig, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	out := w
	console := c.Format == "console"
	if c.Format == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// gateway is one running node: the simulators its config asks for (if
// any), and the node itself, stopped in the reverse order.
type gateway struct {
	log  zerolog.Logger
	sims []*smsc.Server
	node *node.Node
	ops  *operations
}

// startGateway wires and starts every part of a node. Tests use it too, so
// what they run is what the binary runs.
func startGateway(ctx context.Context, cfg *Config, log zerolog.Logger) (*gateway, error) {
	g := &gateway{log: log}
	err := g.startSimulators(cfg)
	if err == nil {
		g.ops, err = newOperations(cfg, log)
	}
	if err == nil {
		g.node, err = openNode(ctx, cfg, log, g.ops)
	}
	if err == nil {
		g.ops.attach(g.node)
	}
	if err != nil {
		if g.ops != nil {
			g.ops.close(ctx)
		}
		g.closeSimulators()
		return nil, err
	}
	return g, nil
}

// openNode opens the node cfg describes, its API listening on node.http
// and ops on node.admin (taken first, so a busy port fails before the
// store opens), with the keys, carriers and routes of the file and of the
// admin API.
func openNode(ctx context.Context, cfg *Config, log zerolog.Logger, ops *operations) (*node.Node, error) {
	ln, err := net.Listen("tcp", cfg.Node.HTTP)
	if err != nil {
		return nil, fmt.Errorf("node.http: %w", err)
	}
	if err := ops.listen(cfg.Node.Admin); err != nil {
		ln.Close()
		return nil, err
	}
	if err := ops.serve(cfg); err != nil {
		ln.Close()
		return nil, err
	}
	ecfg := engineConfig(cfg, ops.catalog.ring, log)
	ecfg.Metrics = ops.metrics
	return node.Open(ctx, node.Config{
		DataDir:      cfg.Node.DataDir,
		Store:        cfg.Storage.pebbleOptions(log),
		Scylla:       cfg.Storage.scyllaOptions(log),
		Cache:        cfg.Cache.client(),
		CacheOptions: redis.Options{CarrierTTL: carrierTTL(cfg.Cache.CarrierTTL, cfg.Storage.TTL)},
		Webhooks: callback.Options{
			AllowPrivate:        cfg.Webhooks.AllowPrivateNetworks,
			Timeout:             cfg.Webhooks.Timeout.Std(),
			MaxConnsPerEndpoint: cfg.Webhooks.Concurrency,
		},
		Engine:  ecfg,
		Prepare: ops.catalog.prepare,
		HTTP: sbhttp.Config{
			Log: log, MaxBatch: cfg.Limits.MaxBatch, Metrics: ops.metrics,
			AllowPrivateCallbacks: cfg.Webhooks.AllowPrivateNetworks,
			ReleaseIdleBuffers:    cfg.Node.HTTPReleaseIdleBuffers,
			AuthFailuresPerMinute: cfg.Node.authFailuresPerMinute(),
			MaxValidity:           cfg.Limits.MaxValidity.Std(),
		},
		Listener: ops.serveTLS(ln),
		Fleet:    cfg.Cluster.fleet(),
	})
}

// fleet returns the cluster settings a clustered node runs with; nil for
// a single node.
func (c ClusterConfig) fleet() *node.FleetOptions {
	if !c.Enabled {
		return nil
	}
	return &node.FleetOptions{Name: c.Name, Gossip: c.Bind, Remote: c.Remote, Seeds: c.Seeds, LeaseTTL: c.LeaseTTL.Std()}
}

// client returns the Redis the cache settings name, nil for the
// in-process cache.
func (c CacheConfig) client() *redis.ClientOptions {
	if c.Backend != CacheRedis {
		return nil
	}
	return &redis.ClientOptions{Addr: c.Addr, Password: c.Password, DB: c.DB}
}

// carrierTTL is how long Redis remembers carrier message ids:
// cache.carrier_ttl, or storage.ttl if that is shorter, so the cache
// never names a message the store has deleted.
func carrierTTL(cacheTTL, storageTTL Duration) time.Duration {
	if s := storageTTL.Std(); s > 0 && s < cacheTTL.Std() {
		return s
	}
	return cacheTTL.Std()
}

// startSimulators runs the built-in simulator of every carrier that asks
// for one. A host with port 0 gets a free port, written back into cfg so
// the binds find it (tests rely on this).
func (g *gateway) startSimulators(cfg *Config) error {
	for i, c := range cfg.Carriers {
		if !c.Simulator {
			continue
		}
		sim, err := smsc.Listen(smsc.Config{
			Addr: c.Host, IDFormat: c.ParsedIDFormat(),
			Log: g.log.With().Str("component", "smsc-simulator").Str("carrier", c.Name).Logger(),
		})
		if err != nil {
			return fmt.Errorf("carrier %s: simulator: %w", c.Name, err)
		}
		g.sims = append(g.sims, sim)
		cfg.Carriers[i].Host = sim.Addr()
		g.log.Info().Str("carrier", c.Name).Str("addr", sim.Addr()).Msg("SMSC simulator started")
	}
	return nil
}

func (g *gateway) closeSimulators() error {
	var errs []error
	for _, s := range g.sims {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Addr is where the public API listens.
func (g *gateway) Addr() string { return g.node.Addr() }

// Stop drains and stops the node (see node.Node.Stop), then the
// simulators.
func (g *gateway) Stop(ctx context.Context) error {
	return errors.Join(g.ops.close(ctx), g.node.Stop(ctx), g.closeSimulators())
}

// engineRoutes are the configuration's routes as the engine takes them.
func engineRoutes(cfg *Config) []switchboard.Route {
	routes := make([]switchboard.Route, len(cfg.Routes))
	for i, r := range cfg.Routes {
		routes[i] = switchboard.Route{Prefix: r.Prefix, Carriers: r.Carriers}
	}
	return routes
}

// engineCarriers are the configuration's carriers as the engine takes them.
func engineCarriers(cfg *Config) []actors.CarrierConfig {
	carriers := make([]actors.CarrierConfig, len(cfg.Carriers))
	for i, c := range cfg.Carriers {
		carriers[i] = actors.CarrierConfig{Name: c.Name, Binds: c.Binds, TPS: c.TPS, SMPP: smppConfig(c),
			ReceiptTimeout: c.ReceiptTimeout.Std(), MaxAttempts: c.MaxAttempts}
	}
	return carriers
}

func engineConfig(cfg *Config, ring *switchboard.KeyRing, log zerolog.Logger) actors.Config {
	return actors.Config{
		Keys: ring, Routes: engineRoutes(cfg), Carriers: engineCarriers(cfg),
		MaxParts: cfg.Limits.MaxParts, DefaultValidity: cfg.Limits.DefaultValidity.Std(),
		MaxValidity: cfg.Limits.MaxValidity.Std(), Log: log,
		Webhooks: actors.WebhookConfig{
			MaxAge: cfg.Webhooks.MaxAge.Std(), RetryMin: cfg.Webhooks.RetryMin.Std(),
			RetryMax: cfg.Webhooks.RetryMax.Std(), Concurrency: cfg.Webhooks.Concurrency,
			GoneFor: cfg.Webhooks.GoneFor.Std(),
		},
		InboundTimeout:       cfg.Inbound.ReassemblyTimeout.Std(),
		ReadyRequiresCarrier: cfg.Node.readyRequiresCarrier(),
	}
}

func smppConfig(c CarrierConfig) smpp.Config {
	s := smpp.Config{
		Addr: c.Host, SystemID: c.SystemID, Password: c.Password, SystemType: c.SystemType,
		AddressRange: c.AddressRange, Window: c.Window, IDFormat: c.ParsedIDFormat(),
		EnquireLinkInterval: c.EnquireLink.Std(), ResponseTimeout: c.ResponseTimeout.Std(),
		ReconnectMin: c.ReconnectMin.Std(), ReconnectMax: c.ReconnectMax.Std(),
		Mode: smpp.Transceiver, Statuses: c.Statuses(),
	}
	if c.BindType == BindTransmitterReceiver {
		s.Mode = smpp.TransmitterReceiver
	}
	if c.TLS {
		host, _, _ := net.SplitHostPort(c.Host)
		s.TLS = &tls.Config{ServerName: host, InsecureSkipVerify: c.TLSSkipVerify, MinVersion: tls.VersionTLS12}
	}
	return s
}
