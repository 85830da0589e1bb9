package scylla

import (
	"encoding/binary"
	"hash/fnv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Partitions are cut by time without a clock: IDs are a kind ("msg_",
// "evt_") and a ULID, whose first characters are the time it was made, so
// a prefix of an ID names a stretch of time and sorts with it. Any other
// ID shape still works: its prefix is just not a time.

// bucketChars is how many characters after the kind make a bucket: 7
// characters of a ULID are its top 33 bits of 48 of milliseconds, so one
// bucket is 2^15 ms, about 33 seconds. A partition of one key (messages,
// pending) or one endpoint (outbox) holds one bucket: under 100,000 rows
// while the key sends fewer than about 3,000 messages a second.
const bucketChars = 7

// bucketOf returns the bucket of an ID: the characters after its kind
// (up to and including the first '_'), at most bucketChars of them.
func bucketOf(id string) string {
	rest := id[strings.IndexByte(id, '_')+1:]
	return rest[:min(len(rest), bucketChars)]
}

// idShards spreads one bucket of IDs over this many partitions of
// message_ids, so no single partition takes every accept of the cluster.
const idShards = 8

// sliceOf returns the message_ids partition of an ID: its bucket and a
// shard of its hash.
func sliceOf(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return bucketOf(id) + "/" + string(rune('0'+h.Sum32()%idShards))
}

// idFloor returns the smallest ID of kind made at t or later: the kind and
// a ULID of t with zero entropy.
func idFloor(kind string, t time.Time) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(t))
	return kind + u.String()
}

// idTime returns the time an ID of kind was made, if it is a ULID.
func idTime(kind, id string) (time.Time, bool) {
	if !strings.HasPrefix(id, kind) || len(id) < len(kind)+ulid.EncodedSize {
		return time.Time{}, false
	}
	u, err := ulid.ParseStrict(id[len(kind) : len(kind)+ulid.EncodedSize])
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}

// dueKey is the receipt_due entry of a message: the due time as 13
// characters of base32 (Crockford's alphabet, as ULIDs) of its Unix
// nanoseconds, which sort as the times do, then the message ID.
func dueKey(due time.Time, id string) string {
	return dueTime(due) + "/" + id
}

// dueTime is the sortable form of a time in receipt_due keys; for times
// before 1970 it is all zeros.
func dueTime(t time.Time) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	n := uint64(max(t.UnixNano(), 0))
	var b [13]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = alphabet[n&31]
		n >>= 5
	}
	return string(b[:])
}

// dueBucketChars makes one receipt_due bucket 2^35 ns, about 34 seconds.
const dueBucketChars = 6

// dueMessage returns the message ID of a receipt_due key.
func dueMessage(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[i+1:]
	}
	return ""
}

// partShard spreads inbound parts over the partitions of inbound_parts.
func partShard(carrier, from, to string, ref uint16) int {
	h := fnv.New32a()
	for _, s := range []string{carrier, from, to} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var r [2]byte
	binary.BigEndian.PutUint16(r[:], ref)
	h.Write(r[:])
	return int(h.Sum32() % partShards)
}

// partShards is the number of inbound_parts partitions; InboundParts reads
// them all.
const partShards = 16
