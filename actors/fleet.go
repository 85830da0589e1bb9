package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors/wire"
	"github.com/switchboard-sms/switchboard/carriers/concat"
)

// A fleet is several nodes sharing one store: any node takes API requests,
// each API key's actor runs on one node (its owner, placed by the key's id
// over the live members with protoactor's rendezvous hashing), and each
// bind of a carrier runs on one node. protoactor-go's cluster keeps the
// member list (from a Membership provider, actors/gossip), gossips the
// binds' states and carries protobuf messages between nodes. Membership
// is advisory: safety comes from leases with fencing tokens (see
// key_lease.go), so two nodes that disagree about who owns a key cannot
// both commit for it.

// FleetConfig makes the engine one node of a cluster; without it the
// engine is a single node.
type FleetConfig struct {
	// Name is the cluster's name.
	Name string
	// Remote is the host:port at which the other nodes reach this node's
	// actors (protoactor's remote, over gRPC). Port 0 picks a free one.
	Remote string
	// Membership finds the other nodes and tells when this one has been
	// removed by them.
	Membership Membership
	// Leases fence each key's owner and each bind (Redis in production).
	Leases switchboard.Leases
	// LeaseTTL is how long a lease lasts unrenewed: how long the keys of a
	// node that died wait before another node takes them. Default 2s.
	LeaseTTL time.Duration
}

// Membership is a protoactor cluster provider that also says when this
// node has been removed from the cluster (declared dead while it was
// paused or cut off): the node must then leave and join again as a new
// member.
type Membership interface {
	cluster.ClusterProvider
	Removed() <-chan struct{}
	// Ready places this node in the topology, if it was held out while it
	// started (gossip.Config.HoldUntilReady): the engine calls it once it
	// can serve what the others will then hand it.
	Ready() error
}

const (
	kindKey         = "key"
	defaultLeaseTTL = 2 * time.Second
)

// fleet is the engine's part in a cluster.
type fleet struct {
	e       *Engine
	cfg     FleetConfig
	c       *cluster.Cluster
	joined  bool // c started as a member (start got through StartMember)
	leases  switchboard.Leases
	holder  string // this node's incarnation, in leases: its actor system's ID
	book    leaseBook
	address string // where the other nodes reach this node's actors

	mu      sync.Mutex
	members []*cluster.Member
	ring    *cluster.Rendezvous
	leave   map[string]chan struct{} // closed when that address leaves (gone)
	// staleWarned is when warnStale last logged (Unix ns).
	staleWarned atomic.Int64
	// bindsChanged and workChanged say the membership changed (to each
	// of the two loops that act on it: watch, watchWork).
	bindsChanged, workChanged chan struct{}
	removed                   chan struct{} // closed when this node must rejoin
	lostOnce                  sync.Once

	// binds are the binds this node runs, by lease name, and draining the
	// ones it stopped that may not have unbound yet; only the watch
	// goroutine touches them.
	binds    map[string]bindLease
	draining map[string]drainingBind
	hints    *hinter

	// parkedRechecks are the waits between the looks of recheckParked.
	parkedRechecks []time.Duration
}

func newFleet(e *Engine, cfg FleetConfig) (*fleet, error) {
	if cfg.Membership == nil || cfg.Leases == nil {
		return nil, errors.New("actors: a fleet needs a membership provider and leases")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = defaultLeaseTTL
	}
	f := &fleet{e: e, cfg: cfg, leases: cfg.Leases, ring: cluster.NewRendezvous(), leave: map[string]chan struct{}{},
		bindsChanged: make(chan struct{}, 1), workChanged: make(chan struct{}, 1), removed: make(chan struct{}),
		binds: map[string]bindLease{}, draining: map[string]drainingBind{},
		parkedRechecks: []time.Duration{0, time.Second, 5 * time.Second, 30 * time.Second}}
	f.hints = newHinter(f)
	return f, nil
}

// start joins the cluster: remote first, then the cluster member with its
// kinds, then membership. protoactor panics on some start errors (a port
// in use); they come back as errors.
func (f *fleet) start() (err error) {
	host, portStr, err := net.SplitHostPort(f.cfg.Remote)
	if err != nil {
		return fmt.Errorf("cluster remote address %q: %w", f.cfg.Remote, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("cluster remote address %q: %w", f.cfg.Remote, err)
	}
	keyProps := actor.PropsFromProducer(func() actor.Actor { return keyGrain{} })
	cfg := cluster.Configure(f.cfg.Name, f.cfg.Membership, disthash.New(), remote.Configure(host, port),
		cluster.WithKinds(cluster.NewKind(kindKey, keyProps)), cluster.WithRequestTimeout(f.e.cfg.RequestTimeout))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cluster: %v", r)
		}
	}()
	f.c = cluster.New(f.e.system, cfg)
	f.e.system.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*cluster.ClusterTopology); ok {
			f.topology(t.Members)
		}
	})
	f.c.StartMember()
	f.joined = true
	f.holder = f.e.system.ID
	f.address = f.e.system.Address()
	node := &nodeActor{e: f.e}
	if _, err := f.e.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return node }), nodeActorName); err != nil {
		return fmt.Errorf("spawn the node actor: %w", err)
	}
	return nil
}

// stop leaves the cluster and shuts the actor system down. After a start
// that failed part way it closes only what started: protoactor's own
// Shutdown assumes a member that started, and panics on one that did not.
func (f *fleet) stop() {
	if f.joined {
		f.c.Shutdown(true)
		return
	}
	if f.c != nil && f.c.Remote != nil {
		// The remote's server may not have come up (a port in use), and
		// its Shutdown cannot tell: a panic there only means nothing to
		// stop.
		func() {
			defer func() { _ = recover() }()
			f.c.Remote.Shutdown(false)
		}()
	}
	f.e.system.Shutdown()
}

// Removed is closed when this node has to leave the cluster and join again
// as a new member: the others declared it dead, or it lost its leases.
func (e *Engine) Removed() <-chan struct{} {
	if e.fleet == nil {
		return nil
	}
	return e.fleet.removed
}

// lost marks the node as removed, once.
func (f *fleet) lost(why string) {
	f.lostOnce.Do(func() {
		f.e.log.Warn().Str("why", why).Msg("this node left the cluster; it stops its actors and joins again as a new member")
		close(f.removed)
	})
}

// topology takes a new member list (from protoactor's event stream).
func (f *fleet) topology(members []*cluster.Member) {
	f.mu.Lock()
	f.members = members
	f.ring.UpdateMembers(members)
	present := map[string]bool{}
	for _, m := range members {
		present[m.Address()] = true
	}
	for address, ch := range f.leave {
		if !present[address] {
			close(ch)
			delete(f.leave, address)
		}
	}
	f.mu.Unlock()
	for _, ch := range []chan struct{}{f.bindsChanged, f.workChanged} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// owner returns the address of the member that owns identity of kind: the
// same rendezvous placement protoactor's identity lookup uses, so a key's
// grain and its actor land on the same node. Binds and endpoints are
// placed the same way over the same members (the ones that run keys), by
// identities that name their kind ("bind/sim/0"): key ids cannot hold a
// slash, so no identity of theirs collides with a key's.
func (f *fleet) owner(kind, identity string) string {
	if kind != kindKey {
		identity = kind + "/" + identity
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ring.GetByClusterIdentity(cluster.NewClusterIdentity(identity, kindKey))
}

// mine reports whether this node owns identity of kind.
func (f *fleet) mine(kind, identity string) bool { return f.owner(kind, identity) == f.address }

// watch keeps this node's binds right until the engine stops: every third
// of a lease period, and after every membership change, it renews its
// binds' leases and starts or stops binds, and reads the binds the other
// nodes gossip. It also notices when membership removed this node. The
// slower work (keys, endpoints, inbound parts) runs in its own loop
// (watchWork), so a slow store never delays a renewal.
func (f *fleet) watch(stop context.Context) {
	f.e.background(f.watchWork)
	t := time.NewTicker(f.cfg.LeaseTTL / 3)
	defer t.Stop()
	removed := f.cfg.Membership.Removed()
	for {
		select {
		case <-stop.Done():
			f.releaseBinds()
			return
		case <-removed:
			f.lost("the other members declared this node dead")
			removed = nil
		case <-f.bindsChanged:
		case <-t.C:
		}
		if removed == nil {
			// The engine stops now, its binds last: until they have,
			// their leases stay ours, or another node binds meanwhile.
			f.holdBinds(stop)
			continue
		}
		f.reconcileBinds(stop)
		f.publishBinds()
		f.refreshBinds()
	}
}

// holdBinds renews the leases of the binds this node runs or drains, and
// starts none: a bind goes on while its lease is held and is stopped, as
// in any round, once it is lost (another node may bind then); a drained
// bind gives its lease up.
func (f *fleet) holdBinds(ctx context.Context) {
	for name, b := range f.binds {
		f.renewRunning(ctx, name, b)
	}
	for name, d := range f.draining {
		f.tendDraining(ctx, name, d, false)
	}
}

// watchWork hands over or starts keys, takes over endpoints and adopts
// inbound parts after every membership change, and every few seconds for
// what a change may have missed.
func (f *fleet) watchWork(stop context.Context) {
	t := time.NewTicker(reconcileKeysEvery)
	defer t.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-f.workChanged:
		case <-t.C:
		}
		f.reconcileKeys(stop)
		f.reconcileEndpoints(stop)
		f.reconcileInbound(stop)
	}
}

// reconcileKeysEvery is how often a node looks for keys it owns without a
// membership change.
const reconcileKeysEvery = 3 * time.Second

// releaseBinds gives up the leases of the binds this node runs, as it
// stops: the binds themselves stop with the engine.
func (f *fleet) releaseBinds() {
	if !f.e.unbound.Load() {
		return // a bind may still be connected: its lease runs out
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for name, b := range f.binds {
		_ = f.leases.Release(ctx, b.lease)
		delete(f.binds, name)
	}
	for name, d := range f.draining {
		_ = f.leases.Release(ctx, d.lease)
		delete(f.draining, name)
	}
}

// reconcileKeys hands over the keys this node no longer owns (their actors
// drain and stop, giving their leases up) and starts the keys it owns that
// have pending messages (left by a node that went away).
func (f *fleet) reconcileKeys(ctx context.Context) {
	e := f.e
	e.registry.eachKey(func(id string, pid *actor.PID) {
		if !f.mine(kindKey, id) {
			e.system.Root.Send(pid, &handOver{})
		}
	})
	keys, err := e.store.PendingKeys(ctx)
	if err != nil {
		e.log.Error().Err(err).Msg("listing keys with pending messages failed; will retry")
		return
	}
	for _, id := range keys {
		if _, ok := e.cfg.Keys.Key(id); !ok || !f.mine(kindKey, id) {
			continue
		}
		e.registry.wake(id)
	}
}

// keyGrain is the kind every member registers for keys, so that each
// advertises that it runs them and placement (owner) counts it. Requests
// reach a key's owner through the owner's node actor, not through grain
// activation (see keyOwner).
type keyGrain struct{}

func (keyGrain) Receive(actor.Context) {}

// keyOwner returns the address of the node that owns a key ("" if no
// member can take it now) and whether that is another node. It is the
// placement protoactor's identity lookup makes, computed here from the
// live members: asking the lookup itself waits for its activation
// request, which, to a member that just died, takes its 5 s timeout.
func (f *fleet) keyOwner(id string) (string, bool) {
	owner := f.owner(kindKey, id)
	return owner, owner != "" && owner != f.address
}

// errOwnerStopping answers requests a stopping owner did not take.
var errOwnerStopping = switchboard.Errorf(switchboard.EUNAVAILABLE, "The node that owns this key is shutting down; try again.")

// forwardSubmit sends a request for a key owned by another node there and
// waits for its answer (once: a submit that timed out may have been
// accepted, and is not repeated). It gives up as soon as that node leaves
// the membership. notTaken says the owner took none of the requests (it
// is stopping, or the key is moving).
func (f *fleet) forwardSubmit(ctx context.Context, owner string, key *switchboard.Key, reqs []switchboard.SubmitRequest, timeout time.Duration) (results []switchboard.SubmitResult, notTaken bool) {
	// The owner may wait up to timeout for the key's actor, as a request
	// of its own would; the write that follows is never cut short, so its
	// answer is waited for as long again: given up sooner, a message
	// accepted there would be answered 503 here.
	fut := f.e.system.Root.RequestFuture(nodePID(owner), submitToWire(key.ID, reqs, timeout), 2*timeout)
	res, err := f.await(fut, owner)
	reply, ok := res.(*wire.SubmitReply)
	if err != nil || !ok || len(reply.Results) != len(reqs) {
		f.e.log.Warn().Err(err).Str("key", key.ID).Str("owner", owner).Msg("forwarding a submit to the key's owner failed")
		return failAll(len(reqs), switchboard.Errorf(switchboard.EUNAVAILABLE, "The node that owns this key did not answer; try again.")), false
	}
	return resultsFromWire(reply), reply.NotTaken
}

// awaitNewOwner waits until placement names another node than owner for
// key id (owner left, or the membership changed), for two lease periods
// at most, or until ctx ends; it reports whether it does.
func (f *fleet) awaitNewOwner(ctx context.Context, id, owner string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*f.cfg.LeaseTTL)
	defer cancel()
	t := time.NewTicker(ownerPoll)
	defer t.Stop()
	for {
		if now, _ := f.keyOwner(id); now != owner {
			return true
		}
		select {
		case <-f.gone(owner):
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
}

// ownerPoll is how often awaitNewOwner looks at placement again.
const ownerPoll = 10 * time.Millisecond

var errMemberLeft = errors.New("the node left the cluster")

// await waits for a request to another node, giving up when that node
// leaves the membership.
func (f *fleet) await(fut *actor.Future, address string) (any, error) {
	return f.awaitHolding(context.Background(), fut, address, time.Time{})
}

// awaitHolding is await that, when the node leaves, still waits for its
// answer until hold (or until ctx ends): a node that left the membership
// (cut off, paused) may still be doing what it was asked until then.
func (f *fleet) awaitHolding(ctx context.Context, fut *actor.Future, address string, hold time.Time) (any, error) {
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := fut.Result()
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-f.gone(address):
		t := time.NewTimer(max(time.Until(hold), 0))
		defer t.Stop()
		select { // the answer may have come just as the node left
		case r := <-done:
			return r.res, r.err
		case <-t.C:
		case <-ctx.Done():
		}
		select {
		case r := <-done:
			return r.res, r.err
		default:
			return nil, errMemberLeft
		}
	}
}

// gone returns a channel closed once address is not among the members.
func (f *fleet) gone(address string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.leave[address]
	if !ok {
		ch = make(chan struct{})
		present := false
		for _, m := range f.members {
			if m.Address() == address {
				present = true
				break
			}
		}
		if !present {
			close(ch)
			return ch
		}
		f.leave[address] = ch
	}
	return ch
}

// submitForwarded runs a submit another node forwarded, on this node.
func (e *Engine) submitForwarded(ctx context.Context, b *wire.SubmitBatch) *wire.SubmitReply {
	reqs := requestsFromWire(b)
	key, ok := e.cfg.Keys.Key(b.KeyId)
	var results []switchboard.SubmitResult
	notTaken := false
	switch {
	case e.stopping.Load():
		results, notTaken = failAll(len(reqs), errOwnerStopping), true
	case !ok:
		results = failAll(len(reqs), switchboard.Errorf(switchboard.EUNAVAILABLE, "This node does not know key %s yet.", b.KeyId))
	default:
		// The budget bounds the wait for the key's actor; the write that
		// follows is never cut short (submitLocal).
		ctx, cancel := context.WithTimeout(ctx, time.Duration(b.BudgetMs)*time.Millisecond)
		defer cancel()
		results = e.submitLocal(ctx, key, reqs)
		notTaken = allMoving(results)
	}
	reply := resultsToWire(results)
	reply.NotTaken = notTaken
	return reply
}

// FleetStatus is an operator's read-only view of the cluster from one node.
type FleetStatus struct {
	Self    string        `json:"self"`    // this node's member id
	Address string        `json:"address"` // where the others reach its actors
	Members []FleetMember `json:"members"`
	Binds   []FleetBind   `json:"binds"`
	// Keys are the keys whose actors run on this node.
	Keys []string `json:"keys"`
}

// FleetMember is a member as this node sees it.
type FleetMember struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// FleetBind is a carrier's bind and the node that runs it.
type FleetBind struct {
	Carrier string `json:"carrier"`
	Index   int    `json:"index"`
	Node    string `json:"node"` // the address of the node that runs it
	Bound   bool   `json:"bound"`
}

// Fleet returns this node's view of the cluster; false on a single node.
func (e *Engine) Fleet() (FleetStatus, bool) {
	f := e.fleet
	if f == nil {
		return FleetStatus{}, false
	}
	st := FleetStatus{Self: f.holder, Address: f.address}
	f.mu.Lock()
	for _, m := range f.members {
		st.Members = append(st.Members, FleetMember{ID: m.Id, Address: m.Address()})
	}
	f.mu.Unlock()
	for _, b := range f.bindStates() {
		st.Binds = append(st.Binds, FleetBind{Carrier: b.Carrier, Index: int(b.Index), Node: b.Address, Bound: b.Bound})
	}
	e.registry.eachKey(func(id string, _ *actor.PID) { st.Keys = append(st.Keys, id) })
	sort.Strings(st.Keys)
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Address < st.Members[j].Address })
	sort.Slice(st.Binds, func(i, j int) bool {
		a, b := st.Binds[i], st.Binds[j]
		return a.Carrier < b.Carrier || a.Carrier == b.Carrier && a.Index < b.Index
	})
	return st, true
}

// reconcileInbound adopts the stored parts of long inbound messages whose
// numbers belong to keys this node owns (left by a node that went away,
// or stored before a restart), and lets go of those of numbers another
// node owns now: that node adopts them, and completes the message with
// the parts that reach it, so this one must not give it up as partial.
func (f *fleet) reconcileInbound(ctx context.Context) {
	in := f.e.inbound
	mine := func(p switchboard.InboundPart) bool {
		k, ok := f.e.cfg.Keys.ByNumber(p.To)
		return ok && f.mine(kindKey, k.ID)
	}
	// Kept: the numbers of this node's keys, and those no key owns any
	// more, whose parts expire here, which removes them from the store.
	keep := func(p switchboard.InboundPart) bool {
		k, ok := f.e.cfg.Keys.ByNumber(p.To)
		return !ok || f.mine(kindKey, k.ID)
	}
	if n := in.parts.Release(keep); n > 0 {
		f.e.log.Info().Int("messages", n).Msg("long inbound messages of keys another node owns now left to it")
	}
	// Tried once here, in the message's lane (adopt); the retries of a
	// store that fails go on in the background, not to hold up the loop.
	store := func(a concat.Assembled) error {
		in.storeOrRetry(a)
		return nil
	}
	if err := in.adopt(ctx, mine, store); err != nil {
		f.e.log.Error().Err(err).Msg("listing stored inbound parts failed; will retry")
	}
}
