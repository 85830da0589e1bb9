package pebble

import (
	"errors"
	"fmt"
	"slices"

	pebbledb "github.com/cockroachdb/pebble/v2"
	sb "github.com/switchboard-sms/switchboard"
)

// Parked updates. A receipt names only the carrier's id; when no message
// has that id yet (the receipt overtook its submit_sm_resp, or the record
// of the submit), Record parks the update under r/⟨carrier⟩⟨carrier id⟩
// until its ParkUntil. The Record that indexes the id applies what is
// parked for it, in the same write, and deletes it; retention deletes what
// is left at ParkUntil.

// maxParkedPerID bounds the updates parked for one carrier id. A part
// settles once, so beyond the first final receipt more are duplicates; the
// bound keeps a carrier that repeats a receipt for an id we never sent
// from growing one value without end. The oldest are dropped first.
const maxParkedPerID = 16

// parkedEntry is the list parked under one key as a request or a round
// left it; gone marks a key deleted.
type parkedEntry struct {
	ps   []parkedUpdate
	gone bool
}

// park parks an update by carrier id that found no message.
func (c *committer) park(u *sb.Update) error {
	if !u.ParkUntil.After(c.now()) {
		return nil // nothing to keep: the caller only asked whether the id is known
	}
	k := string(parkedKey(c.key[:0], u.ByCarrier.Carrier, u.ByCarrier.ID))
	ps, err := c.parkedAt(k)
	if err != nil {
		return err
	}
	ps = append(slices.Clip(ps), parkedUpdate{until: u.ParkUntil, t: u.Transition})
	if len(ps) > maxParkedPerID {
		ps = ps[len(ps)-maxParkedPerID:]
	}
	c.parked[k] = parkedEntry{ps: ps}
	c.expiries = append(c.expiries, expiry{kind: expiryParked, at: u.ParkUntil, target: k})
	return nil
}

// unpark applies to m, a private copy the request is changing, the
// updates parked for one of its parts' carrier ids that have not expired
// and can answer the transition that gave the id (sb.ParkedReceiptFits),
// and deletes them all.
func (c *committer) unpark(m *sb.Message, carrier, carrierID string, part int, indexing *sb.Transition) error {
	k := string(parkedKey(c.key[:0], carrier, carrierID))
	ps, err := c.parkedAt(k)
	if err != nil || len(ps) == 0 {
		return err
	}
	now := c.now()
	for _, p := range ps {
		if !p.until.After(now) {
			continue
		}
		if !sb.ParkedReceiptFits(p.t.Event.At, *indexing) {
			c.log.Warn().Str("carrier", carrier).Str("carrier_message_id", carrierID).Str("message", m.ID).
				Time("receipt_read", p.t.Event.At).Time("submitted", indexing.Event.At).
				Msg("pebble: a receipt parked long before this submit is taken for an earlier message with the same carrier id; dropped")
			continue
		}
		t := p.t
		t.Part = part
		m.Apply(t)
	}
	c.parked[k] = parkedEntry{gone: true}
	return nil
}

// parkedAt returns what is parked under k: as this request left it, as
// the round left it, or as stored. The caller must not change the slice.
func (c *committer) parkedAt(k string) ([]parkedUpdate, error) {
	if e, ok := c.parked[k]; ok {
		return e.ps, nil
	}
	if e, ok := c.overlay.parked[k]; ok {
		return e.ps, nil
	}
	if _, ok := c.parkedKeys[k]; !ok && c.parkedKeys != nil {
		return nil, nil // nothing stored under k: the usual answer, without a Get
	}
	v, closer, err := c.db.Get([]byte(k))
	if errors.Is(err, pebbledb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	ps, err := decodeParked(v)
	if err != nil {
		return nil, fmt.Errorf("parked updates %q: %w", k, err)
	}
	return ps, nil
}

// writeParked stores (or, empty, deletes) the list parked under k and
// enters it into the overlay.
func (c *committer) writeParked(k string, e parkedEntry, b *pebbledb.Batch) error {
	c.overlay.parked[k] = e
	if e.gone || len(e.ps) == 0 {
		delete(c.parkedKeys, k)
		return b.Delete([]byte(k), nil)
	}
	c.trackParked(k)
	c.val = appendParked(c.val[:0], e.ps)
	return b.Set([]byte(k), c.val, nil)
}

// loadParkedKeys fills parkedKeys from the database; the committer must
// not be running yet.
func (c *committer) loadParkedKeys() error {
	prefix := []byte(prefixParked)
	it, err := c.db.NewIter(&pebbledb.IterOptions{LowerBound: prefix, UpperBound: successor(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok && c.parkedKeys != nil; ok = it.Next() {
		c.trackParked(string(it.Key()))
	}
	return errors.Join(it.Error(), it.Close())
}

// defaultMaxParked bounds parkedKeys (about 100 bytes a key).
const defaultMaxParked = 100_000

// trackParked adds k to parkedKeys, or drops the set once it would hold
// more than maxParked keys (until the store is opened again).
func (c *committer) trackParked(k string) {
	if c.parkedKeys == nil {
		return
	}
	if _, ok := c.parkedKeys[k]; !ok && len(c.parkedKeys) >= c.maxParked {
		c.log.Warn().Int("parked_ids", len(c.parkedKeys)).
			Msg("pebble: many receipts wait for carrier ids not sent yet; each look-up now asks the database")
		c.parkedKeys = nil
		return
	}
	c.parkedKeys[k] = struct{}{}
}
