package smpp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
)

// BindMode is how a Client binds: one transceiver connection, or a
// transmitter for submits plus a receiver for receipts and inbound messages.
type BindMode string

const (
	Transceiver         BindMode = "transceiver"
	TransmitterReceiver BindMode = "transmitter_receiver"
)

// DefaultReceiveWindow is Config.ReceiveWindow's default: far more than
// an SMSC with a window of its own keeps in flight, and about a megabyte
// of receipts held per connection.
const DefaultReceiveWindow = 1000

// Config describes one logical bind. Zero durations take the defaults listed
// on each field.
type Config struct {
	// Name identifies the bind in logs and in receipts (Receipt.Carrier).
	Name string
	Addr string // host:port of the SMSC

	SystemID     string
	Password     string
	SystemType   string
	AddressRange string
	Mode         BindMode    // default Transceiver
	TLS          *tls.Config // nil: plain TCP

	// Window is the most submit_sm in flight at once (default 10). A full
	// window makes Submit wait, it never drops.
	Window int
	// ReceiveWindow is the most deliver_sm and data_sm read from one
	// connection and not yet acknowledged (default 1,000). At the limit
	// the connection's reader waits for an ack before it reads on, so an
	// SMSC that sends receipts faster than they are stored, without a
	// window of its own, is slowed by TCP instead of filling memory.
	ReceiveWindow int
	// TPS paces submits on this bind (0: unlimited). To share a carrier's
	// TPS across binds, pass the same Limiter (from NewLimiter) to each
	// instead.
	TPS     float64
	Limiter *switchboard.TokenBucket

	ResponseTimeout     time.Duration // per submit_sm, default 10s
	EnquireLinkInterval time.Duration // default 30s
	EnquireLinkTimeout  time.Duration // default 10s
	BindTimeout         time.Duration // dial + bind, default 10s
	WriteTimeout        time.Duration // one socket write, default 10s
	ReconnectMin        time.Duration // default 1s
	ReconnectMax        time.Duration // default 60s; a session up this long resets the backoff
	// ThrottlePause is the first pause after ESME_RTHROTTLED, doubled when a
	// part sent after the pause began (it waited for it) is throttled again, up to
	// ThrottleMax (defaults 100ms and 5s).
	ThrottlePause time.Duration
	ThrottleMax   time.Duration

	// IDFormat tells how the carrier writes message ids in submit_sm_resp and
	// in receipts, so both normalise to the same string.
	IDFormat receipt.IDFormat
	// ReceiptLocation is the time zone of the dates in receipt text (nil: UTC).
	ReceiptLocation *time.Location
	// MaxParts bounds segments per message (default 10).
	MaxParts int
	// Statuses overrides which refusals are retriable (nil: the defaults).
	Statuses Statuses

	// OnReceipt and OnInbound receive what the SMSC delivers. Each must call
	// ack exactly once, now or later from any goroutine: ack(nil) answers
	// deliver_sm_resp OK, ack(err) answers ESME_RX_T_APPN so the SMSC
	// delivers it again later. Acknowledge only what is safely stored.
	// They run on the connection's reading goroutine: do not block.
	// A nil handler acknowledges and discards (and logs at debug).
	OnReceipt func(r switchboard.Receipt, ack func(error))
	OnInbound func(m switchboard.InboundPart, ack func(error))
	// OnState is told when the bind becomes able (true) or unable (false)
	// to submit, so a router can mark the carrier healthy or not.
	OnState func(bound bool)
	// OnDown is told why a connection failed to bind or was lost, before
	// the wait to reconnect (the same error "smpp bind down" logs).
	OnDown func(err error)
	// OnResponse is told how long each submit_sm part waited for its
	// response (or generic_nack), from the moment it was written.
	OnResponse func(d time.Duration)

	// Dial opens the TCP connection; default net.Dialer.DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  zerolog.Logger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Mode == "" {
		c.Mode = Transceiver
	}
	if c.Window <= 0 {
		c.Window = 10
	}
	if c.MaxParts <= 0 {
		c.MaxParts = 10
	}
	if c.ReceiveWindow <= 0 {
		c.ReceiveWindow = DefaultReceiveWindow
	}
	def(&c.ResponseTimeout, 10*time.Second)
	def(&c.EnquireLinkInterval, 30*time.Second)
	def(&c.EnquireLinkTimeout, 10*time.Second)
	def(&c.BindTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.ReconnectMin, time.Second)
	def(&c.ReconnectMax, 60*time.Second)
	def(&c.ThrottlePause, 100*time.Millisecond)
	def(&c.ThrottleMax, 5*time.Second)
	if c.Limiter == nil && c.TPS > 0 {
		c.Limiter = NewLimiter(c.TPS)
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
}

func (c *Config) validate() error {
	if c.Addr == "" {
		return fmt.Errorf("smpp bind %q: addr is empty", c.Name)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("smpp bind %q: addr %q: %w", c.Name, c.Addr, err)
	}
	if len(c.SystemID) > 15 {
		return fmt.Errorf("smpp bind %q: system_id longer than 15 octets", c.Name)
	}
	if len(c.Password) > 8 {
		return fmt.Errorf("smpp bind %q: password longer than 8 octets (SMPP 3.4 limit)", c.Name)
	}
	if len(c.SystemType) > 12 {
		return fmt.Errorf("smpp bind %q: system_type longer than 12 octets", c.Name)
	}
	switch c.Mode {
	case Transceiver, TransmitterReceiver:
	default:
		return fmt.Errorf("smpp bind %q: mode %q is not %q or %q", c.Name, c.Mode, Transceiver, TransmitterReceiver)
	}
	if c.ReconnectMax < c.ReconnectMin {
		return fmt.Errorf("smpp bind %q: reconnect max %v below min %v", c.Name, c.ReconnectMax, c.ReconnectMin)
	}
	return nil
}

// NewLimiter returns a bucket that paces submits to tps a second (0:
// unlimited) and lets up to 10 ms worth of them (at least one) go at once.
// A bucket of one would pace with a sleep per submit, and every sleep that
// overshoots (on a busy machine the woken goroutine waits for a core, often
// hundreds of microseconds) would be throughput lost for good: 20,000 tps
// configured gave 11,000 submits/s.
// With the slack an overshoot is made up by the submits after it. SMSCs
// count TPS over a second, so a hundredth of it at once stays within their
// limit; one that disagrees answers ESME_RTHROTTLED, which slows the bind.
func NewLimiter(tps float64) *switchboard.TokenBucket {
	return switchboard.NewTokenBucket(tps, max(1, int(tps*limiterSlack.Seconds())))
}

// limiterSlack is how much of a second's TPS may go at once.
const limiterSlack = 10 * time.Millisecond
