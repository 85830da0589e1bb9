package pebble

import (
	"encoding/binary"

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
)

// layoutKey holds the layout version, checked on Open so an incompatible
// future layout is refused rather than misread.
const layoutKey = prefixMeta + "layout"

// layoutVersion is the version of the key layout. Values carry their own
// version byte (codec.go), so a new value version needs no new layout, and
// nor does a new kind of key: the outbox, inbox and settings were added
// within version 1.
const layoutVersion = 1

// appendComponent appends s with its length in front. Length-prefixing keeps
// the components of a key apart whatever bytes they contain (an API key or a
// carrier name may hold any character), and makes every "all entries of this
// key" range a plain prefix.
func appendComponent(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
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
	if len(k) < 2 {
		return "", false
	}
	rest := k[2:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) < n {
		return "", false
	}
	return string(rest[w : w+int(n)]), true
}
