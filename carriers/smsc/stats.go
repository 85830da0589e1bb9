package smsc

import "sync/atomic"

// Stats are the server's counters since Listen. Totals only grow; Binds,
// ReceiptsPending and InFlight are current values.
type Stats struct {
	Binds        int64 // connections bound now
	BindsTotal   int64 // successful binds
	BindsRefused int64 // binds answered with an error status

	Submits   int64 // submit_sm accepted with ESME_ROK
	Throttled int64 // submit_sm answered ESME_RTHROTTLED
	Drops     int64 // connections aborted by a fault or DropAll

	// ReceiptsSent counts receipts acknowledged with ESME_ROK, by stat word
	// (all four words are present). A receipt sent again counts once.
	ReceiptsSent map[string]int64
	// ReceiptsPending counts receipts scheduled, waiting for a receiver
	// bind, or waiting to be sent again.
	ReceiptsPending int64
	// ReceiptsDropped counts receipts and inbound parts dropped because
	// Config.MaxPending were already waiting.
	ReceiptsDropped int64
	// InFlight counts deliver_sm (receipts and inbound) sent and not yet
	// answered.
	InFlight int64

	MOSent       int64 // inbound deliver_sm parts acknowledged with ESME_ROK
	EnquireLinks int64 // enquire_link received
	GenericNacks int64 // generic_nack sent
}

// counters are the atomics behind Stats.
type counters struct {
	binds, bindsTotal, bindsRefused   atomic.Int64
	submits, throttled, drops         atomic.Int64
	receiptsSent                      [numOutcomes]atomic.Int64
	receiptsPending, receiptsDropped  atomic.Int64
	queued                            atomic.Int64 // receipts and inbound parts waiting, for MaxPending
	inFlight                          atomic.Int64
	moSent, enquireLinks, genericNack atomic.Int64
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Binds:           c.binds.Load(),
		BindsTotal:      c.bindsTotal.Load(),
		BindsRefused:    c.bindsRefused.Load(),
		Submits:         c.submits.Load(),
		Throttled:       c.throttled.Load(),
		Drops:           c.drops.Load(),
		ReceiptsSent:    make(map[string]int64, numOutcomes),
		ReceiptsPending: c.receiptsPending.Load(),
		ReceiptsDropped: c.receiptsDropped.Load(),
		InFlight:        c.inFlight.Load(),
		MOSent:          c.moSent.Load(),
		EnquireLinks:    c.enquireLinks.Load(),
		GenericNacks:    c.genericNack.Load(),
	}
	for o := range numOutcomes {
		st.ReceiptsSent[string(o.state())] = c.receiptsSent[o].Load()
	}
	return st
}
