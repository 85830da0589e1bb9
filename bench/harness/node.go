package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	gwnode "github.com/switchboard-sms/switchboard/cmd/switchboard/node"
	sbhttp "github.com/switchboard-sms/switchboard/http"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/storage/pebble"
	"github.com/switchboard-sms/switchboard/storage/redis"
	"github.com/switchboard-sms/switchboard/storage/scylla"
)

// The in-process node is the switchboard command's (cmd/switchboard/node)
// with the bench's configuration: the SMSC simulator on 127.0.0.1:0, the
// Pebble store, the actor engine with one carrier and the default route to
// it, and the HTTP API on 127.0.0.1:0.
// The simulator lives for the whole run; the gateway part (store, engine,
// HTTP) can be stopped and opened again on the same data, as a restart.

const (
	carrierName = "sim"
	systemID    = "switchboard"
	password    = "secret"
)

type nodeConfig struct {
	keys         int
	maxQueued    int
	binds        int
	carrierTPS   float64 // carriers[].tps (0: unlimited)
	window       int
	keyWindow    int // 0: the engine's default
	reconnectMin time.Duration
	reconnectMax time.Duration
	receiptDelay time.Duration
	dataDir      string
	log          zerolog.Logger
	out          io.Writer // reports
	// callbackURLs[i] is key i's callback_url (the webhook scenario);
	// callbackURL, if set, is every key's (load mode with the sink).
	callbackURLs []string
	callbackURL  string
	// callbackStatuses are the statuses the keys hear about (0: the
	// gateway's default).
	callbackStatuses   switchboard.StatusSet
	callbackBatch      int      // events per webhook request (keys[].callback_batch)
	webhookConcurrency int      // requests in flight and connections per callback endpoint (0: the defaults, 64)
	simAddr            string   // the in-process simulator's listen address (default 127.0.0.1:0)
	smscAddr           string   // an external simulator/SMSC: no in-process one
	backend            *backend // the storage: nil or embedded, Pebble in dataDir
}

// scylla is the ScyllaDB store's options and the cache's Redis, when the
// storage is scylla; nil, nil for the embedded store.
func (cfg *nodeConfig) scylla() (*scylla.Options, *redis.ClientOptions) {
	b := cfg.backend
	if b == nil || b.name != "scylla" {
		return nil, nil
	}
	opts := &scylla.Options{Hosts: []string{b.cql}, Keyspace: b.keyspace, ReplicationFactor: 1, Logger: cfg.log}
	var cache *redis.ClientOptions
	if b.redis != "" {
		cache = &redis.ClientOptions{Addr: b.redis}
	}
	return opts, cache
}

type node struct {
	cfg     nodeConfig
	sim     *smsc.Server
	ring    *switchboard.KeyRing
	secrets []string

	gw   *gwnode.Node // nil while stopped (--restart-pending)
	addr string       // the API's address while gw runs

	submitWatch // fed by the simulator's OnSubmit hook
}

// benchKeys makes n API keys with limits far above any load here.
func benchKeys(n, maxQueued int) ([]*switchboard.Key, []string) {
	keys := make([]*switchboard.Key, n)
	secrets := make([]string, n)
	for i := range keys {
		secrets[i] = fmt.Sprintf("bench-secret-%04d", i)
		keys[i] = &switchboard.Key{
			ID: fmt.Sprintf("bench-%04d", i), SecretHash: switchboard.HashSecret(secrets[i]),
			Rate: 1e9, Burst: 1e9, MaxQueued: maxQueued,
		}
	}
	return keys, secrets
}

// startNode starts the simulator (refusing binds if carrierDown) and then
// the gateway.
func startNode(cfg nodeConfig, carrierDown bool) (*node, error) {
	n := &node{cfg: cfg}
	keys, secrets := benchKeys(cfg.keys, cfg.maxQueued)
	for i, k := range keys {
		if i < len(cfg.callbackURLs) {
			k.CallbackURL = cfg.callbackURLs[i]
		} else if cfg.callbackURL != "" {
			k.CallbackURL = cfg.callbackURL
		}
		k.CallbackStatuses, k.CallbackBatch = cfg.callbackStatuses, cfg.callbackBatch
	}
	n.ring, n.secrets = switchboard.NewKeyRing(keys), secrets
	if cfg.smscAddr != "" {
		if _, err := n.openGateway(); err != nil {
			return nil, err
		}
		return n, nil
	}
	var err error
	n.sim, err = startSim(cfg, carrierDown, n.onSubmit)
	if err != nil {
		return nil, err
	}
	if _, err := n.openGateway(); err != nil {
		n.sim.Close()
		return nil, err
	}
	return n, nil
}

// startSim starts the in-process SMSC simulator.
func startSim(cfg nodeConfig, carrierDown bool, onSubmit func(smsc.Submit)) (*smsc.Server, error) {
	addr := cfg.simAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	sim, err := smsc.Listen(smsc.Config{
		Addr:         addr,
		ReceiptDelay: smsc.Delay{Min: cfg.receiptDelay, Max: cfg.receiptDelay},
		Faults:       smsc.Faults{RefuseBinds: carrierDown},
		OnSubmit:     onSubmit,
		Log:          cfg.log.With().Str("component", "smsc-simulator").Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	return sim, nil
}

// smscAddr is where the gateway's binds go.
func (n *node) smscAddr() string {
	if n.sim == nil {
		return n.cfg.smscAddr
	}
	return n.sim.Addr()
}

// submitWatch is fed by the simulator's OnSubmit hook, one call per
// submit_sm part it accepted: the count, and the first one's time since
// armFirstSubmit, which times the carrier coming back. The hook is the
// only view of the carrier side that does not depend on where the gateway
// runs.
type submitWatch struct {
	submits     atomic.Int64
	firstSubmit atomic.Int64 // unix nanos; 0 until one arrives
}

// onSubmit is the simulator's OnSubmit hook; it must not block.
func (w *submitWatch) onSubmit(smsc.Submit) {
	w.submits.Add(1)
	if w.firstSubmit.Load() == 0 {
		w.firstSubmit.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// armFirstSubmit forgets the first submit seen so far, so the next one is
// timed.
func (w *submitWatch) armFirstSubmit() { w.firstSubmit.Store(0) }

// firstSubmitAt is the first submit since armFirstSubmit, zero if none.
func (w *submitWatch) firstSubmitAt() time.Time {
	if ns := w.firstSubmit.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// submitCount is how many submit_sm parts the simulator has accepted.
func (w *submitWatch) submitCount() int64 { return w.submits.Load() }

// measured is the process whose RSS and CPU are the in-process node's:
// this one, with the load generator and the simulator in it.
func (n *node) measured() proc { return self }

// openGateway opens the store, starts the engine and serves HTTP, as the
// switchboard command does (package node), with the bench's one carrier.
func (n *node) openGateway() (gwnode.Timings, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return gwnode.Timings{}, err
	}
	db, cache := n.cfg.scylla()
	gw, err := gwnode.Open(context.Background(), gwnode.Config{
		DataDir:  n.cfg.dataDir,
		Store:    pebble.Options{Logger: n.cfg.log},
		Scylla:   db,
		Cache:    cache,
		Webhooks: callback.Options{AllowPrivate: true, MaxConnsPerEndpoint: n.cfg.webhookConcurrency},
		Engine: actors.Config{
			Keys:   n.ring,
			Routes: []switchboard.Route{{Prefix: "", Carriers: []string{carrierName}}},
			Carriers: []actors.CarrierConfig{{
				Name: carrierName, Binds: n.cfg.binds, TPS: n.cfg.carrierTPS,
				SMPP: smpp.Config{
					Addr: n.smscAddr(), SystemID: systemID, Password: password,
					Window: n.cfg.window, Mode: smpp.Transceiver,
					ReconnectMin: n.cfg.reconnectMin, ReconnectMax: n.cfg.reconnectMax,
				},
			}},
			KeyWindow: n.cfg.keyWindow,
			Webhooks:  actors.WebhookConfig{Concurrency: n.cfg.webhookConcurrency},
			Log:       n.cfg.log,
		},
		HTTP:     sbhttp.Config{Log: n.cfg.log},
		Listener: ln,
	})
	if err != nil {
		return gwnode.Timings{}, err
	}
	n.gw, n.addr = gw, gw.Addr()
	return gw.Timings, nil
}

// stopGateway stops the gateway part as the switchboard command does.
func (n *node) stopGateway(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := n.gw.Stop(ctx)
	n.gw = nil
	return err
}

// close stops everything.
func (n *node) close(timeout time.Duration) error {
	var err error
	if n.gw != nil {
		err = n.stopGateway(timeout)
	}
	if n.sim != nil {
		err = errors.Join(err, n.sim.Close())
	}
	return err
}

// receipts is what the engine has recorded since it started.
func (n *node) receipts() int64 {
	if n.gw == nil {
		return 0
	}
	return n.gw.Engine.Stats().Receipts
}
