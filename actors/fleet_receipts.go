package actors

import (
	"context"
	"time"

	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/actors/wire"
)

// In a cluster every update of a message is made on the node that owns its
// key, so that the store's read-modify-write of a message never races one
// on another node. A receipt comes in on whichever node runs the bind it
// arrived on: that node finds the message (the store's carrier-id index,
// with Redis in front), and sends the receipt to the key's owner, which
// records it. A receipt whose carrier id is not indexed yet is parked by
// the store where it came in (nothing else writes a message it cannot
// find); the owner's record of the submit applies it.

// receiptToOwner records a receipt on the node that owns its message's
// key; ack answers the SMSC once it is stored (an error makes the SMSC send
// it again).
func (f *fleet) receiptToOwner(ctx context.Context, r switchboard.Receipt, ack func(error)) {
	e := f.e
	id, part, err := f.findCarrierID(ctx, r)
	if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
		// Its submit_sm_resp is late (or was lost with its connection).
		// Park it; if the id was recorded meanwhile (the owner's record
		// may have read the parked receipts before this one was parked),
		// send it to the owner after all: applying it twice is harmless.
		u := byCarrierID(r, e.now().Add(e.receiptTimeout(r.Carrier)))
		e.recordReceipt(r, u, func(err error) {
			if err != nil {
				ack(err)
				return
			}
			ack(nil) // stored: the SMSC need not send it again
			e.background(func(stop context.Context) { f.recheckParked(stop, r) })
		})
		return
	}
	if err != nil {
		ack(err)
		return
	}
	f.receiptFound(ctx, r, id, part, ack)
}

// recheckParked looks for a parked receipt's carrier id again a few times
// and, once it is indexed, sends the receipt to the key's owner: the
// owner's record of the submit reads the parked receipts before it writes
// the index, so one parked in between would wait for ever. A hand-over
// that fails (a store read, an owner leaving) is tried at the next look.
// Applying a receipt twice is harmless.
func (f *fleet) recheckParked(stop context.Context, r switchboard.Receipt) {
	var err error
	for _, after := range f.parkedRechecks {
		select {
		case <-stop.Done():
			return
		case <-time.After(after):
		}
		var id string
		var part int
		if id, part, err = f.e.store.CarrierMessage(stop, r.Carrier, r.CarrierMessageID); err != nil {
			continue
		}
		recorded := make(chan error, 1)
		f.receiptFound(stop, r, id, part, func(err error) { recorded <- err })
		select {
		case <-stop.Done():
			return
		case err = <-recorded:
		}
		if err == nil {
			return
		}
	}
	if err != nil && switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
		f.e.log.Warn().Err(err).Str("carrier_message_id", r.CarrierMessageID).
			Msg("a parked receipt's owner did not record it; it stays parked")
	}
}

// receiptWait bounds how long a node looks for a receipt's carrier id
// before it parks the receipt: the owner records the id as soon as the
// submit_sm_resp reaches it, which, through another node's bind, is a few
// milliseconds after the receipt may have come in.
const receiptWait = 10 * time.Second

// findCarrierID looks a receipt's carrier id up, again and again (2 ms,
// doubling to 200 ms) for up to receiptWait while it is not found.
func (f *fleet) findCarrierID(ctx context.Context, r switchboard.Receipt) (string, int, error) {
	giveUp := time.Now().Add(receiptWait)
	wait := 2 * time.Millisecond
	for {
		id, part, err := f.e.store.CarrierMessage(ctx, r.Carrier, r.CarrierMessageID)
		if switchboard.ErrorCode(err) != switchboard.ENOTFOUND || time.Now().After(giveUp) {
			return id, part, err
		}
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// receiptFound records a receipt matched to its message on the node that
// owns the message's key.
func (f *fleet) receiptFound(ctx context.Context, r switchboard.Receipt, id string, part int, ack func(error)) {
	e := f.e
	m, err := e.store.Message(ctx, id)
	if err != nil {
		ack(err)
		return
	}
	owner := f.owner(kindKey, m.Key)
	if owner == f.address {
		e.recordReceipt(r, e.receiptUpdate(r, m.Key, id, part), ack)
		return
	}
	if owner == "" {
		ack(switchboard.Errorf(switchboard.EUNAVAILABLE, "no node owns key %s now", m.Key))
		return
	}
	res, err := f.await(e.system.Root.RequestFuture(nodePID(owner), receiptToWire(r, m.Key, id, part), e.cfg.RequestTimeout), owner)
	switch w := res.(type) {
	case *wire.Ack:
		ack(nil)
	case *wire.Error:
		ack(errorFromWire(w))
	default:
		ack(switchboard.Errorf(switchboard.EUNAVAILABLE, "the owner of key %s did not answer: %v", m.Key, err))
	}
}

// receiptUpdate is a receipt's update of its message, fenced with the
// key's lease while this node holds it: a node that lost the key does not
// update its messages behind its new owner's back.
func (e *Engine) receiptUpdate(r switchboard.Receipt, key, id string, part int) switchboard.Update {
	return switchboard.Update{MessageID: id, Fence: e.registry.fence(key),
		Transition: switchboard.Transition{Event: r.Event(), Part: part}}
}

// ownsMessage reports whether this node owns the key of a message (false
// if it cannot tell: another node, or a later pass, will).
func (f *fleet) ownsMessage(ctx context.Context, id string) bool {
	m, err := f.e.store.Message(ctx, id)
	return err == nil && f.mine(kindKey, m.Key)
}

func receiptToWire(r switchboard.Receipt, key, id string, part int) *wire.Receipt {
	return &wire.Receipt{KeyId: key, MessageId: id, Part: int32(part), Carrier: r.Carrier, CarrierMessageId: r.CarrierMessageID,
		Status: string(r.Status), State: r.State, ErrorCode: r.ErrorCode, ReceivedAt: r.ReceivedAt.UnixNano()}
}

func receiptFromWire(w *wire.Receipt) (r switchboard.Receipt, key, id string, part int) {
	r = switchboard.Receipt{Carrier: w.Carrier, CarrierMessageID: w.CarrierMessageId, Status: switchboard.Status(w.Status),
		State: w.State, ErrorCode: w.ErrorCode, ReceivedAt: time.Unix(0, w.ReceivedAt).UTC()}
	return r, w.KeyId, w.MessageId, int(w.Part)
}
