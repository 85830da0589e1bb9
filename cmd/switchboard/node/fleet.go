package node

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors"
	"github.com/switchboard-sms/switchboard/actors/gossip"
	"github.com/switchboard-sms/switchboard/storage/redis"
)

// FleetOptions make the node one member of a cluster (cluster.enabled).
type FleetOptions struct {
	Name     string
	Gossip   string // host:port gossip listens on
	Remote   string // host:port the other nodes reach this node's actors at
	Seeds    []string
	LeaseTTL time.Duration
}

// fleetConfig is the engine's cluster configuration for one incarnation of
// the node: each has its own membership (a new member id), and all share
// the Redis that holds the leases.
func (n *Node) fleetConfig(cfg Config) (*actors.FleetConfig, error) {
	if cfg.Fleet == nil {
		return nil, nil
	}
	if n.cache == nil {
		return nil, errors.New("a cluster needs Redis for its leases (cache.backend: redis)")
	}
	log := cfg.Engine.Log.With().Str("component", "membership").Logger()
	fo := cfg.Fleet
	return &actors.FleetConfig{
		Name: fo.Name, Remote: fo.Remote, LeaseTTL: fo.LeaseTTL,
		Membership: gossip.New(gossip.Config{Cluster: fo.Name, Bind: fo.Gossip, Seeds: fo.Seeds, Log: log, HoldUntilReady: true}),
		Leases:     redis.NewLeases(n.cache, cfg.CacheOptions),
	}, nil
}

// rejoin runs for a clustered node until it stops: whenever the engine
// finds the node removed from the cluster (declared dead while it was
// paused or cut off), the node stops its engine — its keys and binds are
// others' by now — and starts a new one, which joins as a new member. The
// API answers 503 meanwhile.
func (n *Node) rejoin(cfg Config) {
	defer close(n.rejoined)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-n.stopRejoin; cancel() }()
	for {
		select {
		case <-n.stopRejoin:
			return
		case <-n.engine().Removed():
		}
		n.gate.close("The gateway is rejoining its cluster.")
		old := n.engine()
		stopCtx, stopped := context.WithTimeout(ctx, rejoinStopTimeout)
		if err := old.Stop(stopCtx); err != nil {
			cfg.Engine.Log.Warn().Err(err).Msg("stopping the engine before rejoining")
		}
		stopped()
		for attempt := 0; ; attempt++ {
			e, err := n.startEngine(ctx, cfg)
			if err == nil {
				n.setEngine(e)
				n.gate.open(e)
				cfg.Engine.Log.Warn().Msg("rejoined the cluster as a new member")
				break
			}
			cfg.Engine.Log.Error().Err(err).Msg("rejoining the cluster failed; will retry")
			select {
			case <-n.stopRejoin:
				return
			case <-time.After(rejoinBackoff.Delay(attempt)):
			}
		}
	}
}

const rejoinStopTimeout = 10 * time.Second

var rejoinBackoff = switchboard.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
