// Package harness is Switchboard's load driver, run as `go run ./bench`
// or `switchboard bench`. It starts a whole rig on this machine — the
// gateway (in this process, or its binary as a subprocess), the SMSC
// simulator, and a webhook sink that records every callback — or drives a
// running deployment (--target URL) or Kannel (--target kannel), open
// loop (each request has an intended send time and its latency counts
// from it, so stalls are not hidden) or closed loop. It measures offered
// and accepted rates, status codes, accept latency (HDR histograms), end
// to end latency from the 202 to the final callback, delivered/s, lost
// and duplicate messages, and the gateway's RSS and CPU; it prints a
// progress line a second and a summary, and writes JSON (--out) and an
// SVG plot (--plot). Scenario files (bench/scenarios/*.yaml) hold flag
// settings.
//
// See bench/README.md for every flag and how to read the output.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
	"github.com/switchboard-sms/switchboard/http/sink"
)

func numCPU() int { return runtime.NumCPU() }

// Main runs the driver with args (without the program name), writing
// reports to stdout and errors to stderr, and returns the exit status: 0
// when every accepted message was delivered (load mode) or the queue
// drained (scenarios); 1 when messages were lost or on failure; 2 for bad
// flags.
func Main(args []string, stdout, stderr io.Writer) int {
	code, err := run(args, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
	}
	return code
}

// settings are every flag's value, after the scenario file and the
// command line.
type settings struct {
	scenario string
	target   string
	secret   string
	rate     float64
	duration time.Duration
	warmup   time.Duration
	conns    int
	inflight int
	timeout  time.Duration
	keys     int
	dests    int
	bodyMix  string
	batch    int
	hotKey   float64
	drain    time.Duration

	callbacks          bool
	callbackStatuses   string
	callbackBatch      int
	sinkAddr           string
	webhookDelay       time.Duration
	webhookConcurrency int

	rampStart, rampStep, rampMax float64
	rampStepFor, rampP99         time.Duration
	burstFactor                  float64
	burstAt, burstFor            time.Duration
	outageAt, outageFor          time.Duration

	out, plot string

	kannelURL, kannelUser, kannelPass string
	pid                               string
	gatewayBin                        string
	storage, cql, redis, deployDir    string
	cassandraHeap                     string
	smscAddr                          string
	simAddr                           string

	binds, window, keyWindow, maxQueued int
	carrierTPS                          float64
	receiptDelay                        time.Duration
	reconnectMin, reconnectMax          time.Duration
	dataDir                             string
	keepData                            bool
	logLevel                            string

	queueN, restartN, batchConns int
	acceptFor                    time.Duration
	webhooksN, deadEvents        int
	badEvents                    int
	cpuProfile, profilePhase     string
	memProfile                   string
	traceFile                    string
	noDuplicates                 bool
	expectDelivered              bool
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&s.scenario, "scenario", "", "load settings from a scenario `FILE` (bench/scenarios/*.yaml); flags given explicitly override it")
	fs.StringVar(&s.target, "target", "", "drive a running gateway at `URL` (http://127.0.0.1:PORT), or \"kannel\" (Kannel's sendsms, see --kannel-url), instead of one started here")
	fs.StringVar(&s.secret, "secret", "", "with --target URL: API key secret(s), comma-separated")
	fs.Float64Var(&s.rate, "rate", 10000, "messages/s offered, open loop; 0: closed loop, as fast as --conns workers go")
	fs.DurationVar(&s.duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&s.warmup, "warmup", 2*time.Second, "load before the measured window, not counted")
	fs.IntVar(&s.conns, "conns", 64, "HTTP connections (closed loop: also the number of workers)")
	fs.IntVar(&s.inflight, "inflight", 0, "open loop: most requests in flight at once; more wait (and their wait counts in latency); default --conns")
	fs.DurationVar(&s.timeout, "timeout", 10*time.Second, "per request; an open-loop request more than this late is given up unsent")
	fs.IntVar(&s.keys, "keys", 50, "API keys (messages spread uniformly, see --hot-key)")
	fs.IntVar(&s.dests, "dests", 1000, "destination numbers (messages spread uniformly)")
	fs.StringVar(&s.bodyMix, "body-mix", "", "bodies and weights, e.g. short:80,long:10,ucs2:5,emoji:5 (default short only: GSM-7, 60 chars, 1 part)")
	fs.IntVar(&s.batch, "batch", 0, "messages per request: load mode default 1 (POST /v1/messages), above 1 POST /v1/messages/batch; --queue/--restart-pending/--webhooks default 1000")
	fs.Float64Var(&s.hotKey, "hot-key", 0, "share of messages (0..1) sent with key 0, the rest spread over the other keys")
	fs.DurationVar(&s.drain, "drain", 30*time.Second, "after the load, how long accepted messages may take to reach their final callback before they count as lost (--queue/--restart-pending/--webhooks default 10m)")

	fs.BoolVar(&s.callbacks, "callbacks", true, "every key's callback_url is an in-process sink; end-to-end latency and lost are from the final callbacks (false: from the engine's receipts)")
	fs.IntVar(&s.callbackBatch, "callback-batch", 1, "events per webhook request (keys[].callback_batch): 1 posts each alone, above 1 JSON arrays of up to this many")
	fs.StringVar(&s.callbackStatuses, "callback-statuses", "final", "statuses the keys' callbacks carry: final (delivered, undeliverable, expired, rejected, failed) or default (submitted too, as the gateway's default)")
	fs.StringVar(&s.sinkAddr, "sink-addr", "127.0.0.1:0", "the sink's listen address")
	fs.DurationVar(&s.webhookDelay, "webhook-delay", 0, "the sink answers each callback after this delay (slow webhooks)")
	fs.IntVar(&s.webhookConcurrency, "webhook-concurrency", 0, "in-process node: requests in flight per callback endpoint (0: the gateway's default, 64)")

	fs.Float64Var(&s.rampStart, "ramp-start", 2000, "ramp: the first step's rate, messages/s")
	fs.Float64Var(&s.rampStep, "ramp-step", 0, "ramp: rate added each step; above 0 runs the ramp instead of one load")
	fs.Float64Var(&s.rampMax, "ramp-max", 100000, "ramp: the highest rate tried")
	fs.DurationVar(&s.rampStepFor, "ramp-step-for", 10*time.Second, "ramp: each step's measured window")
	fs.DurationVar(&s.rampP99, "ramp-p99", 50*time.Millisecond, "ramp: a step is sustainable while its p99 accept latency is at most this and nothing is lost")
	fs.Float64Var(&s.burstFactor, "burst-factor", 0, "burst: multiply the rate by this during the burst")
	fs.DurationVar(&s.burstAt, "burst-at", -1, "burst: offset into the measured window (default: centred)")
	fs.DurationVar(&s.burstFor, "burst-for", 5*time.Second, "burst: how long")
	fs.DurationVar(&s.outageAt, "outage-at", 0, "carrier outage: offset into the measured window at which the simulator drops every bind and refuses new ones")
	fs.DurationVar(&s.outageFor, "outage-for", 0, "carrier outage: how long the simulator refuses binds (0: no outage)")

	fs.StringVar(&s.out, "out", "", "write settings, machine, timeline and summary as JSON to `FILE`")
	fs.StringVar(&s.plot, "plot", "", "write an SVG plot of rates and accept latency percentiles over time to `FILE.svg`")

	fs.StringVar(&s.kannelURL, "kannel-url", "http://127.0.0.1:13013", "--target kannel: Kannel's sendsms base URL")
	fs.StringVar(&s.kannelUser, "kannel-user", "bench", "--target kannel: sendsms username")
	fs.StringVar(&s.kannelPass, "kannel-pass", "bench", "--target kannel: sendsms password")
	fs.StringVar(&s.pid, "pid", "", "read RSS and CPU of this `PID` (e.g. a gateway run elsewhere on this machine), or the sum of several, comma-separated (Kannel's bearerbox and smsbox)")
	fs.StringVar(&s.gatewayBin, "gateway-bin", "", "run the gateway from this binary (\"build\": go build it first) with a generated cluster.yaml, instead of in this process")
	fs.StringVar(&s.storage, "storage", "embedded", "the gateway's storage: embedded (Pebble in a temporary directory) or scylla (--cql, --redis); a comma-separated list (embedded,scylla) runs the same load on each in turn and compares them")
	fs.StringVar(&s.cql, "cql", "", "--storage scylla: the CQL server (host:port), or \"start\" to start one with deploy/local/cassandra/start.sh on free ports (stopped at the end)")
	fs.StringVar(&s.redis, "redis", "", "--storage scylla: Redis for the cache (host:port), \"start\" to start one with deploy/local/redis.sh, or empty for none (cache.backend memory)")
	fs.StringVar(&s.cassandraHeap, "cassandra-heap", "", "--cql start: the node's heap (CASS_HEAP; default the script's, 512M)")
	fs.StringVar(&s.deployDir, "deploy-dir", "", "where deploy/local's scripts are (default: deploy/local of the git checkout the bench runs in)")
	fs.StringVar(&s.smscAddr, "smsc", "", "the gateway binds to this SMSC (host:port) instead of the in-process simulator (no outage scenario then)")
	fs.StringVar(&s.simAddr, "sim-addr", "127.0.0.1:0", "the in-process simulator's listen address (e.g. a fixed port for Kannel's config)")

	fs.IntVar(&s.binds, "binds", 2, "SMPP binds to the simulator")
	fs.Float64Var(&s.carrierTPS, "carrier-tps", 0, "the carrier's tps (submits/s shared by its binds; 0: unlimited): accept faster than the carrier delivers")
	fs.IntVar(&s.window, "window", 64, "SMPP window per bind")
	fs.IntVar(&s.keyWindow, "key-window", 0, "messages a key actor holds in memory (0: engine default, 1000)")
	fs.IntVar(&s.maxQueued, "max-queued", 1_000_000, "each key's max_queued (--queue/--restart-pending: raised to N if below)")
	fs.DurationVar(&s.receiptDelay, "receipt-delay", 0, "simulator: delay from submit_sm_resp to the receipt")
	fs.DurationVar(&s.reconnectMin, "reconnect-min", time.Second, "bind reconnect backoff, first wait (cluster.yaml default 1s)")
	fs.DurationVar(&s.reconnectMax, "reconnect-max", time.Minute, "bind reconnect backoff cap (cluster.yaml default 60s)")
	fs.StringVar(&s.dataDir, "data-dir", "", "store directory (default: a temporary one, removed at the end); must be empty or absent")
	fs.BoolVar(&s.keepData, "keep-data", false, "keep the temporary store directory")
	fs.StringVar(&s.logLevel, "log-level", "warn", "gateway log level (debug, info, warn, error), to stderr")

	fs.IntVar(&s.queueN, "queue", 0, "scenario: accept `N` messages with the carrier down, report memory (with --gateway-bin: the gateway process's alone), bring the carrier back and measure the drain")
	fs.IntVar(&s.restartN, "restart-pending", 0, "scenario: accept `N` with the carrier down, stop the gateway cleanly, reopen it and measure time to first submit and the drain")
	fs.IntVar(&s.batchConns, "batch-conns", 4, "--queue/--restart-pending/--webhooks: concurrent batch requests")
	fs.DurationVar(&s.acceptFor, "accept-for", 10*time.Minute, "--queue/--restart-pending/--webhooks: bound on the accept phase")
	fs.IntVar(&s.webhooksN, "webhooks", 0, "scenario: queue `N` callbacks for a sink answering 503, turn it healthy and measure the delivery rate")
	fs.IntVar(&s.deadEvents, "dead-events", 0, "with --webhooks: first queue `M` callbacks for a dead endpoint (memory, isolation)")
	fs.IntVar(&s.badEvents, "bad-events", 0, "with --webhooks: first queue `K` callbacks each for an endpoint that hangs and one that answers 500 (isolation)")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured window (scenarios: see --profile-phase) to `FILE`; with --gateway-bin, the gateway's")
	fs.StringVar(&s.memProfile, "memprofile", "", "load mode: write the allocations from start to the end of the measured window (pprof allocs; -sample_index=alloc_space) to `FILE`; with --gateway-bin, the gateway's")
	fs.StringVar(&s.traceFile, "trace", "", "load mode: write a Go execution trace of the measured window to `FILE` (go tool trace; -pprof=sched shows where goroutines waited for a CPU); with --gateway-bin, the gateway's")
	fs.BoolVar(&s.noDuplicates, "no-duplicates", false, "load mode: exit 1 also when a callback arrived twice or the simulator took more submit_sm than the accepted parts (a check for CI; a carrier outage may duplicate legitimately)")
	fs.BoolVar(&s.expectDelivered, "expect-delivered", false, "load mode, not a ramp: exit 1 also when nothing was accepted, a request of the window was refused, failed in transport or was never sent, a final callback matched no message sent (or came for one twice), or a message ended other than delivered (a check for CI against the fault-free simulator)")
	fs.StringVar(&s.profilePhase, "profile-phase", "drain", "--queue/--restart-pending: which phase --cpuprofile covers: accept or drain")
	return fs
}

func run(args []string, stdout, stderr io.Writer) (int, error) {
	var s settings
	fs := flags(&s)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench [flags]   (or: switchboard bench [flags])\n\nSwitchboard load driver; see bench/README.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var scenarioName, scenarioDesc string
	if s.scenario != "" {
		var err error
		if scenarioName, scenarioDesc, err = loadScenario(fs, s.scenario, set); err != nil {
			return 2, err
		}
	}
	if err := s.check(set); err != nil {
		return 2, err
	}
	variants, err := parseBodyMix(s.bodyMix)
	if err != nil {
		return 2, err
	}
	m, rev := thisMachine(), gitRevision()
	header(stdout, args, m, rev)
	if scenarioName != "" {
		fmt.Fprintf(stdout, "scenario %s: %s\n", scenarioName, scenarioDesc)
	}
	rep := &report{Time: time.Now().UTC(), Command: args, Source: rev, Machine: m, Settings: map[string]string{}}
	fs.VisitAll(func(f *flag.Flag) { rep.Settings[f.Name] = f.Value.String() })

	// An interrupt runs the cleanups (the temporary store, a gateway
	// subprocess) and exits.
	cl := &cleanups{}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	finished := make(chan struct{})
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-finished:
		case <-ctx.Done():
			fmt.Fprintln(stderr, "bench: interrupted")
			cl.run()
			os.Exit(130)
		}
	}()
	defer func() {
		close(finished)
		<-watcherDone
		cl.run()
	}()

	r := &rig{s: s, set: set, out: stdout, errOut: stderr, variants: variants, rep: rep, cl: cl}
	return r.run()
}

// check validates the settings and fills in the defaults that depend on
// the mode.
func (s *settings) check(set map[string]bool) error {
	scenarios := s.queueN > 0 || s.restartN > 0 || s.webhooksN > 0
	switch {
	case s.rate < 0 || s.conns < 1 || s.keys < 1 || s.dests < 1 || s.duration <= 0 || s.warmup < 0 || s.timeout <= 0:
		return errors.New("--rate, --warmup must be >= 0; --conns, --keys, --dests, --duration, --timeout above 0")
	case s.queueN > 0 && s.restartN > 0:
		return errors.New("--queue and --restart-pending are separate runs")
	case s.target != "" && scenarios:
		return errors.New("--queue, --restart-pending and --webhooks need the in-process node (no --target)")
	case s.gatewayBin != "" && (s.restartN > 0 || s.webhooksN > 0):
		return errors.New("--restart-pending and --webhooks need the in-process node (no --gateway-bin)")
	case s.smscAddr != "" && (s.queueN > 0 || s.restartN > 0):
		return errors.New("--queue and --restart-pending need the in-process simulator, to refuse binds (no --smsc)")
	case s.gatewayBin != "" && set["key-window"]:
		return errors.New("--key-window needs the in-process node: the gateway binary has no such setting (no --gateway-bin)")
	case s.profilePhase != "accept" && s.profilePhase != "drain":
		return errors.New("--profile-phase is accept or drain")
	case s.batch < 0 || s.batchConns < 1:
		return errors.New("--batch must be >= 0 and --batch-conns above 0")
	case !(s.carrierTPS >= 0) || math.IsInf(s.carrierTPS, 0):
		return errors.New("--carrier-tps is a number >= 0 (0: unlimited)")
	case s.hotKey < 0 || s.hotKey > 1:
		return errors.New("--hot-key is a share, 0..1")
	case s.callbackBatch < 1 || s.callbackBatch > 1000:
		return errors.New("--callback-batch is 1 to 1000")
	case s.callbackStatuses != "final" && s.callbackStatuses != "default":
		return errors.New("--callback-statuses is final or default")
	case s.rampStep < 0 || (s.rampStep > 0 && (s.rampStart <= 0 || s.rampMax < s.rampStart || s.rampStepFor <= 0)):
		return errors.New("--ramp-step needs --ramp-start above 0, --ramp-max >= --ramp-start and --ramp-step-for above 0")
	case !validPIDs(s.pid):
		return errors.New("--pid is a process id, or several separated by commas")
	case s.outageFor > 0 && (s.smscAddr != "" || s.target != ""):
		return errors.New("the carrier outage needs the in-process simulator (no --smsc, no --target)")
	case s.outageFor < 0 || s.outageAt < 0:
		return errors.New("--outage-at and --outage-for must be >= 0")
	case s.plot != "" && !strings.HasSuffix(strings.ToLower(s.plot), ".svg"):
		return errors.New("--plot writes SVG: name the file *.svg (PNG is not supported; a browser opens the SVG)")
	case s.target == "kannel" && s.batch > 1:
		return errors.New("--target kannel sends one message a request (no --batch)")
	case s.target == "kannel" && s.rate == 0:
		return errors.New("--target kannel needs an open-loop --rate")
	case s.storage != "embedded" && (s.target != "" || scenarios):
		return errors.New("--storage other than embedded is for load mode with the rig started here (no --target, --queue, --restart-pending or --webhooks)")
	case s.storage != "embedded" && s.dataDir != "":
		return errors.New("--data-dir is the embedded store's; a scylla run uses a fresh keyspace")
	}
	if _, err := s.storages(); err != nil {
		return err
	}
	if s.batch == 0 {
		s.batch = 1
		if scenarios {
			s.batch = 1000
		}
	}
	if s.inflight <= 0 {
		s.inflight = s.conns
	}
	if scenarios && !set["drain"] {
		s.drain = 10 * time.Minute
	}
	return nil
}

// cleanups run once, at the end or on an interrupt.
type cleanups struct {
	mu   sync.Mutex
	fns  []func()
	done bool
}

func (c *cleanups) add(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

func (c *cleanups) run() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	c.done = true
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
}

// rig is one run: what it starts and what it reports.
type rig struct {
	s        settings
	set      map[string]bool
	out      io.Writer
	errOut   io.Writer
	variants []bodyVariant
	rep      *report
	cl       *cleanups
}

func (r *rig) logger() (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(r.s.logLevel)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log-level: %w", err)
	}
	noColor := true
	if f, ok := r.errOut.(*os.File); ok {
		noColor = !isatty.IsTerminal(f.Fd())
	}
	cw := zerolog.ConsoleWriter{Out: r.errOut, TimeFormat: time.TimeOnly, NoColor: noColor}
	return zerolog.New(cw).Level(lvl).With().Timestamp().Logger(), nil
}

// storeDir is the store's directory: --data-dir, or a temporary one
// removed at the end (unless --keep-data).
func (r *rig) storeDir() (string, error) {
	dir := r.s.dataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "switchboard-bench-"); err != nil {
			return "", err
		}
		if r.s.keepData {
			fmt.Fprintln(r.out, "store kept in", dir)
		} else {
			r.cl.add(func() { os.RemoveAll(dir) })
		}
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return "", fmt.Errorf("--data-dir %s is not empty", dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--data-dir: %w", err)
	}
	return dir, nil
}

func (r *rig) run() (int, error) {
	s := r.s
	switch {
	case s.target == "kannel":
		return r.runKannel()
	case s.target != "":
		return r.runTarget()
	}
	logger, err := r.logger()
	if err != nil {
		return 2, err
	}
	dir, err := r.storeDir()
	if err != nil {
		return 1, err
	}
	cfg := nodeConfig{
		keys: s.keys, maxQueued: s.maxQueued, binds: s.binds, carrierTPS: s.carrierTPS, window: s.window, keyWindow: s.keyWindow,
		reconnectMin: s.reconnectMin, reconnectMax: s.reconnectMax, receiptDelay: s.receiptDelay,
		dataDir: filepath.Join(dir, "data"), log: logger, out: r.out,
		webhookConcurrency: s.webhookConcurrency, simAddr: s.simAddr, smscAddr: s.smscAddr,
		callbackBatch: s.callbackBatch,
	}
	if s.callbackStatuses == "final" {
		cfg.callbackStatuses, _ = switchboard.NewStatusSet(switchboard.StatusDelivered, switchboard.StatusUndeliverable,
			switchboard.StatusExpired, switchboard.StatusRejected, switchboard.StatusFailed)
	}
	q := queueOpts{batch: s.batch, conns: s.batchConns, timeout: s.timeout, acceptFor: s.acceptFor, drain: s.drain}
	switch {
	case s.webhooksN > 0:
		fmt.Fprintf(r.out, "node: %d binds x window %d, store %s\n", s.binds, s.window, cfg.dataDir)
		cfg.maxQueued = max(cfg.maxQueued, s.webhooksN, s.deadEvents, s.badEvents)
		q.gen = newGen(r.variants, s.dests, nil)
		ok, err := runWebhooks(cfg, webhookOpts{events: s.webhooksN, dead: s.deadEvents, bad: s.badEvents, drain: s.drain, queue: q})
		if err != nil {
			return 1, err
		}
		if !ok {
			return 1, errors.New("callbacks were lost or out of order")
		}
		return 0, nil
	case s.queueN > 0 || s.restartN > 0:
		fmt.Fprintf(r.out, "node: %d binds x window %d, %d keys, store %s\n", s.binds, s.window, s.keys, cfg.dataDir)
		n := max(s.queueN, s.restartN)
		cfg.maxQueued = max(cfg.maxQueued, n)
		_, secrets := benchKeys(s.keys, 0)
		q.n, q.gen, q.cpuProfile, q.profile, q.restart = n, newGen(r.variants, s.dests, secrets), s.cpuProfile, s.profilePhase, s.restartN > 0
		g, err := r.startQueueGateway(cfg, q)
		if err != nil {
			return 1, err
		}
		ok, err := runQueue(g, q, r.out)
		if err != nil {
			return 1, err
		}
		if !ok {
			return 1, errors.New("not every queued message was delivered")
		}
		return 0, nil
	}
	storages, _ := s.storages()
	if len(storages) == 1 {
		b, err := r.backend(storages[0], dir)
		if err != nil {
			return 1, err
		}
		code, _, err := r.runLocal(cfg, b)
		return code, err
	}
	return r.runBackends(cfg, dir, storages)
}

// backend prepares one storage for a load on it.
func (r *rig) backend(name, dir string) (*backend, error) {
	if name == "embedded" {
		return &backend{name: name}, nil
	}
	return r.scyllaBackend(dir)
}

// runBackends runs the same load on each storage in turn, each on a rig of
// its own (the previous one stopped first, so they do not share the cores),
// and compares them.
func (r *rig) runBackends(cfg nodeConfig, dir string, storages []string) (int, error) {
	code := 0
	parent := r.cl
	defer func() { r.cl = parent }()
	var sums []summary
	for i, name := range storages {
		fmt.Fprintf(r.out, "\n==== storage %s (%d of %d) ====\n", name, i+1, len(storages))
		own := &cleanups{}
		parent.add(own.run)
		r.cl = own
		runDir := filepath.Join(dir, fmt.Sprintf("%d-%s", i, name))
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return 1, err
		}
		b, err := r.backend(name, runDir)
		if err != nil {
			own.run()
			return 1, err
		}
		c := cfg
		c.dataDir = filepath.Join(runDir, "data")
		rc, sum, err := r.runLocal(c, b)
		own.run()
		if err != nil {
			return 1, err
		}
		code = max(code, rc)
		if sum != nil {
			sums = append(sums, *sum)
		}
	}
	printComparison(r.out, sums)
	return code, nil
}

// printComparison prints the runs of --storage A,B side by side.
func printComparison(w io.Writer, sums []summary) {
	fmt.Fprintf(w, "\n== storages compared (same flags, one after the other) ==\n")
	fmt.Fprintf(w, "%-9s %11s %12s %9s %9s %6s %8s %8s %10s %10s %10s\n", "storage", "accepted/s", "delivered/s",
		"p50", "p99", "lost", "gw cpu", "db cpu", "db req/msg", "stmts/msg", "bytes/msg")
	for _, s := range sums {
		db := "-"
		dbReq, dbStmt, dbBytes := "-", "-", "-"
		if s.DB != nil {
			db = fmt.Sprintf("%.2f", s.DB.DatabaseCPU)
			dbReq, dbStmt = fmt.Sprintf("%.2f", s.DB.RequestsPerMsg), fmt.Sprintf("%.2f", s.DB.StatementsPerMsg)
			dbBytes = fmt.Sprintf("%.0f", s.DB.BytesSentPerMsg)
		}
		fmt.Fprintf(w, "%-9s %11.0f %12.0f %9s %9s %6d %8.2f %8s %10s %10s %10s\n", s.Storage, s.AcceptedPS, s.DeliveredPS,
			fmtUS(int64(s.Accept.P50*1000)), fmtUS(int64(s.Accept.P99*1000)), s.Lost, s.GatewayCPU, db, dbReq, dbStmt, dbBytes)
	}
	fmt.Fprintln(w, "(cpu in cores during the window; the database's requests, statements and bytes sent per accepted message, load to drain)")
}

// newSink starts the sink with the tracker behind it.
func (r *rig) newSink(k *tracker) (*sink.Sink, error) {
	delay := r.s.webhookDelay
	hooks, err := sink.Start(sink.Options{Addr: r.s.sinkAddr, Discard: true, OnEvent: k.onEvent,
		Respond: func(ev sink.Event) sink.Answer {
			status := http.StatusNoContent
			if ev.Type == sink.KannelType {
				status = http.StatusOK
			}
			return sink.Answer{Status: status, Delay: delay}
		}})
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	r.cl.add(func() { hooks.Close() })
	return hooks, nil
}

// runLocal is load mode with the rig started here: the sink, the
// simulator and the gateway (in this process, or --gateway-bin) on
// storage b. It returns the summary of a single load (nil for a ramp).
func (r *rig) runLocal(cfg nodeConfig, b *backend) (int, *summary, error) {
	s := r.s
	cfg.backend = b
	var k *tracker
	var hooks *sink.Sink
	if s.callbacks {
		k = newTracker()
		var err error
		if hooks, err = r.newSink(k); err != nil {
			return 1, nil, err
		}
		cfg.callbackURL = hooks.URL() + "/hook"
	}
	base := r.baseOpts(k)
	base.db = b
	var sim *smsc.Server
	if b.name != "embedded" {
		fmt.Fprintf(r.out, "storage: %s at %s (pid %d), keyspace %s; cache: %s (pid %d)\n", b.name, b.cql, b.dbPID, b.keyspace,
			orNone(b.redis), b.redisPID)
	}
	if s.gatewayBin != "" {
		gw, err := r.startGatewayBin(cfg, false, nil)
		if err != nil {
			return 1, nil, err
		}
		base.gwPID = gw.cmd.Process.Pid
		sim = gw.sim
		base.addr, base.gw, base.gwWho = gw.addr, gw.measured(), "the gateway process alone"
		base.driver = newSwitchboardDriver(gw.addr, base.gen)
		base.gen.auths = authsFor(gw.secrets)
		if base.prof != nil {
			base.prof = gw // the gateway's profiles, not the driver's
		}
		fmt.Fprintf(r.out, "gateway %s (pid %d) on %s, simulator on %s, sink on %s\n", s.gatewayBin, gw.cmd.Process.Pid, gw.addr, gw.smscAddr, sinkURL(hooks))
	} else {
		n, err := startNode(cfg, false)
		if err != nil {
			return 1, nil, err
		}
		base.gwPID = os.Getpid()
		r.cl.add(func() {
			if err := n.close(30 * time.Second); err != nil {
				fmt.Fprintln(r.errOut, "stop:", err)
			}
		})
		fmt.Fprintf(r.out, "node: %d binds x window %d, %d keys, %d destinations, store %s\n", s.binds, s.window, s.keys, s.dests, cfg.dataDir)
		fmt.Fprintf(r.out, "gateway on %s, simulator on %s, sink on %s\n", n.addr, n.smscAddr(), sinkURL(hooks))
		if err := waitBound(n, 10*time.Second); err != nil {
			return 1, nil, err
		}
		sim = n.sim
		base.addr, base.node, base.gw, base.gwWho = n.addr, n, self, "gateway + load generator + simulator + sink"
		base.gen.auths = authsFor(n.secrets)
		base.driver = newSwitchboardDriver(n.addr, base.gen)
	}
	if s.pid != "" {
		base.gw, base.gwWho = proc(s.pid), pidsWho(s.pid)
	}
	if s.outageFor > 0 {
		if sim == nil {
			return 2, nil, errors.New("the carrier outage needs the in-process simulator")
		}
		base.actions = outage(sim, s.outageAt, s.outageFor)
	}
	base.sim = sim
	return r.loadOn(base, hooks, s.gatewayBin, b.name)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sinkURL(s *sink.Sink) string {
	if s == nil {
		return "(none: --callbacks=false)"
	}
	return s.URL()
}

func authsFor(secrets []string) [][]byte {
	out := make([][]byte, len(secrets))
	for i, s := range secrets {
		out[i] = []byte("Bearer " + s)
	}
	return out
}

// outage is the carrier-outage scenario's actions: at at, the simulator
// drops every bind and refuses new ones; for later, it takes them again.
func outage(sim *smsc.Server, at, dur time.Duration) []action {
	return []action{
		{at: at, name: fmt.Sprintf("carrier outage: the simulator drops every bind and refuses binds for %v", dur), do: func() {
			sim.SetFaults(smsc.Faults{RefuseBinds: true})
			sim.DropAll()
		}},
		{at: at + dur, name: "carrier back: the simulator accepts binds again", do: func() { sim.SetFaults(smsc.Faults{}) }},
	}
}

// baseOpts are the load options every mode shares; addr, driver and the
// gateway's process are filled in by the mode.
func (r *rig) baseOpts(k *tracker) loadOpts {
	s := r.s
	g := newGen(r.variants, s.dests, nil)
	g.hot = s.hotKey
	o := loadOpts{profile: rateProfile{base: s.rate}, warmup: s.warmup, duration: s.duration, timeout: s.timeout,
		conns: s.conns, inflight: s.inflight, batch: s.batch, drain: s.drain, gen: g, tracker: k, noDuplicates: s.noDuplicates,
		expectDelivered: s.expectDelivered, out: r.out}
	if s.cpuProfile != "" || s.memProfile != "" || s.traceFile != "" {
		o.prof = &selfProfiler{cpu: s.cpuProfile, mem: s.memProfile, trace: s.traceFile}
	}
	if s.burstFactor > 0 && s.burstFor > 0 {
		at := s.burstAt
		if at < 0 {
			at = (s.duration - s.burstFor) / 2
		}
		o.profile.factor, o.profile.burstAt, o.profile.burstFor = s.burstFactor, s.warmup+at, s.burstFor
	}
	return o
}

// runTarget drives a running deployment: accept side only, unless its
// keys post callbacks to --sink-addr.
func (r *rig) runTarget() (int, error) {
	s := r.s
	addr, err := loopbackTarget(s.target)
	if err != nil {
		return 2, err
	}
	if s.secret == "" {
		return 2, errors.New("--target needs --secret")
	}
	secrets := strings.Split(s.secret, ",")
	var k *tracker
	var hooks *sink.Sink
	if r.set["sink-addr"] {
		k = newTracker()
		if hooks, err = r.newSink(k); err != nil {
			return 1, err
		}
	}
	o := r.baseOpts(k)
	o.gen.auths = authsFor(secrets)
	o.addr, o.driver = addr, newSwitchboardDriver(addr, o.gen)
	if s.pid != "" {
		o.gw, o.gwWho = proc(s.pid), pidsWho(s.pid)
	}
	fmt.Fprintf(r.out, "target %s, %d key(s); sink %s\n", addr, len(secrets), sinkURL(hooks))
	return r.load(o, hooks, "switchboard at "+s.target)
}

// runKannel drives Kannel's sendsms against the in-process simulator (on
// --sim-addr, where Kannel's smsc group points) with dlr-url at the sink.
func (r *rig) runKannel() (int, error) {
	s := r.s
	u, err := url.Parse(s.kannelURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return 2, fmt.Errorf("--kannel-url %q: want http://HOST:PORT", s.kannelURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	k := newTracker()
	hooks, err := r.newSink(k)
	if err != nil {
		return 1, err
	}
	simAddr := s.smscAddr
	var sim *smsc.Server
	if simAddr == "" {
		logger, err := r.logger()
		if err != nil {
			return 2, err
		}
		if sim, err = startSim(nodeConfig{simAddr: s.simAddr, receiptDelay: s.receiptDelay, log: logger}, false, nil); err != nil {
			return 1, err
		}
		r.cl.add(func() { sim.Close() })
		simAddr = sim.Addr()
	}
	o := r.baseOpts(k)
	o.addr = addr
	o.driver = newKannelDriver(strings.TrimSuffix(s.kannelURL, "/"), s.kannelUser, s.kannelPass, hooks.URL(), o.gen)
	if s.pid != "" {
		o.gw, o.gwWho = proc(s.pid), pidsWho(s.pid)
	}
	if s.outageFor > 0 && sim != nil {
		o.actions = outage(sim, s.outageAt, s.outageFor)
	}
	fmt.Fprintf(r.out, "kannel sendsms at %s, simulator on %s, dlr-url at %s/kannel\n", s.kannelURL, simAddr, hooks.URL())
	if sim != nil {
		deadline := time.Now().Add(30 * time.Second)
		for sim.Stats().Binds == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprintf(r.out, "simulator: %d bind(s) up\n", sim.Stats().Binds)
	}
	return r.load(o, hooks, "kannel at "+s.kannelURL)
}

// load runs one load, or the ramp, and writes the report.
func (r *rig) load(o loadOpts, hooks *sink.Sink, target string) (int, error) {
	code, _, err := r.loadOn(o, hooks, target, "")
	return code, err
}

// loadOn is load on a named storage ("" for a target run elsewhere); it
// returns the summary of a single load (nil for a ramp).
func (r *rig) loadOn(o loadOpts, hooks *sink.Sink, target, storage string) (int, *summary, error) {
	r.rep.Target = target
	if target == "" {
		r.rep.Target = "switchboard, in process"
	}
	sc := func() sinkCounts {
		if hooks == nil {
			return sinkCounts{}
		}
		st := hooks.Stats()
		return sinkCounts{duplicates: st.Duplicates, outOfOrder: st.OutOfOrder}
	}
	ok := true
	var one *summary
	if r.s.rampStep > 0 {
		rr := runRamp(context.Background(), o, r.s, sc)
		rr.print(r.out)
		r.rep.Ramp, r.rep.Timeline = rr, rr.timeline
		// A step that lost messages, or with --no-duplicates one within
		// capacity that delivered one twice, fails the run: delivery
		// broke, which is more than running out of capacity (past it,
		// answers slower than the timeout are sent again, legitimately).
		for _, st := range rr.Steps {
			dup := o.noDuplicates && st.OK && (st.Summary.Duplicates > 0 || st.Summary.CarrierDuplicates > 0)
			ok = ok && !st.LostMessages && !dup
		}
	} else {
		res := runLoad(context.Background(), o)
		sum := res.summarize(sc())
		sum.Storage = storage
		sum.print(r.out, o)
		r.rep.Timeline, r.rep.Summary = res.timeline, &sum
		if storage != "" {
			r.rep.Runs = append(r.rep.Runs, storageRun{Storage: storage, Summary: sum, Timeline: res.timeline})
		}
		ok, one = sum.OK, &sum
	}
	if hooks != nil {
		st := hooks.Stats()
		fmt.Fprintf(r.out, "callbacks       %d requests (%d of them batches, the largest %d events) for %d events\n",
			st.Requests, st.Batches, st.Largest, st.Events)
	}
	if err := r.write(); err != nil {
		return 1, one, err
	}
	if !ok {
		return 1, one, nil
	}
	return 0, one, nil
}

// write writes --out and --plot.
func (r *rig) write() error {
	if r.s.out != "" {
		b, err := json.MarshalIndent(r.rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(r.s.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(r.out, "wrote", r.s.out)
	}
	if r.s.plot != "" {
		f, err := os.Create(r.s.plot)
		if err != nil {
			return err
		}
		title := fmt.Sprintf("%s — %s, %s", r.rep.Target, strings.Join(r.rep.Command, " "), r.rep.Time.Format(time.RFC3339))
		if err := writePlot(f, title, r.rep.Timeline); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(r.out, "wrote", r.s.plot)
	}
	return nil
}

// header prints what a result needs next to it: machine, CPU, load.
func header(w io.Writer, args []string, m machine, rev string) {
	fmt.Fprintf(w, "bench %s on %s: %s, nproc %d (GOMAXPROCS %d), %.0f MB RAM, %s, load average %s\n",
		time.Now().Format(time.RFC3339), m.Host, m.CPU, m.NProc, m.GOMAXPROCS, m.MemoryMB, m.Go, m.LoadAvg)
	fmt.Fprintf(w, "command: bench %s\n", strings.Join(args, " "))
	if rev != "" {
		fmt.Fprintf(w, "source: %s\n", rev)
	}
}

func thisMachine() machine {
	host, _ := os.Hostname()
	return machine{Host: host, CPU: cpuModel(), NProc: numCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		MemoryMB: memTotalMB(), Go: runtime.Version(), LoadAvg: loadAvg()}
}

// gitRevision names the checkout the gateway was built from (when run in
// it): HEAD and how many tracked files differ from it. Best effort.
func gitRevision() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	out := "git " + strings.TrimSpace(string(head))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		if n := strings.Count(string(st), "\n"); n > 0 {
			out += fmt.Sprintf(" + %d modified tracked file(s)", n)
		}
	}
	return out
}

// waitBound waits until the simulator has every bind, so the first
// messages do not wait for binds.
func waitBound(n *node, timeout time.Duration) error {
	if n.sim == nil {
		return nil // an external SMSC: its binds are not visible from here
	}
	deadline := time.Now().Add(timeout)
	for n.sim.Stats().Binds < int64(n.cfg.binds) {
		if time.Now().After(deadline) {
			return fmt.Errorf("binds not up after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// loopbackTarget returns host:port of a --target URL, refusing anything
// that is not a loopback address: this driver only loads this machine.
func loopbackTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("--target %q: want http://127.0.0.1:PORT", raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("--target %q: %v", raw, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return "", fmt.Errorf("--target %q: only loopback addresses are driven", raw)
		}
	}
	return net.JoinHostPort(host, port), nil
}
