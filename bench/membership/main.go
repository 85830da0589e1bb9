// Command membership measures how protoactor cluster membership behaves when
// a member is killed (SIGKILL) or paused (SIGSTOP, then SIGCONT): three real
// members run as separate processes on 127.0.0.1, each with one grain kind,
// for the gossip provider (actors/gossip, on memberlist) and for
// protoactor's own automanaged provider (HTTP polling of a fixed host list).
//
//	go run ./bench/membership [-providers gossip,automanaged] [-runs 3] [-scenarios kill,pause]
//
// Every process it starts is killed by its PID when its scenario ends.
// docs/benchmarks.md ("Membership") records the figures.
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "member" {
		err = runMember(os.Args[2:])
	} else {
		err = runDriver(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "membership:", err)
		os.Exit(1)
	}
}
