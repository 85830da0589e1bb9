package smpp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
)

func marshal(p pdu.PDU) []byte {
	b := pdu.NewBuffer(nil)
	p.Marshal(b)
	return b.Bytes()
}

func sampleSubmit() *pdu.SubmitSM {
	m := &Message{From: "Acme", To: "+447700900123", Text: "hello"}
	ps, err := submitPDUs(m, 7, 10)
	if err != nil {
		panic(err)
	}
	ps[0].SetSequenceNumber(42)
	return ps[0]
}

func TestReadPDURoundTrip(t *testing.T) {
	raw := marshal(sampleSubmit())
	f, err := ReadPDU(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := f.PDU.(*pdu.SubmitSM)
	if !ok {
		t.Fatalf("decoded %T, want *pdu.SubmitSM", f.PDU)
	}
	if got.GetSequenceNumber() != 42 || got.DestAddr.Address() != "447700900123" || got.DestAddr.Ton() != 1 {
		t.Fatalf("decoded seq %d dest %q ton %d", got.GetSequenceNumber(), got.DestAddr.Address(), got.DestAddr.Ton())
	}
	if got.SourceAddr.Ton() != 5 || got.SourceAddr.Npi() != 0 {
		t.Fatalf("alphanumeric source ton/npi = %d/%d, want 5/0", got.SourceAddr.Ton(), got.SourceAddr.Npi())
	}
	if got.RegisteredDelivery != 1 {
		t.Fatalf("registered_delivery = %d, want 1", got.RegisteredDelivery)
	}
}

func TestReadPDURejectsBadLengths(t *testing.T) {
	for _, n := range []uint32{0, 15, MaxPDULength + 1, 0xFFFFFFFF} {
		var h [16]byte
		binary.BigEndian.PutUint32(h[:], n)
		binary.BigEndian.PutUint32(h[4:], uint32(data.ENQUIRE_LINK))
		_, err := ReadPDU(bytes.NewReader(h[:]))
		if !errors.Is(err, ErrBadLength) {
			t.Errorf("command_length %d: err = %v, want ErrBadLength", n, err)
		}
	}
}

func TestReadPDUUnknownCommandKeepsStreamInStep(t *testing.T) {
	var unknown [20]byte
	binary.BigEndian.PutUint32(unknown[:], 20)
	binary.BigEndian.PutUint32(unknown[4:], 0x00000777)
	binary.BigEndian.PutUint32(unknown[12:], 9)
	link := pdu.NewEnquireLink()
	link.SetSequenceNumber(10)
	r := bytes.NewReader(append(unknown[:], marshal(link)...))

	f, err := ReadPDU(r)
	if !errors.Is(err, ErrUnknownCommand) || f.Header.SequenceNumber != 9 {
		t.Fatalf("first read: err %v seq %d, want ErrUnknownCommand seq 9", err, f.Header.SequenceNumber)
	}
	f, err = ReadPDU(r)
	if err != nil || f.PDU.GetSequenceNumber() != 10 {
		t.Fatalf("second read: %v, %+v; want the enquire_link after the unknown PDU", err, f.Header)
	}
}

func TestReadPDUTruncated(t *testing.T) {
	raw := marshal(sampleSubmit())
	for _, cut := range []int{3, 16, len(raw) - 1} {
		_, err := ReadPDU(bytes.NewReader(raw[:cut]))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: err = %v, want unexpected EOF", cut, err)
		}
	}
}

func TestReadPDUMalformedBody(t *testing.T) {
	// A submit_sm whose body is a single byte: no room for its fields.
	var b [17]byte
	binary.BigEndian.PutUint32(b[:], 17)
	binary.BigEndian.PutUint32(b[4:], uint32(data.SUBMIT_SM))
	binary.BigEndian.PutUint32(b[12:], 5)
	f, err := ReadPDU(bytes.NewReader(b[:]))
	if !errors.Is(err, ErrMalformed) || f.Header.SequenceNumber != 5 {
		t.Fatalf("err %v seq %d, want ErrMalformed seq 5", err, f.Header.SequenceNumber)
	}
}

// FuzzReadPDU: no input makes the reader panic, and every failure is one
// the session knows how to handle.
func FuzzReadPDU(f *testing.F) {
	f.Add(marshal(sampleSubmit()))
	link := pdu.NewEnquireLink()
	link.SetSequenceNumber(1)
	f.Add(marshal(link))
	d := pdu.NewDeliverSM().(*pdu.DeliverSM)
	_ = d.Message.SetMessageDataWithEncoding([]byte("id:1 sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:hi"), DataCoding(0))
	d.EsmClass = 0x04
	d.RegisterOptionalParam(pdu.Field{Tag: pdu.TagReceiptedMessageID, Data: []byte("1\x00")})
	f.Add(marshal(d))
	f.Add([]byte{0, 0, 0, 16, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 17, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := ReadPDU(bytes.NewReader(in))
		switch {
		case err == nil:
			if fr.PDU == nil {
				t.Fatal("no error and no PDU")
			}
			_, _ = ShortMessageCoding(fr.Raw)
		case errors.Is(err, ErrBadLength), errors.Is(err, ErrUnknownCommand), errors.Is(err, ErrMalformed),
			errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		default:
			t.Fatalf("unclassified error %v", err)
		}
	})
}

// Responses whose bodies carry octets gosmpp cannot parse (padding after
// message_id, a body on a generic_nack) are read from their header and the
// string their body starts with, so their command_status counts.
func TestReadPDUResponseWithStrayOctets(t *testing.T) {
	frame := func(id data.CommandIDType, status data.CommandStatusType, body string) []byte {
		b := make([]byte, 16, 16+len(body))
		binary.BigEndian.PutUint32(b, uint32(16+len(body)))
		binary.BigEndian.PutUint32(b[4:], uint32(id))
		binary.BigEndian.PutUint32(b[8:], uint32(status))
		binary.BigEndian.PutUint32(b[12:], 9)
		return append(b, body...)
	}
	for _, tc := range []struct {
		name   string
		raw    []byte
		status data.CommandStatusType
		id     string
	}{
		{"refusal padded", frame(data.SUBMIT_SM_RESP, data.ESME_RINVDSTADR, "\x00\x00"), data.ESME_RINVDSTADR, ""},
		{"id padded", frame(data.SUBMIT_SM_RESP, data.ESME_ROK, "AB12\x00\x00"), data.ESME_ROK, "AB12"},
		{"id with half a TLV", frame(data.SUBMIT_SM_RESP, data.ESME_ROK, "AB12\x00\x04\x27\x00"), data.ESME_ROK, "AB12"},
		{"nack with a body", frame(data.GENERIC_NACK, data.ESME_RTHROTTLED, "\x00"), data.ESME_RTHROTTLED, ""},
		{"enquire_link_resp with a body", frame(data.ENQUIRE_LINK_RESP, data.ESME_ROK, "xyz"), data.ESME_ROK, ""},
	} {
		f, err := ReadPDU(bytes.NewReader(tc.raw))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if f.PDU.GetHeader().CommandStatus != tc.status || f.PDU.GetSequenceNumber() != 9 {
			t.Errorf("%s: header %+v, want status %s seq 9", tc.name, f.PDU.GetHeader(), tc.status)
		}
		if r, ok := f.PDU.(*pdu.SubmitSMResp); ok && r.MessageID != tc.id {
			t.Errorf("%s: message_id %q, want %q", tc.name, r.MessageID, tc.id)
		}
	}
}
