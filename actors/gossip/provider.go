package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// State is a member's standing as this node sees it.
type State string

const (
	// StateAlive: answering, and placed in the topology (unless a client).
	StateAlive State = "alive"
	// StateSuspect: declared dead by gossip, but this node has not yet
	// confirmed it with a direct probe; still placed.
	StateSuspect State = "suspect"
	// StateLeaving: shutting down gracefully; already out of the topology.
	StateLeaving State = "leaving"
	// StateJoining: gossiping but still starting (Config.HoldUntilReady);
	// not in the topology yet.
	StateJoining State = "joining"
	// StateRemoved: declared dead here, yet answering again under the same
	// id (it was paused or cut off). It stays out of the topology for good
	// and is told to rejoin under a new id. For the node itself: it has
	// learnt that the others removed it (Provider.Removed is closed).
	StateRemoved State = "removed"
	// StateDead: declared dead, and did not answer this node's own probe.
	StateDead State = "dead"
	// StateLeft: left gracefully.
	StateLeft State = "left"
)

// MemberInfo is one row of the fleet view.
type MemberInfo struct {
	ID     string    // the member's actor system id
	Gossip string    // gossip address, host:port
	Host   string    // actor system (protoactor remote) host
	Port   int       // actor system port
	Kinds  []string  // grain kinds it hosts
	State  State     // see State
	Since  time.Time // when this node last saw its state change
	Self   bool      // this node
	Client bool      // a cluster client: hosts nothing
}

// Provider is a protoactor cluster.ClusterProvider on memberlist (SWIM
// gossip with Lifeguard's refinements): no central server, failure detection
// in a second or two on a LAN, and a member that comes back after it was
// declared dead (a pause, a partition) learns it through Removed.
//
// One Provider serves one actor system: a node that was removed rejoins
// with a new actor system and a new Provider.
type Provider struct {
	cfg Config
	log zerolog.Logger
	// wrap, when set, wraps the network transport (tests cut links there).
	wrap func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport

	mu      sync.Mutex
	started bool
	self    identity
	meta    meta
	peers   map[string]*peer
	// dead holds the members this node saw die (memberlist declared them
	// dead or left), with when. They never return to its topology: protoactor
	// blocks a member for good once it has left one.
	dead map[string]time.Time
	// checking and checkedAt track the direct probes that confirm a death
	// gossip reported (see confirm).
	checking  map[string]bool
	checkedAt map[string]time.Time
	inbox     []notice
	ack       []byte // the recent deaths, appended to every probe ack
	ml        *memberlist.Memberlist
	stop      context.CancelFunc

	live    atomic.Int64 // members counted live; memberlist's retransmit scale
	queue   *memberlist.TransmitLimitedQueue
	wake    chan struct{}
	removed chan struct{}
	once    sync.Once // closes removed
	down    sync.Once // Shutdown
	wg      sync.WaitGroup
}

// identity is this node as the topology knows it.
type identity struct {
	id     string
	host   string
	port   int
	kinds  []string
	client bool
}

// peer is a member as the event delegate reported it, copied out of
// memberlist under its lock.
type peer struct {
	addr  net.IP
	port  uint16
	meta  meta
	gone  bool // declared dead, or left
	since time.Time
}

func (pe *peer) gossip() string {
	return net.JoinHostPort(pe.addr.String(), strconv.Itoa(int(pe.port)))
}

// topologySink receives every new live set; protoactor's is
// MemberList.UpdateClusterTopology. Tests record it instead.
type topologySink func(cluster.Members)

// maxInbox bounds the notices waiting for the loop; they are repeated by
// every push/pull and probe, so dropping a burst loses nothing.
const maxInbox = 256

var _ cluster.ClusterProvider = (*Provider)(nil)

// New returns a provider; it does nothing until StartMember or StartClient.
func New(cfg Config) *Provider {
	cfg = cfg.withDefaults()
	return &Provider{
		cfg:       cfg,
		log:       cfg.Log.With().Str("component", "gossip").Logger(),
		peers:     make(map[string]*peer),
		dead:      make(map[string]time.Time),
		checking:  make(map[string]bool),
		checkedAt: make(map[string]time.Time),
		wake:      make(chan struct{}, 1),
		removed:   make(chan struct{}),
	}
}

// StartMember joins the cluster as a member hosting c's kinds, identified by
// c's actor system id. It returns once gossip listens; seeds are joined in
// the background, retried until one answers.
func (p *Provider) StartMember(c *cluster.Cluster) error {
	return p.startFor(c, false)
}

// StartClient joins as a client: it follows the topology, hosts no grains
// and is never placed in the topology.
func (p *Provider) StartClient(c *cluster.Cluster) error {
	return p.startFor(c, true)
}

func (p *Provider) startFor(c *cluster.Cluster, client bool) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("gossip: actor system address: %w", err)
	}
	if p.cfg.Cluster == "" {
		p.cfg.Cluster = c.Config.Name
	}
	var kinds []string
	if !client {
		kinds = c.GetClusterKinds()
	}
	return p.start(identity{id: c.ActorSystem.ID, host: host, port: port, kinds: kinds, client: client},
		c.MemberList.UpdateClusterTopology)
}

// Addr is the gossip address actually bound (with the port chosen when Bind
// asked for port 0); empty before start.
func (p *Provider) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe, ok := p.peers[p.self.id]; ok && p.started {
		return pe.gossip()
	}
	return ""
}

// Removed is closed once this node learns that the others declared it dead
// (it was paused or cut off past the failure timeout). Its id is then
// blocked for good in their topologies, so its grains live elsewhere: the
// owner must stop its actors and rejoin with a new actor system (a new id)
// and a new Provider.
func (p *Provider) Removed() <-chan struct{} { return p.removed }

// Members is the fleet as this node sees it, sorted by id: live members,
// and those it saw die or leave within RemovalTTL.
func (p *Provider) Members() []MemberInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	removed := false
	select {
	case <-p.removed:
		removed = true
	default:
	}
	out := make([]MemberInfo, 0, len(p.peers))
	for id, pe := range p.peers {
		st := StateAlive
		_, dead := p.dead[id]
		self := id == p.self.id
		switch {
		case pe.gone && pe.meta.Leaving:
			st = StateLeft
		case dead && pe.gone:
			st = StateDead
		case dead, self && removed:
			st = StateRemoved
		case pe.gone:
			st = StateSuspect
		case pe.meta.Leaving:
			st = StateLeaving
		case pe.meta.Joining:
			st = StateJoining
		}
		out = append(out, MemberInfo{
			ID: id, Gossip: pe.gossip(), Host: pe.meta.Host, Port: pe.meta.Port,
			Kinds: slices.Clone(pe.meta.Kinds), State: st, Since: pe.since,
			Self: self, Client: pe.meta.Client,
		})
	}
	slices.SortFunc(out, func(a, b MemberInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Ready places this member in the topology (see Config.HoldUntilReady):
// its own at once, the others' as the news spreads. Without
// HoldUntilReady, or once ready, it does nothing.
func (p *Provider) Ready() error {
	p.mu.Lock()
	ml := p.ml
	if ml == nil || !p.meta.Joining {
		p.mu.Unlock()
		return nil
	}
	p.meta.Joining = false
	if pe, ok := p.peers[p.self.id]; ok {
		pe.meta.Joining, pe.since = false, time.Now()
	}
	p.mu.Unlock()
	p.signal()
	if err := ml.UpdateNode(p.cfg.LeaveTimeout); err != nil {
		// The new metadata still spreads with the next exchanges of state.
		return fmt.Errorf("gossip: announcing that this member is ready: %w", err)
	}
	p.log.Info().Msg("gossip: ready, placed in the topology")
	return nil
}

// Shutdown stops gossip. Graceful announces the leave first, so the others
// drop this node at once instead of after the failure timeout.
func (p *Provider) Shutdown(graceful bool) error {
	var err error
	p.down.Do(func() {
		p.mu.Lock()
		ml, stop := p.ml, p.stop
		others := p.liveLocked() > 1
		p.mu.Unlock()
		if ml == nil {
			return
		}
		stop()
		p.wg.Wait()
		if graceful && others {
			p.mu.Lock()
			p.meta.Leaving = true
			p.mu.Unlock()
			if e := ml.UpdateNode(p.cfg.LeaveTimeout); e != nil {
				p.log.Warn().Err(e).Msg("gossip: announcing the leave")
			}
			if e := ml.Leave(p.cfg.LeaveTimeout); e != nil {
				p.log.Warn().Err(e).Msg("gossip: leaving")
			}
		}
		err = ml.Shutdown()
		p.log.Info().Bool("graceful", graceful).Msg("gossip stopped")
	})
	return err
}

// start creates the memberlist node and the two goroutines it owns: the
// topology loop and the joiner.
func (p *Provider) start(id identity, sink topologySink) error {
	cfg := p.cfg
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("gossip config: %w", err)
	}
	if cfg.Cluster == "" {
		return errors.New("gossip config: cluster name missing")
	}
	m := meta{Cluster: cfg.Cluster, Host: id.host, Port: id.port, Kinds: slices.Sorted(slices.Values(id.kinds)), Client: id.client,
		Joining: cfg.HoldUntilReady && !id.client}
	if _, err := m.encode(memberlist.MetaMaxSize); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("gossip: provider already started")
	}
	p.started, p.self, p.meta = true, id, m
	p.mu.Unlock()

	mc, err := cfg.memberlistConfig(id.id)
	if err != nil {
		return err
	}
	mc.Logger = log.New(logWriter{log: p.log}, "", 0)
	d := delegate{p}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge, mc.Ping = d, d, d, d, d
	if mc.Transport, err = p.transport(mc); err != nil {
		return err
	}
	p.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(p.live.Load()) },
		RetransmitMult: mc.RetransmitMult,
	}
	p.live.Store(1)
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = mc.Transport.Shutdown()
		return fmt.Errorf("gossip: start on %s: %w", cfg.Bind, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	p.mu.Lock()
	p.ml, p.stop = ml, stop
	p.mu.Unlock()
	p.log.Info().Str("id", id.id).Str("gossip", p.Addr()).Str("cluster", cfg.Cluster).
		Strs("seeds", cfg.Seeds).Bool("client", id.client).Msg("gossip started")

	p.wg.Add(2)
	go p.run(ctx, ml, sink)
	go p.join(ctx, ml)
	p.signal()
	return nil
}

// transport listens on Bind (TCP and UDP on one port; port 0 tries a few
// free ports, as memberlist does) and fixes the port it got in mc.
func (p *Provider) transport(mc *memberlist.Config) (memberlist.NodeAwareTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger}
	attempts := 1
	if mc.BindPort == 0 {
		attempts = 10
	}
	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range attempts {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: listen on %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		if p.cfg.Advertise == "" {
			mc.AdvertisePort = mc.BindPort
		}
	}
	if p.wrap != nil {
		return p.wrap(nt), nil
	}
	return nt, nil
}

func (p *Provider) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run is the one goroutine that hands topologies to protoactor, so they
// arrive in order; it also decides on removal notices and tells members
// that came back after this node saw them die.
func (p *Provider) run(ctx context.Context, ml *memberlist.Memberlist, sink topologySink) {
	defer p.wg.Done()
	tick := time.NewTicker(loopTick(p.cfg.RemovalTTL))
	defer tick.Stop()
	var last string
	awake := time.Now()
	told := make(map[string]time.Time)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-tick.C:
		}
		now := time.Now()
		v := p.refresh(now)
		if pausedTooLong(awake, now, p.cfg.RemovalTTL) {
			v.removedBy = "a pause longer than the others remember deaths"
		}
		awake = now
		if v.key != last {
			last = v.key
			p.log.Info().Strs("members", v.ids()).Msg("gossip topology")
			sink(v.members)
		}
		if v.removedBy != "" {
			p.once.Do(func() {
				p.log.Warn().Str("by", v.removedBy).Msg("gossip: this node was declared dead by the others; it must rejoin under a new id")
				close(p.removed)
			})
		}
		for i, id := range v.checkIDs {
			p.wg.Add(1)
			go p.confirm(ctx, ml, id, v.checks[i])
		}
		for id := range told {
			if _, ok := v.zombies[id]; !ok {
				delete(told, id)
			}
		}
		for id, z := range v.zombies {
			if now.Sub(told[id]) < time.Second {
				continue
			}
			told[id] = now
			p.wg.Add(1)
			go func(to memberlist.Node) {
				defer p.wg.Done()
				if err := ml.SendReliable(&to, v.notice); err != nil {
					p.log.Debug().Err(err).Str("to", to.Name).Msg("gossip: telling a removed member")
				}
			}(memberlist.Node{Name: id, Addr: z.addr, Port: z.port})
		}
	}
}

// loopTick is how often the loop runs without events: at least four times
// per RemovalTTL, so that pausedTooLong sees a pause of that length.
func loopTick(ttl time.Duration) time.Duration { return min(time.Second, ttl/4) }

// pausedTooLong reports a gap in the loop (the monotonic clock runs on while
// the process is stopped) longer than the others remember a death: they
// forgot this node's old id, so no notice would ever tell it it was removed,
// while protoactor still blocks that id. It must leave as if told.
func pausedTooLong(last, now time.Time, ttl time.Duration) bool {
	return now.Sub(last) > ttl
}

// view is one refresh's outcome.
type view struct {
	members   cluster.Members
	key       string          // members' identity, to tell a change
	zombies   map[string]peer // answering, but seen dead here
	checks    []peer          // reported dead, to confirm (ids in checkIDs)
	checkIDs  []string
	notice    []byte // this node's full notice, for zombies
	removedBy string // who declared this node dead, if it must leave
}

func (v view) ids() []string {
	ids := make([]string, len(v.members))
	for i, m := range v.members {
		ids[i] = m.Id
	}
	return ids
}

// refresh forgets old deaths, computes the live set, and weighs the notices
// that arrived since the last call.
func (p *Provider) refresh(now time.Time) view {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, at := range p.dead {
		if now.Sub(at) > p.cfg.RemovalTTL {
			delete(p.dead, id)
		}
	}
	for id, pe := range p.peers {
		if pe.gone && now.Sub(pe.since) > p.cfg.RemovalTTL {
			delete(p.peers, id)
			delete(p.checkedAt, id)
		}
	}
	v := view{zombies: make(map[string]peer)}
	var key strings.Builder
	for id, pe := range p.peers {
		_, dead := p.dead[id]
		switch {
		case dead && !pe.gone:
			v.zombies[id] = *pe
		case pe.gone && !dead && !p.checking[id] && now.Sub(p.checkedAt[id]) >= time.Second:
			p.checking[id] = true
			v.checks = append(v.checks, *pe)
			v.checkIDs = append(v.checkIDs, id)
		}
		if !dead && pe.meta.placed() {
			v.members = append(v.members, &cluster.Member{Id: id, Host: pe.meta.Host, Port: int32(pe.meta.Port), Kinds: slices.Clone(pe.meta.Kinds)})
		}
	}
	slices.SortFunc(v.members, func(a, b *cluster.Member) int { return strings.Compare(a.Id, b.Id) })
	for _, m := range v.members {
		fmt.Fprintf(&key, "%s@%s:%d%v;", m.Id, m.Host, m.Port, m.Kinds)
	}
	v.key = key.String()
	live := p.liveLocked()
	p.live.Store(int64(live))
	v.notice = p.noticeLocked(live, 0).encode()
	p.ack = p.noticeLocked(live, maxAckDeaths).encode()
	for _, n := range p.inbox {
		if p.mustLeaveLocked(n, live) {
			v.removedBy = n.From
		}
	}
	p.inbox = p.inbox[:0]
	return v
}

// liveLocked counts the members this node holds live, itself and clients
// included, the ones it saw die excluded.
func (p *Provider) liveLocked() int {
	n := 0
	for id := range p.peers {
		if _, dead := p.dead[id]; !dead {
			n++
		}
	}
	return n
}

// confirm probes a member that gossip reported dead, and holds it dead only
// if it does not answer. memberlist takes back a wrong death (the member
// refutes it), but protoactor blocks for good a member that has left a
// topology: a stale death gossiped by the healed side of a partition must
// not evict a member this node can reach.
func (p *Provider) confirm(ctx context.Context, ml *memberlist.Memberlist, id string, pe peer) {
	defer p.wg.Done()
	answered := false
	for range confirmProbes {
		if ctx.Err() != nil {
			break
		}
		if _, err := ml.Ping(id, &net.UDPAddr{IP: pe.addr, Port: int(pe.port)}); err == nil {
			answered = true
			break
		}
	}
	p.mu.Lock()
	delete(p.checking, id)
	p.checkedAt[id] = time.Now()
	var msg []byte
	if !answered && ctx.Err() == nil {
		msg = p.confirmLocked(id, time.Now())
	}
	p.mu.Unlock()
	p.announce(id, msg)
	p.signal()
}

// confirmProbes is how many direct probes a reported death gets, each
// waiting ProbeTimeout.
const confirmProbes = 2

// confirmLocked holds id dead if it still is gone, and returns the notice to
// gossip about it (nil if nothing changed).
func (p *Provider) confirmLocked(id string, now time.Time) []byte {
	pe, ok := p.peers[id]
	if _, seen := p.dead[id]; seen || !ok || !pe.gone || id == p.self.id {
		return nil
	}
	p.dead[id] = now
	return notice{From: p.self.id, Client: p.self.client, Live: p.liveLocked(), Dead: []string{id}}.encode()
}

// announce gossips a confirmed death.
func (p *Provider) announce(id string, msg []byte) {
	if msg == nil {
		return
	}
	p.queue.QueueBroadcast(broadcast(msg))
	p.log.Info().Str("member", id).Msg("gossip: member gone")
}

// join joins the seeds: at start, retrying with backoff until one answers,
// and then whenever a seed is missing from the live set, so the two sides
// of a healed partition find each other again.
func (p *Provider) join(ctx context.Context, ml *memberlist.Memberlist) {
	defer p.wg.Done()
	delay, failures := firstJoinDelay, 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := p.cfg.ReconnectInterval
		if targets := p.joinTargets(); len(targets) > 0 {
			n, err := ml.Join(targets)
			switch {
			case n > 0:
				p.log.Info().Strs("seeds", targets).Int("answered", n).Msg("gossip joined")
				delay, failures = firstJoinDelay, 0
			default:
				failures++
				ev := p.log.Debug()
				if failures == 1 {
					ev = p.log.Info()
				}
				ev.Err(err).Strs("seeds", targets).Int("attempt", failures).Msg("gossip seeds not answering; retrying")
				wait = jitter(delay)
				delay = min(2*delay, p.cfg.ReconnectInterval)
			}
		}
		timer.Reset(wait)
	}
}

// joinTargets are the seeds that no live member answers for.
func (p *Provider) joinTargets() []string {
	p.mu.Lock()
	live := make(map[string]bool, len(p.peers))
	for _, pe := range p.peers {
		if !pe.gone {
			live[pe.gossip()] = true
		}
	}
	p.mu.Unlock()
	var out []string
	for _, s := range p.cfg.Seeds {
		if a, err := net.ResolveTCPAddr("tcp", s); err == nil && live[a.String()] {
			continue
		}
		out = append(out, s)
	}
	return out
}

// jitter spreads retries between d/2 and d, so nodes started together do
// not knock on the seeds in step.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(half+1)
}
