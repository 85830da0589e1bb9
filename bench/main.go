// Command bench is Switchboard's load driver. It runs a whole node in this
// process (SMSC simulator, Pebble store, actor engine, HTTP API, all on
// 127.0.0.1) or drives one already running (--target), and measures
// accepted and delivered rates, accept latency (HDR histogram, from each
// request's intended send time, so stalls are not hidden), memory and CPU.
//
//	go run ./bench                          # open loop, 10,000 msg/s for 10 s
//	go run ./bench --rate 0                 # closed loop: the most it accepts
//	go run ./bench --queue 1000000          # queue with the carrier down, then drain
//	go run ./bench --restart-pending 1000000
//
// See bench/README.md for every flag and how to read the output.
package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/switchboard-sms/switchboard/http/sink"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

func numCPU() int { return runtime.NumCPU() }

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var (
		target   = fs.String("target", "", "drive a running gateway at `URL` (http://127.0.0.1:PORT) instead of one in-process; delivered counts are then not measured")
		secret   = fs.String("secret", "", "with --target: API key secret(s), comma-separated")
		rate     = fs.Float64("rate", 10000, "messages/s offered, open loop; 0: closed loop, as fast as --conns workers go")
		duration = fs.Duration("duration", 10*time.Second, "measured window")
		warmup   = fs.Duration("warmup", 2*time.Second, "load before the measured window, not counted")
		conns    = fs.Int("conns", 64, "HTTP connections (closed loop: also the number of workers)")
		inflight = fs.Int("inflight", 0, "open loop: most requests in flight at once; more wait (and their wait counts in latency); default --conns")
		timeout  = fs.Duration("timeout", 10*time.Second, "per request; an open-loop request more than this late is given up unsent")
		keys     = fs.Int("keys", 50, "API keys (messages spread uniformly)")
		dests    = fs.Int("dests", 1000, "destination numbers (messages spread uniformly)")
		bodyMix  = fs.String("body-mix", "", "bodies and weights, e.g. short:90,long:5,ucs2:3,ucs2long:2 (default short only: GSM-7, 60 chars, 1 part)")
		drain    = fs.Duration("drain", 30*time.Second, "after the load, how long accepted messages may take to be receipted before they count as lost (--queue/--restart-pending default 10m)")

		binds        = fs.Int("binds", 2, "SMPP binds to the simulator")
		window       = fs.Int("window", 64, "SMPP window per bind")
		keyWindow    = fs.Int("key-window", 0, "messages a key actor holds in memory (0: engine default, 1000)")
		maxQueued    = fs.Int("max-queued", 1_000_000, "each key's max_queued (--queue/--restart-pending: raised to N if below)")
		receiptDelay = fs.Duration("receipt-delay", 0, "simulator: delay from submit_sm_resp to the receipt")
		reconnectMin = fs.Duration("reconnect-min", time.Second, "bind reconnect backoff, first wait (cluster.yaml default 1s)")
		reconnectMax = fs.Duration("reconnect-max", time.Minute, "bind reconnect backoff cap (cluster.yaml default 60s)")
		dataDir      = fs.String("data-dir", "", "store directory (default: a temporary one, removed at the end); must be empty or absent")
		keepData     = fs.Bool("keep-data", false, "keep the temporary store directory")
		logLevel     = fs.String("log-level", "warn", "gateway log level (debug, info, warn, error), to stderr")

		queueN     = fs.Int("queue", 0, "scenario: accept `N` messages with the carrier down, report memory, bring the carrier back and measure the drain")
		restartN   = fs.Int("restart-pending", 0, "scenario: accept `N` with the carrier down, stop the gateway cleanly, reopen it and measure time to first submit and the drain")
		batch      = fs.Int("batch", 1000, "scenarios: messages per POST /v1/messages/batch")
		batchConns = fs.Int("batch-conns", 4, "scenarios: concurrent batch requests")
		acceptFor  = fs.Duration("accept-for", 10*time.Minute, "scenarios: bound on the accept phase")
		webhooksN  = fs.Int("webhooks", 0, "scenario: queue `N` callbacks for a sink answering 503, turn it healthy and measure the delivery rate")
		deadEvents = fs.Int("dead-events", 0, "with --webhooks: first queue `M` callbacks for a dead endpoint (memory, isolation)")
		callbacks  = fs.Bool("callbacks", false, "every key posts its callbacks (submitted and delivered) to an in-process sink; the report counts them")
		badEvents  = fs.Int("bad-events", 0, "with --webhooks: first queue `K` callbacks each for an endpoint that hangs and one that answers 500 (isolation)")

		cpuProfile   = fs.String("cpuprofile", "", "write a CPU profile of the measured window (scenarios: see --profile-phase) to `FILE`")
		profilePhase = fs.String("profile-phase", "drain", "scenarios: which phase --cpuprofile covers: accept or drain")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench [flags]\n\nSwitchboard load driver; see bench/README.md.\n\n")
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

	variants, err := parseBodyMix(*bodyMix)
	if err != nil {
		return 2, err
	}
	switch {
	case *rate < 0 || *conns < 1 || *keys < 1 || *dests < 1 || *duration <= 0 || *warmup < 0 || *timeout <= 0:
		return 2, errors.New("--rate, --warmup must be >= 0; --conns, --keys, --dests, --duration, --timeout above 0")
	case *queueN > 0 && *restartN > 0:
		return 2, errors.New("--queue and --restart-pending are separate runs")
	case *target != "" && (*queueN > 0 || *restartN > 0):
		return 2, errors.New("--queue and --restart-pending need the in-process node (no --target)")
	case *profilePhase != "accept" && *profilePhase != "drain":
		return 2, errors.New("--profile-phase is accept or drain")
	case *batch < 1 || *batchConns < 1:
		return 2, errors.New("--batch and --batch-conns must be above 0")
	}
	if *inflight <= 0 {
		*inflight = *conns
	}
	header()

	if *target != "" {
		addr, err := loopbackTarget(*target)
		if err != nil {
			return 2, err
		}
		secrets := strings.Split(*secret, ",")
		if *secret == "" {
			return 2, errors.New("--target needs --secret")
		}
		g := newGen(variants, *dests, secrets)
		fmt.Printf("target %s, %d key(s)\n", addr, len(secrets))
		res, err := runLoad(loadOpts{addr: addr, rate: *rate, warmup: *warmup, duration: *duration, timeout: *timeout,
			conns: *conns, inflight: *inflight, gen: g, cpuProfile: *cpuProfile}, 0)
		if err != nil {
			return 1, err
		}
		res.report()
		return 0, nil
	}

	logger := zerolog.Nop()
	if lvl, err := zerolog.ParseLevel(*logLevel); err == nil {
		cw := zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly, NoColor: !isatty.IsTerminal(os.Stderr.Fd())}
		logger = zerolog.New(cw).Level(lvl).With().Timestamp().Logger()
	} else {
		return 2, fmt.Errorf("--log-level: %w", err)
	}
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "switchboard-bench-"); err != nil {
			return 1, err
		}
		if !*keepData {
			defer os.RemoveAll(dir)
			// Interrupted runs remove the temporary store too.
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			go func() {
				<-sig
				os.RemoveAll(dir)
				os.Exit(130)
			}()
		} else {
			fmt.Println("store kept in", dir)
		}
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return 2, fmt.Errorf("--data-dir %s is not empty", dir)
	}
	cfg := nodeConfig{
		keys: *keys, maxQueued: *maxQueued, binds: *binds, window: *window, keyWindow: *keyWindow,
		reconnectMin: *reconnectMin, reconnectMax: *reconnectMax, receiptDelay: *receiptDelay,
		dataDir: filepath.Join(dir, "data"), log: logger,
	}
	fmt.Printf("node: %d binds x window %d, %d keys, %d destinations, store %s\n", *binds, *window, *keys, *dests, cfg.dataDir)

	if *webhooksN > 0 {
		if !set["drain"] {
			*drain = 10 * time.Minute
		}
		cfg.maxQueued = max(cfg.maxQueued, *webhooksN, *deadEvents, *badEvents)
		ok, err := runWebhooks(cfg, webhookOpts{events: *webhooksN, dead: *deadEvents, bad: *badEvents, drain: *drain,
			queue: queueOpts{batch: *batch, conns: *batchConns, timeout: *timeout, acceptFor: *acceptFor, gen: newGen(variants, *dests, nil)}})
		if err != nil {
			return 1, err
		}
		if !ok {
			return 1, errors.New("callbacks were lost or out of order")
		}
		return 0, nil
	}
	if n := max(*queueN, *restartN); n > 0 {
		cfg.maxQueued = max(cfg.maxQueued, n)
		if !set["drain"] {
			*drain = 10 * time.Minute
		}
		_, secrets := benchKeys(*keys, 0)
		ok, err := runQueue(cfg, queueOpts{
			n: n, batch: *batch, conns: *batchConns, timeout: *timeout, acceptFor: *acceptFor, drain: *drain,
			gen: newGen(variants, *dests, secrets), cpuProfile: *cpuProfile, profile: *profilePhase, restart: *restartN > 0,
		})
		if err != nil {
			return 1, err
		}
		if !ok {
			return 1, errors.New("not every queued message was delivered")
		}
		return 0, nil
	}

	var hooks *sink.Sink
	if *callbacks {
		if hooks, err = sink.Start(sink.Options{}); err != nil {
			return 1, err
		}
		defer hooks.Close()
		for range *keys {
			cfg.callbackURLs = append(cfg.callbackURLs, hooks.URL()+"/hook")
		}
	}
	n, err := startNode(cfg, false)
	if err != nil {
		return 1, err
	}
	fmt.Printf("gateway on %s, simulator on %s\n", n.addr, n.sim.Addr())
	if err := waitBound(n, 10*time.Second); err != nil {
		n.close(10 * time.Second)
		return 1, err
	}
	res, err := runLoad(loadOpts{addr: n.addr, rate: *rate, warmup: *warmup, duration: *duration, timeout: *timeout,
		conns: *conns, inflight: *inflight, gen: newGen(variants, *dests, n.secrets), cpuProfile: *cpuProfile, node: n}, *drain)
	callbacksOK := true
	if hooks != nil && err == nil {
		callbacksOK = waitCallbacks(hooks, res.c.accepted.Load(), *drain)
	}
	if cerr := n.close(30 * time.Second); cerr != nil {
		fmt.Fprintln(os.Stderr, "stop:", cerr)
	}
	if err != nil {
		return 1, err
	}
	if ok := res.report(); !ok || !callbacksOK {
		return 1, nil
	}
	return 0, nil
}

// header prints what a result needs next to it: machine, CPU, load.
func header() {
	host, _ := os.Hostname()
	fmt.Printf("bench %s on %s: %s, nproc %d (GOMAXPROCS %d), %s, load average %s\n",
		time.Now().Format(time.RFC3339), host, cpuModel(), numCPU(), runtime.GOMAXPROCS(0), runtime.Version(), loadAvg())
	fmt.Printf("command: bench %s\n", strings.Join(os.Args[1:], " "))
	if rev := gitRevision(); rev != "" {
		fmt.Printf("source: %s\n", rev)
	}
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
