package smsc

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
)

// Receipt targets: which bind of a system_id a receipt goes to.
const (
	// TargetAny sends each receipt to the next receiver or transceiver bind
	// of the system_id, round-robin, as SMSCs that load-balance do.
	TargetAny = "any"
	// TargetSame sends a receipt back on the bind that submitted the
	// message if that bind can receive and is still bound, else as TargetAny.
	TargetSame = "same"
)

// Defaults for the Config fields that have one.
const (
	DefaultMaxPending   = 1_000_000
	DefaultRetryDelay   = 250 * time.Millisecond
	DefaultWriteTimeout = 10 * time.Second
)

// bindSystemID is the system_id every bind_resp carries.
const bindSystemID = "smscsim"

// Config configures a Server. Only Addr is required.
type Config struct {
	Addr string // listen address, e.g. "127.0.0.1:0"
	// Credentials maps system_id to password; nil or empty accepts any.
	Credentials map[string]string
	// ReceiptDelay is the time from submit_sm_resp to the receipt; the zero
	// value sends the receipt right after the response.
	ReceiptDelay Delay
	// Outcomes weighs the receipt states; the zero value is all DELIVRD.
	Outcomes Outcomes
	// ReceiptTarget is TargetAny (also when empty) or TargetSame.
	ReceiptTarget string
	// IDFormat says how ids are written: IDAsIs and IDDecimal write decimal
	// everywhere, IDHex hex everywhere, IDHexResp hex in submit_sm_resp and
	// decimal in receipts.
	IDFormat receipt.IDFormat
	// TextOnlyReceipts sends receipts without the receipted_message_id
	// and message_state TLVs, as older SMSCs do: only their text says
	// which message and what became of it.
	TextOnlyReceipts bool
	Faults           Faults
	// OnSubmit, if set, is called for every accepted submit_sm, in the order
	// of arrival on each connection, from the connection's goroutine. It
	// must not block.
	OnSubmit func(Submit)
	Log      zerolog.Logger

	// MaxPending bounds receipts and inbound messages waiting to be sent
	// (scheduled, waiting for a receiver bind, or waiting to be re-sent).
	// Beyond it new ones are dropped and counted in Stats.ReceiptsDropped:
	// a simulator that could grow without bound would hide a gateway that
	// never binds a receiver. Default DefaultMaxPending.
	MaxPending int
	// RetryDelay is the pause before a deliver_sm that was refused or lost
	// is sent again; each retry waits between it and twice it. Default
	// DefaultRetryDelay.
	RetryDelay time.Duration
	// WriteTimeout bounds one socket write. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
}

// Validate reports the first invalid field of c, as Listen would.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults validates c and fills in defaults.
func (c Config) withDefaults() (Config, error) {
	switch c.ReceiptTarget {
	case "":
		c.ReceiptTarget = TargetAny
	case TargetAny, TargetSame:
	default:
		return c, fmt.Errorf("smsc: receipt target %q: want %q or %q", c.ReceiptTarget, TargetAny, TargetSame)
	}
	switch c.IDFormat {
	case receipt.IDAsIs, receipt.IDDecimal, receipt.IDHex, receipt.IDHexResp:
	default:
		return c, fmt.Errorf("smsc: unknown id format %q", c.IDFormat)
	}
	if err := c.Outcomes.validate(); err != nil {
		return c, err
	}
	if err := c.ReceiptDelay.validate("receipt delay"); err != nil {
		return c, err
	}
	if err := c.Faults.validate(); err != nil {
		return c, err
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c, nil
}

// Delay is a random duration. Min == Max is fixed, Min < Max is uniform
// between them, and Exponential is exponential with mean Min, capped at Max
// when Max > 0 (the long tail real SMSCs show for receipts).
type Delay struct {
	Min, Max    time.Duration
	Exponential bool
}

// IsZero reports whether d always gives 0.
func (d Delay) IsZero() bool {
	return d.Min <= 0 && (d.Exponential || d.Max <= 0)
}

func (d Delay) validate(name string) error {
	if d.Min < 0 || d.Max < 0 {
		return fmt.Errorf("smsc: %s: negative duration", name)
	}
	if !d.Exponential && d.Max != 0 && d.Max < d.Min {
		return fmt.Errorf("smsc: %s: max %v below min %v", name, d.Max, d.Min)
	}
	return nil
}

// Sample draws one duration.
func (d Delay) Sample() time.Duration {
	switch {
	case d.Min <= 0 && d.Max <= 0:
		return 0
	case d.Exponential:
		v := time.Duration(rand.ExpFloat64() * float64(d.Min))
		if d.Max > 0 && v > d.Max {
			v = d.Max
		}
		return v
	case d.Max > d.Min:
		return d.Min + rand.N(d.Max-d.Min+1)
	default:
		return d.Min
	}
}

// Outcomes weighs the final states of receipts. Only the ratios matter; all
// zero means every message is delivered.
type Outcomes struct {
	Delivered, Undeliverable, Expired, Rejected float64
}

// outcome indexes the four states in counters.
type outcome int

const (
	outDelivered outcome = iota
	outUndeliverable
	outExpired
	outRejected
	numOutcomes
)

func (o outcome) state() receipt.State {
	switch o {
	case outUndeliverable:
		return receipt.Undeliverable
	case outExpired:
		return receipt.Expired
	case outRejected:
		return receipt.Rejected
	}
	return receipt.Delivered
}

// errCode is the receipt's err: field. Real SMSCs use network-specific
// codes; any non-zero value serves to tell failures apart.
func (o outcome) errCode() string {
	switch o {
	case outUndeliverable:
		return "001"
	case outExpired:
		return "002"
	case outRejected:
		return "003"
	}
	return "000"
}

func (w Outcomes) validate() error {
	for _, v := range [...]float64{w.Delivered, w.Undeliverable, w.Expired, w.Rejected} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("smsc: outcome weights must be finite and not negative")
		}
	}
	return nil
}

// pick draws an outcome by weight.
func (w Outcomes) pick() outcome {
	sum := w.Delivered + w.Undeliverable + w.Expired + w.Rejected
	if sum <= 0 {
		return outDelivered
	}
	r := rand.Float64() * sum
	for _, c := range [...]struct {
		o outcome
		w float64
	}{{outDelivered, w.Delivered}, {outUndeliverable, w.Undeliverable}, {outExpired, w.Expired}} {
		if r < c.w {
			return c.o
		}
		r -= c.w
	}
	if w.Rejected > 0 {
		return outRejected
	}
	// Rounding left r past the last positive weight.
	return outDelivered
}

// Faults make the simulator misbehave the ways real SMSCs do. The zero
// value is a well-behaved SMSC. Server.SetFaults changes them at runtime.
type Faults struct {
	// Latency delays each submit_sm_resp (and so its receipt). With a
	// random latency, responses leave out of order, as they do from SMSCs
	// that process submits in parallel.
	Latency Delay
	// ThrottleAbove is the submits per second per server above which
	// submit_sm gets ESME_RTHROTTLED (0: off). A token bucket with a burst
	// of one second's worth enforces it.
	ThrottleAbove float64
	// ThrottleEvery answers every Nth submit_sm of the server with
	// ESME_RTHROTTLED (0: off).
	ThrottleEvery int
	// DropAfter closes a connection, without unbind, when it has received
	// this many submit_sm (0: off); that last submit is not answered, the
	// ones before it are. (Server.DropAll cuts without flushing.)
	DropAfter int
	// DropProbability closes the connection as DropAfter does on a
	// submit_sm with this probability; that submit is not answered.
	DropProbability float64
	// Hang reads everything and answers nothing: no responses, no
	// enquire_link_resp, no receipts or inbound messages (they wait).
	Hang bool
	// RefuseBinds answers every bind with ESME_RBINDFAIL.
	RefuseBinds bool
	// ReceiptFirst sends each receipt (after ReceiptDelay) counted from the
	// submit_sm rather than from its response: with a Latency, receipts
	// overtake the submit_sm_resp that names their id, as they do from
	// SMSCs whose response path is slower than their delivery path.
	ReceiptFirst bool
	// RefuseText refuses submits whose user data contains it (as text in
	// the submit's data_coding: GSM-7 unpacked or UCS-2) with RefuseStatus,
	// a poison message for the gateway to give up on. RefuseTimes bounds
	// how many such submits are refused (0: every one).
	RefuseText   string
	RefuseStatus uint32
	RefuseTimes  int
}

// clamped returns f with out-of-range values brought into range.
func (f Faults) clamped() Faults {
	f.Latency.Min, f.Latency.Max = max(f.Latency.Min, 0), max(f.Latency.Max, 0)
	if !f.Latency.Exponential && f.Latency.Max != 0 && f.Latency.Max < f.Latency.Min {
		f.Latency.Max = f.Latency.Min
	}
	if !(f.ThrottleAbove > 0) || math.IsInf(f.ThrottleAbove, 0) {
		f.ThrottleAbove = 0
	}
	f.ThrottleEvery, f.DropAfter, f.RefuseTimes = max(f.ThrottleEvery, 0), max(f.DropAfter, 0), max(f.RefuseTimes, 0)
	if !(f.DropProbability > 0) {
		f.DropProbability = 0
	}
	f.DropProbability = min(f.DropProbability, 1)
	return f
}

func (f Faults) validate() error {
	if err := f.Latency.validate("latency"); err != nil {
		return err
	}
	if !(f.ThrottleAbove >= 0) || math.IsInf(f.ThrottleAbove, 0) || f.ThrottleEvery < 0 || f.DropAfter < 0 || f.RefuseTimes < 0 {
		return errors.New("smsc: fault thresholds must not be negative")
	}
	if f.RefuseText != "" && f.RefuseStatus == 0 {
		return errors.New("smsc: refuse text needs a non-zero refuse status")
	}
	if !(f.DropProbability >= 0 && f.DropProbability <= 1) {
		return fmt.Errorf("smsc: drop probability %v outside [0, 1]", f.DropProbability)
	}
	return nil
}
