package smpp

import "sync/atomic"

// Stats counts what a Client did since it was made.
type Stats struct {
	Binds      int64 // successful binds (each reconnect adds one)
	Reconnects int64 // connections lost or binds failed, each followed by a wait
	Submits    int64 // submit_sm parts written
	Accepted   int64 // parts answered ESME_ROK
	Refused    int64 // parts answered with an error status
	Throttled  int64 // of Refused: ESME_RTHROTTLED or ESME_RMSGQFUL
	Timeouts   int64 // parts with no response in time
	Lost       int64 // parts in flight when their connection ended
	Receipts   int64 // receipts decoded and handed to OnReceipt
	Inbound    int64 // mobile-originated parts handed to OnInbound
	BadDeliver int64 // deliver_sm / data_sm that could not be understood (logged)
	// ReceiveWindowFull counts the times the reader waited for an ack
	// because Config.ReceiveWindow deliveries were unacknowledged.
	ReceiveWindowFull int64
}

type counters struct {
	binds, reconnects, submits, accepted, refused, throttled atomic.Int64
	timeouts, lost, receipts, inbound, badDeliver            atomic.Int64
	receiveWindowFull                                        atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	s := &c.stats
	return Stats{
		Binds: s.binds.Load(), Reconnects: s.reconnects.Load(), Submits: s.submits.Load(),
		Accepted: s.accepted.Load(), Refused: s.refused.Load(), Throttled: s.throttled.Load(),
		Timeouts: s.timeouts.Load(), Lost: s.lost.Load(), Receipts: s.receipts.Load(),
		Inbound: s.inbound.Load(), BadDeliver: s.badDeliver.Load(), ReceiveWindowFull: s.receiveWindowFull.Load(),
	}
}
