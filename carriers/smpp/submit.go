package smpp

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/gsm"
)

// Message is what the gateway hands a bind to send.
type Message struct {
	From string // alphanumeric (≤ 11), "+" and digits (E.164), or digits (short code)
	To   string // "+" and digits
	// Text is split with gsm.Split unless Segments is set.
	Text     string
	Segments *gsm.Segments
	// Validity is how long the carrier may keep trying; 0 leaves the SMSC's
	// default. It is sent in SMPP's relative form so clocks need not agree.
	Validity time.Duration
	// Ref is the concatenation reference of a long message's parts, used
	// when UseRef is set (else the bind numbers long messages itself). A
	// message sent again after some of its parts were accepted must carry
	// the reference those parts carried, or the handset cannot join them.
	Ref    byte
	UseRef bool
	// Accepted holds the carrier ids of parts the carrier accepted on an
	// earlier try, "" for the others: those parts are not sent again, and
	// the Result carries their ids.
	Accepted []string
}

// Result is what the carrier accepted: one carrier id per part, in part
// order, normalised with the bind's IDFormat; NoID for a part accepted
// without one. With an error it holds the ids of the parts accepted before
// the failure ("" for the rest), so a retry can send only the rest
// (Message.Accepted).
type Result struct {
	CarrierIDs []string
}

// NoID stands for the id of a part the carrier accepted with an empty
// message_id (which SMPP does not allow, but carriers send, and which an
// unterminated message_id decodes to): the part is accepted all the same,
// and a retry must not send it again. No real id can be it: SMPP ids are
// NUL-terminated.
const NoID = "\x00"

// DataCoding is a data_coding byte usable as gosmpp's data.Encoding. We
// encode user data ourselves (carriers/gsm); gosmpp's ShortMessage then asks
// its Encoding for nothing but the DataCoding byte when marshalling, and
// this lets any value through, including ones gosmpp does not know.
type DataCoding byte

// Encode refuses: user data is encoded by carriers/gsm, never by gosmpp.
func (c DataCoding) Encode(string) ([]byte, error) {
	return nil, fmt.Errorf("smpp: DataCoding cannot encode")
}

// Decode refuses, as Encode does.
func (c DataCoding) Decode([]byte) (string, error) {
	return "", fmt.Errorf("smpp: DataCoding cannot decode")
}

// DataCoding returns the byte itself.
func (c DataCoding) DataCoding() byte { return byte(c) }

// submitPDUs builds one submit_sm per segment. Sequence numbers are set
// when each is sent.
func submitPDUs(m *Message, ref byte, maxParts int) ([]*pdu.SubmitSM, error) {
	seg := m.Segments
	if seg == nil {
		s, err := gsm.Split(m.Text, maxParts)
		if err != nil {
			return nil, err
		}
		seg = &s
	}
	src, err := sourceAddress(m.From)
	if err != nil {
		return nil, err
	}
	dst, err := destAddress(m.To)
	if err != nil {
		return nil, err
	}
	validity := relativeValidity(m.Validity)
	total := len(seg.Parts)
	out := make([]*pdu.SubmitSM, total)
	for i, part := range seg.Parts {
		p := pdu.NewSubmitSM().(*pdu.SubmitSM)
		p.SourceAddr, p.DestAddr = src, dst
		p.RegisteredDelivery = 1 // receipt on success and on failure
		p.ValidityPeriod = validity
		ud := part
		if total > 1 {
			ud = gsm.AppendConcatUDH(make([]byte, 0, 6+len(part)), ref, byte(total), byte(i+1))
			ud = append(ud, part...)
			p.EsmClass |= data.SM_UDH_GSM
		}
		if err := p.Message.SetMessageDataWithEncoding(ud, DataCoding(seg.Coding)); err != nil {
			return nil, fmt.Errorf("smpp: part %d: %w", i+1, err)
		}
		out[i] = p
	}
	return out, nil
}

// sourceAddress picks TON/NPI the way carriers expect: alphanumeric senders
// are TON 5 (alphanumeric) / NPI 0, "+" numbers TON 1 (international) / NPI 1
// (E.164) without the "+", bare digits (short codes) TON 0 / NPI 1.
func sourceAddress(from string) (pdu.Address, error) {
	switch {
	case strings.HasPrefix(from, "+"):
		return pdu.NewAddressWithTonNpiAddr(1, 1, from[1:])
	case from != "" && allDigits(from):
		return pdu.NewAddressWithTonNpiAddr(0, 1, from)
	default:
		return pdu.NewAddressWithTonNpiAddr(5, 0, from)
	}
}

func destAddress(to string) (pdu.Address, error) {
	if strings.HasPrefix(to, "+") {
		return pdu.NewAddressWithTonNpiAddr(1, 1, to[1:])
	}
	return pdu.NewAddressWithTonNpiAddr(0, 1, to)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// relativeValidity renders d as SMPP 3.4's relative time
// "YYMMDDhhmmss000R". Days beyond 99 are clamped: no SMSC keeps a message
// that long anyway.
func relativeValidity(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	secs := int64(d / time.Second)
	if secs == 0 {
		secs = 1
	}
	days := secs / 86400
	if days > 99 {
		days, secs = 99, 99*86400+23*3600+59*60+59
	}
	h := secs % 86400 / 3600
	m := secs % 3600 / 60
	s := secs % 60
	return fmt.Sprintf("0000%02d%02d%02d%02d000R", days, h, m, s)
}

// submission tracks one message's parts until each has its response (or
// was never sent), then reports once.
type submission struct {
	mu          sync.Mutex
	ids         []string
	outstanding int
	err         error
	done        func(Result, error)
}

// newSubmission starts tracking a message of n parts, of which those with
// an id in accepted need not be sent.
func newSubmission(n int, accepted []string, done func(Result, error)) *submission {
	s := &submission{ids: make([]string, n), outstanding: n, done: done}
	for i := 0; i < n && i < len(accepted); i++ {
		if accepted[i] != "" {
			s.ids[i] = accepted[i]
			s.outstanding--
		}
	}
	return s
}

// accepted reports whether part i was accepted on an earlier try.
func (s *submission) accepted(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[i] != ""
}

// unsent settles part i and the parts after it still to be sent: none of
// them will be.
func (s *submission) unsent(i int, err error) {
	s.mu.Lock()
	n := 0
	for j := i; j < len(s.ids); j++ {
		if s.ids[j] == "" {
			n++
		}
	}
	s.mu.Unlock()
	s.finish(i, n, "", err)
}

// finish records the outcome of part i (or of n unsent parts from i on).
func (s *submission) finish(i, n int, id string, err error) {
	s.mu.Lock()
	if err != nil && s.err == nil {
		s.err = err
	}
	if err == nil {
		s.ids[i] = id
	}
	s.outstanding -= n
	last := s.outstanding == 0
	s.mu.Unlock()
	if !last {
		return
	}
	s.done(Result{CarrierIDs: s.ids}, s.err)
}

// failed reports whether an earlier part already failed, so later parts of
// the same message need not be sent.
func (s *submission) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}
