package gossip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// Config says which cluster a node belongs to, where it gossips and how fast
// it judges its peers. The zero value of every timing knob takes the LAN
// default below; Cluster and Seeds have no default.
type Config struct {
	// Cluster is the cluster's name. It labels every packet and stream
	// (memberlist's Label) and is carried in each member's metadata, so a
	// node of another cluster is refused even if it reaches the port.
	// Empty: the protoactor cluster's own name.
	Cluster string
	// Bind is the host:port gossip listens on, TCP and UDP on the same port.
	// Port 0 picks a free port; Addr reports it. Empty: 127.0.0.1:7946.
	Bind string
	// Advertise is the host:port others reach this node at, when it is not
	// Bind (NAT, 0.0.0.0). Empty: Bind's.
	Advertise string
	// Seeds are host:port addresses of nodes to join through. They are
	// retried with backoff until one answers, and again whenever one of them
	// is missing from the live set (a healed partition joins up again).
	Seeds []string
	// Log receives membership events and memberlist's own messages.
	Log zerolog.Logger
	// HoldUntilReady keeps a member out of the topology (its own and the
	// others') until Ready is called: it gossips, sees the others and is
	// seen, but nothing is placed on it while it still starts (a node
	// placed at once is asked for keys and binds before it can serve them).
	HoldUntilReady bool

	// ProbeInterval is how often one peer is probed (round robin).
	// Default 200 ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack before asking other
	// members to probe indirectly; a death reported by gossip is also
	// confirmed with two direct probes of this length before the member
	// leaves the topology. Default 150 ms; below ProbeInterval.
	ProbeTimeout time.Duration
	// SuspicionMult times ProbeInterval (times log10 of the cluster size, at
	// least 1) is how long a suspect has to refute before it is declared
	// dead. Default 3: with the confirmation, a failed node leaves the
	// topology in 1-1.5 s on a LAN (docs/benchmarks.md).
	SuspicionMult int
	// GossipInterval is how often queued messages are gossiped. Default 100 ms.
	GossipInterval time.Duration
	// PushPullInterval is how often full state (and the removals this node
	// has seen) is exchanged with one random peer. Default 5 s.
	PushPullInterval time.Duration
	// ReconnectInterval is how often seeds missing from the live set are
	// joined again, and the longest wait between failed joins. Default 2 s.
	ReconnectInterval time.Duration
	// RemovalTTL is how long this node remembers a member it saw die, to tell
	// it so if it comes back under the same id (see Provider.Removed). A
	// node that wakes from a pause longer than this takes itself as removed.
	// Default 1 h.
	RemovalTTL time.Duration
	// LeaveTimeout bounds a graceful Shutdown's announcement. Default 2 s.
	LeaveTimeout time.Duration
}

const (
	defaultBind              = "127.0.0.1:7946"
	defaultProbeInterval     = 200 * time.Millisecond
	defaultProbeTimeout      = 150 * time.Millisecond
	defaultSuspicionMult     = 3
	defaultGossipInterval    = 100 * time.Millisecond
	defaultPushPullInterval  = 5 * time.Second
	defaultReconnectInterval = 2 * time.Second
	defaultRemovalTTL        = time.Hour
	defaultLeaveTimeout      = 2 * time.Second
	// firstJoinDelay is the first wait after a failed join; it doubles up to
	// ReconnectInterval.
	firstJoinDelay = 100 * time.Millisecond
)

// withDefaults fills the zero knobs.
func (c Config) withDefaults() Config {
	if c.Bind == "" {
		c.Bind = defaultBind
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.ProbeInterval, defaultProbeInterval)
	set(&c.ProbeTimeout, defaultProbeTimeout)
	set(&c.GossipInterval, defaultGossipInterval)
	set(&c.PushPullInterval, defaultPushPullInterval)
	set(&c.ReconnectInterval, defaultReconnectInterval)
	set(&c.RemovalTTL, defaultRemovalTTL)
	set(&c.LeaveTimeout, defaultLeaveTimeout)
	if c.SuspicionMult <= 0 {
		c.SuspicionMult = defaultSuspicionMult
	}
	return c
}

// Validate reports every problem with the configuration at once. Cluster
// may be empty here: StartMember fills it from the protoactor cluster.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Cluster) > memberlist.LabelMaxSize {
		errs = append(errs, fmt.Errorf("cluster name: longer than %d bytes", memberlist.LabelMaxSize))
	}
	if host, _, err := splitHostPort(c.Bind); err != nil {
		errs = append(errs, fmt.Errorf("bind: %w", err))
	} else if net.ParseIP(host) == nil {
		errs = append(errs, fmt.Errorf("bind: %q is not an IP address", host))
	}
	if c.Advertise != "" {
		if host, _, err := splitHostPort(c.Advertise); err != nil {
			errs = append(errs, fmt.Errorf("advertise: %w", err))
		} else if net.ParseIP(host) == nil {
			errs = append(errs, fmt.Errorf("advertise: %q is not an IP address", host))
		}
	}
	for i, s := range c.Seeds {
		if _, _, err := splitHostPort(s); err != nil {
			errs = append(errs, fmt.Errorf("seeds[%d]: %w", i, err))
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		errs = append(errs, fmt.Errorf("probe timeout %s: must be below the probe interval %s", c.ProbeTimeout, c.ProbeInterval))
	}
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 0-65535", addr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: host missing", addr)
	}
	return host, port, nil
}

// memberlistConfig translates the knobs; the delegates are set by the caller.
func (c Config) memberlistConfig(name string) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.Label = c.Cluster
	host, port, err := splitHostPort(c.Bind)
	if err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(c.Advertise); err != nil {
			return nil, fmt.Errorf("advertise: %w", err)
		}
	}
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.GossipInterval = c.GossipInterval
	mc.PushPullInterval = c.PushPullInterval
	// A LAN answers within a second; a dead peer should not hold a join or a
	// push/pull for memberlist's WAN-sized 10 s.
	mc.TCPTimeout = time.Second
	// Dead members stay gossip targets this long, so a paused one that
	// comes back soon hears of its own death from several directions.
	mc.GossipToTheDeadTime = 30 * time.Second
	return mc, nil
}
