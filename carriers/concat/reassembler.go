package concat

import (
	"bytes"
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-sms/switchboard"
)

// Assembled is an inbound message made from one or more parts.
type Assembled struct {
	Carrier, From, To string
	// Body is the decoded text; for Encoding "binary" it is the payload in
	// standard base64. Decode describes how each data_coding is read and
	// what a missing part leaves.
	Body string
	// Encoding is "gsm7", "ucs2", "latin1", "ascii" or "binary".
	Encoding string
	// Segments is the number of parts the message declared (Concat.Total),
	// or 1 for a part without Concat.
	Segments int
	// Partial is set when parts were missing when the message was given
	// up: by Expire, or evicted to make room (Added.Evicted).
	Partial bool
	// Parts are the parts the message was made from, in sequence order,
	// duplicates left out: the ones to remove from the caller's store.
	Parts []switchboard.InboundPart
	// ReceivedAt is the earliest ReceivedAt of Parts.
	ReceivedAt time.Time
}

// Added is what Add did with a part.
type Added struct {
	// Complete says that Message is set: the part completed its message,
	// or was a message of its own (no Concat, or a total of 1).
	Complete bool
	Message  Assembled
	// Duplicate says that the part was ignored: its group already holds
	// it (its sequence number, with the same user data), and that first
	// copy is kept.
	Duplicate bool
	// Evicted holds at most one message, given up as partial: the group
	// the part's sequence number was held in with other user data (the
	// sender reused the reference; see Displace), or else the oldest
	// pending group, when the part started a new group while maxGroups
	// were pending. The caller handles it as one returned by Expire.
	Evicted []Assembled
}

// Waiting reports whether the part is held in a pending group (so the
// caller should store it durably before acknowledging it): it neither
// completed a message nor was a duplicate.
func (a Added) Waiting() bool { return !a.Complete && !a.Duplicate }

// Reassembler collects the parts of concatenated inbound messages until
// each message is complete or given up; the package documentation
// describes the rules. It is safe for concurrent use: parts arrive on the
// reading goroutines of several binds.
type Reassembler struct {
	timeout   time.Duration
	maxGroups int

	mu      sync.Mutex
	groups  map[groupKey]*group
	held    int     // parts in groups
	byAge   ageHeap // the same groups, the oldest first part on top
	created uint64  // groups made so far, to order groups of equal age
	// recent remembers the payloads of groups completed within the
	// timeout: an SMSC that lost our acknowledgement sends a part again
	// after its message is complete, and that copy must not start a new
	// message that would end partial. A real new message reusing the
	// reference carries other text, so only an identical payload counts.
	recent map[groupKey]*completed
}

type completed struct {
	payloads [][]byte // by Seq-1
	until    time.Time
}

// New returns a Reassembler that gives up a group when its first part is
// more than timeout old (as Expire is told the time) and keeps at most
// maxGroups groups pending. A timeout of zero or less gives up every group
// whose first part is older than the time Expire is given; maxGroups of
// zero or less sets no limit.
func New(timeout time.Duration, maxGroups int) *Reassembler {
	return &Reassembler{
		timeout:   timeout,
		maxGroups: maxGroups,
		groups:    make(map[groupKey]*group),
		recent:    make(map[groupKey]*completed),
	}
}

type groupKey struct {
	carrier, from, to string
	ref               uint16
	total             uint8
}

type group struct {
	key   groupKey
	parts []switchboard.InboundPart // by Seq-1; Concat is nil where a part is missing
	have  int
	first time.Time // earliest ReceivedAt of the parts held
	made  uint64    // creation order
	index int       // position in byAge
}

// Add files p. A part without Concat, or with a total of 1, is a complete
// message at once. Otherwise p joins the group of its carrier, from, to,
// reference and total; when that group then holds every sequence number
// from 1 to the total, Added.Message is the message and the group is
// forgotten. A sequence number already held with the same user data
// makes p a duplicate, ignored; held with other data, p starts a new
// message and the group is given up (see Displace).
//
// A sequence number of 0 or above the total (or a total of 0) is an error
// and changes nothing: the caller refuses the part. Add keeps p as given,
// so the caller must not modify its Payload afterwards. p.ReceivedAt may
// be old (a part restored after a restart): ages are the parts' own.
//
// If storing a completed message fails, the caller can Add its other
// Parts again and refuse p, so that the SMSC's next attempt completes it
// anew.
func (r *Reassembler) Add(p switchboard.InboundPart) (Added, error) {
	c := p.Concat
	if c != nil && (c.Seq == 0 || c.Seq > c.Total) {
		return Added{}, fmt.Errorf("concat: part %d of %d (ref %d) from %q: sequence number out of range", c.Seq, c.Total, c.Ref, p.From)
	}
	if c == nil || c.Total == 1 {
		body, enc := Decode([]switchboard.InboundPart{p})
		return Added{Complete: true, Message: Assembled{
			Carrier: p.Carrier, From: p.From, To: p.To, Body: body, Encoding: enc,
			Segments: 1, Parts: []switchboard.InboundPart{p}, ReceivedAt: p.ReceivedAt,
		}}, nil
	}

	k := groupKey{carrier: p.Carrier, from: p.From, to: p.To, ref: c.Ref, total: c.Total}
	var evicted, done *group
	r.mu.Lock()
	g := r.groups[k]
	if g != nil && g.displacedBy(p) {
		r.remove(g)
		evicted, g = g, r.newGroup(k, p)
	}
	switch {
	case g == nil && r.completedBefore(k, p):
		r.mu.Unlock()
		return Added{Duplicate: true}, nil
	case g == nil:
		if r.maxGroups > 0 && len(r.groups) >= r.maxGroups {
			evicted = r.removeOldest()
		}
		g = r.newGroup(k, p)
	case g.parts[c.Seq-1].Concat != nil:
		r.mu.Unlock()
		return Added{Duplicate: true}, nil
	case p.ReceivedAt.Before(g.first):
		g.first = p.ReceivedAt
		heap.Fix(&r.byAge, g.index)
	}
	g.parts[c.Seq-1] = p
	g.have++
	r.held++
	if g.have == len(g.parts) {
		r.remove(g)
		done = g
		r.remember(g, p.ReceivedAt)
	}
	r.mu.Unlock()

	// Groups out of the map are this goroutine's alone: decode unlocked.
	var res Added
	if evicted != nil {
		res.Evicted = []Assembled{evicted.assemble()}
	}
	if done != nil {
		res.Complete, res.Message = true, done.assemble()
	}
	return res, nil
}

// newGroup starts the group of key k with room for p's message; r.mu is
// held.
func (r *Reassembler) newGroup(k groupKey, p switchboard.InboundPart) *group {
	g := &group{key: k, parts: make([]switchboard.InboundPart, p.Concat.Total), first: p.ReceivedAt, made: r.created}
	r.created++
	r.groups[k] = g
	heap.Push(&r.byAge, g)
	return g
}

// remove takes a pending group out; r.mu is held.
func (r *Reassembler) remove(g *group) {
	heap.Remove(&r.byAge, g.index)
	delete(r.groups, g.key)
	r.held -= g.have
}

// displacedBy reports whether p, of g's key, holds a sequence number g
// holds with other user data: not a repeat but a new message whose sender
// reused the reference while g waited for a part.
func (g *group) displacedBy(p switchboard.InboundPart) bool {
	held := g.parts[p.Concat.Seq-1]
	return held.Concat != nil && !bytes.Equal(held.Payload, p.Payload)
}

// Displace gives up the pending group p would join, if p displaces it (a
// sequence number the group holds with other user data: the sender reused
// the reference for a new message while the old one waited for a part),
// and returns it as a partial message. A caller that stores parts by their
// identity stores that message (which removes its parts) before it stores
// p, which shares the identity of one of them, and then adds p, which
// starts a group of its own. If storing it fails, the caller can Add its
// Parts again.
func (r *Reassembler) Displace(p switchboard.InboundPart) (Assembled, bool) {
	c := p.Concat
	if c == nil || c.Total <= 1 || c.Seq == 0 || c.Seq > c.Total {
		return Assembled{}, false
	}
	k := groupKey{carrier: p.Carrier, from: p.From, to: p.To, ref: c.Ref, total: c.Total}
	r.mu.Lock()
	g := r.groups[k]
	if g == nil || !g.displacedBy(p) {
		r.mu.Unlock()
		return Assembled{}, false
	}
	r.remove(g)
	r.mu.Unlock()
	return g.assemble(), true
}

// Release forgets, without giving them up, the pending groups whose parts
// keep does not want (it sees one part of each): in a cluster, the groups
// of numbers whose keys another node owns now, which adopts their stored
// parts. It returns how many it forgot.
func (r *Reassembler) Release(keep func(switchboard.InboundPart) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*group
	for _, g := range r.groups {
		if !keep(g.anyPart()) {
			gone = append(gone, g)
		}
	}
	for _, g := range gone {
		r.remove(g)
	}
	return len(gone)
}

// Seen reports whether Add would call p a duplicate: its group holds its
// sequence number already with the same user data, or it repeats a part
// of a message completed within the timeout. A caller that stores parts before adding them
// checks this first, so a repeated part is not stored again (it would
// outlive its message in the store).
func (r *Reassembler) Seen(p switchboard.InboundPart) bool {
	c := p.Concat
	if c == nil || c.Total <= 1 || c.Seq == 0 || c.Seq > c.Total {
		return false
	}
	k := groupKey{carrier: p.Carrier, from: p.From, to: p.To, ref: c.Ref, total: c.Total}
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.groups[k]; g != nil {
		return g.parts[c.Seq-1].Concat != nil && !g.displacedBy(p)
	}
	return r.completedBefore(k, p)
}

// Expire gives up the groups whose first part was received more than the
// timeout before now, and returns them as partial messages, oldest first.
func (r *Reassembler) Expire(now time.Time) []Assembled {
	var out []Assembled
	for _, p := range r.ExpiredParts(now) {
		if a, ok := r.TakeExpired(p, now); ok {
			out = append(out, a)
		}
	}
	return out
}

// ExpiredParts returns a part of each group Expire would give up at now,
// oldest first, leaving the groups in place, and forgets the completed
// messages older than the timeout: a caller that must do something first
// (take the group's lock) takes each with TakeExpired then.
func (r *Reassembler) ExpiredParts(now time.Time) []switchboard.InboundPart {
	cutoff := now.Add(-r.timeout)
	r.mu.Lock()
	defer r.mu.Unlock()
	// The expired groups are the heap's top: no child is older than its
	// parent, so the walk goes down only from expired ones.
	var gone []*group
	for next := []int{0}; len(next) > 0; {
		i := next[len(next)-1]
		next = next[:len(next)-1]
		if i >= len(r.byAge) || !r.byAge[i].first.Before(cutoff) {
			continue
		}
		gone = append(gone, r.byAge[i])
		next = append(next, 2*i+1, 2*i+2)
	}
	slices.SortFunc(gone, olderGroup)
	out := make([]switchboard.InboundPart, len(gone))
	for i, g := range gone {
		out[i] = g.anyPart()
	}
	for k, c := range r.recent {
		if !now.Before(c.until) {
			delete(r.recent, k)
		}
	}
	return out
}

// TakeExpired gives up p's group if it is still pending and its first
// part was received more than the timeout before now, and returns it as a
// partial message.
func (r *Reassembler) TakeExpired(p switchboard.InboundPart, now time.Time) (Assembled, bool) {
	c := p.Concat
	if c == nil {
		return Assembled{}, false
	}
	k := groupKey{carrier: p.Carrier, from: p.From, to: p.To, ref: c.Ref, total: c.Total}
	r.mu.Lock()
	g := r.groups[k]
	if g == nil || !g.first.Before(now.Add(-r.timeout)) {
		r.mu.Unlock()
		return Assembled{}, false
	}
	r.remove(g)
	r.mu.Unlock()
	return g.assemble(), true
}

// anyPart is one part the group holds.
func (g *group) anyPart() switchboard.InboundPart {
	for _, p := range g.parts {
		if p.Concat != nil {
			return p
		}
	}
	return switchboard.InboundPart{}
}

// Pending returns the number of incomplete messages held.
func (r *Reassembler) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.groups)
}

// Held returns the number of parts held in incomplete messages.
func (r *Reassembler) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// completedBefore reports whether p repeats a part of a message completed
// within the timeout; r.mu is held.
func (r *Reassembler) completedBefore(k groupKey, p switchboard.InboundPart) bool {
	c := r.recent[k]
	return c != nil && p.ReceivedAt.Before(c.until) && bytes.Equal(c.payloads[p.Concat.Seq-1], p.Payload)
}

// remember keeps a completed group's payloads until the timeout after
// its last part, bounded like the groups themselves; r.mu is held.
func (r *Reassembler) remember(g *group, at time.Time) {
	if r.maxGroups > 0 && len(r.recent) >= r.maxGroups {
		return
	}
	c := &completed{payloads: make([][]byte, len(g.parts)), until: at.Add(r.timeout)}
	for i := range g.parts {
		c.payloads[i] = g.parts[i].Payload
	}
	r.recent[g.key] = c
}

// removeOldest takes the group with the oldest first part out; r.mu is
// held and there is one.
func (r *Reassembler) removeOldest() *group {
	g := r.byAge[0]
	r.remove(g)
	return g
}

// assemble makes the message of a group that has left the reassembler.
func (g *group) assemble() Assembled {
	parts := make([]switchboard.InboundPart, 0, g.have)
	for _, p := range g.parts {
		if p.Concat != nil {
			parts = append(parts, p)
		}
	}
	body, enc := Decode(parts)
	return Assembled{
		Carrier: g.key.carrier, From: g.key.from, To: g.key.to,
		Body: body, Encoding: enc, Segments: len(g.parts),
		Partial: g.have < len(g.parts), Parts: parts, ReceivedAt: g.first,
	}
}

// ageHeap orders groups by their first part's ReceivedAt, then by creation.
type ageHeap []*group

func (h ageHeap) Len() int { return len(h) }

func (h ageHeap) Less(i, j int) bool { return olderGroup(h[i], h[j]) < 0 }

// olderGroup orders groups by their first part's ReceivedAt, then by
// creation.
func olderGroup(a, b *group) int {
	if c := a.first.Compare(b.first); c != 0 {
		return c
	}
	return cmp.Compare(a.made, b.made)
}

func (h ageHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *ageHeap) Push(x any) {
	g := x.(*group)
	g.index = len(*h)
	*h = append(*h, g)
}

func (h *ageHeap) Pop() any {
	old := *h
	g := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return g
}
