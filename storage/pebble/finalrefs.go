package pebble

import (
	"encoding/binary"
	"time"

	pebbledb "github.com/cockroachdb/pebble/v2"
)

// Carrier index entries expire CarrierIDGrace after their message turned
// final. Queueing one expiry entry per carrier id would add a record to
// nearly every message's final write; instead the committer gathers a
// batch's entries by the second their messages turned final, and writes
// one expiry queue entry per second (kind expiryCarrierRefs) that lists
// them. An entry's time is the end of its second, so none expires before
// its message has been final for the whole grace, and none more than a
// second after.

// queuedRef is a carrier index entry queued for expiry: its key, and the
// message it must still name to be deleted.
type queuedRef struct{ target, guard string }

// finalRefs gathers the batch's carrier index entries to queue.
type finalRefs struct {
	bySecond map[int64][]queuedRef // by the Unix second their entry is at
	// seq tells apart the entries of one second written by different
	// batches. It starts at the wall clock's nanoseconds when the store
	// opens, so a restart does not reuse the numbers of the run before.
	seq uint64
	key []byte
	val []byte
}

func newFinalRefs(now time.Time) finalRefs {
	return finalRefs{bySecond: map[int64][]queuedRef{}, seq: uint64(now.UnixNano())}
}

// add queues r, whose message turned final at at.
func (f *finalRefs) add(at time.Time, r queuedRef) {
	sec := at.Unix()
	if at.Nanosecond() > 0 {
		sec++ // the end of the second, never before at
	}
	f.bySecond[sec] = append(f.bySecond[sec], r)
}

// write adds the queue entries for what was gathered to b, and forgets it.
func (f *finalRefs) write(b *pebbledb.Batch) error {
	defer clear(f.bySecond)
	for sec, refs := range f.bySecond {
		f.seq++
		var seq [8]byte
		binary.BigEndian.PutUint64(seq[:], f.seq)
		f.key = expiryKey(f.key[:0], expiryCarrierRefs, time.Unix(sec, 0), seq[:])
		f.val = appendRefGroup(f.val[:0], refs)
		if err := b.Set(f.key, f.val, nil); err != nil {
			return err
		}
	}
	return nil
}

// appendRefGroup encodes the value of an expiryCarrierRefs entry:
// version, the number of carrier index entries, then each one's key and
// the ID of the message it must still name.
func appendRefGroup(dst []byte, refs []queuedRef) []byte {
	dst = binary.AppendUvarint(append(dst, valueVersion), uint64(len(refs)))
	for _, r := range refs {
		dst = appendString(appendString(dst, r.target), r.guard)
	}
	return dst
}

func decodeRefGroup(v []byte) ([]queuedRef, error) {
	d := decoder{s: string(v)}
	d.version(valueVersion)
	n := d.uvarint()
	if n > uint64(len(v)) { // each entry takes at least two bytes
		return nil, errCorrupt
	}
	refs := make([]queuedRef, 0, n)
	for range n {
		target := d.string()
		refs = append(refs, queuedRef{target: target, guard: d.string()})
	}
	return refs, d.finish()
}
