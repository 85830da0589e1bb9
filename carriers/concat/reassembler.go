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
	// Evicted holds the messages given up as partial to make room: the
	// group the part's sequence number was held in with other user data
	// (the sender reused the reference; see Displace), the oldest pending
	// group when the part started a new group while Limits.Groups were
	// pending, and the oldest groups (the part's own among them, if it is
	// the oldest) while the parts held cost more than Limits.Bytes. The
	// caller handles them as ones returned by Expire.
	Evicted []Assembled
}

// Waiting reports whether the part is held in a pending group (so the
// caller should store it durably before acknowledging it), or was given
// up with it in Evicted: it neither completed a message nor was a
// duplicate.
func (a Added) Waiting() bool { return !a.Complete && !a.Duplicate }

// Reassembler collects the parts of concatenated inbound messages until
// each message is complete or given up; the package documentation
// describes the rules. It is safe for concurrent use: parts arrive on the
// reading goroutines of several binds.
type Reassembler struct {
	timeout time.Duration
	limits  Limits

	mu      sync.Mutex
	groups  map[groupKey]*group
	held    int     // parts in groups
	bytes   int     // what the parts in groups cost (partCost)
	byAge   ageHeap // the same groups, the oldest first part on top
	created uint64  // groups made so far, to order groups of equal age
	// recent remembers the payloads of groups completed within the
	// timeout: an SMSC that lost our acknowledgement sends a part again
	// after its message is complete, and that copy must not start a new
	// message that would end partial. A real new message reusing the
	// reference carries other text, so only an identical payload counts.
	recent      map[groupKey]*completed
	recentBytes int // what recent's payloads cost
}

type completed struct {
	payloads [][]byte // by Seq-1
	until    time.Time
	bytes    int
}

// Limits bound what a Reassembler holds; zero or less sets no limit.
// Parts arrive from outside (an SMSC, and the phones behind it), so
// memory is bounded in bytes as well as in messages: a group's cost is
// that of the parts it holds, however many it declares.
type Limits struct {
	// Groups is the most messages pending at once.
	Groups int
	// Bytes is the most the parts of pending messages cost (partCost);
	// the payloads of messages completed within the timeout (remembered
	// to recognise a part sent again) are bounded by the same figure,
	// separately.
	Bytes int
}

// New returns a Reassembler that gives up a group when its first part is
// more than timeout old (as Expire is told the time) and holds at most
// limits. A timeout of zero or less gives up every group whose first part
// is older than the time Expire is given.
func New(timeout time.Duration, limits Limits) *Reassembler {
	return &Reassembler{
		timeout: timeout,
		limits:  limits,
		groups:  make(map[groupKey]*group),
		recent:  make(map[groupKey]*completed),
	}
}

// partOverhead is what a held part costs beyond its payload and
// addresses: the part itself, its Concat, and their allocation.
const partOverhead = 160

// partCost is what holding p costs in memory, near enough.
func partCost(p *switchboard.InboundPart) int {
	return partOverhead + len(p.Payload) + len(p.Carrier) + len(p.From) + len(p.To)
}

type groupKey struct {
	carrier, from, to string
	ref               uint16
	total             uint8
}

type group struct {
	key   groupKey
	parts []switchboard.InboundPart // the parts held, in sequence order
	bytes int                       // what parts cost (partCost)
	first time.Time                 // earliest ReceivedAt of the parts held
	made  uint64                    // creation order
	index int                       // position in byAge
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
	var evicted []*group
	var done *group
	r.mu.Lock()
	g := r.groups[k]
	if g != nil && g.displacedBy(p) {
		r.remove(g)
		evicted, g = append(evicted, g), r.newGroup(k, p)
	}
	switch {
	case g == nil && r.completedBefore(k, p):
		r.mu.Unlock()
		return Added{Duplicate: true}, nil
	case g == nil:
		if r.limits.Groups > 0 && len(r.groups) >= r.limits.Groups {
			evicted = append(evicted, r.removeOldest())
		}
		g = r.newGroup(k, p)
	case g.holds(c.Seq):
		r.mu.Unlock()
		return Added{Duplicate: true}, nil
	case p.ReceivedAt.Before(g.first):
		g.first = p.ReceivedAt
		heap.Fix(&r.byAge, g.index)
	}
	r.hold(g, p)
	if len(g.parts) == int(c.Total) {
		r.remove(g)
		done = g
		r.remember(g, p.ReceivedAt)
	}
	for r.limits.Bytes > 0 && r.bytes > r.limits.Bytes {
		evicted = append(evicted, r.removeOldest())
	}
	r.mu.Unlock()

	// Groups out of the map are this goroutine's alone: decode unlocked.
	var res Added
	for _, g := range evicted {
		res.Evicted = append(res.Evicted, g.assemble())
	}
	if done != nil {
		res.Complete, res.Message = true, done.assemble()
	}
	return res, nil
}

// hold puts p into g, in sequence order; g does not hold p's sequence
// number and r.mu is held.
func (r *Reassembler) hold(g *group, p switchboard.InboundPart) {
	i, _ := g.find(p.Concat.Seq)
	g.parts = slices.Insert(g.parts, i, p)
	cost := partCost(&p)
	g.bytes += cost
	r.bytes += cost
	r.held++
}

// find returns where g holds (or would hold) sequence number seq, and
// whether it does.
func (g *group) find(seq uint8) (int, bool) {
	return slices.BinarySearchFunc(g.parts, seq, func(p switchboard.InboundPart, seq uint8) int {
		return cmp.Compare(p.Concat.Seq, seq)
	})
}

// holds reports whether g holds sequence number seq.
func (g *group) holds(seq uint8) bool {
	_, ok := g.find(seq)
	return ok
}

// newGroup starts the group of key k with room for p's message; r.mu is
// held.
func (r *Reassembler) newGroup(k groupKey, p switchboard.InboundPart) *group {
	g := &group{key: k, first: p.ReceivedAt, made: r.created}
	r.created++
	r.groups[k] = g
	heap.Push(&r.byAge, g)
	return g
}

// remove takes a pending group out; r.mu is held.
func (r *Reassembler) remove(g *group) {
	heap.Remove(&r.byAge, g.index)
	delete(r.groups, g.key)
	r.held -= len(g.parts)
	r.bytes -= g.bytes
}

// displacedBy reports whether p, of g's key, holds a sequence number g
// holds with other user data: not a repeat but a new message whose sender
// reused the reference while g waited for a part.
func (g *group) displacedBy(p switchboard.InboundPart) bool {
	i, ok := g.find(p.Concat.Seq)
	return ok && !bytes.Equal(g.parts[i].Payload, p.Payload)
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
		return g.holds(c.Seq) && !g.displacedBy(p)
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
			r.recentBytes -= c.bytes
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

// anyPart is one part the group holds (every group holds one).
func (g *group) anyPart() switchboard.InboundPart {
	return g.parts[0]
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
// its last part, bounded like the groups themselves (when full, a group
// is not remembered: a part of it sent again starts a message that ends
// partial); r.mu is held.
func (r *Reassembler) remember(g *group, at time.Time) {
	// An older message of the same key is forgotten either way: a part
	// sent again is this one's or a new message's.
	if old := r.recent[g.key]; old != nil {
		delete(r.recent, g.key)
		r.recentBytes -= old.bytes
	}
	if r.limits.Groups > 0 && len(r.recent) >= r.limits.Groups ||
		r.limits.Bytes > 0 && r.recentBytes+g.bytes > r.limits.Bytes {
		return
	}
	c := &completed{payloads: make([][]byte, len(g.parts)), until: at.Add(r.timeout), bytes: g.bytes}
	for i := range g.parts {
		c.payloads[i] = g.parts[i].Payload
	}
	r.recent[g.key] = c
	r.recentBytes += c.bytes
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
	body, enc := Decode(g.parts)
	return Assembled{
		Carrier: g.key.carrier, From: g.key.from, To: g.key.to,
		Body: body, Encoding: enc, Segments: int(g.key.total),
		Partial: len(g.parts) < int(g.key.total), Parts: g.parts, ReceivedAt: g.first,
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
