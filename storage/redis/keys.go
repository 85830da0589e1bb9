package redis

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	sb "github.com/switchboard-sms/switchboard"
)

// DefaultPrefix begins every key Switchboard writes to Redis, so one
// Redis can serve other uses (or several gateways, each with its own).
const DefaultPrefix = "switchboard:"

// keyspace names the Redis keys. API keys and carrier names cannot hold
// ':' (the configuration allows [A-Za-z0-9_-]), so a key's parts cannot
// run into each other; what follows the last ':' may hold anything.
//
//	<prefix>cid:<carrier>:<carrier id>    "<message id> <part>"
//	<prefix>idem:<key>:<idempotency key>  "c <message id> <request hash hex> <created, unix ns>"
//	                                      or "r <token>" while an Accept is writing it
//	<prefix>lease:<name>                  hash: holder, token
//	<prefix>lease-token:<name>            the last token issued for name
type keyspace struct{ prefix string }

func (k keyspace) carrier(carrier, id string) string {
	return k.prefix + "cid:" + carrier + ":" + id
}

func (k keyspace) idempotency(key, idemKey string) string {
	return k.prefix + "idem:" + key + ":" + idemKey
}

func (k keyspace) lease(name string) string      { return k.prefix + "lease:" + name }
func (k keyspace) leaseToken(name string) string { return k.prefix + "lease-token:" + name }

// carrierRef is where a carrier's message id points.
type carrierRef struct {
	messageID string
	part      int
}

func (r carrierRef) encode() string { return r.messageID + " " + strconv.Itoa(r.part) }

func decodeCarrierRef(v string) (carrierRef, bool) {
	id, p, ok := strings.Cut(v, " ")
	part, err := strconv.Atoi(p)
	if !ok || err != nil || id == "" || part < 0 {
		return carrierRef{}, false
	}
	return carrierRef{messageID: id, part: part}, true
}

// Idempotency values: a record the store has made durable, or a
// reservation held while an Accept is writing.
const (
	committedTag   = "c "
	reservationTag = "r "
)

func encodeIdempotency(r sb.IdempotencyRecord) string {
	return fmt.Sprintf("%s%s %s %d", committedTag, r.MessageID, hex.EncodeToString(r.RequestHash[:]), r.CreatedAt.UnixNano())
}

// decodeIdempotency reads a committed record; a reservation, or anything
// it does not understand, is not one.
func decodeIdempotency(v string) (sb.IdempotencyRecord, bool) {
	rest, ok := strings.CutPrefix(v, committedTag)
	if !ok {
		return sb.IdempotencyRecord{}, false
	}
	f := strings.Fields(rest)
	if len(f) != 3 {
		return sb.IdempotencyRecord{}, false
	}
	var r sb.IdempotencyRecord
	h, err := hex.DecodeString(f[1])
	if err != nil || len(h) != len(r.RequestHash) {
		return sb.IdempotencyRecord{}, false
	}
	ns, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return sb.IdempotencyRecord{}, false
	}
	r.MessageID, r.CreatedAt = f[0], time.Unix(0, ns).UTC()
	copy(r.RequestHash[:], h)
	return r, true
}
