package smsc

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// MO is an inbound (mobile-originated) message for InjectMO. The zero
// values of the fields after Text send it as a handset would: cut by
// gsm.Split, numbered with an 8-bit UDH reference of the simulator's
// choosing, every part once and in order. The other values make the
// awkward cases a gateway's reassembly must survive.
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
	// Ref is the concatenation reference of a multi-part text (an 8-bit
	// UDH carries its low byte); 0 lets the simulator count one up, so
	// successive messages differ. Give the same Ref (and the same From, To
	// and Text) to two InjectMO calls to send the parts of one message in
	// two goes, interleaved with other messages.
	Ref uint16
	// PartSize, when positive, cuts the encoded text every PartSize units
	// (septets for GSM7, UTF-16 code units for UCS2) whatever they are,
	// instead of as gsm.Split does: so an escape pair or a surrogate pair
	// can be cut between two parts, as some senders do. A part with its
	// UDH must fit the 254 octets of short_message (PartSize up to 247 for
	// GSM7, 123 for UCS2) and the text at most 255 parts.
	PartSize int
	// Order lists the parts to send by sequence number (1-based), in the
	// order to send them: repeat a number to send that part again, leave
	// one out to never send it. Empty sends every part once, in order.
	// With one receiver bind the parts arrive in this order, unless the
	// client refuses one and it is sent again later.
	Order []int
}

// maxMOParts is the most parts a concatenation header can number.
const maxMOParts = 255

// InjectMO delivers an inbound message to the receivers of systemID, cut
// into parts as a handset would send it (GSM7 or UCS2, chosen by gsm.Split)
// or as mo's fields ask. Parts go out reliably like receipts, round-robin
// over the receiver binds. It fails, sending nothing, with ErrNoReceiver
// if no receiver is bound now, with ErrClosed after Close, and when mo is
// invalid.
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
	coding, parts, err := moParts(mo)
	if err != nil {
		return fmt.Errorf("smsc: inject MO text: %w", err)
	}
	order, err := moOrder(mo.Order, len(parts))
	if err != nil {
		return fmt.Errorf("smsc: inject MO: %w", err)
	}
	ref := mo.Ref
	if ref == 0 {
		ref = uint16(s.nextRef.Add(1))
	}
	for _, seq := range order {
		d := &delivery{acct: a, src: src, dst: dst, coding: byte(coding)}
		d.setPart(parts[seq-1], mo, ref, byte(len(parts)), byte(seq))
		s.deliver(d)
	}
	s.log.Debug().Str("system_id", systemID).Int("parts", len(parts)).Int("sent", len(order)).Msg("smsc inbound message injected")
	return nil
}

// Room in short_message (SMPP 3.4 sm_length) for the user data of a part
// cut with PartSize, next to the longest UDH setPart writes.
const (
	maxShortMessage = 254
	maxWideUDH      = 7
)

// moParts encodes mo.Text and cuts it into parts: as gsm.Split does, or
// every mo.PartSize units.
func moParts(mo MO) (gsm.Coding, [][]byte, error) {
	if mo.PartSize <= 0 {
		seg, err := gsm.Split(mo.Text, maxMOParts)
		return seg.Coding, seg.Parts, err
	}
	if mo.Text == "" || !utf8.ValidString(mo.Text) {
		return 0, nil, errors.New("text is empty or not valid UTF-8")
	}
	coding, _, _ := gsm.Count(mo.Text)
	var ud []byte
	size := mo.PartSize
	if coding == gsm.GSM7 {
		ud, _ = gsm.EncodeGSM7(nil, mo.Text) // Count chose GSM7: it encodes
	} else {
		ud = gsm.EncodeUCS2(nil, mo.Text)
		size *= 2
	}
	if size+maxWideUDH > maxShortMessage {
		return 0, nil, fmt.Errorf("part size %d %s units does not fit short_message", mo.PartSize, coding)
	}
	var parts [][]byte
	for len(ud) > 0 {
		n := min(size, len(ud))
		parts = append(parts, ud[:n:n])
		ud = ud[n:]
	}
	if len(parts) > maxMOParts {
		return 0, nil, fmt.Errorf("%d parts of %d units; at most %d can be numbered", len(parts), mo.PartSize, maxMOParts)
	}
	return coding, parts, nil
}

// moOrder checks order against the number of parts; empty means all, in
// order.
func moOrder(order []int, parts int) ([]int, error) {
	if len(order) == 0 {
		order = make([]int, parts)
		for i := range order {
			order[i] = i + 1
		}
		return order, nil
	}
	for _, seq := range order {
		if seq < 1 || seq > parts {
			return nil, fmt.Errorf("order names part %d of a %d-part text", seq, parts)
		}
	}
	return order, nil
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
