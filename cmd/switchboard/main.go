// Command switchboard runs the Switchboard SMS gateway and its tools.
//
//	switchboard [--config FILE]   run a gateway node (see --help)
//	switchboard smsc [flags]      an SMPP SMSC simulator (see smsc --help)
//	switchboard bench [flags]     the load driver (see bench --help, bench/README.md)
//	switchboard archive [flags]   a day's messages to Parquet (see archive --help)
//	switchboard version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/switchboard-sms/switchboard/actors"
)

// version is set at build time with -ldflags "-X main.version=..."; builds
// from a module checkout fall back on the VCS revision.
var version = ""

func main() {
	sig := listenStopSignals()
	actors.OversubscribeProcs() // once per process; tests that call run do not
	code := run(sig, os.Args[1:], os.Stdout, os.Stderr)
	sig.close()
	os.Exit(code)
}

// stopSignals are the process's requests to stop: stop ends at the first
// SIGINT or SIGTERM (a graceful stop), hurry at the second (cut the drain
// short). reload receives on SIGHUP (re-read the configuration); several
// before it is taken count as one.
type stopSignals struct {
	stop, hurry context.Context
	reload      <-chan struct{}
	close       func() // stops listening, and the goroutine that listens
}

func listenStopSignals() stopSignals {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	stop, stopNow := context.WithCancel(context.Background())
	hurry, hurryNow := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case <-ch:
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
				n--
				continue
			case <-done:
				return
			}
			if n == 0 {
				stopNow()
			} else {
				hurryNow()
			}
		}
	}()
	return stopSignals{stop: stop, hurry: hurry, reload: reload, close: func() {
		signal.Stop(ch)
		signal.Stop(hup)
		close(done)
		stopNow()
		hurryNow()
	}}
}

// run dispatches a subcommand and returns the exit status: 0 ok, 1 runtime
// failure, 2 bad usage or configuration.
func run(sig stopSignals, args []string, stdout, stderr io.Writer) int {
	var err error
	switch cmd := first(args); cmd {
	case "", "-config", "--config", "-set", "--set", "-cpuprofile", "--cpuprofile", "-memprofile", "--memprofile", "-trace", "--trace":
		err = runGateway(sig, args, stdout, stderr)
	case "smsc":
		err = runSMSC(sig.stop, args[1:], stdout)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "archive":
		err = runArchive(sig.stop, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "switchboard", buildVersion())
		return 0
	case "help":
		usage(stdout)
		return 0
	case "--help", "-h", "-help":
		err = runGateway(sig, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "switchboard: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "switchboard:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "switchboard:", err)
		return 1
	}
}

// usageError marks a mistake in the command line or configuration (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// first returns the first argument, or "" when there is none; flags of
// the gateway (--config, --set) also mean "run the gateway".
func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	name, _, _ := strings.Cut(args[0], "=")
	return name
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: switchboard [--config FILE] [--set path=value ...]
       switchboard <command> [flags]

With no command, runs a gateway node from ./cluster.yaml (or --config).

Commands:
  smsc      run the SMPP SMSC simulator (carrier stand-in for tests and demos)
  bench     run the load driver: a whole rig on this machine, a running
            gateway, or Kannel (see bench/README.md)
  archive   write one day's messages to Parquet files, one per API key
            (the node must be stopped: see archive --help)
  version   print the version

Run "switchboard --help" for every setting, "switchboard smsc --help" for the
simulator's flags, "switchboard bench --help" for the load driver's.
`)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}
