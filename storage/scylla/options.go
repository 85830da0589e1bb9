package scylla

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/rs/zerolog"
)

// Options configure a Store. Hosts and Keyspace are required; the rest
// have defaults.
type Options struct {
	// Hosts are the contact points, host or host:port: either none has a
	// port (9042) or all have the same (CheckHosts).
	Hosts []string
	// Keyspace is created at start if it does not exist, with
	// SimpleStrategy and ReplicationFactor. An existing keyspace is used
	// as it is, so operators can create it themselves (for example with
	// NetworkTopologyStrategy across data centres).
	Keyspace          string
	ReplicationFactor int
	// Consistency is the level every write waits for before it returns
	// (storage.consistency): one, two, three, quorum, all, local_quorum,
	// each_quorum, local_one. Reads use the level that overlaps it (see
	// readConsistency), so a read sees every write that returned.
	// Default quorum.
	Consistency string
	// TTL is how long a message, and everything that names it, is kept
	// (storage.ttl): until the UTC day it was accepted on is older than
	// this. Default 720h.
	TTL time.Duration
	// CarrierIDGrace is how long a message's carrier ids still find it
	// after it turned final, for late and repeated receipts
	// (storage.carrier_id_grace). Default 72h.
	CarrierIDGrace time.Duration

	// Timeout bounds one request to the database; a write that gets no
	// answer in time fails with EUNAVAILABLE (its outcome unknown, see
	// the package documentation). Default 10s.
	Timeout time.Duration
	// ConnectTimeout bounds connecting to a host. Default 5s.
	ConnectTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reach the cluster at start, and between probes while it is
	// unreachable. Defaults 500ms and 15s.
	ReconnectMin, ReconnectMax time.Duration

	// MarkLag is how far a queue's low-water mark stays behind the
	// present (see queue.go): an entry written by another node with an ID
	// up to this old still lands above the mark. It must exceed the clock
	// skew between nodes plus the longest a write takes. Default 10s.
	MarkLag time.Duration

	// Logger receives the store's own messages. The zero value logs
	// nothing.
	Logger zerolog.Logger
	// Now is the clock for idempotency windows, TTLs and marks; tests set
	// it. Default time.Now.
	Now func() time.Time

	// observer, set by the package's benchmarks, sees every statement
	// the driver runs.
	observer observer
}

// observer sees the statements the driver runs.
type observer interface {
	gocql.QueryObserver
	gocql.BatchObserver
}

const (
	defaultReplicationFactor = 1
	defaultConsistency       = "quorum"
	defaultTTL               = 720 * time.Hour
	defaultCarrierIDGrace    = 72 * time.Hour
	defaultTimeout           = 10 * time.Second
	defaultConnectTimeout    = 5 * time.Second
	defaultReconnectMin      = 500 * time.Millisecond
	defaultReconnectMax      = 15 * time.Second
	defaultMarkLag           = 10 * time.Second

	// MaxTTL is the longest Options.TTL: Cassandra's largest TTL (20
	// years), less what rows add to the store's TTL (a message is kept
	// until its day's end plus the TTL, a queue's bucket row an hour past
	// its entries).
	MaxTTL = 20*365*24*time.Hour - 48*time.Hour
)

var keyspaceRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

// consistencies maps the configuration's names to the driver's levels.
var consistencies = map[string]gocql.Consistency{
	"one": gocql.One, "two": gocql.Two, "three": gocql.Three, "quorum": gocql.Quorum,
	"all": gocql.All, "local_quorum": gocql.LocalQuorum, "each_quorum": gocql.EachQuorum,
	"local_one": gocql.LocalOne,
}

// Consistencies lists the consistency names Options.Consistency accepts.
func Consistencies() []string {
	return []string{"one", "two", "three", "quorum", "all", "local_quorum", "each_quorum", "local_one"}
}

func (o *Options) setDefaults() {
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = defaultReplicationFactor
	}
	if o.Consistency == "" {
		o.Consistency = defaultConsistency
	}
	o.Consistency = strings.ToLower(o.Consistency)
	if o.TTL == 0 {
		o.TTL = defaultTTL
	}
	if o.CarrierIDGrace == 0 {
		o.CarrierIDGrace = defaultCarrierIDGrace
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.ReconnectMin == 0 {
		o.ReconnectMin = defaultReconnectMin
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = defaultReconnectMax
	}
	if o.MarkLag == 0 {
		o.MarkLag = defaultMarkLag
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// validate reports every problem with the options at once.
func (o *Options) validate() error {
	var problems []string
	if len(o.Hosts) == 0 {
		problems = append(problems, "no hosts")
	}
	for _, p := range CheckHosts(o.Hosts) {
		problems = append(problems, fmt.Sprintf("host %q: %s", o.Hosts[p.Index], p.Problem))
	}
	if !keyspaceRE.MatchString(o.Keyspace) {
		problems = append(problems, fmt.Sprintf("keyspace %q is not a keyspace name", o.Keyspace))
	}
	if o.ReplicationFactor < 1 {
		problems = append(problems, fmt.Sprintf("replication factor %d is below 1", o.ReplicationFactor))
	}
	if _, ok := consistencies[o.Consistency]; !ok {
		problems = append(problems, fmt.Sprintf("consistency %q is not one of %s", o.Consistency,
			strings.Join(Consistencies(), ", ")))
	}
	if o.TTL < time.Second || o.TTL > MaxTTL {
		problems = append(problems, fmt.Sprintf("ttl %v is not between 1s and %v", o.TTL, MaxTTL))
	}
	if o.CarrierIDGrace < 0 {
		problems = append(problems, fmt.Sprintf("carrier id grace %v is negative", o.CarrierIDGrace))
	}
	if o.MarkLag < 0 {
		problems = append(problems, fmt.Sprintf("mark lag %v is negative", o.MarkLag))
	}
	if len(problems) > 0 {
		return fmt.Errorf("scylla: %s", strings.Join(problems, "; "))
	}
	return nil
}

// writeConsistency is the level writes wait for.
func (o *Options) writeConsistency() gocql.Consistency { return consistencies[o.Consistency] }

// serialConsistency is the level of the Paxos round of a lightweight
// transaction: local to the data centre when the writes are.
func (o *Options) serialConsistency() gocql.Consistency {
	if strings.HasPrefix(o.Consistency, "local_") {
		return gocql.LocalSerial
	}
	return gocql.Serial
}

// readConsistency is the least read level that overlaps the write level:
// read replicas plus write replicas exceed the replication factor, so a
// read sees every write that returned. Queue marks (queue.go) depend on
// this: a mark moves past entries only when a read found none there.
func (o *Options) readConsistency() gocql.Consistency {
	switch o.Consistency {
	case "quorum":
		return gocql.Quorum
	case "local_quorum", "each_quorum":
		// A quorum in every data centre overlaps the local one.
		return gocql.LocalQuorum
	case "all":
		return gocql.One
	}
	written := map[string]int{"one": 1, "local_one": 1, "two": 2, "three": 3}[o.Consistency]
	need := o.ReplicationFactor - written + 1
	switch {
	case need <= 1:
		return gocql.One
	case need >= o.ReplicationFactor:
		return gocql.All
	case need <= o.ReplicationFactor/2+1:
		return gocql.Quorum
	case need == 2:
		return gocql.Two
	case need == 3:
		return gocql.Three
	}
	return gocql.All
}

// HostProblem is what is wrong with the contact point at Index.
type HostProblem struct {
	Index   int
	Problem string
}

// CheckHosts reports what is wrong with hosts as contact points: each is
// a host or host:port with a port from 1 to 65535, and either none has a
// port or all have the same one (the driver connects to every node of
// the cluster on one port, and refuses a list that names two).
func CheckHosts(hosts []string) []HostProblem {
	var out []HostProblem
	first := -1 // the first host with a port
	for i, h := range hosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " \t,") {
			out = append(out, HostProblem{i, fmt.Sprintf("%q is not a host or host:port", h)})
			continue
		}
		host, port, err := net.SplitHostPort(h)
		switch {
		case err != nil:
			if first >= 0 {
				out = append(out, HostProblem{i, fmt.Sprintf("%q has no port and %q has one: give every host the same port, or none", h, hosts[first])})
			}
			continue
		case host == "" || !isPort(port):
			out = append(out, HostProblem{i, fmt.Sprintf("%q is not a host or host:port (a port from 1 to 65535)", h)})
			continue
		case first < 0:
			first = i
			for j := range i {
				out = append(out, HostProblem{j, fmt.Sprintf("%q has no port and %q has one: give every host the same port, or none", hosts[j], h)})
			}
		default:
			if _, p0, _ := net.SplitHostPort(hosts[first]); p0 != port {
				out = append(out, HostProblem{i, fmt.Sprintf("%q has another port than %q: every host must use the same", h, hosts[first])})
			}
		}
	}
	return out
}

// isPort reports whether s is a TCP port, 1 to 65535.
func isPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}
