package smsc

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// esm_class values of the deliver_sm the simulator sends.
const (
	esmReceipt = 0x04 // SMSC delivery receipt
	esmUDHI    = 0x40 // short_message starts with a UDH
)

// delivery is one deliver_sm to send until a receiver acknowledges it: a
// receipt or one part of an inbound message. It is rebuilt with a fresh
// sequence number on every attempt.
type delivery struct {
	acct     *account // the system_id's receivers
	prefer   *session // TargetSame: the submitting bind; nil: any
	src, dst pdu.Address
	esmClass byte
	coding   byte
	payload  []byte // short_message, UDH included; at most 254 octets

	// Receipts only: the id as submit_sm_resp wrote it (for the
	// receipted_message_id TLV, as SMPP 3.4 says), whether to send the
	// TLVs at all, and the outcome.
	respID    string
	tlvs      bool
	outcome   outcome
	isReceipt bool

	sar *sar // inbound parts sent with SAR TLVs instead of a UDH

	delay time.Duration // receipts: wait after the submit_sm_resp before the first attempt
}

// sar is the SAR TLV triple of one part.
type sar struct {
	ref        uint16
	total, seq byte
}

// build makes the deliver_sm for one attempt.
func (d *delivery) build(seq int32) *pdu.DeliverSM {
	p := pdu.NewDeliverSM().(*pdu.DeliverSM)
	p.SetSequenceNumber(seq)
	p.SourceAddr, p.DestAddr = d.src, d.dst
	p.EsmClass = d.esmClass
	// payload was bounded when d was made, so this cannot fail.
	_ = p.Message.SetMessageDataWithEncoding(d.payload, smpp.DataCoding(d.coding))
	if d.isReceipt && d.tlvs {
		p.RegisterOptionalParam(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: append([]byte(d.respID), 0)})
		p.RegisterOptionalParam(pdu.Field{Tag: pdu.TagMessageStateOption, Data: []byte{d.outcome.state().MessageState()}})
	}
	if d.sar != nil {
		p.RegisterOptionalParam(pdu.Field{Tag: pdu.TagSarMsgRefNum, Data: []byte{byte(d.sar.ref >> 8), byte(d.sar.ref)}})
		p.RegisterOptionalParam(pdu.Field{Tag: pdu.TagSarTotalSegments, Data: []byte{d.sar.total}})
		p.RegisterOptionalParam(pdu.Field{Tag: pdu.TagSarSegmentSeqnum, Data: []byte{d.sar.seq}})
	}
	return p
}

// deliver sends d to a receiver of its system_id now, or queues it: until a
// receiver binds when there is none, or for a retry when sending failed or
// the server hangs.
func (s *Server) deliver(d *delivery) {
	if s.faults.Load().Hang {
		s.retryLater(d)
		return
	}
	target := d.acct.pickOrWait(s, d)
	if target == nil {
		return
	}
	if !target.send(d) {
		s.retryLater(d)
	}
}

// retryLater sends d again after RetryDelay to twice that, with jitter so
// that a burst of refusals does not come back as one burst.
func (s *Server) retryLater(d *delivery) {
	wait := s.cfg.RetryDelay + rand.N(s.cfg.RetryDelay+1)
	s.schedule(time.Now().Add(wait), d)
}

// schedule queues d to be delivered at t.
func (s *Server) schedule(t time.Time, d *delivery) {
	if !s.reserve(d) {
		return
	}
	if !s.sched.add(timed{at: t, job: d}) {
		s.release(d) // closing: nothing will be sent any more
	}
}

// reserve counts d as waiting, or drops it when MaxPending are waiting.
func (s *Server) reserve(d *delivery) bool {
	if s.st.queued.Add(1) > int64(s.cfg.MaxPending) {
		s.st.queued.Add(-1)
		if s.st.receiptsDropped.Add(1) == 1 {
			s.log.Warn().Int("max_pending", s.cfg.MaxPending).
				Msg("smsc pending deliveries full; dropping receipts and inbound messages (counted in stats)")
		}
		return false
	}
	if d.isReceipt {
		s.st.receiptsPending.Add(1)
	}
	return true
}

// release undoes reserve when d leaves the queue.
func (s *Server) release(d *delivery) {
	s.st.queued.Add(-1)
	if d.isReceipt {
		s.st.receiptsPending.Add(-1)
	}
}

// acknowledged records a deliver_sm_resp for d.
func (s *Server) acknowledged(d *delivery, ok bool) {
	switch {
	case !ok:
		s.retryLater(d)
	case d.isReceipt:
		s.st.receiptsSent[d.outcome].Add(1)
	default:
		s.st.moSent.Add(1)
	}
}

// fire runs one scheduled item on the scheduler's goroutine.
func (s *Server) fire(it timed) {
	if it.resp != nil {
		it.sess.sendResp(it.resp, it.job)
		return
	}
	s.release(it.job)
	s.deliver(it.job)
}

// account holds the receiver binds of one system_id and the deliveries
// waiting for one to bind.
type account struct {
	mu        sync.Mutex
	receivers []*session
	next      int // round-robin position
	waiting   []*delivery
}

// pickOrWait returns the bind to send d on, or nil after queueing d (or
// dropping it when the queue is full) because no receiver is bound.
func (a *account) pickOrWait(s *Server, d *delivery) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.receivers) == 0 {
		if s.reserve(d) {
			a.waiting = append(a.waiting, d)
		}
		return nil
	}
	if d.prefer != nil {
		for _, r := range a.receivers {
			if r == d.prefer {
				return r
			}
		}
	}
	a.next++
	if a.next >= len(a.receivers) {
		a.next = 0
	}
	return a.receivers[a.next]
}

// add registers a receiver bind and returns the deliveries that waited for
// one; the caller delivers them outside the lock.
func (a *account) add(ss *session) []*delivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.receivers = append(a.receivers, ss)
	w := a.waiting
	a.waiting = nil
	return w
}

func (a *account) takeWaiting() []*delivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.waiting
	a.waiting = nil
	return w
}

func (a *account) remove(ss *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.receivers {
		if r == ss {
			a.receivers = slices.Delete(a.receivers, i, i+1)
			return
		}
	}
}

func (a *account) hasReceiver() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.receivers) > 0
}

// receiptExcerpt is the text: field of a receipt, the start of the
// message. Only characters that read the same in ASCII and in the GSM 7-bit
// alphabet are kept, others become '?', so the receipt means the same to
// clients that decode it either way. Other codings give no text.
func receiptExcerpt(coding byte, ud []byte) string {
	const max = 20
	var buf [max]byte
	n := 0
	switch coding {
	case 0x00, 0x01, 0x03: // GSM7 unpacked, IA5, Latin-1: one octet a character
		for ; n < max && n < len(ud); n++ {
			buf[n] = safeChar(rune(ud[n]))
		}
	case 0x08: // UCS2
		for ; n < max && 2*n+1 < len(ud); n++ {
			buf[n] = safeChar(rune(ud[2*n])<<8 | rune(ud[2*n+1]))
		}
	}
	return string(buf[:n])
}

func safeChar(r rune) byte {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return byte(r)
	case r == ' ', r == '!', r == '"', r == '#', '%' <= r && r <= '/', ':' <= r && r <= '?':
		return byte(r)
	}
	return '?'
}

// newReceipt builds the receipt for an accepted submit, or returns nil if
// registered_delivery asks for none (or only for failures, and it
// succeeded). latency is how long the submit_sm_resp is held back.
func (ss *session) newReceipt(p *pdu.SubmitSM, id uint64, coding byte, ud []byte, now time.Time, latency time.Duration) *delivery {
	rd := p.RegisteredDelivery & data.SM_SMSC_RECEIPT_MASK
	if rd == data.SM_SMSC_RECEIPT_NOT_REQUESTED {
		return nil
	}
	s := ss.srv
	o := s.cfg.Outcomes.pick()
	if rd == data.SM_SMSC_RECEIPT_ON_FAILURE && o == outDelivered {
		return nil
	}
	delay := s.cfg.ReceiptDelay.Sample()
	text := receipt.Format(receipt.Fields{
		ID:         s.receiptID(id),
		SubmitDate: now.UTC(),
		DoneDate:   now.Add(latency + delay).UTC(),
		Stat:       o.state(),
		Err:        o.errCode(),
		Text:       receiptExcerpt(coding, ud),
	})
	d := &delivery{
		acct:      ss.acct,
		src:       p.DestAddr,
		dst:       p.SourceAddr,
		esmClass:  esmReceipt,
		payload:   []byte(text),
		respID:    s.respID(id),
		tlvs:      !s.cfg.TextOnlyReceipts,
		outcome:   o,
		isReceipt: true,
		delay:     delay,
	}
	if s.cfg.ReceiptTarget == TargetSame {
		d.prefer = ss
	}
	return d
}
