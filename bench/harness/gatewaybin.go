package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// gatewayProc is a gateway started from its binary (--gateway-bin): the
// real process, configured by a generated cluster.yaml, so its RSS and
// CPU are measured alone.
type gatewayProc struct {
	cmd      *exec.Cmd
	addr     string
	smscAddr string
	sim      *smsc.Server
	secrets  []string
}

// startGatewayBin starts the simulator (unless --smsc names one; refusing
// binds if carrierDown, with onSubmit as its OnSubmit hook if not nil) and
// the gateway binary ("build": go build it first) with a config of the
// same shape the in-process node has; the cleanups stop it with SIGTERM.
func (r *rig) startGatewayBin(cfg nodeConfig, carrierDown bool, onSubmit func(smsc.Submit)) (*gatewayProc, error) {
	dir := filepath.Dir(cfg.dataDir)
	bin := r.s.gatewayBin
	if bin == "build" {
		bin = filepath.Join(dir, "switchboard")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/switchboard-sms/switchboard/cmd/switchboard").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("--gateway-bin build: %v\n%s", err, out)
		}
	}
	gw := &gatewayProc{smscAddr: cfg.smscAddr}
	if gw.smscAddr == "" {
		sim, err := startSim(cfg, carrierDown, onSubmit)
		if err != nil {
			return nil, err
		}
		r.cl.add(func() { sim.Close() })
		gw.sim, gw.smscAddr = sim, sim.Addr()
	}
	yaml, secrets := gatewayYAML(cfg, gw.smscAddr)
	gw.secrets = secrets
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	args := []string{"--config", path}
	for _, f := range [][2]string{{"--cpuprofile", r.s.cpuProfile}, {"--memprofile", r.s.memProfile}, {"--trace", r.s.traceFile}} {
		if f[1] != "" {
			abs, err := filepath.Abs(f[1])
			if err != nil {
				return nil, err
			}
			args = append(args, f[0], abs)
		}
	}
	gw.cmd = exec.Command(bin, args...)
	gw.cmd.Stderr = r.errOut
	stdout, err := gw.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := gw.cmd.Start(); err != nil {
		return nil, fmt.Errorf("--gateway-bin: %w", err)
	}
	r.cl.add(func() { stopProcess(gw.cmd, 30*time.Second) })
	// The reader drains stdout until the process ends, so it never blocks
	// on it, and hands over the address once printed.
	addr := make(chan string, 1)
	go func() {
		defer close(addr)
		lines := bufio.NewScanner(stdout)
		sent := false
		for lines.Scan() {
			if _, rest, ok := strings.Cut(lines.Text(), "listening on http://"); ok && !sent {
				addr <- strings.TrimSpace(rest)
				sent = true
			}
		}
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			return nil, fmt.Errorf("--gateway-bin: %s exited before printing its address", bin)
		}
		gw.addr = a
		return gw, nil
	case <-time.After(gatewayStartLimit):
		_ = gw.cmd.Process.Kill()
		return nil, fmt.Errorf("--gateway-bin: %s did not print its address within %v", bin, gatewayStartLimit)
	}
}

// gatewayStartLimit bounds how long the bench waits for the gateway to
// listen (a node on Cassandra waits for the database first).
const gatewayStartLimit = 2 * time.Minute

// measured is the gateway's process, whose RSS and CPU are its alone.
func (gw *gatewayProc) measured() proc { return proc(strconv.Itoa(gw.cmd.Process.Pid)) }

// begin and end make the gateway profile the measured window (its
// --cpuprofile and --memprofile); it writes the files by the time it
// exits, which the bench waits for.
func (gw *gatewayProc) begin() error { return gw.cmd.Process.Signal(syscall.SIGUSR1) }
func (gw *gatewayProc) end() error   { return gw.cmd.Process.Signal(syscall.SIGUSR2) }

// gatewayYAML is the cluster.yaml of the bench's node: one carrier (the
// simulator), every key with the sink as callback URL. It returns the keys'
// secrets.
func gatewayYAML(cfg nodeConfig, smscAddr string) (string, []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "node: {http: \"127.0.0.1:0\", admin: \"127.0.0.1:0\", data_dir: %q, shutdown_timeout: 30s}\n", cfg.dataDir)
	fmt.Fprintf(&b, "log: {level: %s, format: json}\n", gatewayLogLevel(cfg.log))
	if db, cache := cfg.scylla(); db != nil {
		fmt.Fprintf(&b, "storage: {backend: scylla, hosts: [%q], keyspace: %s, replication_factor: %d}\n",
			db.Hosts[0], db.Keyspace, db.ReplicationFactor)
		if cache != nil {
			fmt.Fprintf(&b, "cache: {backend: redis, addr: %q}\n", cache.Addr)
		}
	}
	fmt.Fprintf(&b, "carriers:\n  - {name: %s, host: %q, system_id: %s, password: %s, binds: %d, tps: %v, window: %d, reconnect_min: %s, reconnect_max: %s}\n",
		carrierName, smscAddr, systemID, password, cfg.binds, cfg.carrierTPS, cfg.window, cfg.reconnectMin, cfg.reconnectMax)
	fmt.Fprintf(&b, "routes:\n  - {prefix: \"\", carriers: [%s]}\n", carrierName)
	concurrency := cfg.webhookConcurrency
	if concurrency <= 0 {
		concurrency = 64
	}
	fmt.Fprintf(&b, "webhooks: {allow_private_networks: true, concurrency: %d}\n", concurrency)
	b.WriteString("keys:\n")
	var statuses []string
	for _, st := range cfg.callbackStatuses.Statuses() {
		statuses = append(statuses, string(st))
	}
	secrets := make([]string, cfg.keys)
	for i := range secrets {
		secrets[i] = fmt.Sprintf("bench-secret-%04d", i)
		fmt.Fprintf(&b, "  - {id: bench-%04d, secret: %q, rate: 1000000000, burst: 1000000000, max_queued: %d", i, secrets[i], cfg.maxQueued)
		if cfg.callbackURL != "" {
			fmt.Fprintf(&b, ", callback_url: %q", cfg.callbackURL)
		}
		if cfg.callbackBatch > 1 {
			fmt.Fprintf(&b, ", callback_batch: %d", cfg.callbackBatch)
		}
		if len(statuses) > 0 {
			fmt.Fprintf(&b, ", callback_statuses: [%s]", strings.Join(statuses, ", "))
		}
		b.WriteString("}\n")
	}
	return b.String(), secrets
}

// gatewayLogLevel is --log-level as the gateway's log.level names it
// (warn, its default, for a logger that is off).
func gatewayLogLevel(log zerolog.Logger) string {
	switch l := log.GetLevel(); l {
	case zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel:
		return l.String()
	}
	return "warn"
}

// stopProcess asks a process to stop (SIGTERM) and kills it if it has not
// within timeout.
func stopProcess(cmd *exec.Cmd, timeout time.Duration) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
	}
}
