package gossip

import (
	"encoding/json"
	"slices"
	"time"
)

// How a node learns it was removed.
//
// memberlist by itself heals a pause: the paused node refutes the death
// gossiped about it and is alive again everywhere. Protoactor does not: once
// a member has left a topology its id is blocked for good, and its grains
// were activated elsewhere meanwhile. So every node keeps the ids it saw
// die, and tells them to others in a notice: on every probe ack (so a paused
// node hears it from its first probe after it wakes), in every push/pull,
// gossiped once when it happens, and sent straight to a member that answers
// again under an id seen dead here. A node that finds its own id in a notice
// must leave and rejoin under a new id.
//
// Deaths are remembered for RemovalTTL; a node whose own loop stalled for
// longer (a pause the others have forgotten) takes itself as removed.
//
// After a partition heals both sides hold the other dead. Only one side
// should restart: the one with fewer live members (the side that kept the
// majority keeps its grains); on a tie both do, and the new ids settle it.

// notice is one node's list of members it saw die.
type notice struct {
	From   string   `json:"f"`
	Client bool     `json:"cl,omitempty"`
	Live   int      `json:"n"` // live members as the sender counts them (liveLocked)
	Dead   []string `json:"d"`
}

// noticeTag starts every user message and state this package sends, so that
// anything else is ignored.
const noticeTag byte = 'R'

// maxAckDeaths bounds the deaths carried on a probe ack, which must fit a
// UDP packet; the full list travels in push/pull.
const maxAckDeaths = 16

func (n notice) encode() []byte {
	b, _ := json.Marshal(n) // strings and ints only: cannot fail
	return append([]byte{noticeTag}, b...)
}

func decodeNotice(b []byte) (notice, bool) {
	var n notice
	if len(b) < 2 || b[0] != noticeTag {
		return n, false
	}
	if err := json.Unmarshal(b[1:], &n); err != nil || n.From == "" {
		return n, false
	}
	return n, true
}

// noticeLocked is this node's notice: the latest limit deaths (0: all).
func (p *Provider) noticeLocked(live, limit int) notice {
	type death struct {
		id string
		at time.Time
	}
	all := make([]death, 0, len(p.dead))
	for id, at := range p.dead {
		all = append(all, death{id, at})
	}
	slices.SortFunc(all, func(a, b death) int { return b.at.Compare(a.at) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	n := notice{From: p.self.id, Client: p.self.client, Live: live, Dead: make([]string, len(all))}
	for i, d := range all {
		n.Dead[i] = d.id
	}
	return n
}

// mustLeaveLocked decides whether notice n means this node was removed.
func (p *Provider) mustLeaveLocked(n notice, live int) bool {
	if n.From == p.self.id || !slices.Contains(n.Dead, p.self.id) {
		return false
	}
	_, mutual := p.dead[n.From]
	return mustLeave(n, p.self.client, mutual, live)
}

// mustLeave is the rule: a member named dead by another member leaves,
// unless it holds the sender dead too and counts more live members than the
// sender does (then the sender is the one to leave). A client cannot remove
// a member.
func mustLeave(n notice, selfClient, mutual bool, live int) bool {
	if n.Client && !selfClient {
		return false
	}
	return !mutual || live <= n.Live
}

// deliver queues a received notice for the loop.
func (p *Provider) deliver(b []byte) {
	n, ok := decodeNotice(b)
	if !ok {
		return
	}
	p.mu.Lock()
	if len(p.inbox) < maxInbox {
		p.inbox = append(p.inbox, n)
	}
	p.mu.Unlock()
	p.signal()
}
