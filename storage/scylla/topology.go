package scylla

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
)

// topology knows whether every node of the cluster holds a replica of
// every partition of the keyspace: one node, or three with replication
// factor 3 (per data centre with NetworkTopologyStrategy). Then the writer
// puts rows of any partitions in one batch: whichever node coordinates it
// is a replica of all of them, so the batch costs the cluster no extra
// hop, and one request carries what would otherwise be one per partition.
// In a larger cluster a batch holds one partition's rows, sent to one of
// its replicas (token-aware).
//
// It also sizes the writer's concurrency: a few batches in flight per
// node keep the nodes busy, and rows arriving meanwhile wait and share the
// next batches instead of each going alone.
type topology struct {
	s *Store

	mu    sync.Mutex
	all   bool
	hosts int
}

// topologyRecheck is how often the replication and the hosts are read
// again: nodes join and leave, keyspaces are altered, rarely.
const topologyRecheck = 30 * time.Second

// batchesPerHost is how many batches the writer keeps in flight per node.
const batchesPerHost = 4

// get returns whether every node replicates everything, and the number of
// nodes, as last read.
func (t *topology) get() (all bool, hosts int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.all, max(t.hosts, 1)
}

// refresh reads them again; a failed read keeps what was known.
func (t *topology) refresh(session *gocql.Session) {
	all, hosts, ok := t.read(session)
	if !ok {
		return
	}
	t.mu.Lock()
	changed := all != t.all || hosts != t.hosts
	t.all, t.hosts = all, hosts
	t.mu.Unlock()
	if changed {
		t.s.log.Info().Bool("replicated_everywhere", all).Int("hosts", hosts).
			Msg("scylla: cluster read: batches hold rows of any partitions only where every node replicates every one")
	}
}

// run refreshes the topology every topologyRecheck until ctx ends.
func (t *topology) run(ctx context.Context) {
	tick := time.NewTicker(topologyRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if session := t.s.session.Load(); session != nil {
				t.refresh(session)
			}
		}
	}
}

// read reads the keyspace's replication and counts the nodes per data
// centre; ok is false if the replication could not be read.
func (t *topology) read(session *gocql.Session) (all bool, hosts int, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), t.s.opts.Timeout)
	defer cancel()
	repl, err := t.s.replication(ctx, session)
	if err != nil {
		return false, 0, false
	}
	perDC := map[string]int{}
	for _, h := range session.GetHosts() {
		perDC[h.DataCenter()]++
		hosts++
	}
	return replicatedEverywhere(repl, perDC), hosts, true
}

// replicatedEverywhere reports whether a keyspace with replication repl
// (as system_schema.keyspaces has it) keeps a replica of every partition
// on every node of nodes (a count per data centre).
func replicatedEverywhere(repl map[string]string, nodes map[string]int) bool {
	if len(nodes) == 0 {
		return false
	}
	class := repl["class"]
	switch {
	case strings.HasSuffix(class, "SimpleStrategy"):
		rf, err := strconv.Atoi(repl["replication_factor"])
		total := 0
		for _, n := range nodes {
			total += n
		}
		return err == nil && rf >= total
	case strings.HasSuffix(class, "NetworkTopologyStrategy"):
		for dc, n := range nodes {
			rf, err := strconv.Atoi(repl[dc])
			if err != nil || rf < n {
				return false
			}
		}
		return true
	}
	return false
}
