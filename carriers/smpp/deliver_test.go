package smpp

import (
	"bytes"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
)

func TestDecodeReceipt(t *testing.T) {
	text := "id:0001A2 sub:001 dlvrd:000 submit date:2601011200 done date:2601011205 stat:UNDELIV err:034 text:hello"
	tlv := func(fields ...pdu.Field) map[pdu.Tag]pdu.Field {
		m := map[pdu.Tag]pdu.Field{}
		for _, f := range fields {
			m[f.Tag] = f
		}
		return m
	}
	tests := []struct {
		name   string
		text   string
		tlv    map[pdu.Tag]pdu.Field
		idf    receipt.IDFormat
		id     string
		status switchboard.Status
		code   string
	}{
		{name: "text only", text: text, id: "0001A2", status: switchboard.StatusUndeliverable, code: "034"},
		{name: "text, hex ids normalised", text: text, idf: receipt.IDHex, id: "418", status: switchboard.StatusUndeliverable, code: "034"},
		{
			name: "TLVs win over text",
			text: text,
			tlv: tlv(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte("77\x00")},
				pdu.Field{Tag: pdu.TagMessageStateOption, Data: []byte{2}}),
			id: "77", status: switchboard.StatusDelivered, code: "034",
		},
		{
			name: "TLVs only, network error code",
			tlv: tlv(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte("abc\x00")},
				pdu.Field{Tag: pdu.TagMessageStateOption, Data: []byte{5}},
				pdu.Field{Tag: pdu.TagNetworkErrorCode, Data: []byte{3, 0, 11}}),
			id: "abc", status: switchboard.StatusUndeliverable, code: "11",
		},
		{
			name: "an undefined message_state does not override the text",
			text: "id:5 stat:DELIVRD err:000",
			tlv:  tlv(pdu.Field{Tag: pdu.TagMessageStateOption, Data: []byte{'2'}}),
			id:   "5", status: switchboard.StatusDelivered, code: "000",
		},
		{
			name: "an empty receipted_message_id leaves the text's id",
			text: "id:5 stat:DELIVRD err:000",
			tlv:  tlv(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte{0}}),
			id:   "5", status: switchboard.StatusDelivered, code: "000",
		},
		{
			// SMPP 3.4, 5.3.2.12: the TLV holds the id as submit_sm_resp
			// did, hex here, where the text has it in decimal.
			name: "hex_resp_decimal_receipt: the TLV's id is read as the response's",
			text: "id:6699 stat:DELIVRD err:000",
			tlv:  tlv(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte("1a2b\x00")}),
			idf:  receipt.IDHexResp, id: "6699", status: switchboard.StatusDelivered, code: "000",
		},
		{name: "hex_resp_decimal_receipt, text only", text: "id:6699 stat:DELIVRD err:000", idf: receipt.IDHexResp,
			id: "6699", status: switchboard.StatusDelivered, code: "000"},
		{
			name: "hex_resp_decimal_receipt: a TLV in decimal like the text is read as the text",
			text: "id:6699 stat:DELIVRD err:000",
			tlv:  tlv(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte("6699\x00")}),
			idf:  receipt.IDHexResp, id: "6699", status: switchboard.StatusDelivered, code: "000",
		},
		{
			name: "hex_resp_decimal_receipt: a TLV alone is read as the response's id",
			tlv:  tlv(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte("1a2b\x00")}, pdu.Field{Tag: pdu.TagMessageStateOption, Data: []byte{2}}),
			idf:  receipt.IDHexResp, id: "6699", status: switchboard.StatusDelivered,
		},
		{name: "a C string's NUL after the state", text: "id:5 stat:DELIVRD\x00", id: "5", status: switchboard.StatusDelivered},
		{
			name: "a C string's NUL after the error code hides no network_error_code",
			text: "id:5 stat:UNDELIV err:000\x00",
			tlv:  tlv(pdu.Field{Tag: pdu.TagNetworkErrorCode, Data: []byte{3, 0, 11}}),
			id:   "5", status: switchboard.StatusUndeliverable, code: "11",
		},
		{name: "intermediate", text: "id:9 stat:ENROUTE", id: "9", status: ""},
		{name: "expired", text: "id:9 stat:EXPIRED", id: "9", status: switchboard.StatusExpired},
		{name: "rejected", text: "id:9 stat:REJECTD", id: "9", status: switchboard.StatusRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := decodeReceipt(tc.text, tc.tlv, tc.idf, time.UTC)
			if !ok {
				t.Fatal("not decoded")
			}
			if r.CarrierMessageID != tc.id || r.Status != tc.status || r.ErrorCode != tc.code {
				t.Fatalf("got id %q status %q code %q, want %q %q %q", r.CarrierMessageID, r.Status, r.ErrorCode, tc.id, tc.status, tc.code)
			}
		})
	}
	if _, ok := decodeReceipt("no fields here", nil, "", nil); ok {
		t.Fatal("text without an id decoded as a receipt")
	}
}

// A receipt sent in UCS-2 (data_coding 8) is read as its text, not as
// the bytes, where no field is found.
func TestUCS2ReceiptTextIsDecoded(t *testing.T) {
	want := "id:5 stat:DELIVRD err:000"
	text := receiptText(byte(gsm.UCS2), gsm.EncodeUCS2(nil, want))
	if text != want {
		t.Fatalf("receipt text %q, want %q", text, want)
	}
	if r, ok := decodeReceipt(text, nil, "", time.UTC); !ok || r.CarrierMessageID != "5" || r.Status != switchboard.StatusDelivered {
		t.Fatalf("decoded %+v (%v)", r, ok)
	}
	if got := receiptText(0, []byte(want)); got != want {
		t.Fatalf("an ASCII receipt's text %q, want it as it is", got)
	}
	// SMSCs that copy the submit's data_coding 8 into an ASCII receipt.
	if got := receiptText(byte(gsm.UCS2), []byte(want+" ")); got != want+" " {
		t.Fatalf("an ASCII receipt marked UCS-2: %q, want it as it is", got)
	}
	// A UCS-2 C string: one NUL octet after the text.
	if got := receiptText(byte(gsm.UCS2), append(gsm.EncodeUCS2(nil, want), 0)); got != want {
		t.Fatalf("a UCS-2 receipt ending in a NUL octet: %q, want %q", got, want)
	}
}

// A receipt's text ends at its first NUL: what a reused C buffer leaves
// after it is not read as fields.
func TestReceiptTextEndsAtNUL(t *testing.T) {
	want := "id:5 sub:001 dlvrd:001 stat:DELIVRD"
	for _, tc := range []struct {
		name   string
		coding byte
		text   []byte
	}{
		{"ascii", 0, []byte(want + "\x00 err:088")},
		{"ucs2", byte(gsm.UCS2), gsm.EncodeUCS2(nil, want+"\x00 err:088")},
	} {
		text := receiptText(tc.coding, tc.text)
		r, ok := decodeReceipt(text, nil, "", time.UTC)
		if !ok || r.CarrierMessageID != "5" || r.ErrorCode != "" {
			t.Fatalf("%s: text %q decoded %+v (%v), want id 5 and no error code", tc.name, text, r, ok)
		}
	}
}

func TestDeliverDataCodingReadsUnknownCodings(t *testing.T) {
	for _, coding := range []byte{0x00, 0x08, 0xF0, 0x11} {
		d := pdu.NewDeliverSM().(*pdu.DeliverSM)
		src, _ := pdu.NewAddressWithTonNpiAddr(1, 1, "447700900123")
		d.SourceAddr = src
		d.ScheduleDeliveryTime = "000000000000000R"
		_ = d.Message.SetMessageDataWithEncoding([]byte{1, 2, 3}, DataCoding(coding))
		got, ok := ShortMessageCoding(marshal(d))
		if !ok || got != coding {
			t.Fatalf("data_coding 0x%02X read as 0x%02X (ok %v)", coding, got, ok)
		}
	}
	if _, ok := ShortMessageCoding(make([]byte, 20)); ok {
		t.Fatal("truncated deliver_sm gave a data_coding")
	}
}

func TestRelativeValidity(t *testing.T) {
	tests := map[time.Duration]string{
		0:                            "",
		90 * time.Minute:             "000000013000000R",
		49*time.Hour + 5*time.Second: "000002010005000R",
		500 * 24 * time.Hour:         "000099235959000R",
	}
	for d, want := range tests {
		if got := relativeValidity(d); got != want {
			t.Errorf("relativeValidity(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestAddresses(t *testing.T) {
	tests := []struct {
		from     string
		ton, npi byte
		addr     string
	}{
		{"Acme", 5, 0, "Acme"},
		{"+447700900123", 1, 1, "447700900123"},
		{"12345", 0, 1, "12345"},
	}
	for _, tc := range tests {
		a, err := sourceAddress(tc.from)
		if err != nil || a.Ton() != tc.ton || a.Npi() != tc.npi || a.Address() != tc.addr {
			t.Errorf("sourceAddress(%q) = %d/%d %q %v", tc.from, a.Ton(), a.Npi(), a.Address(), err)
		}
	}
}

func TestLongMessageParts(t *testing.T) {
	text := ""
	for i := 0; i < 161; i++ {
		text += "a"
	}
	ps, err := submitPDUs(&Message{From: "Acme", To: "+447700900123", Text: text}, 9, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("%d parts, want 2", len(ps))
	}
	for i, p := range ps {
		raw := marshal(p)
		f, err := ReadPDU(bytesReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		got := f.PDU.(*pdu.SubmitSM)
		if got.EsmClass&0x40 == 0 {
			t.Fatalf("part %d: UDHI not set", i+1)
		}
		total, seq, ref, found := got.Message.UDH().GetConcatInfo()
		if !found || total != 2 || seq != byte(i+1) || ref != 9 {
			t.Fatalf("part %d: concat %d/%d ref %d found %v", i+1, seq, total, ref, found)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// Inbound numbers read as the API writes them: an international address
// gets its "+" back; national digits, short codes and alphanumeric senders
// stay as sent.
func TestAddressWritesInternationalAsE164(t *testing.T) {
	for _, tc := range []struct {
		ton  byte
		addr string
		want string
	}{
		{data.GSM_TON_INTERNATIONAL, "447700900555", "+447700900555"},
		{data.GSM_TON_INTERNATIONAL, "+447700900555", "+447700900555"},
		{data.GSM_TON_INTERNATIONAL, "00447700900555", "+447700900555"},
		{data.GSM_TON_UNKNOWN, "447700900555", "447700900555"},
		{data.GSM_TON_NATIONAL, "07700900555", "07700900555"},
		{data.GSM_TON_INTERNATIONAL, "Acme", "Acme"},
		{data.GSM_TON_ALPHANUMERIC, "Acme", "Acme"},
		{data.GSM_TON_INTERNATIONAL, "", ""},
	} {
		a, err := pdu.NewAddressWithTonNpiAddr(tc.ton, data.GSM_NPI_E164, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := address(a); got != tc.want {
			t.Errorf("TON %d %q: got %q, want %q", tc.ton, tc.addr, got, tc.want)
		}
	}
}

// Concatenation info of deliver_sm, read through the client's own reader:
// from a UDH in short_message or in message_payload (gosmpp splits only
// the first), or from the SAR TLVs. SAR values no part can have are
// ignored, as ParseUDH ignores such an element, so the part arrives as a
// whole message instead of being refused, and redelivered, forever.
func TestDeliverSMConcatInfo(t *testing.T) {
	hello := []byte{0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, 'H', 'e', 'l', 'l', 'o'}
	first := &switchboard.Concat{Ref: 0x2A, Total: 2, Seq: 1}
	payload := []pdu.Field{{Tag: pdu.TagMessagePayload, Data: hello}}
	tests := []struct {
		name   string
		esm    byte
		sm     []byte
		tlv    []pdu.Field
		body   string
		concat *switchboard.Concat
	}{
		{"SAR sequence above total", 0, []byte("hi"), sar(1, 2, 3), "hi", nil},
		{"SAR total 0", 0, []byte("hi"), sar(1, 0, 1), "hi", nil},
		{"SAR sequence 0", 0, []byte("hi"), sar(1, 2, 0), "hi", nil},
		{"SAR valid", 0, []byte("hi"), sar(0x1234, 2, 2), "hi", &switchboard.Concat{Ref: 0x1234, Total: 2, Seq: 2}},
		{"UDH in short_message", 0x40, hello, nil, "Hello", first},
		{"UDH in message_payload", 0x40, nil, payload, "Hello", first},
		{"payload without UDHI kept whole", 0, nil, payload, string(hello), nil},
	}
	var pdus []pdu.PDU
	for i, tc := range tests {
		d := pdu.NewDeliverSM().(*pdu.DeliverSM)
		d.EsmClass = tc.esm
		if err := d.Message.SetMessageDataWithEncoding(tc.sm, DataCoding(0)); err != nil {
			t.Fatal(err)
		}
		for _, f := range tc.tlv {
			d.RegisterOptionalParam(f)
		}
		d.SetSequenceNumber(int32(i + 1))
		pdus = append(pdus, d)
	}
	parts := receiveInbound(t, pdus)
	for i, tc := range tests {
		p := parts[i]
		if string(p.Payload) != tc.body || p.DataCoding != 0 {
			t.Errorf("%s: payload %q coding %d, want %q coding 0", tc.name, p.Payload, p.DataCoding, tc.body)
		}
		if (p.Concat == nil) != (tc.concat == nil) || p.Concat != nil && *p.Concat != *tc.concat {
			t.Errorf("%s: concat %+v, want %+v", tc.name, p.Concat, tc.concat)
		}
	}
}

func sar(ref uint16, total, seq byte) []pdu.Field {
	return []pdu.Field{
		{Tag: pdu.TagSarMsgRefNum, Data: []byte{byte(ref >> 8), byte(ref)}},
		{Tag: pdu.TagSarTotalSegments, Data: []byte{total}},
		{Tag: pdu.TagSarSegmentSeqnum, Data: []byte{seq}},
	}
}

// receiveInbound has a peer send pdus to a client, in order on one
// connection, and returns the parts the client hands to OnInbound.
func receiveInbound(t *testing.T, pdus []pdu.PDU) []switchboard.InboundPart {
	t.Helper()
	peer := newScriptedPeer(t, func(c *Conn) {
		for _, p := range pdus {
			_ = c.Send(p)
		}
		answerUntilClosed(c)
	})
	got := make(chan switchboard.InboundPart, len(pdus))
	cfg := testConfig(peer.addr())
	cfg.OnInbound = func(p switchboard.InboundPart, ack func(error)) {
		select {
		case got <- p:
		default: // sent again after a reconnect: the test reads the first copies
		}
		ack(nil)
	}
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	deadline := time.After(10 * time.Second)
	parts := make([]switchboard.InboundPart, 0, len(pdus))
	for len(parts) < len(pdus) {
		select {
		case p := <-got:
			parts = append(parts, p)
		case <-deadline:
			t.Fatalf("%d of %d deliver_sm handed on", len(parts), len(pdus))
		}
	}
	return parts
}

// rawDeliverSM is a marshalled deliver_sm with short_message sm and
// esm_class esm, set in the bytes: gosmpp would not marshal a UDH flag
// over user data whose UDH it cannot read.
func rawDeliverSM(t *testing.T, seq int32, esm byte, sm []byte) []byte {
	t.Helper()
	d := pdu.NewDeliverSM().(*pdu.DeliverSM)
	if err := d.Message.SetMessageDataWithEncoding(sm, DataCoding(0)); err != nil {
		t.Fatal(err)
	}
	d.SetSequenceNumber(seq)
	b := pdu.NewBuffer(nil)
	d.Marshal(b)
	raw := b.Bytes()
	i, ok := esmClassOffset(raw)
	if !ok {
		t.Fatal("no esm_class in the marshalled deliver_sm")
	}
	raw[i] = esm
	return raw
}

// A deliver_sm whose UDH flag is set over user data gosmpp cannot parse
// is acknowledged and handed on, not refused with a generic_nack, which
// the SMSC would meet by sending it for ever: a UDH of length 0 is an
// empty header, one longer than the data is kept as text, as TS 23.040
// has a receiver do.
func TestUnreadableUDHIsDeliveredWhole(t *testing.T) {
	for name, tc := range map[string]struct{ sm, want []byte }{
		"UDH length 0":             {sm: []byte{0x00, 'h', 'i'}, want: []byte("hi")},
		"UDH longer than the data": {sm: []byte{0x09, 0x00, 0x03, 'h'}, want: []byte{0x09, 0x00, 0x03, 'h'}},
	} {
		sm := tc.sm
		t.Run(name, func(t *testing.T) {
			raw := rawDeliverSM(t, 7, 0x40, sm)
			p, err := DecodePDU(raw)
			if err != nil {
				t.Fatalf("DecodePDU: %v", err)
			}
			if esm := p.(*pdu.DeliverSM).EsmClass; esm != 0x40 {
				t.Fatalf("esm_class %#x after decoding, want 0x40 as sent", esm)
			}
			answers := make(chan Frame, 1)
			peer := newScriptedPeer(t, func(c *Conn) {
				_ = rawSend(c, raw)
				for {
					f, err := c.ReadPDU()
					if err != nil {
						return
					}
					if f.Header.SequenceNumber == 7 {
						answers <- f
					} else if f.PDU != nil && f.PDU.CanResponse() {
						_ = c.Send(Response(f.PDU, data.ESME_ROK))
					}
				}
			})
			got := make(chan switchboard.InboundPart, 1)
			cfg := testConfig(peer.addr())
			cfg.OnInbound = func(p switchboard.InboundPart, ack func(error)) { got <- p; ack(nil) }
			cl, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runClient(t, cl)
			part := <-got
			if string(part.Payload) != string(tc.want) || part.Concat != nil {
				t.Fatalf("handed on %q (concat %v), want %q", part.Payload, part.Concat, tc.want)
			}
			if f := <-answers; f.Header.CommandID != data.DELIVER_SM_RESP || f.Header.CommandStatus != data.ESME_ROK {
				t.Fatalf("peer got %s %s, want deliver_sm_resp OK", f.Header.CommandID, f.Header.CommandStatus)
			}
		})
	}
}
