package pebble

import (
	"encoding/binary"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// Key prefixes, one per kind of record. They are part of the on-disk format:
// never reuse or renumber one. See the package documentation for the layout.
const (
	prefixMeta        = "v/"
	prefixMessage     = "m/"
	prefixPending     = "p/"
	prefixCarrier     = "c/"
	prefixIdempotency = "i/"
	prefixDay         = "d/"
	prefixOutbox      = "o/"
	prefixPart        = "n/"
	prefixSetting     = "s/"
	prefixCount       = "k/"
	prefixDue         = "u/"
	prefixParked      = "r/"
	prefixExpiry      = "x/"
	prefixFence       = "f/"
)

// layoutKey holds the layout version, checked on Open so an incompatible
// future layout is refused rather than misread.
const layoutKey = prefixMeta + "layout"

// layoutVersion is the version of the key layout. Values carry their own
// version byte (codec.go), so a new value version needs no new layout, and
// nor does a new kind of key that starts empty: the outbox, inbox and
// settings were added within version 1. Version 2 added kinds that must
// agree with what is stored already (the pending counters, the expiry
// queue of idempotency records), which Open builds once (migrate.go).
const layoutVersion = 2

// appendComponent appends s with its length in front. Length-prefixing keeps
// the components of a key apart whatever bytes they contain (an API key or a
// carrier name may hold any character), and makes every "all entries of this
// key" range a plain prefix.
func appendComponent(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// fenceKey holds an API key's fencing token (RaiseFence).
func fenceKey(dst []byte, key string) []byte {
	return appendComponent(append(dst, prefixFence...), key)
}

func messageKey(dst []byte, id string) []byte {
	return append(append(dst, prefixMessage...), id...)
}

// pendingPrefix covers the pending index entries of one API key; the entry
// of a message is this prefix and its ID, so the index iterates in ID order.
func pendingPrefix(dst []byte, key string) []byte {
	return appendComponent(append(dst, prefixPending...), key)
}

func pendingKey(dst []byte, key, id string) []byte {
	return append(pendingPrefix(dst, key), id...)
}

func carrierKey(dst []byte, carrier, carrierID string) []byte {
	return append(appendComponent(append(dst, prefixCarrier...), carrier), carrierID...)
}

func idempotencyKey(dst []byte, key, idemKey string) []byte {
	return append(appendComponent(append(dst, prefixIdempotency...), key), idemKey...)
}

// dayPrefix covers the messages of one API key accepted on one day.
func dayPrefix(dst []byte, key, day string) []byte {
	return appendComponent(appendComponent(append(dst, prefixDay...), key), day)
}

func dayKey(dst []byte, key, day, id string) []byte {
	return append(dayPrefix(dst, key, day), id...)
}

// outboxPrefix covers the queued callbacks of one endpoint; the entry of a
// callback is this prefix and its ID, so an endpoint's callbacks iterate in
// ID order.
func outboxPrefix(dst []byte, endpoint string) []byte {
	return appendComponent(append(dst, prefixOutbox...), endpoint)
}

func outboxKey(dst []byte, endpoint, id string) []byte {
	return append(outboxPrefix(dst, endpoint), id...)
}

// partKey identifies an inbound part: carrier, from and to as components,
// then the concatenation reference (2 bytes, big-endian), total and
// sequence number (a byte each), so one message's parts sort together and
// in sequence order. The caller ensures p.Concat is set.
func partKey(dst []byte, p *sb.InboundPart) []byte {
	dst = appendComponent(append(dst, prefixPart...), p.Carrier)
	dst = appendComponent(appendComponent(dst, p.From), p.To)
	dst = binary.BigEndian.AppendUint16(dst, p.Concat.Ref)
	return append(dst, p.Concat.Total, p.Concat.Seq)
}

// countKey holds the number of pending messages of an API key.
func countKey(dst []byte, key string) []byte {
	return appendComponent(append(dst, prefixCount...), key)
}

// timeKeyLen is the length of a time in a key (appendTimeKey).
const timeKeyLen = 12

// appendTimeKey appends t so that keys sort in time order: the Unix
// seconds as a big-endian uint64 with the sign bit flipped (times before
// 1970, the zero time among them, sort first), then the nanoseconds as a
// big-endian uint32.
func appendTimeKey(dst []byte, t time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix())^1<<63)
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// dueKey is the entry of a message in the receipt-due index: the time
// first, so Overdue reads the earliest first; the ID last, bare.
func dueKey(dst []byte, due time.Time, id string) []byte {
	return append(appendTimeKey(append(dst, prefixDue...), due), id...)
}

// parkedKey holds the updates parked for one carrier id. Unlike the
// carrier index, the id is a component: the key is found with a Get (and
// a bloom filter answers the usual miss), never by prefix.
func parkedKey(dst []byte, carrier, carrierID string) []byte {
	return appendComponent(appendComponent(append(dst, prefixParked...), carrier), carrierID)
}

// Kinds of expiry queue entries. Each kind is its own queue, in time
// order, with its own delay before an entry is due (retention.go).
const (
	// A carrier index entry, at the time its message turned final. No
	// longer written (see the next), but a database may still hold some.
	expiryCarrierRef byte = 'c'
	// The carrier index entries whose messages turned final in one batch
	// within one second, at the end of that second (finalrefs.go).
	expiryCarrierRefs byte = 'g'
	expiryIdempotency byte = 'i' // at the record's CreatedAt
	expiryParked      byte = 'r' // at the parked update's ParkUntil
)

// expiryPrefix covers one kind of the expiry queue.
func expiryPrefix(dst []byte, kind byte) []byte {
	return append(append(dst, prefixExpiry...), kind)
}

// expiryKey is one expiry queue entry: its kind, its time, and the key of
// the record it may delete.
func expiryKey(dst []byte, kind byte, at time.Time, target []byte) []byte {
	return append(appendTimeKey(expiryPrefix(dst, kind), at), target...)
}

func settingKey(dst []byte, name string) []byte {
	return append(append(dst, prefixSetting...), name...)
}

// successor returns the smallest key greater than every key that starts
// with prefix, for use as an exclusive upper bound. It returns nil (no bound)
// when prefix is all 0xff bytes, which none of ours are.
func successor(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// after returns the smallest key greater than k: listings that resume after
// an ID start there.
func after(k []byte) []byte { return append(k, 0) }

// firstComponent reads the component that follows the two-byte prefix of
// k: the API key of a pending index entry, the endpoint of an outbox entry.
func firstComponent(k []byte) (string, bool) {
	c, _, ok := components(k, 1)
	if !ok {
		return "", false
	}
	return c[0], true
}

// components reads the n length-prefixed components that follow the
// two-byte prefix of k, and returns them with the rest of the key.
func components(k []byte, n int) (parts []string, rest []byte, ok bool) {
	if len(k) < 2 {
		return nil, nil, false
	}
	rest = k[2:]
	for range n {
		var c []byte
		if c, rest, ok = cutComponent(rest); !ok {
			return nil, nil, false
		}
		parts = append(parts, string(c))
	}
	return parts, rest, true
}

// cutComponent splits the length-prefixed component at the start of k
// from the rest of k, without copying.
func cutComponent(k []byte) (c, rest []byte, ok bool) {
	l, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < l {
		return nil, nil, false
	}
	return k[w : w+int(l)], k[w+int(l):], true
}
