package gossip

import (
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// These tests run several providers in one process on 127.0.0.1 with real
// UDP and TCP, each handing its topologies to a recorder instead of a
// protoactor cluster (whose own code races under -race).

const deadline = 20 * time.Second

// recorder is a topology sink that keeps the last live set.
type recorder struct {
	mu    sync.Mutex
	last  cluster.Members
	calls int
}

func (r *recorder) sink(m cluster.Members) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last, r.calls = m, r.calls+1
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(r.last))
	for i, m := range r.last {
		ids[i] = m.Id
	}
	return ids
}

func (r *recorder) member(id string) *cluster.Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.last {
		if m.Id == id {
			return m
		}
	}
	return nil
}

type node struct {
	id  string
	p   *Provider
	rec *recorder
	net *cutTransport
}

func testLog() zerolog.Logger {
	if os.Getenv("SWITCHBOARD_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
}

// start runs a provider as member id (client when asked), its actor system
// pretended to be at 127.0.0.1:port.
func start(t *testing.T, cfg Config, id string, port int, client bool) *node {
	t.Helper()
	if cfg.Cluster == "" {
		cfg.Cluster = "test"
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	cfg.Log = testLog().With().Str("node", id).Logger()
	n := &node{id: id, p: New(cfg), rec: &recorder{}}
	n.p.wrap = func(inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		n.net = newCutTransport(inner)
		return n.net
	}
	var kinds []string
	if !client {
		kinds = []string{"key", "bind"}
	}
	if err := n.p.start(identity{id: id, host: "127.0.0.1", port: port, kinds: kinds, client: client}, n.rec.sink); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	t.Cleanup(func() { _ = n.p.Shutdown(false) })
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %s: still not %s", deadline, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func seesExactly(n *node, ids ...string) func() bool {
	want := slices.Sorted(slices.Values(ids))
	return func() bool { return slices.Equal(n.rec.ids(), want) }
}

// waitView waits until n's topology is exactly ids.
func waitView(t *testing.T, n *node, ids ...string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !seesExactly(n, ids...)() {
		if time.Now().After(end) {
			t.Fatalf("after %s %s sees %v, want %v; its members: %+v", deadline, n.id, n.rec.ids(), ids, n.p.Members())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateOf(n *node, id string) State {
	for _, m := range n.p.Members() {
		if m.ID == id {
			return m.State
		}
	}
	return ""
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// freeAddr finds a port free for both TCP and UDP on 127.0.0.1.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port for TCP and UDP")
	return ""
}

func TestJoinRetriesUntilASeedAnswersAndCarriesMetadata(t *testing.T) {
	t.Parallel()
	later := freeAddr(t)
	a := start(t, Config{Seeds: []string{later}}, "a", 9001, false)
	// a's seed is not up: it runs alone meanwhile.
	waitView(t, a, "a")

	b := start(t, Config{Bind: later}, "b", 9002, false) // no seeds: only a's retries can join them
	if b.p.Addr() != later {
		t.Fatalf("b bound %q, want %q", b.p.Addr(), later)
	}
	c := start(t, Config{Seeds: []string{b.p.Addr()}}, "c", 9003, false)
	for _, n := range []*node{a, b, c} {
		waitView(t, n, "a", "b", "c")
	}

	if _, port, _ := splitHostPort(a.p.Addr()); port == 0 {
		t.Fatalf("a reports %q: want the port chosen for port 0", a.p.Addr())
	}
	m := a.rec.member("c")
	if m.Host != "127.0.0.1" || m.Port != 9003 || !slices.Equal(m.Kinds, []string{"bind", "key"}) {
		t.Fatalf("c as a sees it: %+v", m)
	}
	members := b.p.Members()
	if len(members) != 3 {
		t.Fatalf("b's members: %+v", members)
	}
	for _, m := range members {
		if m.State != StateAlive || m.Self != (m.ID == "b") || m.Gossip == "" || m.Client {
			t.Fatalf("b's view of %s: %+v", m.ID, m)
		}
	}
}

func TestCrashedMemberIsDropped(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9001, false)
	b := start(t, Config{Seeds: []string{a.p.Addr()}}, "b", 9002, false)
	c := start(t, Config{Seeds: []string{a.p.Addr()}}, "c", 9003, false)
	waitView(t, a, "a", "b", "c")
	waitView(t, b, "a", "b", "c")

	_ = c.p.Shutdown(false) // no goodbye: the others must notice
	waitView(t, a, "a", "b")
	waitView(t, b, "a", "b")
	if s := stateOf(a, "c"); s != StateDead {
		t.Fatalf("c's state at a: %q, want dead", s)
	}
	if isClosed(a.p.Removed()) || isClosed(b.p.Removed()) {
		t.Fatal("a survivor thinks it was removed")
	}
}

func TestGracefulLeave(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9001, false)
	b := start(t, Config{Seeds: []string{a.p.Addr()}}, "b", 9002, false)
	waitView(t, a, "a", "b")

	if err := b.p.Shutdown(true); err != nil {
		t.Fatal(err)
	}
	waitView(t, a, "a")
	waitFor(t, "b listed as left", func() bool { return stateOf(a, "b") == StateLeft })
}

func TestOtherClusterIsRefused(t *testing.T) {
	t.Parallel()
	a := start(t, Config{Cluster: "alpha"}, "a", 9001, false)
	b := start(t, Config{Cluster: "beta"}, "b", 9002, false)
	start(t, Config{Cluster: "alpha", Seeds: []string{a.p.Addr()}}, "c", 9003, false)

	if n, err := b.p.ml.Join([]string{a.p.Addr()}); n != 0 || err == nil {
		t.Fatalf("beta joined alpha: %d answered, err %v", n, err)
	}
	waitView(t, a, "a", "c")
	if s := stateOf(a, "b"); s != "" {
		t.Fatalf("a lists beta's node as %q", s)
	}
	if !slices.Equal(b.rec.ids(), []string{"b"}) {
		t.Fatalf("beta's node sees %v", b.rec.ids())
	}

	// Past the label (a shared label, or none), the metadata still decides.
	foreign, _ := meta{Cluster: "beta"}.encode(memberlist.MetaMaxSize)
	if err := (delegate{a.p}).NotifyAlive(&memberlist.Node{Name: "x", Meta: foreign}); err == nil {
		t.Fatal("alpha accepted a node whose metadata says beta")
	}
	if err := (delegate{a.p}).NotifyMerge([]*memberlist.Node{{Name: "y"}}); err == nil {
		t.Fatal("alpha merged with a node without metadata")
	}
}

func TestClientIsNotPlaced(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9001, false)
	k := start(t, Config{Seeds: []string{a.p.Addr()}}, "k", 9009, true)
	waitFor(t, "a lists the client", func() bool { return stateOf(a, "k") == StateAlive })
	waitView(t, k, "a")
	if got := a.rec.ids(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("a's topology %v holds the client", got)
	}
	for _, m := range a.p.Members() {
		if m.ID == "k" && !m.Client {
			t.Fatalf("k not listed as a client: %+v", m)
		}
	}
}

// A member that stops answering (a pause: it judges nobody meanwhile) is
// dropped; when it answers again it learns it was removed, stays out of the
// others' topology, and a replacement under a new id joins.
func TestPausedMemberLearnsItWasRemoved(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9001, false)
	b := start(t, Config{Seeds: []string{a.p.Addr()}}, "b", 9002, false)
	// c probes nobody, as a paused process would not; push/pull often, as
	// any probe of a woken one would hear soon.
	c := start(t, Config{Seeds: []string{a.p.Addr()}, ProbeInterval: time.Hour, PushPullInterval: 300 * time.Millisecond}, "c", 9003, false)
	for _, n := range []*node{a, b, c} {
		waitView(t, n, "a", "b", "c")
	}

	c.net.cut.Store(true)
	waitView(t, a, "a", "b")
	waitView(t, b, "a", "b")
	if isClosed(c.p.Removed()) {
		t.Fatal("c knew of its removal while cut off")
	}

	c.net.cut.Store(false)
	waitFor(t, "c learns it was removed", func() bool { return isClosed(c.p.Removed()) })
	waitFor(t, "a lists c as removed", func() bool { return stateOf(a, "c") == StateRemoved })
	if !seesExactly(a, "a", "b")() || !seesExactly(b, "a", "b")() {
		t.Fatalf("c is back in a topology: a %v, b %v", a.rec.ids(), b.rec.ids())
	}
	if stateOf(c, "c") != StateRemoved {
		t.Fatalf("c's own row: %q", stateOf(c, "c"))
	}

	rejoin(t, c, a, b)
}

// A member cut off long enough that both sides declare the other dead: after
// the cut heals, the side with fewer members (c) is the one that leaves.
func TestHealedPartitionMinorityRejoins(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9001, false)
	b := start(t, Config{Seeds: []string{a.p.Addr()}}, "b", 9002, false)
	c := start(t, Config{Seeds: []string{a.p.Addr(), b.p.Addr()}}, "c", 9003, false)
	for _, n := range []*node{a, b, c} {
		waitView(t, n, "a", "b", "c")
	}

	c.net.cut.Store(true)
	waitView(t, a, "a", "b")
	waitView(t, b, "a", "b")
	waitView(t, c, "c")

	c.net.cut.Store(false) // c's seeds are missing from its live set: it joins them again
	waitFor(t, "c learns it was removed", func() bool { return isClosed(c.p.Removed()) })
	waitFor(t, "a lists c as removed", func() bool { return stateOf(a, "c") == StateRemoved })
	waitFor(t, "b lists c as removed", func() bool { return stateOf(b, "c") == StateRemoved })

	rejoin(t, c, a, b)
}

// rejoin replaces removed member old by a new id and checks that the fleet
// ends with one view and that the survivors were never told to leave.
func rejoin(t *testing.T, old *node, survivors ...*node) {
	t.Helper()
	if err := old.p.Shutdown(true); err != nil {
		t.Fatal(err)
	}
	var seeds []string
	ids := []string{old.id + "2"}
	for _, s := range survivors {
		seeds = append(seeds, s.p.Addr())
		ids = append(ids, s.id)
	}
	fresh := start(t, Config{Seeds: seeds}, old.id+"2", 9004, false)
	for _, n := range append(survivors, fresh) {
		waitView(t, n, ids...)
		if isClosed(n.p.Removed()) {
			t.Fatalf("%s was told to leave", n.id)
		}
	}
}

func TestMustLeave(t *testing.T) {
	for _, tc := range []struct {
		name             string
		fromClient, self bool
		mutual           bool
		live, senderLive int
		want             bool
	}{
		{name: "declared dead, one-sided", live: 3, senderLive: 2, want: true},
		{name: "mutual, this side smaller", mutual: true, live: 1, senderLive: 2, want: true},
		{name: "mutual, this side larger", mutual: true, live: 2, senderLive: 1, want: false},
		{name: "mutual, a tie: both leave", mutual: true, live: 2, senderLive: 2, want: true},
		{name: "a client cannot remove a member", fromClient: true, live: 1, senderLive: 5, want: false},
		{name: "a member can remove a client", self: true, live: 1, senderLive: 1, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := notice{From: "x", Client: tc.fromClient, Live: tc.senderLive, Dead: []string{"me"}}
			if got := mustLeave(n, tc.self, tc.mutual, tc.live); got != tc.want {
				t.Fatalf("mustLeave = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPausedLongerThanRemovalTTL(t *testing.T) {
	now := time.Now()
	ttl := time.Hour
	if pausedTooLong(now.Add(-loopTick(ttl)), now, ttl) {
		t.Fatal("one tick counted as a pause")
	}
	if !pausedTooLong(now.Add(-ttl-time.Second), now, ttl) {
		t.Fatal("a pause past RemovalTTL went unnoticed")
	}
	if loopTick(time.Second) > time.Second/4 || loopTick(time.Hour) != time.Second {
		t.Fatalf("loop ticks: %s, %s", loopTick(time.Second), loopTick(time.Hour))
	}
}

func TestNoticeRoundTrip(t *testing.T) {
	n := notice{From: "a", Live: 2, Dead: []string{"c", "d"}}
	got, ok := decodeNotice(n.encode())
	if !ok || got.From != "a" || got.Live != 2 || !slices.Equal(got.Dead, n.Dead) {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	for _, b := range [][]byte{nil, {noticeTag}, []byte("Rnot json"), []byte(`X{"f":"a"}`), []byte(`R{"n":1}`)} {
		if _, ok := decodeNotice(b); ok {
			t.Fatalf("decoded %q", b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Cluster: "c"}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{
		Cluster:       strings.Repeat("x", 300),
		Bind:          "localhost:7946",
		Advertise:     "host-name:1",
		Seeds:         []string{"10.0.0.1:7946", "no-port"},
		ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second,
	}.Validate()
	for _, want := range []string{"cluster name", "bind", "advertise", "seeds[1]", "probe timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want a problem with %s in %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "seeds[0]") {
		t.Fatalf("a good seed refused: %v", err)
	}
}

func TestStartTwiceAndBusyPort(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9001, false)
	if err := a.p.start(identity{id: "a"}, a.rec.sink); err == nil {
		t.Fatal("started twice")
	}
	p := New(Config{Cluster: "test", Bind: a.p.Addr(), Log: zerolog.Nop()})
	err := p.start(identity{id: "z"}, (&recorder{}).sink)
	if err == nil || !strings.Contains(err.Error(), a.p.Addr()) {
		t.Fatalf("a busy port: %v", err)
	}
	if err := p.Shutdown(true); err != nil {
		t.Fatalf("shutting down what never started: %v", err)
	}
}

// cutTransport drops every packet and stream, both ways, while cut.
type cutTransport struct {
	memberlist.NodeAwareTransport
	cut     atomic.Bool
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
}

var errCut = errors.New("link cut by the test")

func newCutTransport(inner memberlist.NodeAwareTransport) *cutTransport {
	c := &cutTransport{
		NodeAwareTransport: inner,
		packets:            make(chan *memberlist.Packet),
		streams:            make(chan net.Conn),
		done:               make(chan struct{}),
	}
	go func() {
		for {
			select {
			case p := <-inner.PacketCh():
				if c.cut.Load() {
					continue
				}
				select {
				case c.packets <- p:
				case <-c.done:
					return
				}
			case <-c.done:
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case s := <-inner.StreamCh():
				if c.cut.Load() {
					s.Close()
					continue
				}
				select {
				case c.streams <- s:
				case <-c.done:
					s.Close()
					return
				}
			case <-c.done:
				return
			}
		}
	}()
	return c
}

func (c *cutTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *cutTransport) StreamCh() <-chan net.Conn           { return c.streams }

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.NodeAwareTransport.WriteTo(b, addr)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.NodeAwareTransport.WriteToAddress(b, a)
}

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.NodeAwareTransport.DialAddressTimeout(a, timeout)
}

// Shutdown stops the forwarders and drains the inner transport until it has
// stopped (its listeners block on handing over a packet).
func (c *cutTransport) Shutdown() error {
	c.once.Do(func() { close(c.done) })
	stopped := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-c.NodeAwareTransport.PacketCh():
			case s := <-c.NodeAwareTransport.StreamCh():
				s.Close()
			case <-stopped:
				return
			}
		}
	}()
	err := c.NodeAwareTransport.Shutdown()
	close(stopped)
	<-drained
	return err
}

// A member held until ready gossips with the others at once but is in no
// topology, its own included, until Ready: nothing is placed on a node
// that is still starting. Then every topology holds it.
func TestAMemberHeldUntilReadyIsPlacedOnlyThen(t *testing.T) {
	t.Parallel()
	a := start(t, Config{}, "a", 9101, false)
	b := start(t, Config{Seeds: []string{a.p.Addr()}, HoldUntilReady: true}, "b", 9102, false)
	waitFor(t, "a seeing b join", func() bool { return stateOf(a, "b") == StateJoining })
	waitFor(t, "b seeing a", func() bool { return stateOf(b, "a") == StateAlive })
	waitView(t, b, "a")
	if !seesExactly(a, "a")() {
		t.Fatalf("a placed b before it was ready: %v", a.rec.ids())
	}
	if err := b.p.Ready(); err != nil {
		t.Fatal(err)
	}
	waitView(t, b, "a", "b")
	waitView(t, a, "a", "b")
	if st := stateOf(a, "b"); st != StateAlive {
		t.Fatalf("b's state at a after Ready: %s", st)
	}
}
