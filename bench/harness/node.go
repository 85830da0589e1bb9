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
	sbhttp "github.com/switchboard-sms/switchboard/http"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/switchboard-sms/switchboard/storage/pebble"
)

// The in-process node is wired as cmd/switchboard/gateway.go's
// startGateway wires one (package main cannot be imported): the SMSC
// simulator on 127.0.0.1:0, the Pebble store, the actor engine with one
// carrier and the default route to it, and the HTTP API on 127.0.0.1:0.
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
	callbackBatch      int    // events per webhook request (keys[].callback_batch)
	webhookConcurrency int    // requests in flight and connections per callback endpoint (0: the defaults, 64)
	simAddr            string // the in-process simulator's listen address (default 127.0.0.1:0)
	smscAddr           string // an external simulator/SMSC: no in-process one
}

type node struct {
	cfg     nodeConfig
	sim     *smsc.Server
	ring    *switchboard.KeyRing
	secrets []string

	store  *pebble.Store
	hooks  *callback.Client
	engine *actors.Engine
	srv    *sbhttp.Server
	addr   string
	served chan error

	// Fed by the simulator's OnSubmit hook (one per submit_sm part it
	// accepted): the count, and the first one's time since armFirstSubmit.
	submits     atomic.Int64
	firstSubmit atomic.Int64 // unix nanos; 0 until one arrives
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

func (n *node) onSubmit(smsc.Submit) {
	n.submits.Add(1)
	if n.firstSubmit.Load() == 0 {
		n.firstSubmit.CompareAndSwap(0, time.Now().UnixNano())
	}
}

// armFirstSubmit forgets the first submit seen so far, so the next one is
// timed.
func (n *node) armFirstSubmit() { n.firstSubmit.Store(0) }

// firstSubmitAt is the first submit since armFirstSubmit, zero if none.
func (n *node) firstSubmitAt() time.Time {
	if ns := n.firstSubmit.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// openTimes says how long each step of opening the gateway took.
type openTimes struct {
	store, engineStart, http time.Duration
	started                  time.Time // when Engine.Start was called
}

// openGateway opens the store, starts the engine and serves HTTP, as
// startGateway does.
func (n *node) openGateway() (t openTimes, err error) {
	defer func() {
		if err != nil {
			n.abort()
		}
	}()
	t0 := time.Now()
	if n.store, err = pebble.Open(n.cfg.dataDir, pebble.Options{Logger: n.cfg.log}); err != nil {
		return t, fmt.Errorf("storage: %w", err)
	}
	t.store = time.Since(t0)
	n.hooks = callback.New(callback.Options{AllowPrivate: true, MaxConnsPerEndpoint: n.cfg.webhookConcurrency})
	n.engine, err = actors.New(actors.Config{
		Store:  n.store,
		Keys:   n.ring,
		Routes: []switchboard.Route{{Prefix: "", Carriers: []string{carrierName}}},
		Carriers: []actors.CarrierConfig{{
			Name: carrierName, Binds: n.cfg.binds,
			SMPP: smpp.Config{
				Addr: n.smscAddr(), SystemID: systemID, Password: password,
				Window: n.cfg.window, Mode: smpp.Transceiver,
				ReconnectMin: n.cfg.reconnectMin, ReconnectMax: n.cfg.reconnectMax,
			},
		}},
		KeyWindow: n.cfg.keyWindow,
		Webhooks:  actors.WebhookConfig{Poster: callback.Poster{Client: n.hooks}, Concurrency: n.cfg.webhookConcurrency},
		Log:       n.cfg.log,
	})
	if err != nil {
		return t, err
	}
	t.started = time.Now()
	if err = n.engine.Start(context.Background()); err != nil {
		return t, err
	}
	t.engineStart = time.Since(t.started)
	t1 := time.Now()
	n.srv, err = sbhttp.New(sbhttp.Config{Engine: n.engine, Keys: n.ring, Log: n.cfg.log})
	if err != nil {
		return t, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return t, err
	}
	n.addr, n.served = ln.Addr().String(), make(chan error, 1)
	srv := n.srv
	go func() { n.served <- srv.Serve(ln) }()
	t.http = time.Since(t1)
	return t, nil
}

// stopGateway stops the gateway part as gateway.Stop does: HTTP drains,
// the engine finishes what is in flight and unbinds, the store closes.
func (n *node) stopGateway(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	n.srv.Drain()
	errs := []error{n.srv.Shutdown(ctx), n.engine.Stop(ctx)}
	if err := <-n.served; err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	n.hooks.Close()
	errs = append(errs, n.store.Close())
	n.srv, n.engine, n.store, n.hooks = nil, nil, nil, nil
	return errors.Join(errs...)
}

// abort releases what a failed openGateway had opened.
func (n *node) abort() {
	if n.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.srv.Shutdown(ctx)
		cancel()
	}
	if n.engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.engine.Stop(ctx)
		cancel()
	}
	if n.hooks != nil {
		n.hooks.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
	n.srv, n.engine, n.store, n.hooks = nil, nil, nil, nil
}

// close stops everything.
func (n *node) close(timeout time.Duration) error {
	var err error
	if n.engine != nil {
		err = n.stopGateway(timeout)
	}
	if n.sim != nil {
		err = errors.Join(err, n.sim.Close())
	}
	return err
}

// receipts is what the engine has recorded since it started.
func (n *node) receipts() int64 {
	if n.engine == nil {
		return 0
	}
	return n.engine.Stats().Receipts
}
