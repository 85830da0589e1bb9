package main

import (
	"io"

	"github.com/switchboard-sms/switchboard/bench/harness"
)

// runBench is `switchboard bench`: the load driver of bench/ (go run
// ./bench), with the same flags and exit status (0 ok, 1 messages lost or
// a failure, 2 bad flags).
func runBench(args []string, stdout, stderr io.Writer) int {
	return harness.Main(args, stdout, stderr)
}
