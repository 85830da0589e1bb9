package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/cmd/switchboard/node"
	sbhttp "github.com/switchboard-sms/switchboard/http"
)

// What a node offers its operators, wired here: the admin listener
// (node.admin: /metrics, the probes, the status page and the admin API),
// the metrics, TLS on both listeners, the catalog of keys, carriers and
// routes, and SIGHUP.

// catalogSync is how often the catalog reads the store for changes made
// through other nodes: a key revoked anywhere stops working everywhere
// within it.
const catalogSync = time.Second

// operations is a gateway's operator-facing part.
type operations struct {
	log      zerolog.Logger
	registry *prometheus.Registry
	metrics  *sbhttp.Metrics
	cert     *sbhttp.Certificate // nil without TLS
	catalog  *catalog
	admin    *sbhttp.AdminServer
	adminLn  net.Listener
	// token is node.admin_token as last loaded: SIGHUP may change it.
	token    atomic.Pointer[string]
	draining atomic.Bool
	node     atomic.Pointer[node.Node] // nil until the node runs

	ctx  context.Context // the admin listener's and the catalog's, until close
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newOperations(cfg *Config, log zerolog.Logger) (*operations, error) {
	o := &operations{log: log, registry: prometheus.NewRegistry(), catalog: newCatalog(cfg, log)}
	var err error
	if o.metrics, err = sbhttp.NewMetrics(o.registry); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if cfg.Node.TLSCert != "" {
		if o.cert, err = sbhttp.LoadCertificate(cfg.Node.TLSCert, cfg.Node.TLSKey); err != nil {
			return nil, fmt.Errorf("node.tls_cert: %w", err)
		}
	}
	token := cfg.Node.AdminToken
	o.token.Store(&token)
	return o, nil
}

// serveTLS wraps a listener in TLS when a certificate is configured.
func (o *operations) serveTLS(ln net.Listener) net.Listener {
	if o.cert == nil {
		return ln
	}
	return tls.NewListener(ln, o.cert.Config())
}

// scheme is the listeners' URL scheme.
func (o *operations) scheme() string {
	if o.cert != nil {
		return "https"
	}
	return "http"
}

// listen takes node.admin's port.
func (o *operations) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node.admin: %w", err)
	}
	o.adminLn = o.serveTLS(ln)
	return nil
}

// serve serves the admin listener from before the node opens: while its
// store connects, /healthz answers (a liveness probe must not restart a
// node that waits for its database) and the rest says the node is
// starting.
func (o *operations) serve(cfg *Config) error {
	current := currentEngine{o}
	o.metrics.Observe(current)
	admin, err := sbhttp.NewAdmin(sbhttp.AdminConfig{
		Token: *o.token.Load(), Ops: current, Catalog: o.catalog, Metrics: o.metrics, Gatherer: o.registry,
		Log: o.log, Node: cfg.Node.Name, AuthFailuresPerMinute: cfg.Node.authFailuresPerMinute(),
	})
	if err != nil {
		return err
	}
	admin.DrainingWith(o.draining.Load)
	o.admin = admin
	o.ctx, o.stop = context.WithCancel(context.Background())
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		if err := admin.Serve(o.adminLn); err != nil {
			o.log.Error().Err(err).Msg("admin listener stopped")
		}
	}()
	return nil
}

// attach points the admin listener at the node once it runs, and keeps
// the catalog in step with the store from then on.
func (o *operations) attach(n *node.Node) {
	o.node.Store(n)
	o.catalog.attach(n.CurrentEngine)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		o.catalog.poll(o.ctx, catalogSync)
	}()
}

// currentEngine is the node's engine at each call: a clustered node
// starts a new one when it rejoins; before the node runs there is none,
// and the node is starting.
type currentEngine struct{ o *operations }

// errStarting answers what needs the node before it runs.
func errStarting() error {
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "The node is starting; try again.")
}

func (c currentEngine) engine() *actors.Engine {
	if n := c.o.node.Load(); n != nil {
		return n.CurrentEngine()
	}
	return nil
}

func (c currentEngine) Gauges() actors.Gauges {
	if e := c.engine(); e != nil {
		return e.Gauges()
	}
	return actors.Gauges{}
}

func (c currentEngine) Stats() actors.Stats {
	if e := c.engine(); e != nil {
		return e.Stats()
	}
	return actors.Stats{}
}

func (c currentEngine) Ready() error {
	if e := c.engine(); e != nil {
		return e.Ready()
	}
	return errStarting()
}

func (c currentEngine) Fleet() (actors.FleetStatus, bool) {
	if e := c.engine(); e != nil {
		return e.Fleet()
	}
	return actors.FleetStatus{}, false
}

func (c currentEngine) CancelMessage(ctx context.Context, id string) (*switchboard.Message, error) {
	if e := c.engine(); e != nil {
		return e.CancelMessage(ctx, id)
	}
	return nil, errStarting()
}

// close stops the admin listener and the catalog's polling; before start
// (a failed start), it frees the admin port.
func (o *operations) close(ctx context.Context) error {
	if o.admin == nil {
		if o.adminLn != nil {
			return o.adminLn.Close()
		}
		return nil
	}
	o.stop()
	wait, cancel := context.WithTimeout(ctx, adminStopWait)
	defer cancel()
	err := o.admin.Shutdown(wait)
	o.wg.Wait()
	return err
}

// adminStopWait bounds how long a stopping node waits for admin requests
// in progress (a secret being rotated, a carrier suspended) before it
// cancels them: the engine's stop, which follows, needs the rest of
// node.shutdown_timeout.
const adminStopWait = 5 * time.Second

// reload re-reads the configuration (SIGHUP) and applies what can change
// live: keys, carriers and routes (with the admin API's, as one
// configuration, validated first), the admin token and the TLS
// certificate. A configuration that does not load or validate changes
// nothing. Settings that need a restart are named in the log.
func (g *gateway) reload(ctx context.Context, load func() (*Config, error)) error {
	next, err := load()
	if err != nil {
		return err
	}
	o := g.ops
	old := o.catalog.file
	// A simulator listens where it was started; a reloaded file keeps it
	// there, and cannot add one.
	for i, c := range next.Carriers {
		if !c.Simulator {
			continue
		}
		found := false
		for _, oc := range old.Carriers {
			if oc.Simulator && oc.Name == c.Name {
				next.Carriers[i].Host, found = oc.Host, true
			}
		}
		if !found {
			return fmt.Errorf("carriers[%d]: a new simulator carrier (%s) needs a restart", i, c.Name)
		}
	}
	if (next.Node.TLSCert == "") != (o.cert == nil) {
		return errors.New("node.tls_cert: turning TLS on or off needs a restart")
	}
	if err := o.catalog.reload(ctx, liveConfig(old, next)); err != nil {
		return err
	}
	if o.cert != nil {
		if err := o.cert.Use(next.Node.TLSCert, next.Node.TLSKey); err != nil {
			g.log.Error().Err(err).Msg("reload: the TLS certificate stays as it was")
		}
	}
	token := next.Node.AdminToken
	o.token.Store(&token)
	o.admin.SetToken(token)
	if restart := needsRestart(old, next); len(restart) > 0 {
		g.log.Warn().Strs("settings", restart).Msg("reload: these settings changed and take effect after a restart")
	}
	return nil
}

// liveConfig is the configuration a reload runs with: next's keys,
// carriers, routes, admin token and TLS files, which apply live, and
// old's everything else, which needs a restart. The keys are checked
// against what runs (webhooks.allow_private_networks, cluster.enabled),
// not against what a restart would bring.
func liveConfig(old, next *Config) *Config {
	live := *old
	live.Keys, live.Carriers, live.Routes = next.Keys, next.Carriers, next.Routes
	live.Node.AdminToken, live.Node.TLSCert, live.Node.TLSKey = next.Node.AdminToken, next.Node.TLSCert, next.Node.TLSKey
	return &live
}

// needsRestart names the sections whose changes a reload does not apply:
// next with old's live settings (liveConfig) differs from old only there.
func needsRestart(old, next *Config) []string {
	var out []string
	va, vb := reflect.ValueOf(*old), reflect.ValueOf(*liveConfig(next, old))
	for i := range va.NumField() {
		name := yamlName(va.Type().Field(i))
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// watchReloads applies the configuration again on every signal on reload
// until stop ends; each result is logged.
func (g *gateway) watchReloads(stop context.Context, reload <-chan struct{}, load func() (*Config, error)) {
	for {
		select {
		case <-stop.Done():
			return
		case <-reload:
		}
		g.log.Info().Msg("SIGHUP: reloading the configuration")
		ctx, cancel := context.WithTimeout(stop, 30*time.Second)
		err := g.reload(ctx, load)
		cancel()
		if err != nil {
			g.log.Error().Err(err).Msg("reload failed: nothing changed")
			continue
		}
		g.log.Info().Msg("configuration reloaded")
	}
}

// configLoader re-reads the configuration as the node was started: the
// same file, environment and --set flags.
func configLoader(path string, sets []string) func() (*Config, error) {
	return func() (*Config, error) { return loadConfig(path, os.Environ(), sets) }
}
