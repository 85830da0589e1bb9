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
	id, part, err := e.store.CarrierMessage(ctx, r.Carrier, r.CarrierMessageID)
	if switchboard.ErrorCode(err) == switchboard.ENOTFOUND {
		u := switchboard.Update{Transition: switchboard.Transition{Event: r.Event(), Part: -1},
			ByCarrier: &switchboard.CarrierRef{Carrier: r.Carrier, ID: r.CarrierMessageID},
			ParkUntil: e.now().Add(e.receiptTimeout(r.Carrier))}
		e.recordReceipt(r, u, ack)
		return
	}
	if err != nil {
		ack(err)
		return
	}
	m, err := e.store.Message(ctx, id)
	if err != nil {
		ack(err)
		return
	}
	owner := f.owner(kindKey, m.Key)
	if owner == f.address {
		e.recordReceipt(r, receiptUpdate(r, id, part), ack)
		return
	}
	if owner == "" {
		ack(switchboard.Errorf(switchboard.EUNAVAILABLE, "no node owns key %s now", m.Key))
		return
	}
	res, err := e.system.Root.RequestFuture(nodePID(owner), receiptToWire(r, id, part), e.cfg.RequestTimeout).Result()
	switch w := res.(type) {
	case *wire.Ack:
		ack(nil)
	case *wire.Error:
		ack(errorFromWire(w))
	default:
		ack(switchboard.Errorf(switchboard.EUNAVAILABLE, "the owner of key %s did not answer: %v", m.Key, err))
	}
}

func receiptUpdate(r switchboard.Receipt, id string, part int) switchboard.Update {
	return switchboard.Update{MessageID: id, Transition: switchboard.Transition{Event: r.Event(), Part: part}}
}

// ownsMessage reports whether this node owns the key of a message (false
// if it cannot tell: another node, or a later pass, will).
func (f *fleet) ownsMessage(ctx context.Context, id string) bool {
	m, err := f.e.store.Message(ctx, id)
	return err == nil && f.owner(kindKey, m.Key) == f.address
}

func receiptToWire(r switchboard.Receipt, id string, part int) *wire.Receipt {
	return &wire.Receipt{MessageId: id, Part: int32(part), Carrier: r.Carrier, CarrierMessageId: r.CarrierMessageID,
		Status: string(r.Status), State: r.State, ErrorCode: r.ErrorCode, ReceivedAt: r.ReceivedAt.UnixNano()}
}

func receiptFromWire(w *wire.Receipt) (switchboard.Receipt, string, int) {
	r := switchboard.Receipt{Carrier: w.Carrier, CarrierMessageID: w.CarrierMessageId, Status: switchboard.Status(w.Status),
		State: w.State, ErrorCode: w.ErrorCode, ReceivedAt: time.Unix(0, w.ReceivedAt).UTC()}
	return r, w.MessageId, int(w.Part)
}
