package smsc

import (
	"fmt"
	"strings"

	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// MO is an inbound (mobile-originated) message for InjectMO.
type MO struct {
	From, To, Text string
	// SAR sends a multi-part text with the SAR TLVs (sar_msg_ref_num,
	// sar_total_segments, sar_segment_seqnum) instead of a UDH.
	SAR bool
	// Wide uses the UDH element with a 16-bit reference (IEI 0x08). Parts
	// are cut for the usual 6-octet UDH, so with its 7 octets a full part
	// is one octet over the 140 of the air interface; SMPP carries it, and
	// the point is to exercise the client's parser.
	Wide bool
}

// maxMOParts is the most parts a concatenation header can number.
const maxMOParts = 255

// InjectMO delivers an inbound message to the receivers of systemID, cut
// into parts as a handset would send it (GSM7 or UCS2, chosen by gsm.Split).
// Parts go out reliably like receipts, round-robin over the receiver binds.
// It fails with ErrNoReceiver if no receiver is bound now, and with
// ErrClosed after Close.
func (s *Server) InjectMO(systemID string, mo MO) error {
	if s.isClosed() {
		return ErrClosed
	}
	a := s.account(systemID)
	if !a.hasReceiver() {
		return fmt.Errorf("smsc: inject MO for %q: %w", systemID, ErrNoReceiver)
	}
	src, err := moAddress(mo.From)
	if err != nil {
		return fmt.Errorf("smsc: inject MO from: %w", err)
	}
	dst, err := moAddress(mo.To)
	if err != nil {
		return fmt.Errorf("smsc: inject MO to: %w", err)
	}
	seg, err := gsm.Split(mo.Text, maxMOParts)
	if err != nil {
		return fmt.Errorf("smsc: inject MO text: %w", err)
	}
	ref := uint16(s.nextRef.Add(1))
	for i, part := range seg.Parts {
		d := &delivery{acct: a, src: src, dst: dst, coding: byte(seg.Coding)}
		d.setPart(part, mo, ref, byte(len(seg.Parts)), byte(i+1))
		s.deliver(d)
	}
	s.log.Debug().Str("system_id", systemID).Int("parts", len(seg.Parts)).Msg("smsc inbound message injected")
	return nil
}

// setPart fills in the user data of part seq of total, with the
// concatenation information mo asks for.
func (d *delivery) setPart(part []byte, mo MO, ref uint16, total, seq byte) {
	switch {
	case total == 1:
		d.payload = part
	case mo.SAR:
		d.payload = part
		d.sar = &sar{ref: ref, total: total, seq: seq}
	case mo.Wide:
		d.esmClass = esmUDHI
		d.payload = append([]byte{6, 0x08, 4, byte(ref >> 8), byte(ref), total, seq}, part...)
	default:
		d.esmClass = esmUDHI
		d.payload = append(gsm.AppendConcatUDH(make([]byte, 0, gsm.ConcatUDHLen+len(part)), byte(ref), total, seq), part...)
	}
}

// moAddress makes an SMPP address: "+" and digits is international
// (TON 1, NPI 1, written without the "+"), digits alone national numbering
// unknown (TON 0, NPI 1), anything else alphanumeric (TON 5, NPI 0).
func moAddress(s string) (pdu.Address, error) {
	ton, npi, addr := byte(5), byte(0), s
	if d, intl := strings.CutPrefix(s, "+"); d != "" && strings.Trim(d, "0123456789") == "" {
		ton, npi, addr = 0, 1, d
		if intl {
			ton = 1
		}
	}
	a, err := pdu.NewAddressWithTonNpiAddr(ton, npi, addr)
	if err != nil {
		return a, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
