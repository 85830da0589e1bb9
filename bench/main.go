// Command bench is Switchboard's load driver (also `switchboard bench`):
// an open-loop load with latency percentiles, end-to-end delivery through
// a webhook sink, plots, and Kannel side by side. See bench/README.md.
//
//	go run ./bench                                          # open loop, 10,000 msg/s for 10 s
//	go run ./bench --scenario bench/scenarios/steady.yaml --duration 10s
//	go run ./bench --scenario bench/scenarios/ramp.yaml     # the highest sustainable rate
//	go run ./bench --out results.json --plot results.svg
package main

import (
	"os"

	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/bench/harness"
)

func main() {
	// The in-process rig runs the gateway in this process: give it the
	// gateway's scheduling (see actors.OversubscribeProcs).
	actors.OversubscribeProcs()
	os.Exit(harness.Main(os.Args[1:], os.Stdout, os.Stderr))
}
