// Command passthrough is not a gateway: it is the network work of one,
// with everything else taken out, to measure what that work costs on a
// machine. It answers POST /v1/messages with a 202 at once (nothing is
// stored: a crash loses everything), submits the message over SMPP with
// the gateway's own client, waits for each part's receipt and posts one
// final "delivered" callback with the gateway's own webhook client. No
// store, no actors, no validation beyond what it needs to route, no
// retries, no signatures.
//
// It speaks to the load driver as the gateway binary does (--config with
// the cluster.yaml the driver writes, "listening on http://ADDR" on
// stdout, SIGUSR1/SIGUSR2 around the measured window, SIGTERM to stop), so
//
//	go build -o /tmp/passthrough ./bench/passthrough
//	go run ./bench --gateway-bin /tmp/passthrough --scenario bench/scenarios/steady.yaml --rate 5000
//
// measures its CPU per delivered message exactly as the gateway's is
// measured: a floor under the gateway's figure on that machine, the part
// of it no change to the store or the engine can remove.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/oklog/ulid/v2"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
	"github.com/switchboard-sms/switchboard/http/callback"
	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"
)

// config is the part of the driver's cluster.yaml the passthrough reads.
type config struct {
	Carriers []struct {
		Host     string `yaml:"host"`
		SystemID string `yaml:"system_id"`
		Password string `yaml:"password"`
		Binds    int    `yaml:"binds"`
		Window   int    `yaml:"window"`
	} `yaml:"carriers"`
	Keys []struct {
		Secret      string `yaml:"secret"`
		CallbackURL string `yaml:"callback_url"`
	} `yaml:"keys"`
	Webhooks struct {
		Concurrency int `yaml:"concurrency"`
	} `yaml:"webhooks"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "passthrough:", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("config", "", "the driver's cluster.yaml")
	cpuProfile := flag.String("cpuprofile", "", "CPU profile of the window between SIGUSR1 and SIGUSR2")
	flag.String("memprofile", "", "accepted and ignored")
	flag.Parse()
	cfg, err := readConfig(*path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	// Deferred, so run in reverse: stop ends the binds and the profile
	// window, both are waited for, then the callbacks queued are posted.
	p := newPassthrough(cfg)
	defer p.close()
	var owned sync.WaitGroup
	defer owned.Wait()
	defer stop()
	owned.Go(func() { profileWindow(ctx, *cpuProfile) })
	if err := p.bind(ctx, cfg, &owned); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{Handler: p.handle}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("passthrough listening on http://%s\n", ln.Addr())
	select {
	case err = <-served:
	case <-ctx.Done():
		err = srv.Shutdown()
	}
	return err
}

func readConfig(path string) (*config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg config
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cfg.Carriers) == 0 || len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("%s: needs a carrier and a key", path)
	}
	return &cfg, nil
}

// profileWindow writes a CPU profile of the window between SIGUSR1 and
// SIGUSR2 (the driver's measured window), as the gateway does.
func profileWindow(ctx context.Context, path string) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(ch)
	var f *os.File
	for {
		select {
		case <-ctx.Done():
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
			}
			return
		case s := <-ch:
			switch {
			case path == "":
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(path); err == nil {
					err = pprof.StartCPUProfile(f)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "passthrough: cpuprofile:", err)
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				f.Close()
				f = nil
			}
		}
	}
}

// message is one accepted message until its last part's receipt.
type message struct {
	id, url   string
	parts     int // 0 until the submit_sm_resps are in
	receipted int
}

// passthrough joins the three connections: a 202 for each request, a
// submit on the next bind, a callback when every part is receipted.
type passthrough struct {
	callbackBySecret map[string]string
	binds            []*smpp.Client
	next             atomic.Uint64
	hooks            *callback.Client
	finals           chan *message
	workers          sync.WaitGroup

	mu        sync.Mutex
	byCarrier map[string]*message // carrier id → its message
	early     map[string]struct{} // receipts that came before their submit_sm_resp
	failed    atomic.Int64
}

func newPassthrough(cfg *config) *passthrough {
	p := &passthrough{
		callbackBySecret: make(map[string]string, len(cfg.Keys)),
		hooks:            callback.New(callback.Options{AllowPrivate: true, MaxConnsPerEndpoint: cfg.Webhooks.Concurrency}),
		finals:           make(chan *message, 1<<16),
		byCarrier:        make(map[string]*message),
		early:            make(map[string]struct{}),
	}
	for _, k := range cfg.Keys {
		p.callbackBySecret[k.Secret] = k.CallbackURL
	}
	workers := max(cfg.Webhooks.Concurrency, 1)
	p.workers.Add(workers)
	for range workers {
		go p.post()
	}
	return p
}

// bind starts the first carrier's binds; they run until ctx ends.
func (p *passthrough) bind(ctx context.Context, cfg *config, wg *sync.WaitGroup) error {
	c := cfg.Carriers[0]
	for i := range max(c.Binds, 1) {
		cl, err := smpp.NewClient(smpp.Config{Name: fmt.Sprintf("sim-%d", i), Addr: c.Host,
			SystemID: c.SystemID, Password: c.Password, Window: c.Window, OnReceipt: p.receipt})
		if err != nil {
			return fmt.Errorf("bind %d: %w", i, err)
		}
		p.binds = append(p.binds, cl)
		wg.Add(1)
		go func() { defer wg.Done(); cl.Run(ctx) }()
	}
	return nil
}

func (p *passthrough) close() {
	close(p.finals)
	p.workers.Wait()
	p.hooks.Close()
	if n := p.failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "passthrough: %d submits failed (not retried)\n", n)
	}
}

func (p *passthrough) handle(ctx *fasthttp.RequestCtx) {
	secret, _ := strings.CutPrefix(string(ctx.Request.Header.Peek("Authorization")), "Bearer ")
	url, ok := p.callbackBySecret[secret]
	if !ok || string(ctx.Path()) != "/v1/messages" {
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		return
	}
	var in struct{ To, From, Body string }
	if err := json.Unmarshal(ctx.PostBody(), &in); err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	seg, err := gsm.Split(in.Body, 0)
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	m := &message{id: "msg_" + ulid.Make().String(), url: url}
	bind := p.binds[p.next.Add(1)%uint64(len(p.binds))]
	// The 202 goes before the submit completes, as the gateway's does;
	// the submit waits only for room in the bind's window.
	bind.SubmitAsync(ctx, &smpp.Message{From: in.From, To: in.To, Segments: &seg}, func(r smpp.Result, err error) {
		p.submitted(m, r, err)
	})
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"id":"` + m.id + `","status":"accepted","segments":` + strconv.Itoa(len(seg.Parts)) + `}`)
}

// submitted files the message under its parts' carrier ids, counting the
// receipts that overtook their submit_sm_resp.
func (p *passthrough) submitted(m *message, r smpp.Result, err error) {
	if err != nil {
		p.failed.Add(1)
		return
	}
	p.mu.Lock()
	m.parts = len(r.CarrierIDs)
	for _, id := range r.CarrierIDs {
		if _, ok := p.early[id]; ok {
			delete(p.early, id)
			m.receipted++
		} else {
			p.byCarrier[id] = m
		}
	}
	done := m.receipted == m.parts
	p.mu.Unlock()
	if done {
		p.finals <- m
	}
}

func (p *passthrough) receipt(r switchboard.Receipt, ack func(error)) {
	ack(nil)
	if r.Status == "" {
		return
	}
	p.mu.Lock()
	m, ok := p.byCarrier[r.CarrierMessageID]
	if !ok {
		p.early[r.CarrierMessageID] = struct{}{}
		p.mu.Unlock()
		return
	}
	delete(p.byCarrier, r.CarrierMessageID)
	m.receipted++
	done := m.receipted == m.parts
	p.mu.Unlock()
	if done {
		p.finals <- m
	}
}

// post sends final callbacks, one request each, until close.
func (p *passthrough) post() {
	defer p.workers.Done()
	var body []byte
	for m := range p.finals {
		body = append(body[:0], `{"event_id":"evt_`...)
		body = append(body, ulid.Make().String()...)
		body = append(body, `","type":"message.status","message_id":"`...)
		body = append(body, m.id...)
		body = append(body, `","status":"delivered"}`...)
		if res := p.hooks.Post(context.Background(), m.url, body, nil); res.Err != nil {
			fmt.Fprintln(os.Stderr, "passthrough: callback:", res.Err)
		}
	}
}
