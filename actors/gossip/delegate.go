package gossip

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. Some run under memberlist's
// node lock, so each only copies what it needs under the provider's lock
// and wakes the loop; nothing here calls back into memberlist.
type delegate struct{ p *Provider }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
	_ memberlist.PingDelegate  = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	d.p.mu.Lock()
	m := d.p.meta
	d.p.mu.Unlock()
	b, err := m.encode(limit)
	if err != nil { // checked at start; kinds do not change after
		d.p.log.Error().Err(err).Msg("gossip metadata")
		return nil
	}
	return b
}

func (d delegate) NotifyMsg(b []byte) { d.p.deliver(b) }

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.p.queue.GetBroadcasts(overhead, limit)
}

func (d delegate) LocalState(bool) []byte {
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.noticeLocked(p.liveLocked(), 0).encode()
}

func (d delegate) MergeRemoteState(b []byte, _ bool) { d.p.deliver(b) }

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.p.observe(n, false) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.p.observe(n, false) }
func (d delegate) NotifyLeave(n *memberlist.Node)  { d.p.observe(n, true) }

// NotifyAlive refuses a node of another cluster that got past the label.
func (d delegate) NotifyAlive(n *memberlist.Node) error { return d.p.sameCluster(n) }

// NotifyMerge refuses to merge with a cluster of another name.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.p.sameCluster(n); err != nil {
			return err
		}
	}
	return nil
}

func (d delegate) AckPayload() []byte {
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	return d.p.ack
}

func (d delegate) NotifyPingComplete(_ *memberlist.Node, _ time.Duration, payload []byte) {
	d.p.deliver(payload)
}

func (p *Provider) sameCluster(n *memberlist.Node) error {
	m, err := decodeMeta(n.Meta)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	p.mu.Lock()
	want := p.meta.Cluster
	p.mu.Unlock()
	if m.Cluster != want {
		return fmt.Errorf("node %s belongs to cluster %q, not %q", n.Name, m.Cluster, want)
	}
	return nil
}

// observe records a join, an update or a death. A graceful leave is held
// dead at once; any other death is first confirmed by the loop (confirm).
func (p *Provider) observe(n *memberlist.Node, gone bool) {
	m, err := decodeMeta(n.Meta)
	if err != nil {
		p.log.Warn().Err(err).Str("node", n.Name).Msg("gossip: member without valid metadata")
	}
	now := time.Now()
	p.mu.Lock()
	pe, known := p.peers[n.Name]
	if !known {
		pe = &peer{}
		p.peers[n.Name] = pe
	}
	changed := !known || pe.gone != gone || pe.meta.Leaving != m.Leaving || pe.meta.Joining != m.Joining
	pe.addr, pe.port, pe.gone = slices.Clone(n.Addr), n.Port, gone
	if err == nil {
		pe.meta = m
	}
	if changed {
		pe.since = now
	}
	if !gone {
		delete(p.checkedAt, n.Name) // a later death is probed at once
	}
	var msg []byte
	if gone && m.Leaving {
		msg = p.confirmLocked(n.Name, now) // it said goodbye: nothing to probe
	}
	addr := pe.gossip()
	p.mu.Unlock()
	p.announce(n.Name, msg)
	if !known {
		p.log.Info().Str("member", n.Name).Str("gossip", addr).Msg("gossip: member seen")
	}
	p.signal()
}

// broadcast is one gossiped notice.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}
