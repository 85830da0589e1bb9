package smsc

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// Submit is an accepted submit_sm, as Config.OnSubmit sees it.
type Submit struct {
	SystemID   string
	BindID     uint64 // the connection, numbered from 1 in order of arrival
	MessageID  string // as submit_sm_resp carried it
	Source     string
	Dest       string
	DataCoding byte
	Data       []byte // user data without UDH (from message_payload if short_message was empty)
	// Concat is the part's place in a concatenated message, from its UDH
	// or from the SAR TLVs (then Wide is false though the reference has 16
	// bits); nil for a single message.
	Concat     *gsm.Concat
	Registered bool // a receipt was requested (registered_delivery bits 0-1)
	ReceivedAt time.Time
}

// submit handles a submit_sm and reports whether to keep serving (false
// once a fault dropped the connection: PDUs already buffered must not be
// answered by a connection that is gone).
func (ss *session) submit(p *pdu.SubmitSM, raw []byte) bool {
	if !ss.canTransmit() {
		ss.reply(p, data.ESME_RINVBNDSTS)
		return true
	}
	s := ss.srv
	f := s.faults.Load()
	ss.submits++
	if f.DropAfter > 0 && ss.submits >= f.DropAfter {
		ss.drop("drop_after")
		return false
	}
	if f.DropProbability > 0 && rand.Float64() < f.DropProbability {
		ss.drop("drop_probability")
		return false
	}
	now := time.Now()
	if f.throttle(now, s.submitSeq.Add(1)) {
		s.st.throttled.Add(1)
		ss.reply(p, data.ESME_RTHROTTLED)
		return true
	}
	if f.refuses(p, raw) {
		ss.reply(p, data.CommandStatusType(f.RefuseStatus))
		return true
	}
	ss.accept(p, raw, f, now)
	return true
}

// refuses reports whether a submit is refused for RefuseText.
func (f *faultState) refuses(p *pdu.SubmitSM, raw []byte) bool {
	if f.RefuseText == "" {
		return false
	}
	ud, _ := userData(p, raw)
	text, err := gsm.Decode(gsm.Coding(dataCoding(p, raw)), ud)
	if err != nil || !strings.Contains(text, f.RefuseText) {
		return false
	}
	if n := f.refused.Add(1); f.RefuseTimes > 0 && n > int64(f.RefuseTimes) {
		return false
	}
	return true
}

// accept answers a submit that passed the faults with a new message id and
// sets up its receipt.
func (ss *session) accept(p *pdu.SubmitSM, raw []byte, f *faultState, now time.Time) {
	s := ss.srv
	id := s.nextID.Add(1)
	resp := pdu.NewSubmitSMRespFromReq(p).(*pdu.SubmitSMResp)
	resp.SetSequenceNumber(p.GetSequenceNumber())
	resp.MessageID = s.respID(id)
	s.st.submits.Add(1)

	ud, concat := userData(p, raw)
	coding := dataCoding(p, raw)
	if s.cfg.OnSubmit != nil {
		s.cfg.OnSubmit(Submit{
			SystemID: ss.systemID, BindID: ss.id, MessageID: resp.MessageID,
			Source: p.SourceAddr.Address(), Dest: p.DestAddr.Address(),
			DataCoding: coding, Data: ud, Concat: concat,
			Registered: p.RegisteredDelivery&data.SM_SMSC_RECEIPT_MASK != 0,
			ReceivedAt: now,
		})
	}
	latency := f.Latency.Sample()
	r := ss.newReceipt(p, id, coding, ud, now, latency)
	if f.ReceiptFirst && r != nil {
		// The receipt leaves now (after its own delay), not after the
		// response: it overtakes the submit_sm_resp that names its id.
		ss.startReceipt(r)
		r = nil
	}
	if latency > 0 {
		s.sched.add(timed{at: now.Add(latency), resp: resp, sess: ss, job: r})
		return
	}
	ss.sendResp(resp, r)
}

// sendResp sends a submit_sm_resp and then starts its receipt, if any. A
// response that cannot be sent (the connection is gone) takes its receipt
// with it: the client never learnt the id.
func (ss *session) sendResp(resp pdu.PDU, r *delivery) {
	if err := ss.conn.Send(resp); err != nil || r == nil {
		return
	}
	ss.startReceipt(r)
}

// startReceipt sends a receipt after its delay.
func (ss *session) startReceipt(r *delivery) {
	s := ss.srv
	if r.delay <= 0 {
		s.deliver(r)
		return
	}
	s.schedule(time.Now().Add(r.delay), r)
}

// throttle reports whether the nth submit of the server is refused.
func (f *faultState) throttle(now time.Time, n uint64) bool {
	if f.ThrottleEvery > 0 && n%uint64(f.ThrottleEvery) == 0 {
		return true
	}
	if f.bucket != nil {
		ok, _ := f.bucket.Take(now, 1)
		return !ok
	}
	return false
}

// userData is the submit's user data, its UDH cut off, and its
// concatenation info, read as the gateway reads a deliver_sm:
// short_message as sent, or message_payload when it is empty.
func userData(p *pdu.SubmitSM, raw []byte) ([]byte, *gsm.Concat) {
	_, ud, _ := smpp.RawUserData(raw, p.OptionalParameters)
	ud, cc, found := smpp.SplitUserData(p.EsmClass, ud, p.OptionalParameters)
	if !found {
		return ud, nil
	}
	return ud, &cc
}

// dataCoding returns the submit's data_coding as it was on the wire.
func dataCoding(p *pdu.SubmitSM, raw []byte) byte {
	if enc := p.Message.Encoding(); enc != nil {
		return enc.DataCoding()
	}
	c, _ := smpp.ShortMessageCoding(raw)
	return c
}
