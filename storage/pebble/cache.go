package pebble

import (
	sb "github.com/switchboard-sms/switchboard"
)

// inFlight is the committer's memory of the messages it wrote last that
// are not final yet, and of the carrier ids it indexed for them. A message
// is written three times in its life (accepted, submitted, final), each a
// read-modify-write; without this each Record would find the message, and
// a receipt its carrier id, with a Pebble Get and decode the value it just
// encoded. Only the committer writes, so what it remembers stays what is
// stored: every write of a message (writeNew, writeMessage) replaces its
// entry, a final status or retention's delete removes it, and the round's
// overlay still comes first for what the round wrote.
//
// It is bounded: past maxInFlight entries the oldest (by their first
// write) go, and are then read from Pebble as before. The messages it
// holds are never changed (a Record changes a copy), like the overlay's.
type inFlight struct {
	msgs map[string]*sb.Message // by message ID
	refs map[string]refEntry    // carrier index key → message and part
	// order holds message IDs in the order they were first remembered,
	// as a ring; an ID may be there after its message was forgotten (a
	// final status), which costs only a no-op eviction.
	order []string
	head  int
	n     int
}

// maxInFlight bounds the messages remembered: at 20,000 messages a second
// about 400 ms from acceptance, more than a submit takes to be answered
// (so the submitted record and a prompt carrier's receipt find the
// message here); some 8 to 16 MB.
const maxInFlight = 8192

func newInFlight(size int) *inFlight {
	return &inFlight{msgs: make(map[string]*sb.Message), refs: make(map[string]refEntry), order: make([]string, size)}
}

// message returns the remembered message with this ID, if any.
func (f *inFlight) message(id string) (*sb.Message, bool) {
	m, ok := f.msgs[id]
	return m, ok
}

// ref returns the remembered carrier index entry under k, if any.
func (f *inFlight) ref(k string) (refEntry, bool) {
	r, ok := f.refs[k]
	return r, ok
}

// put remembers m as stored now (m must not change afterwards), or
// forgets it once it is final: a final message is rarely read again.
func (f *inFlight) put(m *sb.Message) {
	if m.Status.Final() {
		f.forget(m)
		return
	}
	if _, ok := f.msgs[m.ID]; !ok {
		f.push(m.ID)
	}
	f.msgs[m.ID] = m
}

// putRef notes a carrier index entry as written: remembered when its
// message is, else forgotten (it may have named another message).
func (f *inFlight) putRef(k string, r refEntry) {
	if _, ok := f.msgs[r.messageID]; ok {
		f.refs[k] = r
		return
	}
	delete(f.refs, k)
}

// dropRef forgets a carrier index entry that is deleted.
func (f *inFlight) dropRef(k string) { delete(f.refs, k) }

// forget drops a message and its carrier index entries.
func (f *inFlight) forget(m *sb.Message) {
	old, ok := f.msgs[m.ID]
	if !ok {
		return
	}
	delete(f.msgs, m.ID)
	f.dropRefs(old)
	if old != m {
		f.dropRefs(m)
	}
}

// dropRefs drops the carrier index entries m's carrier ids have.
func (f *inFlight) dropRefs(m *sb.Message) {
	if len(f.refs) == 0 {
		return
	}
	var k []byte
	for _, r := range carrierRefs(m) {
		k = carrierKey(k[:0], r.carrier, r.carrierID)
		delete(f.refs, string(k))
	}
}

// push appends id to the ring, evicting the oldest when it is full.
func (f *inFlight) push(id string) {
	size := len(f.order)
	if f.n == size {
		old := f.order[f.head]
		if m, ok := f.msgs[old]; ok {
			f.forget(m)
		}
		f.order[f.head] = id
		f.head = (f.head + 1) % size
		return
	}
	f.order[(f.head+f.n)%size] = id
	f.n++
}
