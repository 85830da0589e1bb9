package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp/data"
	"github.com/linxGnu/gosmpp/pdu"
	"github.com/switchboard-sms/switchboard/carriers/smpp"
)

// smscOutput is a bytes.Buffer safe for the writer and a polling reader.
type smscOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *smscOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *smscOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func smscWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunSMSC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out smscOutput
	done := make(chan error, 1)
	go func() {
		done <- runSMSC(ctx, []string{"--listen", "127.0.0.1:0", "--users", "acme:secret",
			"--stats-interval", "20ms", "--log-level", "warn", "--latency", "1ms-2ms"}, &out)
	}()
	addrRE := regexp.MustCompile(`smsc listening on (\S+)`)
	smscWaitFor(t, "the listening line", func() bool { return addrRE.MatchString(out.String()) })
	addr := addrRE.FindStringSubmatch(out.String())[1]

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smpp.NewConn(nc, time.Second)
	defer c.Abort()
	b := pdu.NewBindRequest(pdu.Transceiver)
	b.SetSequenceNumber(c.NextSeq())
	b.SystemID, b.Password = "acme", "secret"
	_ = c.Send(b)
	if f, err := c.ReadPDU(); err != nil || f.Header.CommandStatus != data.ESME_ROK {
		t.Fatalf("bind: %v %v", err, f.Header.CommandStatus)
	}
	smscWaitFor(t, "a stats line with the bind", func() bool { return strings.Contains(out.String(), "binds=1 ") })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runSMSC did not stop on cancel")
	}
	if !strings.Contains(out.String(), "smsc stopped") {
		t.Errorf("output %q", out.String())
	}
}

func TestRunSMSCBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--outcomes", "delivered=x"},
		{"--outcomes", "lost=1"},
		{"--users", "nopassword"},
		{"--id-format", "octal"},
		{"--receipt-target", "nearest"},
		{"--latency", "soon"},
		{"--drop-probability", "2"},
		{"--no-such-flag"},
	} {
		var out bytes.Buffer
		err := runSMSC(context.Background(), args, &out)
		if !errors.As(err, new(usageError)) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
	var out bytes.Buffer
	if err := runSMSC(context.Background(), []string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(out.String(), "--receipt-target") && !strings.Contains(out.String(), "-receipt-target") {
		t.Errorf("--help: %v %q", err, out.String())
	}
}

// --text-only-receipts reaches the simulator's configuration; receipts
// carry their TLVs without it.
func TestSMSCTextOnlyReceiptsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"--text-only-receipts"}, true}} {
		cfg, _, err := parseSMSCFlags(tc.args, &bytes.Buffer{})
		if err != nil || cfg.TextOnlyReceipts != tc.want {
			t.Errorf("%v: TextOnlyReceipts %v, %v; want %v", tc.args, cfg.TextOnlyReceipts, err, tc.want)
		}
	}
}
