package smpp

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
)

// esm_class message types (bits 2–5) that carry a delivery report.
const (
	esmReceipt      = 0x04 // SMSC delivery receipt
	esmIntermediate = 0x20 // intermediate delivery notification
	esmTypeMask     = 0x3C
)

// delivered handles a deliver_sm: a receipt or an inbound message.
func (c *Client) delivered(s *session, p *pdu.DeliverSM, raw []byte) {
	ack := c.acker(s, p)
	coding, ud, ok := RawUserData(raw, p.OptionalParameters)
	if !ok {
		c.stats.badDeliver.Add(1)
		c.log.Warn().Msg("smpp deliver_sm too short to hold its short_message; acknowledged and dropped")
		ack(nil)
		return
	}
	c.deliver(delivery{
		esm: p.EsmClass, from: p.SourceAddr, to: p.DestAddr,
		coding: coding, ud: ud, tlv: p.OptionalParameters,
	}, ack)
}

// dataDelivered handles a data_sm, whose payload and receipt fields are
// all in TLVs.
func (c *Client) dataDelivered(s *session, p *pdu.DataSM) {
	ack := c.acker(s, p)
	c.deliver(delivery{
		esm: p.EsmClass, from: p.SourceAddr, to: p.DestAddr, coding: p.DataCoding,
		ud: tlvBytes(p.OptionalParameters, pdu.TagMessagePayload), tlv: p.OptionalParameters,
	}, ack)
}

// delivery is what deliver_sm and data_sm have in common, so that one
// function reads both.
type delivery struct {
	esm      byte
	from, to pdu.Address
	coding   byte
	ud       []byte // the user data as sent, a UDH included
	tlv      map[pdu.Tag]pdu.Field
}

// deliver hands on a delivery: a receipt, or a mobile-originated part with
// its concatenation info.
func (c *Client) deliver(d delivery, ack func(error)) {
	if isReceipt(d.esm) {
		// Its text, a UDH cut off; no receipt is part of a long message.
		text, _, _ := SplitUserData(d.esm, d.ud, nil)
		c.receipt(receiptText(d.coding, text), d.tlv, ack)
		return
	}
	ud, concat := userData(d.esm, d.ud, d.tlv)
	part := switchboard.InboundPart{
		Carrier: c.cfg.Name, From: address(d.from), To: address(d.to),
		DataCoding: d.coding, Payload: ud, Concat: concat, ReceivedAt: time.Now(),
	}
	c.stats.inbound.Add(1)
	if c.cfg.OnInbound == nil {
		c.log.Debug().Str("from", part.From).Msg("smpp inbound message with no handler; acknowledged")
		ack(nil)
		return
	}
	c.cfg.OnInbound(part, ack)
}

// address writes an SMPP address as the API writes numbers: an
// international one (TON 1), which SMPP carries without its "+" (some
// carriers write the "00" of an international call prefix instead), as
// E.164 ("+" and the digits); any other (national digits, a short code, an
// alphanumeric sender) as the carrier sent it.
func address(a pdu.Address) string {
	s := a.Address()
	if a.Ton() == data.GSM_TON_INTERNATIONAL && s != "" && strings.Trim(s, "0123456789") == "" {
		return "+" + strings.TrimPrefix(s, "00")
	}
	return s
}

func isReceipt(esm byte) bool {
	t := esm & esmTypeMask
	return t == esmReceipt || t == esmIntermediate
}

// acker returns the ack for one deliver_sm/data_sm: OK, or ESME_RX_T_APPN
// ("temporary application error") so the SMSC keeps it and tries again.
// It takes a place in the receive window first, waiting on the reading
// goroutine while the window is full (or until the connection ends; the
// wait does not count against the deadlines of our requests, whose
// answers it leaves unread); the ack gives the place back.
func (c *Client) acker(s *session, req pdu.PDU) func(error) {
	select {
	case s.unacked <- struct{}{}:
	default:
		c.stats.receiveWindowFull.Add(1)
		s.park(time.Now())
		select {
		case s.unacked <- struct{}{}:
		case <-s.conn.Done():
		}
		s.unpark()
	}
	return func(err error) {
		status := data.ESME_ROK
		if err != nil {
			status = data.ESME_RX_T_APPN
			c.log.Warn().Err(err).Msg("smpp delivery not stored; asked the SMSC to retry")
		}
		_ = s.conn.Send(Response(req, status))
		select { // never blocks, so an ack called twice (against the contract) cannot hang its caller
		case <-s.unacked:
		default:
		}
	}
}

// receipt decodes a delivery report from its TLVs and/or its text.
func (c *Client) receipt(text string, tlv map[pdu.Tag]pdu.Field, ack func(error)) {
	r, ok := decodeReceipt(text, tlv, c.cfg.IDFormat, c.cfg.ReceiptLocation)
	if !ok {
		// Retrying cannot make it readable; refusing would loop forever.
		c.stats.badDeliver.Add(1)
		c.log.Warn().Msg("smpp receipt without a message id; acknowledged and dropped")
		ack(nil)
		return
	}
	r.Carrier = c.cfg.Name
	c.stats.receipts.Add(1)
	if c.cfg.OnReceipt == nil {
		ack(nil)
		return
	}
	c.cfg.OnReceipt(r, ack)
}

// receiptText is a receipt's text as ASCII, up to its first NUL (SMSCs
// that write C strings end it so, and some leave a reused buffer's bytes
// after it). A few SMSCs write it in UCS-2; others copy the submit's
// data_coding (8) into the receipt and write ASCII all the same. Only text
// that reads as UCS-2 of ASCII, its first octet a NUL, is decoded ("id:…"
// in UCS-2 begins 00 69); a single NUL octet ending it, a C string's, is
// dropped first.
func receiptText(coding byte, text []byte) string {
	s := ""
	if gsm.Coding(coding) == gsm.UCS2 && len(text) >= 2 && text[0] == 0 {
		ucs2 := text
		if len(ucs2)%2 == 1 && ucs2[len(ucs2)-1] == 0 {
			ucs2 = ucs2[:len(ucs2)-1]
		}
		if d, err := gsm.DecodeUCS2(ucs2); err == nil {
			s = d
		}
	}
	if s == "" {
		s = string(text)
	}
	if i := strings.IndexByte(s, 0); i > 0 {
		s = s[:i]
	}
	return s
}

// tlvID normalises a receipted_message_id TLV, given the id normalised
// from the receipt's text ("" if none). SMPP 3.4 (5.3.2.12) has the TLV
// carry the id as submit_sm_resp did, hex for hex_resp_decimal_receipt;
// SMSCs exist that write it in decimal like the text. So a TLV that
// matches the text read the text's way is taken so; otherwise it is read
// as the response's id, and wins over the text.
func tlvID(v, textID string, idf receipt.IDFormat) string {
	if textID != "" && idf.NormalizeReceipt(v) == textID {
		return textID
	}
	return idf.NormalizeResp(v)
}

// decodeReceipt prefers the TLVs (receipted_message_id, message_state,
// network_error_code) and falls back on the text form field by field.
func decodeReceipt(text string, tlv map[pdu.Tag]pdu.Field, idf receipt.IDFormat, loc *time.Location) (switchboard.Receipt, bool) {
	f, _ := receipt.Parse(text, loc)
	id := idf.NormalizeReceipt(f.ID)
	// An empty TLV (some SMSCs send a lone NUL) leaves the text's id.
	if v, ok := tlv[pdu.TagReceiptedMessageID]; ok && v.String() != "" {
		id = tlvID(v.String(), id, idf)
	}
	state := f.Stat
	// Only a defined message_state (1–8) overrides the text: SMSCs exist that
	// write the TLV as an ASCII digit, which must not turn DELIVRD into UNKNOWN.
	if v, ok := tlv[pdu.TagMessageStateOption]; ok && len(v.Data) == 1 && v.Data[0] >= 1 && v.Data[0] <= 8 {
		state = receipt.StateFromMessageState(v.Data[0])
	}
	code := f.Err
	if v, ok := tlv[pdu.TagNetworkErrorCode]; ok && len(v.Data) == 3 && (code == "" || code == "000") {
		if n := binary.BigEndian.Uint16(v.Data[1:]); n != 0 {
			code = strconv.Itoa(int(n))
		}
	}
	if id == "" {
		return switchboard.Receipt{}, false
	}
	return switchboard.Receipt{
		CarrierMessageID: id,
		Status:           statusOf(state),
		State:            string(state),
		ErrorCode:        code,
		SubmittedAt:      f.SubmitDate,
		DoneAt:           f.DoneDate,
		ReceivedAt:       time.Now(),
	}, true
}

// statusOf maps a carrier's final state to ours; "" for intermediate ones.
func statusOf(s receipt.State) switchboard.Status {
	switch s {
	case receipt.Delivered:
		return switchboard.StatusDelivered
	case receipt.Expired:
		return switchboard.StatusExpired
	case receipt.Rejected:
		return switchboard.StatusRejected
	case receipt.Enroute, receipt.Accepted, "":
		return ""
	}
	return switchboard.StatusUndeliverable // UNDELIV, DELETED, UNKNOWN and words we do not know
}

// userData is SplitUserData with the concatenation info as the gateway
// hands it on.
func userData(esm byte, ud []byte, tlv map[pdu.Tag]pdu.Field) ([]byte, *switchboard.Concat) {
	ud, cc, found := SplitUserData(esm, ud, tlv)
	if !found {
		return ud, nil
	}
	return ud, concatOf(cc)
}

// SplitUserData cuts the UDH off user data sent with UDHI set in esm, and
// reads the concatenation info from the UDH's concatenation element or,
// failing that, from the SAR TLVs (found says whether either named a
// part). User data whose UDH cannot be read is kept whole, and values no
// part can have are ignored, as TS 23.040 has a receiver do: the part is
// then delivered as a whole message, where refusing it could only be a
// temporary refusal, which the SMSC would meet by sending it forever. The
// simulator reads submits with it, so both ends of the wire agree.
func SplitUserData(esm byte, ud []byte, tlv map[pdu.Tag]pdu.Field) ([]byte, gsm.Concat, bool) {
	if esm&data.SM_UDH_GSM != 0 {
		if cc, found, n, err := gsm.ParseUDH(ud); err == nil {
			ud = ud[n:]
			if found {
				return ud, cc, true
			}
		}
	}
	cc, ok := SARConcat(tlv)
	return ud, cc, ok
}

// SARConcat reads sar_msg_ref_num, sar_total_segments and
// sar_segment_seqnum, the TLV alternative to a concatenation UDH: ok if all
// three are there, of their sizes, and name a part (gsm.Concat.Valid).
func SARConcat(tlv map[pdu.Tag]pdu.Field) (cc gsm.Concat, ok bool) {
	ref, okRef := tlv[pdu.TagSarMsgRefNum]
	total, okTotal := tlv[pdu.TagSarTotalSegments]
	seq, okSeq := tlv[pdu.TagSarSegmentSeqnum]
	if !okRef || !okTotal || !okSeq || len(ref.Data) != 2 || len(total.Data) != 1 || len(seq.Data) != 1 {
		return gsm.Concat{}, false
	}
	cc = gsm.Concat{Ref: binary.BigEndian.Uint16(ref.Data), Total: total.Data[0], Seq: seq.Data[0]}
	return cc, cc.Valid()
}

func concatOf(cc gsm.Concat) *switchboard.Concat {
	return &switchboard.Concat{Ref: cc.Ref, Total: cc.Total, Seq: cc.Seq}
}

func tlvBytes(tlv map[pdu.Tag]pdu.Field, tag pdu.Tag) []byte {
	if v, ok := tlv[tag]; ok {
		return v.Data
	}
	return nil
}

// ShortMessageCoding reads data_coding from a raw submit_sm or deliver_sm
// (their bodies share one layout up to it). gosmpp keeps only a decoded
// Encoding, which is nil for values it does not know (such as 0xF0, flash
// class 0), and both sides of the wire must report the byte as it was.
func ShortMessageCoding(raw []byte) (byte, bool) {
	i, ok := dataCodingOffset(raw)
	if !ok {
		return 0, false
	}
	return raw[i], true
}

// RawUserData reads data_coding and the user data of a raw submit_sm or
// deliver_sm: short_message, or message_payload (of tlv) when that is
// empty, as sent, a UDH included. gosmpp cuts a UDH off short_message but
// never off message_payload; reading the bytes here lets SplitUserData
// split both alike. ok is false if raw is too short to hold a
// short_message.
func RawUserData(raw []byte, tlv map[pdu.Tag]pdu.Field) (coding byte, ud []byte, ok bool) {
	i, ok := dataCodingOffset(raw)
	// data_coding, sm_default_msg_id, sm_length, short_message
	if !ok || i+3 > len(raw) {
		return 0, nil, false
	}
	end := i + 3 + int(raw[i+2])
	if end > len(raw) {
		return 0, nil, false
	}
	if ud = raw[i+3 : end : end]; len(ud) == 0 {
		ud = tlvBytes(tlv, pdu.TagMessagePayload)
	}
	return raw[i], ud, true
}

// dataCodingOffset finds data_coding in a raw submit_sm or deliver_sm:
// after esm_class, protocol_id, priority_flag, schedule_delivery_time,
// validity_period, registered_delivery and replace_if_present_flag.
func dataCodingOffset(raw []byte) (int, bool) {
	i, ok := esmClassOffset(raw)
	if !ok {
		return 0, false
	}
	i += 3
	for range 2 {
		if i, ok = skipCString(raw, i); !ok {
			return 0, false
		}
	}
	i += 2
	if i >= len(raw) {
		return 0, false
	}
	return i, true
}

// esmClassOffset finds esm_class in a raw submit_sm or deliver_sm: after
// service_type, the source (ton, npi, addr) and the destination.
func esmClassOffset(raw []byte) (int, bool) {
	i, ok := skipCString(raw, headerLength)
	for range 2 {
		if !ok || i+2 > len(raw) {
			return 0, false
		}
		i, ok = skipCString(raw, i+2)
	}
	if !ok || i >= len(raw) {
		return 0, false
	}
	return i, true
}

// skipCString returns the offset after the NUL-terminated string at i.
func skipCString(raw []byte, i int) (int, bool) {
	if i > len(raw) {
		return 0, false
	}
	if n := bytes.IndexByte(raw[i:], 0); n >= 0 {
		return i + n + 1, true
	}
	return 0, false
}
