package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/switchboard-sms/switchboard/carriers/receipt"
	"github.com/switchboard-sms/switchboard/carriers/smsc"
)

// runSMSC runs the SMSC simulator until ctx is cancelled, printing its
// address and a line of statistics every interval to stdout. Logs go to
// stderr as JSON.
func runSMSC(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, interval, err := parseSMSCFlags(args, stdout)
	if err != nil {
		return err
	}
	srv, err := smsc.Listen(cfg)
	if err != nil {
		return fmt.Errorf("smsc: %w", err)
	}
	fmt.Fprintf(stdout, "smsc listening on %s\n", srv.Addr())
	reportSMSC(ctx, srv, interval, stdout)
	if err := srv.Close(); err != nil {
		return fmt.Errorf("smsc: %w", err)
	}
	fmt.Fprintln(stdout, "smsc stopped:", formatSMSCStats(srv.Stats(), -1))
	return nil
}

// parseSMSCFlags turns the command line into a validated Config. Mistakes
// are usageErrors, so main exits with status 2.
func parseSMSCFlags(args []string, out io.Writer) (smsc.Config, time.Duration, error) {
	fs := flag.NewFlagSet("smsc", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, "Usage: switchboard smsc [flags]\n\nRuns an SMPP 3.4 SMSC simulator that answers submits and sends delivery receipts.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		listen      = fs.String("listen", "127.0.0.1:2775", "`address` to listen on")
		users       = fs.String("users", "", "accepted binds as `id:pass,id2:pass2`; empty accepts any system_id and password")
		rdMin       = fs.Duration("receipt-delay", 0, "time from submit_sm_resp to the receipt (the minimum, with --receipt-delay-max)")
		rdMax       = fs.Duration("receipt-delay-max", 0, "if above --receipt-delay, receipt delays are uniform between the two")
		rdExp       = fs.Bool("receipt-delay-exponential", false, "draw receipt delays from an exponential distribution with mean --receipt-delay, capped at --receipt-delay-max")
		outcomes    = fs.String("outcomes", "delivered=1", "receipt outcome `weights`: delivered=0.9,undeliverable=0.05,expired=0.03,rejected=0.02")
		target      = fs.String("receipt-target", smsc.TargetAny, "which bind gets a receipt: any (round-robin over the system_id's receivers) or same (the submitting bind when it can receive)")
		idFormat    = fs.String("id-format", "decimal", "message id `format`: decimal, hex, or hex_resp_decimal_receipt (hex in submit_sm_resp, decimal in receipts)")
		latency     = fs.String("latency", "0", "`delay` before each submit_sm_resp: a duration, or MIN-MAX for uniform jitter (e.g. 5ms-50ms)")
		thrAbove    = fs.Float64("throttle-above", 0, "answer ESME_RTHROTTLED above this many submits per second (0: off)")
		thrEvery    = fs.Int("throttle-every", 0, "answer every Nth submit with ESME_RTHROTTLED (0: off)")
		dropAfter   = fs.Int("drop-after", 0, "close a connection when it has sent this many submits, leaving the last unanswered (0: off)")
		dropProb    = fs.Float64("drop-probability", 0, "probability that a submit closes its connection unanswered (0 to 1)")
		textOnly    = fs.Bool("text-only-receipts", false, "send receipts without the receipted_message_id and message_state TLVs: only their text says which message and what became of it")
		rcptFirst   = fs.Bool("receipt-first", false, "send each receipt before its submit_sm_resp (with --latency, receipts overtake the responses that name their ids)")
		statsEvery  = fs.Duration("stats-interval", 5*time.Second, "how often to print a stats line (0: never)")
		logLevelStr = fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return smsc.Config{}, 0, err
		}
		return smsc.Config{}, 0, usageError{err}
	}
	if fs.NArg() > 0 {
		return smsc.Config{}, 0, usageError{fmt.Errorf("smsc: unexpected argument %q", fs.Arg(0))}
	}
	cfg := smsc.Config{
		Addr:             *listen,
		ReceiptDelay:     smsc.Delay{Min: *rdMin, Max: *rdMax, Exponential: *rdExp},
		ReceiptTarget:    *target,
		TextOnlyReceipts: *textOnly,
		Faults: smsc.Faults{
			ThrottleAbove:   *thrAbove,
			ThrottleEvery:   *thrEvery,
			DropAfter:       *dropAfter,
			DropProbability: *dropProb,
			ReceiptFirst:    *rcptFirst,
		},
	}
	var err error
	if cfg.Credentials, err = parseUsers(*users); err != nil {
		return cfg, 0, usageError{err}
	}
	if cfg.Outcomes, err = parseOutcomes(*outcomes); err != nil {
		return cfg, 0, usageError{err}
	}
	if cfg.IDFormat, err = receipt.ParseIDFormat(*idFormat); err != nil {
		return cfg, 0, usageError{err}
	}
	if cfg.Faults.Latency, err = parseDelay(*latency); err != nil {
		return cfg, 0, usageError{fmt.Errorf("smsc: --latency: %w", err)}
	}
	level, err := zerolog.ParseLevel(*logLevelStr)
	if err != nil {
		return cfg, 0, usageError{fmt.Errorf("smsc: --log-level: %w", err)}
	}
	cfg.Log = zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
	if err := cfg.Validate(); err != nil {
		return cfg, 0, usageError{err}
	}
	if *statsEvery < 0 {
		return cfg, 0, usageError{fmt.Errorf("smsc: --stats-interval must not be negative")}
	}
	return cfg, *statsEvery, nil
}

// parseUsers reads "id:pass,id2:pass2". A password may contain ':'; a
// system_id may not.
func parseUsers(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	users := make(map[string]string)
	for _, pair := range strings.Split(s, ",") {
		id, pass, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("smsc: --users: %q is not id:password", pair)
		}
		users[id] = pass
	}
	return users, nil
}

// parseOutcomes reads "delivered=0.9,undeliverable=0.05,...". Outcomes not
// named weigh 0.
func parseOutcomes(s string) (smsc.Outcomes, error) {
	var o smsc.Outcomes
	for _, pair := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return o, fmt.Errorf("smsc: --outcomes: %q is not name=weight", pair)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return o, fmt.Errorf("smsc: --outcomes: weight of %s: %w", name, err)
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "delivered", "delivrd":
			o.Delivered = w
		case "undeliverable", "undeliv":
			o.Undeliverable = w
		case "expired":
			o.Expired = w
		case "rejected", "rejectd":
			o.Rejected = w
		default:
			return o, fmt.Errorf("smsc: --outcomes: unknown outcome %q (want delivered, undeliverable, expired, rejected)", name)
		}
	}
	return o, nil
}

// parseDelay reads a duration ("20ms") or a uniform range ("5ms-50ms").
func parseDelay(s string) (smsc.Delay, error) {
	from, to, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, err := time.ParseDuration(from)
	if err != nil {
		return smsc.Delay{}, err
	}
	hi := lo
	if isRange {
		if hi, err = time.ParseDuration(to); err != nil {
			return smsc.Delay{}, err
		}
	}
	return smsc.Delay{Min: lo, Max: hi}, nil
}

// reportSMSC prints a stats line every interval until ctx is done.
func reportSMSC(ctx context.Context, srv *smsc.Server, interval time.Duration, out io.Writer) {
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	last, lastAt := srv.Stats(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			st := srv.Stats()
			rate := float64(st.Submits-last.Submits) / now.Sub(lastAt).Seconds()
			fmt.Fprintln(out, formatSMSCStats(st, rate))
			last, lastAt = st, now
		}
	}
}

// formatSMSCStats writes one stats line; a negative submitRate is left out
// (the final line covers no interval).
func formatSMSCStats(st smsc.Stats, submitRate float64) string {
	rate := ""
	if submitRate >= 0 {
		rate = fmt.Sprintf(" submits/s=%.0f", submitRate)
	}
	return fmt.Sprintf("binds=%d submits=%d%s throttled=%d drops=%d receipts DELIVRD=%d UNDELIV=%d EXPIRED=%d REJECTD=%d pending=%d dropped=%d in_flight=%d mo=%d",
		st.Binds, st.Submits, rate, st.Throttled, st.Drops,
		st.ReceiptsSent[string(receipt.Delivered)], st.ReceiptsSent[string(receipt.Undeliverable)],
		st.ReceiptsSent[string(receipt.Expired)], st.ReceiptsSent[string(receipt.Rejected)],
		st.ReceiptsPending, st.ReceiptsDropped, st.InFlight, st.MOSent)
}
