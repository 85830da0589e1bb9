package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The partition test cuts one node off from the others with Linux network
// namespaces: the node runs in a namespace of its own with two veth links
// to the host, one for its storage, cache, carrier and API, one for the
// cluster's own traffic (gossip and the actors' messages). Setting the
// cluster link down partitions the node from the others while it still
// reaches Cassandra and Redis: the hard case, where both sides can renew
// leases and only the leases keep them from both committing for a key.

// netns is a network namespace with its two links to the host.
type netns struct {
	name                     string
	hostService, nsService   string // the service link's addresses
	hostCluster, nsCluster   string // the cluster link's addresses
	serviceLink, clusterLink string // the host side's interface names
	forwarders               []net.Listener
	nsForwarder              *exec.Cmd
}

// newNetns makes the namespace; it is removed when the test ends. Making
// one needs root (CAP_NET_ADMIN): without it the test skips, except in CI.
func newNetns(t *testing.T) *netns {
	t.Helper()
	tag := randomTag()[:6]
	b := int(tag[0])%200 + 20 // a /24 of 10.0.0.0/8 per run
	n := &netns{
		name:        "sbp" + tag,
		hostService: fmt.Sprintf("10.%d.1.1", b), nsService: fmt.Sprintf("10.%d.1.2", b),
		hostCluster: fmt.Sprintf("10.%d.2.1", b), nsCluster: fmt.Sprintf("10.%d.2.2", b),
		serviceLink: "sbs" + tag, clusterLink: "sbc" + tag,
	}
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.serviceLink, "type", "veth", "peer", "name", n.serviceLink + "n"},
		{"link", "add", n.clusterLink, "type", "veth", "peer", "name", n.clusterLink + "n"},
		{"link", "set", n.serviceLink + "n", "netns", n.name},
		{"link", "set", n.clusterLink + "n", "netns", n.name},
		{"addr", "add", n.hostService + "/30", "dev", n.serviceLink},
		{"addr", "add", n.hostCluster + "/30", "dev", n.clusterLink},
		{"link", "set", n.serviceLink, "up"},
		{"link", "set", n.clusterLink, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
		{"-n", n.name, "addr", "add", n.nsService + "/30", "dev", n.serviceLink + "n"},
		{"-n", n.name, "addr", "add", n.nsCluster + "/30", "dev", n.clusterLink + "n"},
		{"-n", n.name, "link", "set", n.serviceLink + "n", "up"},
		{"-n", n.name, "link", "set", n.clusterLink + "n", "up"},
	}
	for i, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			if i == 0 && os.Getenv("CI") == "" {
				t.Skipf("cannot make a network namespace (ip %s: %v: %s)", strings.Join(args, " "), err, out)
			}
			n.remove()
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(n.remove)
	return n
}

func (n *netns) remove() {
	for _, ln := range n.forwarders {
		ln.Close()
	}
	if n.nsForwarder != nil && n.nsForwarder.Process != nil {
		_ = n.nsForwarder.Process.Kill()
		_ = n.nsForwarder.Wait()
	}
	// Deleting the namespace deletes the links' ends in it, and so the
	// veth pairs.
	_ = exec.Command("ip", "netns", "del", n.name).Run()
}

// cut and heal set the cluster link down and up.
func (n *netns) cut(t *testing.T)  { n.link(t, "down") }
func (n *netns) heal(t *testing.T) { n.link(t, "up") }

func (n *netns) link(t *testing.T, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "set", n.clusterLink, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v: %s", n.clusterLink, state, err, out)
	}
}

// forward listens on the host's end of the service link and relays to
// target on the host's loopback, for the node in the namespace; it returns
// the address to give the node.
func (n *netns) forward(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.hostService, "0"))
	if err != nil {
		t.Fatal(err)
	}
	n.forwarders = append(n.forwarders, ln)
	go relay(ln, target)
	return ln.Addr().String()
}

// relay accepts connections on ln and copies each both ways to target.
func relay(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer d.Close()
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = io.Copy(d, c); d.(*net.TCPConn).CloseWrite() })
			_, _ = io.Copy(c, d)
			wg.Wait()
		}()
	}
}

// The Cassandra driver connects to the addresses the server gives for
// itself (127.0.0.1), so inside the namespace that address must lead to
// the server too: a small relay process runs there, built from this
// source.
const relaySource = `package main

import (
	"io"
	"net"
	"os"
	"strings"
	"sync"
)

func main() {
	for _, pair := range os.Args[1:] {
		from, to, _ := strings.Cut(pair, "=")
		ln, err := net.Listen("tcp", from)
		if err != nil {
			panic(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					d, err := net.Dial("tcp", to)
					if err != nil {
						return
					}
					defer d.Close()
					var wg sync.WaitGroup
					wg.Add(1)
					go func() { defer wg.Done(); io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
					io.Copy(c, d)
					wg.Wait()
				}()
			}
		}()
	}
	select {}
}
`

// relayInside runs the relay process in the namespace: each pair is
// listen=target.
func (n *netns) relayInside(t *testing.T, dir string, pairs ...string) {
	t.Helper()
	src := filepath.Join(dir, "relay", "main.go")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(relaySource), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "relay", "relay")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("build the relay: %v\n%s", err, out)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, bin}, pairs...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.nsForwarder = cmd
}

// One node cut off from the others, while it still reaches the storage:
// both sides keep running, each commits only for the keys it holds the
// lease of (the other side answers 503 for them), and after the link is
// back the cut-off node leaves and rejoins as a new member: one view,
// nothing lost, no key committed by two owners.
func TestFleetSurvivesPartition(t *testing.T) {
	ns := newNetns(t)
	r := newPartitionedRig(t, ns)
	stopLoad := r.startLoad()
	time.Sleep(2 * time.Second)
	ns.cut(t)
	time.Sleep(8 * time.Second)
	ns.heal(t)
	r.waitLog(r.nodes[2], "rejoined the cluster as a new member", 60*time.Second)
	time.Sleep(time.Second)
	accepted, codes := stopLoad()
	for _, nd := range r.nodes {
		r.untilEveryKeyAccepts(nd, 60*time.Second)
	}
	statuses := r.waitFinal(accepted, 120*time.Second)
	t.Logf("accepted %d (answers %v), final %v, %d duplicates at the carrier", len(accepted), codes, statuses, r.duplicates())
	r.checkFences(accepted)
}

// newPartitionedRig runs three nodes: two on the host, one in ns.
func newPartitionedRig(t *testing.T, ns *netns) *fleetRig {
	cql, redis := serversForCluster(t)
	_, cqlPort, _ := net.SplitHostPort(cql)
	nsRedis := ns.forward(t, redis)
	nsCQL := ns.forward(t, cql)
	return newFleetRigWith(t, 3, func(r *fleetRig, i int) nodeAddrs {
		if i < 2 {
			return nodeAddrs{gossip: freeOn(t, ns.hostCluster), remote: freeOn(t, ns.hostCluster), http: "127.0.0.1:0",
				cql: cql, redis: redis, smsc: r.sim.Addr()}
		}
		ns.relayInside(t, r.dir, "127.0.0.1:"+cqlPort+"="+nsCQL)
		return nodeAddrs{gossip: net.JoinHostPort(ns.nsCluster, "17946"), remote: net.JoinHostPort(ns.nsCluster, "17947"),
			http: net.JoinHostPort(ns.nsService, "18080"), cql: cql, redis: nsRedis, smsc: ns.forward(t, r.sim.Addr()),
			wrap: []string{"ip", "netns", "exec", ns.name}}
	})
}
